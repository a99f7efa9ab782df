"""`longrun serve`: the dashboard in a browser, on textual-serve, behind a token and an Origin check.

`textual serve` alone answers anyone who can reach its port, and its websocket takes any Origin:
any page open in the same browser could connect and press keys in the approvals inbox. Here
every request must carry the token (in the printed URL, then in an HttpOnly, SameSite=Strict
cookie the page gets), name this server in its Host header (a rebound DNS name is refused), and a
websocket or any state-changing request must come from this server's own Origin.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
import os
import re
import secrets
import shlex
import socket
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from aiohttp.typedefs import Handler, Middleware
from textual_serve.server import Server, to_int

from longrun.store.errors import LongrunError

TOKEN_PARAM = "token"
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9._~-]{16,}")
"""What a token in a `--token-file` must look like: long enough not to guess, and safe in a URL
and a cookie as it is."""
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
"""Names a browser may use for a loopback server; any of them (on the server's port) is its own."""
WILDCARDS = ("0.0.0.0", "::", "")
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


class ServeOptionError(LongrunError):
    """A `--host`, `--port` or `--token-file` the server cannot start with."""

    title = "serve"


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def host_port(name: str, port: int) -> str:
    """`name:port` as a browser writes it in Host and Origin (no port for 80, IPv6 in brackets)."""
    if ":" in name and not name.startswith("["):
        name = f"[{name}]"
    return name if port == 80 else f"{name}:{port}"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_from_file(path: Path) -> str:
    """The token in `path` (its first line), or a new one written there (mode 0600) when there is
    no such file. A file that others may read or write, or that holds no usable token, is refused."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read_token(path)
    except OSError as exc:
        raise ServeOptionError(f"--token-file {path}: cannot create it: {exc.strerror}") from None
    token = new_token()
    with os.fdopen(fd, "w") as out:
        out.write(token + "\n")
    return token


def _read_token(path: Path) -> str:
    try:
        info = path.stat()
        if not stat.S_ISREG(info.st_mode):
            raise ServeOptionError(f"--token-file {path}: not a regular file")
        if info.st_mode & 0o077:
            raise ServeOptionError(
                f"--token-file {path}: others may read or write it (mode {stat.S_IMODE(info.st_mode):o}); "
                f"chmod 600 it"
            )
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ServeOptionError(f"--token-file {path}: cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ServeOptionError(f"--token-file {path}: not text") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise ServeOptionError(f"--token-file {path}: empty")
    if not TOKEN_SHAPE.fullmatch(token):
        raise ServeOptionError(
            f"--token-file {path}: the token must be 16 or more letters, digits, '-', '_', '.' or '~'"
        )
    return token


@dataclass(frozen=True)
class Guard:
    """What a request must carry to be let in: the token or its cookie, this server's Host, and
    for a websocket or a state-changing request this server's Origin."""

    token: str
    port: int
    hosts: frozenset[str] | None
    """The Host values that are this server (`host:port`, lowercase); None when it listens on
    every address, and any Host is taken (the Origin must still be the Host's own)."""

    @classmethod
    def for_bind(cls, host: str, port: int, token: str) -> Guard:
        if host in WILDCARDS:
            return cls(token, port, None)
        names = LOOPBACK_NAMES if is_loopback(host) else (host,)
        return cls(token, port, frozenset(host_port(name.lower(), port) for name in (host, *names)))

    @property
    def cookie_name(self) -> str:
        # Cookies are shared by every port of a host: one name per port keeps two servers apart.
        return f"longrun-serve-{self.port}"

    def token_matches(self, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(offered.encode(), self.token.encode())

    def by_query(self, request: web.Request) -> bool:
        """Whether the request carries the token in its URL (the printed one, opened once)."""
        return self.token_matches(request.query.get(TOKEN_PARAM))

    def refusal(self, request: web.Request) -> str | None:
        """Why the request is refused, in one line; None when it is let in."""
        host = request.headers.get("Host", "").lower()
        if self.hosts is not None and host not in self.hosts:
            return f"the Host {host or '(none)'!r} is not this server"
        upgrade = request.headers.get("Upgrade", "").lower() == "websocket"
        if upgrade or request.method not in SAFE_METHODS:
            origin = request.headers.get("Origin", "").lower()
            if not host or origin != f"http://{host}":
                what = "websocket" if upgrade else f"{request.method} request"
                return f"a {what} with Origin {origin or '(none)'} is not from this server's page"
        if not (self.by_query(request) or self.token_matches(request.cookies.get(self.cookie_name))):
            return "no valid token: open the URL `longrun serve` printed"
        return None


def guard_middleware(guard: Guard) -> Middleware:
    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        refusal = guard.refusal(request)
        if refusal is not None:
            return web.Response(status=403, text=f"403 Forbidden: {refusal}\n")
        response = await handler(request)
        if not response.prepared:
            response.headers["Referrer-Policy"] = "no-referrer"
            response.headers["X-Frame-Options"] = "DENY"
            if guard.by_query(request):
                response.set_cookie(
                    guard.cookie_name, guard.token, path="/", httponly=True, samesite="Strict"
                )
        return response

    return middleware


def dashboard_command(home: Path, no_daemon: bool) -> str:
    """The shell command each browser tab runs: `longrun-ui` on this store."""
    argv = [sys.executable, "-m", "longrun.app.tui", "--home", str(home)]
    return shlex.join(argv + (["--no-daemon"] if no_daemon else []))


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on `host:port` (port 0: a free one), or a one-line error."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise ServeOptionError(f"--host {host}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as exc:
        sock.close()
        raise LongrunError(f"cannot listen on {host_port(host, port)}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock


class DashboardServer(Server):
    """textual-serve's server on a bound socket, with a `Guard` in front of every route.

    Its page names its websocket and assets by the Host it was loaded from, so that a tab on
    `localhost` talks to `localhost` and sends its cookie there, not to the printed host.
    """

    def __init__(self, sock: socket.socket, guard: Guard, command: str) -> None:
        host, port = sock.getsockname()[:2]
        super().__init__(command, host=host, port=port, title="longrun")
        self.sock = sock
        self.guard = guard
        self.tabs: set[asyncio.Task[Any]] = set()

    async def _make_app(self) -> web.Application:
        app = await super()._make_app()
        app.middlewares.append(guard_middleware(self.guard))
        return app

    @aiohttp_jinja2.template("app_index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        router = request.app.router
        static = f"http://{request.host}{router['static'].url_for(filename='/')}".rstrip("/") + "/"
        return {
            "font_size": to_int(request.query.get("fontsize", "16"), 16),
            "app_websocket_url": f"ws://{request.host}{router['websocket'].url_for()}",
            "config": {"static": {"url": static}},
            "application": {"name": self.title},
        }

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        # Each open tab is a dashboard process; at shutdown they are ended, not waited on.
        task = asyncio.current_task()
        assert task is not None
        self.tabs.add(task)
        try:
            return await super().handle_websocket(request)
        finally:
            self.tabs.discard(task)

    async def on_startup(self, app: web.Application) -> None:
        """textual-serve prints a banner and its URL here; the CLI has printed the URL already."""

    async def on_shutdown(self, app: web.Application) -> None:
        for task in list(self.tabs):
            task.cancel()

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM. No access log: the URLs it would log carry the token."""
        logging.basicConfig(level=logging.WARNING, format="longrun serve: %(message)s")
        web.run_app(self._make_app(), sock=self.sock, print=None, access_log=None, shutdown_timeout=5)
