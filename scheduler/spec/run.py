"""`RunSpec`: a whole run spec, validated, with the tables it is made of."""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import SerializeAsAny, StrictStr, ValidationInfo, field_validator

from longrun.scheduler.spec.checks import ApprovalsSpec, FeatureSpec, JudgeSpec
from longrun.scheduler.spec.durations import toml_repr
from longrun.scheduler.spec.keys import RATCHET, Loc, Problems, Table, resolve_path, spec_key
from longrun.scheduler.spec.sandbox import SandboxSpec
from longrun.scheduler.spec.tables import (
    BreakersSpec,
    BudgetSpec,
    NotifySpec,
    PriceSpec,
    ScheduleSpec,
    SessionSpec,
)
from longrun.scheduler.spec.worker import WorkerSpec
from longrun.scheduler.workers.registry import worker_table


class RunSpec(Table):
    """A whole run spec, validated; `model_dump(mode="json")` and `model_validate` round-trip it."""

    name: StrictStr = spec_key(
        kind="a string",
        expected='a name of 1 to 64 letters, digits, "-", "_", "." or spaces, '
        "starting with a letter or digit",
        meaning="a short name for the run, shown in lists",
        pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$",
    )
    goal: StrictStr = spec_key(
        kind="a string",
        expected="a non-empty string",
        meaning="what the run is for",
        pattern=r"\S",
    )
    workspace: Path = spec_key(
        kind="a string",
        expected="a path to a folder (a string)",
        meaning="the folder (a git working tree) the agent works in",
    )
    worker: SerializeAsAny[WorkerSpec] = spec_key(
        factory=WorkerSpec, kind="a table", meaning="what does the work"
    )
    session: SessionSpec = spec_key(factory=SessionSpec, kind="a table", meaning="how long each session runs")
    budget: BudgetSpec = spec_key(factory=BudgetSpec, kind="a table", meaning="hard spending caps")
    schedule: ScheduleSpec = spec_key(factory=ScheduleSpec, kind="a table", meaning="when sessions start")
    breakers: BreakersSpec = spec_key(factory=BreakersSpec, kind="a table", meaning="circuit breakers")
    notify: NotifySpec = spec_key(factory=NotifySpec, kind="a table", meaning="where notifications go")
    judge: JudgeSpec = spec_key(factory=JudgeSpec, kind="a table", meaning="how features are judged")
    approvals: ApprovalsSpec = spec_key(
        factory=ApprovalsSpec, kind="a table", meaning="what waits for a person"
    )
    sandbox: SandboxSpec = spec_key(
        factory=SandboxSpec, kind="a table", meaning="what the worker's tool calls can reach"
    )
    pricing: dict[str, PriceSpec] = spec_key(
        factory=dict,
        kind="a table",
        meaning="prices for models, overriding longrun's table (USD per million tokens)",
    )
    features: tuple[FeatureSpec, ...] = spec_key(
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
            raise Problems.one(f"expected a path to a folder (a string), found {toml_repr(value)}")
        return resolve_path(value, info)

    @field_validator("worker", mode="before")
    @classmethod
    def _backend_table(cls, value: Any, info: ValidationInfo) -> Any:
        """`[worker]` is checked by the table of its backend, which the worker registry names."""
        if isinstance(value, Mapping):
            return worker_table(value, info.context)
        return value

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
            raise Problems(problems)
        return features


@lru_cache(maxsize=4096)
def stored_spec(spec_json: str) -> RunSpec:
    """A spec as a run stores it (its JSON text), validated once per text: the supervisor looks at
    every run's spec every tick, and a spec only changes when a person changes it (a new text)."""
    return RunSpec.model_validate(json.loads(spec_json))
