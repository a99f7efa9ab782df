"""Ways into a sandbox that has no network: for each loopback port outside that the sandbox may
reach (the metering proxy, the egress proxy), a Unix socket bound into it and relayed to that
port, and inside a loopback listener on the same port relayed to the socket. So a process inside
reaches each of those servers at the address it was given, and nothing else.

`UnixRelays` is the outside half, served by this process; `INSIDE` is the inside half, a script run
with the sandbox's Python (`python -c INSIDE FOLDER PORT… -- COMMAND…`), which starts the command
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


def socket_name(port: int) -> str:
    return f"{port}.sock"


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


def splice(a: socket.socket, b: socket.socket) -> None:
    """Copy both ways until either side closes; then close both."""
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
        splice(self.request, upstream)


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True
    target_port: int


class UnixRelays:
    """Serves `<folder>/<port>.sock` for each port added, relaying each connection to
    127.0.0.1:port; the folder (made for it, private to this user) is what a sandbox binds."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="longrun-relay-"))
        self._servers: dict[int, _Server] = {}

    @property
    def ports(self) -> list[int]:
        return list(self._servers)

    def add(self, port: int) -> Path:
        """Relay `port` (again: nothing new); the socket's path."""
        path = self.folder / socket_name(port)
        if port not in self._servers:
            server = _Server(str(path), _Handler)
            server.target_port = port
            os.chmod(path, 0o600)
            threading.Thread(target=server.serve_forever, name=f"unix-relay-{port}", daemon=True).start()
            self._servers[port] = server
        return path

    def inside(self, python: str) -> list[str]:
        """The words that start a command inside with every relayed port listening (none: [])."""
        if not self._servers:
            return []
        return [python, "-c", INSIDE, str(self.folder), *map(str, self._servers), "--"]

    def stop(self) -> None:
        servers, self._servers = self._servers, {}
        for port, server in servers.items():
            server.shutdown()
            server.server_close()
            (self.folder / socket_name(port)).unlink(missing_ok=True)
        try:
            self.folder.rmdir()
        except OSError:
            pass

    def __enter__(self) -> UnixRelays:
        return self

    def __exit__(self, *_: Any) -> None:
        self.stop()


INSIDE = r"""
import os, signal, socket, subprocess, sys, threading
folder, rest = sys.argv[1], sys.argv[2:]
cut = rest.index("--")
ports, command = [int(p) for p in rest[:cut]], rest[cut + 1:]
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
def serve(conn, path):
    up = socket.socket(socket.AF_UNIX)
    try:
        up.connect(path)
    except OSError:
        conn.close()
        return
    threading.Thread(target=pump, args=(up, conn), daemon=True).start()
    pump(conn, up)
def accept(listener, path):
    while True:
        conn, _ = listener.accept()
        threading.Thread(target=serve, args=(conn, path), daemon=True).start()
for port in ports:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    path = os.path.join(folder, "%d.sock" % port)
    threading.Thread(target=accept, args=(listener, path), daemon=True).start()
child = subprocess.Popen(command)
for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGUSR2):
    signal.signal(sig, lambda n, _f: child.send_signal(n))
code = child.wait()
sys.exit(128 - code if code < 0 else code)
"""
"""The inside half: listen on 127.0.0.1:PORT for each PORT, relay each to FOLDER/PORT.sock, run
COMMAND, pass it the signals this gets, and exit with its code (128 + N when signal N ended it)."""
