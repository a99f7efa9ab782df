"""The `longrun` command line.

Every error a person can cause comes out as one line on stderr and a non-zero exit, never a
traceback. Every list and show takes `--json` with stable field names.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import textwrap
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from longrun.store.errors import LongrunError, SpecError

EXIT_ERROR = 1
EXIT_USAGE = 2


def _local(ts: datetime | None) -> str:
    return ts.astimezone().strftime("%Y-%m-%d %H:%M:%S") if ts else "—"


def _print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, ensure_ascii=False, default=str)
    sys.stdout.write("\n")


def _table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows, strict=False)]
    for line in [headers, *rows]:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(line, widths, strict=False)).rstrip())


def _store(args: argparse.Namespace, create: bool = True) -> Any:
    from longrun.store.db import Store

    return Store.open(args.home, create=create)


# --- commands ---------------------------------------------------------------------------------


def cmd_init(args: argparse.Namespace) -> int:
    store = _store(args)
    print(f"store ready: {store.path}")
    return 0


def cmd_run_create(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import create_run_from_file

    store = _store(args)
    run = create_run_from_file(store, Path(args.spec), args.set)
    if args.json:
        _print_json(run.to_json())
    else:
        print(f"created run {run.id} ({run.name}) on branch {run.branch} in {run.workspace}")
    return 0


def cmd_run_list(args: argparse.Namespace) -> int:
    from longrun.store import runs

    store = _store(args)
    items = runs.list_runs(store)
    if args.json:
        _print_json([r.to_json() for r in items])
        return 0
    if not items:
        print("no runs yet: create one with `longrun run create SPEC.toml` or try `longrun demo --headless`")
        return 0
    _table(
        [
            [r.id, r.name, r.state, f"${r.spent_usd:.4f}", f"{r.usage.tokens:,}", _local(r.updated_at)]
            for r in items
        ],
        ["ID", "NAME", "STATE", "SPENT", "TOKENS", "UPDATED"],
    )
    return 0


def run_document(store: Any, ref: str) -> dict[str, Any]:
    """`longrun run show --json`: the run with its sessions, checkpoints and features."""
    from longrun.store import runs

    run = runs.get_run(store, ref)
    verdicts = runs.latest_verdicts(store, run.id, [f["id"] for f in run.spec.get("features", [])])
    doc = run.to_json()
    doc["spec_path"] = run.spec_path
    doc["sessions"] = [s.to_json() for s in runs.list_sessions(store, run.id)]
    doc["checkpoints"] = [
        {
            "id": c.id,
            "seq": c.seq,
            "commit": c.commit,
            "created_at": c.to_json()["created_at"],
            "reason": c.reason,
            "session_id": c.session_id,
            "parent_id": c.parent_id,
            "handoff": c.handoff,
        }
        for c in runs.list_checkpoints(store, run.id)
    ]
    doc["features"] = [
        {
            "id": f["id"],
            "description": f["description"],
            "status": verdicts[f["id"]].status if f["id"] in verdicts else "unjudged",
            "checkpoint_id": verdicts[f["id"]].checkpoint_id if f["id"] in verdicts else None,
        }
        for f in run.spec.get("features", [])
    ]
    return doc


def cmd_run_show(args: argparse.Namespace) -> int:
    store = _store(args)
    doc = run_document(store, args.run)
    if args.json:
        _print_json(doc)
        return 0
    print(
        f"{doc['name']} ({doc['id']})  {doc['state']}"
        + (f" — {doc['state_reason']}" if doc["state_reason"] else "")
    )
    print(f"workspace  {doc['workspace']}  (branch {doc['branch']})")
    tokens = doc["tokens"]
    print(
        f"spent      ${doc['spent_usd']:.4f}  ({tokens['tokens']:,} tokens: {tokens['input_tokens']:,} in, "
        f"{tokens['output_tokens']:,} out, {tokens['cache_write_tokens']:,} cache write, "
        f"{tokens['cache_read_tokens']:,} cache read)"
    )
    if doc["features"]:
        print("\nfeatures")
        _table(
            [[f["id"], f["status"], f["description"]] for f in doc["features"]],
            ["ID", "STATUS", "DESCRIPTION"],
        )
    if doc["sessions"]:
        print("\nsessions")
        _table(
            [
                [
                    str(s["n"]),
                    s["state"],
                    s["end_reason"] or "",
                    str(s["pid"] or ""),
                    s["started_at"] or "—",
                    s["ended_at"] or "—",
                    f"${s['spent_usd']:.4f}",
                ]
                for s in doc["sessions"]
            ],
            ["N", "STATE", "HOW", "PID", "STARTED", "ENDED", "SPENT"],
        )
    if doc["checkpoints"]:
        print("\ncheckpoints")
        _table(
            [
                [str(c["id"]), str(c["seq"]), c["commit"][:10], c["reason"], c["created_at"]]
                for c in doc["checkpoints"]
            ],
            ["ID", "SEQ", "COMMIT", "REASON", "CREATED"],
        )
    return 0


def cmd_session_run(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import run_session_now
    from longrun.store import runs

    store = _store(args)
    session = run_session_now(store, args.run)
    run = runs.get_run(store, session.run_id)
    if args.json:
        _print_json(session.to_json() | {"run_id": run.id, "run_state": run.state})
    else:
        print(
            f"session {session.n} of {run.name} ({run.id}): {session.state} ({session.end_reason}); "
            f"spent ${session.usage.usd:.4f}; run is {run.state}"
        )
    return 0 if session.state == "ended" else EXIT_ERROR


def _event_summary(kind: str, data: dict[str, Any]) -> str:
    if kind == "model_call":
        u = data.get("usage", {})
        calls = ", ".join(data.get("tool_calls") or []) or data.get("stop_reason") or ""
        return f"{u.get('tokens', 0):,} tokens ${u.get('usd', 0):.4f} → {calls}"
    if kind == "tool_call":
        arg = json.dumps(data.get("input", {}), ensure_ascii=False)
        return f"{data.get('tool')} {arg[:100]}"
    if kind == "tool_result":
        first = (data.get("output") or "").strip().splitlines()
        outcome = "error" if data.get("is_error") else "ok"
        return f"{data.get('tool')} {outcome}: {first[0][:90] if first else ''}"
    if kind == "context":
        return f"{data.get('bytes')} bytes from checkpoint {data.get('checkpoint_id')}"
    if kind == "verdict":
        return f"{data.get('feature_id')}: {data.get('status')} ({data.get('judge')})"
    return ", ".join(f"{k}={v}" for k, v in data.items() if not isinstance(v, dict | list))[:120]


EXPORT_FORMATS = ("jsonl", "csv")
EXPORT_COLUMNS = ("run_id", "seq", "session_id", "ts", "kind", "data")


def _seq_or_time(text: str | None, flag: str) -> int | datetime | None:
    """A `--since`/`--until` bound: a seq number, or an ISO time (one without an offset is UTC)."""
    if text is None:
        return None
    raw = text.strip()
    if raw.isdigit():
        return int(raw)
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise SpecError(
            f"{flag}: expected a seq number or an ISO time like 2026-11-20T10:00 (no offset: UTC), "
            f"found {text!r}"
        ) from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _print_json_array(items: Iterable[Any]) -> None:
    """What `_print_json` prints for a list, written an item at a time."""
    first = True
    for item in items:
        text = json.dumps(item, indent=2, ensure_ascii=False, default=str)
        sys.stdout.write(("[\n" if first else ",\n") + textwrap.indent(text, "  "))
        first = False
    sys.stdout.write("[]\n" if first else "\n]\n")


def _export(rows: Iterable[Any], fmt: str) -> None:
    """Events as JSON lines or CSV, a row at a time; the payload is the stored canonical JSON."""
    if fmt == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(EXPORT_COLUMNS)
        for r in rows:
            writer.writerow((r.run_id, r.seq, r.session_id, r.ts, r.kind, r.data))
        return
    head = {"run_id": "", "seq": 0, "session_id": None, "ts": "", "kind": ""}
    for r in rows:
        head["run_id"], head["seq"], head["session_id"], head["ts"], head["kind"] = (
            r.run_id,
            r.seq,
            r.session_id,
            r.ts,
            r.kind,
        )
        line = json.dumps(head, ensure_ascii=False, separators=(",", ":"))
        sys.stdout.write(f'{line[:-1]},"data":{r.data}}}\n')


def cmd_events(args: argparse.Namespace) -> int:
    from longrun.store import log, runs

    if args.format is not None and args.format not in EXPORT_FORMATS:
        raise SpecError(f"--format: expected one of {', '.join(EXPORT_FORMATS)}, found {args.format!r}")
    if args.format is not None and args.json:
        raise SpecError("--format and --json: give one of them")
    since = _seq_or_time(args.since, "--since")
    until = _seq_or_time(args.until, "--until")
    window: dict[str, Any] = {
        "since_seq": since if isinstance(since, int) else 0,
        "since_ts": since if isinstance(since, datetime) else None,
        "until_seq": until if isinstance(until, int) else None,
        "until_ts": until if isinstance(until, datetime) else None,
        "kinds": args.kind or None,
    }
    store = _store(args)
    run = runs.get_run(store, args.run)
    if args.format is not None:
        _export(log.stream_rows(store, run.id, **window), args.format)
        return 0
    events = log.stream_events(store, run.id, **window)
    if args.json:
        _print_json_array(e.to_json() for e in events)
        return 0
    for e in events:
        session = f"s{e.session_id}" if e.session_id is not None else "-"
        print(f"{e.seq:>6}  {_local(e.ts)}  {session:>4}  {e.kind:<16} {_event_summary(e.kind, e.data)}")
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from longrun.store import runs

    store = _store(args)
    run = runs.get_run(store, args.run)
    items = runs.list_checkpoints(store, run.id)
    if args.json:
        _print_json([c.to_json() for c in items])
        return 0
    head = run.head_checkpoint_id
    _table(
        [
            [
                ("*" if c.id == head else "") + str(c.id),
                str(c.parent_id or ""),
                str(c.seq),
                c.commit[:10],
                c.reason,
                f"${c.spent_usd:.4f}",
                _local(c.created_at),
                "; ".join((c.handoff or {}).get("next", []))[:60],
            ]
            for c in items
        ],
        ["ID", "PARENT", "SEQ", "COMMIT", "REASON", "SPENT", "CREATED", "NEXT (HANDOFF)"],
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    from longrun.store import log, runs

    store = _store(args)
    run = runs.get_run(store, args.run)
    report = log.verify_chain(store, run.id)
    if args.json:
        _print_json(report.to_json())
    elif report.ok:
        print(f"chain whole: {report.events} events of run {run.name} ({run.id}) verified")
    else:
        print(f"chain broken at event {report.broken_at}: {report.reason}")
    return 0 if report.ok else EXIT_ERROR


def cmd_report(args: argparse.Namespace) -> int:
    from longrun.app.report import build_report, check_writable, parse_time, write_report
    from longrun.store import runs

    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    target = check_writable(Path(args.html))
    store = _store(args, create=False)
    run = runs.get_run(store, args.run)
    print(write_report(build_report(store, run.id, since=since, until=until), target))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    if args.write:
        from longrun.scheduler.demo import write_demo_project

        spec = write_demo_project(Path(args.write))
        print(f"wrote the demo spec {spec} and its workspace; run it with `longrun run create {spec}`")
        return 0
    if not args.headless:
        from longrun.app.tui import main as ui_main

        return ui_main(["--demo"] + (["--home", args.home] if args.home else []))
    from longrun.scheduler.control import prepare_demo, start
    from longrun.scheduler.supervisor.daemon import supervise_until_finished
    from longrun.store import runs

    store = _store(args)
    run = prepare_demo(store, args.set)
    if not args.json:
        print(
            f"demo run {run.id}: scripted model (no network, no key), workspace {run.workspace}", flush=True
        )
    start(store, run.id, by="demo")
    deadline = time.monotonic() + args.timeout
    while True:
        left = max(deadline - time.monotonic(), 0.0)
        finished = supervise_until_finished(store, run.id, timeout_s=left)
        final = runs.get_run(store, run.id)
        if not finished or final.state != "awaiting_approval" or not _demo_decides(store, final, args):
            break
    final = runs.get_run(store, run.id)
    doc = run_document(store, final.id)
    if args.json:
        _print_json(doc)
    else:
        passed = sum(1 for f in doc["features"] if f["status"] == "pass")
        print(
            f"{final.id}: {final.state} after {len(doc['sessions'])} sessions, "
            f"{passed}/{len(doc['features'])} features pass, spent ${final.spent_usd:.4f}"
        )
    if not finished:
        print(f"longrun: error: the demo did not finish within {args.timeout:g}s", file=sys.stderr)
        return EXIT_ERROR
    if final.state in ("awaiting_approval", "tripped", "paused") and not args.json:
        print(f"the run waits for a person: {final.state_reason}")
    return 0 if final.state in ("done", "awaiting_approval", "tripped") else EXIT_ERROR


def _demo_decides(store: Any, run: Any, args: argparse.Namespace) -> bool:
    """The headless demo paused for a person: approve with --auto-approve, ask on a terminal, or
    leave it waiting (False)."""
    from longrun.scheduler.control import decide
    from longrun.scheduler.guards.policy import subject
    from longrun.store import runs

    pending = [a for a in runs.list_approvals(store, run.id, state="pending") if a.kind == "tool_call"]
    if not pending:
        return False
    for approval in pending:
        tool = str(approval.request.get("tool"))
        call = f"{tool}: {subject(tool, approval.request.get('input') or {})}"
        if not args.json:
            print(f"approval {approval.id}: the agent wants to run {call} ({approval.request.get('reason')})")
        if args.auto_approve:
            yes = True
        elif sys.stdin.isatty():
            try:
                yes = input("Approve it? [y/N] ").strip().lower() in ("y", "yes")
            except EOFError:
                yes = False
        else:
            return False
        decide(store, approval.id, approve=yes, by="demo --auto-approve" if args.auto_approve else None)
        if not args.json:
            print(f"approval {approval.id} {'approved' if yes else 'denied'}; the run goes on", flush=True)
    return True


def cmd_run_verb(args: argparse.Namespace) -> int:
    from longrun.scheduler import control

    store = _store(args)
    verb = {"start": control.start, "pause": control.pause, "stop": control.stop, "resume": control.resume}
    run = verb[args.run_command](store, args.run, by=args.by)
    if args.json:
        _print_json(run.to_json())
    else:
        print(f"{run.name} ({run.id}) is {run.state}: {run.state_reason}")
        if run.state == "scheduled" and not _supervisor_alive(store):
            print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
    return 0


def _supervisor_alive(store: Any) -> bool:
    from longrun.store import lease

    current = lease.current(store)
    return current is not None and current.alive()


def cmd_daemon(args: argparse.Namespace) -> int:
    import signal
    from datetime import timedelta

    from longrun.scheduler.supervisor.daemon import Supervisor, SupervisorConfig

    store = _store(args)
    config = SupervisorConfig(
        max_concurrent=args.max_concurrent or SupervisorConfig().max_concurrent,
        lease_ttl=timedelta(seconds=args.lease_ttl),
        tick=args.tick,
        grace=timedelta(seconds=args.grace),
    )

    def announce(text: str) -> None:
        print(f"{datetime.now().astimezone().isoformat(timespec='seconds')} {text}", flush=True)

    supervisor = Supervisor(store, config, announce=announce)

    def on_signal(signum: int, _frame: object) -> None:
        announce(f"{signal.Signals(signum).name}: shutting down (sessions get {args.grace:g}s to wrap up)")
        supervisor.stop()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    announce(f"store {store.path}; at most {config.max_concurrent} sessions at once")
    try:
        supervisor.serve()
    finally:
        supervisor.shutdown()
        announce("stopped")
    return 0


def _until(ts: datetime | None, now: datetime) -> str:
    if ts is None:
        return "—"
    seconds = int((ts - now).total_seconds())
    if seconds <= 0:
        return "now"
    if seconds < 120:
        return f"in {seconds}s"
    if seconds < 7200:
        return f"in {seconds // 60}m"
    return f"in {seconds // 3600}h{(seconds % 3600) // 60:02d}m"


def status_document(store: Any) -> dict[str, Any]:
    """`longrun status --json`: who supervises, and for each active run what runs and what comes next."""
    from longrun.store import lease, runs
    from longrun.store.models import iso, utcnow

    now = utcnow()
    current = lease.current(store)
    live = {s.run_id: s for s in runs.live_sessions(store)}
    items = []
    for run in runs.list_runs(store):
        if run.state in ("done", "archived", "draft", "failed"):
            continue
        session = live.get(run.id)
        items.append(
            {
                "id": run.id,
                "name": run.name,
                "state": run.state,
                "reason": run.state_reason,
                "session": None
                if session is None
                else {
                    "n": session.n,
                    "state": session.state,
                    "pid": session.pid,
                    "deadline_at": iso(session.deadline_at),
                    "seconds_left": max(int((session.deadline_at - now).total_seconds()), 0),
                },
                "next_session_at": iso(run.next_session_at) if run.next_session_at else None,
                "next_reason": run.next_reason,
                "spent_usd": round(run.spent_usd, 6),
            }
        )
    return {"supervisor": current.to_json(now) if current else None, "runs": items}


def cmd_status(args: argparse.Namespace) -> int:
    from longrun.store.models import utcnow

    store = _store(args)
    doc = status_document(store)
    if args.json:
        _print_json(doc)
        return 0
    sup = doc["supervisor"]
    if sup and sup["alive"]:
        print(
            f"supervisor: running (pid {sup['pid']}, {sup['holder']}), last heartbeat {sup['heartbeat_at']}"
        )
    else:
        print("supervisor: not running (start it with `longrun daemon`)")
    if not doc["runs"]:
        print("no active runs")
        return 0
    now = utcnow()
    rows = []
    for r in doc["runs"]:
        s = r["session"]
        running = f"session {s['n']} ({s['seconds_left']}s left)" if s else "—"
        at = datetime.fromisoformat(r["next_session_at"]) if r["next_session_at"] else None
        nxt = f"{_until(at, now)} ({r['next_reason']})" if at else (r["next_reason"] or "—")
        rows.append([r["id"], r["name"], r["state"], running, nxt])
    _table(rows, ["ID", "NAME", "STATE", "RUNNING", "NEXT SESSION"])
    return 0


def cmd_budget(args: argparse.Namespace) -> int:
    from longrun.scheduler import control

    store = _store(args)
    setting = args.words[0] == "set"
    if len(args.words) != (2 if setting else 1):
        raise SpecError("usage: longrun budget RUN [--json] | longrun budget set RUN --usd N …")
    args.run = args.words[-1]
    if setting:
        caps = {
            k: v
            for k, v in (
                ("usd", args.usd),
                ("tokens", args.tokens),
                ("per_session_usd", args.per_session_usd),
                ("per_day_usd", args.per_day_usd),
            )
            if v is not None
        }
        if not caps:
            raise SpecError(
                "budget set: give at least one of --usd, --tokens, --per-session-usd, --per-day-usd"
            )
        run = control.set_budget(store, args.run, caps, by=args.by, comment=args.comment)
        shown = ", ".join(f"budget.{k} = {v:g}" for k, v in caps.items())
        print(f"{run.name} ({run.id}): {shown}; the run is {run.state}")
        if run.state == "scheduled" and not _supervisor_alive(store):
            print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
        return 0
    doc = control.budget_document(store, args.run)
    if args.json:
        _print_json(doc)
        return 0
    print(
        f"{doc['run_id']}  {doc['state']}  spent ${doc['spent_usd']:.4f}  today ${doc['today_usd']:.4f}  "
        f"last hour ${doc['last_hour_usd']:.4f}  (warn at {doc['warn_at']:.0%})"
    )
    if doc["caps"]:
        _table(
            [
                [c["cap"], f"{c['limit']:g}", f"{c['spent']:.4f}", f"{c['left']:.4f}", f"{c['fraction']:.0%}"]
                for c in doc["caps"]
            ],
            ["CAP", "LIMIT", "SPENT", "LEFT", "USED"],
        )
    else:
        print("no caps set")
    _table(
        [[b["name"], str(b["limit"]), b["state"], b["reason"] or ""] for b in doc["breakers"]],
        ["BREAKER", "LIMIT", "STATE", "REASON"],
    )
    return 0


def cmd_breaker_reset(args: argparse.Namespace) -> int:
    from longrun.scheduler import control

    store = _store(args)
    run = control.reset_breaker(store, args.run, args.name, by=args.by, comment=args.comment)
    print(f"breaker {args.name} of {run.name} ({run.id}) is half-open; the run is {run.state}")
    if run.state == "scheduled" and not _supervisor_alive(store):
        print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
    return 0


def _short(status: str) -> str:
    return {"pass": "pass", "fail": "FAIL", "error": "ERR", "unjudged": "·"}.get(status, status)


def _evidence_line(evidence: dict[str, Any]) -> str:
    """One line of a verdict's evidence: the judge's summary or reasons, else the check's last line."""
    for key in ("summary", "error", "rationale", "rubric_skipped"):
        if evidence.get(key):
            return " ".join(str(evidence[key]).split())[:160]
    tail = [line for line in str(evidence.get("output_tail", "")).splitlines() if line.strip()]
    return tail[-1].strip()[:160] if tail else ""


def cmd_judge(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import judge_now
    from longrun.store import runs

    store = _store(args)
    judgement = judge_now(store, args.run, args.checkpoint, by=args.by)
    verdicts = runs.verdicts_at(store, [judgement.checkpoint_id])[judgement.checkpoint_id]
    latest = {v.feature_id: v for v in verdicts}
    run = runs.get_run(store, judgement.run_id)
    if args.json:
        _print_json(
            {
                "run_id": run.id,
                "checkpoint_id": judgement.checkpoint_id,
                "all_pass": judgement.all_pass,
                "state": run.state,
                "usd": round(judgement.usd, 6),
                "verdicts": [latest[f].to_json() for f in judgement.statuses],
            }
        )
        return 0
    print(f"{run.name} ({run.id}), checkpoint {judgement.checkpoint_id}:")
    _table(
        [[f, _short(v.status), v.judge, _evidence_line(v.evidence)] for f, v in latest.items()],
        ["FEATURE", "VERDICT", "JUDGE", "EVIDENCE"],
    )
    if judgement.changed_copy:
        print(f"flagged: the worker's copy of the done-condition was {judgement.changed_copy}")
    print(f"the run is {run.state}" + (f": {run.state_reason}" if run.state_reason else ""))
    return 0


def cmd_verdicts(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import verdict_matrix

    store = _store(args)
    doc = verdict_matrix(store, args.run)
    if args.json:
        _print_json(doc)
        return 0
    checkpoints = doc["checkpoints"][-args.last :]
    if not checkpoints:
        print(f"{doc['name']} ({doc['run_id']}) has no verdicts yet")
        return 0
    shown = {c["id"] for c in checkpoints}
    rows = []
    for feature in doc["features"]:
        cells = {v["checkpoint_id"]: v["status"] for v in feature["verdicts"]}
        rows.append([feature["id"], *(_short(cells.get(c["id"], "unjudged")) for c in checkpoints)])
    headers = [
        "FEATURE",
        *(f"#{c['id']}" + (f" s{c['session']}" if c["session"] else "") for c in checkpoints),
    ]
    hidden = len(doc["checkpoints"]) - len(shown)
    print(
        f"{doc['name']} ({doc['run_id']}): verdicts by checkpoint, oldest first"
        + (f" ({hidden} older not shown)" if hidden else "")
    )
    _table(rows, headers)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from longrun.scheduler import control

    store = _store(args)
    editing = args.words[0] == "edit"
    if len(args.words) != (2 if editing else 1):
        raise SpecError("usage: longrun features RUN [--json] | longrun features edit RUN [--file F]")
    ref = args.words[-1]
    if editing:
        return _edit_features(store, ref, args)
    doc = control.features_document_of(store, ref)
    if args.json:
        _print_json(doc)
        return 0
    if doc["features"]:
        _table(
            [
                [
                    f["id"],
                    _short(f["status"]),
                    "check" if f.get("check") else "",
                    "rubric" if f.get("rubric") else "",
                    f["description"],
                ]
                for f in doc["features"]
            ],
            ["ID", "STATUS", "CHECK", "RUBRIC", "DESCRIPTION"],
        )
    else:
        print("no done-condition yet: the first session proposes one")
    if doc["ratchet"]:
        r = doc["ratchet"]
        print(
            f"ratchet: {_short(r['status'])} at checkpoint {r['checkpoint_id']}: "
            + _evidence_line(r["evidence"])
        )
    if doc["proposal"]:
        a = doc["proposal"]
        print(f"\nproposed by the worker, waiting for a person (approval {a['id']}):")
        for f in a["request"].get("features", []):
            how = ", ".join(k for k in ("check", "rubric") if f.get(k))
            print(f"  {f['id']} ({how}): {f['description']}")
        print(
            f"approve with `longrun approve {a['id']}`, or edit with `longrun features edit {doc['run_id']}`"
        )
    return 0


def _edit_features(store: Any, ref: str, args: argparse.Namespace) -> int:
    import shlex
    import subprocess
    import tempfile

    from longrun.scheduler import control

    run, original = control.features_text(store, ref)
    if args.file:
        source = args.file
        try:
            edited = Path(args.file).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"{args.file}: cannot read it: {getattr(exc, 'strerror', None) or exc}") from None
    else:
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR") or "vi"
        folder = Path(tempfile.mkdtemp(prefix="longrun-features-"))
        path = folder / f"{run.name.replace(' ', '-')}-features.toml"
        path.write_text(original, "utf-8")
        try:
            code = subprocess.call([*shlex.split(editor), str(path)])
        except OSError as exc:
            raise SpecError(
                f"cannot start the editor {editor!r} (from $VISUAL or $EDITOR): {exc.strerror}"
            ) from None
        if code != 0:
            raise SpecError(f"the editor exited with code {code}; nothing changed (your edit is in {path})")
        edited = path.read_text("utf-8")
        source = str(path)
    meaningful = [line for line in edited.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if edited == original or not meaningful:
        print(f"{run.name} ({run.id}): the done-condition is unchanged")
        return 0
    updated = control.edit_features(store, run.id, edited, source=source, by=args.by, comment=args.comment)
    count = len(updated.spec.get("features", []))
    print(
        f"{updated.name} ({updated.id}): the done-condition has {count} features; the run is {updated.state}"
    )
    return 0


def cmd_approvals(args: argparse.Namespace) -> int:
    from longrun.store import runs

    store = _store(args)
    run_id = runs.get_run(store, args.run).id if args.run else None
    items = runs.list_approvals(store, run_id, state=None if args.all else "pending")
    if args.json:
        _print_json([a.to_json() for a in items])
        return 0
    if not items:
        print("no approvals" if args.all else "nothing waits for a person")
        return 0
    _table(
        [
            [
                str(a.id),
                a.run_id,
                a.kind,
                a.state,
                _local(a.requested_at),
                _request_line(a.kind, a.request),
                a.decided_by or "",
            ]
            for a in items
        ],
        ["ID", "RUN", "KIND", "STATE", "REQUESTED", "REQUEST", "DECIDED BY"],
    )
    return 0


def _request_line(kind: str, request: dict[str, Any]) -> str:
    if kind == "done_condition":
        return f"{len(request.get('features', []))} features: " + ", ".join(
            f["id"] for f in request.get("features", [])
        )
    if kind == "ratchet":
        return str(request.get("summary", ""))
    if kind == "sign_off":
        return f"every feature passes at checkpoint {request.get('checkpoint_id')}"
    if kind == "breaker_reset":
        return f"breaker {request.get('breaker')}"
    if kind == "tool_call":
        from longrun.scheduler.guards.policy import subject

        what = subject(str(request.get("tool")), request.get("input") or {})
        return f"{request.get('tool')}: {what[:80]} ({request.get('reason')})"
    if kind == "question":
        return f"question: {str(request.get('question'))[:100]}"
    if kind == "budget_raise":
        return f"budget cap {request.get('cap')}"
    return json.dumps(request)[:120]


def cmd_decide(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import decide, decide_by_token
    from longrun.store import runs

    store = _store(args)
    approve = args.command == "approve"
    if (args.id is None) == (args.token is None):
        raise SpecError(f"{args.command}: give an approval ID or --token T (one of them)")
    if args.token is not None:
        approval = decide_by_token(store, args.token, approve=approve, comment=args.comment)
    else:
        approval = decide(store, args.id, approve=approve, by=args.by, comment=args.comment)
    run = runs.get_run(store, approval.run_id)
    if args.json:
        _print_json(approval.to_json())
        return 0
    print(
        f"approval {approval.id} ({approval.kind}) {approval.state} by {approval.decided_by}; "
        f"{run.name} ({run.id}) is {run.state}"
    )
    if run.state == "scheduled" and not _supervisor_alive(store):
        print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import answer
    from longrun.store import runs

    store = _store(args)
    approval = answer(store, args.id, args.text, by=args.by)
    run = runs.get_run(store, approval.run_id)
    if args.json:
        _print_json(approval.to_json())
        return 0
    print(f"question {approval.id} answered by {approval.decided_by}; {run.name} ({run.id}) is {run.state}")
    if run.state == "scheduled" and not _supervisor_alive(store):
        print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
    return 0


def _confirm(args: argparse.Namespace, what: str) -> bool:
    """Ask on a terminal before a verb that moves a run's head; scripts pass --yes."""
    if args.yes:
        return True
    if not sys.stdin.isatty():
        raise SpecError(
            f"{what.splitlines()[0]}: confirm with --yes (stdin is not a terminal, so it cannot ask)"
        )
    print(what)
    try:
        reply = input("Go ahead? [y/N] ")
    except EOFError:
        reply = ""
    if reply.strip().lower() not in ("y", "yes"):
        print("nothing changed")
        return False
    return True


def _rewind_words(store: Any, ref: str, checkpoint_id: int) -> str:
    from longrun.store import runs

    run = runs.get_run(store, ref)
    cp = runs.get_checkpoint(store, checkpoint_id, run.id)
    return (
        f"rewind {run.name} ({run.id}) to checkpoint {cp.id} (commit {cp.commit[:10]}, {cp.reason}, "
        f"{_local(cp.created_at)}):\n"
        f"  the branch {run.branch} and the files in {run.workspace} go back to that checkpoint;\n"
        "  the current state is checkpointed first and kept under refs/longrun/"
        f"{run.id}/abandoned/N; the event log keeps everything."
    )


def cmd_rewind(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import rewind

    store = _store(args)
    if not _confirm(args, _rewind_words(store, args.run, args.to)):
        return EXIT_ERROR
    run = rewind(store, args.run, args.to, by=args.by)
    if args.json:
        _print_json(run.to_json())
    else:
        print(f"{run.name} ({run.id}) is at checkpoint {run.head_checkpoint_id}; the run is {run.state}")
    return 0


def cmd_fork(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import fork

    store = _store(args)
    run = fork(store, args.run, args.checkpoint, name=args.name, overrides=args.set, by=args.by)
    if args.json:
        _print_json(run.to_json())
    else:
        print(
            f"forked {run.name} ({run.id}) from checkpoint {args.checkpoint}: workspace {run.workspace}, "
            f"branch {run.branch}; it is {run.state}: `longrun resume {run.id}` starts it"
        )
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import resume_now
    from longrun.store import runs

    store = _store(args)
    run = runs.get_run(store, args.run)
    if args.checkpoint is not None and args.checkpoint != run.head_checkpoint_id:
        words = _rewind_words(store, run.id, args.checkpoint) + "\n  then a session starts from there."
        if not _confirm(args, words):
            return EXIT_ERROR
    run, how = resume_now(store, run.id, args.checkpoint, exact=args.exact, by=args.by)
    if args.json:
        _print_json(run.to_json() | {"how": how})
    else:
        print(f"{run.name} ({run.id}) is {run.state}: a session starts now, {how}")
        if not _supervisor_alive(store):
            print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
    return 0


# --- parser -----------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        print(f"{self.prog}: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--home",
        default=argparse.SUPPRESS,
        metavar="DIR",
        help="the store's directory (default: $LONGRUN_HOME or the user data directory)",
    )
    json_flag = argparse.ArgumentParser(add_help=False)
    json_flag.add_argument("--json", action="store_true", help="print JSON with stable field names")

    parser = _Parser(
        prog="longrun", description="Supervise AI agent work that outlasts any one session.", parents=[common]
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], help: str, *parents: Any, into: Any = sub
    ) -> argparse.ArgumentParser:
        p = into.add_parser(name, help=help, description=help, parents=[common, *parents])
        p.set_defaults(handler=handler)
        return p

    add("init", cmd_init, "create the store")

    run = sub.add_parser("run", help="create, list and show runs", parents=[common])
    run_sub = run.add_subparsers(dest="run_command", required=True, parser_class=_Parser)
    p = add("create", cmd_run_create, "create a run from a spec file", json_flag, into=run_sub)
    p.add_argument("spec", metavar="SPEC.toml")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a spec key")
    add("list", cmd_run_list, "list runs", json_flag, into=run_sub)
    p = add(
        "show",
        cmd_run_show,
        "show a run: state, spend, sessions, checkpoints, features",
        json_flag,
        into=run_sub,
    )
    p.add_argument("run", metavar="RUN")

    for verb, text in (
        ("start", "hand a draft run to the supervisor: sessions start on its schedule"),
        ("pause", "no new session; a running one wraps up and ends with a checkpoint"),
        ("stop", "no new session; a running one is ended now (with a checkpoint)"),
        ("resume", "let a paused run go on"),
    ):
        p = add(verb, cmd_run_verb, text, json_flag, into=run_sub)
        p.add_argument("run", metavar="RUN")
        p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")

    p = add("daemon", cmd_daemon, "the supervisor: fires sessions on schedule until SIGTERM/SIGINT")
    p.add_argument("--max-concurrent", type=int, metavar="N", help="sessions at once (default: the CPUs)")
    p.add_argument("--lease-ttl", type=float, default=20.0, metavar="S", help="lease lifetime (default 20)")
    p.add_argument("--tick", type=float, default=1.0, metavar="S", help="reconcile every S seconds")
    p.add_argument("--grace", type=float, default=30.0, metavar="S", help="wrap-up time at shutdown")
    add(
        "status",
        cmd_status,
        "the supervisor and each active run: what runs, what comes next and why",
        json_flag,
    )
    p = add(
        "budget", cmd_budget, "a run's caps, spend and breakers; `budget set RUN …` changes caps", json_flag
    )
    p.add_argument("words", nargs="+", metavar="[set] RUN", help="RUN to show it, or set RUN to change caps")
    p.add_argument("--usd", type=float, help="new cap on the run's spend")
    p.add_argument("--tokens", type=int, help="new cap on the run's tokens")
    p.add_argument("--per-session-usd", type=float, help="new cap on one session's spend")
    p.add_argument("--per-day-usd", type=float, help="new cap on one day's spend")
    p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    p.add_argument("--comment", help="why")

    p = add("judge", cmd_judge, "judge a checkpoint of RUN now (its head by default)", json_flag)
    p.add_argument("run", metavar="RUN")
    p.add_argument("--checkpoint", type=int, metavar="C", help="the checkpoint to judge (default: the head)")
    p.add_argument("--by", metavar="NAME", help="who asks (default: your user name)")

    p = add("verdicts", cmd_verdicts, "the run's verdicts: features × checkpoints", json_flag)
    p.add_argument("run", metavar="RUN")
    p.add_argument("--last", type=int, default=10, metavar="N", help="show the last N judged checkpoints")

    p = add(
        "features",
        cmd_features,
        "the run's done-condition; `features edit RUN` changes it (or the proposal) in $EDITOR",
        json_flag,
    )
    p.add_argument("words", nargs="+", metavar="[edit] RUN", help="RUN to show it, or edit RUN to change it")
    p.add_argument(
        "--file", metavar="F", help="with edit: take the features from this TOML file, not an editor"
    )
    p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    p.add_argument("--comment", help="why")

    p = add("approvals", cmd_approvals, "what waits for a person (pending approvals)", json_flag)
    p.add_argument("run", nargs="?", metavar="RUN", help="only this run's")
    p.add_argument("--all", action="store_true", help="decided ones too")
    for verb, text in (("approve", "approve a pending approval"), ("deny", "deny a pending approval")):
        p = add(verb, cmd_decide, text, json_flag)
        p.add_argument("id", type=int, nargs="?", metavar="ID")
        p.add_argument(
            "--token", metavar="T", help="decide the approval this single-use token was issued for"
        )
        p.add_argument("--comment", help="why (the next session is told)")
        p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    p = add("rewind", cmd_rewind, "move a run back to a checkpoint (the current state is kept)", json_flag)
    p.add_argument("run", metavar="RUN")
    p.add_argument("--to", type=int, required=True, metavar="C", help="the checkpoint to go back to")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    p = add("fork", cmd_fork, "a new run from a checkpoint: its own worktree, branch, budget", json_flag)
    p.add_argument("run", metavar="RUN")
    p.add_argument("--from", dest="checkpoint", type=int, required=True, metavar="C", help="the checkpoint")
    p.add_argument("--name", metavar="N", help="the new run's name (default: the parent's, with -fork)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="change a spec key")
    p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    p = add("resume", cmd_resume, "schedule a session now, from the head or a checkpoint", json_flag)
    p.add_argument("run", metavar="RUN")
    p.add_argument("--from", dest="checkpoint", type=int, metavar="C", help="rewind to this checkpoint first")
    p.add_argument(
        "--exact",
        action="store_true",
        help="go on from the conversation of the session that made the checkpoint, when it fits the context",
    )
    p.add_argument("--yes", action="store_true", help="do not ask before a rewind")
    p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    p = add("answer", cmd_answer, "answer a question the worker asked", json_flag)
    p.add_argument("id", type=int, metavar="ID")
    p.add_argument("text", metavar="TEXT")
    p.add_argument("--by", metavar="NAME", help="who answers (default: your user name)")

    session = sub.add_parser("session", help="run sessions", parents=[common])
    session_sub = session.add_subparsers(dest="session_command", required=True, parser_class=_Parser)
    p = add(
        "run", cmd_session_run, "run one session of RUN now, in the foreground", json_flag, into=session_sub
    )
    p.add_argument("run", metavar="RUN")

    p = add("events", cmd_events, "the run's event log; --format streams it as JSON lines or CSV", json_flag)
    p.add_argument("run", metavar="RUN")
    p.add_argument(
        "--since",
        metavar="SEQ|TIME",
        help="only events after this seq, or from this ISO time on (no offset: UTC)",
    )
    p.add_argument(
        "--until",
        metavar="SEQ|TIME",
        help="only events up to this seq, or before this ISO time (no offset: UTC)",
    )
    p.add_argument("--kind", action="append", metavar="KIND", help="only events of this kind (repeatable)")
    p.add_argument(
        "--format",
        metavar="FORMAT",
        help="jsonl or csv: one line per event (columns run_id, seq, session_id, ts, kind, data), streamed",
    )

    p = add("checkpoints", cmd_checkpoints, "the run's checkpoints", json_flag)
    p.add_argument("run", metavar="RUN")

    p = add("verify", cmd_verify, "walk the run's hash chain and report the first break", json_flag)
    p.add_argument("run", metavar="RUN")

    p = add("report", cmd_report, "write a run's audit report: charts and tables in one offline HTML file")
    p.add_argument("run", metavar="RUN")
    p.add_argument("--html", required=True, metavar="FILE", help="the HTML file to write")
    p.add_argument("--since", metavar="T", help="only from this ISO time (no offset: UTC)")
    p.add_argument("--until", metavar="T", help="only up to this ISO time (no offset: UTC)")

    p = add("demo", cmd_demo, "run the demo: a scripted model builds a small project", json_flag)
    p.add_argument("--headless", action="store_true", help="no screen: run to the end and print a summary")
    p.add_argument(
        "--auto-approve", action="store_true", help="headless: approve the calls the approval rules ask about"
    )
    p.add_argument("--timeout", type=float, default=600.0, metavar="S", help="give up after S seconds")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a demo spec key")
    p.add_argument("--write", metavar="DIR", help="only write the demo's spec and workspace into DIR")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "home"):
        args.home = None
    try:
        return int(args.handler(args))
    except LongrunError as exc:
        print(f"longrun: error: {exc.message}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("longrun: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
