"""The report's legends and lettering, shared by its modules: the label and colour of each way a
session can end and of each event the spend chart marks, the page's font, and times and token
counts as the charts and tables write them.
"""

from __future__ import annotations

from datetime import UTC, datetime

from longrun.app.format import tokens as _tokens

OUTCOMES: dict[str, tuple[str, str]] = {
    "finished": ("finished its work", "#2ca02c"),
    "approval": ("paused for a person", "#1f77b4"),
    "stopped": ("stopped or paused", "#7f7f7f"),
    "budget": ("hit a budget cap", "#ff7f0e"),
    "rate_limited": ("rate limited", "#bcbd22"),
    "breaker": ("breaker tripped", "#d62728"),
    "api_error": ("API errors", "#8c564b"),
    "error": ("error", "#8c564b"),
    "timed_out": ("timed out", "#9467bd"),
    "crashed": ("crashed", "#000000"),
    "killed": ("killed", "#e377c2"),
    "running": ("still running", "#17becf"),
}
"""How a session ended: its end reason when it ended itself, else its state; label and colour."""

MARKERS: dict[str, tuple[str, str, str]] = {
    "approval_requested": ("approval asked", "#ff7f0e", "diamond"),
    "approval_decided": ("approval decided", "#2ca02c", "circle"),
    "approval_expired": ("approval expired", "#7f7f7f", "x"),
    "breaker_tripped": ("breaker tripped", "#d62728", "star"),
    "budget_warning": ("budget warning", "#e377c2", "triangle-up"),
    "usage_limit_wait": ("usage-limit wait", "#17becf", "hourglass"),
    "usage_limit_warning": ("usage-limit warning", "#17becf", "triangle-up"),
    "rewound": ("rewind", "#1f77b4", "triangle-left"),
    "forked": ("fork", "#9467bd", "triangle-right"),
    "fork_made": ("fork", "#9467bd", "triangle-right"),
}
"""The event markers drawn on the spend chart (a vertical line and a point with hover text)."""

FONTS = "system-ui, -apple-system, 'Segoe UI', Roboto, 'Helvetica Neue', Arial, sans-serif"


def axis_time(at: datetime) -> str:
    """A time as plotly's date axis takes it (plotly.js has no time zones: UTC, written without one)."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def when(at: datetime) -> str:
    """A time as the page and its hover texts write it: UTC, to the second, without the zone."""
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S")


def tokens(value: int) -> str:
    """A token count in a few characters: 8,963, 67k, 145.2M, 2.33B."""
    return f"{value / 1e9:.2f}B" if value >= 1_000_000_000 else _tokens(value)
