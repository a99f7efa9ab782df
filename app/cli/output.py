"""What every command shares: the exit codes, opening the store, times, tables, JSON (whole or a
row at a time), asking before a verb that moves a run's head, and whether a supervisor runs.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from longrun.store.errors import SpecError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_WAITING = 3
"""`longrun demo --headless`: the run ended waiting for a person (an approval, a tripped breaker)."""


def local_time(ts: datetime | None) -> str:
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S") if ts else "—"


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def print_table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    for line in [headers, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=False)).rstrip())


def open_store(args: argparse.Namespace, create: bool = True) -> Any:
    from longrun.store.db import Store

    return Store.open(args.home, create=create)


def print_json_array(items: Iterable[Any]) -> None:
    """What `print_json` prints for a list, written an item at a time."""
    first = True
    for item in items:
        text = json.dumps(item, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write(("[\n" if first else ",\n") + textwrap.indent(text, "  "))
        first = False
    sys.stdout.write("[]\n" if first else "\n]\n")


def supervisor_alive(store: Any) -> bool:
    from longrun.store import lease

    current = lease.current(store)
    return current is not None and current.alive()


def confirm(args: argparse.Namespace, what: str) -> bool:
    """Ask on a terminal before a verb that moves a run's head; scripts pass --yes."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise SpecError(
            f"{what.splitlines()[0]}: confirm with --yes (stdin is not a terminal, so it cannot ask)"
        )
    print(what)
    try:
        reply = input("Go ahead? [y/N] ")
    except EOFError:
        reply = ""
    if reply.strip().lower() not in ("y", "yes"):
        print("nothing changed")
        return False
    return True
