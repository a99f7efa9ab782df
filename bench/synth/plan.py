"""The day's plan, worked out before anything is written: when each session happens, how many
steps of work each holds so that the log comes to its size, and what the model and judge calls
spend (to set the budget)."""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from longrun.bench.synth.spec import CHECKPOINT_EVERY, CHECKPOINT_EVERY_CALLS, COOLDOWN, WARN_AT
from longrun.bench.synth.story import MAIN_ACTS, Act, judge_calls, model_calls, overhead
from longrun.scheduler.guards.pricing import Price
from longrun.scheduler.spec.durations import format_duration

MIN_TIME_BOX = timedelta(minutes=2)
STALE_HEARTBEAT = timedelta(seconds=30)
TOOLS_PER_CALL = ((1, 0.72), (2, 0.20), (3, 0.08))
TOOLS_THRESHOLDS = ((1, 0.72), (2, 0.92), (3, 1.01))
MEAN_TOOLS = sum(k * p for k, p in TOOLS_PER_CALL)
EVENTS_PER_STEP = 1 + 2 * MEAN_TOOLS + MEAN_TOOLS / CHECKPOINT_EVERY_CALLS
"""A model call, its tool calls and results, and its share of the checkpoints (on average)."""
HEAD_EVENTS = 3
"""The run's creation, its first checkpoint, and a person starting it."""
LIVE_EVENTS = 150
"""The fewest events planned for the live session."""


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
