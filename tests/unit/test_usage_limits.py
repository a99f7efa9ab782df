"""Reading when a usage limit resets, from Claude Code's words and from the API's headers."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from longrun.scheduler.guards.usage_limits import is_limit_text, reset_from_headers, reset_from_text

NOW = datetime(2026, 12, 3, 12, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("You've hit your limit · resets 5pm (Europe/Vilnius)", datetime(2026, 12, 3, 15, 0, tzinfo=UTC)),
        ("You've hit your 5-hour limit · resets 7:53pm (UTC)", datetime(2026, 12, 3, 19, 53, tzinfo=UTC)),
        ("You've hit your session limit · resets 4:20am (UTC)", datetime(2026, 12, 4, 4, 20, tzinfo=UTC)),
        ("You've hit your limit · resets 12pm (UTC)", datetime(2026, 12, 4, 12, 0, tzinfo=UTC)),
        ("You've hit your weekly limit · resets 12am (Asia/Tokyo)", datetime(2026, 12, 3, 15, 0, tzinfo=UTC)),
    ],
)
def test_a_limit_message_names_its_reset(text: str, expected: datetime) -> None:
    assert is_limit_text(text)
    assert reset_from_text(text, NOW) == expected


def test_without_a_zone_the_reset_is_in_the_machine_s_zone() -> None:
    at = reset_from_text("You've hit your session limit · resets 11pm", NOW)
    assert at is not None and at.astimezone().hour == 23 and at > NOW


def test_text_that_is_not_a_limit_is_not_read_as_one() -> None:
    assert not is_limit_text("All tests pass; the limit of 5 retries was not hit.")
    assert reset_from_text("it resets 5pm", NOW) is None
    assert reset_from_text("You've hit your limit · resets 25pm (UTC)", NOW) is None


def test_headers_give_the_latest_reset() -> None:
    headers = {
        "Retry-After": "60",
        "anthropic-ratelimit-unified-reset": "2026-12-03T17:00:00Z",
        "anthropic-ratelimit-unified-5h-reset": "1796317200",
        "anthropic-ratelimit-unified-status": "rejected",
    }
    assert reset_from_headers(headers, NOW) == datetime(2026, 12, 3, 17, 0, tzinfo=UTC)
    assert reset_from_headers({"retry-after": "7200"}, NOW) == datetime(2026, 12, 3, 14, 30, tzinfo=UTC)
    assert reset_from_headers({"x-other": "1"}, NOW) is None
