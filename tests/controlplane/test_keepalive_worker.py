"""``controlplane.gunicorn_worker.KeepAliveWorker`` under a real gunicorn, with a WSGI app of a few routes.

What the worker promises (docs/performance.md): connections stay open between requests, a client
that connects and says nothing holds no worker, a small answer leaves in one send, and every
response shape (fixed length, chunked, empty, sendfile) still arrives intact.
"""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.mlflow_server import REPO, free_port, wait_http

pytestmark = pytest.mark.single_pass

WORKER = os.environ.get("KA_TEST_WORKER", "controlplane.gunicorn_worker.KeepAliveWorker")


@pytest.fixture(scope="module")
def file_body(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("keepalive") / "body.bin"
    path.write_bytes(os.urandom(256 * 1024))
    return path


def _serve(file_body: Path, *extra: str) -> Iterator[int]:
    port = free_port()
    cmd = [
        sys.executable, "-m", "gunicorn", "--worker-class", WORKER, "--workers", "1",
        "--bind", f"127.0.0.1:{port}", "--timeout", "30", *extra, "tests.controlplane.keepalive_app:app",
    ]  # fmt: skip
    env = dict(os.environ, KEEPALIVE_TEST_FILE=str(file_body))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/", 60, proc)
        yield port
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def port(file_body: Path) -> Iterator[int]:
    yield from _serve(file_body, "--keep-alive", "5")


def _raw_request(path: str, extra: str = "") -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: t\r\n{extra}\r\n".encode()


def test_two_requests_share_one_connection(port: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", "/pid")
    first = conn.getresponse()
    assert first.status == 200 and first.getheader("Connection", "").lower() != "close"
    first.read()
    local = conn.sock.getsockname()
    conn.request("GET", "/pid")
    second = conn.getresponse()
    assert second.status == 200 and second.read()
    assert conn.sock is not None and conn.sock.getsockname() == local  # not reconnected
    conn.close()


def test_a_small_answer_arrives_in_one_segment(port: int) -> None:
    # With the status line and headers sent apart from the body, the first read on a loopback
    # socket usually returns the headers alone.
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        for _ in range(50):
            sock.sendall(_raw_request("/"))
            data = sock.recv(65536)
            assert data.startswith(b"HTTP/1.1 200 OK") and data.endswith(b'{"ok": true}'), data


def test_a_silent_client_does_not_hold_the_only_worker(port: int) -> None:
    silent = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(3)]
    try:
        started = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/")
        assert conn.getresponse().status == 200
        assert time.monotonic() - started < 2
        conn.close()
    finally:
        for sock in silent:
            sock.close()


def test_chunked_empty_and_file_answers_arrive_intact_on_one_connection(port: int, file_body: Path) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(2):
        conn.request("GET", "/chunked")
        chunked = conn.getresponse()
        assert chunked.getheader("Transfer-Encoding") == "chunked"
        assert chunked.read() == b"first,second,third"
        conn.request("GET", "/empty")
        empty = conn.getresponse()
        assert empty.status == 204 and empty.read() == b""
        conn.request("HEAD", "/")
        head = conn.getresponse()
        assert head.status == 200 and head.read() == b"" and head.getheader("Content-Length") == "12"
        conn.request("GET", "/file")
        assert conn.getresponse().read() == file_body.read_bytes()
    conn.close()


def test_a_client_that_asks_to_close_gets_its_connection_closed(port: int) -> None:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(_raw_request("/", "Connection: close\r\n"))
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
        assert b"Connection: close" in received and received.endswith(b'{"ok": true}')


def test_an_idle_connection_is_closed_after_the_keepalive_seconds(file_body: Path) -> None:
    for port in _serve(file_body, "--keep-alive", "1"):
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(_raw_request("/"))
            assert sock.recv(65536).endswith(b'{"ok": true}')
            started = time.monotonic()
            assert sock.recv(65536) == b""  # the server closed it
            assert 0.5 < time.monotonic() - started < 5


def test_a_graceful_stop_waits_for_an_idle_connection_no_longer_than_the_keepalive_seconds(
    file_body: Path,
) -> None:
    """gunicorn 26.2's gthread loop, once told to stop, waits for open connections in one
    ``select`` as long as the whole graceful timeout, checking keep-alive expiry only when it
    returns: one idle keep-alive client (a load balancer, a Prometheus scraper) held every
    worker for 30 s on each stop and reload, until the master's SIGKILL cut off the worker's
    exit hooks (the prediction log's last flush among them)."""
    port = free_port()
    cmd = [
        sys.executable, "-m", "gunicorn", "--worker-class", WORKER, "--workers", "1",
        "--bind", f"127.0.0.1:{port}", "--keep-alive", "3", "--graceful-timeout", "30",
        "tests.controlplane.keepalive_app:app",
    ]  # fmt: skip
    env = dict(os.environ, KEEPALIVE_TEST_FILE=str(file_body))
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/", 60, proc)
        with socket.create_connection(("127.0.0.1", port), timeout=40) as sock:
            sock.sendall(_raw_request("/"))
            assert sock.recv(65536).endswith(b'{"ok": true}')  # the connection is now idle, kept alive
            time.sleep(1.5)  # the worker's loop has gone round with the connection idle
            started = time.monotonic()
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=40)
            took = time.monotonic() - started
        # The keep-alive (3 s) runs out, plus up to a second until the loop looks: well under 30 s.
        assert took < 6, f"the master took {took:.1f} s to stop with one idle keep-alive connection"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
