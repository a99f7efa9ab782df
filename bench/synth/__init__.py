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

The modules, in the order they build on one another: `story` (the acts), `spec` (the run's spec
and prices), `plan` (times, steps and spend, before anything is written), `payloads` (what the
events say), `sink` (where the rows go), `runlog`, `session` and `writer` (one run's log: its
chain and rows, a session's work, session after session), `day` (`synthesize`) and `cli` (the
benchmark's options).
"""

from __future__ import annotations

from longrun.bench.synth.cli import BENCHMARK
from longrun.bench.synth.day import SynthRun, synthesize
from longrun.bench.synth.story import MIN_EVENTS

__all__ = ["BENCHMARK", "MIN_EVENTS", "SynthRun", "synthesize"]
