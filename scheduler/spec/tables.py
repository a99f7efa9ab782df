"""The spec's tables for time and money: `[session]`, `[schedule]`, `[budget]`, `[breakers]`,
`[notify]` and `[pricing]`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Literal

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from longrun.scheduler.spec.durations import (
    PositiveDuration,
    TimeBox,
    format_duration,
    parse_duration,
    toml_repr,
)
from longrun.scheduler.spec.keys import Problems, Table, spec_key

DEFAULT_WRAP_UP = timedelta(minutes=10)


class SessionSpec(Table):
    """`[session]`: how long one session runs and how often it checkpoints."""

    time_box: TimeBox = spec_key(
        timedelta(hours=5),
        kind="a duration",
        meaning="how long one session may run before it is stopped (at least 10s)",
    )
    wrap_up: PositiveDuration = spec_key(
        DEFAULT_WRAP_UP,
        kind="a duration",
        meaning="how long before the end of the time box the worker is told to wrap up",
    )
    checkpoint_every_calls: StrictInt = spec_key(
        20,
        kind="an integer",
        expected="an integer of at least 1",
        meaning="checkpoint after this many tool calls",
        ge=1,
    )
    checkpoint_every_minutes: StrictFloat = spec_key(
        15.0,
        kind="a number",
        expected="a number greater than 0",
        meaning="checkpoint after this many minutes",
        gt=0,
        allow_inf_nan=False,
    )

    @model_validator(mode="before")
    @classmethod
    def _fit_default_wrap_up(cls, data: Any) -> Any:
        """A short time box gets a fifth of itself as wrap-up instead of a default that does not fit."""
        if not isinstance(data, Mapping) or "wrap_up" in data or "time_box" not in data:
            return data
        time_box = data["time_box"]
        try:
            time_box = time_box if isinstance(time_box, timedelta) else parse_duration(time_box)
        except ValueError:
            return data
        if timedelta(seconds=10) <= time_box <= DEFAULT_WRAP_UP:
            return {**data, "wrap_up": time_box / 5}
        return data

    @model_validator(mode="after")
    def _wrap_up_fits(self) -> SessionSpec:
        if self.wrap_up >= self.time_box:
            raise Problems.one(
                f"expected a duration shorter than session.time_box ({format_duration(self.time_box)}), "
                f'found "{format_duration(self.wrap_up)}"',
                at=("wrap_up",),
            )
        return self


def _timestamp(value: object) -> dt.datetime:
    """A TOML date-time or an ISO-8601 string; without an offset it is the machine's local time."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip())
        except ValueError:
            raise Problems.one(
                f"expected a date-time like 2026-12-01T09:00:00+01:00, found {toml_repr(value)}"
            ) from None
    if not isinstance(value, dt.datetime):
        raise Problems.one(f"expected a date-time like 2026-12-01T09:00:00+01:00, found {toml_repr(value)}")
    if value.tzinfo is None:
        value = value.astimezone()
    return value.astimezone(dt.UTC)


Timestamp = Annotated[
    dt.datetime,
    PlainValidator(_timestamp, json_schema_input_type=str),
    PlainSerializer(lambda v: v.isoformat(), return_type=str, when_used="json"),
]


def _crontab(value: object) -> str:
    if not isinstance(value, str):
        raise Problems.one(f'expected a crontab line like "0 22 * * *", found {toml_repr(value)}')
    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise Problems.one(
            f'expected a crontab line like "0 22 * * *" ({exc}), found {toml_repr(value)}'
        ) from None
    return value


Crontab = Annotated[str, PlainValidator(_crontab, json_schema_input_type=str)]


class ScheduleSpec(Table):
    """`[schedule]`: when sessions start."""

    mode: Literal["back_to_back", "interval", "cron"] = spec_key(
        "back_to_back",
        kind='one of "back_to_back", "interval", "cron"',
        meaning="how sessions follow one another",
    )
    cooldown: PositiveDuration = spec_key(
        timedelta(seconds=30),
        kind="a duration",
        meaning="back_to_back (and inside a cron window): the pause between one session's end and the next",
    )
    every: PositiveDuration | None = spec_key(
        None,
        kind="a duration",
        meaning="interval: a session starts this often (skipped while one still runs)",
    )
    cron: Crontab | None = spec_key(
        None,
        kind="a string",
        expected='a crontab line like "0 22 * * *"',
        meaning="cron: when sessions start (minute hour day month weekday, in the machine's time zone)",
    )
    window: PositiveDuration | None = spec_key(
        None,
        kind="a duration",
        meaning="cron: how long after each cron time sessions may start; none runs past its end",
    )
    not_before: Timestamp | None = spec_key(
        None,
        kind="a date-time",
        expected="a date-time like 2026-12-01T09:00:00+01:00",
        meaning="no session of the run starts before this time",
    )
    not_after: Timestamp | None = spec_key(
        None,
        kind="a date-time",
        expected="a date-time like 2026-12-01T09:00:00+01:00",
        meaning="no session of the run starts after this time",
    )
    resume_after_limit: StrictBool = spec_key(
        True,
        kind="true or false",
        meaning="after a usage or rate limit, start the next session when the limit resets (false: pause)",
    )

    @model_validator(mode="after")
    def _mode_keys(self) -> ScheduleSpec:
        if self.mode == "interval" and self.every is None:
            raise Problems.one('mode "interval" needs every (a duration such as 2h)', at=("every",))
        if self.mode == "cron" and self.cron is None:
            raise Problems.one('mode "cron" needs cron (a crontab line such as "0 22 * * *")', at=("cron",))
        if self.every is not None and self.mode != "interval":
            raise Problems.one(f'every only goes with mode "interval", not "{self.mode}"', at=("every",))
        if self.cron is not None and self.mode != "cron":
            raise Problems.one(f'cron only goes with mode "cron", not "{self.mode}"', at=("cron",))
        if self.window is not None and self.mode != "cron":
            raise Problems.one(f'window only goes with mode "cron", not "{self.mode}"', at=("window",))
        if self.not_before and self.not_after and self.not_after <= self.not_before:
            raise Problems.one(
                f"expected a date-time after schedule.not_before ({self.not_before.isoformat()}), "
                f"found {self.not_after.isoformat()}",
                at=("not_after",),
            )
        return self


class BudgetSpec(Table):
    """`[budget]`: hard caps; a model call that could cross one is not made."""

    usd: StrictFloat | None = spec_key(
        None,
        kind="a number",
        expected="a number greater than 0",
        meaning="hard cap on the run's total model spend, in US dollars",
        gt=0,
        allow_inf_nan=False,
    )
    tokens: StrictInt | None = spec_key(
        None,
        kind="an integer",
        expected="an integer greater than 0",
        meaning="hard cap on the run's total tokens (input and output)",
        gt=0,
    )
    per_session_usd: StrictFloat | None = spec_key(
        None,
        kind="a number",
        expected="a number greater than 0",
        meaning="hard cap on one session's model spend, in US dollars",
        gt=0,
        allow_inf_nan=False,
    )
    per_day_usd: StrictFloat | None = spec_key(
        None,
        kind="a number",
        expected="a number greater than 0",
        meaning="hard cap on the run's model spend in one UTC day, in US dollars",
        gt=0,
        allow_inf_nan=False,
    )
    warn_at: StrictFloat = spec_key(
        0.8,
        kind="a number",
        expected="a fraction between 0 and 1",
        meaning="write a warning (and notify) when this fraction of a cap is spent",
        gt=0,
        lt=1,
        allow_inf_nan=False,
    )

    @model_validator(mode="after")
    def _session_within_run(self) -> BudgetSpec:
        if self.usd is not None and self.per_session_usd is not None and self.per_session_usd > self.usd:
            raise Problems.one(
                f"expected a number no greater than budget.usd ({toml_repr(self.usd)}), "
                f"found {toml_repr(self.per_session_usd)}",
                at=("per_session_usd",),
            )
        return self


class BreakersSpec(Table):
    """`[breakers]`: circuit breakers that stop a run on a bad pattern long before a cap."""

    no_progress_sessions: StrictInt = spec_key(
        3,
        kind="an integer",
        expected="an integer of at least 1",
        meaning="trip after this many sessions in a row in which no feature went from failing to passing",
        ge=1,
    )
    consecutive_failures: StrictInt = spec_key(
        3,
        kind="an integer",
        expected="an integer of at least 1",
        meaning="trip after this many failed sessions in a row (crashed, timed out with no handoff, error)",
        ge=1,
    )
    same_error_repeats: StrictInt = spec_key(
        5,
        kind="an integer",
        expected="an integer of at least 2",
        meaning="trip when the same tool error comes back this many times in a row",
        ge=2,
    )
    max_usd_per_hour: StrictFloat | None = spec_key(
        10.0,
        kind="a number",
        expected="a number greater than 0",
        meaning="trip when the run spends more than this in any sliding hour",
        gt=0,
        allow_inf_nan=False,
    )
    api_errors: StrictInt = spec_key(
        10,
        kind="an integer",
        expected="an integer of at least 1",
        meaning="trip after this many 429/5xx answers within api_errors_window",
        ge=1,
    )
    api_errors_window: PositiveDuration = spec_key(
        timedelta(minutes=10),
        kind="a duration",
        meaning="the window api_errors counts in",
    )


class NotifySpec(Table):
    """`[notify]`: where warnings, budget stops and trips are sent, besides the event log."""

    webhook_url: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="an http:// or https:// URL",
        meaning="POST a small JSON body here on a budget warning, a budget stop or a breaker trip",
        pattern=r"^https?://\S+$",
    )


class PriceSpec(Table):
    """One model's prices in USD per million tokens (for `[pricing."model-name"]`)."""

    input: StrictFloat = spec_key(kind="a number", expected="a number of at least 0", meaning="input", ge=0)
    output: StrictFloat = spec_key(kind="a number", expected="a number of at least 0", meaning="output", ge=0)
    cache_write: StrictFloat | None = spec_key(
        None, kind="a number", expected="a number of at least 0", meaning="cache writes", ge=0
    )
    cache_read: StrictFloat | None = spec_key(
        None, kind="a number", expected="a number of at least 0", meaning="cache reads", ge=0
    )
