"""How the dashboard writes things: states as a coloured word, bars, money, durations, paths."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from rich.text import Text

STATE_STYLES = {
    "awaiting_approval": "bold #ffb86c",
    "tripped": "bold #ff5555",
    "failed": "bold #ff5555",
    "running": "bold #50fa7b",
    "scheduled": "#8be9fd",
    "paused": "#f1fa8c",
    "draft": "dim",
    "stopped": "dim",
    "done": "#50fa7b",
    "archived": "dim",
}
STATE_WORDS = {"awaiting_approval": "waiting on you"}
"""A state written for a person where its name would not say it."""

VERDICT_STYLES = {"pass": "bold #50fa7b", "fail": "bold #ff5555", "error": "bold #ffb86c"}
VERDICT_MARKS = {"pass": "✓ pass", "fail": "✗ fail", "error": "! error", "unjudged": "· —"}


def state_text(state: str) -> Text:
    """A run's state as a word with a colour: the word alone says it, the colour helps."""
    return Text(STATE_WORDS.get(state, state), style=STATE_STYLES.get(state, ""))


def run_state_line(state: str, reason: str | None, judging: int | None = None) -> Text:
    """A run's state and why, as the runs screen and the Overview say it.

    `judging` is the number of the session whose end is recorded but not yet settled by the judge:
    for the 20–40 s the judge takes the run is still `running`, and its reason still says the
    session runs, so the line says what really happens instead."""
    out = state_text(state)
    if judging is not None and state == "running":
        out.append(": ")
        out.append(f"judging session {judging}", style=JUDGING_STYLE)
        return out
    if reason:
        out.append(f": {reason}")
    if judging is not None:
        out.append(" · ")
        out.append(f"judging session {judging}", style=JUDGING_STYLE)
    return out


JUDGING_STYLE = "#bd93f9"
"""The judge's colour (verdicts and `judged` events have it too)."""


def verdict_text(status: str) -> Text:
    return Text(VERDICT_MARKS.get(status, status), style=VERDICT_STYLES.get(status, "dim"))


def bar(fraction: float, width: int = 10, *, warn: float | None = None) -> Text:
    """A horizontal bar, full at 1; red past 1 and amber past `warn`."""
    fraction = max(0.0, fraction)
    filled = min(width, round(fraction * width))
    style = "#50fa7b"
    if warn is not None and fraction >= warn:
        style = "#ffb86c"
    if fraction >= 1 and warn is not None:
        style = "#ff5555"
    out = Text("█" * filled, style=style)
    out.append("░" * (width - filled), style="dim")
    return out


def features_cell(passed: int, total: int) -> Text:
    if not total:
        return Text("no done-condition", style="dim")
    out = bar(passed / total, 6)
    out.append(f" {passed}/{total}")
    return out


def spend_cell(spent: float, budget: float | None) -> Text:
    if not budget:
        return Text(usd(spent))
    out = bar(spent / budget, 6, warn=0.8)
    out.append(f" {usd(spent)}/{usd(budget, 0 if budget == int(budget) else 2)}")
    return out


def usd(value: float, places: int | None = None) -> str:
    if places is None:
        places = 2 if value >= 10 else 3 if value >= 0.1 else 4
    return f"${value:,.{places}f}"


def tokens(value: int) -> str:
    if value >= 1_000_000:
        return f"{value / 1_000_000:.1f}M"
    if value >= 10_000:
        return f"{value / 1000:.0f}k"
    return f"{value:,}"


def span(delta: timedelta) -> str:
    """A duration the way a person says it: 45s, 12m, 3h05m, 2d4h."""
    seconds = int(delta.total_seconds())
    if seconds < 0:
        seconds = 0
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m"
    if seconds < 86400:
        return f"{seconds // 3600}h{(seconds % 3600) // 60:02d}m"
    return f"{seconds // 86400}d{(seconds % 86400) // 3600}h"


def until(at: datetime, now: datetime) -> str:
    return "now" if at <= now else f"in {span(at - now)}"


def ago(at: datetime, now: datetime) -> str:
    return "just now" if at >= now else f"{span(now - at)} ago"


def clock_time(at: datetime, now: datetime) -> str:
    """HH:MM for today (UTC), with the date for another day."""
    local = at.astimezone(now.tzinfo)
    return local.strftime("%H:%M:%S") if local.date() == now.date() else local.strftime("%b %d %H:%M")


def short_path(path: str) -> str:
    """A path under the user's home written with `~`."""
    home = str(Path.home())
    if path == home or path.startswith(home + "/"):
        return "~" + path[len(home) :]
    return path


def one_line(value: Any, limit: int = 120) -> str:
    """An event's data or a request, on one line, cut to `limit`."""
    raw = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
    raw = " ".join(raw.split())
    return raw if len(raw) <= limit else raw[: limit - 1] + "…"


def pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
