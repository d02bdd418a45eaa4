"""Check that installs float no more: the venv holds exactly what the lock files pin.

1. Every package of ``requirements.lock`` (the image) has the same version in
   ``requirements-dev.lock`` (the venv of ``make run``, tests and CI), so what is tested is what ships.
2. ``pip freeze`` of this interpreter's environment equals ``requirements-dev.lock``: nothing missing,
   nothing extra, no other version (pip/setuptools/wheel from ``python -m venv`` are ignored unless
   the lock pins them).
3. ``clients/python`` (controlplane-client) is installed editable from this tree.

Run by ``make check-lock`` and ``make lock`` and by tests/deploy/test_lock.py; exit 1 with the
differences when any check fails.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
BOOTSTRAP = {"pip", "setuptools", "wheel"}


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """name -> version of every ``name==version`` line of a pip-compile output."""
    out = {}
    for line in path.read_text().splitlines():
        match = PIN.match(line)
        if match:
            out[normalize(match.group(1))] = match.group(2)
    return out


def installed() -> tuple[dict[str, str], set[str]]:
    """(name -> version of every non-editable distribution, names of the editable ones)."""
    pip = [sys.executable, "-m", "pip"]
    frozen = subprocess.run(
        [*pip, "freeze", "--all", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout
    versions = {}
    for line in frozen.splitlines():
        match = PIN.match(line)
        if match:
            versions[normalize(match.group(1))] = match.group(2)
    listed = subprocess.run(
        [*pip, "list", "--editable", "--format", "json"], capture_output=True, text=True, check=True
    ).stdout
    return versions, {normalize(d["name"]) for d in json.loads(listed)}


def differences(lock: dict[str, str], have: dict[str, str]) -> list[str]:
    problems = []
    for name in sorted(set(lock) | set(have)):
        want, got = lock.get(name), have.get(name)
        if want == got or (want is None and name in BOOTSTRAP):
            continue
        if want is None:
            problems.append(f"installed but not in the lock: {name}=={got}")
        elif got is None:
            problems.append(f"in the lock but not installed: {name}=={want}")
        else:
            problems.append(f"{name}: lock pins {want}, installed {got}")
    return problems


def strip_editable(path: Path) -> None:
    """Drop pip-compile's ``-e`` line (no single file to hash; an absolute path of this checkout),
    its ``# via`` comments and the warning about it: the Makefile installs the client after the lock."""
    out: list[str] = []
    skipping = False
    for line in path.read_text().splitlines(keepends=True):
        if line.startswith("# WARNING: pip install will require") or line.startswith(
            "# Consider using a hashable URL"
        ):
            continue
        if line.startswith("-e "):
            skipping = True
            continue
        if skipping and line.startswith("    #"):
            continue
        skipping = False
        out.append(line)
    path.write_text("".join(out))


def main() -> int:
    if sys.argv[1:2] == ["--strip-editable"]:
        strip_editable(Path(sys.argv[2]))
        return 0
    image, dev = pins(REPO / "requirements.lock"), pins(REPO / "requirements-dev.lock")
    problems = [
        f"{name}: requirements.lock pins {version}, requirements-dev.lock {dev.get(name)}"
        for name, version in sorted(image.items())
        if dev.get(name) != version
    ]
    have, editable = installed()
    problems += differences(dev, have)
    if "controlplane-client" not in editable:
        problems.append("controlplane-client (clients/python) is not installed editable")
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(
            f"{len(problems)} difference(s): run `make venv` (or `make lock` after changing requirements)",
            file=sys.stderr,
        )
        return 1
    print(f"lock ok: {len(dev)} packages pinned with hashes, installed exactly; client editable")
    return 0


if __name__ == "__main__":
    sys.exit(main())
