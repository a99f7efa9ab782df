"""The `scripted` backend: the built-in agent, unchanged, against the scripted model server.

The server is started on loopback for the session and stopped with it, so the demo and the
tests run the real SDK and the real agent with no network and no key. Its table adds one key,
`script`, to the common `[worker]` keys.
"""

from __future__ import annotations

from pydantic import StrictStr, ValidationInfo, field_validator

from longrun.scheduler.spec.keys import spec_key
from longrun.scheduler.spec.worker import WorkerSpec, script_ref
from longrun.scheduler.workers.base import (
    Reporter,
    Worker,
    WorkerHooks,
    WorkerOutcome,
    WorkerSetup,
    WorkerTask,
)

SCRIPTED_KEY = "scripted-model-needs-no-key"
"""The scripted server takes any key; the SDK insists on one."""


class ScriptedWorkerSpec(WorkerSpec):
    """`[worker]` with `backend = "scripted"`."""

    script: StrictStr = spec_key(
        kind="a string",
        expected="a built-in script name or a path to a script file",
        meaning="a built-in script name or a path to a script file; "
        'required when worker.backend = "scripted"',
        pattern=r"\S",
    )

    @field_validator("script")
    @classmethod
    def _script_path(cls, value: str, info: ValidationInfo) -> str | None:
        return script_ref(value, info)


class ScriptedWorker:
    """Serves the script on loopback for one session and runs the built-in agent against it."""

    def __init__(self, spec: ScriptedWorkerSpec, setup: WorkerSetup) -> None:
        from longrun.scheduler.endpoints.scripted import load_script

        self.spec = spec
        self.script = load_script(spec.script, setup.spec_dir)
        self.first_session = setup.session_n - 1

    async def run(self, task: WorkerTask, hooks: WorkerHooks, report: Reporter) -> WorkerOutcome:
        from longrun.scheduler.endpoints.scripted import ScriptedModelServer
        from longrun.scheduler.workers.anthropic_agent import AnthropicWorker

        server = ScriptedModelServer(self.script, first_session=self.first_session)
        base_url = server.start()
        report.event("scripted_model", {"script": self.spec.script, "base_url": base_url})
        try:
            return await AnthropicWorker(base_url=base_url, api_key=SCRIPTED_KEY).run(task, hooks, report)
        finally:
            server.stop()


def make_worker(spec: WorkerSpec, setup: WorkerSetup) -> Worker:
    assert isinstance(spec, ScriptedWorkerSpec)
    return ScriptedWorker(spec, setup)
