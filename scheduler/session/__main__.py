"""`python -m longrun.scheduler.session SESSION_ID`: run one session in this process.

`--warm` instead starts a warm session starter (`warm.py`), which the supervisor asks for sessions."""

from __future__ import annotations

import sys

if sys.argv[1:] == ["--warm"]:
    from longrun.scheduler.session.warm import serve

    sys.exit(serve())

from longrun.scheduler.session.harness import main

sys.exit(main())
