"""docs-site (`RUN_DONE`): every feature passes."""

from __future__ import annotations

from datetime import timedelta

from longrun.store import log, runs
from longrun.store.models import RunState
from seed.calls import bash_call, commit_call, read_call, write_call
from seed.ids import RUN_DONE, SEED_NOW
from seed.live import check_verdict, rubric_verdict
from seed.story import Story

DOCS_SPEC = """\
name = "docs-site"
goal = '''
Publish the textstats documentation as a MkDocs site: a quickstart, an API reference generated
from the docstrings, and a strict build with no warnings.
'''
workspace = "~/docs-site"

[worker]
model = "claude-sonnet-5-5"
max_tokens = 8192

[session]
time_box = "30m"
wrap_up = "5m"

[budget]
usd = 3.0

[judge]
model = "claude-haiku-5-5"

[[features]]
id = "site-builds"
description = "mkdocs build --strict succeeds."
check = "mkdocs build --strict"

[[features]]
id = "api-reference"
description = "docs/api.md documents every public function of textstats through mkdocstrings."
check = "python scripts/check_api_pages.py"

[[features]]
id = "quickstart"
description = "docs/quickstart.md takes a new user from install to a first result."
rubric = "The quickstart shows how to install textstats and one complete, runnable example with its output."
"""

MKDOCS_YML = """\
site_name: textstats
nav:
  - Home: index.md
  - Quickstart: quickstart.md
  - API reference: api.md
plugins:
  - search
"""

CHECK_API = '''\
"""Fail unless docs/api.md renders every public function of textstats."""

import sys
from pathlib import Path

import textstats

page = Path("docs/api.md").read_text()
missing = [name for name in ("word_count", "top_words", "reading_time") if f"textstats.{name}" not in page]
if missing:
    sys.exit(f"docs/api.md does not document: {', '.join(missing)}")
'''

QUICKSTART_1 = """\
# Quickstart

```python
>>> from textstats import word_count
>>> word_count("Hello, world!")
2
```
"""

QUICKSTART_2 = """\
# Quickstart

Install it with pip:

    pip install textstats

Then count, rank and time a text:

```python
>>> from textstats import word_count, top_words, reading_time
>>> text = "The cat. The dog! the CAT?"
>>> word_count(text)
6
>>> top_words(text, n=2)
[('the', 3), ('cat', 2)]
>>> reading_time(text)
1
```
"""

API_MD = """\
# API reference

::: textstats.word_count
::: textstats.top_words
::: textstats.reading_time
"""

_NOT_IN_DOCS = "is included in the 'nav' configuration, which is not found in the documentation files."
MKDOCS_MISSING = (
    "INFO    -  Cleaning site directory\n"
    "INFO    -  Building documentation to directory: site\n"
    f"WARNING -  A reference to 'quickstart.md' {_NOT_IN_DOCS}\n"
    f"WARNING -  A reference to 'api.md' {_NOT_IN_DOCS}\n"
    "\n"
    "Aborted with 2 warnings in strict mode!"
)

MKDOCS_OK = """\
INFO    -  Cleaning site directory
INFO    -  Building documentation to directory: site
INFO    -  Documentation built in 0.31 seconds"""


def write_docs_site(story: Story) -> None:
    eve = SEED_NOW - timedelta(days=1)
    day = eve.replace(hour=0)
    run = story.create_run(
        RUN_DONE,
        DOCS_SPEC,
        when=day + timedelta(hours=20, minutes=9, seconds=51),
        first_files={
            "mkdocs.yml": MKDOCS_YML,
            "docs/index.md": "# textstats\n\nSmall text statistics for Python.\n",
            "scripts/check_api_pages.py": CHECK_API,
        },
        first_message="Docs site skeleton: mkdocs.yml, the home page and the API page check",
    )
    features = {f.id: f for f in run.spec.features}
    story.start(run, day + timedelta(hours=20, minutes=10, seconds=30))

    s1 = story.session(run, day + timedelta(hours=20, minutes=10, seconds=31), "started", 24410)
    s1.turn("Let me see how the site is configured.", read_call("mkdocs.yml", MKDOCS_YML), out=300)
    s1.turn(
        "Trying a strict build to see what is missing.",
        bash_call("mkdocs build --strict", MKDOCS_MISSING, is_error=True, ms=1800),
        out=260,
    )
    s1.turn(
        "The nav names two pages that do not exist. The quickstart first.",
        write_call("docs/quickstart.md", QUICKSTART_1),
        out=700,
    )
    s1.turn(
        "A first API page so the build can pass.",
        write_call("docs/api.md", "# API reference\n\n::: textstats.word_count\n"),
        out=420,
    )
    s1.turn("Building again.", bash_call("mkdocs build --strict", MKDOCS_OK, ms=1650), out=220)
    s1.turn(
        "The build passes.",
        commit_call(
            "Add the quickstart and a first API page",
            {
                "docs/quickstart.md": QUICKSTART_1,
                "docs/api.md": "# API reference\n\n::: textstats.word_count\n",
            },
        ),
        out=240,
    )
    s1.handoff(
        "",
        {
            "done": ["strict build passes", "docs/quickstart.md (first draft)"],
            "next": ["document top_words and reading_time in docs/api.md", "install step in the quickstart"],
            "blockers": [],
            "notes": "scripts/check_api_pages.py wants all three functions in docs/api.md.",
        },
    )
    s1.turn("Handoff written; the API page covers one function of three.", out=150)
    cp = s1_end = s1.end("finished", "the model ended its turn")
    quickstart_rubric = features["quickstart"].rubric or ""
    statuses = story.judge(
        run,
        s1,
        cp,
        [
            (
                "site-builds",
                "command",
                "pass",
                check_verdict("mkdocs build --strict", "pass", MKDOCS_OK, 1.71),
            ),
            (
                "api-reference",
                "command",
                "fail",
                check_verdict(
                    "python scripts/check_api_pages.py",
                    "fail",
                    "docs/api.md does not document: top_words, reading_time",
                    0.12,
                ),
            ),
            (
                "quickstart",
                "llm",
                "fail",
                rubric_verdict(
                    quickstart_rubric,
                    "fail",
                    "The quickstart has a runnable example but never says how to install textstats.",
                    [
                        ("shows how to install", False, ""),
                        ("one complete runnable example with output", True, ""),
                    ],
                    "the start of the run",
                    812,
                ),
            ),
        ],
        {"quickstart": (1310, 280)},
    )
    story.settle(run, s1, statuses, {})
    story.next_session(run, s1)

    s2 = story.session(
        run, story.now + timedelta(minutes=5), "cooldown of 300s after the last session", 25133
    )
    s2.turn(
        "Picking up from the handoff: the API page needs the other two functions.",
        read_call("docs/api.md", "# API reference\n\n::: textstats.word_count\n"),
        out=380,
    )
    s2.turn("Adding them.", write_call("docs/api.md", API_MD), out=360)
    s2.turn(
        "Now the install step in the quickstart.", write_call("docs/quickstart.md", QUICKSTART_2), out=900
    )
    s2.turn(
        "Checking the API page and the build.",
        bash_call("python scripts/check_api_pages.py && mkdocs build --strict", MKDOCS_OK, ms=1910),
        out=240,
    )
    s2.turn(
        "Both pass.",
        commit_call(
            "Document every function and add the install step",
            {"docs/api.md": API_MD, "docs/quickstart.md": QUICKSTART_2},
        ),
        out=230,
    )
    s2.handoff(
        "",
        {
            "done": ["docs/api.md documents all three functions", "install step in the quickstart"],
            "next": [],
            "blockers": [],
            "notes": "The strict build passes with no warnings.",
        },
    )
    s2.turn("The site is complete.", out=120)
    cp = s2.end("finished", "the model ended its turn")
    before = dict(statuses)
    statuses = story.judge(
        run,
        s2,
        cp,
        [
            (
                "site-builds",
                "command",
                "pass",
                check_verdict("mkdocs build --strict", "pass", MKDOCS_OK, 1.68),
            ),
            (
                "api-reference",
                "command",
                "pass",
                check_verdict("python scripts/check_api_pages.py", "pass", "", 0.11),
            ),
            (
                "quickstart",
                "llm",
                "pass",
                rubric_verdict(
                    quickstart_rubric,
                    "pass",
                    "The quickstart installs with pip and runs one example whose results match the code.",
                    [
                        ("shows how to install", True, ""),
                        ("one complete runnable example with output", True, ""),
                    ],
                    f"checkpoint {s1_end.id}",
                    904,
                ),
            ),
        ],
        {"quickstart": (1420, 265)},
    )
    story.settle(run, s2, statuses, before)
    story.flush()
    with story.store.writing() as conn:
        runs.set_run_state(conn, run.id, RunState.done, "every feature passes at the latest checkpoint")
        runs.set_run_plan(conn, run.id, due_at=None, next_session_at=None, next_reason=None)
        log.append(conn, run.id, "run_done", {"checkpoint_id": cp.id}, session_id=s2.id)
    run.repo.write_refs()
