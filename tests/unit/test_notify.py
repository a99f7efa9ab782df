"""Webhook notifications: what arrives, what is retried, and that a bad webhook never holds anyone up.

Every receiver is a real HTTP server (or a raw socket) on loopback; nothing is mocked. Whether
`send` blocks is shown by ordering, not timing: receivers that hold their answer until the test
lets go would deadlock (and then fail) a `send` that waited for them.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from longrun.scheduler.supervisor.notify import Notifier, notify_once

WAIT_S = 10.0
"""How long a test waits for something that should happen at once; only reached on failure."""


@dataclass(frozen=True)
class Request:
    path: str
    headers: Message
    body: bytes

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


class Receiver:
    """A loopback webhook that records each POST, then answers with the next scripted status (200 after).

    With `hold`, each request is recorded on arrival but answered only after `release()`.
    """

    def __init__(self, statuses: list[int], *, hold: bool) -> None:
        self.statuses = list(statuses)
        self.requests: list[Request] = []
        self.changed = threading.Condition()
        self.released = threading.Event()
        if not hold:
            self.released.set()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with receiver.changed:
                    receiver.requests.append(Request(self.path, self.headers, body))
                    status = receiver.statuses.pop(0) if receiver.statuses else 200
                    receiver.changed.notify_all()
                receiver.released.wait(WAIT_S)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def wait_for(self, count: int) -> bool:
        """Wait until `count` requests have arrived."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.requests) >= count, WAIT_S)

    def release(self) -> None:
        self.released.set()

    def stop(self) -> None:
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


class BlackHole:
    """Accepts connections and reads whatever arrives, but never answers."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}/hook"
        self.connections: list[socket.socket] = []
        self.closed_by_client = 0
        self.changed = threading.Condition()
        self.stopping = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self.changed:
                self.connections.append(conn)
                self.changed.notify_all()
            threading.Thread(target=self._drain, args=(conn,), daemon=True).start()

    def _drain(self, conn: socket.socket) -> None:
        try:
            while conn.recv(65536):
                pass
        except OSError:
            return
        with self.changed:
            if not self.stopping.is_set():
                self.closed_by_client += 1

    def wait_for(self, count: int) -> bool:
        """Wait until `count` connections have been accepted."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.connections) >= count, WAIT_S)

    def stop(self) -> None:
        self.stopping.set()
        self.listener.close()
        with self.changed:
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()


@pytest.fixture
def receiver() -> Iterator[Callable[..., Receiver]]:
    """Start loopback webhooks: `receiver(statuses=[500, 500], hold=False)`."""
    started: list[Receiver] = []

    def start(statuses: list[int] | None = None, *, hold: bool = False) -> Receiver:
        started.append(Receiver(statuses or [], hold=hold))
        return started[-1]

    yield start
    for each in started:
        each.stop()


@pytest.fixture
def black_hole() -> Iterator[BlackHole]:
    hole = BlackHole()
    yield hole
    hole.stop()


@pytest.fixture
def dead_url() -> str:
    """A URL on a loopback port nobody listens on."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook?token=sekrit-token"


@pytest.fixture
def notify_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="longrun.scheduler.supervisor.notify")
    return caplog


def test_a_notification_arrives_with_the_documented_body_and_headers(
    receiver: Callable[..., Receiver], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LONGRUN_TEST_SECRET", "env-secret-value")
    hook = receiver()
    notifier = Notifier(hook.url + "/hook")
    before = datetime.now(UTC)

    notifier.send("budget_warning", "run-1", "nightly", {"cap": "usd", "spent": 4.0, "limit": 5.0})
    notifier.close(wait_s=WAIT_S)

    assert (notifier.delivered, notifier.failed) == (1, 0)
    [request] = hook.requests
    assert request.path == "/hook"
    assert request.headers.get_all("Content-Type") == ["application/json"]
    assert request.headers.get_all("User-Agent") == ["longrun"]
    body = request.json
    assert set(body) == {"source", "kind", "run_id", "run_name", "at", "data"}
    assert body["source"] == "longrun"
    assert body["kind"] == "budget_warning"
    assert (body["run_id"], body["run_name"]) == ("run-1", "nightly")
    assert body["data"] == {"cap": "usd", "spent": 4.0, "limit": 5.0}
    at = datetime.fromisoformat(body["at"])
    assert at.utcoffset() == timedelta(0)
    assert before - timedelta(seconds=1) <= at <= datetime.now(UTC)
    assert b"env-secret-value" not in request.body
    assert "env-secret-value" not in str(request.headers)


def test_the_body_is_fixed_when_send_returns(receiver: Callable[..., Receiver]) -> None:
    hook = receiver(hold=True)
    notifier = Notifier(hook.url, timeout_s=WAIT_S, retries=1)
    notifier.send("budget_warning", "run-1", "nightly", {"n": 0})
    assert hook.wait_for(1)  # the first is in flight, so the second waits in the queue

    data: dict[str, Any] = {"n": 1, "when": datetime(2025, 1, 2, tzinfo=UTC)}
    notifier.send("budget_stop", "run-1", "nightly", data)
    data["n"] = 99
    hook.release()
    notifier.close(wait_s=WAIT_S)

    assert [r.json["data"] for r in hook.requests] == [
        {"n": 0},
        {"n": 1, "when": "2025-01-02 00:00:00+00:00"},
    ]


def test_send_returns_before_the_webhook_answers(receiver: Callable[..., Receiver]) -> None:
    hook = receiver(hold=True)
    notifier = Notifier(hook.url, timeout_s=WAIT_S, retries=1)

    notifier.send("breaker_tripped", "run-1", "nightly", {"breaker": "same_error"})
    # The receiver answers only after release() below (or after WAIT_S on its own): a send that
    # waited for the answer would be back only once the notification had been delivered.
    assert hook.wait_for(1)
    assert notifier.delivered == 0
    hook.release()
    notifier.close(wait_s=WAIT_S)

    assert (notifier.delivered, notifier.failed) == (1, 0)


def test_a_server_error_is_retried_until_delivered(receiver: Callable[..., Receiver]) -> None:
    hook = receiver([500, 500])
    notifier = Notifier(hook.url, retries=3, backoff_s=0.01)

    notifier.send("budget_stop", "run-1", "nightly", {"cap": "usd"})
    notifier.close(wait_s=WAIT_S)

    assert len(hook.requests) == 3
    assert len({r.body for r in hook.requests}) == 1
    assert (notifier.delivered, notifier.failed) == (1, 0)


def test_retries_stop_at_the_limit(
    receiver: Callable[..., Receiver], notify_log: pytest.LogCaptureFixture
) -> None:
    hook = receiver([429, 503, 502, 500])
    notifier = Notifier(hook.url, retries=3, backoff_s=0.01)

    notifier.send("budget_stop", "run-1", "nightly", {})
    notifier.close(wait_s=WAIT_S)

    assert len(hook.requests) == 3
    assert (notifier.delivered, notifier.failed) == (0, 1)
    assert "HTTP 502 (after 3 attempt(s))" in notify_log.text


def test_a_client_error_is_not_retried(receiver: Callable[..., Receiver]) -> None:
    hook = receiver([400])
    notifier = Notifier(hook.url, retries=3, backoff_s=0.01)

    notifier.send("budget_warning", "run-1", "nightly", {})
    notifier.close(wait_s=WAIT_S)

    assert len(hook.requests) == 1
    assert (notifier.delivered, notifier.failed) == (0, 1)


def test_a_dead_webhook_is_counted_failed_and_logged_without_its_token(
    dead_url: str, notify_log: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(dead_url, retries=2, backoff_s=0.01)

    notifier.send("budget_warning", "run-1", "nightly", {})
    notifier.close(wait_s=WAIT_S)

    assert (notifier.delivered, notifier.failed) == (0, 1)
    assert "ConnectError" in notify_log.text
    assert "(after 2 attempt(s))" in notify_log.text
    assert dead_url.split("?")[0] in notify_log.text
    assert "sekrit-token" not in notify_log.text


def test_close_cuts_short_the_backoff_for_a_dead_webhook(
    dead_url: str, notify_log: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(dead_url, retries=2, backoff_s=60.0)

    notifier.send("budget_warning", "run-1", "nightly", {})
    # The first attempt fails at once and the second is a minute away: a send that waited
    # would not be back yet, and would have counted the failure.
    assert notifier.failed == 0
    notifier.close(wait_s=0.2)

    assert (notifier.delivered, notifier.failed) == (0, 1)
    assert "not delivered within 0.2s of close" in notify_log.text
    assert "sekrit-token" not in notify_log.text


def test_a_black_holed_webhook_times_out_and_counts_failed(
    black_hole: BlackHole, notify_log: pytest.LogCaptureFixture
) -> None:
    notifier = Notifier(black_hole.url, timeout_s=0.5, retries=2, backoff_s=0.01)

    notifier.send("breaker_tripped", "run-1", "nightly", {})
    notifier.close(wait_s=60.0)

    assert (notifier.delivered, notifier.failed) == (0, 1)
    assert len(black_hole.connections) == 2
    assert "ReadTimeout: timed out (after 2 attempt(s))" in notify_log.text


def test_close_gives_up_on_a_request_still_in_flight(black_hole: BlackHole) -> None:
    notifier = Notifier(black_hole.url, timeout_s=60.0, retries=1)
    notifier.send("breaker_tripped", "run-1", "nightly", {})
    assert black_hole.wait_for(1)

    notifier.close(wait_s=0.2)

    # The client still holds the connection open: close did not wait out the 60 s timeout.
    assert black_hole.closed_by_client == 0
    assert (notifier.delivered, notifier.failed) == (0, 1)
    # When the abandoned request does end, it is not counted a second time.
    black_hole.stop()
    assert notifier._thread is not None
    notifier._thread.join(WAIT_S)
    assert not notifier._thread.is_alive()
    assert (notifier.delivered, notifier.failed) == (0, 1)


def test_a_full_queue_drops_the_oldest(receiver: Callable[..., Receiver]) -> None:
    hook = receiver(hold=True)
    notifier = Notifier(hook.url, timeout_s=WAIT_S, retries=1, max_queued=2)
    notifier.send("budget_warning", "run-1", "nightly", {"n": 0})
    assert hook.wait_for(1)  # n=0 is in flight, out of the queue

    for n in range(1, 5):
        notifier.send("budget_warning", "run-1", "nightly", {"n": n})
    assert notifier.failed == 2
    hook.release()
    notifier.close(wait_s=WAIT_S)

    assert [r.json["data"]["n"] for r in hook.requests] == [0, 3, 4]
    assert (notifier.delivered, notifier.failed) == (3, 2)


def test_send_after_close_is_counted_failed(receiver: Callable[..., Receiver]) -> None:
    hook = receiver()
    notifier = Notifier(hook.url)
    notifier.send("budget_warning", "run-1", "nightly", {})
    notifier.close(wait_s=WAIT_S)

    notifier.send("budget_warning", "run-1", "nightly", {})
    notifier.close(wait_s=WAIT_S)

    assert len(hook.requests) == 1
    assert (notifier.delivered, notifier.failed) == (1, 1)


def test_notify_once_reports_whether_it_was_delivered(receiver: Callable[..., Receiver]) -> None:
    ok = receiver()
    refused = receiver([400])

    assert notify_once(ok.url, "budget_stop", "run-1", "nightly", {"cap": "usd"}, wait_s=WAIT_S) is True
    assert notify_once(refused.url, "budget_stop", "run-1", "nightly", {}, wait_s=WAIT_S) is False
    assert notify_once(None, "budget_stop", "run-1", "nightly", {}) is False

    assert [r.json["data"] for r in ok.requests] == [{"cap": "usd"}]
    assert len(refused.requests) == 1


def test_without_a_webhook_nothing_is_sent_or_started() -> None:
    notifier = Notifier(None)
    notifier.send("budget_warning", "run-1", "nightly", {})
    notifier.close(wait_s=0.0)

    assert notifier._thread is None
    assert (notifier.delivered, notifier.failed) == (0, 0)
