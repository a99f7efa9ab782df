"""Every command, flag and spec key a person is told about exists: in the README, and in any message
longrun prints (the reasons a run shows, errors, hints). Each is parsed by the real parser."""

from __future__ import annotations

import argparse
import re
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from longrun.app.cli import build_parser
from longrun.scheduler.spec.run import RunSpec

ROOT = Path(__file__).parents[2]
SOURCES = [p for folder in ("app", "scheduler", "store") for p in sorted((ROOT / folder).rglob("*.py"))]
_IN_TICKS = re.compile(r"`(longrun [^`\n]+)`")
_PLACEHOLDER = re.compile(r"\{[^}]*\}|\b[A-Z][A-Z0-9_.]*(?:=[A-Z0-9_.]+)?\b|<[^>]+>")
_SPEC_KEY = re.compile(r"`\[([a-z_.]+)\] ([a-z_]+)`")


def _readme_commands() -> Iterator[tuple[str, str]]:
    text = (ROOT / "README.md").read_text()
    in_code = False
    for n, line in enumerate(text.splitlines(), 1):
        if line.startswith("```"):
            in_code = not in_code
            continue
        stripped = line.strip().removeprefix("$ ")
        if in_code and stripped.startswith("longrun "):
            yield f"README.md:{n}", stripped.split("  #")[0].split(" # ")[0]
        for found in _IN_TICKS.findall(line):
            yield f"README.md:{n}", found


def _message_commands() -> Iterator[tuple[str, str]]:
    for path in SOURCES:
        for n, line in enumerate(path.read_text().splitlines(), 1):
            for found in _IN_TICKS.findall(line):
                yield f"{path.relative_to(ROOT)}:{n}", found


def _words(command: str) -> list[str] | None:
    """The command's words with placeholders filled in; None when it is a pattern, not a command."""
    if "…" in command or "..." in command:
        return None
    text = command.replace("[", " ").replace("]", " ").replace("|", " ")
    text = _PLACEHOLDER.sub("1", text)
    try:
        return shlex.split(text)[1:]
    except ValueError:
        return None


def problem(words: list[str]) -> str | None:
    """What in a command does not exist: a verb (walked down the real parser's subcommands) or a
    flag of the command it reaches. Missing arguments are no problem: the text may leave them out."""
    parser: argparse.ArgumentParser = build_parser()
    rest = list(words)
    while rest and not rest[0].startswith("-"):
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            break
        choices = subs[0].choices
        if rest[0] not in choices:
            if rest[0] == "1":
                break  # a placeholder where a positional goes
            return f"no command {rest[0]!r} (there are: {', '.join(choices)})"
        parser = choices[rest.pop(0)]
    flags = {s for a in parser._actions for s in a.option_strings}
    for word in rest:
        if word.startswith("--") and "=" not in word and word != "--1" and word not in flags:
            return f"no flag {word} (the command has: {', '.join(sorted(flags))})"
    return None


COMMANDS = sorted(set(_readme_commands()) | set(_message_commands()))


def test_the_walk_finds_what_people_are_told() -> None:
    named = {c for _, c in COMMANDS}
    assert len(COMMANDS) > 40
    assert any(c.startswith("longrun breaker reset") for c in named)
    assert problem(["breaker", "reset", "1", "1"]) is None
    assert problem(["breaker", "rest"]) is not None and problem(["events", "1", "--nope"]) is not None


@pytest.mark.parametrize(("where", "command"), COMMANDS, ids=[f"{w} {c}"[:90] for w, c in COMMANDS])
def test_every_command_a_person_is_told_about_exists(where: str, command: str) -> None:
    words = _words(command)
    if words is None:
        pytest.skip("a pattern, not a command")
    found = problem(words)
    assert found is None, f"{where}: `{command}`: {found}"


def _keys(model: type[BaseModel], path: list[str]) -> type[BaseModel] | None:
    for part in path:
        field = model.model_fields.get(part)
        if field is None:
            return None
        inner = field.annotation
        args = getattr(inner, "__args__", ())
        candidates = [inner, *args]
        found = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if found is None:
            return None
        model = found
    return model


SPEC_KEYS = sorted(
    {
        (f"README.md:{n}", table, key)
        for n, line in enumerate((ROOT / "README.md").read_text().splitlines(), 1)
        for table, key in _SPEC_KEY.findall(line)
    }
)


@pytest.mark.parametrize(("where", "table", "key"), SPEC_KEYS, ids=[f"[{t}] {k}" for _, t, k in SPEC_KEYS])
def test_every_spec_key_the_readme_names_exists(where: str, table: str, key: str) -> None:
    model = _keys(RunSpec, table.replace("[", "").replace("]", "").split("."))
    assert model is not None, f"{where}: no spec table [{table}]"
    assert key in model.model_fields, f"{where}: [{table}] has no key {key!r}"
