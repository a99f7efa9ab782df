"""Sessions on Celery workers: `longrun daemon --executor celery` and `longrun worker`.

The supervisor hands each session to the broker as a task (`dispatcher.py`) instead of starting
its process; a worker (`worker.py`) takes the task, claims the session's row, runs
`python -m longrun.scheduler.session SESSION_ID` as its own child and watches it to its end
(`task.py`). The broker's settings for sessions that last hours are in `broker.py`.

The store stays the truth: a worker runs a session only when it wins the claim on its row, so a
task the broker delivers twice never runs its session twice, and the supervisor learns that a
worker died from the session's heartbeat, as for a session of its own (`supervisor/remote.py`).
"""
