"""The record of a run: `longrun events` (shown, or streamed as JSON lines or CSV), `checkpoints`,
`verify` (the whole-store audit: chain, head, anchor and rows) and `report` (the audit page).
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from longrun.app.cli.output import (
    EXIT_ERROR,
    local_time,
    open_store,
    print_json,
    print_json_array,
    print_table,
)
from longrun.app.cli.parsing import Commands
from longrun.store.errors import SpecError


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


def _empty_window(since: int | datetime | None, until: int | datetime | None) -> bool:
    """Whether `--since` is not before `--until` (both seqs or both times), so nothing could match."""
    if isinstance(since, int) and isinstance(until, int):
        return since >= until
    if isinstance(since, datetime) and isinstance(until, datetime):
        return since >= until
    return False


def _event_kinds(store: Any) -> list[str]:
    """Every event kind the store holds, sorted."""
    from sqlalchemy import text

    with store.engine.connect() as conn:
        return sorted(row[0] for row in conn.execute(text("SELECT DISTINCT kind FROM event")))


def export_events(rows: Iterable[Any], fmt: str) -> None:
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
    if _empty_window(since, until):
        raise SpecError(f"--since {args.since} is not before --until {args.until}: nothing could match")
    window: dict[str, Any] = {
        "since_seq": since if isinstance(since, int) else 0,
        "since_ts": since if isinstance(since, datetime) else None,
        "until_seq": until if isinstance(until, int) else None,
        "until_ts": until if isinstance(until, datetime) else None,
        "kinds": args.kind or None,
    }
    store = open_store(args)
    run = runs.get_run(store, args.run)
    if args.kind:
        known = _event_kinds(store)
        unknown = sorted(set(args.kind) - set(known))
        if unknown:
            raise SpecError(
                f"--kind {unknown[0]}: no event of that kind in this store (kinds: {', '.join(known)})"
            )
    if args.format is not None:
        export_events(log.stream_rows(store, run.id, **window), args.format)
        return 0
    events = log.stream_events(store, run.id, **window)
    if args.json:
        print_json_array(e.to_json() for e in events)
        return 0
    numbers = {s.id: s.n for s in runs.list_sessions(store, run.id)}
    for e in events:
        session = f"s{numbers.get(e.session_id, e.session_id)}" if e.session_id is not None else "-"
        print(f"{e.seq:>6}  {local_time(e.ts)}  {session:>4}  {e.kind:<16} {_event_summary(e.kind, e.data)}")
    return 0


def cmd_checkpoints(args: argparse.Namespace) -> int:
    from longrun.store import runs

    store = open_store(args)
    run = runs.get_run(store, args.run)
    items = runs.list_checkpoints(store, run.id)
    if args.json:
        print_json([c.to_json() for c in items])
        return 0
    head = run.head_checkpoint_id
    print_table(
        [
            [
                ("*" if c.id == head else "") + str(c.id),
                str(c.parent_id or ""),
                str(c.seq),
                c.commit[:10],
                c.reason,
                f"${c.spent_usd:.4f}",
                local_time(c.created_at),
                "; ".join((c.handoff or {}).get("next", []))[:60],
            ]
            for c in items
        ],
        ["ID", "PARENT", "SEQ", "COMMIT", "REASON", "SPENT", "CREATED", "NEXT (HANDOFF)"],
    )
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """The whole-store audit (`store.integrity`) of one run, or of every run the store holds a
    trace of: one line per break, or per run that is whole; exit 1 on any break."""
    from longrun.store import integrity, runs

    store = open_store(args, create=False)
    ids = [runs.get_run(store, args.run).id] if args.run else None
    audit = integrity.verify_store(store, ids)
    if args.json:
        print_json(audit.to_json())
    else:
        for line in integrity.lines(audit):
            print(line)
        if not audit.runs:
            print(f"no runs in the store at {store.home}")
        if not audit.ok:
            found = audit.all_breaks()
            print(f"{len(found)} break{'s' if len(found) != 1 else ''} found", file=sys.stderr)
    return 0 if audit.ok else EXIT_ERROR


def cmd_report(args: argparse.Namespace) -> int:
    from longrun.app.report import build_report, check_writable, parse_time, write_report
    from longrun.store import runs

    since = parse_time(args.since, "--since") if args.since else None
    until = parse_time(args.until, "--until") if args.until else None
    target = check_writable(Path(args.html))
    store = open_store(args, create=False)
    run = runs.get_run(store, args.run)
    print(write_report(build_report(store, run.id, since=since, until=until), target))
    return 0


def register(commands: Commands) -> None:
    json_flag = commands.json_flag
    p = commands.add(
        "events", cmd_events, "the run's event log; --format streams it as JSON lines or CSV", json_flag
    )
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
    p = commands.add("checkpoints", cmd_checkpoints, "the run's checkpoints", json_flag)
    p.add_argument("run", metavar="RUN")
    p = commands.add(
        "verify",
        cmd_verify,
        "audit a run (or every run): its hash chain, its head and anchor, and every row against its events",
        json_flag,
    )
    p.add_argument("run", metavar="RUN", nargs="?", help="one run (default: every run in the store)")
    p = commands.add(
        "report", cmd_report, "write a run's audit report: charts and tables in one offline HTML file"
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("--html", required=True, metavar="FILE", help="the HTML file to write")
    p.add_argument("--since", metavar="T", help="only from this ISO time (no offset: UTC)")
    p.add_argument("--until", metavar="T", help="only up to this ISO time (no offset: UTC)")
