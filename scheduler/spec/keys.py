"""How a spec key is declared: its default, constraints and the words its messages use; the base of
every table; and `Problems`, the one-line problems a validator reports with their key paths.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    ValidationInfo,
)

Loc = tuple[str | int, ...]

OVERRIDE_SOURCE = "--set"
RATCHET = "ratchet"
"""The verdicts of the test ratchet are kept under this feature id."""


class Problems(ValueError):
    """Problems a validator found, each with its key path relative to where pydantic reports it.

    It is a ValueError so that pydantic collects it like any other; `problem_lines` unpacks it.
    """

    def __init__(self, items: Sequence[tuple[Loc, str]]) -> None:
        super().__init__(items[0][1])
        self.items = list(items)

    @classmethod
    def one(cls, text: str, at: Loc = ()) -> Problems:
        return cls([(at, text)])


def spec_key(
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


def resolve_path(value: str, info: ValidationInfo) -> str:
    """Expand `~` and make a relative path absolute against the spec's folder, when it is known."""
    path = Path(value).expanduser()
    base_dir = (info.context or {}).get("base_dir")
    if base_dir is not None and not path.is_absolute():
        path = Path(base_dir) / path
    return os.path.abspath(path) if path.is_absolute() else str(path)


class Table(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
