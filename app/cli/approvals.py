"""What waits for a person: `longrun approvals`, `approve`, `deny` and `answer`."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from longrun.app.cli.output import local_time, open_store, print_json, print_table, supervisor_alive
from longrun.app.cli.parsing import Commands
from longrun.store.errors import SpecError

if TYPE_CHECKING:
    from longrun.store.runs import ApprovalView


def cmd_approvals(args: argparse.Namespace) -> int:
    from longrun.store import runs

    store = open_store(args)
    run_id = runs.get_run(store, args.run).id if args.run else None
    items = runs.list_approvals(store, run_id, state=None if args.all else "pending")
    if args.json:
        print_json([a.to_json() for a in items])
        return 0
    if not items:
        print("no approvals" if args.all else "nothing waits for a person")
        return 0
    print_table(
        [
            [
                str(a.id),
                a.run_id,
                a.kind,
                a.state,
                local_time(a.requested_at),
                _request_line(a),
                a.decided_by or "",
            ]
            for a in items
        ],
        ["ID", "RUN", "KIND", "STATE", "REQUESTED", "REQUEST", "DECIDED BY"],
    )
    return 0


def _request_line(approval: ApprovalView) -> str:
    from longrun.scheduler.guards.policy import subject
    from longrun.store.runs import requests as r

    match approval.asks:
        case r.DoneConditionRequest(features=features):
            return f"{len(features)} features: " + ", ".join(str(f.get("id")) for f in features)
        case r.RatchetRequest(summary=summary):
            return summary
        case r.SignOffRequest(checkpoint_id=checkpoint_id):
            return f"every feature passes at checkpoint {checkpoint_id}"
        case r.BreakerResetRequest(breaker=breaker):
            detail = str(approval.request.get("detail") or "")
            return f"breaker {breaker}" + (f": {detail[:100]}" if detail else "")
        case r.ToolCallRequest(tool=tool, input=args, reason=reason):
            return f"{tool}: {subject(tool, args)[:80]} ({reason})"
        case r.QuestionRequest(question=question):
            return f"question: {question[:100]}"
        case r.BudgetRaiseRequest(cap=cap):
            return f"budget cap {cap}"
    return json.dumps(approval.request)[:120]


def cmd_decide(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import decide, decide_by_token
    from longrun.store import runs

    store = open_store(args)
    approve = args.command == "approve"
    if (args.id is None) == (args.token is None):
        raise SpecError(f"{args.command}: give an approval ID or --token T (one of them)")
    if args.token is not None:
        approval = decide_by_token(store, args.token, approve=approve, comment=args.comment)
    else:
        approval = decide(store, args.id, approve=approve, by=args.by, comment=args.comment)
    run = runs.get_run(store, approval.run_id)
    if args.json:
        print_json(approval.to_json())
        return 0
    print(
        f"approval {approval.id} ({approval.kind}) {approval.state} by {approval.decided_by}; "
        f"{run.name} ({run.id}) is {run.state}"
    )
    if run.state == "scheduled" and not supervisor_alive(store):
        print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import answer
    from longrun.store import runs

    store = open_store(args)
    approval = answer(store, args.id, args.text, by=args.by)
    run = runs.get_run(store, approval.run_id)
    if args.json:
        print_json(approval.to_json())
        return 0
    print(f"question {approval.id} answered by {approval.decided_by}; {run.name} ({run.id}) is {run.state}")
    if run.state == "scheduled" and not supervisor_alive(store):
        print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
    return 0


def register(commands: Commands) -> None:
    json_flag = commands.json_flag
    p = commands.add("approvals", cmd_approvals, "what waits for a person (pending approvals)", json_flag)
    p.add_argument("run", nargs="?", metavar="RUN", help="only this run's")
    p.add_argument("--all", action="store_true", help="decided ones too")
    for verb, text in (("approve", "approve a pending approval"), ("deny", "deny a pending approval")):
        p = commands.add(verb, cmd_decide, text, json_flag)
        p.add_argument("id", type=int, nargs="?", metavar="ID")
        p.add_argument(
            "--token", metavar="T", help="decide the approval this single-use token was issued for"
        )
        p.add_argument("--comment", help="why (the next session is told)")
        p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    p = commands.add("answer", cmd_answer, "answer a question the worker asked", json_flag)
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--by", metavar="NAME", help="who answers (default: your user name)")
