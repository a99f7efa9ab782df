"""Durations as people write them (`90s`, `10m`, `1h30m`, `1d`), and values shown as TOML in messages."""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Mapping
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Annotated, Any

from pydantic import (
    PlainSerializer,
    PlainValidator,
)

from longrun.scheduler.spec.keys import Problems

DURATION_HINT = "a duration like 90s, 10m, 5h or 1d"

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
    if not isinstance(value, str):
        raise ValueError(f"expected {DURATION_HINT}, found {toml_repr(value)}")
    return _parse_text(value)


@lru_cache(maxsize=512)
def _parse_text(value: str) -> timedelta:
    """`parse_duration` of a string, kept: every spec a supervisor validates repeats a few."""
    match = _DURATION.fullmatch(value.strip())
    if match is None or not any(match.groupdict().values()):
        raise ValueError(f"expected {DURATION_HINT}, found {toml_repr(value)}")
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
                raise Problems.one(str(exc)) from None
        too_short = td < minimum if inclusive else td <= minimum
        if too_short:
            bound = "of at least" if inclusive else "longer than"
            raise Problems.one(
                f"expected a duration {bound} {format_duration(minimum)}, found {toml_repr(value)}"
            )
        return td

    return PlainValidator(validate, json_schema_input_type=str)


_as_text = PlainSerializer(format_duration, return_type=str, when_used="json")
TimeBox = Annotated[timedelta, _duration_validator(timedelta(seconds=10), inclusive=True), _as_text]
PositiveDuration = Annotated[timedelta, _duration_validator(timedelta(0), inclusive=False), _as_text]
