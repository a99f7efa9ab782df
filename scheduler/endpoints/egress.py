"""The egress proxy: the only way from a sandbox to the hosts its spec allows.

With `[sandbox] network = ["pypi.org", "*.pythonhosted.org:443"]` the sandbox keeps a network
namespace of its own (nothing leaves it directly) and its programs are told to use this proxy
(`HTTP_PROXY`, `HTTPS_PROXY` and their lower-case forms), which runs outside with the harness and
is reached through the sandbox's relay. It speaks the two forms every HTTP client uses: `CONNECT
host:port` (a tunnel, for HTTPS and anything else over TCP) and a request with an absolute URL
(plain HTTP). A host the list allows is connected to and the bytes are passed through untouched;
any other is answered `403` with a line that says which list refused it, and nothing is sent.
Every decision is counted by host, for the session's `egress` event.

A rule is a host name (`pypi.org`), a suffix (`*.pythonhosted.org`: any name below it, not the
name itself) or an IP address, each with an optional `:port` (without one, any port). Names are
matched as the client wrote them, without case and a trailing dot; the proxy resolves an allowed
name itself, so nothing inside needs DNS. A name that resolves to this machine's loopback is
refused unless a rule names it as such (`localhost`, `127.0.0.1`): a wildcard cannot be made to
lead back to the services of the machine that runs the sandbox.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import socketserver
import threading
from collections import Counter
from dataclasses import dataclass
from urllib.parse import urlsplit

from longrun.scheduler.endpoints.relay import splice

_LABEL = r"(?!-)[a-z0-9_-]{1,63}(?<!-)"
_NAME = re.compile(rf"^{_LABEL}(\.{_LABEL})*$")
HEAD_LIMIT = 64 * 1024
"""A request head longer than this is refused: no client needs more to say where it goes."""
CONNECT_TIMEOUT = 30.0


@dataclass(frozen=True)
class HostRule:
    """One entry of the allow-list."""

    host: str
    """A name or an address; for a suffix rule, the part after `*.`."""
    suffix: bool = False
    port: int | None = None

    @classmethod
    def parse(cls, text: str) -> HostRule:
        """`HOST`, `*.DOMAIN` or an IP address, with an optional `:PORT` (IPv6 in brackets);
        a `ValueError` with a one-line reason for anything else."""
        rest, port = text.strip().lower(), None
        match = re.fullmatch(r"\[([0-9a-f:.]+)\](?::(\d+))?|([^:\[\]]+)(?::(\d+))?", rest)
        if match is None:
            raise ValueError(f"{text!r} is not a host, *.domain or IP address with an optional :port")
        host = match.group(1) or match.group(3)
        if match.group(2) or match.group(4):
            port = int(match.group(2) or match.group(4))
            if not 0 < port < 65536:
                raise ValueError(f"{text!r}: the port must be from 1 to 65535")
        suffix = host.startswith("*.")
        if suffix:
            host = host[2:]
        host = host.rstrip(".")
        if match.group(1) or _is_address(host):
            if suffix or not _is_address(host):
                raise ValueError(f"{text!r}: a wildcard takes a domain name, not an address")
            host = str(ipaddress.ip_address(host))
        elif not _NAME.match(host) or "*" in host:
            raise ValueError(f"{text!r} is not a host, *.domain or IP address with an optional :port")
        return cls(host, suffix, port)

    def allows(self, host: str, port: int) -> bool:
        if self.port is not None and port != self.port:
            return False
        if self.suffix:
            return host.endswith("." + self.host)
        return host == self.host

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        host = f"*.{host}" if self.suffix else host
        return f"{host}:{self.port}" if self.port is not None else host


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def canonical_host(host: str) -> str:
    host = host.strip().lower().rstrip(".")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    return str(ipaddress.ip_address(host)) if _is_address(host) else host


def allowed(rules: tuple[HostRule, ...], host: str, port: int) -> bool:
    host = canonical_host(host)
    return any(rule.allows(host, port) for rule in rules)


def names_loopback(rules: tuple[HostRule, ...], host: str) -> bool:
    """Whether a rule names this host itself as a loopback host (`localhost`, `127.0.0.1`): only
    then may it lead to this machine's own services; an allowed name that merely resolves to
    loopback (a wildcard's, say) does not."""
    host = canonical_host(host)
    local = host == "localhost" or (_is_address(host) and ipaddress.ip_address(host).is_loopback)
    return local and any(not rule.suffix and rule.host == host for rule in rules)


def _addresses(host: str, port: int) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Where `host` leads, resolved once here so that the check and the connection agree."""
    found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [ipaddress.ip_address(info[4][0]) for info in found]


def _split_authority(authority: str, default_port: int) -> tuple[str, int]:
    """`host:port` (or `[v6]:port`, or a bare host) as (host, port); ValueError when malformed."""
    parts = urlsplit(f"//{authority}")
    if not parts.hostname:
        raise ValueError(authority)
    return parts.hostname, parts.port or default_port


class _Refused(Exception):
    def __init__(self, status: int, reason: str, line: str) -> None:
        super().__init__(line)
        self.status, self.reason, self.line = status, reason, line


class _Handler(socketserver.BaseRequestHandler):
    server: _Server

    def handle(self) -> None:
        client: socket.socket = self.request
        client.settimeout(CONNECT_TIMEOUT)
        try:
            head = _read_head(client)
            method, target, version, rest = _parse_head(head)
            if method == "CONNECT":
                host, port = _split_authority(target, 443)
                upstream = self._open(host, port)
                client.sendall(f"{version} 200 Connection established\r\n\r\n".encode())
            else:
                url = urlsplit(target)
                if url.scheme != "http" or not url.hostname:
                    raise _Refused(400, "Bad Request", "this proxy takes CONNECT or an absolute http:// URL")
                host, port = url.hostname, url.port or 80
                upstream = self._open(host, port)
                path = url.path or "/"
                path += f"?{url.query}" if url.query else ""
                upstream.sendall(_forwarded_head(method, path, version, rest))
        except _Refused as refused:
            body = f"longrun sandbox: {refused.line}\n".encode()
            reply = (
                f"HTTP/1.1 {refused.status} {refused.reason}\r\nContent-Type: text/plain\r\n"
                f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
            ).encode()
            try:
                client.sendall(reply + body)
            except OSError:
                pass
            return
        except (OSError, ValueError):
            return
        client.settimeout(None)
        upstream.settimeout(None)
        splice(client, upstream)

    def _open(self, host: str, port: int) -> socket.socket:
        proxy = self.server.owner
        key = f"{canonical_host(host)}:{port}"
        if not allowed(proxy.rules, host, port):
            proxy.count(key, allowed=False)
            raise _Refused(
                403,
                "Forbidden",
                f"{key} is not in [sandbox] network ({', '.join(map(str, proxy.rules))})",
            )
        try:
            addresses = _addresses(host, port)
            if not names_loopback(proxy.rules, host) and any(a.is_loopback for a in addresses):
                proxy.count(key, allowed=False)
                raise _Refused(
                    403,
                    "Forbidden",
                    f"{key} resolves to a loopback address, which only a rule naming it reaches",
                )
            proxy.count(key, allowed=True)
            return socket.create_connection((str(addresses[0]), port), timeout=CONNECT_TIMEOUT)
        except OSError as exc:
            raise _Refused(502, "Bad Gateway", f"{key} could not be reached: {exc.strerror or exc}") from None


def _read_head(client: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = client.recv(4096)
        if not chunk:
            raise ValueError("closed before the request's head ended")
        head += chunk
        if len(head) > HEAD_LIMIT:
            raise _Refused(431, "Request Header Fields Too Large", "the request's head is too long")
    return head


def _parse_head(head: bytes) -> tuple[str, str, str, bytes]:
    """(method, target, version, the headers and whatever came after them)."""
    line, _, rest = head.partition(b"\r\n")
    words = line.decode("latin-1").split(" ")
    if len(words) != 3 or not words[2].startswith("HTTP/"):
        raise _Refused(400, "Bad Request", "not an HTTP request")
    return words[0].upper(), words[1], words[2], rest


def _forwarded_head(method: str, path: str, version: str, rest: bytes) -> bytes:
    """The request as the origin expects it: its path only, no `Proxy-*` header, and one request
    per connection (the next may be for another host, which must be checked again)."""
    headers, _, body = rest.partition(b"\r\n\r\n")
    kept = [
        h
        for h in headers.split(b"\r\n")
        if h and not h.lower().startswith((b"proxy-", b"connection:", b"keep-alive:"))
    ]
    lines = [f"{method} {path} {version}".encode(), *kept, b"Connection: close"]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: EgressProxy


class EgressProxy:
    """The proxy on 127.0.0.1 (a free port), between `start()` and `stop()`."""

    def __init__(self, rules: tuple[HostRule, ...]) -> None:
        self.rules = rules
        self.allowed: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._server: _Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None, "the egress proxy is not started"
        return int(self._server.server_address[1])

    def start(self) -> int:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.owner = self
        threading.Thread(target=server.serve_forever, name="egress-proxy", daemon=True).start()
        self._server = server
        return self.port

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def count(self, key: str, *, allowed: bool) -> None:
        with self._lock:
            (self.allowed if allowed else self.refused)[key] += 1

    def tally(self) -> dict[str, dict[str, int]]:
        """What the session's `egress` event records: connections by `host:port`, allowed and refused."""
        with self._lock:
            return {"allowed": dict(self.allowed), "refused": dict(self.refused)}
