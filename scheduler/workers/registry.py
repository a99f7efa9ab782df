"""The worker registry: a spec's `[worker] backend` name, the table its keys are checked by, and the
worker that runs its sessions.

Adding a backend is one module (its worker, and its table when it has keys of its own) and one
line in `BACKENDS`. The spec's choice of backend, its messages and the rubric judge's choice of
model are all derived from here. A backend's worker is named by import path and imported only by
the session that runs it, so validating a spec never imports an SDK.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import ValidationError

from longrun.scheduler.spec.durations import toml_repr
from longrun.scheduler.spec.keys import Loc, Problems
from longrun.scheduler.spec.worker import WorkerSpec
from longrun.scheduler.workers.claude_code import ClaudeCodeWorkerSpec
from longrun.scheduler.workers.command import CommandWorkerSpec
from longrun.scheduler.workers.scripted import ScriptedWorkerSpec

if TYPE_CHECKING:
    from longrun.scheduler.workers.base import Worker, WorkerSetup


class WorkerFactory(Protocol):
    """Makes the worker of one session from its `[worker]` table; raises `LongrunError` with a
    one-line reason when it cannot (a missing key in the environment, say)."""

    def __call__(self, spec: Any, setup: WorkerSetup) -> Worker: ...


@dataclass(frozen=True)
class Backend:
    name: str
    table: type[WorkerSpec]
    """The `[worker]` table of this backend: `WorkerSpec` or a subclass with its own keys."""
    factory: str
    """`module:function`, a `WorkerFactory`, imported when a session runs this backend."""
    serves_model: bool = False
    """It talks to a Messages API endpoint of its own choosing, so the rubric judge can use it."""
    sandboxed: bool = False
    """Its worker runs its hands in the session's sandbox (`WorkerTask.sandbox`)."""

    def make(self, spec: WorkerSpec, setup: WorkerSetup) -> Worker:
        module, _, name = self.factory.partition(":")
        factory: WorkerFactory = getattr(importlib.import_module(module), name)
        return factory(spec, setup)


DEFAULT_BACKEND = "anthropic"

BACKENDS: dict[str, Backend] = {
    backend.name: backend
    for backend in (
        Backend("anthropic", WorkerSpec, "longrun.scheduler.workers.anthropic_agent:make_worker", True, True),
        Backend("scripted", ScriptedWorkerSpec, "longrun.scheduler.workers.scripted:make_worker", True, True),
        Backend(
            "claude-code",
            ClaudeCodeWorkerSpec,
            "longrun.scheduler.workers.claude_code.worker:make_worker",
            sandboxed=True,
        ),
        Backend(
            "command",
            CommandWorkerSpec,
            "longrun.scheduler.workers.command.worker:make_worker",
            sandboxed=True,
        ),
    )
}


def register(backend: Backend) -> None:
    """Add a backend (or replace one of the same name) for this process."""
    BACKENDS[backend.name] = backend


def backend_of(spec: WorkerSpec) -> Backend:
    return BACKENDS[spec.backend]


def model_backends() -> list[str]:
    """The backends the rubric judge can call a model through."""
    return [name for name, backend in BACKENDS.items() if backend.serves_model]


def worker_script(worker: WorkerSpec) -> str | None:
    """The script the worker's model plays, when it plays one (the scripted backend, or Claude
    Code on the scripted model)."""
    script = getattr(worker, "script", None)
    return script if isinstance(script, str) else None


def judge_backend(worker: WorkerSpec, judge_backend: str | None) -> str:
    """Where the rubric judge's model runs: the `[judge]` choice, else the worker's backend when it
    serves a model, else the scripted model when the worker plays a script, else the Anthropic API."""
    if judge_backend is not None:
        return judge_backend
    if BACKENDS[worker.backend].serves_model:
        return worker.backend
    return "scripted" if worker_script(worker) is not None else DEFAULT_BACKEND


def _names() -> str:
    return ", ".join(f'"{name}"' for name in BACKENDS)


def worker_table(value: Mapping[str, Any], context: Any) -> WorkerSpec:
    """Validate a `[worker]` table by its backend's table; every problem is a `Problems` item whose
    key path is relative to `[worker]`."""
    name = value.get("backend", DEFAULT_BACKEND)
    backend = BACKENDS.get(name) if isinstance(name, str) else None
    if backend is None:
        raise Problems.one(f"expected one of {_names()}, found {toml_repr(name)}", at=("backend",))
    problems: list[tuple[Loc, str]] = []
    for key in value:
        if key in backend.table.model_fields:
            continue
        owners = [other.name for other in BACKENDS.values() if key in other.table.model_fields]
        if owners:
            problems.append(
                (
                    (key,),
                    f'only used when worker.backend = "{owners[0]}", but backend is "{name}" '
                    f'(set backend = "{owners[0]}" or remove {key})',
                )
            )
    if problems:
        raise Problems(problems)
    try:
        return backend.table.model_validate(value, context=context)
    except ValidationError as exc:
        from longrun.scheduler.spec.messages import explained

        raise Problems(explained(exc, backend.table, at=("worker",))) from None
