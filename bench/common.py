"""What the benchmarks share: how one is declared, where it writes, a valid spec, and small statistics.

Every benchmark prints one JSON object on stdout; anything meant for a person goes to stderr
through `progress`, so the output can be piped straight into a file or `jq`.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import secrets
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from longrun.scheduler.spec.load import parse_spec

BENCH_SPEC = """
name = "{name}"
goal = '''
Build and harden the textstats library: word counts, top words and reading time, each with
tests that pass, documented in the README, with no regressions in the existing suite.
'''
workspace = "workspace-{name}"

[worker]
model = "claude-sonnet-5-5"
max_tokens = 8192

[session]
time_box = "5h"
wrap_up = "10m"
checkpoint_every_calls = 20

[budget]
usd = 5000.0
per_session_usd = 100.0
tokens = 9000000000

[[features]]
id = "word-count"
description = "word_count(text) returns the number of whitespace-separated words."
check = "python -m pytest -q tests/test_word_count.py"

[[features]]
id = "top-words"
description = "top_words(text, n) returns the n most frequent lower-cased words, punctuation stripped."
check = "python -m pytest -q tests/test_top_words.py"

[[features]]
id = "reading-time"
description = "reading_time(text, wpm) returns the minutes needed to read text, rounded up."
check = "python -m pytest -q tests/test_reading_time.py"
rubric = "The function is documented and handles the empty text without dividing by zero."

[[features]]
id = "readme"
description = "The README documents the three functions with one example each."
rubric = "Each of the three functions has a short description and a runnable example in README.md."
"""


@dataclass(frozen=True)
class Benchmark:
    """One benchmark: its name, a line of help, how it adds its options, and how it runs."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], dict[str, Any]]


def progress(message: str) -> None:
    """A line for the person watching, on stderr (stdout carries only the JSON result)."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def versions() -> dict[str, str]:
    """The interpreter and SQLite library the figures were measured with."""
    return {"python": platform.python_version(), "sqlite": sqlite3.sqlite_version}


def new_run_id() -> str:
    """A run id of the same shape as the ones `longrun` makes (8 hex digits)."""
    return secrets.token_hex(4)


def bench_spec(name: str, base_dir: Path) -> dict[str, Any]:
    """A valid spec dict, as a run stores it, with four features (command checks and rubrics)."""
    spec = parse_spec(BENCH_SPEC.format(name=name), source="bench", base_dir=base_dir)
    return spec.model_dump(mode="json")


@contextmanager
def work_dir(given: Path | None, parts: Sequence[str]) -> Iterator[Path]:
    """`given` when the caller named a directory (kept afterwards), else a temp directory (removed).

    The subdirectories in `parts` must not exist yet or be empty: a benchmark never mixes its
    rows with an earlier one's, so counting rows afterwards means something.
    """
    if given is None:
        root = Path(tempfile.mkdtemp(prefix="longrun-bench-"))
        try:
            yield root
        finally:
            shutil.rmtree(root, ignore_errors=True)
        return
    root = given.expanduser().absolute()
    for part in parts:
        sub = root / part
        if sub.exists() and any(sub.iterdir()):
            raise BenchError(f"{sub}: not empty (give --dir a new or empty directory)")
    root.mkdir(parents=True, exist_ok=True)
    yield root


# --- rows written straight into a store (bigstore and synth) ------------------------------------

EVENT_INSERT = (
    "INSERT INTO event (run_id, seq, session_id, ts, kind, data, prev_hash, hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
SESSION_INSERT = (
    "INSERT INTO session (id, run_id, n, state, pid, created_at, started_at, deadline_at, wrap_up_at, "
    "heartbeat_at, ended_at, end_reason, from_checkpoint_id, stop_requested, kill_requested, settled_at, "
    "spent_usd, input_tokens, output_tokens, cache_write_tokens, cache_read_tokens) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, 0, ?, ?, ?, ?, ?, ?)"
)
CHECKPOINT_INSERT = (
    'INSERT INTO checkpoint (id, run_id, session_id, parent_id, seq, "commit", reason, handoff_json, '
    "features_json, commits_json, spent_usd, tokens, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
VERDICT_INSERT = (
    "INSERT INTO verdict (run_id, checkpoint_id, feature_id, judge, status, evidence_json, created_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
APPROVAL_INSERT = (
    "INSERT INTO approval (id, run_id, session_id, kind, state, request_json, requested_at, decided_by, "
    "decided_at, comment) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
BREAKER_INSERT = "INSERT INTO breaker (run_id, name, state, tripped_at, reason) VALUES (?, ?, ?, ?, ?)"


@dataclass
class Totals:
    """Usage summed as the store keeps it on a run, a session and a day of spend."""

    usd: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cache_write_tokens: int = 0
    cache_read_tokens: int = 0

    def add(self, tokens: tuple[int, int, int, int], usd: float) -> None:
        """One call's tokens (input, output, cache write, cache read) and its price."""
        self.usd += usd
        self.input_tokens += tokens[0]
        self.output_tokens += tokens[1]
        self.cache_write_tokens += tokens[2]
        self.cache_read_tokens += tokens[3]

    def merge(self, other: Totals) -> None:
        self.add(
            (other.input_tokens, other.output_tokens, other.cache_write_tokens, other.cache_read_tokens),
            other.usd,
        )

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens + self.cache_write_tokens + self.cache_read_tokens

    def row(self) -> tuple[float, int, int, int, int]:
        """(usd, input, output, cache write, cache read): the order of the store's columns."""
        return (
            self.usd,
            self.input_tokens,
            self.output_tokens,
            self.cache_write_tokens,
            self.cache_read_tokens,
        )


class BenchError(Exception):
    """A problem with how a benchmark was asked for; shown as one line, exit status 2."""


GIVE_UP_S = 120.0
"""How long the dashboard may take to get somewhere before a benchmark says it is stuck."""


async def until(done: Callable[[], bool], what: str, poll_s: float = 0.01) -> None:
    """Wait until `done()`, looking every `poll_s` while the app runs on the same loop. A bare
    sleep, not `pilot.pause`: that also repaints the whole screen each time, which the app alone
    would not do, and it would be timed as the app's."""
    started = time.perf_counter()
    while not done():  # noqa: ASYNC110 (the app signals nothing a benchmark could wait on)
        if time.perf_counter() - started > GIVE_UP_S:
            raise BenchError(f"the dashboard did not get there in {GIVE_UP_S:g}s: {what}")
        await asyncio.sleep(poll_s)


def median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def ratio(value: float, base: float) -> float:
    """`value` against the baseline measured in the same run (0 when the baseline is 0)."""
    return round(value / base, 3) if base > 0 else 0.0


def p95(values: Sequence[float]) -> float:
    """The 95th percentile by nearest rank (an observed value, never interpolated)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def chunks(total: int, parts: int) -> list[range]:
    """`range(total)` cut into `parts` consecutive pieces of near-equal size (the rounds of an
    interleaved comparison)."""
    parts = max(1, min(parts, total))
    size, extra = divmod(total, parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        out.append(range(start, end))
        start = end
    return out


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, found {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer of at least 1, found {value}")
    return value


_TOOL_COMMANDS = (
    ("bash", {"command": "python -m pytest -q tests/test_top_words.py -x"}),
    ("read", {"file_path": "src/textstats/core.py"}),
    (
        "edit",
        {
            "file_path": "src/textstats/core.py",
            "old_string": "counts = Counter(words)\n",
            "new_string": "counts = Counter(w for w in words if w)\n",
        },
    ),
    ("bash", {"command": 'git add -A && git commit -q -m "Strip punctuation in top_words"'}),
)
_OUTPUTS = (
    "..F.                                                                     [100%]\n"
    "FAILED tests/test_top_words.py::test_punctuation - "
    "AssertionError: assert [('cat.', 1)] == [('cat', 2)]\n"
    "1 failed, 3 passed in 0.12s",
    '"""Small text statistics."""\n\nimport string\nfrom collections import Counter\n\n\n'
    "def word_count(text: str) -> int:\n    return len(text.split())\n",
    "The file src/textstats/core.py has been updated.",
    "[longrun/3fa2c1d9 5be1e07] Strip punctuation in top_words\n"
    " 1 file changed, 2 insertions(+), 1 deletion(-)",
)


def sample_event(i: int) -> tuple[str, dict[str, Any]]:
    """The i-th event of a typical stretch of work: model call, tool call, tool result, repeated.

    Shaped like what the session harness and the built-in worker record, a few hundred bytes
    each, varied by `i` so that no two payloads are the same text.
    """
    step, phase = divmod(i, 3)
    tool, tool_input = _TOOL_COMMANDS[step % len(_TOOL_COMMANDS)]
    if phase == 0:
        return "model_call", {
            "model": "claude-sonnet-5-5",
            "request_id": f"req_{i:012d}",
            "message_id": f"msg_{i:016x}",
            "stop_reason": "tool_use",
            "max_tokens": 8192,
            "duration_ms": 900 + (i * 37) % 4000,
            "text": "The punctuation test still fails; I'll strip punctuation before counting and rerun it.",
            "tool_calls": [{"name": tool, "id": f"toolu_{i:010d}"}],
            "usage": {
                "input_tokens": 1200 + i % 500,
                "output_tokens": 180 + i % 90,
                "cache_write_tokens": 0,
                "cache_read_tokens": 14000 + i % 3000,
                "tokens": 15380 + i % 3590,
                "usd": 0.0081,
            },
        }
    if phase == 1:
        return "tool_call", {"tool": tool, "input": tool_input, "decision": "allow", "call": i}
    return "tool_result", {
        "tool": tool,
        "is_error": tool == "bash" and step % 3 == 0,
        "output": _OUTPUTS[step % len(_OUTPUTS)],
        "duration_ms": 40 + (i * 13) % 900,
    }
