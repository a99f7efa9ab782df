"""Circuit breakers: stop a run that is spinning long before it reaches a budget cap.

Three watch a session as it runs (the same tool error again and again, the spend rate over a
sliding hour, 429/5xx answers within a window); two look back over sessions when one has ended
(no feature went from failing to passing, sessions that failed). A tripped breaker opens: the
run waits in `tripped` for a person to reset it. After a reset the breaker is half-open: the
next session is a trial, and one more bad session opens it again at once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from longrun.scheduler.spec.tables import BreakersSpec
from longrun.store.runs import SessionView

_NUMBERS = re.compile(r"\d+")


@dataclass(frozen=True)
class Trip:
    name: str
    numbers: dict[str, Any]

    @property
    def reason(self) -> str:
        shown = ", ".join(f"{k}={v}" for k, v in self.numbers.items())
        return f"breaker {self.name} tripped ({shown})"


def error_signature(tool: str, output: str) -> str:
    """What makes two tool errors "the same": the tool and the first line of its output, with
    numbers blanked (line numbers, pids and timings differ between repeats)."""
    first = next((line.strip() for line in output.splitlines() if line.strip()), "")
    return f"{tool}: {_NUMBERS.sub('#', first)[:200]}"


class SameErrorWatch:
    """Counts the same tool-error signature in a row."""

    def __init__(self) -> None:
        self.signature: str | None = None
        self.count = 0

    def see(self, tool: str, is_error: bool, output: str) -> int:
        if not is_error:
            self.signature, self.count = None, 0
            return 0
        signature = error_signature(tool, output)
        self.count = self.count + 1 if signature == self.signature else 1
        self.signature = signature
        return self.count


def threshold(limit: int, half_open: bool) -> int:
    """A half-open breaker trips on the first bad sign again."""
    return 1 if half_open else limit


def _trailing(flags: list[bool]) -> int:
    """How many of the newest flags (newest last) are true in a row."""
    count = 0
    for flag in reversed(flags):
        if not flag:
            break
        count += 1
    return count


def no_progress_trip(spec: BreakersSpec, progress: list[bool], half_open: bool) -> Trip | None:
    """`progress` is, per session newest last, whether a feature went from failing to passing."""
    run = _trailing([not made for made in progress])
    if run >= threshold(spec.no_progress_sessions, half_open):
        return Trip(
            "no_progress_sessions", {"sessions_without_progress": run, "limit": spec.no_progress_sessions}
        )
    return None


def failed(session: SessionView, had_handoff: bool) -> bool:
    """A failed session: crashed, timed out without a handoff, or ended in error."""
    if session.state == "crashed":
        return True
    if session.state == "timed_out":
        return not had_handoff
    return session.state == "ended" and session.end_reason in ("error", "api_error")


def failures_trip(spec: BreakersSpec, failures: list[bool], half_open: bool) -> Trip | None:
    """`failures` is, per session newest last, whether it failed."""
    run = _trailing(failures)
    if run >= threshold(spec.consecutive_failures, half_open):
        return Trip(
            "consecutive_failures", {"failed_sessions_in_a_row": run, "limit": spec.consecutive_failures}
        )
    return None
