"""Webhook notifications for budget warnings, budget stops and breaker trips.

A notification is a small JSON body POSTed to the run's `[notify] webhook_url`. Delivery happens on
one background thread with retries and a short timeout, so a dead, slow or black-holed webhook never
blocks or fails the caller (a session process or the supervisor): `send` only queues, and every
error is logged and counted, never raised.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

import httpx

log = logging.getLogger(__name__)

MAX_QUEUED = 100
"""Notifications waiting to go out; past this the oldest is dropped (and counted failed)."""

HEADERS = {"Content-Type": "application/json", "User-Agent": "longrun"}


class NotificationKind(StrEnum):
    """The kinds longrun sends; `Notifier.send` takes any string, these are the ones in use."""

    budget_warning = "budget_warning"
    """A cap's warning fraction was crossed."""
    budget_stop = "budget_stop"
    """A hard cap ended the session."""
    breaker_tripped = "breaker_tripped"


@dataclass(frozen=True)
class Notification:
    """One queued notification: the body is serialized at `send` time, so later edits don't leak in."""

    kind: str
    run_id: str
    body: bytes


def notification_body(kind: str, run_id: str, run_name: str, data: dict[str, Any]) -> bytes:
    """The JSON body, with stable field names; values JSON cannot hold are sent as their `str`."""
    body = {
        "source": "longrun",
        "kind": kind,
        "run_id": run_id,
        "run_name": run_name,
        "at": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "data": data,
    }
    return json.dumps(body, default=str).encode()


def url_for_logs(url: str) -> str:
    """The URL without user info, query or fragment: any of them may carry a token."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        return "<invalid webhook url>"
    return f"{parts.scheme}://{host}{port}{parts.path}"


class Notifier:
    """Sends notifications to one webhook from a lazily started daemon thread.

    `send` never blocks and never raises; `close` gives queued notifications a bounded time to
    go out. A closed notifier stays closed: later sends are counted failed.
    """

    def __init__(
        self,
        webhook_url: str | None,
        *,
        timeout_s: float = 3.0,
        retries: int = 3,
        backoff_s: float = 0.5,
        max_queued: int = MAX_QUEUED,
    ) -> None:
        self.webhook_url = webhook_url
        self.timeout_s = timeout_s
        self.retries = max(1, retries)
        """Attempts per notification, the first included."""
        self.backoff_s = backoff_s
        self.max_queued = max(1, max_queued)
        self._safe_url = url_for_logs(webhook_url) if webhook_url else ""
        self._secrets = self._url_secrets(webhook_url) if webhook_url else []
        self._lock = threading.Condition()
        self._queue: deque[Notification] = deque()
        self._in_flight: Notification | None = None
        self._closing = False
        self._stop = threading.Event()
        """Set when `close` runs out of time: the thread abandons its work and exits."""
        self._thread: threading.Thread | None = None
        self._delivered = 0
        self._failed = 0

    @property
    def delivered(self) -> int:
        with self._lock:
            return self._delivered

    @property
    def failed(self) -> int:
        """Notifications given up on: errors, drops from a full queue, and those abandoned at close."""
        with self._lock:
            return self._failed

    def send(self, kind: str, run_id: str, run_name: str, data: dict[str, Any]) -> None:
        """Queue one notification and return at once (no-op when webhook_url is None)."""
        if self.webhook_url is None:
            return
        try:
            item = Notification(kind, run_id, notification_body(kind, run_id, run_name, data))
        except Exception as exc:  # e.g. a circular `data`: count it, never fail the caller
            self._give_up(kind, run_id, f"cannot serialize: {type(exc).__name__}: {exc}")
            return
        with self._lock:
            if self._closing:
                dropped: Notification | None = item
            else:
                dropped = self._queue.popleft() if len(self._queue) >= self.max_queued else None
                self._queue.append(item)
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name="longrun-notify", daemon=True)
                    self._thread.start()
                self._lock.notify()
        if dropped is item:
            self._give_up(kind, run_id, "notifier already closed")
        elif dropped is not None:
            self._give_up(
                dropped.kind, dropped.run_id, f"dropped as the oldest of a full queue ({self.max_queued})"
            )

    def close(self, wait_s: float = 5.0) -> None:
        """Give queued notifications up to wait_s to go out, then stop the sender thread; never raises.

        What has not gone out by then, including a request still in flight, is counted failed, so
        `delivered + failed` accounts for every `send` once `close` returns.
        """
        try:
            with self._lock:
                self._closing = True
                self._lock.notify_all()
                thread = self._thread
            if thread is None:
                return
            thread.join(max(0.0, wait_s))
            if not thread.is_alive():
                return
            self._stop.set()
            with self._lock:
                abandoned = list(self._queue)
                if self._in_flight is not None:
                    abandoned.insert(0, self._in_flight)
                self._queue.clear()
                self._in_flight = None
                self._lock.notify_all()
            for item in abandoned:
                self._give_up(item.kind, item.run_id, f"not delivered within {wait_s:g}s of close")
        except Exception:  # close runs on the way out of a session: it must not add a failure
            log.warning("closing the webhook notifier failed", exc_info=True)

    # The sender thread.

    def _run(self) -> None:
        """Deliver queued notifications one at a time until closed and drained, or stopped."""
        try:
            client: httpx.Client | None = httpx.Client(timeout=self.timeout_s, headers=HEADERS)
        except Exception as exc:
            log.warning("cannot make an HTTP client for webhook notifications: %s", self._scrub(exc))
            client = None
        try:
            while True:
                with self._lock:
                    while not self._queue and not self._closing:
                        self._lock.wait()
                    if self._stop.is_set() or not self._queue:
                        return
                    item = self._in_flight = self._queue.popleft()
                delivered, attempts, reason = self._deliver(client, item)
                with self._lock:
                    if self._in_flight is not item:
                        continue  # `close` gave up on it and counted it already
                    self._in_flight = None
                    if delivered:
                        self._delivered += 1
                if not delivered:
                    self._give_up(item.kind, item.run_id, f"{reason} (after {attempts} attempt(s))")
        except Exception:  # a bug here must not take the caller down: log it and stop sending
            log.warning("the webhook notifier thread failed", exc_info=True)
        finally:
            if client is not None:
                client.close()

    def _deliver(self, client: httpx.Client | None, item: Notification) -> tuple[bool, int, str]:
        """POST one notification with retries: (delivered, attempts made, why it failed)."""
        if client is None:
            return False, 0, "no HTTP client"
        assert self.webhook_url is not None
        reason = ""
        for attempt in range(1, self.retries + 1):
            if attempt > 1 and self._stop.wait(self.backoff_s * 2 ** (attempt - 2)):
                return False, attempt - 1, f"stopped by close; last error: {reason}"
            try:
                response = client.post(self.webhook_url, content=item.body)
            except httpx.UnsupportedProtocol as exc:  # a bad URL does not get better by retrying
                return False, attempt, self._scrub(exc)
            except httpx.TransportError as exc:  # connection errors and timeouts
                reason = self._scrub(exc)
                continue
            except Exception as exc:
                return False, attempt, self._scrub(exc)
            status = response.status_code
            if 200 <= status < 300:
                return True, attempt, ""
            reason = f"HTTP {status}"
            if status != 429 and status < 500:
                return False, attempt, reason
        return False, self.retries, reason

    def _give_up(self, kind: str, run_id: str, reason: str) -> None:
        with self._lock:
            self._failed += 1
        log.warning(
            "webhook notification %s for run %s to %s failed: %s", kind, run_id, self._safe_url, reason
        )

    @staticmethod
    def _url_secrets(url: str) -> list[str]:
        """Parts of the URL that must not reach a log line."""
        try:
            parts = urlsplit(url)
            secrets = [url, parts.query, parts.fragment, parts.password or "", parts.username or ""]
        except ValueError:
            secrets = [url]
        return sorted((s for s in secrets if s), key=len, reverse=True)

    def _scrub(self, exc: BaseException) -> str:
        """An exception as text, with the URL's secret parts replaced by the URL fit for logs."""
        text = f"{type(exc).__name__}: {exc}"
        for secret in self._secrets:
            text = text.replace(secret, self._safe_url if secret == self.webhook_url else "***")
        return text


def notify_once(
    webhook_url: str | None,
    kind: str,
    run_id: str,
    run_name: str,
    data: dict[str, Any],
    *,
    wait_s: float = 5.0,
) -> bool:
    """Send one notification and wait up to wait_s for it; for short-lived callers. True if delivered."""
    if webhook_url is None:
        return False
    notifier = Notifier(webhook_url)
    notifier.send(kind, run_id, run_name, data)
    notifier.close(wait_s=wait_s)
    return notifier.delivered == 1
