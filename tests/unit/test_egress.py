"""The egress proxy's allow-list, and the proxy itself on loopback: what a rule lets through,
what it refuses and how the refusal reads."""

from __future__ import annotations

import http.client
import http.server
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from longrun.scheduler.endpoints.egress import EgressProxy, HostRule, allowed, names_loopback


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("pypi.org", HostRule("pypi.org")),
        ("PyPI.org.", HostRule("pypi.org")),
        ("*.pythonhosted.org:443", HostRule("pythonhosted.org", suffix=True, port=443)),
        ("10.0.0.5", HostRule("10.0.0.5")),
        ("[::1]:8080", HostRule("::1", port=8080)),
        ("localhost", HostRule("localhost")),
    ],
)
def test_a_rule_is_read_as_written(text: str, rule: HostRule) -> None:
    assert HostRule.parse(text) == rule
    assert HostRule.parse(str(rule)) == rule


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("bad host", "is not a host"),
        ("*", "is not a host"),
        ("a.*.org", "is not a host"),
        ("*.10.0.0.5", "a wildcard takes a domain name"),
        ("pypi.org:0", "the port must be from 1 to 65535"),
        ("pypi.org:70000", "the port must be from 1 to 65535"),
        ("http://pypi.org", "is not a host"),
        ("-bad.org", "is not a host"),
    ],
)
def test_a_bad_rule_says_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        HostRule.parse(text)


def test_a_rule_matches_its_host_its_suffix_and_its_port_only() -> None:
    rules = tuple(map(HostRule.parse, ["pypi.org", "*.pythonhosted.org:443", "10.0.0.5"]))
    assert allowed(rules, "pypi.org", 443) and allowed(rules, "PYPI.ORG.", 80)
    assert allowed(rules, "files.pythonhosted.org", 443)
    assert not allowed(rules, "files.pythonhosted.org", 80)
    assert not allowed(rules, "pythonhosted.org", 443)  # a suffix rule is for names below it
    assert not allowed(rules, "evilpythonhosted.org", 443)
    assert not allowed(rules, "pypi.org.evil.com", 443)
    assert allowed(rules, "10.0.0.5", 22) and not allowed(rules, "10.0.0.6", 22)


def test_only_a_rule_that_names_a_loopback_host_leads_back_to_this_machine() -> None:
    rules = tuple(map(HostRule.parse, ["localhost", "127.0.0.2", "*.example.test"]))
    assert names_loopback(rules, "localhost") and names_loopback(rules, "127.0.0.2")
    assert not names_loopback(rules, "a.example.test")  # a wildcard name that resolves to loopback
    assert not names_loopback(tuple(map(HostRule.parse, ["*.localhost"])), "x.localhost")


@pytest.fixture
def origin() -> Iterator[int]:
    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"origin saw {self.path} proxy-header={self.headers.get('Proxy-Authorization')}"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *_: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_the_proxy_passes_an_allowed_request_and_refuses_another(origin: int) -> None:
    proxy = EgressProxy((HostRule.parse("localhost"),))
    port = proxy.start()
    try:
        plain = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        plain.request("GET", f"http://localhost:{origin}/a?b=1", headers={"Proxy-Authorization": "x"})
        reply = plain.getresponse()
        assert reply.status == 200
        assert reply.read() == b"origin saw /a?b=1 proxy-header=None"

        tunnel = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        tunnel.set_tunnel("localhost", origin)
        tunnel.request("GET", "/t")
        assert tunnel.getresponse().read().startswith(b"origin saw /t")

        refused = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        refused.request("GET", f"http://127.0.0.1:{origin}/")
        reply = refused.getresponse()
        assert reply.status == 403
        assert reply.read().decode().strip() == (
            f"longrun sandbox: 127.0.0.1:{origin} is not in [sandbox] network (localhost)"
        )

        with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
            raw.sendall(b"not http at all\r\n\r\n")
            assert raw.recv(100).startswith(b"HTTP/1.1 400")
    finally:
        proxy.stop()
    assert proxy.tally() == {
        "allowed": {f"localhost:{origin}": 2},
        "refused": {f"127.0.0.1:{origin}": 1},
    }
