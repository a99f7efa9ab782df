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

import hashlib
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from longrun.scheduler.guards import policy
from longrun.scheduler.guards.breakers import no_progress_trip
from longrun.scheduler.guards.pricing import Price
from longrun.scheduler.judging.judge import waiting_reason
from longrun.scheduler.spec.load import parse_spec
from longrun.scheduler.spec.overrides import apply_overrides
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.models import RunState, SessionState, clock_set_to, iso
from longrun.store.runs import CheckpointView, SessionView, Usage, VerdictView

SEED_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
"""The moment the seeded store describes: give the dashboard a clock frozen here."""

WHO = "ana"
"""The person who started, paused, rewound, forked and approved things."""

RUN_ACTIVE = "r-textstats"
RUN_FORK = "r-textstats-fork"
RUN_PAUSED = "r-migrate-orm"
RUN_DONE = "r-docs-site"
RUN_FAILED = "r-research-notes"
RUN_IDS = (RUN_ACTIVE, RUN_FORK, RUN_PAUSED, RUN_DONE, RUN_FAILED)

RUN_STATES = {
    RUN_ACTIVE: RunState.awaiting_approval,
    RUN_FORK: RunState.running,
    RUN_PAUSED: RunState.paused,
    RUN_DONE: RunState.done,
    RUN_FAILED: RunState.failed,
}

# textstats' checkpoints: 1 → 2 → 3 → {4 → 5 → 6 (abandoned by the rewind to 3), 7 → 8 → 9 (head)}
CP_CREATED = 1
CP_S1_APPROVAL = 2
CP_S1_END = 3
"""Where textstats was rewound to, and where the main line goes on from."""
CP_S2_HANDOFF = 4
CP_S2_END = 5
"""The end of the abandoned line, where textstats-fork was forked from."""
CP_BEFORE_REWIND = 6
CP_S3_HANDOFF = 7
CP_S3_APPROVAL = 8
"""The checkpoint the pending push and question were asked at."""
CP_HEAD = 9
"""textstats' head: the end of session 3."""
CP_ABANDONED = (CP_S2_HANDOFF, CP_S2_END, CP_BEFORE_REWIND)
CP_FORKED = 10
"""textstats-fork's first checkpoint."""

APPROVAL_DECIDED = 1
"""textstats' `curl` download, approved by ana with a comment."""
APPROVAL_PUSH = 2
"""textstats' pending `git push origin HEAD` (a tool call)."""
APPROVAL_QUESTION = 3
"""textstats' pending question (ask_human)."""
APPROVAL_BUDGET = 4
"""migrate-orm's pending budget raise."""
PENDING_APPROVALS = (APPROVAL_PUSH, APPROVAL_QUESTION, APPROVAL_BUDGET)

SESSION_LIVE = 4
"""textstats-fork's running session (its session 1); its deadline is after SEED_NOW."""

OPEN_BREAKER = "no_progress_sessions"
"""migrate-orm's open breaker."""

SONNET = Price("claude-sonnet-5-5", 2.0, 10.0, 2.5, 0.1)
HAIKU = Price("claude-haiku-5-5", 0.5, 2.5, 0.625, 0.05)
"""The prices the seed charges at, fixed here so that a change to pricing.toml changes nothing."""

AGENT = ("longrun agent", "agent@longrun.invalid")
PERSON = ("Ana Lima", "ana.lima@example.org")


def seed_store(home: Path) -> Store:
    """Write the seeded store into `home` (a fresh folder) and its workspaces under `Path.home()`."""
    store = Store.open(home)
    story = _Story(store)
    with story.clock_in_charge():
        _textstats(story)
        _fork(story)
        _docs_site(story)
        _research_notes(story)
        _migrate_orm(story)
        story.flush()
    return store


# --- the writing machinery ----------------------------------------------------------------------


class _Clock:
    """The story's time, read by the store's write functions while the seed is written."""

    def __init__(self) -> None:
        self.now = SEED_NOW

    def __call__(self) -> datetime:
        return self.now


def _git_env(when: datetime, who: tuple[str, str]) -> dict[str, str]:
    stamp = when.strftime("%Y-%m-%dT%H:%M:%S+0000")
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(Path.home()),
        "LC_ALL": "C",
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CONFIG_GLOBAL": os.devnull,
        "GIT_AUTHOR_NAME": who[0],
        "GIT_AUTHOR_EMAIL": who[1],
        "GIT_AUTHOR_DATE": stamp,
        "GIT_COMMITTER_NAME": who[0],
        "GIT_COMMITTER_EMAIL": who[1],
        "GIT_COMMITTER_DATE": stamp,
    }


@dataclass
class _Repo:
    """A workspace: a git repository whose commits have fixed authors and dates."""

    path: Path
    branch: str
    refs: dict[str, str] = field(default_factory=dict)
    """Refs to write at the end (name: sha, the last one given wins), in one `git update-ref --stdin`."""

    def git(self, *args: str, when: datetime = SEED_NOW, who: tuple[str, str] = AGENT) -> str:
        proc = subprocess.run(
            ["git", *args],
            cwd=self.path,
            capture_output=True,
            text=True,
            env=_git_env(when, who),
            check=False,
        )
        if proc.returncode != 0:
            raise RuntimeError(f"git {' '.join(args)} in {self.path}: {proc.stderr.strip()}")
        return proc.stdout.strip()

    def init(self) -> None:
        if self.path.exists():
            raise FileExistsError(f"{self.path}: already exists; seed into a fresh HOME")
        self.path.mkdir(parents=True)
        self.git("init", "-q", "-b", self.branch)
        self.git("config", "user.name", AGENT[0])
        self.git("config", "user.email", AGENT[1])
        (self.path / ".git" / "info").mkdir(exist_ok=True)
        (self.path / ".git" / "info" / "exclude").write_text("/.longrun/\n")

    def commit(
        self, message: str, files: dict[str, str], when: datetime, who: tuple[str, str] = AGENT
    ) -> str:
        for name, content in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
        self.git("add", "-A", when=when, who=who)
        self.git("commit", "-q", "-m", message, when=when, who=who)
        return self.git("rev-parse", "HEAD")

    def snapshot(self, message: str, run_id: str, when: datetime, keep: str | None = None) -> str:
        """A checkpoint commit over the agent's HEAD, kept under the run's checkpoint refs (or `keep`)."""
        sha = self.git("commit-tree", "HEAD^{tree}", "-p", "HEAD", "-m", message, when=when)
        if keep is None:
            self.refs[f"refs/longrun/{run_id}/checkpoints/{sha}"] = sha
            self.refs[f"refs/longrun/{run_id}/checkpoints/head"] = sha
        else:
            self.refs[keep] = sha
        return sha

    def write_refs(self) -> None:
        if self.refs:
            script = "".join(f"update {name} {sha}\n" for name, sha in self.refs.items())
            subprocess.run(
                ["git", "update-ref", "--stdin"],
                cwd=self.path,
                input=script,
                text=True,
                env=_git_env(SEED_NOW, AGENT),
                check=True,
                capture_output=True,
            )
            self.refs.clear()


@dataclass
class _Run:
    id: str
    name: str
    spec: RunSpec
    repo: _Repo
    since_checkpoint: list[dict[str, str]] = field(default_factory=list)
    """Agent commits since the last checkpoint, newest first (a checkpoint's `commits`)."""
    head_checkpoint: CheckpointView | None = None
    context_tokens: int = 2140
    """How big the cached prompt prefix starts (bigger for a bigger codebase)."""

    @property
    def workspace(self) -> Path:
        return self.repo.path


@dataclass(frozen=True)
class Call:
    """One tool call of a model turn, with what it returned; `commit` makes a real git commit."""

    tool: str
    input: dict[str, Any]
    output: str = ""
    is_error: bool = False
    ms: int = 4
    commit: tuple[str, dict[str, str]] | None = None
    interrupted: bool = False
    """The session died while the call ran: no result was recorded."""


def _bash(command: str, output: str = "", *, is_error: bool = False, ms: int = 420) -> Call:
    return Call("bash", {"command": command}, output, is_error, ms)


def _read(path: str, output: str) -> Call:
    return Call("read", {"file_path": path}, output, ms=1)


def _edit(path: str, old: str, new: str, *, commit: tuple[str, dict[str, str]] | None = None) -> Call:
    return Call(
        "edit",
        {"file_path": path, "old_string": old, "new_string": new},
        f"edited {path} (1 replacement(s))",
        ms=2,
        commit=commit,
    )


def _write(path: str, content: str) -> Call:
    return Call(
        "write",
        {"file_path": path, "content": content},
        f"wrote {len(content.encode())} bytes to {path}",
        ms=1,
    )


def _git_commit(message: str, files: dict[str, str]) -> Call:
    return Call(
        "bash", {"command": f'git add -A && git commit -q -m "{message}"'}, "", ms=14, commit=(message, files)
    )


def _digest(*parts: object) -> str:
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()


@dataclass
class _Pending:
    run_id: str
    kind: str
    data: dict[str, Any]
    session_id: int | None
    ts: datetime
    usage: Usage | None = None
    usage_session_id: int | None = None


class _Story:
    """Writes the runs in story order; events are buffered and written in one transaction at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock = _Clock()
        self.pending: list[_Pending] = []
        self.runs: dict[str, _Run] = {}

    @contextmanager
    def clock_in_charge(self) -> Iterator[None]:
        with clock_set_to(self.clock):
            yield

    @property
    def now(self) -> datetime:
        return self.clock.now

    def at(self, when: datetime) -> None:
        if when < self.clock.now:
            raise ValueError(f"the story goes back in time: {when} < {self.clock.now}")
        self.clock.now = when

    def later(self, seconds: float) -> None:
        self.clock.now += timedelta(seconds=seconds)

    def event(
        self,
        run_id: str,
        kind: str,
        data: dict[str, Any],
        session_id: int | None = None,
        *,
        usage: Usage | None = None,
        usage_session_id: int | None = None,
    ) -> None:
        self.pending.append(_Pending(run_id, kind, data, session_id, self.now, usage, usage_session_id))

    def flush(self) -> None:
        if not self.pending:
            return
        with self.store.writing() as conn:
            for p in self.pending:
                log.append(conn, p.run_id, p.kind, p.data, session_id=p.session_id, ts=p.ts)
                if p.usage is not None:
                    runs.add_usage(conn, p.run_id, p.usage_session_id, p.usage, at=p.ts)
        self.pending.clear()

    # --- runs ---------------------------------------------------------------------------------

    def create_run(
        self,
        run_id: str,
        spec_text: str,
        *,
        when: datetime,
        first_files: dict[str, str],
        first_message: str,
        parent_run_id: str | None = None,
    ) -> _Run:
        """A run as `longrun run create` makes it: a draft, its workspace a repository on the run's
        branch, and the workspace as it was as checkpoint `created`."""
        specs = Path.home() / "specs"
        specs.mkdir(parents=True, exist_ok=True)
        spec_path = specs / f"{run_id.removeprefix('r-')}.toml"
        spec_path.write_text(spec_text)
        spec = parse_spec(spec_text, source=str(spec_path), base_dir=spec_path.parent)
        repo = _Repo(spec.workspace, f"longrun/{run_id}")
        repo.init()
        sha = repo.commit(first_message, first_files, when - timedelta(minutes=7), PERSON)
        self.flush()
        self.clock.now = when  # each run's story starts on its own clock; runs overlap in time
        run = _Run(run_id, spec.name, spec, repo, [{"sha": sha, "subject": first_message}])
        self.runs[run_id] = run
        self.flush()
        runs.insert_run(
            self.store,
            run_id=run_id,
            name=spec.name,
            goal=spec.goal,
            spec=spec.model_dump(mode="json"),
            spec_path=str(spec_path),
            workspace=str(repo.path),
            branch=repo.branch,
            state=RunState.draft,
            parent_run_id=parent_run_id,
        )
        self.later(0.03)
        self.checkpoint(run, None, "created")
        return run

    def start(self, run: _Run, when: datetime) -> None:
        self.at(when)
        self.flush()
        with self.store.writing() as conn:
            runs.set_run_state(conn, run.id, RunState.scheduled, f"started by {WHO}")
            runs.set_run_plan(
                conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason="started"
            )
            log.append(conn, run.id, "started", {"by": WHO})

    def set_state(self, run: _Run, state: str, reason: str, **plan: datetime | str | None) -> None:
        self.flush()
        with self.store.writing() as conn:
            runs.set_run_state(conn, run.id, state, reason)
            if plan:
                runs.set_run_plan(conn, run.id, **plan)

    def checkpoint(
        self, run: _Run, session: SessionView | None, reason: str, handoff: dict[str, Any] | None = None
    ) -> CheckpointView:
        self.flush()
        label = f"session {session.n}" if session else "no session"
        sha = run.repo.snapshot(f"longrun: checkpoint ({reason}, {label})", run.id, self.now)
        cp = runs.add_checkpoint(
            self.store,
            run_id=run.id,
            session_id=session.id if session else None,
            commit=sha,
            reason=reason,
            handoff=handoff,
            commits=run.since_checkpoint,
        )
        run.since_checkpoint = []
        run.head_checkpoint = cp
        self.later(0.004)
        return cp

    # --- sessions -----------------------------------------------------------------------------

    def session(self, run: _Run, when: datetime, due: str, pid: int) -> _Live:
        """The supervisor fires the run, launches a session, and the session loads its context."""
        self.at(when)
        self.flush()
        with self.store.writing() as conn:
            runs.set_run_plan(conn, run.id, due_at=self.now, next_session_at=self.now, next_reason=due)
            log.append(conn, run.id, "session_due", {"reason": due})
        self.later(0.52)
        view = runs.create_session(
            self.store,
            run.id,
            time_box=run.spec.session.time_box,
            wrap_up=run.spec.session.wrap_up,
            now=self.now,
        )
        with self.store.writing() as conn:
            runs.set_run_plan(
                conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason=None
            )
        self.later(2.61)
        view = runs.session_started(self.store, view.id, pid)
        live = _Live(self, run, view)
        self.later(0.058)
        live.features_file()
        self.later(0.006)
        live.context()
        return live

    def judge(
        self,
        run: _Run,
        live: _Live,
        checkpoint: CheckpointView,
        verdicts: list[tuple[str, str, str, dict[str, Any]]],
        rubric_calls: dict[str, tuple[int, int]] | None = None,
    ) -> dict[str, str]:
        """The supervisor judges the session's last checkpoint: rubric calls, verdicts, `judged`.

        `verdicts` are (feature, judge, status, evidence); `rubric_calls` the (input, output)
        tokens of each rubric judged by a model call. Returns the statuses."""
        self.later(1.9)
        for feature, (tokens_in, tokens_out) in (rubric_calls or {}).items():
            status = next(v[2] for v in verdicts if v[0] == feature)
            usage = HAIKU.usage(tokens_in, tokens_out, 0, 0)
            data = {
                "checkpoint_id": checkpoint.id,
                "feature_id": feature,
                "model": HAIKU.model,
                "request_id": f"req_01{_digest(run.id, checkpoint.id, feature)[:22]}",
                "status": status,
                "usage": usage.to_json(),
            }
            self.event(run.id, "judge_call", data, live.view.id, usage=usage)
            self.later(1.4)
        self.flush()
        views = [
            VerdictView(f, checkpoint.id, judge, status, evidence) for f, judge, status, evidence in verdicts
        ]
        runs.add_verdicts(self.store, run.id, checkpoint.id, views)
        statuses = {v.feature_id: v.status for v in views}
        usd = sum(HAIKU.cost(i, o, 0, 0) for i, o in (rubric_calls or {}).values())
        self.later(0.003)
        judged = {
            "checkpoint_id": checkpoint.id,
            "by": "supervisor",
            "passing": sorted(f for f, s in statuses.items() if s == "pass"),
            "failing": sorted(f for f, s in statuses.items() if s == "fail"),
            "errors": sorted(f for f, s in statuses.items() if s == "error"),
            "usd": round(usd, 6),
        }
        self.event(run.id, "judged", judged, live.view.id)
        self.later(0.006)
        return statuses

    def settle(
        self,
        run: _Run,
        live: _Live,
        statuses: dict[str, str],
        before: dict[str, str],
    ) -> dict[str, Any]:
        """The supervisor's `session_judged`, and the session marked settled."""
        newly = sorted(f for f, s in statuses.items() if s == "pass" and before.get(f) != "pass")
        progress = {"progress": bool(newly), "newly_passing": newly}
        self.flush()
        with self.store.writing() as conn:
            runs.mark_settled(conn, live.view.id)
            log.append(
                conn, run.id, "session_judged", {"n": live.view.n, **progress}, session_id=live.view.id
            )
        return progress

    def next_session(self, run: _Run, live: _Live) -> None:
        """Back to the schedule after a session: the next one after the cooldown."""
        cooldown = int(run.spec.schedule.cooldown.total_seconds())
        self.set_state(
            run,
            RunState.scheduled,
            f"session {live.view.n} ended",
            next_session_at=self.now + run.spec.schedule.cooldown,
            next_reason=f"cooldown of {cooldown}s after the last session",
        )


class _Live:
    """A session as it runs: model turns, tool calls and results, handoffs, checkpoints, its end."""

    def __init__(self, story: _Story, run: _Run, view: SessionView) -> None:
        self.story = story
        self.run = run
        self.view = view
        self.calls = 0
        self.from_checkpoint = run.head_checkpoint

    @property
    def id(self) -> int:
        return self.view.id

    def features_file(self) -> None:
        features = [f.id for f in self.run.spec.features]
        sha = _digest(self.run.id, self.view.n, "features", *features)
        data = {"features": len(features), "path": ".longrun/features.json", "sha256": sha}
        self.story.event(self.run.id, "features_file", data, self.id)

    def context(self) -> None:
        cp = self.from_checkpoint
        assert cp is not None
        statuses = cp.features
        lines = [
            f"# Run {self.run.name} ({self.run.id}), session {self.view.n}",
            "",
            f"You resume from checkpoint {cp.id} (workspace commit {cp.commit[:12]}).",
            "",
            "## Goal",
            self.run.spec.goal.strip(),
            "",
            "## Done-condition (decided by the judge, not by you)",
        ]
        for f in self.run.spec.features:
            how = f"check: `{f.check}`" if f.check else "judged by a reviewer model against its rubric"
            lines.append(f"- [{statuses.get(f.id, 'unjudged')}] {f.id}: {f.description} ({how})")
        handoff = cp.handoff
        lines += ["", "## Last handoff"]
        if handoff:
            lines += [
                f"Done: {'; '.join(handoff['done']) or '—'}",
                f"Next: {'; '.join(handoff['next']) or '—'}",
            ]
            if handoff.get("blockers"):
                lines.append(f"Blockers: {'; '.join(handoff['blockers'])}")
            if handoff.get("notes"):
                lines.append(f"Notes: {handoff['notes']}")
        else:
            lines.append("None yet: this is the first session from this checkpoint.")
        budget = self.run.spec.budget.usd
        lines += [
            "",
            "## Budget and time",
            f"${cp.spent_usd:.2f} of ${budget:.2f} spent. This session ends at "
            f"{self.view.deadline_at.strftime('%H:%M')} UTC; wrap up and hand off before then.",
        ]
        text = "\n".join(lines)
        data = {
            "bytes": len(text.encode()),
            "checkpoint_id": cp.id,
            "commit": cp.commit,
            "sha256": hashlib.sha256(text.encode()).hexdigest(),
            "text": text,
        }
        self.story.event(self.run.id, "context", data, self.id)

    def beat(self) -> None:
        """A heartbeat now (the harness beats every two seconds; only the last one is kept)."""
        self.story.flush()
        runs.heartbeat(self.story.store, self.id)

    def _usage(self, out: int) -> Usage:
        """Tokens of the next call: the cached prefix grows call by call; the first call writes it."""
        k = self.calls
        self.calls += 1
        base = self.run.context_tokens
        if k == 0:
            return SONNET.usage(base + 97 * self.view.n, out, 0, 0)
        return SONNET.usage(24 + (k * 37) % 180, out, 90 + (k * 53) % 420, base + 410 * k)

    def turn(self, text: str, *calls: Call, out: int = 600, asks: list[str] | None = None) -> None:
        """One model reply and the tool calls it made, each recorded as it ran; `asks` names calls
        of the reply that are not run here (a handoff, or calls that wait for a person)."""
        story = self.story
        duration = 900 + out * 11 + (self.calls * 131) % 700
        story.later(duration / 1000)
        usage = self._usage(out)
        k = self.calls
        data = {
            "model": SONNET.model,
            "request_id": f"req_01{_digest(self.run.id, self.view.n, k, 'req')[:22]}",
            "message_id": f"msg_01{_digest(self.run.id, self.view.n, k, 'msg')[:22]}",
            "stop_reason": "tool_use" if calls or asks else "end_turn",
            "max_tokens": self.run.spec.worker.max_tokens,
            "duration_ms": duration,
            "text": text,
            "tool_calls": [c.tool for c in calls] + (asks or []),
            "usage": usage.to_json(),
        }
        story.event(self.run.id, "model_call", data, self.id, usage=usage, usage_session_id=self.id)
        for call in calls:
            story.later(0.004)
            decision = {"decision": "allow", "input": call.input, "tool": call.tool}
            story.event(self.run.id, "tool_call", decision, self.id)
            story.later(call.ms / 1000)
            if call.commit is not None:
                message, files = call.commit
                sha = self.run.repo.commit(message, files, story.now)
                self.run.since_checkpoint.insert(0, {"sha": sha, "subject": message})
            if call.interrupted:
                continue
            result = {
                "duration_ms": call.ms,
                "is_error": call.is_error,
                "output": call.output,
                "tool": call.tool,
            }
            story.event(self.run.id, "tool_result", result, self.id)

    def handoff(self, text: str, handoff: dict[str, Any], *, out: int = 900) -> CheckpointView:
        """The model calls `handoff`: the note, a checkpoint, and what the tool told the model."""
        story = self.story
        self.turn(text, out=out, asks=["handoff"])
        story.later(0.004)
        story.event(
            self.run.id, "tool_call", {"decision": "allow", "input": handoff, "tool": "handoff"}, self.id
        )
        story.later(0.001)
        story.event(self.run.id, "handoff", handoff, self.id)
        story.later(0.02)
        cp = story.checkpoint(self.run, self.view, "handoff", handoff)
        said = f"Handoff recorded as checkpoint {cp.id} (commit {cp.commit[:10]})."
        story.event(
            self.run.id,
            "tool_result",
            {"duration_ms": 27, "is_error": False, "output": said, "tool": "handoff"},
            self.id,
        )
        return cp

    def pause(self, text: str, waiting: list[dict[str, Any]], *, out: int = 700) -> list[int]:
        """The model makes calls the approval rules ask a person about: checkpoint, keep the
        conversation, ask for each, and say the session paused (the session then ends)."""
        story = self.story
        self.turn(text, out=out, asks=[w["name"] for w in waiting])
        story.later(0.04)
        cp = story.checkpoint(self.run, self.view, "approval")
        uses = [{"type": "tool_use", "id": w["id"], "name": w["name"], "input": w["input"]} for w in waiting]
        history = [
            {"role": "user", "content": f"# Run {self.run.name} ({self.run.id}), session {self.view.n}"},
            {"role": "assistant", "content": [{"type": "text", "text": text}, *uses]},
        ]
        rules = policy.rules_of(self.run.spec)
        asked: list[str] = []
        ids: list[int] = []
        with story.store.writing() as conn:
            conversation = runs.add_conversation(conn, self.run.id, self.id, cp.id, "approval", history)
            for call in waiting:
                args = dict(call["input"])
                base = {"tool_use_id": call["id"], "conversation_id": conversation, "checkpoint_id": cp.id}
                if call["name"] == policy.ASK_HUMAN:
                    kind = "question"
                    request = base | {k: args.get(k) for k in ("question", "why", "choices")}
                else:
                    decision = policy.decide(rules, call["name"], args, self.run.workspace)
                    kind = "tool_call"
                    request = base | {"tool": call["name"], "input": args, **decision.to_json()}
                approval = runs.add_approval(conn, self.run.id, kind, request, self.id)
                asked.append(f"{kind} {approval}")
                ids.append(approval)
            log.append(
                conn,
                self.run.id,
                "paused_for_approval",
                {"checkpoint_id": cp.id, "conversation_id": conversation, "approvals": asked},
                session_id=self.id,
            )
        self.end("approval", f"waiting for a person: {', '.join(asked)}")
        return ids

    def end(
        self, reason: str, detail: str, *, state: SessionState = SessionState.ended, **extra: Any
    ) -> CheckpointView:
        """The session's end: its last checkpoint, then how it ended (a crashed session's last
        heartbeat is the one `beat` gave before it died)."""
        story = self.story
        if state == SessionState.ended:
            self.beat()
        story.later(0.08)
        checkpoint_reason = "session_end" if state == SessionState.ended else str(state)
        cp = story.checkpoint(self.run, self.view, checkpoint_reason)
        data = {"detail": detail, **extra} if state == SessionState.ended else None
        runs.end_session(story.store, self.id, state, reason, data)
        story.later(0.005)
        return cp


def _tool_use_id(run_id: str, n: int, k: int) -> str:
    return f"toolu_01{_digest(run_id, n, k, 'toolu')[:22]}"


def _check(
    command: str, status: str, output: str, seconds: float, exit_code: int | None = None
) -> dict[str, Any]:
    code = exit_code if exit_code is not None else (0 if status == "pass" else 1)
    return {"command": command, "duration_s": seconds, "exit_code": code, "output_tail": output}


def _rubric(
    rubric: str, verdict: str, rationale: str, criteria: list[tuple[str, bool, str]], base: str, size: int
) -> dict[str, Any]:
    return {
        "confidence": 0.9 if verdict == "pass" else 0.86,
        "criteria": [{"criterion": c, "met": met, "note": note} for c, met, note in criteria],
        "diff_base": base,
        "diff_bytes": size,
        "model": HAIKU.model,
        "rationale": rationale,
        "rubric": rubric,
    }


# --- textstats ----------------------------------------------------------------------------------

TEXTSTATS_SPEC = """\
name = "textstats"
goal = '''
Build textstats, a small text-statistics package: word_count, top_words and reading_time, each
passing its tests, with a Usage section in the README that shows every function.
'''
workspace = "~/textstats"

[worker]
model = "claude-sonnet-5-5"
max_tokens = 8192

[session]
time_box = "45m"
wrap_up = "5m"
checkpoint_every_calls = 20

[schedule]
mode = "back_to_back"
cooldown = "5m"

[budget]
usd = 5.0
per_session_usd = 2.0

[judge]
model = "claude-haiku-5-5"

[[features]]
id = "word-count"
description = "word_count(text) returns the number of words: runs of non-whitespace characters."
check = "python -m pytest -q tests/test_word_count.py"

[[features]]
id = "top-words"
description = "top_words(text, n=3) returns the n most frequent words, lower-cased, punctuation stripped."
check = "python -m pytest -q tests/test_top_words.py"

[[features]]
id = "reading-time"
description = "reading_time(text, wpm=200) returns the whole minutes needed to read text, rounded up."
check = "python -m pytest -q tests/test_reading_time.py"
rubric = "reading_time is documented and handles empty text and wpm <= 0 without dividing by zero."

[[features]]
id = "usage-docs"
description = "README.md has a Usage section with an example of each of the three functions."
rubric = '''
README.md has a '## Usage' section that shows word_count, top_words and reading_time, each with
an example call and the result it returns, and the results shown are the ones the code returns.
'''
"""

README_0 = """\
# textstats

Small text statistics for Python: how many words a text has, which words it uses most, and
how long it takes to read.

- `word_count(text) -> int`: the number of words, where a word is a run of non-whitespace
  characters. `word_count("Hello, world!")` is 2.
- `top_words(text, n=3) -> list[tuple[str, int]]`: the `n` most frequent words, lower-cased and
  stripped of surrounding punctuation, most frequent first, ties in alphabetical order.
- `reading_time(text, wpm=200) -> int`: whole minutes to read `text`, rounded up; 0 when empty.

Run the tests with `python -m pytest -q tests`.
"""

USAGE = """
## Usage

```python
>>> from textstats import word_count, top_words, reading_time
>>> word_count("Hello, world!")
2
>>> top_words("The cat. The dog! the CAT?", n=2)
[('the', 3), ('cat', 2)]
>>> reading_time("word " * 450)
3
```
"""

TEST_WORD_COUNT = """\
from textstats import word_count


def test_empty_text_has_no_words():
    assert word_count("") == 0
    assert word_count("  \\n\\t ") == 0


def test_punctuation_stays_with_its_word():
    assert word_count("Hello, world!") == 2


def test_apostrophes_and_hyphens_do_not_split_words():
    assert word_count("don't stop the well-known band") == 5
"""

TEST_TOP_WORDS = """\
from textstats import top_words


def test_most_frequent_first():
    assert top_words("b a b c b a", n=2) == [("b", 3), ("a", 2)]


def test_case_and_punctuation_do_not_make_a_new_word():
    assert top_words("The cat. The dog! the CAT?", n=2) == [("the", 3), ("cat", 2)]


def test_ties_are_alphabetical():
    assert top_words("pear apple fig", n=3) == [("apple", 1), ("fig", 1), ("pear", 1)]
"""

TEST_READING_TIME = """\
from textstats import reading_time


def test_empty_text_takes_no_time():
    assert reading_time("") == 0


def test_rounds_up_to_a_whole_minute():
    assert reading_time("word " * 201) == 2


def test_words_per_minute_can_be_given():
    assert reading_time("word " * 300, wpm=100) == 3
"""

INIT_0 = '"""Small text statistics: how many words, which words are most frequent, how long to read."""\n'

INIT_1 = (
    INIT_0
    + '''
from collections import Counter


def word_count(text: str) -> int:
    """The number of words in text: runs of non-whitespace characters."""
    return len(text.split())


def top_words(text: str, n: int = 3) -> list[tuple[str, int]]:
    """The n most frequent words as (word, count) pairs, most frequent first, ties alphabetical."""
    counts = Counter(word.lower() for word in text.split())
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
'''
)

INIT_REGEX = (
    INIT_0
    + '''
import re
from collections import Counter

_WORD = re.compile(r"\\w+")


def word_count(text: str) -> int:
    """The number of words in text."""
    return len(_WORD.findall(text))


def top_words(text: str, n: int = 3) -> list[tuple[str, int]]:
    """The n most frequent words as (word, count) pairs, most frequent first, ties alphabetical."""
    counts = Counter(word.lower() for word in _WORD.findall(text))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def reading_time(text: str, wpm: int = 200) -> int:
    """Whole minutes to read text at wpm words a minute, rounded up."""
    return -(-word_count(text) // wpm)
'''
)

INIT_2 = (
    INIT_0
    + '''
import string
from collections import Counter


def word_count(text: str) -> int:
    """The number of words in text: runs of non-whitespace characters."""
    return len(text.split())


def top_words(text: str, n: int = 3) -> list[tuple[str, int]]:
    """The n most frequent words as (word, count) pairs, most frequent first, ties alphabetical.

    Words are lower-cased and stripped of surrounding punctuation; what is only punctuation is dropped.
    """
    words = (word.strip(string.punctuation).lower() for word in text.split())
    counts = Counter(word for word in words if word)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
'''
)

INIT_3 = (
    INIT_2.replace("import string\n", "import math\nimport string\n")
    + '''

def reading_time(text: str, wpm: int = 200) -> int:
    """Whole minutes to read text at wpm words a minute, rounded up; 0 for empty text.

    A wpm of 0 or less is refused with a ValueError rather than divided by.
    """
    if wpm <= 0:
        raise ValueError(f"wpm must be positive, got {wpm}")
    return math.ceil(word_count(text) / wpm)
'''
)

PYTEST_PUNCTUATION_FAIL = """\
.F.                                                                      [100%]
=================================== FAILURES ===================================
_______________ test_case_and_punctuation_do_not_make_a_new_word _______________

    def test_case_and_punctuation_do_not_make_a_new_word():
>       assert top_words("The cat. The dog! the CAT?", n=2) == [("the", 3), ("cat", 2)]
E       AssertionError: assert [('the', 3), ('cat.', 1)] == [('the', 3), ('cat', 2)]

tests/test_top_words.py:9: AssertionError
=========================== short test summary info ============================
FAILED tests/test_top_words.py::test_case_and_punctuation_do_not_make_a_new_word
1 failed, 2 passed in 0.02s"""

PYTEST_APOSTROPHE_FAIL = """\
..F                                                                      [100%]
=================================== FAILURES ===================================
_______________ test_apostrophes_and_hyphens_do_not_split_words ________________

    def test_apostrophes_and_hyphens_do_not_split_words():
>       assert word_count("don't stop the well-known band") == 5
E       AssertionError: assert 7 == 5

tests/test_word_count.py:13: AssertionError
=========================== short test summary info ============================
FAILED tests/test_word_count.py::test_apostrophes_and_hyphens_do_not_split_words
1 failed, 2 passed in 0.02s"""

PYTEST_NO_READING_TIME = """\

==================================== ERRORS ====================================
_________________ ERROR collecting tests/test_reading_time.py __________________
ImportError while importing test module 'tests/test_reading_time.py'.
E   ImportError: cannot import name 'reading_time' from 'textstats'
=========================== short test summary info ============================
ERROR tests/test_reading_time.py
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
1 error in 0.05s"""

CURL = "curl -sSfL -o tests/data/pride-and-prejudice.txt https://www.gutenberg.org/cache/epub/1342/pg1342.txt"


def _ok(n: int, seconds: str) -> str:
    dots = "." * n
    return f"{dots}{' ' * (73 - n)}[100%]\n{n} passed in {seconds}s"


def _ratchet(files: int, collected: int, base: str | None, before: int | None) -> dict[str, Any]:
    measure = {
        "broken": None,
        "collect_command": "python -m pytest --collect-only -q",
        "collected": collected,
        "error": None,
        "files": ["tests/test_reading_time.py", "tests/test_top_words.py", "tests/test_word_count.py"][
            :files
        ],
    }
    if base is None:
        summary = f"{files} test files, {collected} tests collected; no baseline yet"
        return {"collected": collected, "files": files, "measure": measure, "summary": summary}
    return {
        "baseline": base,
        "collected": collected,
        "counts_compared": True,
        "files": files,
        "measure": measure,
        "missing_files": [],
        "missing_files_more": 0,
        "summary": f"no tests went down against {base}: test files {files} → {files}, "
        f"collected tests {before} → {collected}",
        "tests_before": before,
        "tests_now": collected,
    }


def _textstats(story: _Story) -> None:
    day = SEED_NOW.replace(hour=0)
    run = story.create_run(
        RUN_ACTIVE,
        TEXTSTATS_SPEC,
        when=day + timedelta(hours=5, minutes=41, seconds=12),
        first_files={
            "README.md": README_0,
            "textstats/__init__.py": INIT_0,
            "tests/test_word_count.py": TEST_WORD_COUNT,
            "tests/test_top_words.py": TEST_TOP_WORDS,
            "tests/test_reading_time.py": TEST_READING_TIME,
        },
        first_message="Start textstats: the README and the tests the functions must pass",
    )
    spec = run.spec
    rubric_rt = spec.features[2].rubric or ""
    rubric_docs = spec.features[3].rubric or ""
    story.start(run, day + timedelta(hours=5, minutes=44, seconds=3))

    # Session 1: word_count and a first top_words; then it wants a long sample text (network: asks).
    s1 = story.session(run, day + timedelta(hours=5, minutes=44, seconds=4), "started", 31877)
    s1.turn("I'll start by reading the README to see what the package needs.", _read("README.md", README_0))
    s1.turn(
        "Three functions in textstats/__init__.py. Let me look at the tests before writing anything.",
        _read("tests/test_word_count.py", TEST_WORD_COUNT),
        _read("tests/test_top_words.py", TEST_TOP_WORDS),
        out=420,
    )
    s1.turn(
        "word_count splits on whitespace; top_words counts lower-cased words. I'll write both now and "
        "leave reading_time for after they pass.",
        _write("textstats/__init__.py", INIT_1),
        out=1400,
    )
    s1.turn(
        "Running the word_count tests.",
        _bash("python -m pytest -q tests/test_word_count.py", _ok(3, "0.01")),
        out=300,
    )
    s1.turn(
        "word_count passes. Now top_words.",
        _bash("python -m pytest -q tests/test_top_words.py", PYTEST_PUNCTUATION_FAIL, is_error=True),
        out=300,
    )
    s1.turn(
        "top_words counts 'cat.' and 'CAT?' as different words: punctuation has to be stripped before "
        "counting. Before I change it, I'll commit what passes.",
        _git_commit("Add word_count and a first top_words", {"textstats/__init__.py": INIT_1}),
        out=500,
    )
    s1.turn(
        "For reading_time I want a long real text to check the rounding on, not only the short strings "
        "in the tests.",
        _bash("ls tests", "__pycache__\ntest_reading_time.py\ntest_top_words.py\ntest_word_count.py", ms=6),
        out=350,
    )
    s1.turn("I'll make a folder for test data first.", _bash("mkdir -p tests/data", "", ms=5), out=250)
    curl_id = _tool_use_id(run.id, 1, s1.calls)
    asked = s1.pause(
        "Downloading Pride and Prejudice from Project Gutenberg as a long sample text.",
        [{"id": curl_id, "name": "bash", "input": {"command": CURL}}],
    )
    assert asked == [APPROVAL_DECIDED]
    cp = run.head_checkpoint
    assert cp is not None and cp.id == CP_S1_END
    statuses = story.judge(
        run,
        s1,
        cp,
        [
            (
                "word-count",
                "command",
                "pass",
                _check(spec.features[0].check or "", "pass", _ok(3, "0.01"), 0.41),
            ),
            (
                "top-words",
                "command",
                "fail",
                _check(spec.features[1].check or "", "fail", PYTEST_PUNCTUATION_FAIL, 0.44),
            ),
            (
                "reading-time",
                "command",
                "fail",
                _check(spec.features[2].check or "", "fail", PYTEST_NO_READING_TIME, 0.37, 2)
                | {"rubric": rubric_rt, "rubric_skipped": "not judged: the check did not pass (fail)"},
            ),
            (
                "usage-docs",
                "llm",
                "fail",
                _rubric(
                    rubric_docs,
                    "fail",
                    "README.md has no Usage section yet.",
                    [
                        ("a '## Usage' section exists", False, "there is none"),
                        ("each function has an example call", False, ""),
                        ("the results shown match the code", False, "nothing is shown"),
                    ],
                    "the start of the run",
                    1187,
                ),
            ),
            ("ratchet", "ratchet", "pass", _ratchet(3, 6, None, None)),
        ],
        {"usage-docs": (1702, 344)},
    )
    story.settle(run, s1, statuses, {})
    approvals = runs.list_approvals(story.store, run.id, state="pending")
    story.set_state(
        run,
        RunState.awaiting_approval,
        waiting_reason(approvals),
        due_at=None,
        next_session_at=None,
        next_reason=None,
    )

    story.at(day + timedelta(hours=6, minutes=52, seconds=40))
    comment = "Fine: Project Gutenberg texts are public domain. Keep the file under tests/data/."
    with story.store.writing() as conn:
        runs.decide_approval(conn, APPROVAL_DECIDED, "approved", WHO, comment)
        said = f"tool call approved by {WHO}"
        runs.set_run_state(conn, run.id, RunState.scheduled, said)
        runs.set_run_plan(conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason=said)

    # Session 2: goes on from the paused conversation; a regex tokenizer that breaks word_count.
    s2 = story.session(
        run, day + timedelta(hours=6, minutes=52, seconds=41), f"tool call approved by {WHO}", 33410
    )
    notice = (
        "[longrun] This session goes on from where the last one paused: bash call approved by "
        f"{WHO} at {iso(day + timedelta(hours=6, minutes=52, seconds=40))[:19]}+00:00: {comment}."
    )
    story.event(
        run.id,
        "conversation_resumed",
        {
            "approvals": [APPROVAL_DECIDED],
            "conversation_id": 1,
            "notice": notice,
            "results": {curl_id: {"action": "run", "text": ""}},
        },
        s2.id,
    )
    story.later(0.09)
    story.event(run.id, "tool_call", {"decision": "allow", "input": {"command": CURL}, "tool": "bash"}, s2.id)
    story.later(2.31)
    story.event(
        run.id, "tool_result", {"duration_ms": 2308, "is_error": False, "output": "", "tool": "bash"}, s2.id
    )
    with story.store.writing() as conn:
        runs.mark_resumed(conn, 1, s2.id)
    s2.turn(
        "The sample text is in tests/data. Back to top_words: rather than stripping punctuation word by "
        "word, a regex that finds words handles every case at once.",
        _edit("textstats/__init__.py", INIT_1, INIT_REGEX),
        out=1300,
    )
    s2.turn(
        "Running the top_words tests.",
        _bash("python -m pytest -q tests/test_top_words.py", _ok(3, "0.02")),
        out=260,
    )
    s2.turn(
        "top_words passes. word_count now uses the same regex, so let me check it still passes.",
        _bash("python -m pytest -q tests/test_word_count.py", PYTEST_APOSTROPHE_FAIL, is_error=True),
        out=320,
    )
    s2.turn(
        '\\w+ splits "don\'t" and "well-known" in two. The test says a word is a run of non-whitespace, '
        "so the regex is wrong for word_count; I'll note it and look at reading_time first.",
        _read("tests/test_reading_time.py", TEST_READING_TIME),
        out=700,
    )
    s2.turn(
        "reading_time rounds up with integer division.",
        _bash("python -m pytest -q tests/test_reading_time.py", _ok(3, "0.01")),
        out=900,
    )
    s2.turn(
        "reading_time passes. Committing; word_count's regression is the first thing for the next session.",
        _git_commit(
            "Tokenize with a regex so punctuation never counts; add reading_time",
            {"textstats/__init__.py": INIT_REGEX},
        ),
        out=420,
    )
    s2.handoff(
        "",
        {
            "done": ["top_words strips punctuation (regex tokenizer)", "reading_time"],
            "next": [
                "fix word_count: the \\w+ tokenizer splits don't and well-known",
                "Usage section in README",
            ],
            "blockers": [
                "tests/test_word_count.py::test_apostrophes_and_hyphens_do_not_split_words fails with the "
                "regex tokenizer; a word must stay a run of non-whitespace"
            ],
            "notes": "tests/data/pride-and-prejudice.txt (downloaded, approved) is a long sample "
            "for reading_time.",
        },
    )
    s2.turn("I've left a handoff: word_count regressed with the regex and needs fixing next.", out=180)
    cp = s2.end("finished", "the model ended its turn")
    assert cp.id == CP_S2_END
    statuses = story.judge(
        run,
        s2,
        cp,
        [
            (
                "word-count",
                "command",
                "fail",
                _check(spec.features[0].check or "", "fail", PYTEST_APOSTROPHE_FAIL, 0.43),
            ),
            (
                "top-words",
                "command",
                "pass",
                _check(spec.features[1].check or "", "pass", _ok(3, "0.02"), 0.45),
            ),
            (
                "reading-time",
                "command+llm",
                "error",
                _check(spec.features[2].check or "", "pass", _ok(3, "0.01"), 0.36)
                | {
                    "rubric": rubric_rt,
                    "model": HAIKU.model,
                    "diff_bytes": 1544,
                    "error": "HTTP 529: Overloaded",
                    "request_id": f"req_01{_digest(run.id, cp.id, 'overloaded')[:22]}",
                },
            ),
            (
                "usage-docs",
                "llm",
                "fail",
                _rubric(
                    rubric_docs,
                    "fail",
                    "README.md still has no Usage section.",
                    [
                        ("a '## Usage' section exists", False, ""),
                        ("each function has an example call", False, ""),
                        ("the results shown match the code", False, ""),
                    ],
                    "the start of the run",
                    2406,
                ),
            ),
            ("ratchet", "ratchet", "pass", _ratchet(3, 9, f"checkpoint {CP_S1_END}", 6)),
        ],
        {"usage-docs": (2011, 301)},
    )
    before = dict(runs.get_checkpoint(story.store, CP_S1_END).features)
    story.settle(run, s2, statuses, before)
    story.next_session(run, s2)

    # A person pauses, rewinds to checkpoint 3 (before the regex) and resumes from there.
    story.at(day + timedelta(hours=7, minutes=49, seconds=15))
    story.set_state(
        run, RunState.paused, f"paused by {WHO}", due_at=None, next_session_at=None, next_reason=None
    )
    story.event(run.id, "paused", {"by": WHO, "sessions_told_to_wrap_up": []})
    story.at(day + timedelta(hours=8, minutes=6, seconds=2))
    before_rewind = story.checkpoint(run, None, "before_rewind")
    assert before_rewind.id == CP_BEFORE_REWIND
    keep = f"refs/longrun/{run.id}/abandoned/1"
    run.repo.refs[keep] = before_rewind.commit
    run.repo.snapshot(
        "longrun: the workspace as found before a restore", run.id, story.now, keep=f"{keep}-found"
    )
    target = runs.get_checkpoint(story.store, CP_S1_END)
    run.repo.git("reset", "-q", "--hard", f"{target.commit}^")
    run.since_checkpoint = []
    story.flush()
    with story.store.writing() as conn:
        runs.set_head_checkpoint(conn, run.id, target.id)
        log.append(
            conn,
            run.id,
            "rewound",
            {
                "to": target.id,
                "from": before_rewind.id,
                "commit": target.commit,
                "abandoned_ref": keep,
                "by": WHO,
            },
        )
    run.head_checkpoint = target
    story.later(41.3)
    said = f"resumed by {WHO}"
    story.set_state(
        run,
        RunState.scheduled,
        said,
        due_at=story.now,
        hold_until=None,
        next_session_at=None,
        next_reason=said,
    )
    how = f"from the resume context of checkpoint {target.id}"
    story.event(run.id, "resumed", {"by": WHO, "checkpoint_id": target.id, "exact": False, "how": how})

    # Session 3, from checkpoint 3: punctuation stripped, reading_time, the Usage section; then it
    # wants to push and asks a question (both wait for a person).
    s3 = story.session(run, story.now + timedelta(seconds=0.8), said, 35102)
    s3.turn(
        "Session 2's line was rewound: I start again from checkpoint 3. top_words needs punctuation "
        "stripped without changing what word_count counts as a word.",
        _read("textstats/__init__.py", INIT_1),
        out=800,
    )
    s3.turn(
        'Stripping string.punctuation from each whitespace-separated word keeps "don\'t" whole and '
        'drops "--".',
        _edit("textstats/__init__.py", INIT_1, INIT_2),
        out=1100,
    )
    s3.turn(
        "Running both test files.",
        _bash("python -m pytest -q tests/test_word_count.py tests/test_top_words.py", _ok(6, "0.02")),
        out=260,
    )
    s3.turn(
        "Both pass. Committing.",
        _git_commit("Strip punctuation in top_words", {"textstats/__init__.py": INIT_2}),
        out=240,
    )
    s3.turn(
        "Now reading_time: math.ceil of words over wpm, and a clear error for wpm <= 0 instead of a "
        "ZeroDivisionError.",
        _edit("textstats/__init__.py", INIT_2, INIT_3),
        out=1200,
    )
    s3.turn(
        "Checking it against the long sample as well as the tests.",
        _bash(
            'python -c "import textstats; '
            "print(textstats.reading_time(open('tests/data/pride-and-prejudice.txt').read()))\"",
            'Traceback (most recent call last):\n  File "<string>", line 1, in <module>\n'
            "FileNotFoundError: [Errno 2] No such file or directory: 'tests/data/pride-and-prejudice.txt'",
            is_error=True,
            ms=90,
        ),
        out=380,
    )
    s3.turn(
        "The sample was downloaded on the line that was rewound, so it is not here. The tests are enough.",
        _bash("python -m pytest -q tests", _ok(9, "0.03")),
        out=420,
    )
    s3.turn(
        "All nine tests pass. Now the Usage section of the README.",
        _edit(
            "README.md",
            "Run the tests with `python -m pytest -q tests`.\n",
            "Run the tests with `python -m pytest -q tests`.\n" + USAGE,
        ),
        out=900,
    )
    s3.turn(
        "Committing the function and the docs.",
        _git_commit(
            "Add reading_time and a Usage section to the README",
            {"textstats/__init__.py": INIT_3, "README.md": README_0 + USAGE},
        ),
        out=300,
    )
    s3.handoff(
        "",
        {
            "done": [
                "top_words strips punctuation",
                "reading_time, with a ValueError for wpm <= 0",
                "README Usage section",
            ],
            "next": ["push the branch", "check the README examples against the code once more"],
            "blockers": [],
            "notes": "All nine tests pass. The Pride and Prejudice sample from session 2 is gone "
            "with the rewind.",
        },
    )
    push_id = _tool_use_id(run.id, 3, s3.calls)
    question_id = _tool_use_id(run.id, 3, s3.calls + 1)
    asked = s3.pause(
        "I'll push the branch so the work is shared, and ask how the README's examples should read.",
        [
            {"id": push_id, "name": "bash", "input": {"command": "git push origin HEAD"}},
            {
                "id": question_id,
                "name": policy.ASK_HUMAN,
                "input": {
                    "question": "Should the README's examples quote a real text (a line of Pride and "
                    "Prejudice) or keep to short made-up sentences?",
                    "why": "The usage-docs rubric wants results a reader can check by eye; a quote reads "
                    "better but its counts are harder to verify.",
                    "choices": ["short made-up sentences", "a line of Pride and Prejudice"],
                },
            },
        ],
    )
    assert asked == [APPROVAL_PUSH, APPROVAL_QUESTION]
    cp = run.head_checkpoint
    assert cp is not None and cp.id == CP_HEAD
    statuses = story.judge(
        run,
        s3,
        cp,
        [
            (
                "word-count",
                "command",
                "pass",
                _check(spec.features[0].check or "", "pass", _ok(3, "0.01"), 0.4),
            ),
            (
                "top-words",
                "command",
                "pass",
                _check(spec.features[1].check or "", "pass", _ok(3, "0.02"), 0.42),
            ),
            (
                "reading-time",
                "command+llm",
                "pass",
                _check(spec.features[2].check or "", "pass", _ok(3, "0.01"), 0.38)
                | _rubric(
                    rubric_rt,
                    "pass",
                    "reading_time has a docstring, returns 0 for empty text, and raises ValueError "
                    "for wpm <= 0.",
                    [
                        ("reading_time is documented", True, ""),
                        ("empty text returns 0", True, "math.ceil(0 / wpm) is 0"),
                        ("wpm <= 0 does not divide by zero", True, "raises ValueError first"),
                    ],
                    f"checkpoint {CP_S1_END}",
                    1893,
                ),
            ),
            (
                "usage-docs",
                "llm",
                "fail",
                _rubric(
                    rubric_docs,
                    "fail",
                    "The Usage section shows all three functions, but reading_time('word ' * 450) is 3 only "
                    "at 200 wpm and the example does not say so.",
                    [
                        ("a '## Usage' section exists", True, ""),
                        ("each function has an example call", True, ""),
                        (
                            "the results shown match the code",
                            False,
                            "the reading_time example leaves wpm implicit",
                        ),
                    ],
                    "the start of the run",
                    3120,
                ),
            ),
            ("ratchet", "ratchet", "pass", _ratchet(3, 9, f"checkpoint {CP_S1_END}", 6)),
        ],
        {"reading-time": (1988, 402), "usage-docs": (2260, 377)},
    )
    story.settle(run, s3, statuses, before)
    waiting = runs.list_approvals(story.store, run.id, state="pending")
    story.set_state(
        run,
        RunState.awaiting_approval,
        waiting_reason(waiting),
        due_at=None,
        next_session_at=None,
        next_reason=None,
    )
    story.flush()
    run.repo.write_refs()


# --- textstats-fork -----------------------------------------------------------------------------

INIT_FORK = INIT_REGEX.replace('_WORD = re.compile(r"\\w+")', '_WORD = re.compile(r"\\w+(?:[\'-]\\w+)*")')

USAGE_FORK = USAGE.replace('"word " * 450)', '"word " * 450, wpm=200)')


def _fork(story: _Story) -> None:
    """textstats-fork: the regex tokenizer, given a second chance from the end of the abandoned line."""
    day = SEED_NOW.replace(hour=0)
    parent = story.runs[RUN_ACTIVE]
    target = runs.get_checkpoint(story.store, CP_S2_END)
    story.at(day + timedelta(hours=11, minutes=18, seconds=26))
    folder = parent.workspace.with_name(f"{parent.workspace.name}-fork-{RUN_FORK}")
    raw = {**parent.spec.model_dump(mode="json"), "name": "textstats-fork", "workspace": str(folder)}
    overrides = ['session.time_box="1h"']
    spec = RunSpec.model_validate(apply_overrides(raw, overrides))
    repo = _Repo(folder, f"longrun/{RUN_FORK}")
    parent.repo.git(
        "worktree", "add", "-q", "-b", repo.branch, str(folder), f"{target.commit}^", when=story.now
    )
    run = _Run(RUN_FORK, spec.name, spec, repo)
    story.runs[run.id] = run
    story.flush()
    runs.insert_run(
        story.store,
        run_id=run.id,
        name=spec.name,
        goal=spec.goal,
        spec=spec.model_dump(mode="json"),
        spec_path=runs.get_run(story.store, parent.id).spec_path,
        workspace=str(folder),
        branch=repo.branch,
        state=RunState.paused,
        parent_run_id=parent.id,
    )
    story.later(0.03)
    first = story.checkpoint(run, None, "forked")
    assert first.id == CP_FORKED
    with story.store.writing() as conn:
        runs.set_run_state(conn, run.id, RunState.paused, f"forked from {parent.name} ({parent.id}) by {WHO}")
        data = {"parent_run_id": parent.id, "parent_checkpoint_id": target.id, "by": WHO}
        log.append(conn, run.id, "forked", data | {"checkpoint_id": first.id, "overrides": overrides})
        log.append(conn, parent.id, "fork_made", {"run_id": run.id, "checkpoint_id": target.id, "by": WHO})

    story.at(day + timedelta(hours=11, minutes=51, seconds=30))
    said = f"resumed by {WHO}"
    story.set_state(
        run,
        RunState.scheduled,
        said,
        due_at=None,
        hold_until=None,
        next_session_at=None,
        next_reason="resumed",
    )
    story.event(run.id, "resumed", {"by": WHO})
    s1 = story.session(run, story.now + timedelta(seconds=0.9), "resumed", 38816)
    s1.turn(
        "This fork keeps session 2's regex tokenizer. The handoff says word_count splits \"don't\" and "
        '"well-known"; let me see the failure.',
        _bash("python -m pytest -q tests/test_word_count.py", PYTEST_APOSTROPHE_FAIL, is_error=True),
        out=520,
    )
    s1.turn(
        "A word can carry inner apostrophes and hyphens: \\w+(?:['-]\\w+)* keeps \"don't\" and "
        '"well-known" whole and still drops surrounding punctuation.',
        _edit(
            "textstats/__init__.py",
            '_WORD = re.compile(r"\\w+")',
            '_WORD = re.compile(r"\\w+(?:[\'-]\\w+)*")',
        ),
        out=1150,
    )
    s1.turn(
        "Running all the tests.",
        _bash("python -m pytest -q tests", _ok(9, "0.03")),
        out=240,
    )
    s1.turn(
        "All nine pass with the regex. Committing.",
        _git_commit("Keep apostrophes and hyphens inside words", {"textstats/__init__.py": INIT_FORK}),
        out=260,
    )
    s1.turn(
        "Now the README's Usage section. Reading the README first.",
        _read("README.md", README_0),
        out=330,
    )
    story.at(day + timedelta(hours=11, minutes=59, seconds=40))
    s1.turn(
        "I'll add a Usage section with one example per function, with the wpm made explicit for "
        "reading_time so the result can be checked by eye.",
        _edit(
            "README.md",
            "Run the tests with `python -m pytest -q tests`.\n",
            "Run the tests with `python -m pytest -q tests`.\n" + USAGE_FORK,
        ),
        out=980,
    )
    (folder / "README.md").write_text(README_0 + USAGE_FORK)
    story.at(day + timedelta(hours=11, minutes=59, seconds=58))
    s1.beat()
    assert s1.id == SESSION_LIVE
    repo.write_refs()


# --- docs-site ----------------------------------------------------------------------------------

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


def _docs_site(story: _Story) -> None:
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
    s1.turn("Let me see how the site is configured.", _read("mkdocs.yml", MKDOCS_YML), out=300)
    s1.turn(
        "Trying a strict build to see what is missing.",
        _bash("mkdocs build --strict", MKDOCS_MISSING, is_error=True, ms=1800),
        out=260,
    )
    s1.turn(
        "The nav names two pages that do not exist. The quickstart first.",
        _write("docs/quickstart.md", QUICKSTART_1),
        out=700,
    )
    s1.turn(
        "A first API page so the build can pass.",
        _write("docs/api.md", "# API reference\n\n::: textstats.word_count\n"),
        out=420,
    )
    s1.turn("Building again.", _bash("mkdocs build --strict", MKDOCS_OK, ms=1650), out=220)
    s1.turn(
        "The build passes.",
        _git_commit(
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
            ("site-builds", "command", "pass", _check("mkdocs build --strict", "pass", MKDOCS_OK, 1.71)),
            (
                "api-reference",
                "command",
                "fail",
                _check(
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
                _rubric(
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
        _read("docs/api.md", "# API reference\n\n::: textstats.word_count\n"),
        out=380,
    )
    s2.turn("Adding them.", _write("docs/api.md", API_MD), out=360)
    s2.turn("Now the install step in the quickstart.", _write("docs/quickstart.md", QUICKSTART_2), out=900)
    s2.turn(
        "Checking the API page and the build.",
        _bash("python scripts/check_api_pages.py && mkdocs build --strict", MKDOCS_OK, ms=1910),
        out=240,
    )
    s2.turn(
        "Both pass.",
        _git_commit(
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
            ("site-builds", "command", "pass", _check("mkdocs build --strict", "pass", MKDOCS_OK, 1.68)),
            (
                "api-reference",
                "command",
                "pass",
                _check("python scripts/check_api_pages.py", "pass", "", 0.11),
            ),
            (
                "quickstart",
                "llm",
                "pass",
                _rubric(
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


# --- research-notes -----------------------------------------------------------------------------

NOTES_SPEC = """\
name = "research-notes"
goal = '''
Summarise the twelve papers in papers/ into notes/, one Markdown file per paper with its claims,
its method and its key numbers, and an index in notes/README.md that links them all.
'''
workspace = "~/research-notes"

[worker]
model = "claude-sonnet-5-5"
max_tokens = 8192

[session]
time_box = "40m"
wrap_up = "5m"

[schedule]
mode = "back_to_back"
cooldown = "10m"

[budget]
usd = 4.0

[[features]]
id = "notes-complete"
description = "Every PDF in papers/ has a note in notes/ with Claims, Method and Numbers sections."
check = "python tools/check_notes.py"

[[features]]
id = "index"
description = "notes/README.md links every note, one line per paper."
check = "python tools/check_index.py"

[[features]]
id = "faithful"
description = "The notes say what the papers say."
rubric = "Each note's numbers and claims appear in its paper; nothing is invented or overstated."
"""

PAPERS = [
    "01-attention.pdf",
    "02-scaling-laws.pdf",
    "03-chinchilla.pdf",
    "04-instructgpt.pdf",
    "05-constitutional-ai.pdf",
    "06-retrieval.pdf",
    "07-long-context-survey.pdf",
    "08-mixture-of-experts.pdf",
    "09-speculative-decoding.pdf",
    "10-flash-attention.pdf",
    "11-lora.pdf",
    "12-evals.pdf",
]

CHECK_NOTES = '''\
"""Fail unless every paper has a note with Claims, Method and Numbers sections."""

import sys
from pathlib import Path

missing = []
for paper in sorted(Path("papers").glob("*.pdf")):
    note = Path("notes") / f"{paper.stem}.md"
    text = note.read_text() if note.exists() else ""
    if not all(f"## {part}" in text for part in ("Claims", "Method", "Numbers")):
        missing.append(paper.name)
if missing:
    sys.exit(f"{len(missing)} of 12 papers have no complete note: {', '.join(missing)}")
'''


def _note(title: str) -> str:
    return f"# {title}\n\n## Claims\n\n- …\n\n## Method\n\n- …\n\n## Numbers\n\n- …\n"


def _research_notes(story: _Story) -> None:
    day = SEED_NOW.replace(hour=0)
    run = story.create_run(
        RUN_FAILED,
        NOTES_SPEC,
        when=day + timedelta(minutes=55, seconds=8),
        first_files={
            "papers/README.md": "The PDFs are not in git (see papers/fetch.sh).\n"
            + "".join(f"- {p}\n" for p in PAPERS),
            "tools/check_notes.py": CHECK_NOTES,
            "tools/check_index.py": '"""Fail unless notes/README.md links every note."""\n',
        },
        first_message="Papers list and the checks for the notes",
    )
    rubric = run.spec.features[2].rubric or ""
    story.start(run, day + timedelta(minutes=56))

    s1 = story.session(run, day + timedelta(minutes=56, seconds=1), "started", 20914)
    s1.turn("Listing the papers.", _bash("ls papers", "\n".join(PAPERS) + "\nREADME.md", ms=5), out=200)
    done: dict[str, str] = {}
    for paper in PAPERS[:5]:
        stem = paper.removesuffix(".pdf")
        s1.turn(
            f"Extracting the text of {paper}.",
            _bash(
                f"pdftotext -layout papers/{paper} - | head -c 60000",
                f"[{stem}: 60000 bytes of text]",
                ms=2300,
            ),
            out=300,
        )
        done[f"notes/{stem}.md"] = _note(stem.split("-", 1)[1].replace("-", " ").title())
        s1.turn(
            f"Writing the note for {paper}.", _write(f"notes/{stem}.md", done[f"notes/{stem}.md"]), out=2400
        )
    s1.turn(
        "Five notes written; committing them.", _git_commit("Notes for papers 01 to 05", dict(done)), out=260
    )
    s1.handoff(
        "",
        {
            "done": ["notes for papers 01-05"],
            "next": ["notes for papers 06-12", "notes/README.md index"],
            "blockers": [],
            "notes": "pdftotext -layout works well; 07 is a 900-page scanned survey, read it in pieces.",
        },
    )
    s1.turn("Handoff left for the next session.", out=140)
    cp = s1.end("finished", "the model ended its turn")
    incomplete = "7 of 12 papers have no complete note: " + ", ".join(PAPERS[5:])
    verdicts = [
        (
            "notes-complete",
            "command",
            "fail",
            _check("python tools/check_notes.py", "fail", incomplete, 0.09),
        ),
        (
            "index",
            "command",
            "fail",
            _check("python tools/check_index.py", "fail", "notes/README.md: not found", 0.08),
        ),
        (
            "faithful",
            "llm",
            "pass",
            _rubric(
                rubric,
                "pass",
                "The five notes quote their papers' numbers exactly and claim nothing the papers do not.",
                [("numbers appear in the paper", True, ""), ("nothing invented or overstated", True, "")],
                "the start of the run",
                9310,
            ),
        ),
    ]
    statuses = story.judge(run, s1, cp, verdicts, {"faithful": (11890, 410)})
    story.settle(run, s1, statuses, {})
    carried = {
        "carried_from": cp.id,
        "rationale": f"nothing in the workspace changed since checkpoint {cp.id}, where it passed",
        "rubric": rubric,
    }
    verdicts[2] = ("faithful", "llm", "pass", carried)
    story.next_session(run, s1)
    before = dict(statuses)

    for n, pid, minutes in ((2, 22307, 10), (3, 23561, 10)):
        live = story.session(
            run, story.now + timedelta(minutes=minutes), "cooldown of 600s after the last session", pid
        )
        live.turn(
            "Papers 06 and 07 next. 07 is a long scan; extracting it a few pages at a time.",
            _bash(
                "pdftotext -layout -f 1 -l 40 papers/07-long-context-survey.pdf - | wc -c", "184220", ms=5100
            ),
            out=420,
        )
        live.turn(
            "The first 40 pages are fine. The whole file at once, to find its tables.",
            Call(
                "bash",
                {"command": "pdftotext -layout papers/07-long-context-survey.pdf /tmp/07.txt"},
                interrupted=True,
            ),
            out=300,
        )
        story.later(1.2)
        live.beat()
        story.later(25 * 60 + 6)
        cp = live.end("its heartbeat stopped", "", state=SessionState.crashed)
        statuses = story.judge(run, live, cp, verdicts, {})
        story.settle(run, live, statuses, before)
        if n == 2:
            story.next_session(run, live)
    story.set_state(
        run,
        RunState.failed,
        "sessions 2 and 3 crashed while pdftotext read papers/07-long-context-survey.pdf (a 900-page "
        "scan): it needs OCR and more memory than the session has",
        due_at=None,
        next_session_at=None,
        next_reason=None,
    )
    run.repo.write_refs()


# --- migrate-orm --------------------------------------------------------------------------------

ORM_SPEC = """\
name = "migrate-orm"
goal = '''
Move the billing service's data access from hand-written SQL to SQLAlchemy 2.0 ORM models, with
the existing test suite passing and no query in billing/ built by string formatting.
'''
workspace = "~/billing-service"

[worker]
model = "claude-sonnet-5-5"
max_tokens = 8192

[session]
time_box = "45m"
wrap_up = "5m"

[schedule]
mode = "back_to_back"
cooldown = "5m"

[budget]
usd = 1.2
per_session_usd = 0.6

[breakers]
no_progress_sessions = 2

[judge]
model = "claude-haiku-5-5"

[[features]]
id = "models"
description = "billing/models.py declares Invoice, Payment and Customer as mapped classes."
check = "python -m pytest -q tests/test_models.py"

[[features]]
id = "repositories"
description = "The invoice and payment repositories query through the ORM and their tests pass."
check = "python -m pytest -q tests/test_invoices.py tests/test_payments.py"

[[features]]
id = "no-raw-sql"
description = "No query in billing/ is built with an f-string or % formatting."
check = "! grep -rnE 'execute\\\\((f\\"|\\"[^\\"]*%)' billing/"

[[features]]
id = "migration-notes"
description = "MIGRATION.md says what changed for the people who call the service."
rubric = "MIGRATION.md lists every changed public function with its old and new signature."
"""

REPO_SQL = """\
def invoices_for(conn, customer_id):
    return conn.execute(f"SELECT * FROM invoice WHERE customer_id = {customer_id}").fetchall()
"""

MODELS = """\
from datetime import date
from decimal import Decimal

from sqlalchemy import ForeignKey
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customer"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str]
    invoices: Mapped[list["Invoice"]] = relationship(back_populates="customer")


class Invoice(Base):
    __tablename__ = "invoice"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customer.id"))
    issued_on: Mapped[date]
    total: Mapped[Decimal]
    customer: Mapped[Customer] = relationship(back_populates="invoices")


class Payment(Base):
    __tablename__ = "payment"
    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoice.id"))
    amount: Mapped[Decimal]
"""

PYTEST_INVOICES_FAIL = """\
....F..F                                                                 [100%]
=================================== FAILURES ===================================
__________________________ test_overdue_invoices_sorted __________________________
E       sqlalchemy.exc.ArgumentError: Textual SQL expression 'issued_on < :cutoff' should be
E       explicitly declared as text('issued_on < :cutoff')
________________________ test_payment_totals_per_customer ________________________
E       AssertionError: assert Decimal('120.5') == Decimal('240.50')
=========================== short test summary info ============================
FAILED tests/test_invoices.py::test_overdue_invoices_sorted - sqlalchemy.exc.ArgumentError
FAILED tests/test_payments.py::test_payment_totals_per_customer - AssertionError
2 failed, 6 passed in 0.84s"""


def _migrate_orm(story: _Story) -> None:
    day = SEED_NOW.replace(hour=0)
    run = story.create_run(
        RUN_PAUSED,
        ORM_SPEC,
        when=day + timedelta(hours=2, minutes=4, seconds=40),
        first_files={
            "billing/__init__.py": "",
            "billing/invoices.py": REPO_SQL,
            "tests/test_models.py": "from billing.models import Customer, Invoice, Payment\n",
        },
        first_message="Billing service as it stands before the ORM",
    )
    run.context_tokens = 46_000
    rubric = run.spec.features[3].rubric or ""
    story.start(run, day + timedelta(hours=2, minutes=5))
    no_raw = run.spec.features[2].check or ""

    def verdicts(
        models: str, repos: str, raw_sql: str, base: str, size: int
    ) -> list[tuple[str, str, str, dict[str, Any]]]:
        return [
            (
                "models",
                "command",
                models,
                _check(
                    "python -m pytest -q tests/test_models.py",
                    models,
                    _ok(4, "0.31")
                    if models == "pass"
                    else "E   ModuleNotFoundError: No module named 'billing.models'",
                    0.9,
                ),
            ),
            (
                "repositories",
                "command",
                repos,
                _check(run.spec.features[1].check or "", repos, PYTEST_INVOICES_FAIL, 1.6),
            ),
            (
                "no-raw-sql",
                "command",
                raw_sql,
                _check(
                    no_raw,
                    raw_sql,
                    "billing/invoices.py:2:    " + REPO_SQL.splitlines()[1].strip(),
                    0.02,
                ),
            ),
            (
                "migration-notes",
                "llm",
                "fail",
                _rubric(
                    rubric,
                    "fail",
                    "There is no MIGRATION.md.",
                    [("every changed public function is listed", False, "")],
                    base,
                    size,
                ),
            ),
        ]

    # Session 1: the models pass. Sessions 2 and 3 make no feature pass; session 3 runs out of budget.
    s1 = story.session(run, day + timedelta(hours=2, minutes=5, seconds=1), "started", 21733)
    s1.turn("Reading the current data access code.", _read("billing/invoices.py", REPO_SQL), out=900)
    s1.turn("Declaring the three mapped classes first.", _write("billing/models.py", MODELS), out=3100)
    s1.turn(
        "Running the model tests.",
        _bash("python -m pytest -q tests/test_models.py", _ok(4, "0.31"), ms=1400),
        out=300,
    )
    s1.turn(
        "They pass.",
        _git_commit("Declare Customer, Invoice and Payment as ORM models", {"billing/models.py": MODELS}),
        out=280,
    )
    s1.turn(
        "Now the invoice repository.",
        _bash(
            "python -m pytest -q tests/test_invoices.py tests/test_payments.py",
            PYTEST_INVOICES_FAIL,
            is_error=True,
            ms=2100,
        ),
        out=2600,
    )
    s1.handoff(
        "",
        {
            "done": ["billing/models.py with the three mapped classes"],
            "next": ["port billing/invoices.py and billing/payments.py to select()"],
            "blockers": [],
            "notes": "Two repository tests fail: a textual where-clause and totals summed as floats.",
        },
        out=1200,
    )
    s1.turn("Handoff written.", out=140)
    cp = s1.end("finished", "the model ended its turn")
    statuses = story.judge(
        run,
        s1,
        cp,
        verdicts("pass", "fail", "fail", "the start of the run", 3310),
        {"migration-notes": (4210, 300)},
    )
    story.settle(run, s1, statuses, {})
    story.next_session(run, s1)
    before = dict(statuses)

    attempts = (
        ("The overdue query needs text() or, better, a real column expression.", "billing/invoices.py"),
        (
            "Totals must be Decimal end to end; the float comes from func.sum over a REAL column.",
            "billing/payments.py",
        ),
        ("Trying the repository tests again.", None),
        ("The same two failures. Looking at how the fixtures create the tables.", "tests/conftest.py"),
        (
            "The fixtures still create the tables with raw DDL, typed REAL. Switching them to Base.metadata.",
            "tests/conftest.py",
        ),
        ("Running the whole suite.", None),
    )
    limit = run.spec.budget.usd or 0.0
    for n, pid in ((2, 22980), (3, 24417)):
        live = story.session(
            run, story.now + timedelta(minutes=5), "cooldown of 300s after the last session", pid
        )
        warned = False
        stop = False
        for round_ in range(4):
            for text, path in attempts:
                if path is None:
                    call = _bash(
                        "python -m pytest -q tests/test_invoices.py tests/test_payments.py",
                        PYTEST_INVOICES_FAIL,
                        is_error=True,
                        ms=2050,
                    )
                else:
                    call = _read(path, f"[{path}: {120 + 17 * round_} lines]")
                live.turn(text, call, out=2900)
                story.flush()
                spent = runs.get_run(story.store, run.id).usage.usd
                if spent >= limit * run.spec.budget.warn_at and not warned:
                    warned = True
                    story.event(
                        run.id,
                        "budget_warning",
                        {
                            "cap": "usd",
                            "limit": limit,
                            "spent": round(spent, 6),
                            "warn_at": run.spec.budget.warn_at,
                        },
                        live.id,
                    )
                if n == 3 and spent > limit - 0.1:
                    stop = True
                    break
            if stop or (n == 2 and round_ == 1):
                break
        if n == 2:
            live.handoff(
                "",
                {
                    "done": ["the fixtures build the tables from Base.metadata"],
                    "next": ["find why payment totals are still halved"],
                    "blockers": [
                        "test_payment_totals_per_customer: the totals are half of what the test expects"
                    ],
                    "notes": "test_overdue_invoices_sorted still fails on a textual where-clause "
                    "somewhere in the fixtures.",
                },
                out=1300,
            )
            cp = live.end("finished", "the model ended its turn")
        else:
            spent = runs.get_run(story.store, run.id).usage.usd
            input_bound = 61_412
            story.event(
                run.id,
                "budget_stop",
                {
                    "cap": "usd",
                    "limit": limit,
                    "spent": round(spent, 6),
                    "input_bound": input_bound,
                    "max_tokens": 8192,
                },
                live.id,
            )
            detail = (
                "the next model call would not fit in what is left of budget.usd "
                f"({spent:.4f} of {limit:g} spent)"
            )
            cp = live.end("budget", detail, cap="usd")
        statuses = story.judge(
            run,
            live,
            cp,
            verdicts("pass", "fail", "fail", f"checkpoint {cp.id}", 5120),
            {"migration-notes": (5933, 290)},
        )
        story.settle(run, live, statuses, before)
        if n == 2:
            story.next_session(run, live)

    trip = no_progress_trip(run.spec.breakers, [True, False, False], half_open=False)
    assert trip is not None and trip.name == OPEN_BREAKER
    story.flush()
    with story.store.writing() as conn:
        runs.set_breaker(conn, run.id, trip.name, "open", trip.reason)
        log.append(
            conn, run.id, "breaker_tripped", {"breaker": trip.name, **trip.numbers}, session_id=live.id
        )
        reason = f"budget.usd is spent: waiting for a raise (`longrun budget set {run.id} --usd N`)"
        runs.set_run_state(conn, run.id, RunState.awaiting_approval, reason)
        approval = runs.add_approval(conn, run.id, "budget_raise", {"cap": "usd", "detail": detail}, live.id)
    assert approval == APPROVAL_BUDGET
    story.at(day + timedelta(hours=5, minutes=50, seconds=12))
    story.set_state(
        run, RunState.paused, f"paused by {WHO}", due_at=None, next_session_at=None, next_reason=None
    )
    story.event(run.id, "paused", {"by": WHO, "sessions_told_to_wrap_up": []})
    story.flush()
    run.repo.write_refs()
