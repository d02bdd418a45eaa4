"""The bench's instruments: start and stop servers, drive them with wrk, read their CPU time."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
WRK = shutil.which("wrk") or "/usr/bin/wrk"


def say(msg: str) -> None:
    print(f"[bench] {msg}", flush=True)


def start(cmd: list[str], env: dict[str, str], log: Path, cwd: Path | None = None) -> subprocess.Popen:
    """A server in its own session, so ``stop`` and ``cpu_seconds`` reach every process it forks."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            cmd, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def cpu_seconds(proc: subprocess.Popen) -> float:
    """User + system CPU time of every live process in ``proc``'s process group (Linux /proc).

    gunicorn's master and workers, ``mlflow models serve`` with its uvicorn and workers, MLServer:
    all stay in the group the bench started them in. The processes live through a measurement,
    so the difference of two readings is what the group spent in between.
    """
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[2]) == proc.pid:  # pgrp (field 5 of stat)
            total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / tick


def post_json(url: str, body: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    # Only the bench's own http://127.0.0.1 servers.
    request = urllib.request.Request(url, data=body.encode(), headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


def wrk(
    url: str, body: str, headers: dict[str, str], concurrency: int, tmp: Path, seconds: int = SECONDS
) -> dict[str, float]:
    """One wrk run: one thread, ``concurrency`` connections (keep-alive when the server allows it)."""
    script = tmp / "post.lua"
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(body)}"]
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    script.write_text("\n".join(lines) + "\n")
    out = subprocess.run(
        [WRK, "-t1", f"-c{concurrency}", f"-d{seconds}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "requests": int(re.search(r"(\d+) requests in", out).group(1)),
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "errors": (int(non2xx.group(1)) if non2xx else 0)
        + (sum(map(int, socket_errors.groups())) if socket_errors else 0),
    }


def wrk_with_cpu(
    proc: subprocess.Popen, url: str, body: str, headers: dict[str, str], conc: int, tmp: Path
) -> dict[str, float]:
    """``wrk`` plus the server's CPU milliseconds per request (robust when the machine is shared)."""
    before = cpu_seconds(proc)
    result = wrk(url, body, headers, conc, tmp)
    result["cpu_ms"] = (cpu_seconds(proc) - before) * 1000 / max(result["requests"], 1)
    return result


def _ms(text: str) -> float:
    value, unit = re.match(r"([\d.]+)(\w+)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]
