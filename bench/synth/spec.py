"""The synthetic run's spec (its model, time box, checkpoints, budget and breakers) and the prices
its calls are charged at."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from longrun.scheduler.guards.pricing import Price, prices_for
from longrun.scheduler.spec.durations import format_duration
from longrun.scheduler.spec.load import parse_spec
from longrun.scheduler.spec.run import RunSpec

MODEL = "claude-sonnet-5-5"
FORK_MODEL = "claude-opus-5-5"
MAX_TOKENS = 8192
COOLDOWN = timedelta(seconds=30)
WARN_AT = 0.8
NO_PROGRESS_LIMIT = 4
CHECKPOINT_EVERY_CALLS = 20
CHECKPOINT_EVERY = timedelta(minutes=15)

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


def synth_spec(
    name: str, workspace: str, model: str, box: timedelta, wrap: timedelta, budget: dict[str, Any], home: Path
) -> RunSpec:
    """`SYNTH_SPEC` with this run's names, time box and caps, read as a spec file is read."""
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


PROBE_BUDGET = {"usd": 1.0, "per_session_usd": 1.0, "tokens": 1, "usd_per_hour": 1.0}
"""Placeholder caps for the spec read only to find its prices (the real caps need the prices)."""


def price_of(spec: RunSpec, home: Path, model: str) -> Price:
    """What `model`'s calls cost under this spec and the store's pricing (an error if unpriced)."""
    found = prices_for(spec, home).find(model)
    if found is None:
        raise ValueError(f"no price for {model!r} (add it to {home / 'pricing.toml'})")
    return found
