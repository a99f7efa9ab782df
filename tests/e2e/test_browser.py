"""The dashboard in a browser: `longrun serve` driven in a real headless Chromium, which opens the
URL it prints (the token in it) and approves with the keys a person would press.

Chromium is driven over the Chrome DevTools Protocol with aiohttp's websocket client (aiohttp
comes with textual-serve). What the page shows is read from its xterm.js terminal; what the
keys did is read from the store.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from serving import longrun_serve, stop_group, wait_until
from support import chromium_or_skip

from longrun.store import runs
from longrun.store.db import Store

RUN_NAME = "browser-check"
BREAKER = "no_progress_sessions"
COMMENT = "lgtm from chromium"
VIEWPORT = (1280, 800)

# The page asks Google Fonts for Roboto Mono; the test must not wait on the internet for it.
BLOCKED_URLS = ["*://fonts.googleapis.com/*", "*://fonts.gstatic.com/*"]

# xterm.js's public buffer API: the visible rows of the terminal as text.
READ_SCREEN = """function () {
    const buffer = this.buffer.active;
    const rows = [];
    for (let y = 0; y < this.rows; y++) {
        const line = buffer.getLine(buffer.viewportY + y);
        rows.push(line ? line.translateToString(true) : "");
    }
    return rows.join("\\n");
}"""

# Among the instances of one class, the one holding an xterm.js terminal (textual-serve's own).
TERMINAL_OF = """function () {
    const holder = this.find((o) => o.terminal && o.terminal.buffer && o.terminal.buffer.active);
    return holder ? holder.terminal : undefined;
}"""


def drawn(screen: str) -> str:
    """A screen for a failure message: its rows that hold something."""
    return "\n".join(row for row in screen.splitlines() if row.strip())


@pytest.fixture
def waiting_store(store: Store) -> tuple[Store, int]:
    """A store with one run stopped by a tripped breaker, waiting on its reset: (store, approval id)."""
    run = runs.insert_run(
        store,
        run_id="b1",
        name=RUN_NAME,
        goal="Be seen in a browser.",
        spec={"name": RUN_NAME},
        spec_path=None,
        workspace="/nowhere/b1",
        branch="longrun/b1",
        state="tripped",
    )
    with store.writing() as conn:
        runs.set_breaker(conn, run.id, BREAKER, "open", "3 sessions without progress")
        approval_id = runs.add_approval(conn, run.id, "breaker_reset", {"breaker": BREAKER})
    return store, approval_id


@pytest.fixture
def served_dashboard(waiting_store: tuple[Store, int], tmp_path: Path) -> Iterator[str]:
    """`longrun serve --port 0 --no-daemon` on the store: the URL it prints, token and all."""
    store, _ = waiting_store
    with longrun_serve(store.home, tmp_path) as served:
        yield served.url


@pytest.fixture
def devtools_port(tmp_path: Path) -> Iterator[int]:
    """A headless Chromium with a 1280×800 window: the port of its DevTools endpoint."""
    chromium = chromium_or_skip()
    profile = tmp_path / "chromium"
    log = tmp_path / "chromium.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                chromium,
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--remote-debugging-port=0",
                f"--user-data-dir={profile}",
                f"--window-size={VIEWPORT[0]},{VIEWPORT[1]}",
                "about:blank",
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        active = profile / "DevToolsActivePort"
        first_line = wait_until(
            lambda: active.exists() and active.read_text().split("\n", 1)[0].strip(), "chromium", proc, log
        )
        yield int(first_line)
    finally:
        stop_group(proc)


@dataclass(frozen=True)
class Key:
    """One key as `Input.dispatchKeyEvent` wants it."""

    key: str
    code: str
    key_code: int
    text: str = ""
    modifiers: int = 0

    @classmethod
    def char(cls, char: str) -> Key:
        """A printable letter or a space, typed as is."""
        if char == " ":
            return cls(" ", "Space", 32, " ")
        return cls(char, f"Key{char.upper()}", ord(char.upper()), char)

    @classmethod
    def ctrl(cls, letter: str) -> Key:
        return cls(letter, f"Key{letter.upper()}", ord(letter.upper()), modifiers=2)


class Page:
    """One Chromium tab over the DevTools Protocol: calls in order, events ignored."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.terminal: str | None = None

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        call_id = next(self.ids)
        await self.ws.send_json({"id": call_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json()
            if message.get("id") == call_id:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return dict(message["result"])

    async def properties(self, object_id: str) -> dict[str, Any]:
        return await self.call("Runtime.getProperties", objectId=object_id, ownProperties=True)

    async def call_on(self, object_id: str, function: str, by_value: bool = False) -> dict[str, Any]:
        result = await self.call(
            "Runtime.callFunctionOn", objectId=object_id, functionDeclaration=function, returnByValue=by_value
        )
        return dict(result["result"])

    async def find_terminal(self) -> str | None:
        """The object id of textual-serve's xterm.js terminal, once the page has made it.

        textual-serve keeps its terminal in a closure and draws it on a canvas, so the DOM holds
        no text. The `window.onresize` handler it installs closes over its terminal class; the
        live instances of each class in that closure are found with `Runtime.queryObjects`.
        """
        handler = await self.call("Runtime.evaluate", expression="window.onresize")
        handler_id = handler["result"].get("objectId")
        if handler_id is None:
            return None
        internal = (await self.properties(handler_id)).get("internalProperties", [])
        scopes = next((p["value"]["objectId"] for p in internal if p["name"] == "[[Scopes]]"), None)
        if scopes is None:
            return None
        for scope in (await self.properties(scopes))["result"]:
            if scope["value"].get("description") != "Closure":
                continue
            for variable in (await self.properties(scope["value"]["objectId"]))["result"]:
                value = variable.get("value", {})
                if value.get("type") != "function" or not value.get("description", "").startswith("class"):
                    continue
                prototype = await self.call_on(value["objectId"], "function () { return this.prototype; }")
                instances = await self.call("Runtime.queryObjects", prototypeObjectId=prototype["objectId"])
                terminal = await self.call_on(instances["objects"]["objectId"], TERMINAL_OF)
                if terminal.get("objectId"):
                    return str(terminal["objectId"])
        return None

    async def screen(self) -> str:
        """The text on the terminal's screen, one line a row."""
        assert self.terminal is not None
        return str((await self.call_on(self.terminal, READ_SCREEN, by_value=True))["value"])

    async def wait_for_text(self, *texts: str, within: float = 15) -> str:
        """The screen once every one of `texts` is on it, finding the terminal first."""
        shown = ""
        try:
            async with asyncio.timeout(within):
                while True:
                    if self.terminal is None:
                        with contextlib.suppress(RuntimeError):  # the page is still loading
                            self.terminal = await self.find_terminal()
                    if self.terminal is not None:
                        shown = await self.screen()
                        if all(text in shown for text in texts):
                            return shown
                    await asyncio.sleep(0.2)
        except TimeoutError:
            where = (
                "the page made no xterm.js terminal"
                if self.terminal is None
                else f"the screen:\n{drawn(shown)}"
            )
            raise AssertionError(f"{texts} not on the screen within {within:.0f} s; {where}") from None

    async def press(self, key: Key) -> None:
        params: dict[str, Any] = {
            "key": key.key,
            "code": key.code,
            "windowsVirtualKeyCode": key.key_code,
            "modifiers": key.modifiers,
        }
        await self.call(
            "Input.dispatchKeyEvent", type="keyDown", **params, **({"text": key.text} if key.text else {})
        )
        await self.call("Input.dispatchKeyEvent", type="keyUp", **params)

    async def press_and_settle(self, key: Key, within: float = 5) -> str:
        """Press a key, then wait until the screen has changed and holds still: what it shows."""
        before = await self.screen()
        await self.press(key)
        shown = before
        try:
            async with asyncio.timeout(within):
                while shown == before:
                    await asyncio.sleep(0.1)
                    shown = await self.screen()
                while True:
                    await asyncio.sleep(0.3)
                    again = await self.screen()
                    if again == shown:
                        return shown
                    shown = again
        except TimeoutError:
            if shown == before:
                raise AssertionError(
                    f"pressing {key.key!r} changed nothing on the screen:\n{drawn(shown)}"
                ) from None
            return shown

    async def screenshot(self) -> bytes:
        """The tab as a PNG."""
        shot = await self.call("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])


@dataclass(frozen=True)
class Seen:
    """What the tab showed on the way: the first screen, the approve modal, a screenshot."""

    first: str
    modal: str
    png: bytes


async def page_target(devtools_port: int, session: aiohttp.ClientSession) -> str:
    """The websocket URL of the browser's one tab."""
    async with session.get(f"http://127.0.0.1:{devtools_port}/json/list") as response:
        targets = await response.json()
    return next(str(t["webSocketDebuggerUrl"]) for t in targets if t["type"] == "page")


def wait_for_approval_state(store: Store, approval_id: int, timeout: float = 20) -> runs.ApprovalView:
    """The approval once it is no longer pending, or as it is when `timeout` runs out."""
    deadline = time.monotonic() + timeout
    approval = runs.get_approval(store, approval_id)
    while approval.state == "pending" and time.monotonic() < deadline:
        time.sleep(0.2)
        approval = runs.get_approval(store, approval_id)
    return approval


async def open_approve_and_confirm(devtools_port: int, url: str) -> Seen:
    """Open the dashboard in the tab, then approve the first pending approval with the keys a
    person would press."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(await page_target(devtools_port, session), max_msg_size=0) as ws:
            page = Page(ws)
            width, height = VIEWPORT
            await page.call(
                "Emulation.setDeviceMetricsOverride",
                width=width,
                height=height,
                deviceScaleFactor=1,
                mobile=False,
            )
            await page.call("Network.enable")
            await page.call("Network.setBlockedURLs", urls=BLOCKED_URLS)
            await page.call("Page.navigate", url=url)
            first = await page.wait_for_text(RUN_NAME, "tripped")
            png = await page.screenshot()

            await page.call(
                "Runtime.evaluate", expression="document.querySelector('.xterm-helper-textarea').focus()"
            )
            await page.press_and_settle(Key.char("i"))
            await page.press_and_settle(Key.char("a"))
            for char in COMMENT:
                await page.press(Key.char(char))
            modal = await page.wait_for_text(COMMENT, within=5)
            await page.press(Key.ctrl("s"))
            return Seen(first, modal, png)


@pytest.mark.timeout(60)
def test_the_dashboard_comes_up_in_chromium_and_approves_with_keys(
    devtools_port: int, waiting_store: tuple[Store, int], served_dashboard: str, tmp_path: Path
) -> None:
    """In a 1280×800 tab the runs list shows the run; `i` opens the inbox with the first pending
    approval selected, `a` opens the approve modal with its comment input focused, and `ctrl+s`
    approves it, as the store then says."""
    store, approval_id = waiting_store

    seen = asyncio.run(open_approve_and_confirm(devtools_port, served_dashboard))
    (tmp_path / "dashboard.png").write_bytes(seen.png)

    assert any(RUN_NAME in line and "tripped" in line for line in seen.first.splitlines()), drawn(seen.first)
    approval = wait_for_approval_state(store, approval_id)
    assert approval.state == "approved", (
        f"approval {approval_id} is {approval.state}; the modal was:\n{drawn(seen.modal)}"
    )
    assert approval.comment == COMMENT
    assert runs.breakers(store, approval.run_id)[BREAKER].state == "half_open"
