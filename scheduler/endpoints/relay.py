"""A way into a sandbox that has no network: a Unix socket, bound into it, relayed to one loopback
port outside (the metering proxy), and inside a loopback listener on the same port relayed to
the socket. So a process inside reaches the proxy at the address it was given, and nothing else.

`UnixRelay` is the outside half, served by this process; `INSIDE` is the inside half, a script run
with the sandbox's Python (`python -c INSIDE SOCKET PORT -- COMMAND…`), which starts the command
once it listens and ends with it.
"""

from __future__ import annotations

import os
import socket
import socketserver
import tempfile
import threading
from pathlib import Path
from typing import Any

SOCKET_NAME = "proxy.sock"


def _pump(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _splice(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes."""
    back = threading.Thread(target=_pump, args=(b, a), daemon=True)
    back.start()
    _pump(a, b)
    back.join()
    a.close()
    b.close()


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.server.target_port), timeout=30)
        except OSError:
            return
        upstream.settimeout(None)
        _splice(self.request, upstream)


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    target_port: int


class UnixRelay:
    """Serves `<folder>/proxy.sock`, relaying each connection to 127.0.0.1:`port`; the folder (made
    for it, private to this user) is what a sandbox binds."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.folder = Path(tempfile.mkdtemp(prefix="longrun-relay-"))
        self.path = self.folder / SOCKET_NAME
        self._server: _Server | None = None

    def start(self) -> Path:
        server = _Server(str(self.path), _Handler)
        server.target_port = self.port
        os.chmod(self.path, 0o600)
        threading.Thread(target=server.serve_forever, name="unix-relay", daemon=True).start()
        self._server = server
        return self.path

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for path in (self.path, self.folder):
            try:
                path.unlink() if path.is_socket() else path.rmdir()
            except OSError:
                pass

    def __enter__(self) -> UnixRelay:
        self.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()


INSIDE = r"""
import os, signal, socket, subprocess, sys, threading
path, port, command = sys.argv[1], int(sys.argv[2]), sys.argv[4:]
def pump(a, b):
    try:
        while True:
            data = a.recv(65536)
            if not data:
                break
            b.sendall(data)
    except OSError:
        pass
    for s in (a, b):
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
def serve(conn):
    up = socket.socket(socket.AF_UNIX)
    try:
        up.connect(path)
    except OSError:
        conn.close()
        return
    threading.Thread(target=pump, args=(up, conn), daemon=True).start()
    pump(conn, up)
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(64)
def accept():
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn,), daemon=True).start()
threading.Thread(target=accept, daemon=True).start()
child = subprocess.Popen(command)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda n, _f: child.send_signal(n))
sys.exit(child.wait())
"""
"""The inside half: listen on 127.0.0.1:PORT, relay to SOCKET, run COMMAND and exit with its code."""
