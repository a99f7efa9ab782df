"""Deciding what waits for a person: approve or deny (single-use, with who and why), answer a
question, decide by a notification's token, and let overdue requests expire.
"""

from __future__ import annotations

from longrun.scheduler.control.features import _accept_ratchet, _set_features, _stored_judgement
from longrun.scheduler.control.limits import reset_breaker
from longrun.scheduler.control.runs import _decided_already, _go_on, _still_pending, _who
from longrun.scheduler.judging.judge import apply_judgement
from longrun.scheduler.judging.pinning import pin_harness
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import InvalidTransition
from longrun.store.models import RunState, utcnow
from longrun.store.runs import (
    ApprovalView,
    BreakerResetRequest,
    DoneConditionRequest,
    RatchetRequest,
    SignOffRequest,
    ToolCallRequest,
)


def decide(
    store: Store, approval_id: int, *, approve: bool, by: str | None = None, comment: str | None = None
) -> ApprovalView:
    """Approve or deny a pending approval, once, and let its run go on as the decision says."""
    approval = runs.get_approval(store, approval_id)
    who = _who(by)
    _still_pending(approval)
    run = runs.get_run(store, approval.run_id)
    kind = approval.kind
    if approve and kind == "question":
        raise InvalidTransition(
            f"approval {approval.id} is a question: answer it with `longrun answer {approval.id} TEXT`"
        )
    if approve and kind == "budget_raise":
        raise InvalidTransition(
            f"approval {approval.id} asks for more budget: "
            f"raise it with `longrun budget set {run.id} --usd N`"
        )
    asks = approval.asks
    if approve and isinstance(asks, BreakerResetRequest):
        reset_breaker(store, run.id, asks.breaker, by=who, comment=comment)
        return runs.get_approval(store, approval.id)
    if approve and isinstance(asks, DoneConditionRequest):
        spec = RunSpec.model_validate({**run.spec, "features": asks.features})
        _set_features(store, run, spec, approval, who, comment, edited=False)
        return runs.get_approval(store, approval.id)
    state = "approved" if approve else "denied"
    said = f"{kind.replace('_', ' ')} {state} by {who}"
    with store.writing() as conn:
        if not runs.decide_approval(conn, approval.id, state, who, comment):
            raise InvalidTransition(_decided_already(runs.get_approval(store, approval.id)))
        if approve and kind == "ratchet":
            _accept_ratchet(conn, store, run, approval, who, comment)
        if approve and kind == "sign_off":
            runs.set_run_state(conn, run.id, RunState.done, f"every feature passes; signed off by {who}")
            runs.set_run_plan(conn, run.id, due_at=None, next_session_at=None, next_reason=None)
            done = {
                "checkpoint_id": asks.checkpoint_id if isinstance(asks, SignOffRequest) else None,
                "by": who,
            }
            log.append(conn, run.id, "run_done", done)
        elif not approve and kind in ("budget_raise", "breaker_reset"):
            runs.set_run_state(conn, run.id, RunState.paused, said)
        elif not (approve and kind == "ratchet"):
            _go_on(conn, run.id, said)
    if approve and kind == "ratchet":
        # The tests as they are now are accepted: a run whose features all pass at its head is done.
        current = runs.get_run(store, run.id)
        spec = RunSpec.model_validate(current.spec)
        if isinstance(asks, RatchetRequest) and asks.harness_changed and asks.checkpoint_id is not None:
            accepted_at = runs.get_checkpoint(store, asks.checkpoint_id, run.id)
            pin_harness(
                store, current, spec, accepted_at, by=who, why=f"a harness change approved ({approval.id})"
            )
        judgement = _stored_judgement(store, current, spec)
        with store.writing() as conn:
            if judgement is None or apply_judgement(conn, store, current, spec, judgement, None) is None:
                _go_on(conn, run.id, said)
    return runs.get_approval(store, approval.id)


def answer(store: Store, approval_id: int, text_: str, *, by: str | None = None) -> ApprovalView:
    """Answer a question the worker asked; the next session goes on with the answer."""
    approval = runs.get_approval(store, approval_id)
    _still_pending(approval)
    if approval.kind != "question":
        raise InvalidTransition(
            f"approval {approval.id} is a {approval.kind.replace('_', ' ')}, not a question: "
            f"use `longrun approve {approval.id}` or `longrun deny {approval.id}`"
        )
    if not text_.strip():
        raise InvalidTransition("an answer needs some text")
    who = _who(by)
    with store.writing() as conn:
        if not runs.decide_approval(conn, approval.id, "answered", who, text_):
            raise InvalidTransition(_decided_already(runs.get_approval(store, approval.id)))
        _go_on(conn, approval.run_id, f"question answered by {who}")
    return runs.get_approval(store, approval.id)


def decide_by_token(store: Store, token: str, *, approve: bool, comment: str | None = None) -> ApprovalView:
    """Decide the one approval a token was issued for (a link, a webhook consumer); the token is
    good once."""
    approval_id = runs.approval_of_token(store, token)
    if approval_id is None:
        raise InvalidTransition("that token decides no pending approval (it is wrong, or was used already)")
    return decide(store, approval_id, approve=approve, by="token holder", comment=comment)


def expire_approvals(store: Store) -> list[ApprovalView]:
    """Pending approvals past their `expires_at` take their rule's expiry action (deny by default)."""
    expired = []
    for approval in runs.overdue_approvals(store, utcnow()):
        asks = approval.asks
        action = asks.on_expiry if isinstance(asks, ToolCallRequest) else "deny"
        with store.writing() as conn:
            note = f"waited past its expiry; {'approved' if action == 'approve' else 'denied'} by the rule"
            if runs.decide_approval(conn, approval.id, "expired", "longrun", note):
                log.append(
                    conn,
                    approval.run_id,
                    "approval_expired",
                    {"approval_id": approval.id, "action": action},
                    session_id=approval.session_id,
                )
                _go_on(conn, approval.run_id, f"approval {approval.id} expired ({action})")
                expired.append(approval)
    return expired
