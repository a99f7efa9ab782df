"""The spec's tables for what decides and who approves: `[[features]]`, `[judge]`,
`[judge.ratchet]`, `[approvals]` and `[[approvals.rules]]`.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Literal

from pydantic import (
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationInfo,
    field_validator,
    model_validator,
)

from longrun.scheduler.spec.durations import PositiveDuration, toml_repr
from longrun.scheduler.spec.keys import Problems, Table, spec_key
from longrun.scheduler.spec.worker import script_ref
from longrun.scheduler.workers.registry import model_backends


class RatchetSpec(Table):
    """`[judge.ratchet]`: the test ratchet, which fails a checkpoint whose tests went down."""

    enabled: StrictBool = spec_key(
        True,
        kind="true or false",
        meaning="whether tests must never go down (in number, or by being emptied, skipped or "
        "deselected) against the latest checkpoint that passed it",
    )
    tests: tuple[StrictStr, ...] | None = spec_key(
        None,
        kind="an array of strings",
        expected='an array of glob patterns, like ["tests/**/test_*.py"]',
        meaning="which files are test files (globs from the workspace root); unset: common patterns",
    )
    collect: StrictStr = spec_key(
        "auto",
        kind="a string",
        expected='a shell command, "auto" or "none"',
        meaning='"auto" runs a Python suite itself and compares every test function; a shell '
        'command instead only counts the tests it lists; "none" counts files only',
        pattern=r"\S",
    )
    timeout: PositiveDuration = spec_key(
        timedelta(minutes=5),
        kind="a duration",
        meaning="how long the ratchet's run of the tests may take before it counts as an error",
    )


class HarnessSpec(Table):
    """`[judge.harness]`: the files a check depends on, pinned when the done-condition is approved."""

    pin: StrictBool = spec_key(
        True,
        kind="true or false",
        meaning="whether the check harness (runner settings, conftest files, the scripts and build "
        "files the checks name) is pinned; a change to it waits for a person",
    )
    include: tuple[StrictStr, ...] = spec_key(
        (),
        kind="an array of strings",
        expected='an array of glob patterns, like ["scripts/**"]',
        meaning="more files to pin (globs from the workspace root)",
    )
    exclude: tuple[StrictStr, ...] = spec_key(
        (),
        kind="an array of strings",
        expected='an array of glob patterns, like ["package.json"]',
        meaning="files never pinned, even when the harness would be (globs from the workspace root)",
    )


class JudgeSpec(Table):
    """`[judge]`: the LLM rubric judge and the test ratchet. The judge is never the worker."""

    backend: StrictStr | None = spec_key(
        None,
        kind="a backend name",
        expected="the name of a backend that serves a model",
        meaning="where the rubric judge's model runs; unset: the worker's backend when it serves a model",
    )
    model: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="a model name (a non-empty string)",
        meaning="the model that judges rubrics; unset: the worker's model",
        min_length=1,
    )
    max_tokens: StrictInt = spec_key(
        2048,
        kind="an integer",
        expected="an integer from 256 to 32000",
        meaning="the output token limit of one judge call",
        ge=256,
        le=32_000,
    )
    base_url: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="an http:// or https:// URL",
        meaning="where the judge's model API is served; unset: the worker's base_url",
        pattern=r"^https?://[^\s/?#]+\S*$",
    )
    script: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="a built-in script name or a path to a script file",
        meaning="the scripted judge's script (its [[judges]] replies); unset: the worker's script",
        pattern=r"\S",
    )
    budget_share: StrictFloat = spec_key(
        0.2,
        kind="a number",
        expected="a number greater than 0 and at most 1",
        meaning="the share of budget.usd the judge may spend; its cost is charged to the run",
        gt=0,
        le=1,
    )
    ratchet: RatchetSpec = spec_key(factory=RatchetSpec, kind="a table", meaning="the test ratchet")
    harness: HarnessSpec = spec_key(
        factory=HarnessSpec,
        kind="a table",
        meaning="the check harness pinned at the done-condition's approval",
    )

    @field_validator("script")
    @classmethod
    def _script_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        return script_ref(value, info)

    @field_validator("backend")
    @classmethod
    def _model_backend(cls, value: str | None) -> str | None:
        if value is not None and value not in model_backends():
            names = ", ".join(f'"{name}"' for name in model_backends())
            raise Problems.one(f"expected one of {names}, found {toml_repr(value)}")
        return value


class RuleSpec(Table):
    """`[[approvals.rules]]`: which tool calls ask a person first, are refused, or are let through."""

    tool: StrictStr = spec_key(
        kind="a string",
        expected='a tool name or a glob of tool names, like "bash" or "write"',
        meaning="the tool the rule is about (a glob: * matches any tool)",
        pattern=r"\S",
    )
    match: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected='a glob, like "git push*"',
        meaning="a glob the call's command (bash) or main input must match as a whole",
        pattern=r"\S",
    )
    regex: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="a regular expression",
        meaning="a regular expression searched for in the call's command or main input",
        pattern=r"\S",
    )
    path: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected='a glob of paths, like "**/.env"',
        meaning="a glob the call's file path must match (relative to the workspace)",
        pattern=r"\S",
    )
    outside_workspace: StrictBool = spec_key(
        False,
        kind="true or false",
        meaning="match only calls whose file path is outside the workspace",
    )
    action: Literal["ask", "deny", "allow"] = spec_key(
        kind='one of "ask", "deny", "allow"',
        meaning="what happens to a matching call: wait for a person, refuse it, or let it run",
    )
    reason: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="a non-empty string",
        meaning="why, in a few words (shown to the person and, on a refusal, to the model)",
        pattern=r"\S",
    )
    expires_after: PositiveDuration | None = spec_key(
        None,
        kind="a duration",
        meaning="how long an approval this rule asks for may wait before its expiry action is taken",
    )
    on_expiry: Literal["deny", "approve"] = spec_key(
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
                raise Problems.one(f"not a valid regular expression: {exc}") from None
        return value


class ApprovalsSpec(Table):
    """`[approvals]`: what waits for a person."""

    sign_off: StrictBool = spec_key(
        False,
        kind="true or false",
        meaning="when every feature passes, wait for a person's sign-off before the run is done",
    )
    default_rules: StrictBool = spec_key(
        True,
        kind="true or false",
        meaning="after the rules below, ask before destructive or outward-facing calls "
        "(pushes, rm -rf outside the workspace, publishing, network tools, writes outside the workspace)",
    )
    rules: tuple[RuleSpec, ...] = spec_key(
        (),
        kind="an array of tables ([[approvals.rules]])",
        meaning="tool-call rules, the first that matches decides",
    )


class FeatureSpec(Table):
    """`[[features]]`: one item of the done-condition and how the judge checks it."""

    id: StrictStr = spec_key(
        kind="a string",
        expected='an id of lowercase letters, digits, "_", "." or "-", starting with a letter or digit',
        meaning='a short unique name for the feature, like "api-tests"',
        pattern=r"^[a-z0-9][a-z0-9_.-]*$",
    )
    description: StrictStr = spec_key(
        kind="a string",
        expected="a non-empty string",
        meaning="what the feature is, in a sentence",
        pattern=r"\S",
    )
    check: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="a shell command (a non-empty string)",
        meaning="a shell command, run in the workspace, that exits 0 when the feature is done",
        pattern=r"\S",
    )
    rubric: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="a non-empty string",
        meaning="what the LLM judge looks for to pass the feature",
        pattern=r"\S",
    )
    timeout: PositiveDuration = spec_key(
        timedelta(minutes=5),
        kind="a duration",
        meaning="how long the check may run before it counts as an error",
    )

    @model_validator(mode="after")
    def _has_a_judge(self) -> FeatureSpec:
        if self.check is None and self.rubric is None:
            raise Problems.one(
                f'feature "{self.id}" needs a check (a shell command), a rubric (for the LLM judge), or both'
            )
        return self
