"""A new backend is one module and one registry line: this file is the module (a worker that
writes a line into the workspace), `register` is the line, and a real session runs it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from pydantic import StrictStr

from longrun.scheduler.control import create_run_from_file
from longrun.scheduler.judging.judge import judge_checkpoint
from longrun.scheduler.session.harness import run_session
from longrun.scheduler.spec.keys import spec_key
from longrun.scheduler.spec.run import RunSpec
from longrun.scheduler.spec.worker import WorkerSpec
from longrun.scheduler.workers import registry
from longrun.scheduler.workers.base import (
    EndReason,
    Reporter,
    Worker,
    WorkerHooks,
    WorkerOutcome,
    WorkerSetup,
    WorkerTask,
)
from longrun.store import log, runs
from longrun.store.db import Store
from longrun.store.errors import SpecError

# --- the module: a backend's table and its worker ----------------------------------------------


class EchoWorkerSpec(WorkerSpec):
    """`[worker]` with `backend = "echo"`: one key of its own."""

    line: StrictStr = spec_key(kind="a string", expected="a line of text", meaning="what to write")


class EchoWorker:
    def __init__(self, spec: EchoWorkerSpec, setup: WorkerSetup) -> None:
        self.spec = spec
        self.setup = setup

    async def run(self, task: WorkerTask, hooks: WorkerHooks, report: Reporter) -> WorkerOutcome:
        (task.workspace / "echo.txt").write_text(self.spec.line + "\n")
        report.event("note", {"text": f"echoed in session {self.setup.session_n} of {self.setup.run_id}"})
        hooks.handoff({"done": ["wrote echo.txt"], "next": [], "blockers": [], "notes": self.spec.line})
        return WorkerOutcome(EndReason.finished, "echoed")


def make_echo_worker(spec: WorkerSpec, setup: WorkerSetup) -> Worker:
    assert isinstance(spec, EchoWorkerSpec)
    return EchoWorker(spec, setup)


# --- the tests --------------------------------------------------------------------------------


@pytest.fixture
def echo_backend(monkeypatch: pytest.MonkeyPatch) -> registry.Backend:
    backend = registry.Backend("echo", EchoWorkerSpec, f"{__name__}:make_echo_worker")
    monkeypatch.setattr(registry, "BACKENDS", dict(registry.BACKENDS))
    registry.register(backend)
    return backend


def _spec(tmp_path: Path, worker: str) -> Path:
    (tmp_path / "workspace").mkdir(exist_ok=True)
    spec = tmp_path / "longrun.toml"
    spec.write_text(
        'name = "echo-run"\ngoal = "Write echo.txt."\nworkspace = "workspace"\n'
        f"[worker]\n{worker}\n"
        '[session]\ntime_box = "2m"\nwrap_up = "20s"\n[budget]\nusd = 1.0\n'
        '[[features]]\nid = "echo"\ndescription = "echo.txt says hello."\n'
        "check = \"grep -qx 'hello from a new backend' echo.txt\"\n"
    )
    return spec


def test_a_registered_backend_runs_a_real_session_and_is_judged(
    store: Store, tmp_path: Path, echo_backend: registry.Backend
) -> None:
    run = create_run_from_file(store, _spec(tmp_path, 'backend = "echo"\nline = "hello from a new backend"'))
    limits = RunSpec.model_validate(run.spec).session
    session = runs.create_session(store, run.id, time_box=limits.time_box, wrap_up=limits.wrap_up)
    outcome = asyncio.run(run_session(store, session.id))
    assert outcome.reason == EndReason.finished
    ended = runs.get_session(store, session.id)
    assert ended.state == "ended" and ended.end_reason == "finished"
    notes = [e.data["text"] for e in log.read_events(store, run.id, kinds=["note"])]
    assert f"echoed in session 1 of {run.id}" in notes
    judgement = judge_checkpoint(store, run.id, session_id=session.id)
    assert judgement.statuses == {"echo": "pass"}


def test_the_spec_knows_the_new_backend_and_its_keys_from_the_registry(
    store: Store, tmp_path: Path, echo_backend: registry.Backend
) -> None:
    with pytest.raises(SpecError, match='only used when worker.backend = "echo"'):
        create_run_from_file(store, _spec(tmp_path, 'backend = "anthropic"\nline = "hi"'))
    with pytest.raises(SpecError, match='"echo"'):
        create_run_from_file(store, _spec(tmp_path, 'backend = "nonesuch"'))
    with pytest.raises(SpecError, match="line"):
        create_run_from_file(store, _spec(tmp_path, 'backend = "echo"'))
    assert "echo" not in registry.model_backends()
