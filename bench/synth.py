"""`synth`: a realistic day of autonomous work, written straight into a store.

`synthesize(store, hours=24, events=100_000)` writes a run that has been going for `hours` up to
`end`, with exactly `events` events in its log, and a fork of it. The run works on a library of
six features; its twenty sessions follow one another on the run's time box, and between them
happens what an audit should find:

- sessions that finish with a handoff, time out at their deadline (one after a handoff, others
  without) and crash (the heartbeat stops), and the last one still running at `end`;
- model calls with their tool calls and results, the usage of each call priced as the harness
  prices it, a checkpoint every 20 tool calls carrying the run's spend and feature status;
- after every session the judge: rubric calls with their usage, a verdict per feature, `judged`
  and `session_judged`; features go from failing to passing over the day, one passes, regresses
  and passes again;
- a question the worker asks (answered by a person), a `git push` it may only run once a person
  approves it, each a paused session, a kept conversation and a resumed one;
- four sessions in a row without progress trip `no_progress_sessions`; a person resets it, and
  the half-open trial session closes it;
- a budget warning when the run's spend crosses `warn_at` of `budget.usd`, a usage limit the
  run waits out, a rewind to an older checkpoint (a branch in the checkpoint tree), and a fork
  with its own two sessions on another model.

Rows have the shapes the scheduler writes (see the event kinds in scheduler/ and store/); they go
in with `executemany` on the store's own connection, in a few big transactions, and each run's
hash chain is computed with `log.event_hash` as events are written, so `verify_chain` holds and a
million events take seconds. The run's, each session's and each day's totals are the sums of the
model_call and judge_call usages in the log. A seed fixes every event; ids of sessions,
checkpoints and approvals follow whatever the store already holds, and nothing else may write to
the store while this writes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from longrun.bench.common import (
    APPROVAL_INSERT,
    BREAKER_INSERT,
    CHECKPOINT_INSERT,
    EVENT_INSERT,
    SESSION_INSERT,
    VERDICT_INSERT,
    BenchError,
    Benchmark,
    Totals,
    positive_int,
    progress,
    versions,
)
from longrun.scheduler.guards import policy
from longrun.scheduler.guards.pricing import Price, prices_for
from longrun.scheduler.judging.features import FEATURES_FILE
from longrun.scheduler.spec.durations import format_duration
from longrun.scheduler.spec.load import parse_spec
from longrun.scheduler.spec.overrides import apply_overrides
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log
from longrun.store.db import Store
from longrun.store.models import RunState, SessionState

MIN_EVENTS = 2000
"""Twenty sessions with their judgements need some hundreds of events before any work."""
MIN_TIME_BOX = timedelta(minutes=2)
MODEL = "claude-sonnet-5-5"
FORK_MODEL = "claude-opus-5-5"
MAX_TOKENS = 8192
WHO = "ana"
"""The person who starts the run, answers, approves, rewinds and forks."""
ON_CALL = "ben"
"""The person who resets the tripped breaker."""
COOLDOWN = timedelta(seconds=30)
STALE_HEARTBEAT = timedelta(seconds=30)
WARN_AT = 0.8
NO_PROGRESS_LIMIT = 4
CHECKPOINT_EVERY_CALLS = 20
CHECKPOINT_EVERY = timedelta(minutes=15)
EVENTS_PER_INSERT = 20_000
EVENTS_PER_COMMIT = 250_000
TOOLS_PER_CALL = ((1, 0.72), (2, 0.20), (3, 0.08))
TOOLS_THRESHOLDS = ((1, 0.72), (2, 0.92), (3, 1.01))
MEAN_TOOLS = sum(k * p for k, p in TOOLS_PER_CALL)
EVENTS_PER_STEP = 1 + 2 * MEAN_TOOLS + MEAN_TOOLS / CHECKPOINT_EVERY_CALLS
"""A model call, its tool calls and results, and its share of the checkpoints (on average)."""
HEAD_EVENTS = 3
"""The run's creation, its first checkpoint, and a person starting it."""
LIVE_EVENTS = 150
"""The fewest events planned for the live session."""

WORD_COUNT, TOP_WORDS, READING_TIME, SENTENCES, CLI, README = (
    "word-count",
    "top-words",
    "reading-time",
    "sentences",
    "cli",
    "readme",
)
FEATURES = (WORD_COUNT, TOP_WORDS, READING_TIME, SENTENCES, CLI, README)

SYNTH_SPEC = """
name = "{name}"
goal = '''
Build and harden the textstats library: word counts, top words, reading time, sentence
splitting and a command line, each with tests that pass, documented in the README, with no
regressions in the existing suite.
'''
workspace = "{workspace}"

[worker]
model = "{model}"
max_tokens = {max_tokens}

[session]
time_box = "{time_box}"
wrap_up = "{wrap_up}"
checkpoint_every_calls = {every_calls}
checkpoint_every_minutes = {every_minutes}

[schedule]
mode = "back_to_back"
cooldown = "{cooldown}"

[budget]
usd = {usd:.2f}
per_session_usd = {per_session_usd:.2f}
tokens = {tokens}
warn_at = {warn_at}

[breakers]
no_progress_sessions = {no_progress}
max_usd_per_hour = {usd_per_hour:.2f}

[judge.ratchet]
enabled = false

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
id = "sentences"
description = "sentences(text) splits text into sentences, keeping abbreviations such as e.g. whole."
check = "python -m pytest -q tests/test_sentences.py"

[[features]]
id = "cli"
description = "`textstats FILE` prints the word count, the top words and the reading time."
check = "python -m pytest -q tests/test_cli.py"
rubric = "`--json` prints the same figures as JSON, and a missing file is a one-line error."

[[features]]
id = "readme"
description = "The README documents every function and the command line with one example each."
rubric = "Each function and the command line has a short description and a runnable example."
"""


# --- the story --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Act:
    """One session of the story: how it ends, how long it runs (a share of the time box), which
    features pass when it is judged, and what a person does after it."""

    ending: str
    """finished, timed_out, crashed, question, push, rate_limited or live."""
    length: float
    passing: tuple[str, ...]
    handoff: bool = False
    """A timed-out session that wrote its handoff when told to wrap up."""
    then: str | None = None
    """answer, reset, fork, approve, limit, rewind or pause."""
    wait: float = 0.0
    """How long that takes, as a share of the time box."""


_P1 = (WORD_COUNT,)
_P2 = (WORD_COUNT, TOP_WORDS)
_P3 = (WORD_COUNT, TOP_WORDS, READING_TIME)
_P4 = (*_P3, SENTENCES)
_P5 = (*_P4, CLI)

MAIN_ACTS = (
    Act("finished", 0.80, _P1),
    Act("finished", 0.95, _P1),
    Act("crashed", 0.45, _P1),
    Act("finished", 0.85, _P2),
    Act("question", 0.50, _P2, then="answer", wait=0.30),
    Act("finished", 0.75, _P3),
    Act("finished", 0.90, (WORD_COUNT, READING_TIME)),
    Act("finished", 0.70, _P3),
    Act("finished", 0.85, _P3),
    Act("timed_out", 1.0, _P3, handoff=True),
    Act("finished", 0.80, _P3),
    Act("timed_out", 1.0, _P3, then="reset", wait=0.45),
    Act("finished", 0.80, _P4, then="fork"),
    Act("finished", 0.85, _P4),
    Act("push", 0.65, _P4, then="approve", wait=0.35),
    Act("finished", 0.80, _P5),
    Act("rate_limited", 0.55, _P5, then="limit", wait=0.40),
    Act("timed_out", 1.0, _P5, then="rewind", wait=0.15),
    Act("finished", 0.85, _P5),
    Act("live", 0.60, _P5),
)
FORK_ACTS = (
    Act("finished", 0.80, _P5),
    Act("finished", 0.70, _P5, then="pause", wait=0.10),
)
FORK_AFTER = 13
"""The fork is made from the checkpoint session 13 ended on."""
FORK_SHARE = 40
"""The fork's log is about 1/FORK_SHARE of the run's."""

END_REASONS = {
    "finished": "finished",
    "question": "approval",
    "push": "approval",
    "rate_limited": "rate_limited",
    "timed_out": "killed at its deadline",
    "crashed": "its heartbeat stopped",
}
SESSION_STATES = {
    "timed_out": SessionState.timed_out,
    "crashed": SessionState.crashed,
    "live": SessionState.running,
}
RUBRIC = {READING_TIME, CLI, README}
CHECKED = set(FEATURES) - {README}


def judge_calls(act: Act) -> int:
    """Rubric calls the judge makes after the session: a rubric is judged once its check passes."""
    return sum(1 for f in FEATURES if f in RUBRIC and (f not in CHECKED or f in act.passing))


ENDING_EVENTS = {"finished": 8, "timed_out": 3, "crashed": 2, "question": 6, "push": 6, "rate_limited": 6}
"""Events of how a session ends: its handoff or pause, the last checkpoint, its end."""
AFTER_EVENTS = {"answer": 1, "approve": 1, "reset": 4, "fork": 1, "limit": 1, "rewind": 4, "pause": 1}
"""Events of what happens after a session: a decision, the breaker, the fork, the rewind."""


def overhead(acts: tuple[Act, ...], i: int) -> int:
    """The events of session i that are not steps of work: its start (and the conversation it
    goes on from), how it ends, its judgement and what happens after it."""
    act = acts[i]
    before = acts[i - 1].then if i else None
    start = 5 + {"answer": 1, "approve": 3, "reset": 1}.get(before or "", 0)
    if act.ending == "live":
        return start
    ending = ENDING_EVENTS[act.ending] + (5 if act.ending == "timed_out" and act.handoff else 0)
    return start + ending + judge_calls(act) + 8 + AFTER_EVENTS.get(act.then or "", 0)


def model_calls(act: Act, steps: int) -> int:
    """The model calls of a (not live) session: its steps, and those of its handoff or pause."""
    extra = {"finished": 2, "question": 1, "push": 1}.get(act.ending, 0)
    return steps + extra + (1 if act.ending == "timed_out" and act.handoff else 0)


# --- time ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Slot:
    """When one session of the story happens."""

    due: datetime
    end: datetime
    """When its end is recorded (for the live session: the end of the window)."""
    judged: datetime
    action: datetime | None
    """When the person acts after it (or the usage limit resets)."""


def _settle_time(act: Act) -> timedelta:
    return timedelta(seconds=3.5 + 4 * judge_calls(act))


def slots(acts: tuple[Act, ...], box: timedelta, first_due: datetime, end: datetime | None) -> list[Slot]:
    """The sessions' times: each due after the last one's judgement and cooldown, or after what a
    person did after it. The live session, if any, runs until `end`."""
    out = []
    due = first_due
    for act in acts:
        if act.ending == "live":
            until = end if end is not None else due + box * act.length
            out.append(Slot(due, until, until, None))
            break
        created = due + timedelta(seconds=0.4)
        if act.ending == "timed_out":
            finish = created + box + timedelta(seconds=1)
        elif act.ending == "crashed":
            finish = due + box * act.length + STALE_HEARTBEAT
        else:
            finish = due + box * act.length
        judged = finish + _settle_time(act)
        action: datetime | None = None
        next_due = judged + COOLDOWN
        if act.then in ("answer", "approve", "reset"):
            action = judged + box * act.wait
            next_due = action + timedelta(seconds=2)
        elif act.then == "limit":
            action = (finish + box * act.wait).replace(microsecond=0)
            next_due = max(action, judged) + timedelta(seconds=1)
        elif act.then in ("rewind", "pause"):
            action = judged + box * act.wait
            next_due = action + timedelta(seconds=21)
        out.append(Slot(due, finish, judged, action))
        due = next_due
    return out


HEAD = timedelta(seconds=21)
"""From the run's creation to its first session being due (created, started by a person)."""


def solve_time_box(start: datetime, end: datetime) -> tuple[timedelta, timedelta]:
    """The time box (and wrap-up) with which the story fills the window: sessions one after the
    other from `start`, the last one running for about its share of a time box at `end`.

    The times are affine in the time box, so two layouts give the slope."""
    window = (end - start).total_seconds()

    def live_due(box_s: float) -> float:
        return (
            slots(MAIN_ACTS, timedelta(seconds=box_s), start + HEAD, None)[-1].due - start
        ).total_seconds()

    fixed = live_due(0.0)
    slope = (live_due(1000.0) - fixed) / 1000.0
    box_s = (window - fixed) / (slope + MAIN_ACTS[-1].length)
    box = timedelta(seconds=math.floor(box_s / 60) * 60 if box_s >= 3600 else math.floor(box_s))
    if box < MIN_TIME_BOX:
        hours = window / 3600
        raise ValueError(
            f"{hours:g} hours is too short for twenty sessions (their time box would be under "
            f"{format_duration(MIN_TIME_BOX)}): give at least 1 hour"
        )
    wrap = box / 12
    wrap = timedelta(minutes=round(wrap / timedelta(minutes=1))) if box >= timedelta(hours=1) else wrap
    return box, timedelta(seconds=max(1, round(wrap.total_seconds())))


def work_window(act: Act, slot: Slot, box: timedelta) -> tuple[datetime, datetime]:
    """When a session's steps of work happen: after its start, before how it ends."""
    t0 = slot.due + timedelta(seconds=2.7)
    if act.ending == "timed_out":
        return t0, slot.due + timedelta(seconds=0.4) + box - timedelta(seconds=0.5)
    if act.ending == "crashed":
        return t0, slot.end - STALE_HEARTBEAT
    before_end = {"finished": 12.0, "question": 4.0, "push": 4.0, "rate_limited": 8.0, "live": 0.5}
    return t0, slot.end - timedelta(seconds=before_end[act.ending])


def checkpoints(tools: float, seconds: float) -> float:
    """About how many checkpoints a session of `tools` tool calls over `seconds` takes: one at
    every 20th call, or at the first call a quarter of an hour after the last checkpoint."""
    if tools < 1:
        return 0.0
    apart = seconds / tools
    return tools / min(CHECKPOINT_EVERY_CALLS, math.ceil(CHECKPOINT_EVERY.total_seconds() / apart))


def plan_steps(acts: tuple[Act, ...], windows: list[tuple[datetime, datetime]], events: int) -> list[int]:
    """Steps of work (model calls with their tools) per session, in proportion to their time, so
    that the log comes to about `events`. A live session (last) is written to whatever is left,
    and is planned at least `LIVE_EVENTS` of it, so that a plan that was off never leaves it none."""
    seconds = [max((t1 - t0).total_seconds(), 1.0) for t0, t1 in windows]
    work = events - HEAD_EVENTS - sum(overhead(acts, i) for i in range(len(acts)))
    total = sum(seconds)
    live = acts[-1].ending == "live"
    kept = max(LIVE_EVENTS, work * seconds[-1] / total) if live else 0.0
    share = (work - kept) / (total - seconds[-1] if live else total)
    steps = []
    for s in seconds:
        room = share * s
        count = room / EVENTS_PER_STEP
        for _ in range(3):
            count = (room - checkpoints(count * MEAN_TOOLS, s)) / (1 + 2 * MEAN_TOOLS)
        if count < 2:
            raise ValueError(
                f"{events} events are too few to fill {len(acts)} sessions of this window: give more "
                "events or fewer hours"
            )
        steps.append(round(count))
    if live:
        steps[-1] = max(1, round(kept / EVENTS_PER_STEP))
    return steps


# --- usage ----------------------------------------------------------------------------------


Tokens = tuple[int, int, int, int]
"""input, output, cache write, cache read."""
Call = tuple[Tokens, int]
"""A model call's tokens, and how many tool calls it asks for (when it is a step of work)."""


def usage_stream(seed: int, key: str) -> Iterator[Call]:
    """One session's model calls, in order: the first writes the cache, the next ones read a
    context that grows with each step until the conversation is compacted."""
    rng = random.Random(f"synth:{seed}:{key}:usage")

    def tools() -> int:
        r = rng.random()
        return next(k for k, p in TOOLS_THRESHOLDS if r < p)

    context = 9_000 + rng.randrange(4_000)
    yield (3 + rng.randrange(20), 200 + rng.randrange(600), context, 0), tools()
    while True:
        grown = 300 + int(rng.random() * 2_600)
        output = 90 + int(rng.random() ** 2 * 1_400)
        uncached = 1 + rng.randrange(40) if rng.random() < 0.92 else 400 + rng.randrange(3_000)
        yield (uncached, output, grown, context), tools()
        context += grown
        if context > 150_000:
            context = 22_000 + rng.randrange(8_000)


def judge_stream(seed: int, key: str) -> Iterator[Tokens]:
    """The tokens of the judge's rubric calls after one session."""
    rng = random.Random(f"synth:{seed}:{key}:judge")
    while True:
        yield (2_500 + rng.randrange(6_500), 150 + rng.randrange(450), 0, 0)


@dataclass(frozen=True)
class SpendPlan:
    """What the story will spend, worked out before anything is written, to set its budget."""

    usd: float
    tokens: int
    session_usd: float
    """The most one session spends."""
    usd_per_hour: float
    """The fastest a session spends, per hour of its work."""
    judge_spans: list[tuple[float, float]]
    """The run's spend before and after each judge call (a warning is only given by a model call)."""


def plan_spend(
    seed: int,
    key: str,
    acts: tuple[Act, ...],
    steps: list[int],
    windows: list[tuple[datetime, datetime]],
    price: Price,
    events: int | None = None,
) -> SpendPlan:
    """Draw the story's model and judge calls as the writer will, without writing them. The live
    session is written to an event count, not to its planned steps: its calls are estimated from
    what the others are about to leave of `events`."""
    total = 0.0
    tokens = 0
    most = 0.0
    rate = 0.0
    spans = []
    written = HEAD_EVENTS
    for n, (act, count, (t0, t1)) in enumerate(zip(acts, steps, windows, strict=True), start=1):
        calls = usage_stream(seed, f"{key}{n}")
        seconds = max((t1 - t0).total_seconds(), 1.0)
        if act.ending == "live" and events is not None:
            count = max(1, round((events - written) / EVENTS_PER_STEP))
        spent = 0.0
        tools = 0
        for i in range(count if act.ending == "live" else model_calls(act, count)):
            u, k = next(calls)
            spent += price.cost(*u)
            tokens += sum(u)
            tools += k if i < count else 0
        written += overhead(acts, n - 1) + count + 2 * tools + round(checkpoints(tools, seconds))
        total += spent
        most = max(most, spent)
        rate = max(rate, spent / seconds * 3600)
        if act.ending == "live":
            continue
        judged = judge_stream(seed, f"{key}{n}")
        for _ in range(judge_calls(act)):
            u = next(judged)
            before = total
            total += price.cost(*u)
            tokens += sum(u)
            spans.append((before, total))
    return SpendPlan(total, tokens, most, rate, spans)


def budget_usd(plan: SpendPlan) -> float:
    """A cap the run comes near but never reaches: its warning is crossed late in the day, by a
    model call (a judge call that crossed it would give none)."""
    cap = float(f"{math.ceil(plan.usd / 0.9 * 100) / 100:.2f}")
    while any(before < WARN_AT * cap <= after for before, after in plan.judge_spans):
        cap = float(f"{cap + 0.01:.2f}")
    return cap


def _ceil_to(value: float, step: float) -> float:
    return math.ceil(value / step) * step


# --- text -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Work:
    """What the worker does for one feature: its code, tests, words and the tools it calls."""

    feature: str
    function: str
    source: str
    test: str


WORK = {
    WORD_COUNT: Work(WORD_COUNT, "word_count", "src/textstats/core.py", "tests/test_word_count.py"),
    TOP_WORDS: Work(TOP_WORDS, "top_words", "src/textstats/core.py", "tests/test_top_words.py"),
    READING_TIME: Work(READING_TIME, "reading_time", "src/textstats/timing.py", "tests/test_reading_time.py"),
    SENTENCES: Work(SENTENCES, "sentences", "src/textstats/sentences.py", "tests/test_sentences.py"),
    CLI: Work(CLI, "main", "src/textstats/cli.py", "tests/test_cli.py"),
    README: Work(README, "README", "README.md", "tests/test_readme_examples.py"),
}

SAYINGS = (
    "Let me run {test} to see where {function} stands.",
    "The failure is in {function}: the empty text is not handled. I'll fix that first.",
    "I'll read {source} before changing {function}.",
    "The test expects lower-cased words with punctuation stripped; {function} keeps the punctuation.",
    "That edit should do it. Running the tests again.",
    "All of {test} passes now. Committing, then the full suite to check for regressions.",
    "One more case: text with only whitespace. Adding a test for it.",
    "The full suite passes. Next: the docstring of {function}.",
    "I'll look for other callers of {function} before renaming the parameter.",
    "The test for {function} fails on a trailing newline; splitting on whitespace handles it.",
)


@dataclass(frozen=True)
class Tool:
    """One tool call the worker makes, as the two JSON payloads its events carry."""

    name: str
    call: str
    """The tool_call event's data."""
    result_rest: str
    """The tool_result event's data without its leading duration_ms."""
    ms: int
    """About how long it takes, in milliseconds."""


def _tool(name: str, args: dict[str, Any], output: str, ms: int, is_error: bool = False) -> Tool:
    call = log.canonical_json({"decision": "allow", "input": args, "tool": name})
    rest = log.canonical_json({"is_error": is_error, "output": output, "tool": name})[1:-1]
    return Tool(name, call, rest, ms)


def tool_pool(run_id: str, work: Work) -> list[Tool]:
    """The tool calls of work on one feature, repeated by how often an agent makes each."""
    f, src, test = work.function, work.source, work.test
    sha = hashlib.sha1(f"{run_id}:{f}".encode()).hexdigest()[:7]
    failing = (
        f"..F.                                                                     [100%]\n"
        f"FAILED {test}::test_{f}_empty - AssertionError: assert None == 0\n"
        "1 failed, 3 passed in 0.07s"
    )
    weighted = [
        (4, _tool("bash", {"command": f"python -m pytest -q {test}"}, failing, 900)),
        (
            2,
            _tool("bash", {"command": f"python -m pytest -q {test}"}, "....  [100%]\n4 passed in 0.05s", 850),
        ),
        (
            3,
            _tool(
                "read", {"file_path": src}, f'"""textstats."""\n\n\ndef {f}(text: str) -> int:\n    ...\n', 20
            ),
        ),
        (
            4,
            _tool(
                "edit",
                {"file_path": src, "old_string": "    return None\n", "new_string": "    return 0\n"},
                f"The file {src} has been updated.",
                30,
            ),
        ),
        (
            2,
            _tool("grep", {"pattern": f"def {f}", "path": "src"}, f"{src}:14:def {f}(text: str) -> int:", 60),
        ),
        (1, _tool("glob", {"pattern": "tests/test_*.py"}, "\n".join(w.test for w in WORK.values()), 15)),
        (
            2,
            _tool(
                "bash",
                {"command": f'git add -A && git commit -q -m "{f}: handle the empty text"'},
                f"[longrun/{run_id} {sha}] {f}: handle the empty text\n 2 files changed, 9 insertions(+)",
                120,
            ),
        ),
        (1, _tool("bash", {"command": "git status --short"}, f" M {src}\n M {test}", 40)),
        (
            1,
            _tool(
                "write",
                {"file_path": test, "content": f"from textstats import {f}\n\n\ndef test_{f}_empty():\n"},
                f"File created successfully at: {test}",
                25,
            ),
        ),
        (
            2,
            _tool(
                "bash",
                {"command": "python -m pytest -q"},
                "....................  [100%]\n20 passed in 0.31s",
                2400,
            ),
        ),
        (
            1,
            _tool(
                "edit",
                {"file_path": src, "old_string": "def helper(:\n", "new_string": "def helper():\n"},
                "String to replace not found in file.",
                20,
                is_error=True,
            ),
        ),
    ]
    return [tool for times, tool in weighted for _ in range(times)]


def _sayings(work: Work) -> list[str]:
    return [json.dumps(s.format(**work.__dict__), ensure_ascii=False) for s in SAYINGS]


VERDICT_OUTPUT = {"pass": "4 passed in 0.05s", "fail": "1 failed, 3 passed in 0.07s"}


def evidence(feature: str, status: str, spec: RunSpec) -> dict[str, Any]:
    """What the judge keeps for a verdict: the check's command and output, the rubric's reasons."""
    declared = next(f for f in spec.features if f.id == feature)
    out: dict[str, Any] = {}
    if declared.check:
        out |= {
            "command": declared.check,
            "exit_code": 0 if status == "pass" else 1,
            "duration_s": 0.412,
            "output_tail": VERDICT_OUTPUT[status],
        }
        if declared.rubric and status != "pass":
            out |= {
                "rubric": declared.rubric,
                "rubric_skipped": f"not judged: the check did not pass ({status})",
            }
    if declared.rubric and (status == "pass" or not declared.check):
        met = status == "pass"
        out |= {
            "rubric": declared.rubric,
            "confidence": 0.86 if met else 0.74,
            "rationale": "The diff and the check output show every criterion met."
            if met
            else "The README has no example for sentences() or for the command line yet.",
            "criteria": [
                {"criterion": declared.rubric, "met": met, "note": "" if met else "examples missing"}
            ],
            "model": spec.judge.model or spec.worker.model,
            "diff_base": "the start of the run",
            "diff_bytes": 18_204,
        }
    return out


def _judge_name(feature: str, status: str, spec: RunSpec) -> str:
    declared = next(f for f in spec.features if f.id == feature)
    if not declared.check:
        return "llm"
    return "command+llm" if declared.rubric and status == "pass" else "command"


HANDOFF = {
    "done": ["{function}: the empty text and punctuation", "tests for the edge cases"],
    "next": ["the next failing feature", "README examples"],
    "blockers": [],
    "notes": "Run the whole suite before committing: top_words broke once when core.py changed.",
}
QUESTION = {
    "question": "Should sentences() treat a line break as the end of a sentence?",
    "why": "The tests do not say, and the README example splits a poem line by line.",
    "choices": ["yes, always", "only a blank line", "never"],
}
ANSWER = "Only a blank line ends a sentence; a single line break does not."
PUSH = "git push origin HEAD"
PUSH_OUTPUT = "To github.com:textstats/textstats.git\n * [new branch]      HEAD -> {branch}"
APPROVE_COMMENT = "ok: the branch goes to the team remote for review, nothing is merged"
RESET_COMMENT = "looked at the last four handoffs: the tokenizer rewrite is real progress; go on"
RATE_LIMIT = "This request would exceed your account's rate limit. Please try again later."


# --- writing ----------------------------------------------------------------------------------

_RUN_INSERT = (
    "INSERT INTO run (id, name, goal, spec_json, spec_path, workspace, branch, state, created_at, "
    "updated_at, parent_run_id, spent_usd, input_tokens, output_tokens, cache_write_tokens, "
    "cache_read_tokens) VALUES (?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, 0, 0, 0, 0, 0)"
)
_RUN_FINISH = (
    "UPDATE run SET state = ?, state_reason = ?, updated_at = ?, head_checkpoint_id = ?, next_reason = ?, "
    "spent_usd = ?, input_tokens = ?, output_tokens = ?, cache_write_tokens = ?, cache_read_tokens = ? "
    "WHERE id = ?"
)
_CONVERSATION_INSERT = (
    "INSERT INTO conversation (id, run_id, session_id, checkpoint_id, reason, messages_json, created_at, "
    "resumed_by) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
_SPEND_DAY_INSERT = (
    "INSERT INTO spend_day (run_id, day, spent_usd, input_tokens, output_tokens, cache_write_tokens, "
    "cache_read_tokens) VALUES (?, ?, ?, ?, ?, ?, ?)"
)


class _Full(Exception):
    """The run's log holds the events it was asked for."""


class Sink:
    """Where rows go: `executemany` on the store's own sqlite3 connection, committed every
    `EVENTS_PER_COMMIT` events so that no one transaction holds the whole log."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.buffer: list[tuple[Any, ...]] = []
        self.uncommitted = 0
        self.written = 0
        self._tx: Any = None
        self.cursor: Any = None

    def __enter__(self) -> Sink:
        self._open()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: Any) -> None:
        if exc is None:
            self.flush(commit=False)
        self._close(kind, exc, tb)

    def _open(self) -> None:
        self._tx = self.store.writing()
        conn = self._tx.__enter__()
        self.cursor = conn.connection.driver_connection.cursor()

    def _close(self, kind: Any = None, exc: Any = None, tb: Any = None) -> None:
        self.cursor.close()
        tx, self._tx = self._tx, None
        tx.__exit__(kind, exc, tb)

    def event(self, row: tuple[Any, ...]) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= EVENTS_PER_INSERT:
            self.flush(commit=True)

    def flush(self, *, commit: bool) -> None:
        if self.buffer:
            self.cursor.executemany(EVENT_INSERT, self.buffer)
            self.written += len(self.buffer)
            self.uncommitted += len(self.buffer)
            self.buffer = []
        if commit and self.uncommitted >= EVENTS_PER_COMMIT:
            self._close()
            self._open()
            self.uncommitted = 0
            progress(f"synth: {self.written:,} events written")

    def rows(self, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            self.cursor.executemany(sql, rows)


@dataclass
class Ids:
    """The next id of each table whose ids the store would hand out (chosen here, up front)."""

    session: int
    checkpoint: int
    approval: int
    conversation: int

    def take(self, table: str) -> int:
        value = getattr(self, table)
        setattr(self, table, value + 1)
        return int(value)


@dataclass
class Rows:
    """Every row but the events, kept until the log is written (they are few)."""

    sessions: list[tuple[Any, ...]] = field(default_factory=list)
    checkpoints: dict[int, list[Any]] = field(default_factory=dict)
    verdicts: list[tuple[Any, ...]] = field(default_factory=list)
    approvals: dict[int, list[Any]] = field(default_factory=dict)
    conversations: dict[int, list[Any]] = field(default_factory=dict)
    breakers: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    spend_days: dict[tuple[str, str], Totals] = field(default_factory=dict)
    finished_runs: list[tuple[Any, ...]] = field(default_factory=list)

    def write(self, sink: Sink) -> None:
        sink.rows(SESSION_INSERT, self.sessions)
        sink.rows(CHECKPOINT_INSERT, [tuple(r) for r in self.checkpoints.values()])
        sink.rows(VERDICT_INSERT, self.verdicts)
        sink.rows(APPROVAL_INSERT, [tuple(r) for r in self.approvals.values()])
        sink.rows(_CONVERSATION_INSERT, [tuple(r) for r in self.conversations.values()])
        sink.rows(BREAKER_INSERT, [tuple(r) for r in self.breakers.values()])
        sink.rows(
            _SPEND_DAY_INSERT, [(run, day, *totals.row()) for (run, day), totals in self.spend_days.items()]
        )
        sink.rows(_RUN_FINISH, self.finished_runs)


def stamp(ts: datetime) -> str:
    return ts.isoformat(timespec="microseconds")


@dataclass
class Live:
    """One session as it is being written."""

    id: int
    n: int
    act: Act
    slot: Slot
    created: datetime
    deadline: datetime
    wrap_up_at: datetime
    from_checkpoint: int | None
    before: dict[str, str]
    """The feature status it started from."""
    from_commit: str
    usages: Iterator[Tokens]
    rng: random.Random
    tools: list[Tool]
    sayings: list[str]
    totals: Totals = field(default_factory=Totals)
    calls: int = 0
    last_checkpoint: datetime | None = None
    wrapped: bool = False
    handoff_due: bool = False
    handoff_written: bool = False
    heartbeat: datetime | None = None
    pid: int = 0


@dataclass(frozen=True)
class _Clock:
    """The time of the events of step `j`: a share of the step's time (`frac`), or for a session
    written to an event count, the next event's share of the session."""

    t0: datetime
    j: int
    per_step: float
    per_event: float
    writer: RunWriter
    first_seq: int

    def at(self, frac: float) -> datetime:
        if self.per_step:
            return self.t0 + timedelta(microseconds=(self.j + frac) * self.per_step)
        return self.t0 + timedelta(microseconds=(self.writer.seq - self.first_seq + 0.5) * self.per_event)


class RunWriter:
    """One run's log as it is written: its hash chain, clock, head checkpoint and totals."""

    def __init__(
        self,
        *,
        sink: Sink,
        ids: Ids,
        rows: Rows,
        seed: int,
        key: str,
        run_id: str,
        spec: RunSpec,
        price: Price,
        box: timedelta,
        wrap: timedelta,
    ) -> None:
        self.sink = sink
        self.ids = ids
        self.rows = rows
        self.seed = seed
        self.key = key
        self.run_id = run_id
        self.spec = spec
        self.price = price
        self.box = box
        self.wrap = wrap
        self.branch = f"longrun/{run_id}"
        self.seq = 0
        self.prev = log.GENESIS
        self.limit: int | None = None
        self.last_ts = ""
        self.totals = Totals()
        self.head: int | None = None
        self.head_commit = ""
        self.head_features: dict[str, str] = {}
        self.warn_at: float | None = None
        self.warned_at: datetime | None = None
        self.progress: list[bool] = []
        self.breaker_open = False
        self.half_open = False
        self.pending: dict[str, int] = {}
        """Approvals waiting for a person, by what they are about."""
        self.conversation: tuple[int, str, int] | None = None
        """The paused conversation the next session goes on from: its id, the waiting call and
        the approval that decides it."""
        self.fork_hook: Callable[[Live], None] | None = None
        """Called after the session whose act says `fork` (the fork is written by its own writer)."""
        self.fork_of: tuple[int, str] | None = None
        """For a fork: the parent's checkpoint and commit it starts from."""
        self.moments: dict[str, datetime] = {}
        self.rng = random.Random(f"synth:{seed}:{key}")
        self.pools = {f: tool_pool(run_id, WORK[f]) for f in FEATURES}
        self.sayings = {f: _sayings(WORK[f]) for f in FEATURES}
        self.evidence = {
            (f, s): log.canonical_json(evidence(f, s, spec)) for f in FEATURES for s in ("pass", "fail")
        }
        self.judges = {(f, s): _judge_name(f, s, spec) for f in FEATURES for s in ("pass", "fail")}
        self.model_json = json.dumps(spec.worker.model)
        self.max_tokens = spec.worker.max_tokens

    # --- the chain ------------------------------------------------------------------------------

    def add(self, kind: str, data: str, session_id: int | None, ts: datetime) -> int:
        """Append one event (its data already canonical JSON); returns its seq."""
        if self.limit is not None and self.seq >= self.limit:
            raise _Full
        self.seq += 1
        at = stamp(ts)
        digest = log.event_hash(self.prev, self.run_id, self.seq, at, session_id, kind, data)
        self.sink.event((self.run_id, self.seq, session_id, at, kind, data, self.prev, digest))
        self.prev = digest
        self.last_ts = at
        return self.seq

    def add_json(self, kind: str, data: dict[str, Any], session_id: int | None, ts: datetime) -> int:
        return self.add(kind, log.canonical_json(data), session_id, ts)

    # --- rows -----------------------------------------------------------------------------------

    def charge(self, u: Tokens, usd: float, at: str, session: Live | None) -> None:
        self.totals.add(u, usd)
        if session is not None:
            session.totals.add(u, usd)
        day = self.rows.spend_days.get((self.run_id, at[:10]))
        if day is None:
            day = self.rows.spend_days[(self.run_id, at[:10])] = Totals()
        day.add(u, usd)

    def checkpoint(
        self,
        ts: datetime,
        session: Live | None,
        reason: str,
        handoff: dict[str, Any] | None = None,
        *,
        commit: str | None = None,
        first: bool = False,
    ) -> int:
        cp = self.ids.take("checkpoint")
        sha = commit or hashlib.sha1(f"{self.run_id}:{cp}".encode()).hexdigest()
        parent = None if first else self.head
        session_id = session.id if session is not None else None
        data = {"checkpoint_id": cp, "commit": sha, "parent_id": parent, "reason": reason}
        seq = self.add_json("checkpoint", data, session_id, ts)
        commits = []
        if session is not None and reason in ("calls", "timer", "handoff", "session_end"):
            subject = f"{WORK[self.focus(session)].function}: handle the empty text"
            commits = [{"sha": hashlib.sha1(f"{sha}:work".encode()).hexdigest(), "subject": subject}]
        self.rows.checkpoints[cp] = [
            cp,
            self.run_id,
            session_id,
            parent,
            seq,
            sha,
            reason,
            log.canonical_json(handoff) if handoff is not None else None,
            log.canonical_json(self.head_features),
            log.canonical_json(commits),
            self.totals.usd,
            self.totals.tokens,
            stamp(ts),
        ]
        self.head, self.head_commit = cp, sha
        if session is not None:
            session.calls = 0
            session.last_checkpoint = ts
        return cp

    def approval(self, kind: str, request: dict[str, Any], session_id: int | None, ts: datetime) -> int:
        approval = self.ids.take("approval")
        data = {"approval_id": approval, "kind": kind, "request": request}
        self.add_json("approval_requested", data, session_id, ts)
        self.rows.approvals[approval] = [
            approval,
            self.run_id,
            session_id,
            kind,
            "pending",
            log.canonical_json(request),
            stamp(ts),
            None,
            None,
            None,
        ]
        return approval

    def decide(self, approval: int, state: str, by: str, comment: str, ts: datetime) -> None:
        row = self.rows.approvals[approval]
        data = {"approval_id": approval, "by": by, "comment": comment, "state": state}
        self.add_json("approval_decided", data, row[2], ts)
        row[4], row[7], row[8], row[9] = state, by, stamp(ts), comment

    # --- the story ------------------------------------------------------------------------------

    def focus(self, session: Live) -> str:
        """The feature the session works on: the first one not passing when it started."""
        return next((f for f in FEATURES if session.before.get(f) != "pass"), README)

    def created(self, ts: datetime, name: str, workspace: str, state: str) -> None:
        data = {
            "branch": self.branch,
            "name": name,
            "spec_path": None,
            "state": state,
            "workspace": workspace,
        }
        self.add_json("run_created", data, None, ts)

    def sessions(
        self, acts: tuple[Act, ...], slots_: list[Slot], steps: list[int], due_reason: str, events: int | None
    ) -> None:
        """Write every session of the story with what happens after each; the live one, last, up to
        `events` events in the log."""
        reason = due_reason
        for n, (act, slot, count) in enumerate(zip(acts, slots_, steps, strict=True), start=1):
            self.add_json("session_due", {"reason": reason}, None, slot.due)
            session = self.start(n, act, slot)
            if act.ending == "live":
                assert events is not None
                self.limit = events
                t0, t1 = work_window(act, slot, self.box)
                left = events - self.seq
                if left < 1:
                    raise ValueError(f"{events} events are too few for this story (at least {MIN_EVENTS})")
                try:
                    self.work(session, t0, t1, events=left)
                except _Full:
                    pass
                self.limit = None
                self.session_row(session, None, None, None)
                return
            self.run_session(session, count)
            self.settle(session)
            reason = self.after(session)
            if act.then == "fork" and self.fork_hook is not None:
                self.fork_hook(session)

    def start(self, n: int, act: Act, slot: Slot) -> Live:
        session_id = self.ids.take("session")
        created = slot.due + timedelta(seconds=0.4)
        deadline = created + self.box
        session = Live(
            id=session_id,
            n=n,
            act=act,
            slot=slot,
            created=created,
            deadline=deadline,
            wrap_up_at=deadline - self.wrap,
            from_checkpoint=self.head,
            before=dict(self.head_features),
            from_commit=self.head_commit,
            usages=usage_stream(self.seed, f"{self.key}{n}"),
            rng=random.Random(f"synth:{self.seed}:{self.key}{n}:shape"),
            tools=[],
            sayings=[],
        )
        focus = self.focus(session)
        session.tools, session.sayings = self.pools[focus], self.sayings[focus]
        data = {
            "deadline_at": stamp(deadline),
            "from_checkpoint_id": self.head,
            "n": n,
            "wrap_up_at": stamp(session.wrap_up_at),
        }
        self.add_json("session_created", data, session_id, created)
        session.pid = 20_000 + self.rng.randrange(40_000)
        session.heartbeat = slot.due + timedelta(seconds=1.5)
        self.add_json("session_started", {"n": n, "pid": session.pid}, session_id, session.heartbeat)
        session.last_checkpoint = session.heartbeat
        features = {f: session.before.get(f, "unjudged") for f in FEATURES}
        sha = hashlib.sha256(log.canonical_json(features).encode()).hexdigest()
        data = {"features": len(FEATURES), "path": FEATURES_FILE, "sha256": sha}
        self.add_json("features_file", data, session_id, slot.due + timedelta(seconds=1.8))
        text = self.context_text(session)
        context = {
            "bytes": len(text.encode()),
            "checkpoint_id": self.head,
            "commit": self.head_commit,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "text": text,
        }
        self.add_json("context", context, session_id, slot.due + timedelta(seconds=2.0))
        if self.conversation is not None:
            self.resume_conversation(session, slot.due + timedelta(seconds=2.2))
        return session

    def context_text(self, session: Live) -> str:
        status = "\n".join(f"- {f}: {session.before.get(f, 'unjudged')}" for f in FEATURES)
        return (
            f"# Goal\n{self.spec.goal.strip()}\n\n# Done-condition\n{status}\n\n"
            f"# Last handoff\nNext: {WORK[self.focus(session)].function}, then the README examples.\n\n"
            f"# Budget\n${self.totals.usd:.2f} of ${self.spec.budget.usd:.2f} spent; "
            f"this is session {session.n}."
        )

    def resume_conversation(self, session: Live, ts: datetime) -> None:
        assert self.conversation is not None
        conversation, tool_use, approval = self.conversation
        self.conversation = None
        self.rows.conversations[conversation][7] = session.id
        row = self.rows.approvals[approval]
        who = f"{row[7]} at {datetime.fromisoformat(row[8]).isoformat(timespec='seconds')}"
        if row[3] == "question":
            results = {tool_use: {"action": "answer", "text": row[9]}}
            line = f"your question was answered by {who}"
        else:
            results = {tool_use: {"action": "run", "text": ""}}
            line = f"bash call approved by {who}: {row[9]}"
        notice = "[longrun] This session goes on from where the last one paused: " + line + "."
        data = {
            "approvals": [approval],
            "conversation_id": conversation,
            "notice": notice,
            "results": results,
        }
        self.add_json("conversation_resumed", data, session.id, ts)
        if row[3] == "tool_call":
            call = log.canonical_json({"decision": "allow", "input": {"command": PUSH}, "tool": "bash"})
            self.add("tool_call", call, session.id, ts + timedelta(seconds=0.1))
            output = PUSH_OUTPUT.format(branch=self.branch)
            result = log.canonical_json(
                {"duration_ms": 2140, "is_error": False, "output": output, "tool": "bash"}
            )
            self.add("tool_result", result, session.id, ts + timedelta(seconds=0.3))
            session.calls += 1

    def run_session(self, session: Live, steps: int) -> None:
        act, slot = session.act, session.slot
        t0, t1 = work_window(act, slot, self.box)
        self.work(session, t0, t1, steps=steps)
        sid = session.id
        if act.ending == "timed_out" and act.handoff and not session.handoff_written:
            self.wrap_up(session, t1)
            self.handoff(session, t1 + timedelta(seconds=0.1))
        elif act.ending == "timed_out" and not session.wrapped:
            self.wrap_up(session, t1)
        if act.ending == "finished":
            self.handoff(session, t1 + timedelta(seconds=1))
            self.model_call(
                session,
                "end_turn",
                "[]",
                json.dumps("Handoff written; ending the session."),
                t1 + timedelta(seconds=7),
                2600,
            )
            self.checkpoint(t1 + timedelta(seconds=10), session, "session_end")
            self.ended(session, SessionState.ended, "finished", {"detail": "the model ended its turn"})
        elif act.ending in ("question", "push"):
            self.pause(session, t1)
        elif act.ending == "rate_limited":
            retry = slot.action
            assert retry is not None
            for attempt in range(1, 4):
                data = {"attempt": attempt, "reset_at": retry.isoformat(), "status": 429}
                self.add_json("api_error", data, sid, t1 + timedelta(seconds=1.5 * attempt))
            self.checkpoint(t1 + timedelta(seconds=6), session, "session_end")
            data = {"detail": RATE_LIMIT, "retry_at": retry.isoformat()}
            self.add_json("rate_limited", data, sid, t1 + timedelta(seconds=7))
            self.ended(session, SessionState.ended, "rate_limited", data)
        elif act.ending in ("timed_out", "crashed"):
            state = SESSION_STATES[act.ending]
            self.checkpoint(slot.end - timedelta(seconds=0.5), session, str(state))
            self.ended(session, state, END_REASONS[act.ending], {})

    def ended(self, session: Live, state: SessionState, reason: str, data: dict[str, Any]) -> None:
        body = {"n": session.n, "reason": reason, "state": str(state)} | data
        self.add_json("session_ended", body, session.id, session.slot.end)

    def session_row(self, session: Live, ended: str | None, reason: str | None, settled: str | None) -> None:
        act = session.act
        state = SESSION_STATES.get(act.ending, SessionState.ended)
        heartbeat = session.heartbeat or session.created
        self.rows.sessions.append(
            (
                session.id,
                self.run_id,
                session.n,
                str(state),
                session.pid,
                stamp(session.created),
                stamp(session.slot.due + timedelta(seconds=1.5)),
                stamp(session.deadline),
                stamp(session.wrap_up_at),
                stamp(heartbeat),
                ended,
                reason,
                session.from_checkpoint,
                settled,
                *session.totals.row(),
            )
        )

    # --- work -----------------------------------------------------------------------------------

    def work(self, session: Live, t0: datetime, t1: datetime, *, steps: int = 0, events: int = 0) -> None:
        """Steps of work between t0 and t1: each a model call and the tool calls it asked for.

        With `steps`, step j takes the j-th share of the time; with `events` (the live session),
        event i does, and the log stops at the writer's limit."""
        span = (t1 - t0) / timedelta(microseconds=1)
        per_step = span / steps if steps else 0.0
        per_event = span / events if events else 0.0
        first_seq = self.seq
        rng = session.rng
        tools = session.tools
        sayings = session.sayings
        j = 0
        while not steps or j < steps:
            clock = _Clock(t0, j, per_step, per_event, self, first_seq)
            at = clock.at
            if session.handoff_due and not session.handoff_written:
                self.handoff(session, at(0.05), at(0.08), at(0.11), at(0.14), at(0.2))
            call = next(session.usages)
            k = call[1]
            r = rng.random()
            picked = [tools[rng.randrange(len(tools))] for _ in range(k)]
            names = "[" + ",".join(f'"{t.name}"' for t in picked) + "]"
            ms = (per_step or per_event * 3.8) / 1000
            self.model_call(
                session,
                "tool_use",
                names,
                sayings[rng.randrange(len(sayings))],
                at(0.4),
                int(ms * (0.2 + 0.15 * r)),
                call,
            )
            width = 0.5 / k
            for i, tool in enumerate(picked):
                lo = 0.45 + width * i
                self.add("tool_call", tool.call, session.id, at(lo))
                done = at(lo + width * 0.6)
                took = max(5, int(tool.ms * (0.5 + rng.random())))
                self.add("tool_result", f'{{"duration_ms":{took},{tool.result_rest}}}', session.id, done)
                session.heartbeat = done
                self.after_tool(session, done, at(lo + width * 0.75), at(lo + width * 0.85))
            j += 1

    def model_call(
        self,
        session: Live,
        stop: str,
        names: str,
        saying: str,
        ts: datetime,
        duration_ms: int,
        call: Call | None = None,
    ) -> None:
        """One model reply and its usage (the next of the session's calls, unless given)."""
        u = (call or next(session.usages))[0]
        usd = self.price.cost(*u)
        rng = session.rng
        data = (
            f'{{"duration_ms":{max(duration_ms, 150)},"max_tokens":{self.max_tokens},'
            f'"message_id":"msg_{rng.getrandbits(96):024x}","model":{self.model_json},'
            f'"request_id":"req_{rng.getrandbits(96):024x}","stop_reason":"{stop}","text":{saying},'
            f'"tool_calls":{names},"usage":{{"cache_read_tokens":{u[3]},"cache_write_tokens":{u[2]},'
            f'"input_tokens":{u[0]},"output_tokens":{u[1]},"tokens":{u[0] + u[1] + u[2] + u[3]},'
            f'"usd":{usd!r}}}}}'
        )
        self.add("model_call", data, session.id, ts)
        before = self.totals.usd
        self.charge(u, usd, self.last_ts, session)
        if self.warn_at is not None and before < self.warn_at <= self.totals.usd:
            budget = self.spec.budget
            data = {
                "cap": "usd",
                "limit": budget.usd,
                "spent": round(self.totals.usd, 6),
                "warn_at": budget.warn_at,
            }
            self.add_json("budget_warning", data, session.id, ts + timedelta(microseconds=1))
            self.warned_at = ts

    def after_tool(self, session: Live, ts: datetime, cp_ts: datetime, wrap_ts: datetime) -> None:
        """The harness after each tool call: a checkpoint every N calls (or M minutes), and the
        wrap-up notice once its time has come."""
        session.calls += 1
        if session.calls >= CHECKPOINT_EVERY_CALLS:
            self.checkpoint(cp_ts, session, "calls")
        elif session.last_checkpoint is not None and ts - session.last_checkpoint >= CHECKPOINT_EVERY:
            self.checkpoint(cp_ts, session, "timer")
        if not session.wrapped and ts >= session.wrap_up_at and session.act.ending != "crashed":
            self.wrap_up(session, wrap_ts)

    def wrap_up(self, session: Live, ts: datetime) -> None:
        session.wrapped = True
        left = max(int((session.deadline - ts).total_seconds()), 0)
        self.add_json("wrap_up", {"seconds_left": left}, session.id, ts)
        if session.act.ending == "timed_out" and session.act.handoff:
            session.handoff_due = True

    def handoff(self, session: Live, ts: datetime, *rest: datetime) -> None:
        """The model calls `handoff`: its note, a checkpoint, the tool's result."""
        times = [ts, *rest] if rest else [ts + timedelta(seconds=0.5 * i) for i in range(5)]
        work = WORK[self.focus(session)]
        note = {**HANDOFF, "done": [d.format(function=work.function) for d in HANDOFF["done"]]}
        text = json.dumps(f"Wrapping up: {work.function} is done; writing the handoff.")
        self.model_call(session, "tool_use", '["handoff"]', text, times[0], 3100)
        call = {"decision": "allow", "input": note, "tool": "handoff"}
        self.add_json("tool_call", call, session.id, times[1])
        self.add_json("handoff", note, session.id, times[2])
        cp = self.checkpoint(times[3], session, "handoff", note)
        output = f"Handoff recorded as checkpoint {cp} (commit {self.head_commit[:10]})."
        result = {"duration_ms": 180, "is_error": False, "output": output, "tool": "handoff"}
        self.add_json("tool_result", result, session.id, times[4])
        session.calls += 1
        session.handoff_written = True

    def pause(self, session: Live, t1: datetime) -> None:
        """The model asks a person (a question, or a call the rules ask about): checkpoint, keep the
        conversation, ask, and end the session."""
        sid = session.id
        rng = session.rng
        tool_use = f"toolu_{rng.getrandbits(96):024x}"
        if session.act.ending == "question":
            name, args = policy.ASK_HUMAN, dict(QUESTION)
            saying = "The tests do not say how sentences() treats line breaks; asking before I choose."
        else:
            name, args = "bash", {"command": PUSH}
            saying = "Everything passes; pushing the branch so the team can review it."
        self.model_call(
            session, "tool_use", f'["{name}"]', json.dumps(saying), t1 + timedelta(seconds=0.2), 2900
        )
        cp = self.checkpoint(t1 + timedelta(seconds=0.6), session, "approval")
        conversation = self.ids.take("conversation")
        messages = [
            {"role": "user", "content": self.context_text(session)},
            {
                "role": "assistant",
                "content": [
                    {"type": "text", "text": saying},
                    {"type": "tool_use", "id": tool_use, "name": name, "input": args},
                ],
            },
        ]
        self.rows.conversations[conversation] = [
            conversation,
            self.run_id,
            sid,
            cp,
            "approval",
            json.dumps(messages, ensure_ascii=False, separators=(",", ":")),
            stamp(t1 + timedelta(seconds=0.6)),
            None,
        ]
        base = {"tool_use_id": tool_use, "conversation_id": conversation, "checkpoint_id": cp}
        if name == policy.ASK_HUMAN:
            kind, request = "question", base | args
        else:
            decision = policy.decide(policy.rules_of(self.spec), name, args, Path(self.spec.workspace))
            kind, request = "tool_call", base | {"tool": name, "input": args, **decision.to_json()}
        approval = self.approval(kind, request, sid, t1 + timedelta(seconds=0.7))
        self.moments[f"{kind}_asked"] = t1 + timedelta(seconds=0.7)
        self.pending[kind] = approval
        self.conversation = (conversation, tool_use, approval)
        data = {"approvals": [f"{kind} {approval}"], "checkpoint_id": cp, "conversation_id": conversation}
        self.add_json("paused_for_approval", data, sid, t1 + timedelta(seconds=0.8))
        self.checkpoint(t1 + timedelta(seconds=2), session, "session_end")
        self.ended(
            session, SessionState.ended, "approval", {"detail": f"waiting for a person: {kind} {approval}"}
        )

    # --- after a session --------------------------------------------------------------------------

    def settle(self, session: Live) -> None:
        """The supervisor after a session: the judge, the breakers, what comes next."""
        act, slot, sid = session.act, session.slot, session.id
        cp = self.head
        assert cp is not None
        statuses = {f: "pass" if f in act.passing else "fail" for f in FEATURES}
        calls = judge_stream(self.seed, f"{self.key}{session.n}")
        spent = 0.0
        i = 0
        for feature in FEATURES:
            if feature not in RUBRIC or (feature in CHECKED and statuses[feature] != "pass"):
                continue
            u = next(calls)
            usd = self.price.cost(*u)
            data = (
                f'{{"checkpoint_id":{cp},"feature_id":"{feature}","model":{self.model_json},'
                f'"request_id":"req_{session.rng.getrandbits(96):024x}","status":"{statuses[feature]}",'
                f'"usage":{{"cache_read_tokens":0,"cache_write_tokens":0,"input_tokens":{u[0]},'
                f'"output_tokens":{u[1]},"tokens":{u[0] + u[1]},"usd":{usd!r}}}}}'
            )
            self.add("judge_call", data, sid, slot.end + timedelta(seconds=2 + 4 * i))
            self.charge(u, usd, self.last_ts, None)
            spent += usd
            i += 1
        at = slot.end + timedelta(seconds=2.3 + 4 * i)
        for feature in FEATURES:
            status = statuses[feature]
            judge = self.judges[(feature, status)]
            proof = self.evidence[(feature, status)]
            data = (
                f'{{"checkpoint_id":{cp},"evidence":{proof},"feature_id":"{feature}",'
                f'"judge":"{judge}","status":"{status}"}}'
            )
            self.add("verdict", data, None, at)
            self.rows.verdicts.append((self.run_id, cp, feature, judge, status, proof, stamp(at)))
        self.head_features = statuses
        self.rows.checkpoints[cp][8] = log.canonical_json(statuses)
        judged = {
            "by": "supervisor",
            "checkpoint_id": cp,
            "errors": [],
            "failing": sorted(f for f, s in statuses.items() if s == "fail"),
            "passing": sorted(f for f, s in statuses.items() if s == "pass"),
            "usd": round(spent, 6),
        }
        self.add_json("judged", judged, sid, at + timedelta(seconds=0.6))
        if any(session.before.get(f) == "pass" and s != "pass" for f, s in statuses.items()):
            self.moments.setdefault("regression", at)
        newly = sorted(f for f, s in statuses.items() if s == "pass" and session.before.get(f) != "pass")
        self.progress.append(bool(newly))
        self.add_json(
            "session_judged",
            {"n": session.n, "newly_passing": newly, "progress": bool(newly)},
            sid,
            slot.judged,
        )
        streak = 0
        for made in reversed(self.progress):
            if made:
                break
            streak += 1
        tripped = not self.breaker_open and streak >= (1 if self.half_open else NO_PROGRESS_LIMIT)
        if tripped != (act.then == "reset"):
            raise AssertionError(f"session {session.n}: the story's breaker does not match its progress")
        name = "no_progress_sessions"
        at = slot.judged + timedelta(microseconds=500)
        if tripped:
            numbers = {"breaker": name, "limit": NO_PROGRESS_LIMIT, "sessions_without_progress": streak}
            self.add_json("breaker_tripped", numbers, sid, at)
            shown = f"sessions_without_progress={streak}, limit={NO_PROGRESS_LIMIT}"
            self.rows.breakers[(self.run_id, name)] = [
                self.run_id,
                name,
                "open",
                stamp(at),
                f"breaker {name} tripped ({shown})",
            ]
            self.breaker_open = True
            self.moments["breaker_tripped"] = at
            self.pending["breaker_reset"] = self.approval("breaker_reset", {"breaker": name}, sid, at)
        elif self.half_open:
            self.add_json("breaker_closed", {"breaker": name}, sid, at)
            self.rows.breakers[(self.run_id, name)][2] = "closed"
            self.half_open = False
        if act.then == "limit":
            assert slot.action is not None
            self.add_json("usage_limit_wait", {"until": slot.action.isoformat()}, sid, at)
            self.moments["usage_limit_wait"] = at
        reason = END_REASONS[act.ending]
        self.session_row(session, stamp(slot.end), reason, stamp(slot.judged))

    def after(self, session: Live) -> str:
        """What happens between this session and the next; returns why the next one is due."""
        act, slot = session.act, session.slot
        if act.then is None or act.then == "fork":
            return f"cooldown of {int(COOLDOWN.total_seconds())}s after the last session"
        at = slot.action
        assert at is not None
        if act.then == "answer":
            self.decide(self.pending.pop("question"), "answered", WHO, ANSWER, at)
            self.moments["question_answered"] = at
            return f"question answered by {WHO}"
        if act.then == "approve":
            self.decide(self.pending.pop("tool_call"), "approved", WHO, APPROVE_COMMENT, at)
            self.moments["tool_call_approved"] = at
            return f"tool call approved by {WHO}"
        if act.then == "reset":
            name = "no_progress_sessions"
            self.add_json(
                "breaker_reset", {"breaker": name, "by": ON_CALL, "comment": RESET_COMMENT}, None, at
            )
            self.decide(
                self.pending.pop("breaker_reset"),
                "approved",
                ON_CALL,
                RESET_COMMENT,
                at + timedelta(microseconds=1),
            )
            self.rows.breakers[(self.run_id, name)][2] = "half_open"
            self.breaker_open, self.half_open = False, True
            self.moments["breaker_reset"] = at
            return "breaker reset"
        if act.then == "limit":
            return f"usage limit resets at {at.isoformat(timespec='seconds')}"
        halted = {"by": WHO, "sessions_told_to_wrap_up": []}
        if act.then == "pause":
            self.add_json("paused", halted, None, at)
            return "paused"
        if act.then == "rewind":
            # A person pauses the run, moves it back to where the session started, and resumes it.
            self.add_json("paused", halted, None, slot.judged + timedelta(seconds=5))
            target = session.from_checkpoint
            assert target is not None
            left = self.checkpoint(at, None, "before_rewind")
            data = {
                "abandoned_ref": f"refs/longrun/{self.run_id}/abandoned/1",
                "by": WHO,
                "commit": session.from_commit,
                "from": left,
                "to": target,
            }
            self.add_json("rewound", data, None, at + timedelta(microseconds=1))
            self.head, self.head_commit = target, session.from_commit
            self.head_features = dict(session.before)
            self.moments["rewound"] = at
            self.add_json("resumed", {"by": WHO}, None, at + timedelta(seconds=20))
            return "resumed"
        raise AssertionError(f"no such turn of the story: {act.then}")


# --- the whole of it ------------------------------------------------------------------------


@dataclass(frozen=True)
class SynthRun:
    """What `synthesize` wrote: the run and its fork, their window and sizes."""

    run_id: str
    fork_run_id: str
    start: datetime
    end: datetime
    events: int
    """Events in the run's log (exactly what was asked for)."""
    fork_events: int
    sessions: int
    fork_sessions: int
    checkpoints: int
    spent_usd: float
    tokens: int
    fork_spent_usd: float
    budget_usd: float
    time_box: timedelta
    seconds: float
    """How long writing took."""
    moments: dict[str, datetime] = field(default_factory=dict)
    """When the story's turns happened (question_asked, breaker_tripped, rewound, fork, …)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "fork_run_id": self.fork_run_id,
            "start": stamp(self.start),
            "end": stamp(self.end),
            "events": self.events,
            "fork_events": self.fork_events,
            "total_events": self.events + self.fork_events,
            "sessions": self.sessions,
            "fork_sessions": self.fork_sessions,
            "checkpoints": self.checkpoints,
            "spent_usd": round(self.spent_usd, 6),
            "tokens": self.tokens,
            "fork_spent_usd": round(self.fork_spent_usd, 6),
            "budget_usd": self.budget_usd,
            "time_box": format_duration(self.time_box),
            "seconds": round(self.seconds, 3),
            "events_per_second": round((self.events + self.fork_events) / self.seconds)
            if self.seconds
            else None,
            "moments": {k: stamp(v) for k, v in sorted(self.moments.items(), key=lambda kv: kv[1])},
        }


def _new_run_id(conn: Any, rng: random.Random, taken: set[str]) -> str:
    while True:
        run_id = f"{rng.getrandbits(32):08x}"
        if (
            run_id not in taken
            and conn.execute("SELECT 1 FROM run WHERE id = ?", (run_id,)).fetchone() is None
        ):
            taken.add(run_id)
            return run_id


def _next_ids(cursor: Any) -> Ids:
    def top(table: str) -> int:
        return int(cursor.execute(f"SELECT coalesce(max(id), 0) FROM {table}").fetchone()[0]) + 1

    return Ids(top("session"), top("checkpoint"), top("approval"), top("conversation"))


def _spec(
    name: str, workspace: str, model: str, box: timedelta, wrap: timedelta, budget: dict[str, Any], home: Path
) -> RunSpec:
    text = SYNTH_SPEC.format(
        name=name,
        workspace=workspace,
        model=model,
        max_tokens=MAX_TOKENS,
        time_box=format_duration(box),
        wrap_up=format_duration(wrap),
        every_calls=CHECKPOINT_EVERY_CALLS,
        every_minutes=CHECKPOINT_EVERY / timedelta(minutes=1),
        cooldown=format_duration(COOLDOWN),
        warn_at=WARN_AT,
        no_progress=NO_PROGRESS_LIMIT,
        **budget,
    )
    return parse_spec(text, source="synth", base_dir=home)


def synthesize(
    store: Store, *, hours: float = 24.0, events: int = 100_000, seed: int = 0, end: datetime | None = None
) -> SynthRun:
    """Write a run of `hours` of autonomous work ending at `end` (default: now, to the minute) with
    exactly `events` events, and its fork (about 1/40 of that); see the module's docstring."""
    began = time.perf_counter()
    if events < MIN_EVENTS:
        raise ValueError(
            f"--events: at least {MIN_EVENTS} (twenty sessions and their judgements), found {events}"
        )
    if not hours > 0:
        raise ValueError(f"--hours: expected a number of hours greater than 0, found {hours:g}")
    if end is None:
        end = datetime.now(UTC).replace(second=0, microsecond=0)
    if end.tzinfo is None:
        raise ValueError("end must be timezone-aware")
    end = end.astimezone(UTC)
    start = end - timedelta(hours=hours)
    box, wrap = solve_time_box(start, end)
    main_slots = slots(MAIN_ACTS, box, start + HEAD, end)
    windows = [work_window(a, s, box) for a, s in zip(MAIN_ACTS, main_slots, strict=True)]
    steps = plan_steps(MAIN_ACTS, windows, events)
    forked_at = main_slots[FORK_AFTER - 1].judged + timedelta(seconds=10)
    resumed_at = forked_at + box * 0.08
    fork_slots = slots(FORK_ACTS, box, resumed_at + timedelta(seconds=1), None)
    fork_windows = [work_window(a, s, box) for a, s in zip(FORK_ACTS, fork_slots, strict=True)]
    fork_steps = plan_steps(FORK_ACTS, fork_windows, max(300, events // FORK_SHARE))
    if fork_slots[-1].action is None or fork_slots[-1].action >= end:
        raise ValueError("the window is too short for the fork's sessions")

    rng = random.Random(f"synth:{seed}")
    name = "textstats-day"
    home = store.home
    probe = _spec(name, f"workspaces/{name}", MODEL, box, wrap, _PROBE_BUDGET, home)
    price = _price(probe, home, MODEL)
    fork_price = _price(probe, home, FORK_MODEL)
    plan = plan_spend(seed, "m", MAIN_ACTS, steps, windows, price, events)
    fork_plan = plan_spend(seed, "f", FORK_ACTS, fork_steps, fork_windows, fork_price)
    budget = {
        "usd": budget_usd(plan),
        "per_session_usd": _ceil_to(max(plan.session_usd, fork_plan.session_usd) * 1.6, 0.01),
        "tokens": int(_ceil_to((plan.tokens + fork_plan.tokens) * 2, 1_000_000)),
        "usd_per_hour": _ceil_to(max(plan.usd_per_hour, fork_plan.usd_per_hour) * 2 + 1, 0.01),
    }
    spec = _spec(name, f"workspaces/{name}", MODEL, box, wrap, budget, home)
    assert spec.budget.usd is not None

    rows = Rows()
    with Sink(store) as sink:
        taken: set[str] = set()
        run_id = _new_run_id(sink.cursor, rng, taken)
        fork_id = _new_run_id(sink.cursor, rng, taken)
        ids = _next_ids(sink.cursor)
        fork_name = f"{name}-fork"
        fork_workspace = str(Path(spec.workspace).with_name(f"{Path(spec.workspace).name}-fork-{fork_id}"))
        overrides = [f"worker.model={FORK_MODEL}"]
        raw = {**spec.model_dump(mode="json"), "name": fork_name, "workspace": fork_workspace}
        fork_spec = RunSpec.model_validate(apply_overrides(raw, overrides))
        for rid, rspec, state, created, parent in (
            (run_id, spec, RunState.draft, start, None),
            (fork_id, fork_spec, RunState.paused, forked_at, run_id),
        ):
            sink.rows(
                _RUN_INSERT,
                [
                    (
                        rid,
                        rspec.name,
                        rspec.goal,
                        log.canonical_json(rspec.model_dump(mode="json")),
                        str(rspec.workspace),
                        f"longrun/{rid}",
                        str(state),
                        stamp(created),
                        stamp(created),
                        parent,
                    )
                ],
            )
        common = {"sink": sink, "ids": ids, "rows": rows, "seed": seed, "box": box, "wrap": wrap}
        main = RunWriter(key="m", run_id=run_id, spec=spec, price=price, **common)
        main.warn_at = WARN_AT * spec.budget.usd
        fork = RunWriter(key="f", run_id=fork_id, spec=fork_spec, price=fork_price, **common)

        def fork_now(session: Live) -> None:
            assert main.head is not None
            fork_made = {"by": WHO, "checkpoint_id": main.head, "run_id": fork_id}
            main.add_json("fork_made", fork_made, None, forked_at + timedelta(seconds=0.6))
            main.moments["fork"] = forked_at
            fork.fork_of = (main.head, main.head_commit)

        main.fork_hook = fork_now
        main.created(start, spec.name, str(spec.workspace), str(RunState.draft))
        initial = hashlib.sha1(f"{run_id}:initial".encode()).hexdigest()
        main.checkpoint(start + timedelta(seconds=0.5), None, "created", commit=initial, first=True)
        main.add_json("started", {"by": WHO}, None, start + timedelta(seconds=20))
        main.sessions(MAIN_ACTS, main_slots, [*steps[:-1], 0], "started", events)
        if main.warned_at is None or main.totals.usd >= spec.budget.usd:
            raise AssertionError("the run's spend did not cross its warning once and stay under its cap")
        main.moments["budget_warning"] = main.warned_at

        assert fork.fork_of is not None
        target, target_commit = fork.fork_of
        fork.created(forked_at, fork_spec.name, str(fork_spec.workspace), str(RunState.paused))
        first = fork.checkpoint(
            forked_at + timedelta(seconds=0.5), None, "forked", commit=target_commit, first=True
        )
        data = {
            "by": WHO,
            "checkpoint_id": first,
            "overrides": overrides,
            "parent_checkpoint_id": target,
            "parent_run_id": run_id,
        }
        fork.add_json("forked", data, None, forked_at + timedelta(seconds=0.6))
        fork.add_json("resumed", {"by": WHO}, None, resumed_at)
        fork.sessions(FORK_ACTS, fork_slots, fork_steps, "resumed", None)

        last_main = len(MAIN_ACTS)
        rows.finished_runs.append(
            (
                str(RunState.running),
                f"session {last_main} running",
                main.last_ts,
                main.head,
                None,
                *main.totals.row(),
                run_id,
            )
        )
        rows.finished_runs.append(
            (
                str(RunState.paused),
                f"paused by {WHO}",
                fork.last_ts,
                fork.head,
                None,
                *fork.totals.row(),
                fork_id,
            )
        )
        sink.flush(commit=False)
        rows.write(sink)
    # A supervisor writes a little at a time, and SQLite folds its write-ahead log back into the
    # database as it goes. These large transactions leave the last of them in the log, which
    # every read would then search; fold it back, as a day of real writing would have left it.
    with store.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    return SynthRun(
        run_id=run_id,
        fork_run_id=fork_id,
        start=start,
        end=end,
        events=main.seq,
        fork_events=fork.seq,
        sessions=len(MAIN_ACTS),
        fork_sessions=len(FORK_ACTS),
        checkpoints=sum(1 for r in rows.checkpoints.values() if r[1] == run_id),
        spent_usd=main.totals.usd,
        tokens=main.totals.tokens,
        fork_spent_usd=fork.totals.usd,
        budget_usd=spec.budget.usd,
        time_box=box,
        seconds=time.perf_counter() - began,
        moments=main.moments | {f"fork_{k}": v for k, v in fork.moments.items()},
    )


_PROBE_BUDGET = {"usd": 1.0, "per_session_usd": 1.0, "tokens": 1, "usd_per_hour": 1.0}
"""Placeholder caps for the spec read only to find its prices (the real caps need the prices)."""


def _price(spec: RunSpec, home: Path, model: str) -> Price:
    found = prices_for(spec, home).find(model)
    if found is None:
        raise ValueError(f"no price for {model!r} (add it to {home / 'pricing.toml'})")
    return found


# --- the benchmark entry ----------------------------------------------------------------------


def _hours(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of hours, found {text!r}") from None
    if not value >= 1:
        raise argparse.ArgumentTypeError(f"expected at least 1 hour, found {text}")
    return value


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--hours", type=_hours, default=24.0, help="how long the run has been going (default 24)"
    )
    parser.add_argument(
        "--events", type=positive_int, default=100_000, help="events in the run's log (default 100000)"
    )
    parser.add_argument(
        "--home",
        type=Path,
        default=None,
        help="the store to write into (default: a new temp directory, kept and printed)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the same seed writes the same run (default 0)")


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.events < MIN_EVENTS:
        raise BenchError(
            f"--events: at least {MIN_EVENTS} (twenty sessions and their judgements), found {args.events}"
        )
    home = args.home.expanduser().absolute() if args.home else Path(tempfile.mkdtemp(prefix="longrun-synth-"))
    progress(f"synth: writing {args.events:,} events of {args.hours:g} hours into {home}")
    store = Store.open(home)
    try:
        result = synthesize(store, hours=args.hours, events=args.events, seed=args.seed)
    except ValueError as exc:
        raise BenchError(str(exc)) from None
    finally:
        store.close()
    return {"home": str(home), **result.to_json(), "seed": args.seed, "versions": versions()}


BENCHMARK = Benchmark(
    name="synth",
    help="write a realistic day of autonomous work into a store (it writes; it measures only its own speed)",
    configure=configure,
    run=run,
)
