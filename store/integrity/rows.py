"""A run's rows (the run, its sessions, checkpoints, verdicts and approvals) against what its log says."""

from __future__ import annotations

import json
from collections import deque
from datetime import datetime
from typing import Any

from longrun.store import log
from longrun.store.integrity.report import Break, BreakKind, FieldChange
from longrun.store.integrity.said import TOKEN_KINDS, Event, Said, Totals, VerdictSaid
from longrun.store.integrity.values import digest, digest_or_none, prefixed, same, says, shown
from longrun.store.models import FINAL_SESSION_STATES

TIME_LEEWAY = 30.0
"""Seconds a row made before schema 3 may be stamped before its event (its writer took the time,
then waited for the write lock)."""


class Rows:
    """Reads the run's rows and compares each with what the log says of it, adding the breaks."""

    def __init__(self, run_id: str, said: Said, exact_from: float, breaks: list[Break]) -> None:
        self.run_id = run_id
        self.said = said
        self.exact_from = exact_from
        self.breaks = breaks
        self.counted: dict[str, int] = {}

    def check_all(self, raw: Any) -> str | None:
        name = self.run(raw)
        self.sessions(raw)
        self.checkpoints(raw)
        self.verdicts(raw)
        self.approvals(raw)
        return name

    # -- helpers --

    def _add(
        self,
        kind: BreakKind,
        table: str,
        row: int | str,
        detail: str,
        seq: int | None = None,
        changes: tuple[FieldChange, ...] = (),
    ) -> None:
        self.breaks.append(Break(kind, self.run_id, detail, table, row, seq, changes))

    def _compare(
        self, table: str, row: int | str, label: str, event: Event, pairs: list[tuple[str, Any, Any]]
    ) -> None:
        changes = tuple(
            FieldChange(f, found, expected) for f, found, expected in pairs if not same(found, expected)
        )
        if changes:
            said = ", ".join(
                f"{c.field} {shown(c.found)} (event {event.seq} says {shown(c.expected)})" for c in changes
            )
            self._add(BreakKind.row_changed, table, row, f"{label}: {said}", event.seq, changes)

    def _time(self, field_: str, found: str | None, event: Event) -> tuple[str, Any, Any]:
        """A row's time against its event's: exactly, or for a row made before schema 3 within
        `TIME_LEEWAY` before it."""
        if found is None or event.seq >= self.exact_from or found == event.ts:
            return field_, found, event.ts
        try:
            gap = (datetime.fromisoformat(event.ts) - datetime.fromisoformat(found)).total_seconds()
        except ValueError:
            return field_, found, event.ts
        return field_, found, found if 0 <= gap <= TIME_LEEWAY else event.ts

    def _count(self, table: str, n: int) -> None:
        self.counted[table] = self.counted.get(table, 0) + n

    # -- the run --

    def run(self, raw: Any) -> str | None:
        r = raw.execute(
            "SELECT name, workspace, branch, spec_path, parent_run_id, created_at, spec_json, "
            "head_checkpoint_id, spent_usd, input_tokens, output_tokens, cache_write_tokens, "
            "cache_read_tokens FROM run WHERE id = ?",
            (self.run_id,),
        ).fetchone()
        said = self.said
        if r is None:
            if said.created is not None or said.calls.calls or said.checkpoints:
                self._add(
                    BreakKind.row_missing,
                    "run",
                    self.run_id,
                    f"run {self.run_id} is not in the run table, but its log holds its events",
                    said.created.seq if said.created else None,
                )
            return None
        self._count("run", 1)
        name = r[0]
        if said.created is None:
            self._add(
                BreakKind.row_unrecorded,
                "run",
                self.run_id,
                "no run_created event in the log records the run",
            )
        else:
            e = said.created
            self._compare(
                "run",
                self.run_id,
                "run",
                e,
                [
                    ("name", r[0], e.data.get("name")),
                    ("workspace", r[1], e.data.get("workspace")),
                    ("branch", r[2], e.data.get("branch")),
                    ("spec_path", r[3], e.data.get("spec_path")),
                    self._time("created_at", r[5], e),
                ],
            )
        if r[4] != said.parent_run_id:
            self._add(
                BreakKind.row_changed,
                "run",
                self.run_id,
                f"run: parent_run_id {shown(r[4])} (the log says {shown(said.parent_run_id)})",
                changes=(FieldChange("parent_run_id", r[4], said.parent_run_id),),
            )
        self._budget(r[6])
        if r[7] != said.head_checkpoint:
            self._add(
                BreakKind.row_changed,
                "run",
                self.run_id,
                f"run: head_checkpoint_id {shown(r[7])} "
                f"({says(said.head_said_by)} {shown(said.head_checkpoint)})",
                said.head_said_by,
                (FieldChange("head_checkpoint_id", r[7], said.head_checkpoint),),
            )
        self._spend("run", self.run_id, "run", r[8], r[9:13], said.calls, "model and judge calls")
        day = raw.execute(
            "SELECT count(*), total(spent_usd), total(input_tokens), total(output_tokens), "
            "total(cache_write_tokens), total(cache_read_tokens) FROM spend_day WHERE run_id = ?",
            (self.run_id,),
        ).fetchone()
        if day[0]:
            days = Totals(float(day[1]), dict(zip(TOKEN_KINDS, (int(v) for v in day[2:6]), strict=True)))
            self._spend(
                "spend_day",
                self.run_id,
                "its spend by day",
                days.usd,
                tuple(days.tokens.values()),
                said.calls,
                "model and judge calls",
                loose=True,
            )
        return str(name)

    def _budget(self, spec_json: str) -> None:
        expected = self.said.budget
        if expected is None:
            return
        try:
            found = json.loads(spec_json).get("budget") or {}
        except (ValueError, AttributeError):
            found = {}
        keys = sorted(set(expected) | (set(found) if self.said.budget_complete else set()))
        changes = tuple(
            FieldChange(f"budget.{k}", found.get(k), expected.get(k))
            for k in keys
            if not same(found.get(k), expected.get(k))
        )
        if changes:
            said = ", ".join(
                f"{c.field} {shown(c.found)} (the log says {shown(c.expected)})" for c in changes
            )
            self._add(BreakKind.row_changed, "run", self.run_id, f"run: {said}", changes=changes)

    def _spend(
        self,
        table: str,
        row: int | str,
        label: str,
        usd: float,
        tokens: tuple[int, ...],
        calls: Totals,
        what: str,
        loose: bool = False,
    ) -> None:
        pairs = [("spent_usd", usd, calls.usd), *zip(TOKEN_KINDS, tokens, calls.tokens.values(), strict=True)]
        changes = tuple(
            FieldChange(f, found, round(expected, 10) if isinstance(expected, float) else expected)
            for f, found, expected in pairs
            if not same(found, expected, loose=loose)
        )
        if changes:
            said = ", ".join(f"{c.field} {shown(c.found)}" for c in changes)
            sums = ", ".join(shown(c.expected) for c in changes)
            self._add(
                BreakKind.row_changed,
                table,
                row,
                f"{label}: {said} (its {calls.calls} {what} in the log add up to {sums})",
                changes=changes,
            )

    # -- sessions --

    def sessions(self, raw: Any) -> None:
        said = self.said.sessions
        found: set[int] = set()
        for r in raw.execute(
            "SELECT id, n, state, started_at, deadline_at, wrap_up_at, ended_at, end_reason, "
            "from_checkpoint_id, spent_usd, input_tokens, output_tokens, cache_write_tokens, "
            "cache_read_tokens FROM session WHERE run_id = ? ORDER BY id",
            (self.run_id,),
        ):
            sid = int(r[0])
            found.add(sid)
            self._count("session", 1)
            label = f"session {r[1]} (id {sid})"
            made = said["created"].get(sid)
            if made is None:
                self._add(
                    BreakKind.row_unrecorded, "session", sid, f"{label}: no event in the log records it"
                )
                continue
            self._compare(
                "session",
                sid,
                label,
                made,
                [
                    ("n", r[1], made.data.get("n")),
                    ("deadline_at", r[4], made.data.get("deadline_at")),
                    ("wrap_up_at", r[5], made.data.get("wrap_up_at")),
                    ("from_checkpoint_id", r[8], made.data.get("from_checkpoint_id")),
                ],
            )
            started = said["started"].get(sid)
            if started is not None:
                self._compare("session", sid, label, started, [self._time("started_at", r[3], started)])
            ended = said["ended"].get(sid)
            if ended is None:
                if r[2] in FINAL_SESSION_STATES or r[6] is not None:
                    self._add(
                        BreakKind.row_unrecorded,
                        "session",
                        sid,
                        f"{label} is {r[2]}, but no event in the log records its end",
                    )
            else:
                self._compare(
                    "session",
                    sid,
                    label,
                    ended,
                    [
                        ("state", r[2], ended.data.get("state")),
                        ("end_reason", r[7], ended.data.get("reason")),
                        self._time("ended_at", r[6], ended),
                    ],
                )
            self._spend(
                "session",
                sid,
                label,
                r[9],
                tuple(r[10:14]),
                self.said.session_calls.get(sid, Totals()),
                "model calls",
            )
        for sid, e in said["created"].items():
            if sid not in found:
                self._add(
                    BreakKind.row_missing,
                    "session",
                    sid,
                    f"session {e.data.get('n')} (id {sid}, made by event {e.seq}) "
                    "is not in the session table",
                    e.seq,
                )

    # -- checkpoints --

    def checkpoints(self, raw: Any) -> None:
        said = self.said.checkpoints
        found: set[int] = set()
        for r in raw.execute(
            'SELECT id, session_id, parent_id, seq, "commit", reason, handoff_json, features_json, '
            "commits_json, spent_usd, tokens, created_at FROM checkpoint WHERE run_id = ? ORDER BY id",
            (self.run_id,),
        ):
            cid = int(r[0])
            found.add(cid)
            self._count("checkpoint", 1)
            label = f"checkpoint {cid}"
            cp = said.get(cid)
            if cp is None:
                self._add(
                    BreakKind.row_unrecorded, "checkpoint", cid, f"{label}: no event in the log records it"
                )
                continue
            e = cp.event
            try:
                features = json.loads(r[7])
            except ValueError:
                features = r[7]
            pairs: list[tuple[str, Any, Any]] = [
                ("commit", r[4], e.data.get("commit")),
                ("reason", r[5], e.data.get("reason")),
                ("parent_id", r[2], e.data.get("parent_id")),
                ("session_id", r[1], e.session_id),
                ("seq", r[3], e.seq),
                ("spent_usd", r[9], cp.spent_usd),
                ("tokens", r[10], cp.tokens),
                self._time("created_at", r[11], e),
                ("features_json", features, self.said.features.get(cid, {})),
            ]
            if cp.complete:
                pairs.append(("handoff_json", digest_or_none(r[6]), prefixed(e.data.get("handoff_sha256"))))
                pairs.append(("commits_json", digest_or_none(r[8]), prefixed(e.data.get("commits_sha256"))))
            self._compare("checkpoint", cid, label, e, pairs)
        for cid, cp in said.items():
            if cid not in found:
                self._add(
                    BreakKind.row_missing,
                    "checkpoint",
                    cid,
                    f"checkpoint {cid} (made by event {cp.event.seq}) is not in the checkpoint table",
                    cp.event.seq,
                )

    # -- verdicts --

    def verdicts(self, raw: Any) -> None:
        by_id = dict(self.said.verdicts_by_id)
        unnamed = {k: deque(v) for k, v in self.said.verdicts_unnamed.items()}
        for r in raw.execute(
            "SELECT id, checkpoint_id, feature_id, judge, status, evidence_json, created_at FROM verdict "
            "WHERE run_id = ? ORDER BY id",
            (self.run_id,),
        ):
            vid = int(r[0])
            self._count("verdict", 1)
            said = by_id.pop(vid, None)
            if said is None:
                queue = unnamed.get((r[1], r[2]))
                said = queue.popleft() if queue else None
            label = f"verdict {vid} ({r[2]} at checkpoint {r[1]})"
            if said is None:
                self._add(
                    BreakKind.row_unrecorded, "verdict", vid, f"{label}: no event in the log records it"
                )
                continue
            e = said.event
            self._compare(
                "verdict",
                vid,
                label,
                e,
                [
                    ("checkpoint_id", r[1], e.data.get("checkpoint_id")),
                    ("feature_id", r[2], e.data.get("feature_id")),
                    ("judge", r[3], e.data.get("judge")),
                    ("status", r[4], e.data.get("status")),
                    ("evidence_json", digest(r[5]), said.digest),
                    self._time("created_at", r[6], e),
                ],
            )
        left: list[tuple[int | None, VerdictSaid]] = [*by_id.items()]
        left += [(None, s) for queue in unnamed.values() for s in queue]
        for missing, s in sorted(left, key=lambda pair: pair[1].event.seq):
            what = f"verdict {missing}" if missing is not None else "a verdict"
            self._add(
                BreakKind.row_missing,
                "verdict",
                missing if missing is not None else f"event {s.event.seq}",
                f"{what} ({s.event.data.get('feature_id')} {s.event.data.get('status')} at checkpoint "
                f"{s.event.data.get('checkpoint_id')}, event {s.event.seq}) is not in the verdict table",
                s.event.seq,
            )

    # -- approvals --

    def approvals(self, raw: Any) -> None:
        asked, decided = self.said.asked, self.said.decided
        found: set[int] = set()
        for r in raw.execute(
            "SELECT id, session_id, kind, state, request_json, requested_at, decided_by, decided_at, comment "
            "FROM approval WHERE run_id = ? ORDER BY id",
            (self.run_id,),
        ):
            aid = int(r[0])
            found.add(aid)
            self._count("approval", 1)
            label = f"approval {aid} ({r[2]})"
            ask = asked.get(aid)
            if ask is None:
                self._add(
                    BreakKind.row_unrecorded,
                    "approval",
                    aid,
                    f"{label}: no event in the log records its request",
                )
            else:
                self._compare(
                    "approval",
                    aid,
                    label,
                    ask,
                    [
                        ("kind", r[2], ask.data.get("kind")),
                        ("request_json", digest(r[4]), digest(log.canonical_json(ask.data.get("request")))),
                        ("session_id", r[1], ask.session_id),
                        self._time("requested_at", r[5], ask),
                    ],
                )
            decision = decided.get(aid)
            if decision is None:
                if r[3] != "pending" or r[6] is not None or r[7] is not None:
                    self._add(
                        BreakKind.row_unrecorded,
                        "approval",
                        aid,
                        f"{label} is {r[3]} (by {shown(r[6])}), but no event in the log records a decision",
                    )
                continue
            if r[3] == "pending":
                d = decision.data
                self._add(
                    BreakKind.row_changed,
                    "approval",
                    aid,
                    f"{label} is pending again, but event {decision.seq} decided it: {d.get('state')} by "
                    f"{shown(d.get('by'))}" + (f" ({shown(d.get('comment'))})" if d.get("comment") else ""),
                    decision.seq,
                    (
                        FieldChange("state", r[3], d.get("state")),
                        FieldChange("decided_by", r[6], d.get("by")),
                        FieldChange("decided_at", r[7], decision.ts),
                        FieldChange("comment", r[8], d.get("comment")),
                    ),
                )
                continue
            self._compare(
                "approval",
                aid,
                label,
                decision,
                [
                    ("state", r[3], decision.data.get("state")),
                    ("decided_by", r[6], decision.data.get("by")),
                    ("comment", r[8], decision.data.get("comment")),
                    self._time("decided_at", r[7], decision),
                ],
            )
        for aid, e in asked.items():
            if aid not in found:
                self._add(
                    BreakKind.row_missing,
                    "approval",
                    aid,
                    f"approval {aid} ({e.data.get('kind')}, asked in event {e.seq}) "
                    "is not in the approval table",
                    e.seq,
                )
