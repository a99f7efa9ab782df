"""When a usage limit resets, from what a provider or a CLI says about it.

Claude Code says it in text ("You've hit your limit · resets 5pm (Europe/Vilnius)", "You've hit
your session limit · resets 4:20pm"), with a time zone or without (then it is the machine's);
the API says it in headers (`retry-after` in seconds, `anthropic-ratelimit-*-reset` as times).
A time of day that has already passed today is tomorrow's.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

_LIMIT_TEXT = re.compile(
    r"hit your (?:[\w-]+ )*limit.*?resets\s+(?P<hour>\d{1,2})(?::(?P<minute>\d{2}))?\s*(?P<half>am|pm)?"
    r"(?:\s*\((?P<zone>[^)]+)\))?",
    re.IGNORECASE | re.DOTALL,
)


def is_limit_text(text: str) -> bool:
    """Whether `text` is Claude Code saying a usage limit was hit (which is never progress)."""
    return bool(re.search(r"hit your (?:[\w-]+ )*limit", text, re.IGNORECASE))


def reset_from_text(text: str, now: datetime) -> datetime | None:
    """The reset time a limit message names, in UTC; None when it names none it can read."""
    found = _LIMIT_TEXT.search(text)
    if found is None:
        return None
    hour, minute = int(found["hour"]), int(found["minute"] or 0)
    half = (found["half"] or "").lower()
    if half == "pm" and hour < 12:
        hour += 12
    elif half == "am" and hour == 12:
        hour = 0
    if hour > 23 or minute > 59:
        return None
    zone = _zone(found["zone"])
    local = now.astimezone(zone)
    at = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= local:
        at += timedelta(days=1)
    return at.astimezone(UTC)


def _zone(name: str | None) -> ZoneInfo | None:
    """The named zone (UTC for "UTC"); None, the machine's own zone, when none is named or known."""
    if not name:
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return None


def reset_from_headers(headers: Mapping[str, str], now: datetime) -> datetime | None:
    """The latest reset the headers name (`retry-after` seconds, or `anthropic-ratelimit-*-reset`
    times), in UTC; None when they name none."""
    found: list[datetime] = []
    for name, value in headers.items():
        name = name.lower()
        if name == "retry-after":
            try:
                found.append(now + timedelta(seconds=float(value)))
            except ValueError:
                continue
        elif name.startswith("anthropic-ratelimit-") and name.endswith("reset"):
            try:
                at = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                try:
                    at = datetime.fromtimestamp(float(value), UTC)
                except ValueError:
                    continue
            found.append(at if at.tzinfo else at.replace(tzinfo=UTC))
    return max(found).astimezone(UTC) if found else None
