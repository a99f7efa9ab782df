"""Going back: rewind a run to a checkpoint, fork a new run from one, resume from one now. Nothing
is deleted: an abandoned branch stays in the log and in git under its own ref.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from longrun.scheduler.control.runs import _who, new_run_id
from longrun.scheduler.guards.pricing import prices_for
from longrun.scheduler.judging.pinning import PINNED, latest_pin
from longrun.scheduler.session import mirror
from longrun.scheduler.session import workspace as ws
from longrun.scheduler.session.checkpoints import take_checkpoint
from longrun.scheduler.spec.overrides import apply_overrides
from longrun.scheduler.spec.run import RunSpec
from longrun.scheduler.workers.claude_code.transcripts import is_claude_record
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import InvalidTransition, SpecError
from longrun.store.models import RunState, utcnow
from longrun.store.runs import CheckpointView, RunView, VerdictView


def rewind(store: Store, ref: str, checkpoint_id: int, *, by: str | None = None) -> RunView:
    """Move the run's head, branch and working tree back to a checkpoint. The current state is
    checkpointed first and kept under `refs/longrun/<run>/abandoned/<n>`; nothing in the log goes."""
    run = runs.get_run(store, ref)
    target = runs.get_checkpoint(store, checkpoint_id, run.id)
    live = [s for s in runs.list_sessions(store, run.id) if not s.is_final]
    if live:
        raise InvalidTransition(
            f"run {run.name} ({run.id}) has session {live[0].n} running: "
            f"pause or stop it first (`longrun run stop {run.id}`)"
        )
    who = _who(by)
    workspace = Path(run.workspace)
    current = take_checkpoint(store, run, None, "before_rewind", None)
    abandoned = ws.git(workspace, "for-each-ref", "--format=%(refname)", f"refs/longrun/{run.id}/abandoned/")
    keep = f"refs/longrun/{run.id}/abandoned/{len(abandoned.splitlines()) + 1}"
    ws.git(workspace, "update-ref", keep, current.commit)
    mirror.bring_back(store.home, workspace, run.id, target.commit)
    ws.restore(workspace, run.branch, target.commit, keep_ref=f"{keep}-found")
    reopened = run.state in (RunState.done, RunState.failed)
    with store.writing() as conn:
        runs.set_head_checkpoint(conn, run.id, target.id)
        log.append(
            conn,
            run.id,
            "rewound",
            {"to": target.id, "from": current.id, "commit": target.commit, "abandoned_ref": keep, "by": who},
        )
        if reopened:
            runs.set_run_state(conn, run.id, RunState.paused, f"rewound to checkpoint {target.id} by {who}")
    return runs.get_run(store, run.id)


def fork(
    store: Store,
    ref: str,
    checkpoint_id: int,
    *,
    name: str | None = None,
    overrides: list[str] | None = None,
    by: str | None = None,
) -> RunView:
    """A new run from a checkpoint of another: its own git worktree and branch started there, its
    own budget and breakers, the parent's done-condition (and `--set` changes to its spec)."""
    parent = runs.get_run(store, ref)
    target = runs.get_checkpoint(store, checkpoint_id, parent.id)
    who = _who(by)
    run_id = new_run_id()
    raw = {**parent.spec, "name": name or f"{parent.name}-fork"[:64]}
    folder = Path(parent.workspace).with_name(f"{Path(parent.workspace).name}-fork-{run_id}")
    raw["workspace"] = str(folder)
    try:
        spec = RunSpec.model_validate(apply_overrides(raw, overrides or []))
    except ValidationError as exc:
        problem = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in problem["loc"])
        raise SpecError(f"--set {where}: {problem['msg']}") from None
    if prices_for(spec, store.home).find(spec.worker.model) is None:
        raise SpecError(f"--set worker.model: no price known for {spec.worker.model!r}")
    branch = ws.branch_name(run_id)
    mirror.bring_back(store.home, Path(parent.workspace), parent.id, target.commit)
    ws.add_worktree(Path(parent.workspace), folder, branch, target.commit)
    run = runs.insert_run(
        store,
        run_id=run_id,
        name=spec.name,
        goal=spec.goal,
        spec=spec.model_dump(mode="json"),
        spec_path=parent.spec_path,
        workspace=str(folder),
        branch=branch,
        state=RunState.paused,
        parent_run_id=parent.id,
    )
    first = take_checkpoint(store, run, None, "forked", None)
    carried = _carried_verdicts(store, parent, target, first.id)
    if carried:
        runs.add_verdicts(store, run.id, first.id, carried)
    pin = latest_pin(store, parent.id)
    if pin is not None:  # the parent's pinned harness holds for the fork, as its done-condition does
        log.record(store, run.id, PINNED, {**pin, "by": who, "why": f"carried from run {parent.id}"})
    with store.writing() as conn:
        runs.set_run_state(conn, run.id, RunState.paused, f"forked from {parent.name} ({parent.id}) by {who}")
        data = {"parent_run_id": parent.id, "parent_checkpoint_id": target.id, "by": who}
        log.append(conn, run.id, "forked", data | {"checkpoint_id": first.id, "overrides": overrides or []})
        log.append(conn, parent.id, "fork_made", {"run_id": run.id, "checkpoint_id": target.id, "by": who})
    return runs.get_run(store, run.id)


def _carried_verdicts(store: Store, parent: RunView, target: CheckpointView, to: int) -> list[VerdictView]:
    """The verdicts of the checkpoint a fork starts from, for the fork's first checkpoint (the same
    files: what was judged there holds there), each saying where it came from."""
    latest: dict[str, VerdictView] = {}
    for verdict in runs.verdicts_at(store, [target.id]).get(target.id, []):
        latest[verdict.feature_id] = verdict  # oldest first: the last one counts
    came = {"run_id": parent.id, "checkpoint_id": target.id}
    return [
        VerdictView(v.feature_id, to, v.judge, v.status, {**v.evidence, "carried_from": came})
        for v in latest.values()
    ]


RESUMABLE = {RunState.draft, RunState.paused, RunState.scheduled, RunState.done, RunState.failed}


CONTEXT_TOKENS = 200_000
"""The context window an exact resume must fit in (with the reply's max_tokens and a margin)."""


def resume_now(
    store: Store, ref: str, checkpoint_id: int | None = None, *, exact: bool = False, by: str | None = None
) -> tuple[RunView, str]:
    """Schedule a session now, from the head or (after a rewind to it) from `checkpoint_id`.

    With `exact`, the session goes on from the conversation the session that made the
    checkpoint kept, when it fits the model's context; otherwise it starts from the resume
    context. Returns the run and a line saying which.
    """
    run = runs.get_run(store, ref)
    if run.state not in RESUMABLE:
        can = ", ".join(sorted(RESUMABLE))
        waits = (
            " (decide what it waits for first: `longrun approvals`)"
            if run.state == "awaiting_approval"
            else ""
        )
        raise InvalidTransition(
            f"run {run.name} ({run.id}) is {run.state}: resume needs it to be {can}{waits}"
        )
    if checkpoint_id is not None and checkpoint_id != run.head_checkpoint_id:
        run = rewind(store, run.id, checkpoint_id, by=by)
    who = _who(by)
    how = f"from the resume context of checkpoint {run.head_checkpoint_id}"
    head = run.head_checkpoint_id
    conversation = runs.conversation_of(store, run.id, head) if exact and head is not None else None
    if exact and conversation is None:
        how += f" (no conversation was kept for checkpoint {run.head_checkpoint_id})"
    elif conversation is not None and not is_claude_record(conversation.messages):
        # (a Claude Code conversation is the CLI's to fit: it compacts its own context)
        spec = RunSpec.model_validate(run.spec)
        bound = len(log.canonical_json(conversation.messages).encode()) // 3  # tokens, generously
        room = CONTEXT_TOKENS - spec.worker.max_tokens - CONTEXT_TOKENS // 10
        if bound > room:
            how += f" (the kept conversation, about {bound:,} tokens, does not fit in {room:,})"
            conversation = None
    with store.writing() as conn:
        if conversation is not None:
            runs.add_conversation(
                conn,
                run.id,
                conversation.session_id,
                run.head_checkpoint_id or 0,
                "exact",
                conversation.messages,
            )
            how = f"exactly where the conversation of checkpoint {run.head_checkpoint_id} left off"
        reason = f"resumed by {who}"
        runs.set_run_state(conn, run.id, RunState.scheduled, reason)
        runs.set_run_plan(
            conn, run.id, due_at=utcnow(), hold_until=None, next_session_at=None, next_reason=reason
        )
        data = {
            "by": who,
            "checkpoint_id": run.head_checkpoint_id,
            "exact": conversation is not None,
            "how": how,
        }
        log.append(conn, run.id, "resumed", data)
    return runs.get_run(store, run.id), how
