"""The done-condition and its verdicts: `longrun judge`, `verdicts` and `features` (show or edit)."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from longrun.app.cli.output import open_store, print_json, print_table
from longrun.app.cli.parsing import Commands, positive_int
from longrun.store.errors import SpecError


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

    store = open_store(args)
    judgement = judge_now(store, args.run, args.checkpoint, by=args.by)
    verdicts = runs.verdicts_at(store, [judgement.checkpoint_id])[judgement.checkpoint_id]
    latest = {v.feature_id: v for v in verdicts}
    run = runs.get_run(store, judgement.run_id)
    if args.json:
        print_json(
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
    print_table(
        [[f, _short(v.status), v.judge, _evidence_line(v.evidence)] for f, v in latest.items()],
        ["FEATURE", "VERDICT", "JUDGE", "EVIDENCE"],
    )
    if judgement.changed_copy:
        print(f"flagged: the worker's copy of the done-condition was {judgement.changed_copy}")
    print(f"the run is {run.state}" + (f": {run.state_reason}" if run.state_reason else ""))
    return 0


def cmd_verdicts(args: argparse.Namespace) -> int:
    from longrun.scheduler.control import verdict_matrix

    store = open_store(args)
    doc = verdict_matrix(store, args.run)
    if args.json:
        print_json(doc)
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
    print_table(rows, headers)
    return 0


def cmd_features(args: argparse.Namespace) -> int:
    from longrun.scheduler import control

    store = open_store(args)
    editing = args.words[0] == "edit"
    if len(args.words) != (2 if editing else 1):
        raise SpecError("usage: longrun features RUN [--json] | longrun features edit RUN [--file F]")
    ref = args.words[-1]
    if editing:
        return _edit_features(store, ref, args)
    doc = control.features_document_of(store, ref)
    if args.json:
        print_json(doc)
        return 0
    if doc["features"]:
        print_table(
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


def register(commands: Commands) -> None:
    json_flag = commands.json_flag
    p = commands.add("judge", cmd_judge, "judge a checkpoint of RUN now (its head by default)", json_flag)
    p.add_argument("run", metavar="RUN")
    p.add_argument("--checkpoint", type=int, metavar="C", help="the checkpoint to judge (default: the head)")
    p.add_argument("--by", metavar="NAME", help="who asks (default: your user name)")
    p = commands.add("verdicts", cmd_verdicts, "the run's verdicts: features × checkpoints", json_flag)
    p.add_argument("run", metavar="RUN")
    p.add_argument(
        "--last", type=positive_int, default=10, metavar="N", help="show the last N judged checkpoints"
    )
    p = commands.add(
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
