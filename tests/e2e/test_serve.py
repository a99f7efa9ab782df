"""`longrun serve` as a process: only a request with the token (or the cookie the printed URL
sets) is let in, and only a websocket from the server's own page; bad options start nothing.

Requests are made with httpx and websockets with aiohttp's client (it comes with textual-serve);
the cookie is sent by hand so that what the server set is exactly what comes back.
"""

from __future__ import annotations

import asyncio
import os
import socket
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest
from serving import Served, longrun_serve, serve_command

from longrun.store import runs
from longrun.store.db import Store

RUN_NAME = "served-run"
EVIL = "http://evil.example"


@pytest.fixture
def served(store: Store, tmp_path: Path) -> Iterator[Served]:
    """`longrun serve --port 0 --token-file F` on a store with one run."""
    runs.insert_run(
        store,
        run_id="s1",
        name=RUN_NAME,
        goal="Be served.",
        spec={"name": RUN_NAME},
        spec_path=None,
        workspace="/nowhere/s1",
        branch="longrun/s1",
        state="paused",
    )
    with longrun_serve(store.home, tmp_path, "--token-file", str(tmp_path / "token")) as server:
        yield server


def cookie_of(server: Served) -> str:
    """The cookie the printed URL sets, as a `Cookie` header value."""
    response = httpx.get(server.url, timeout=30)
    assert response.status_code == 200, response.text
    return f"longrun-serve-{server.port}={response.cookies[f'longrun-serve-{server.port}']}"


def handshake_status(url: str, headers: dict[str, str]) -> int:
    """The status of a websocket handshake: 101 when it is accepted (and the socket answers a ping)."""

    async def attempt() -> int:
        async with aiohttp.ClientSession() as session:
            try:
                async with session.ws_connect(url, headers=headers) as ws:
                    await ws.send_json(["ping", "hello"])
                    async with asyncio.timeout(30):
                        while True:
                            message = await ws.receive()
                            if message.type == aiohttp.WSMsgType.TEXT and message.json() == ["pong", "hello"]:
                                return 101
            except aiohttp.WSServerHandshakeError as exc:
                return exc.status

    return asyncio.run(attempt())


def test_the_page_needs_the_token(served: Served) -> None:
    """Without the token, or with a wrong one, the page and its assets are refused with a one-line
    403 and no cookie; the printed URL is let in."""
    for path in ("/", "/?token=not-the-token-at-all", "/static/js/textual.js"):
        url = served.base + path
        response = httpx.get(url, timeout=30)
        assert response.status_code == 403, url
        assert response.text.count("\n") == 1 and "token" in response.text
        assert "set-cookie" not in response.headers
    assert httpx.get(served.url, timeout=30).status_code == 200


def test_the_printed_url_sets_a_strict_cookie_that_lets_the_assets_in(served: Served) -> None:
    response = httpx.get(served.url, timeout=30)
    assert response.status_code == 200
    set_cookie = response.headers["set-cookie"]
    assert set_cookie.startswith(f"longrun-serve-{served.port}={served.token};")
    assert "HttpOnly" in set_cookie and "SameSite=Strict" in set_cookie
    assert f"ws://127.0.0.1:{served.port}/ws" in response.text

    asset = f"{served.base}/static/js/textual.js"
    assert httpx.get(asset, headers={"Cookie": cookie_of(served)}, timeout=30).status_code == 200
    wrong = {"Cookie": f"longrun-serve-{served.port}=not-the-token-at-all"}
    assert httpx.get(asset, headers=wrong, timeout=30).status_code == 403


def test_a_rebound_host_name_is_refused_even_with_the_token(served: Served) -> None:
    """A page on a name that resolves to 127.0.0.1 (DNS rebinding) sends its own name as Host."""
    response = httpx.get(served.url, headers={"Host": f"evil.example:{served.port}"}, timeout=30)
    assert response.status_code == 403 and "Host" in response.text


def test_a_websocket_from_another_origin_is_refused(served: Served) -> None:
    """The websocket is accepted only with the cookie and the server's own Origin (either loopback
    name); a foreign Origin or none is refused even with the cookie, and no cookie is refused."""
    cookie = cookie_of(served)
    ws = f"ws://127.0.0.1:{served.port}/ws"
    assert handshake_status(ws, {"Cookie": cookie, "Origin": EVIL}) == 403
    assert handshake_status(ws, {"Cookie": cookie, "Origin": f"{EVIL}:{served.port}"}) == 403
    assert handshake_status(ws, {"Cookie": cookie}) == 403
    assert handshake_status(ws, {"Origin": served.base}) == 403
    assert handshake_status(ws, {"Cookie": cookie, "Origin": served.base}) == 101
    localhost = f"localhost:{served.port}"
    assert handshake_status(ws, {"Cookie": cookie, "Origin": f"http://{localhost}", "Host": localhost}) == 101


def test_a_post_from_another_origin_is_refused(served: Served) -> None:
    cookie = cookie_of(served)
    refused = httpx.post(f"{served.base}/", headers={"Cookie": cookie, "Origin": EVIL}, timeout=30)
    assert refused.status_code == 403 and "Origin" in refused.text
    # From its own origin it gets past the guard, to a route that takes no POST.
    assert httpx.post(f"{served.base}/", headers={"Cookie": cookie, "Origin": served.base}).status_code == 405


def test_ctrl_c_stops_it_and_its_open_dashboards_cleanly(served: Served) -> None:
    """With a tab's websocket open (a dashboard process running), Ctrl-C ends the server with
    exit 0, no traceback, and no dashboard left behind."""
    cookie = cookie_of(served)

    async def interrupt_with_a_tab_open() -> tuple[int, bytes]:
        async with aiohttp.ClientSession() as session:
            headers = {"Cookie": cookie, "Origin": served.base}
            tab = f"ws://127.0.0.1:{served.port}/ws?width=100&height=30"
            async with session.ws_connect(tab, headers=headers) as ws:
                drawn = b""
                async with asyncio.timeout(60):
                    while RUN_NAME.encode() not in drawn:
                        message = await ws.receive()
                        assert message.type == aiohttp.WSMsgType.BINARY, message
                        drawn += message.data
                code = await asyncio.to_thread(served.interrupt)
                return code, drawn

    code, _ = asyncio.run(interrupt_with_a_tab_open())
    stderr = served.stderr.read_text()
    assert code == 0, stderr
    assert "Traceback" not in stderr, stderr
    assert served.stdout.read_text().rstrip().endswith("longrun serve: stopped")
    with pytest.raises(ProcessLookupError):
        os.killpg(served.proc.pid, 0)


def test_the_token_file_is_written_once_and_read_at_the_next_start(store: Store, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    with longrun_serve(store.home, tmp_path, "--token-file", str(token_file)) as first:
        written = token_file.read_text()
    assert written == first.token + "\n" and len(first.token) >= 32
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    with longrun_serve(store.home, tmp_path, "--token-file", str(token_file)) as second:
        assert second.token == first.token
        assert httpx.get(second.url, timeout=30).status_code == 200


def test_without_a_token_file_every_start_makes_a_new_token(store: Store, tmp_path: Path) -> None:
    with longrun_serve(store.home, tmp_path) as first:
        pass
    with longrun_serve(store.home, tmp_path) as second:
        assert second.token != first.token


def serve_once(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(serve_command(home, *args), capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(
    ("content", "mode", "says"),
    [
        ("", 0o600, "empty"),
        ("\n", 0o600, "empty"),
        ("short\n", 0o600, "16 or more"),
        ("a-token-long-enough-to-use\n", 0o644, "chmod 600"),
    ],
)
def test_a_bad_token_file_is_one_line_and_exit_2(
    store: Store, tmp_path: Path, content: str, mode: int, says: str
) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(content)
    token_file.chmod(mode)
    proc = serve_once(store.home, "--port", "0", "--token-file", str(token_file))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and says in proc.stderr and str(token_file) in proc.stderr
    assert proc.stdout == ""


def test_an_unreadable_token_file_is_exit_2(store: Store, tmp_path: Path) -> None:
    missing_dir = tmp_path / "no" / "such" / "dir"
    proc = serve_once(store.home, "--port", "0", "--token-file", str(missing_dir / "token"))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "--token-file" in proc.stderr
    assert proc.stdout == ""


@pytest.mark.parametrize("port", ["70000", "-1", "eighty"])
def test_a_bad_port_is_a_usage_error(store: Store, port: str) -> None:
    proc = serve_once(store.home, "--port", port)
    assert proc.returncode == 2
    assert proc.stderr.splitlines()[-1].startswith("longrun serve: error: argument --port")
    assert proc.stdout == ""


def test_a_port_in_use_is_one_line_and_nothing_started(store: Store) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        proc = serve_once(store.home, "--port", str(taken.getsockname()[1]))
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and "cannot listen" in proc.stderr
    assert proc.stdout == ""


def test_another_host_than_loopback_warns_that_the_network_can_reach_it(store: Store, tmp_path: Path) -> None:
    with longrun_serve(store.home, tmp_path, "--host", "0.0.0.0") as server:
        warning = server.stderr.read_text()
        local = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{local}/", timeout=30).status_code == 403
        assert httpx.get(f"{local}/?token={server.token}", timeout=30).status_code == 200
    assert warning.count("\n") == 1
    assert warning.startswith("longrun serve: warning:")
    assert "reachable from the network" in warning and "approve tool calls" in warning


def test_loopback_does_not_warn(served: Served) -> None:
    assert served.stderr.read_text() == ""
    assert served.url.startswith(f"http://127.0.0.1:{served.port}/?token=")
