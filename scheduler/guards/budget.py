"""Budget arithmetic: what is left of each cap, whether the next call fits, which warnings to give.

Pure functions over plain numbers, so the rule "a hard cap is never crossed, not by one call"
can be checked exhaustively, apart from any model or store.
"""

from __future__ import annotations

from dataclasses import dataclass

from longrun.scheduler.guards.pricing import Price
from longrun.scheduler.spec.tables import BudgetSpec
from longrun.store.runs import Usage

MIN_USEFUL_MAX_TOKENS = 256
"""Below this many output tokens a call is not worth making: the session ends instead."""

PER_MILLION = 1_000_000


@dataclass(frozen=True)
class Spent:
    """What has been spent against each scope a cap applies to."""

    run: Usage
    session: Usage
    day: Usage


@dataclass(frozen=True)
class CapLeft:
    name: str
    """The spec key of the cap: usd, per_session_usd, per_day_usd or tokens."""
    limit: float
    spent: float

    @property
    def left(self) -> float:
        return self.limit - self.spent

    @property
    def unit(self) -> str:
        return "tokens" if self.name == "tokens" else "usd"


def caps_left(budget: BudgetSpec, spent: Spent) -> list[CapLeft]:
    caps = [
        ("usd", budget.usd, spent.run.usd),
        ("per_session_usd", budget.per_session_usd, spent.session.usd),
        ("per_day_usd", budget.per_day_usd, spent.day.usd),
        ("tokens", budget.tokens, spent.run.tokens),
    ]
    return [CapLeft(name, float(limit), float(used)) for name, limit, used in caps if limit is not None]


@dataclass(frozen=True)
class Fit:
    max_tokens: int
    """What the call may ask for (<= what it asked for)."""
    binding: CapLeft | None
    """The cap that lowered it, if one did."""

    @property
    def useful(self) -> bool:
        return self.max_tokens >= MIN_USEFUL_MAX_TOKENS


def worst_case_usd(price: Price, input_tokens: int, output_tokens: int) -> float:
    """The most a call can cost: every input token at the dearer of the input and cache-write
    prices, and every allowed output token."""
    return (input_tokens * max(price.input, price.cache_write) + output_tokens * price.output) / PER_MILLION


def fit_call(caps: list[CapLeft], price: Price, input_bound: int, max_tokens: int) -> Fit:
    """The largest `max_tokens` (up to the one asked) whose worst case fits every cap."""
    allowed, binding = max_tokens, None
    for cap in caps:
        if cap.unit == "tokens":
            fits = int(cap.left) - input_bound
        else:
            room = cap.left - worst_case_usd(price, input_bound, 0)
            if room <= 0:
                fits = -1
            elif price.output <= 0:
                fits = max_tokens
            else:
                # Round down and keep a token of room, so float error can never tip a call over.
                fits = int(room * PER_MILLION / price.output) - 1
        if fits < allowed:
            allowed, binding = fits, cap
    return Fit(max(allowed, 0), binding)


def crossed_warnings(caps_before: list[CapLeft], caps_after: list[CapLeft], warn_at: float) -> list[CapLeft]:
    """The caps whose spent fraction went from below `warn_at` to at or above it."""
    before = {c.name: c for c in caps_before}
    crossed = []
    for cap in caps_after:
        old = before.get(cap.name)
        if (
            cap.limit > 0
            and cap.spent / cap.limit >= warn_at
            and (old is None or old.spent / old.limit < warn_at)
        ):
            crossed.append(cap)
    return crossed
