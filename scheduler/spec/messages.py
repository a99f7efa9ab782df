"""Turning pydantic's validation errors into one line per problem: the file (or `--set`), the key
path as a person reads it, what was found and what was expected.
"""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, get_args, get_origin

from pydantic import (
    BaseModel,
    ValidationError,
)

from longrun.scheduler.spec.durations import toml_repr
from longrun.scheduler.spec.keys import OVERRIDE_SOURCE, Loc, Problems
from longrun.store.errors import SpecError


@dataclass(frozen=True)
class _KeyInfo:
    """What the messages say about one key, and the table model below it, if any."""

    kind: str
    expected: str
    meaning: str
    table: type[BaseModel] | None = None
    item_table: type[BaseModel] | None = None


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


def _info_at(loc: Loc, root: type[BaseModel]) -> _KeyInfo | None:
    """Follow a key path from a table (the top of the spec, by default) to the words for its key."""
    info: _KeyInfo | None = _KeyInfo("a table", "a table", "the spec", table=root)
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


def _unknown_key(loc: Loc, root: type[BaseModel], prefix: Loc) -> str:
    """Say a key is unknown and suggest the key most likely meant: a near spelling here, else elsewhere."""
    parent = _info_at(loc[:-1], root)
    name = str(loc[-1])
    table = parent.table if parent else None
    if table is None:
        return "unknown key"
    close = difflib.get_close_matches(name, list(table.model_fields), n=1, cutoff=0.6)
    if close:
        return f"unknown key (did you mean {key_path((*prefix, *loc[:-1], close[0]))}?)"
    elsewhere = [path for path in _all_keys(_spec()) if path[-1] == name]
    if elsewhere:
        return f"unknown key (did you mean {key_path(elsewhere[0])}?)"
    return f"unknown key (expected one of: {', '.join(table.model_fields)})"


def _spec() -> type[BaseModel]:
    from longrun.scheduler.spec.run import RunSpec

    return RunSpec


def _explain(error: Mapping[str, Any], root: type[BaseModel], prefix: Loc = ()) -> str:
    loc: Loc = tuple(error["loc"])
    if error["type"] == "extra_forbidden":
        return _unknown_key(loc, root, prefix)
    info = _info_at(loc, root)
    if error["type"] == "missing":
        if info is None:
            return "missing"
        return f"missing (expected {info.kind}: {info.meaning})"
    expected = info.expected if info else "a valid value"
    return f"expected {expected}, found {toml_repr(error.get('input'))}"


def problem_lines(exc: ValidationError, source: str, override_locs: Sequence[Loc]) -> list[str]:
    """One line per problem, naming where it came from (the file or `--set`) and the key path."""

    def line(loc: Loc, text: str) -> str:
        if any(loc[: len(over)] == over for over in override_locs):
            return f"{OVERRIDE_SOURCE} {key_path(loc)}: {text}"
        return f"{source}: {key_path(loc)}: {text}" if loc else f"{source}: {text}"

    return [line(loc, text) for loc, text in explained(exc, _spec())]


def explained(exc: ValidationError, table: type[BaseModel], at: Loc = ()) -> list[tuple[Loc, str]]:
    """Each problem of a validation of `table` with its key path (relative to the table) and its
    words; `at` is where the table sits in the spec, for the key paths the words suggest."""
    items: list[tuple[Loc, str]] = []
    for error in exc.errors(include_url=False):
        loc: Loc = tuple(error["loc"])
        found = (error.get("ctx") or {}).get("error")
        if isinstance(found, Problems):
            items.extend(((*loc, *sub), text) for sub, text in found.items)
        else:
            items.append((loc, _explain(error, table, at)))
    return items


def spec_error(lines: Sequence[str]) -> SpecError:
    """One SpecError for many problems: the first in the message, all of them on `.errors`."""
    more = f" (and {len(lines) - 1} more)" if len(lines) > 1 else ""
    error = SpecError(lines[0] + more)
    error.errors = list(lines)  # type: ignore[attr-defined]
    return error
