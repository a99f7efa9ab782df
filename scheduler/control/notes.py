"""What a person or an agent outside any session tells a run: a handoff for work done by hand (the
workspace checkpointed as it stands, with the note the next session starts from, as a session's
`handoff` does) and a progress note. Both are written to the run's event log.
"""

from __future__ import annotations

from dataclasses import dataclass

from longrun.scheduler.control.runs import _who
from longrun.scheduler.session.checkpoints import take_checkpoint
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import InvalidTransition
from longrun.store.models import RunState
from longrun.store.runs import CheckpointView, RunView

HANDOFF_ITEMS = 100
"""The most items `done`, `next` or `blockers` may hold."""
ITEM_CHARS = 2_000
NOTES_CHARS = 8_000
PROGRESS_CHARS = 2_000
"""As long as a command worker's `progress` line may be."""


@dataclass(frozen=True)
class Handoff:
    """A handoff as a session leaves it: what was done, what comes next, what blocks, and notes."""

    done: list[str]
    next: list[str]
    blockers: list[str]
    notes: str

    def to_json(self) -> dict[str, list[str] | str]:
        return {"done": self.done, "next": self.next, "blockers": self.blockers, "notes": self.notes}


def handoff_of(
    done: list[str], next_: list[str], blockers: list[str] | None = None, notes: str = ""
) -> Handoff:
    """The handoff these make, its items stripped and the empty ones left out; one line saying what
    is wrong with it otherwise (nothing in it, too many items, an item or the notes too long)."""
    lists = {}
    for key, items in (("done", done), ("next", next_), ("blockers", blockers or [])):
        kept = [item.strip() for item in items if item.strip()]
        if len(kept) > HANDOFF_ITEMS:
            raise InvalidTransition(f"handoff {key}: at most {HANDOFF_ITEMS} items, found {len(kept)}")
        for n, item in enumerate(kept, 1):
            if len(item) > ITEM_CHARS:
                raise InvalidTransition(
                    f"handoff {key} item {n}: at most {ITEM_CHARS:,} characters, found {len(item):,}"
                )
        lists[key] = kept
    notes = notes.strip()
    if len(notes) > NOTES_CHARS:
        raise InvalidTransition(f"handoff notes: at most {NOTES_CHARS:,} characters, found {len(notes):,}")
    if not (notes or any(lists.values())):
        raise InvalidTransition("a handoff needs something in done, next, blockers or notes")
    return Handoff(lists["done"], lists["next"], lists["blockers"], notes)


def record_handoff(store: Store, ref: str, handoff: Handoff, *, by: str | None = None) -> CheckpointView:
    """Checkpoint the run's workspace as it stands, with `handoff` for the next session: the work a
    person (or an agent outside longrun) did by hand becomes the run's head. Not while a session
    works in the workspace or the judge settles one that ended."""
    run = runs.get_run(store, ref)
    _workspace_free(store, run)
    # Who left it goes into the checkpoint itself (one transaction); the `handoff` event after it
    # is for the log's readers, and a crash between the two loses nothing the next session needs.
    note = handoff.to_json() | {"by": _who(by)}
    checkpoint = take_checkpoint(store, run, None, "handoff", note)
    log.record(store, run.id, "handoff", note | {"checkpoint_id": checkpoint.id})
    return checkpoint


def report_progress(store: Store, ref: str, text: str, *, by: str | None = None) -> int:
    """Write a `progress` event (as a command worker's progress line makes) with who wrote it;
    returns its seq."""
    run = runs.get_run(store, ref)
    text = text.strip()
    if not text:
        raise InvalidTransition("a progress note needs some text")
    if len(text) > PROGRESS_CHARS:
        raise InvalidTransition(
            f"a progress note is at most {PROGRESS_CHARS:,} characters, found {len(text):,}"
        )
    return log.record(store, run.id, "progress", {"text": text, "by": _who(by)})


def _workspace_free(store: Store, run: RunView) -> None:
    if run.state == RunState.archived:
        raise InvalidTransition(f"run {run.name} ({run.id}) is archived: it takes no more handoffs")
    live = runs.live_sessions_of(store, run.id)
    if live:
        raise InvalidTransition(
            f"run {run.name} ({run.id}) has session {live[0].n} working in its workspace: "
            f"a handoff from outside waits until it ends (`longrun run pause {run.id}` asks it to wrap up)"
        )
    settling = [s for s in runs.unsettled_sessions(store) if s.run_id == run.id]
    if settling:
        raise InvalidTransition(
            f"run {run.name} ({run.id}): the judge is settling session {settling[0].n}; "
            "try the handoff again when it is done"
        )
