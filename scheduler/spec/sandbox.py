"""The spec's `[sandbox]` table: what confines the worker's hands during a session."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import StrictInt, StrictStr, field_validator

from longrun.evaluators.command import is_withheld
from longrun.scheduler.spec.keys import Problems, Table, spec_key

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class SandboxSpec(Table):
    """`[sandbox]`: the per-session bubblewrap sandbox the worker's tool calls run in."""

    mode: Literal["on", "off"] = spec_key(
        "on",
        kind='one of "on", "off"',
        meaning='"off" runs the worker unconfined, as the user who started longrun (said on the run)',
    )
    network: Literal["off", "on"] = spec_key(
        "off",
        kind='one of "off", "on"',
        meaning="whether tool calls reach the network (the approval policy applies either way)",
    )
    memory_mb: StrictInt = spec_key(
        4096,
        kind="an integer",
        expected="an integer of at least 64",
        meaning="memory for everything the session's tool calls run, in MiB",
        ge=64,
    )
    processes: StrictInt = spec_key(
        512,
        kind="an integer",
        expected="an integer of at least 8",
        meaning="processes (and threads) the session's tool calls may have at once",
        ge=8,
    )
    cpu_minutes: StrictInt = spec_key(
        300,
        kind="an integer",
        expected="an integer of at least 1",
        meaning="CPU time all of the session's tool calls may use, in minutes",
        ge=1,
    )
    pass_env: tuple[StrictStr, ...] = spec_key(
        (),
        kind="an array of strings",
        expected="an array of environment variable names",
        meaning="variables passed into the sandbox besides PATH, LANG and the like (never a secret)",
    )

    @field_validator("pass_env")
    @classmethod
    def _names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for k, name in enumerate(names):
            if not _ENV_NAME.match(name):
                raise Problems.one(f"{name!r} is not an environment variable name", at=(k,))
            if is_withheld(name):
                raise Problems.one(f"{name} looks like a secret: no secret enters the sandbox", at=(k,))
        return names
