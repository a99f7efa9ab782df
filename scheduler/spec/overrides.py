"""`--set KEY=VALUE`: overrides applied to a parsed spec before it is validated."""

from __future__ import annotations

import copy
import tomllib
from collections.abc import Mapping, Sequence
from typing import Any

from longrun.scheduler.spec.durations import toml_repr
from longrun.scheduler.spec.keys import OVERRIDE_SOURCE, Loc
from longrun.scheduler.spec.messages import key_path, spec_error

_OVERRIDE_EXAMPLE = "like budget.usd=0.05"


def _override_value(text: str) -> Any:
    """A TOML value when the text is one (`0.05`, `true`, `[1, 2]`, `"x"`), else the text itself."""
    try:
        parsed = tomllib.loads(f"value = {text}")
    except (ValueError, RecursionError):
        return text
    return parsed["value"] if list(parsed) == ["value"] else text


def apply_with_locs(
    raw: Mapping[str, Any], overrides: Sequence[str], source: str
) -> tuple[dict[str, Any], list[Loc]]:
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
        raise spec_error(problems)
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
    return apply_with_locs(raw, overrides, source)[0]
