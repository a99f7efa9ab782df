"""The Claude Code follower reads the CLI's rate-limit news as the SDK parses it from the CLI's
stream (the CLI sends it only under a Claude login, which the tests cannot have)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

pytest.importorskip("claude_agent_sdk")

from claude_agent_sdk._internal.message_parser import parse_message  # noqa: E402

from longrun.scheduler.workers.base import EndReason  # noqa: E402
from longrun.scheduler.workers.claude_code.follow import Follower  # noqa: E402


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, dict[str, Any]]] = []

    def event(self, kind: str, data: dict[str, Any]) -> None:
        self.events.append((kind, data))


def _news(status: str, resets_at: int | None = None) -> Any:
    info: dict[str, Any] = {"status": status, "rateLimitType": "five_hour", "utilization": 0.93}
    if resets_at is not None:
        info["resetsAt"] = resets_at
    return parse_message(
        {"type": "rate_limit_event", "rate_limit_info": info, "uuid": "u", "session_id": "s"}
    )


def test_a_warning_is_an_event_and_the_session_goes_on() -> None:
    report = Recorder()
    follower = Follower(report, None)  # type: ignore[arg-type]
    assert follower.see(_news("allowed_warning", 1_900_000_000)) is None
    [(kind, data)] = report.events
    assert kind == "usage_limit_warning" and data["limit"] == "five_hour" and data["utilization"] == 0.93
    assert data["resets_at"] == datetime.fromtimestamp(1_900_000_000, UTC).isoformat()
    assert follower.see(_news("allowed")) is None and len(report.events) == 1


def test_a_rejection_ends_the_session_rate_limited_until_the_reset() -> None:
    report = Recorder()
    ended = Follower(report, None).see(_news("rejected", 1_900_000_000))  # type: ignore[arg-type]
    assert ended is not None and ended.reason is EndReason.rate_limited
    assert ended.retry_at == datetime.fromtimestamp(1_900_000_000, UTC)
    assert "five_hour" in ended.detail
    assert [kind for kind, _ in report.events] == ["usage_limit_hit"]
