"""The spec's `[sandbox]` table: what confines the worker's hands during a session."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import StrictInt, StrictStr, field_validator

from longrun.evaluators.command import is_withheld
from longrun.scheduler.endpoints.egress import HostRule
from longrun.scheduler.spec.durations import toml_repr
from longrun.scheduler.spec.keys import Loc, Problems, Table, spec_key

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_NETWORK = '"off", "on", or an array of hosts ("pypi.org", "*.pythonhosted.org", "10.0.0.5:8080")'


class SandboxSpec(Table):
    """`[sandbox]`: the per-session bubblewrap sandbox the worker's tool calls run in."""

    mode: Literal["on", "off"] = spec_key(
        "on",
        kind='one of "on", "off"',
        meaning='"off" runs the worker unconfined, as the user who started longrun (said on the run)',
    )
    network: Literal["off", "on"] | tuple[StrictStr, ...] = spec_key(
        "off",
        kind='"off", "on" or an array of hosts',
        expected=_NETWORK,
        meaning=(
            "whether tool calls reach the network: not at all, freely, or only these hosts through "
            "longrun's egress proxy (the approval policy applies either way)"
        ),
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

    @field_validator("network", mode="before")
    @classmethod
    def _hosts(cls, network: Any) -> Any:
        if network in ("off", "on"):
            return network
        if not isinstance(network, list | tuple):
            raise Problems.one(f"expected {_NETWORK}, found {toml_repr(network)}")
        if not network:
            raise Problems.one('an empty list allows no host: write "off"')
        problems: list[tuple[Loc, str]] = []
        for k, text in enumerate(network):
            try:
                if not isinstance(text, str):
                    raise ValueError(f"expected a host (a string), found {toml_repr(text)}")
                HostRule.parse(text)
            except ValueError as exc:
                problems.append(((k,), str(exc)))
        if problems:
            raise Problems(problems)
        return tuple(network)

    @property
    def allowed_hosts(self) -> tuple[HostRule, ...]:
        """The hosts the egress proxy lets through (none when the network is "off" or "on")."""
        if isinstance(self.network, str):
            return ()
        return tuple(HostRule.parse(text) for text in self.network)

    @property
    def network_words(self) -> str:
        """The network setting in words: off, on, or the hosts allowed."""
        if isinstance(self.network, str):
            return self.network
        return "only " + ", ".join(self.network)

    @field_validator("pass_env")
    @classmethod
    def _names(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        for k, name in enumerate(names):
            if not _ENV_NAME.match(name):
                raise Problems.one(f"{name!r} is not an environment variable name", at=(k,))
            if is_withheld(name):
                raise Problems.one(f"{name} looks like a secret: no secret enters the sandbox", at=(k,))
        return names
