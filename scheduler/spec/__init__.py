"""The run spec: a TOML file that says what a run is for, who works on it and within which limits.

`load_spec` and `parse_spec` are the only doors in. Every problem a person can make in a spec
comes out as one `SpecError` whose lines name the file (or `--set`), the key path, what was
found and what was expected, so the CLI and the UI can show it as is, never a traceback.
Array items are counted from 1, as a person counts: `features[1]` is the first feature.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import json
import math
import os
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    PlainValidator,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from longrun.store.errors import SpecError

__all__ = [
    "BreakersSpec",
    "BudgetSpec",
    "NotifySpec",
    "PriceSpec",
    "FeatureSpec",
    "RunSpec",
    "ScheduleSpec",
    "SessionSpec",
    "WorkerSpec",
    "apply_overrides",
    "format_duration",
    "load_spec",
    "parse_duration",
    "parse_spec",
]

Loc = tuple[str | int, ...]

OVERRIDE_SOURCE = "--set"
RATCHET = "ratchet"
"""The verdicts of the test ratchet are kept under this feature id."""
DURATION_HINT = "a duration like 90s, 10m, 5h or 1d"

# ---------------------------------------------------------------------------------------------
# Durations

_NUMBER = r"\d+(?:\.\d+)?"
_DURATION = re.compile(
    rf"(?:(?P<d>{_NUMBER})d)?\s*(?:(?P<h>{_NUMBER})h)?\s*(?:(?P<m>{_NUMBER})m)?\s*(?:(?P<s>{_NUMBER})s)?"
)
_MICROS = {"d": 86_400_000_000, "h": 3_600_000_000, "m": 60_000_000, "s": 1_000_000}


def parse_duration(value: str) -> timedelta:
    """Read a duration written as `90s`, `10m`, `5h`, `1d`, `1h30m` or `1.5h`.

    Units go from largest to smallest, each at most once; a bare number is refused because
    nobody can tell whether `90` means seconds or minutes.
    """
    problem = ValueError(f"expected {DURATION_HINT}, found {toml_repr(value)}")
    if not isinstance(value, str):
        raise problem
    match = _DURATION.fullmatch(value.strip())
    if match is None or not any(match.groupdict().values()):
        raise problem
    micros = sum(
        (Decimal(number) * _MICROS[unit] for unit, number in match.groupdict().items() if number),
        Decimal(0),
    )
    try:
        return timedelta(microseconds=int(micros.to_integral_value()))
    except (OverflowError, InvalidOperation):
        raise ValueError(f"expected a duration of at most 999999999d, found {toml_repr(value)}") from None


def format_duration(td: timedelta) -> str:
    """Write a duration compactly, the inverse of `parse_duration`: 5400s is `1h30m`, 0 is `0s`."""
    if td < timedelta(0):
        raise ValueError(f"a duration cannot be negative, found {td}")
    rest = (td.days * 86_400 + td.seconds) * 1_000_000 + td.microseconds
    parts = []
    for unit in ("d", "h", "m"):
        count, rest = divmod(rest, _MICROS[unit])
        if count:
            parts.append(f"{count}{unit}")
    if rest or not parts:
        seconds, micros = divmod(rest, 1_000_000)
        fraction = f".{micros:06d}".rstrip("0") if micros else ""
        parts.append(f"{seconds}{fraction}s")
    return "".join(parts)


def toml_repr(value: object, limit: int = 60) -> str:
    """Show a value as it would look in TOML, shortened, for the `found …` part of a message."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        shown = value if len(value) <= limit else value[:limit] + "…"
        return json.dumps(shown, ensure_ascii=False)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(item, Mapping) for item in value):
            return "an array of tables"
        shown = "[" + ", ".join(toml_repr(item, limit) for item in value) + "]"
        return shown if len(shown) <= limit else shown[:limit] + "…]"
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, timedelta) and value >= timedelta(0):
        return format_duration(value)
    return repr(value)


def _duration_validator(minimum: timedelta, *, inclusive: bool) -> Any:
    def validate(value: object) -> timedelta:
        if isinstance(value, timedelta):
            td = value
        else:
            try:
                td = parse_duration(value)  # type: ignore[arg-type]
            except ValueError as exc:
                raise _Problems.one(str(exc)) from None
        too_short = td < minimum if inclusive else td <= minimum
        if too_short:
            bound = "of at least" if inclusive else "longer than"
            raise _Problems.one(
                f"expected a duration {bound} {format_duration(minimum)}, found {toml_repr(value)}"
            )
        return td

    return PlainValidator(validate, json_schema_input_type=str)


_as_text = PlainSerializer(format_duration, return_type=str, when_used="json")
TimeBox = Annotated[timedelta, _duration_validator(timedelta(seconds=10), inclusive=True), _as_text]
PositiveDuration = Annotated[timedelta, _duration_validator(timedelta(0), inclusive=False), _as_text]


# ---------------------------------------------------------------------------------------------
# Models


class _Problems(ValueError):
    """Problems a validator found, each with its key path relative to where pydantic reports it.

    It is a ValueError so that pydantic collects it like any other; `_messages` unpacks it.
    """

    def __init__(self, items: Sequence[tuple[Loc, str]]) -> None:
        super().__init__(items[0][1])
        self.items = list(items)

    @classmethod
    def one(cls, text: str, at: Loc = ()) -> _Problems:
        return cls([(at, text)])


def _key(
    default: Any = ...,
    *,
    factory: Any = None,
    kind: str,
    meaning: str,
    expected: str | None = None,
    **constraints: Any,
) -> Any:
    """A spec key: its default, its constraints, and the words the error messages use for it.

    `kind` names the type ("a string"), `expected` what a valid value looks like (defaults to
    `kind`), `meaning` what the key is for; messages are built from them, not from pydantic's.
    A table key takes `factory` (its model) instead of a default.
    """
    extra: dict[str, JsonValue] = {"kind": kind, "expected": expected or kind}
    if factory is not None:
        return Field(default_factory=factory, description=meaning, json_schema_extra=extra, **constraints)
    return Field(default, description=meaning, json_schema_extra=extra, **constraints)


def _resolve_path(value: str, info: ValidationInfo) -> str:
    """Expand `~` and make a relative path absolute against the spec's folder, when it is known."""
    path = Path(value).expanduser()
    base_dir = (info.context or {}).get("base_dir")
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return os.path.abspath(path) if path.is_absolute() else str(path)


class _Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WorkerSpec(_Table):
    """`[worker]`: what does the work in each session."""

    backend: Literal["anthropic", "scripted"] = _key(
        "anthropic",
        kind='one of "anthropic", "scripted"',
        meaning="which worker runs the sessions: the Anthropic API, or a scripted model (demo, tests)",
    )
    model: StrictStr = _key(
        "claude-sonnet-5-5",
        kind="a string",
        expected="a model name (a non-empty string)",
        meaning="the model the worker calls",
        min_length=1,
    )
    max_tokens: StrictInt = _key(
        8192,
        kind="an integer",
        expected="an integer from 1 to 128000",
        meaning="the output token limit of one model call",
        ge=1,
        le=128_000,
    )
    base_url: StrictStr | None = _key(
        None,
        kind="a string",
        expected="an http:// or https:// URL",
        meaning="where the model API is served, when not the backend's usual address",
        pattern=r"^https?://[^\s/?#]+\S*$",
    )
    script: StrictStr | None = _key(
        None,
        kind="a string",
        expected="a built-in script name or a path to a script file",
        meaning="the scripted model's script: a built-in name or a file "
        '(required when backend = "scripted")',
        pattern=r"\S",
    )

    @field_validator("script")
    @classmethod
    def _script_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A script that looks like a path is resolved against the spec's folder; a name is kept."""
        if value is None:
            return None
        looks_like_path = "/" in value or os.sep in value or value.endswith((".toml", ".json"))
        return _resolve_path(value, info) if looks_like_path else value

    @model_validator(mode="after")
    def _script_matches_backend(self) -> WorkerSpec:
        if self.backend == "scripted" and self.script is None:
            raise _Problems.one(
                "missing (expected a string: a built-in script name or a path to a script file; "
                'required when worker.backend = "scripted")',
                at=("script",),
            )
        if self.backend != "scripted" and self.script is not None:
            raise _Problems.one(
                f'only used when worker.backend = "scripted", but backend is "{self.backend}" '
                '(set backend = "scripted" or remove script)',
                at=("script",),
            )
        return self


_DEFAULT_WRAP_UP = timedelta(minutes=10)


class SessionSpec(_Table):
    """`[session]`: how long one session runs and how often it checkpoints."""

    time_box: TimeBox = _key(
        timedelta(hours=5),
        kind="a duration",
        meaning="how long one session may run before it is stopped (at least 10s)",
    )
    wrap_up: PositiveDuration = _key(
        _DEFAULT_WRAP_UP,
        kind="a duration",
        meaning="how long before the end of the time box the worker is told to wrap up",
    )
    checkpoint_every_calls: StrictInt = _key(
        20,
        kind="an integer",
        expected="an integer of at least 1",
        meaning="checkpoint after this many tool calls",
        ge=1,
    )
    checkpoint_every_minutes: StrictFloat = _key(
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
        if timedelta(seconds=10) <= time_box <= _DEFAULT_WRAP_UP:
            return {**data, "wrap_up": time_box / 5}
        return data

    @model_validator(mode="after")
    def _wrap_up_fits(self) -> SessionSpec:
        if self.wrap_up >= self.time_box:
            raise _Problems.one(
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
            raise _Problems.one(
                f"expected a date-time like 2026-12-01T09:00:00+01:00, found {toml_repr(value)}"
            ) from None
    if not isinstance(value, dt.datetime):
        raise _Problems.one(f"expected a date-time like 2026-12-01T09:00:00+01:00, found {toml_repr(value)}")
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
        raise _Problems.one(f'expected a crontab line like "0 22 * * *", found {toml_repr(value)}')
    try:
        CronTrigger.from_crontab(value)
    except ValueError as exc:
        raise _Problems.one(
            f'expected a crontab line like "0 22 * * *" ({exc}), found {toml_repr(value)}'
        ) from None
    return value


Crontab = Annotated[str, PlainValidator(_crontab, json_schema_input_type=str)]


class ScheduleSpec(_Table):
    """`[schedule]`: when sessions start."""

    mode: Literal["back_to_back", "interval", "cron"] = _key(
        "back_to_back",
        kind='one of "back_to_back", "interval", "cron"',
        meaning="how sessions follow one another",
    )
    cooldown: PositiveDuration = _key(
        timedelta(seconds=30),
        kind="a duration",
        meaning="back_to_back (and inside a cron window): the pause between one session's end and the next",
    )
    every: PositiveDuration | None = _key(
        None,
        kind="a duration",
        meaning="interval: a session starts this often (skipped while one still runs)",
    )
    cron: Crontab | None = _key(
        None,
        kind="a string",
        expected='a crontab line like "0 22 * * *"',
        meaning="cron: when sessions start (minute hour day month weekday, in the machine's time zone)",
    )
    window: PositiveDuration | None = _key(
        None,
        kind="a duration",
        meaning="cron: how long after each cron time sessions may start; none runs past its end",
    )
    not_before: Timestamp | None = _key(
        None,
        kind="a date-time",
        expected="a date-time like 2026-12-01T09:00:00+01:00",
        meaning="no session of the run starts before this time",
    )
    not_after: Timestamp | None = _key(
        None,
        kind="a date-time",
        expected="a date-time like 2026-12-01T09:00:00+01:00",
        meaning="no session of the run starts after this time",
    )
    resume_after_limit: StrictBool = _key(
        True,
        kind="true or false",
        meaning="after a usage or rate limit, start the next session when the limit resets (false: pause)",
    )

    @model_validator(mode="after")
    def _mode_keys(self) -> ScheduleSpec:
        if self.mode == "interval" and self.every is None:
            raise _Problems.one('mode "interval" needs every (a duration such as 2h)', at=("every",))
        if self.mode == "cron" and self.cron is None:
            raise _Problems.one('mode "cron" needs cron (a crontab line such as "0 22 * * *")', at=("cron",))
        if self.every is not None and self.mode != "interval":
            raise _Problems.one(f'every only goes with mode "interval", not "{self.mode}"', at=("every",))
        if self.cron is not None and self.mode != "cron":
            raise _Problems.one(f'cron only goes with mode "cron", not "{self.mode}"', at=("cron",))
        if self.window is not None and self.mode != "cron":
            raise _Problems.one(f'window only goes with mode "cron", not "{self.mode}"', at=("window",))
        if self.not_before and self.not_after and self.not_after <= self.not_before:
            raise _Problems.one(
                f"expected a date-time after schedule.not_before ({self.not_before.isoformat()}), "
                f"found {self.not_after.isoformat()}",
                at=("not_after",),
            )
        return self


class BudgetSpec(_Table):
    """`[budget]`: hard caps; a model call that could cross one is not made."""

    usd: StrictFloat | None = _key(
        None,
        kind="a number",
        expected="a number greater than 0",
        meaning="hard cap on the run's total model spend, in US dollars",
        gt=0,
        allow_inf_nan=False,
    )
    tokens: StrictInt | None = _key(
        None,
        kind="an integer",
        expected="an integer greater than 0",
        meaning="hard cap on the run's total tokens (input and output)",
        gt=0,
    )
    per_session_usd: StrictFloat | None = _key(
        None,
        kind="a number",
        expected="a number greater than 0",
        meaning="hard cap on one session's model spend, in US dollars",
        gt=0,
        allow_inf_nan=False,
    )
    per_day_usd: StrictFloat | None = _key(
        None,
        kind="a number",
        expected="a number greater than 0",
        meaning="hard cap on the run's model spend in one UTC day, in US dollars",
        gt=0,
        allow_inf_nan=False,
    )
    warn_at: StrictFloat = _key(
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
            raise _Problems.one(
                f"expected a number no greater than budget.usd ({toml_repr(self.usd)}), "
                f"found {toml_repr(self.per_session_usd)}",
                at=("per_session_usd",),
            )
        return self


class BreakersSpec(_Table):
    """`[breakers]`: circuit breakers that stop a run on a bad pattern long before a cap."""

    no_progress_sessions: StrictInt = _key(
        3,
        kind="an integer",
        expected="an integer of at least 1",
        meaning="trip after this many sessions in a row in which no feature went from failing to passing",
        ge=1,
    )
    consecutive_failures: StrictInt = _key(
        3,
        kind="an integer",
        expected="an integer of at least 1",
        meaning="trip after this many failed sessions in a row (crashed, timed out with no handoff, error)",
        ge=1,
    )
    same_error_repeats: StrictInt = _key(
        5,
        kind="an integer",
        expected="an integer of at least 2",
        meaning="trip when the same tool error comes back this many times in a row",
        ge=2,
    )
    max_usd_per_hour: StrictFloat | None = _key(
        10.0,
        kind="a number",
        expected="a number greater than 0",
        meaning="trip when the run spends more than this in any sliding hour",
        gt=0,
        allow_inf_nan=False,
    )
    api_errors: StrictInt = _key(
        10,
        kind="an integer",
        expected="an integer of at least 1",
        meaning="trip after this many 429/5xx answers within api_errors_window",
        ge=1,
    )
    api_errors_window: PositiveDuration = _key(
        timedelta(minutes=10),
        kind="a duration",
        meaning="the window api_errors counts in",
    )


class NotifySpec(_Table):
    """`[notify]`: where warnings, budget stops and trips are sent, besides the event log."""

    webhook_url: StrictStr | None = _key(
        None,
        kind="a string",
        expected="an http:// or https:// URL",
        meaning="POST a small JSON body here on a budget warning, a budget stop or a breaker trip",
        pattern=r"^https?://\S+$",
    )


class RatchetSpec(_Table):
    """`[judge.ratchet]`: the test ratchet, which fails a checkpoint whose tests went down."""

    enabled: StrictBool = _key(
        True,
        kind="true or false",
        meaning="whether test files and collected tests must never go down against the best checkpoint",
    )
    tests: tuple[StrictStr, ...] | None = _key(
        None,
        kind="an array of strings",
        expected='an array of glob patterns, like ["tests/**/test_*.py"]',
        meaning="which files are test files (globs from the workspace root); unset: common patterns",
    )
    collect: StrictStr = _key(
        "auto",
        kind="a string",
        expected='a shell command, "auto" or "none"',
        meaning='the command that lists the collected tests; "auto" runs pytest\'s collection when '
        'there are Python test files, "none" counts files only',
        pattern=r"\S",
    )
    timeout: PositiveDuration = _key(
        timedelta(minutes=5),
        kind="a duration",
        meaning="how long collecting the tests may take before the ratchet counts it as an error",
    )


class JudgeSpec(_Table):
    """`[judge]`: the LLM rubric judge and the test ratchet. The judge is never the worker."""

    backend: Literal["anthropic", "scripted"] | None = _key(
        None,
        kind='one of "anthropic", "scripted"',
        meaning="where the rubric judge's model runs; unset: the worker's backend",
    )
    model: StrictStr | None = _key(
        None,
        kind="a string",
        expected="a model name (a non-empty string)",
        meaning="the model that judges rubrics; unset: the worker's model",
        min_length=1,
    )
    max_tokens: StrictInt = _key(
        2048,
        kind="an integer",
        expected="an integer from 256 to 32000",
        meaning="the output token limit of one judge call",
        ge=256,
        le=32_000,
    )
    base_url: StrictStr | None = _key(
        None,
        kind="a string",
        expected="an http:// or https:// URL",
        meaning="where the judge's model API is served; unset: the worker's base_url",
        pattern=r"^https?://[^\s/?#]+\S*$",
    )
    script: StrictStr | None = _key(
        None,
        kind="a string",
        expected="a built-in script name or a path to a script file",
        meaning="the scripted judge's script (its [[judges]] replies); unset: the worker's script",
        pattern=r"\S",
    )
    budget_share: StrictFloat = _key(
        0.2,
        kind="a number",
        expected="a number greater than 0 and at most 1",
        meaning="the share of budget.usd the judge may spend; its cost is charged to the run",
        gt=0,
        le=1,
    )
    ratchet: RatchetSpec = _key(factory=RatchetSpec, kind="a table", meaning="the test ratchet")

    @field_validator("script")
    @classmethod
    def _script_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        return WorkerSpec._script_path(value, info)


class RuleSpec(_Table):
    """`[[approvals.rules]]`: which tool calls ask a person first, are refused, or are let through."""

    tool: StrictStr = _key(
        kind="a string",
        expected='a tool name or a glob of tool names, like "bash" or "write"',
        meaning="the tool the rule is about (a glob: * matches any tool)",
        pattern=r"\S",
    )
    match: StrictStr | None = _key(
        None,
        kind="a string",
        expected='a glob, like "git push*"',
        meaning="a glob the call's command (bash) or main input must match as a whole",
        pattern=r"\S",
    )
    regex: StrictStr | None = _key(
        None,
        kind="a string",
        expected="a regular expression",
        meaning="a regular expression searched for in the call's command or main input",
        pattern=r"\S",
    )
    path: StrictStr | None = _key(
        None,
        kind="a string",
        expected='a glob of paths, like "**/.env"',
        meaning="a glob the call's file path must match (relative to the workspace)",
        pattern=r"\S",
    )
    outside_workspace: StrictBool = _key(
        False,
        kind="true or false",
        meaning="match only calls whose file path is outside the workspace",
    )
    action: Literal["ask", "deny", "allow"] = _key(
        kind='one of "ask", "deny", "allow"',
        meaning="what happens to a matching call: wait for a person, refuse it, or let it run",
    )
    reason: StrictStr | None = _key(
        None,
        kind="a string",
        expected="a non-empty string",
        meaning="why, in a few words (shown to the person and, on a refusal, to the model)",
        pattern=r"\S",
    )
    expires_after: PositiveDuration | None = _key(
        None,
        kind="a duration",
        meaning="how long an approval this rule asks for may wait before its expiry action is taken",
    )
    on_expiry: Literal["deny", "approve"] = _key(
        "deny",
        kind='one of "deny", "approve"',
        meaning="what an approval that waited past expires_after becomes",
    )

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise _Problems.one(f"not a valid regular expression: {exc}") from None
        return value


class ApprovalsSpec(_Table):
    """`[approvals]`: what waits for a person."""

    sign_off: StrictBool = _key(
        False,
        kind="true or false",
        meaning="when every feature passes, wait for a person's sign-off before the run is done",
    )
    default_rules: StrictBool = _key(
        True,
        kind="true or false",
        meaning="after the rules below, ask before destructive or outward-facing calls "
        "(pushes, rm -rf outside the workspace, publishing, network tools, writes outside the workspace)",
    )
    rules: tuple[RuleSpec, ...] = _key(
        (),
        kind="an array of tables ([[approvals.rules]])",
        meaning="tool-call rules, the first that matches decides",
    )


class PriceSpec(_Table):
    """One model's prices in USD per million tokens (for `[pricing."model-name"]`)."""

    input: StrictFloat = _key(kind="a number", expected="a number of at least 0", meaning="input", ge=0)
    output: StrictFloat = _key(kind="a number", expected="a number of at least 0", meaning="output", ge=0)
    cache_write: StrictFloat | None = _key(
        None, kind="a number", expected="a number of at least 0", meaning="cache writes", ge=0
    )
    cache_read: StrictFloat | None = _key(
        None, kind="a number", expected="a number of at least 0", meaning="cache reads", ge=0
    )


class FeatureSpec(_Table):
    """`[[features]]`: one item of the done-condition and how the judge checks it."""

    id: StrictStr = _key(
        kind="a string",
        expected='an id of lowercase letters, digits, "_", "." or "-", starting with a letter or digit',
        meaning='a short unique name for the feature, like "api-tests"',
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
    )
    description: StrictStr = _key(
        kind="a string",
        expected="a non-empty string",
        meaning="what the feature is, in a sentence",
        pattern=r"\S",
    )
    check: StrictStr | None = _key(
        None,
        kind="a string",
        expected="a shell command (a non-empty string)",
        meaning="a shell command, run in the workspace, that exits 0 when the feature is done",
        pattern=r"\S",
    )
    rubric: StrictStr | None = _key(
        None,
        kind="a string",
        expected="a non-empty string",
        meaning="what the LLM judge looks for to pass the feature",
        pattern=r"\S",
    )
    timeout: PositiveDuration = _key(
        timedelta(minutes=5),
        kind="a duration",
        meaning="how long the check may run before it counts as an error",
    )

    @model_validator(mode="after")
    def _has_a_judge(self) -> FeatureSpec:
        if self.check is None and self.rubric is None:
            raise _Problems.one(
                f'feature "{self.id}" needs a check (a shell command), a rubric (for the LLM judge), or both'
            )
        return self


class RunSpec(_Table):
    """A whole run spec, validated; `model_dump(mode="json")` and `model_validate` round-trip it."""

    name: StrictStr = _key(
        kind="a string",
        expected='a name of 1 to 64 letters, digits, "-", "_", "." or spaces, '
        "starting with a letter or digit",
        meaning="a short name for the run, shown in lists",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
    )
    goal: StrictStr = _key(
        kind="a string",
        expected="a non-empty string",
        meaning="what the run is for",
        pattern=r"\S",
    )
    workspace: Path = _key(
        kind="a string",
        expected="a path to a folder (a string)",
        meaning="the folder (a git working tree) the agent works in",
    )
    worker: WorkerSpec = _key(factory=WorkerSpec, kind="a table", meaning="what does the work")
    session: SessionSpec = _key(factory=SessionSpec, kind="a table", meaning="how long each session runs")
    budget: BudgetSpec = _key(factory=BudgetSpec, kind="a table", meaning="hard spending caps")
    schedule: ScheduleSpec = _key(factory=ScheduleSpec, kind="a table", meaning="when sessions start")
    breakers: BreakersSpec = _key(factory=BreakersSpec, kind="a table", meaning="circuit breakers")
    notify: NotifySpec = _key(factory=NotifySpec, kind="a table", meaning="where notifications go")
    judge: JudgeSpec = _key(factory=JudgeSpec, kind="a table", meaning="how features are judged")
    approvals: ApprovalsSpec = _key(factory=ApprovalsSpec, kind="a table", meaning="what waits for a person")
    pricing: dict[str, PriceSpec] = _key(
        factory=dict,
        kind="a table",
        meaning="prices for models, overriding longrun's table (USD per million tokens)",
    )
    features: tuple[FeatureSpec, ...] = _key(
        (),
        kind="an array of tables ([[features]])",
        meaning="the done-condition: what must pass for the run to be done",
    )

    @field_validator("workspace", mode="before")
    @classmethod
    def _workspace_path(cls, value: Any, info: ValidationInfo) -> Any:
        """`~` is expanded and a relative workspace is taken from the spec's folder, not the cwd."""
        if isinstance(value, Path):
            value = str(value)
        if not isinstance(value, str):
            return value
        if not value.strip():
            raise _Problems.one(f"expected a path to a folder (a string), found {toml_repr(value)}")
        return _resolve_path(value, info)

    @field_validator("features")
    @classmethod
    def _unique_ids(cls, features: tuple[FeatureSpec, ...]) -> tuple[FeatureSpec, ...]:
        first_seen: dict[str, int] = {}
        problems: list[tuple[Loc, str]] = []
        for index, feature in enumerate(features):
            if feature.id == RATCHET:
                taken = f'"{RATCHET}" is the test ratchet\'s name; choose another id'
                problems.append(((index, "id"), taken))
            elif feature.id in first_seen:
                problems.append(
                    (
                        (index, "id"),
                        f'duplicate id "{feature.id}" (features[{first_seen[feature.id] + 1}] has it too)',
                    )
                )
            else:
                first_seen[feature.id] = index
        if problems:
            raise _Problems(problems)
        return features


# ---------------------------------------------------------------------------------------------
# Error messages


@dataclass(frozen=True)
class _KeyInfo:
    """What the messages say about one key, and the table model below it, if any."""

    kind: str
    expected: str
    meaning: str
    table: type[BaseModel] | None = None
    item_table: type[BaseModel] | None = None


_ROOT = _KeyInfo("a table", "a table", "the spec", table=RunSpec)


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def _key_info(model: type[BaseModel], name: str) -> _KeyInfo | None:
    field = model.model_fields.get(name)
    if field is None:
        return None
    extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
    kind = str(extra.get("kind", "a valid value"))
    item_table = None
    if get_origin(field.annotation) in (tuple, list):
        item_table = next((m for m in map(_model_in, get_args(field.annotation)) if m), None)
    return _KeyInfo(
        kind=kind,
        expected=str(extra.get("expected", kind)),
        meaning=field.description or "",
        table=_model_in(field.annotation),
        item_table=item_table,
    )


def _info_at(loc: Loc) -> _KeyInfo | None:
    """Follow a key path from the top of the spec to the words for the key it ends at."""
    info: _KeyInfo | None = _ROOT
    for part in loc:
        if info is None:
            return None
        if isinstance(part, int):
            info = _KeyInfo("a table", "a table", "one item", table=info.item_table)
        elif info.table is None:
            return None
        else:
            info = _key_info(info.table, part)
    return info


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def key_path(loc: Loc) -> str:
    """Write a key path as a person reads it: `features[2].check` (array items counted from 1)."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part + 1}]"
        else:
            name = part if _BARE_KEY.match(part) else json.dumps(part, ensure_ascii=False)
            text += f".{name}" if text else name
    return text


def _all_keys(model: type[BaseModel], prefix: Loc = ()) -> Iterator[Loc]:
    for name in model.model_fields:
        info = _key_info(model, name)
        yield (*prefix, name)
        if info and info.table:
            yield from _all_keys(info.table, (*prefix, name))


def _unknown_key(loc: Loc) -> str:
    """Say a key is unknown and suggest the key most likely meant: a near spelling here, else elsewhere."""
    parent = _info_at(loc[:-1])
    name = str(loc[-1])
    table = parent.table if parent else None
    if table is None:
        return "unknown key"
    close = difflib.get_close_matches(name, list(table.model_fields), n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {key_path((*loc[:-1], close[0]))}?)"
    elsewhere = [path for path in _all_keys(RunSpec) if path[-1] == name]
    if elsewhere:
        return f"unknown key (did you mean {key_path(elsewhere[0])}?)"
    return f"unknown key (expected one of: {', '.join(table.model_fields)})"


def _explain(error: Mapping[str, Any]) -> str:
    loc: Loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        return _unknown_key(loc)
    info = _info_at(loc)
    if error["type"] == "missing":
        if info is None:
            return "missing"
        return f"missing (expected {info.kind}: {info.meaning})"
    expected = info.expected if info else "a valid value"
    return f"expected {expected}, found {toml_repr(error.get('input'))}"


def _messages(exc: ValidationError, source: str, override_locs: Sequence[Loc]) -> list[str]:
    """One line per problem, naming where it came from (the file or `--set`) and the key path."""

    def line(loc: Loc, text: str) -> str:
        if any(loc[: len(over)] == over for over in override_locs):
            return f"{OVERRIDE_SOURCE} {key_path(loc)}: {text}"
        return f"{source}: {key_path(loc)}: {text}" if loc else f"{source}: {text}"

    lines: list[str] = []
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        found = (error.get("ctx") or {}).get("error")
        items = found.items if isinstance(found, _Problems) else [((), _explain(error))]
        lines.extend(line((*loc, *at), text) for at, text in items)
    return lines


def _spec_error(lines: Sequence[str]) -> SpecError:
    """One SpecError for many problems: the first in the message, all of them on `.errors`."""
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    error = SpecError(lines[0] + more)
    error.errors = list(lines)  # type: ignore[attr-defined]
    return error


# ---------------------------------------------------------------------------------------------
# Reading


_TOML_AT = re.compile(r"^(?P<reason>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$")


def _parse_toml(text: str, source: str) -> dict[str, Any]:
    """Parse TOML; a syntax error names the file, line and column, in the form editors jump to."""
    try:
        return tomllib.loads(text)
    except (ValueError, RecursionError) as exc:
        message = str(exc)
        match = _TOML_AT.match(message)
        if match is None:
            raise _spec_error([f"{source}: not valid TOML: {message}"]) from None
        if match["line"]:
            line, col = int(match["line"]), int(match["col"])
        else:
            line = text.count("\n") + 1
            col = len(text) - text.rfind("\n")
        raise _spec_error([f"{source}:{line}:{col}: not valid TOML: {match['reason']}"]) from None


_OVERRIDE_EXAMPLE = "like budget.usd=0.05"


def _override_value(text: str) -> Any:
    """A TOML value when the text is one (`0.05`, `true`, `[1, 2]`, `"x"`), else the text itself."""
    try:
        parsed = tomllib.loads(f"value = {text}")
    except (ValueError, RecursionError):
        return text
    return parsed["value"] if list(parsed) == ["value"] else text


def _apply(raw: Mapping[str, Any], overrides: Sequence[str], source: str) -> tuple[dict[str, Any], list[Loc]]:
    """Apply `KEY=VALUE` overrides to a copy of `raw`; return it and the key path each one set."""
    result = copy.deepcopy(dict(raw))
    locs: list[Loc] = []
    problems: list[str] = []
    for override in overrides:
        key, equals, value_text = override.partition("=")
        key = key.strip()
        if not equals:
            problems.append(f"{source} {toml_repr(override)}: expected KEY=VALUE, {_OVERRIDE_EXAMPLE}")
            continue
        parts = [part.strip() for part in key.split(".")]
        if not key or not all(parts):
            problems.append(
                f"{source} {toml_repr(override)}: the key is empty, expected KEY=VALUE, {_OVERRIDE_EXAMPLE}"
            )
            continue
        try:
            locs.append(_set_path(result, parts, _override_value(value_text.strip())))
        except _OverrideProblem as exc:
            problems.append(f"{source} {key}: {exc}")
    if problems:
        raise _spec_error(problems)
    return result, locs


class _OverrideProblem(Exception):
    """An override whose key path runs through something that is not a table."""


def _set_path(target: dict[str, Any], parts: Sequence[str], value: Any) -> Loc:
    """Set `value` at a dotted key path, creating tables on the way; numbers index arrays from 1."""
    loc: list[str | int] = []
    node: Any = target
    for depth, part in enumerate(parts):
        last = depth == len(parts) - 1
        if isinstance(node, list):
            if not part.isdigit() or not 1 <= int(part) <= len(node):
                items = f"{len(node)} item" + ("s" if len(node) != 1 else "")
                raise _OverrideProblem(
                    f"{key_path(tuple(loc))} has {items}; expected an item number counted from 1, "
                    f"found {toml_repr(part)}"
                )
            index = int(part) - 1
            loc.append(index)
            if last:
                node[index] = value
            else:
                node = node[index]
            continue
        if not isinstance(node, dict):
            raise _OverrideProblem(f"{key_path(tuple(loc))} is not a table (found {toml_repr(node)})")
        loc.append(part)
        if last:
            node[part] = value
        else:
            node = node.setdefault(part, {})
    return tuple(loc)


def apply_overrides(
    raw: dict[str, Any], overrides: Sequence[str], *, source: str = OVERRIDE_SOURCE
) -> dict[str, Any]:
    """Return a copy of a parsed spec with `KEY=VALUE` overrides (from `--set`) applied.

    KEY is a dotted path (`budget.usd`, `features.2.check`); VALUE is read as TOML and kept as
    text when it is not TOML, so `session.time_box=20s` needs no quotes. Unknown keys are left
    for validation to report.
    """
    return _apply(raw, overrides, source)[0]


def parse_spec(text: str, *, source: str, base_dir: Path | str, overrides: Sequence[str] = ()) -> RunSpec:
    """Validate spec text; `source` names it in messages, `base_dir` anchors its relative paths."""
    raw = _parse_toml(text, source)
    raw, override_locs = _apply(raw, overrides, OVERRIDE_SOURCE)
    base = Path(base_dir).expanduser().absolute()
    try:
        return RunSpec.model_validate(raw, context={"base_dir": base})
    except ValidationError as exc:
        raise _spec_error(_messages(exc, source, override_locs)) from None


def load_spec(path: Path | str, overrides: Sequence[str] = ()) -> RunSpec:
    """Read and validate the spec file at `path`; its relative paths are taken from its folder."""
    source = os.fspath(path)
    file = Path(source).expanduser()
    try:
        data = file.read_bytes()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise _spec_error([f"{source}: cannot read the spec: {reason.lower()}"]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise _spec_error([f"{source}: not UTF-8 text (byte {exc.start} cannot be decoded)"]) from None
    return parse_spec(text, source=source, base_dir=file.parent, overrides=overrides)


def parse_features(text: str, *, source: str, spec: RunSpec) -> RunSpec:
    """`spec` with its done-condition replaced by the `[[features]]` tables of `text` (a features
    file a person edited); problems are one-line errors naming the file and the key."""
    raw = _parse_toml(text, source)
    extra = sorted(key for key in raw if key != "features")
    if extra:
        raise _spec_error([f"{source}: {extra[0]}: only [[features]] tables belong in a features file"])
    features = raw.get("features")
    if not features:
        raise _spec_error([f"{source}: a done-condition needs at least one [[features]] table"])
    try:
        return RunSpec.model_validate({**spec.model_dump(mode="json"), "features": features})
    except ValidationError as exc:
        raise _spec_error(_messages(exc, source, ())) from None
