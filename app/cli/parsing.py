"""How a command group adds its commands: `Commands.add` gives each the shared `--home` (and, when
asked, `--json`) and the function that runs it; `Parser` turns a usage error into one line and
exit 2.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from longrun.app.cli.output import EXIT_USAGE

Handler = Callable[[argparse.Namespace], int]


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


@dataclass
class Commands:
    """The `longrun` command's subcommands, and the parent parsers every one of them shares."""

    sub: Any
    """The top-level subparsers (`argparse._SubParsersAction`, which has no public name)."""
    common: argparse.ArgumentParser
    """`--home`."""
    json_flag: argparse.ArgumentParser
    """`--json`, for the commands that print something a script may read."""

    def add(
        self, name: str, handler: Handler, help: str, *parents: argparse.ArgumentParser, into: Any = None
    ) -> argparse.ArgumentParser:
        """A command `name` (under `into`, a group's subparsers, else at the top) that runs `handler`."""
        parser: argparse.ArgumentParser = (into or self.sub).add_parser(
            name, help=help, description=help, parents=[self.common, *parents]
        )
        parser.set_defaults(handler=handler)
        return parser

    def group(self, name: str, help: str) -> Any:
        """A command with subcommands of its own (`longrun run …`): the subparsers to add them to."""
        parser = self.sub.add_parser(name, help=help, parents=[self.common])
        return parser.add_subparsers(dest=f"{name}_command", required=True, parser_class=Parser)


def _finite(text: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, found {text!r}") from None
    ok = value >= 0 if zero else value > 0  # False for nan
    if not ok or value == float("inf"):
        bound = "of 0 or more" if zero else "greater than 0"
        raise argparse.ArgumentTypeError(f"expected a number {bound}, found {text!r}")
    return value


def positive_number(text: str) -> float:
    """An argparse type: a number greater than 0 (a tick or a timeout of 0 or less would spin or
    end at once)."""
    return _finite(text, zero=False)


def non_negative_number(text: str) -> float:
    """An argparse type: a number of 0 or more."""
    return _finite(text, zero=True)


def positive_int(text: str) -> int:
    """An argparse type: a whole number of 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of 1 or more, found {text!r}")
    return value
