"""The `[worker]` table of the `command` backend: the command to run and what it is given.

A secret reaches the command only by name, from longrun's own environment
(`GITHUB_TOKEN = { from_env = "GITHUB_TOKEN" }`): a spec is stored, exported and shown, so a
literal value that looks like a secret is refused when the spec is checked.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from typing import Any

from pydantic import StrictStr, ValidationInfo, field_validator

from longrun.evaluators.command import is_withheld
from longrun.scheduler.spec.durations import toml_repr
from longrun.scheduler.spec.keys import Loc, Problems, Table, spec_key
from longrun.scheduler.spec.worker import WorkerSpec, script_ref

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

SECRET_SHAPES = re.compile(
    r"sk-ant-|\bsk-[A-Za-z0-9_-]{16,}|\bgh[pousr]_[A-Za-z0-9]{20,}|\bgithub_pat_|\bglpat-|"
    r"\bxox[abposr]-|\bAKIA[0-9A-Z]{16}\b|\bAIza[0-9A-Za-z_-]{30,}|-----BEGIN [A-Z ]*PRIVATE KEY"
)
"""Values shaped like a well-known provider's key, whatever the variable is called."""

COMMAND_EXPECTED = 'an array of strings (the argv, like ["./ralph.sh"]) or a string (run by sh -c)'

RESERVED = ("LONGRUN_", "ANTHROPIC_")
"""`LONGRUN_*` is longrun's contract with the command; `ANTHROPIC_*` is the metering proxy's."""


class FromEnv(Table):
    """`{ from_env = "NAME" }`: the value of NAME in longrun's environment when the session starts."""

    from_env: StrictStr = spec_key(
        kind="a string",
        expected="the name of a variable in longrun's environment",
        meaning="where the value comes from",
    )


def looks_like_secret(name: str, value: str) -> bool:
    """Whether a literal value must not be written in a spec: a secret's name, or a key's shape."""
    return is_withheld(name) or SECRET_SHAPES.search(value) is not None


class CommandWorkerSpec(WorkerSpec):
    """`[worker]` with `backend = "command"`."""

    command: tuple[StrictStr, ...] | StrictStr = spec_key(
        kind="an array of strings or a string",
        expected=COMMAND_EXPECTED,
        meaning="what runs each session, in the workspace (required with this backend)",
    )
    env: dict[str, StrictStr | FromEnv] = spec_key(
        factory=dict,
        kind="a table",
        meaning='variables the command gets besides longrun\'s own; a secret only as { from_env = "NAME" }',
    )
    script: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="a built-in script name or a path to a script file",
        meaning="serve this scripted model behind ANTHROPIC_BASE_URL instead of the API (tests and demos)",
    )

    @field_validator("command", mode="before")
    @classmethod
    def _command(cls, value: Any) -> Any:
        if isinstance(value, str):
            if not value.strip():
                raise Problems.one(f"expected {COMMAND_EXPECTED}, found {toml_repr(value)}")
            return value
        if isinstance(value, list | tuple):
            if not value:
                raise Problems.one(f"expected {COMMAND_EXPECTED}, found an empty array")
            for k, word in enumerate(value):
                if not isinstance(word, str):
                    raise Problems.one(f"expected a string, found {toml_repr(word)}", at=(k,))
            if not value[0].strip():
                raise Problems.one("the program to run (the first word) is empty", at=(0,))
            return tuple(value)
        raise Problems.one(f"expected {COMMAND_EXPECTED}, found {toml_repr(value)}")

    @field_validator("env", mode="before")
    @classmethod
    def _env(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value  # the type's own message
        problems: list[tuple[Loc, str]] = []
        for name, given in value.items():
            problem = _env_problem(str(name), given)
            if problem is not None:
                problems.append(((str(name),), problem))
        if problems:
            raise Problems(problems)
        return value

    @field_validator("script")
    @classmethod
    def _script_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        return script_ref(value, info)

    def argv(self) -> list[str]:
        """The words that run the command: the array as given, or a string through `sh -c`."""
        if isinstance(self.command, str):
            return ["/bin/sh", "-c", self.command]
        return list(self.command)

    def program(self) -> str:
        """The command's first word, for a line that names it (the dashboard's worker line)."""
        if isinstance(self.command, str):
            try:
                first = shlex.split(self.command)[:1]
            except ValueError:
                first = self.command.split()[:1]
            return first[0] if first else "sh"
        return self.command[0]


def _env_problem(name: str, given: Any) -> str | None:
    """What is wrong with one `env` entry, or None."""
    if not ENV_NAME.match(name):
        return f"{name!r} is not an environment variable name"
    reserved = next((prefix for prefix in RESERVED if name.startswith(prefix)), None)
    if reserved == "LONGRUN_":
        return "LONGRUN_* variables are longrun's own: the command gets them from longrun"
    if reserved == "ANTHROPIC_":
        return (
            "ANTHROPIC_* variables are set by longrun: ANTHROPIC_BASE_URL is the metering proxy, "
            "which holds the API key (the command gets a placeholder)"
        )
    if isinstance(given, str):
        if looks_like_secret(name, given):
            return (
                "a secret is never written in a spec: give it by name from longrun's environment, "
                f'{name} = {{ from_env = "{name}" }}'
            )
        return None
    if isinstance(given, Mapping):
        source = given.get("from_env")
        if set(given) != {"from_env"} or not isinstance(source, str):
            return f'expected a string or {{ from_env = "NAME" }}, found {toml_repr(dict(given))}'
        if not ENV_NAME.match(source):
            return f"from_env: {source!r} is not an environment variable name"
        if source.startswith(RESERVED):
            return (
                f"from_env: {source} stays with longrun (the metering proxy holds the API key; "
                "the command gets a placeholder)"
            )
        return None
    return f'expected a string or {{ from_env = "NAME" }}, found {toml_repr(given)}'
