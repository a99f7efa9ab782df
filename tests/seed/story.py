"""The writing machinery: the story's clock, its git repositories, tool calls, and `Story`, which
writes runs, sessions, checkpoints, verdicts and approvals in story order.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from longrun.scheduler.spec.load import parse_spec
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.models import RunState, clock_set_to
from longrun.store.runs import CheckpointView, SessionView, Usage, VerdictView
from seed.calls import digest
from seed.ids import AGENT, HAIKU, PERSON, SEED_NOW, WHO
from seed.live import Live


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
class Repo:
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
class SeedRun:
    id: str
    name: str
    spec: RunSpec
    repo: Repo
    since_checkpoint: list[dict[str, str]] = field(default_factory=list)
    """Agent commits since the last checkpoint, newest first (a checkpoint's `commits`)."""
    head_checkpoint: CheckpointView | None = None
    context_tokens: int = 2140
    """How big the cached prompt prefix starts (bigger for a bigger codebase)."""

    @property
    def workspace(self) -> Path:
        return self.repo.path


@dataclass
class _Pending:
    run_id: str
    kind: str
    data: dict[str, Any]
    session_id: int | None
    ts: datetime
    usage: Usage | None = None
    usage_session_id: int | None = None


class Story:
    """Writes the runs in story order; events are buffered and written in one transaction at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.clock = _Clock()
        self.pending: list[_Pending] = []
        self.runs: dict[str, SeedRun] = {}

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
    ) -> SeedRun:
        """A run as `longrun run create` makes it: a draft, its workspace a repository on the run's
        branch, and the workspace as it was as checkpoint `created`."""
        specs = Path.home() / "specs"
        specs.mkdir(parents=True, exist_ok=True)
        spec_path = specs / f"{run_id.removeprefix('r-')}.toml"
        spec_path.write_text(spec_text)
        spec = parse_spec(spec_text, source=str(spec_path), base_dir=spec_path.parent)
        repo = Repo(spec.workspace, f"longrun/{run_id}")
        repo.init()
        sha = repo.commit(first_message, first_files, when - timedelta(minutes=7), PERSON)
        self.flush()
        self.clock.now = when  # each run's story starts on its own clock; runs overlap in time
        run = SeedRun(run_id, spec.name, spec, repo, [{"sha": sha, "subject": first_message}])
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

    def start(self, run: SeedRun, when: datetime) -> None:
        self.at(when)
        self.flush()
        with self.store.writing() as conn:
            runs.set_run_state(conn, run.id, RunState.scheduled, f"started by {WHO}")
            runs.set_run_plan(
                conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason="started"
            )
            log.append(conn, run.id, "started", {"by": WHO})

    def set_state(self, run: SeedRun, state: str, reason: str, **plan: datetime | str | None) -> None:
        self.flush()
        with self.store.writing() as conn:
            runs.set_run_state(conn, run.id, state, reason)
            if plan:
                runs.set_run_plan(conn, run.id, **plan)

    def checkpoint(
        self, run: SeedRun, session: SessionView | None, reason: str, handoff: dict[str, Any] | None = None
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

    def session(self, run: SeedRun, when: datetime, due: str, pid: int) -> Live:
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
        live = Live(self, run, view)
        self.later(0.058)
        live.features_file()
        self.later(0.006)
        live.context()
        self.later(0.004)
        live.sandbox()
        return live

    def judge(
        self,
        run: SeedRun,
        live: Live,
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
                "request_id": f"req_01{digest(run.id, checkpoint.id, feature)[:22]}",
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
        run: SeedRun,
        live: Live,
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

    def next_session(self, run: SeedRun, live: Live) -> None:
        """Back to the schedule after a session: the next one after the cooldown."""
        cooldown = int(run.spec.schedule.cooldown.total_seconds())
        self.set_state(
            run,
            RunState.scheduled,
            f"session {live.view.n} ended",
            next_session_at=self.now + run.spec.schedule.cooldown,
            next_reason=f"cooldown of {cooldown}s after the last session",
        )
