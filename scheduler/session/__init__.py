"""longrun.scheduler.session: the stateless harness of one session, its resume context, and its workspace.

`python -m longrun.scheduler.session SESSION_ID` runs one session (`harness.main`).
"""
