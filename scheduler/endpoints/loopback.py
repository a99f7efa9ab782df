"""What every endpoint longrun serves on loopback shares: a threaded HTTP server on a free port,
served from a daemon thread between `start()` and `stop()` (or a `with` block)."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


class LoopbackHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    owner: Any
    """The `LoopbackServer` that started it, for its handlers to reach."""


class LoopbackServer:
    """A server on loopback; subclasses give `HANDLER` and `NAME` (the thread's name)."""

    HANDLER: type[BaseHTTPRequestHandler]
    NAME = "loopback-server"

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host = host
        self._port = port
        self._httpd: LoopbackHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        """`http://HOST:PORT`; the server must be started."""
        if self._httpd is None:
            raise RuntimeError(f"the {self.NAME.replace('-', ' ')} is not started")
        return f"http://{self._host}:{self._httpd.server_port}"

    def start(self) -> str:
        """Bind (a free port when 0), serve in a daemon thread, and return the base URL."""
        if self._httpd is not None:
            return self.base_url
        self._starting()
        httpd = LoopbackHTTPServer((self._host, self._port), self.HANDLER)
        httpd.owner = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, name=self.NAME, daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        """Stop serving and free the port."""
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        self._stopping()
        httpd.shutdown()
        httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        self._stopped()

    def _starting(self) -> None:
        """Before the port is bound."""

    def _stopping(self) -> None:
        """Before the server shuts down (handlers still running may look)."""

    def _stopped(self) -> None:
        """After the last handler thread was joined."""

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
