"""A gunicorn worker that keeps connections alive and answers on one thread: ``KeepAliveWorker``.

gunicorn's ``sync`` worker closes every connection after one answer (``Connection: close``),
so each request paid a TCP handshake, and the worker then waited for the client's FIN
(``close_graceful``) before it could accept the next one: at concurrency 1 about a third of a
one-row /predict (docs/performance.md). gunicorn's ``gthread`` worker keeps connections alive
in a poller, but hands every request to a thread pool and its answer back through a pipe: two
thread switches and a pipe round trip per request, and with more than one thread the requests
of one worker compete for the GIL anyway (our requests are CPU, not I/O).

This worker is ``gthread``'s event loop (accept, keep-alive and timeouts, graceful shutdown, max
requests, gunicorn's own parser and response) with the request handled inline on the loop's
thread, one at a time, like ``sync``:

- a new connection waits in the poller until its first bytes arrive, so a client that connects
  and says nothing holds no worker (``sync`` blocked on it);
- an idle keep-alive connection waits in the poller for ``GUNICORN_KEEPALIVE`` seconds;
- a readable connection is served at once on this thread; while it is served, nothing else is
  (one request at a time per worker, as before: the model call holds the GIL anyway);
- the status line and headers leave in the same ``send`` as the first body bytes
  (``OneSendResponse``): one system call and one packet for a small answer instead of two.

What ``sync`` shared and this keeps: one request at a time per process (Django's per-thread
connection, the routing table read without locks), a slow body still blocks the worker until
``GUNICORN_TIMEOUT`` (put a buffering proxy in front, as for ``sync``).
"""

from __future__ import annotations

import errno
import selectors
import sys
import time
from concurrent import futures
from datetime import datetime
from functools import partial
from typing import Any

from gunicorn import util
from gunicorn.http import wsgi
from gunicorn.workers.gthread import TConn, ThreadWorker


class OneSendResponse(wsgi.Response):
    """gunicorn's response, with the header block held back and sent with the first body bytes."""

    _held = b""

    def send_headers(self) -> None:
        if self.headers_sent:
            return
        lines = self.default_headers()
        lines.extend(f"{name}: {value}\r\n" for name, value in self.headers)
        self._held = ("".join(lines) + "\r\n").encode("latin-1")
        self.headers_sent = True

    def _release(self) -> None:
        held, self._held = self._held, b""
        if held:
            self.sock.sendall(held)

    def _emit_body(self, data: bytes) -> None:
        if self._held and not self.chunked:
            held, self._held = self._held, b""
            self.sock.sendall(held + data)
            return
        self._release()
        super()._emit_body(data)

    def sendfile(self, respiter: Any) -> bool:
        self.send_headers()
        self._release()  # sendfile writes the body to the socket itself: the headers go first
        return super().sendfile(respiter)

    def close(self) -> None:
        self.send_headers()
        self._release()  # a response without body bytes (204, HEAD, an empty body)
        super().close()


class _Inline(futures.Executor):
    """Stands in for gthread's thread pool: nothing is ever submitted to it."""

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> futures.Future:  # pragma: no cover
        raise RuntimeError("KeepAliveWorker handles requests inline")


class KeepAliveWorker(ThreadWorker):
    """``gthread``'s keep-alive loop, each request handled on the loop's own thread."""

    def get_thread_pool(self) -> futures.Executor:
        return _Inline()

    def wait_for_and_dispatch_events(self, timeout: float) -> None:
        """At most a second per wait, in the graceful stop too.

        gunicorn 26.2's loop, once told to stop, waits for the open connections in one ``select``
        as long as the whole graceful timeout and closes expired keep-alive connections only when
        it returns: an idle keep-alive client (a load balancer, a Prometheus scraper, a test's
        ``requests.Session``) kept the worker for the full 30 s on every stop and reload, and the
        master's SIGKILL then cut off its exit hooks (the prediction log's last flush among them).
        """
        super().wait_for_and_dispatch_events(min(timeout, 1.0))

    def accept(self, listener: Any) -> None:
        """Take one connection and let it wait in the poller until it has something to read."""
        try:
            client, addr = listener.accept()
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client, addr, listener.getsockname())  # non-blocking until served
        conn.timeout = time.monotonic() + self.cfg.keepalive
        self.pending_conns.append(conn)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self.on_pending_socket_readable, conn))

    def enqueue_req(self, conn: TConn) -> None:
        """Serve the request now, on this thread; then keep the connection alive or close it."""
        done: futures.Future = futures.Future()
        done.set_result(self.handle(conn))
        self.finish_request(conn, done)

    def handle_request(self, req: Any, conn: TConn) -> bool:
        """gthread's ``handle_request`` (gunicorn 26.2), with ``OneSendResponse`` as the response."""
        environ: dict[str, Any] = {}
        resp = None
        try:
            self.cfg.pre_request(self, req)
            request_start = datetime.now()
            resp, environ = wsgi.create(
                req, conn.sock, conn.client, conn.server, self.cfg, response_class=OneSendResponse
            )
            self.nr += 1
            if self.nr >= self.max_requests:
                if self.alive:
                    self.log.info("Autorestarting worker after current request.")
                    self.alive = False
                resp.force_close()
            if not self.alive or not self.cfg.keepalive or len(self.keepalived_conns) >= self.max_keepalived:
                resp.force_close()
            respiter = self.wsgi(environ, resp.start_response)
            try:
                if isinstance(respiter, environ["wsgi.file_wrapper"]):
                    resp.write_file(respiter)
                else:
                    for item in respiter:
                        resp.write(item)
                resp.close()
            finally:
                self.log.access(resp, req, environ, datetime.now() - request_start)
                if hasattr(respiter, "close"):
                    respiter.close()
            if resp.should_close():
                self.log.debug("Closing connection.")
                return False
        except OSError:
            util.reraise(*sys.exc_info())
        except Exception:
            if resp and resp.headers_sent:
                # The status line may be out already: closing is how the client learns of the error.
                self.log.exception("Error handling request")
                util.close_graceful(conn.sock)
                raise StopIteration() from None
            raise
        finally:
            try:
                self.cfg.post_request(self, req, environ, resp)
            except Exception:
                self.log.exception("Exception in post_request hook")
        return True
