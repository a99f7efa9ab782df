"""`python -m longrun.app.cli …` is `longrun …`."""

import sys

from longrun.app.cli import main

sys.exit(main())
