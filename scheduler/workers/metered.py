"""What the metering proxy saw, as a worker's events: for every backend whose worker makes its own
model calls through it (Claude Code, a command)."""

from __future__ import annotations

from typing import Any

from longrun.scheduler.workers.base import ModelCall, Reporter


def report_calls(report: Reporter, metered: list[Any]) -> float:
    """The calls the proxy metered since the last look, as `model_call` events (and `api_error`
    ones for calls the API refused), in order; returns what they cost by longrun's prices."""
    usd = 0.0
    while metered:
        m = metered.pop(0)
        if m.status != 200:
            report.event(
                "api_error", {"status": m.status, "request_id": m.request_id, "via": "metering proxy"}
            )
            continue
        usage = report.model_call(
            ModelCall(
                model=m.model,
                request_id=m.request_id,
                message_id=m.message_id or "",
                stop_reason=m.stop_reason,
                input_tokens=m.input_tokens,
                output_tokens=m.output_tokens,
                cache_write_tokens=m.cache_write_tokens,
                cache_read_tokens=m.cache_read_tokens,
                max_tokens=m.max_tokens_sent,
                duration_ms=int(m.duration_ms),
                text="",
                tool_calls=list(m.tool_calls),
            )
        )
        usd += usage.usd
    return usd
