"""longrun.scheduler: everything that runs a run, one kind of thing per subpackage.

- `spec/`: the run spec (TOML) as pydantic models: its keys, durations, tables, checks, the
  messages a bad spec gets, `--set` overrides, and loading a file.
- `control/`: the verbs people use (runs, limits, approvals, features, history, reads); the CLI,
  the dashboard and any other client change a run only through these. A new verb goes here.
- `supervisor/`: the daemon (APScheduler, the lease), planning the next session, launching and
  watching sessions through a dispatcher, and notifications.
- `session/`: one session in its own process (`python -m longrun.scheduler.session ID`): the
  harness, checkpoints, the resume point and context, the git workspace.
- `guards/`: what stops waste and harm: budgets, prices, circuit breakers, the tool-call policy.
  A new guard goes here.
- `workers/`: the worker contract (`base`), the registry that makes a session's worker from
  `[worker] backend`, and the backends. A new worker is one module here and one line in
  `registry.BACKENDS`.
- `endpoints/`: what a worker talks to besides the real API: the scripted model server (script,
  player, HTTP) and its built-in scripts.
- `judging/`: the judge that decides what is done (checks, rubrics, the test ratchet) and the
  done-condition copy the worker gets.

`demo.py` is the demo project the quickstart builds.
"""
