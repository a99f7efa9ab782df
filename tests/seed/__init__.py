"""A seeded, deterministic store for the dashboard's snapshot and Pilot tests: a day of work on five runs.

`seed_store(home)` writes the same store every time: fixed run ids, fixed times (all in the hours
before `SEED_NOW`), fixed token counts and prices, and workspaces that are real git repositories
whose commits have fixed authors and dates, so their hashes are fixed too. The workspaces live
under `Path.home()`; tests point `HOME` at a temp folder, so the dashboard shows `~/textstats`.

The rows are written by the store's own functions (`insert_run`, `create_session`,
`add_checkpoint`, `add_verdicts`, `add_approval`, `decide_approval`, `end_session`, …) with the
same event kinds and payloads the scheduler writes. Those functions stamp `utcnow()`; while a
seed is written, that clock reads the story's time instead (so a seed must not run while another
thread of the same process writes to a store). Events therefore carry the story's times from the
start, and their hash chains are the ones the log itself computed.

The runs, by what they show:

- `RUN_ACTIVE` (textstats, awaiting_approval): three ended sessions, a rewind (an abandoned line
  of two checkpoints), a decided approval and two pending ones (a `git push` and a question).
- `RUN_FORK` (textstats-fork, running): forked from textstats' abandoned line, one live session.
- `RUN_PAUSED` (migrate-orm, paused by a person): an open `no_progress_sessions` breaker and a
  pending budget raise.
- `RUN_DONE` (docs-site, done): every feature passes.
- `RUN_FAILED` (research-notes, failed): two sessions crashed in a row.
"""

from __future__ import annotations

from pathlib import Path

from longrun.store.db import Store
from seed.docs_site import write_docs_site
from seed.fork import write_fork
from seed.ids import (
    AGENT,
    APPROVAL_BUDGET,
    APPROVAL_DECIDED,
    APPROVAL_PUSH,
    APPROVAL_QUESTION,
    CP_ABANDONED,
    CP_BEFORE_REWIND,
    CP_CREATED,
    CP_FORKED,
    CP_HEAD,
    CP_S1_APPROVAL,
    CP_S1_END,
    CP_S2_END,
    CP_S2_HANDOFF,
    CP_S3_APPROVAL,
    CP_S3_HANDOFF,
    HAIKU,
    OPEN_BREAKER,
    PENDING_APPROVALS,
    PERSON,
    RUN_ACTIVE,
    RUN_DONE,
    RUN_FAILED,
    RUN_FORK,
    RUN_IDS,
    RUN_PAUSED,
    RUN_STATES,
    SEED_NOW,
    SESSION_LIVE,
    SONNET,
    WHO,
)
from seed.migrate_orm import write_migrate_orm
from seed.research_notes import write_research_notes
from seed.story import Story
from seed.textstats import write_textstats


def seed_store(home: Path) -> Store:
    """Write the seeded store into `home` (a fresh folder) and its workspaces under `Path.home()`."""
    store = Store.open(home)
    story = Story(store)
    with story.clock_in_charge():
        write_textstats(story)
        write_fork(story)
        write_docs_site(story)
        write_research_notes(story)
        write_migrate_orm(story)
        story.flush()
    return store


__all__ = [
    "AGENT",
    "APPROVAL_BUDGET",
    "APPROVAL_DECIDED",
    "APPROVAL_PUSH",
    "APPROVAL_QUESTION",
    "CP_ABANDONED",
    "CP_BEFORE_REWIND",
    "CP_CREATED",
    "CP_FORKED",
    "CP_HEAD",
    "CP_S1_APPROVAL",
    "CP_S1_END",
    "CP_S2_END",
    "CP_S2_HANDOFF",
    "CP_S3_APPROVAL",
    "CP_S3_HANDOFF",
    "HAIKU",
    "OPEN_BREAKER",
    "PENDING_APPROVALS",
    "PERSON",
    "RUN_ACTIVE",
    "RUN_DONE",
    "RUN_FAILED",
    "RUN_FORK",
    "RUN_IDS",
    "RUN_PAUSED",
    "RUN_STATES",
    "SEED_NOW",
    "SESSION_LIVE",
    "SONNET",
    "WHO",
    "seed_store",
]
