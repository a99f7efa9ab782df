"""`python -m longrun.scheduler.session SESSION_ID`: run one session in this process."""

from __future__ import annotations

import sys

from longrun.scheduler.session.harness import main

sys.exit(main())
