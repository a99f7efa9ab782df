"""A big store, fast: many runs of every state and a log of a million events, for the UI benchmark.

`fill(store, runs, events)` writes `runs` runs with their sessions, checkpoints (a chain of parents
ending at the run's head), verdicts, approvals (some pending), breakers (some open) and `events`
events spread over them, skewed as real stores are: one run holds about half of all events, the
others share the rest unevenly. The rows have the shapes the scheduler writes; the payloads of
model calls and tool calls are the benchmark's typical ones (`common.sample_event`).

It goes around the store's write functions on purpose: rows are inserted with `executemany` on
the store's own connection, a batch of runs per transaction, with their ids chosen up front, and
each run's hash chain computed with `log.event_hash` as they are written, so a million events take
seconds and `verify_chain` holds for every run. A fixed seed makes the same store every time
(except for times, which are laid out back from `now`).

The modules: `plan` (the runs' shapes), `payloads` (what their events say), `writer` (their logs
and rows, a batch of runs per transaction) and `fill` (the entry, and `counts` to check a fill).
"""

from __future__ import annotations

from longrun.bench.bigstore.fill import counts, fill
from longrun.bench.bigstore.plan import MIN_EVENTS_PER_RUN

__all__ = ["MIN_EVENTS_PER_RUN", "counts", "fill"]
