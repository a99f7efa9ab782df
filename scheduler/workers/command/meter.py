"""The metering proxy a command's Anthropic API calls go through (`ANTHROPIC_BASE_URL`).

Each call is admitted against every budget cap before it leaves (its `max_tokens` lowered to
what fits, never above `worker.max_tokens`, or refused), and its usage comes back as a
`model_call` event priced by longrun's table, as for Claude Code. The real credentials stay
with the proxy: the command gets a placeholder key. With `script`, the upstream is the scripted
model server, so a command built on the SDK runs with no key and no network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from longrun.scheduler.workers.base import Reporter, WorkerHooks, WorkerSetup
from longrun.scheduler.workers.claude_code.auth import PLACEHOLDER, cli_credentials
from longrun.scheduler.workers.command.spec import CommandWorkerSpec
from longrun.scheduler.workers.metered import report_calls
from longrun.store.errors import BudgetExhausted

if TYPE_CHECKING:
    from longrun.scheduler.endpoints.metering import LimitHit, Metered, MeteringProxy
    from longrun.scheduler.endpoints.scripted import ScriptedModelServer

API = "https://api.anthropic.com"
SCRIPTED_KEY = "scripted-model-needs-no-key"


class Meter:
    """One session's proxy, started before the command and stopped after it."""

    def __init__(
        self, spec: CommandWorkerSpec, setup: WorkerSetup, hooks: WorkerHooks, report: Reporter
    ) -> None:
        self.spec = spec
        self.setup = setup
        self.hooks = hooks
        self.report = report
        self.refused: list[BudgetExhausted] = []
        self.limits: list[LimitHit] = []
        self.proxy: MeteringProxy | None = None
        self.server: ScriptedModelServer | None = None

    def start(self) -> tuple[str, str]:
        """Serve the proxy on loopback; (its base URL, the API key to give the command)."""
        from longrun.scheduler.endpoints.metering import MeteringProxy

        _, credentials = cli_credentials()
        key = PLACEHOLDER
        if self.spec.script is not None:
            from longrun.scheduler.endpoints.scripted import ScriptedModelServer, load_script

            script = load_script(self.spec.script, self.setup.spec_dir)
            self.server = ScriptedModelServer(script, first_session=self.setup.session_n - 1)
            upstream = self.server.start()
            self.report.event("scripted_model", {"script": self.spec.script, "base_url": upstream})
            credentials, key = {}, SCRIPTED_KEY
        else:
            upstream = self.spec.base_url or API
        self.proxy = MeteringProxy(
            upstream,
            self._admit,
            self._record,
            on_limit=self.limits.append,
            on_refused=self.refused.append,
            credentials=credentials,
        )
        return self.proxy.start(), key

    def _admit(self, body: dict[str, Any], counted: int | None) -> dict[str, Any]:
        """The spec's `max_tokens` bounds every call, whatever the command asks for."""
        ceiling = self.spec.max_tokens
        if int(body.get("max_tokens") or ceiling) > ceiling:
            body = {**body, "max_tokens": ceiling}
        return self.hooks.check_call(body, counted)

    def _record(self, metered: Metered) -> None:
        """A call's usage goes into the store on the proxy's thread, before its reply is whole to
        the command (the proxy closes the connection after this): so the next call is admitted
        against a spend that counts this one, however fast the command calls again."""
        report_calls(self.report, [metered])

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
            self.report.event("proxy_usage", dict(self.proxy.totals))
        if self.server is not None:
            self.server.stop()
