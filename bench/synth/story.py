"""The day's story: its people, the six features, and the twenty acts (how each session ends,
what passes when it is judged, what a person does after it), with the events each one costs
beyond its steps of work."""

from __future__ import annotations

from dataclasses import dataclass

from longrun.store.models import SessionState

MIN_EVENTS = 2000
"""Twenty sessions with their judgements need some hundreds of events before any work."""
WHO = "ana"
"""The person who starts the run, answers, approves, rewinds and forks."""
ON_CALL = "ben"
"""The person who resets the tripped breaker."""

WORD_COUNT, TOP_WORDS, READING_TIME, SENTENCES, CLI, README = (
    "word-count",
    "top-words",
    "reading-time",
    "sentences",
    "cli",
    "readme",
)
FEATURES = (WORD_COUNT, TOP_WORDS, READING_TIME, SENTENCES, CLI, README)


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
