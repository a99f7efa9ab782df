"""The MCP resources: a run's spec (`longrun://runs/{run}/spec`, as the run holds it now, budget
raises included) and its report (`longrun://runs/{run}/report`: the audit report's figures as
`longrun report` reads them, built when read, so always the latest), both JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ResourceError, ResourceNotFoundError

from longrun.store import runs
from longrun.store.db import Store
from longrun.store.errors import LongrunError, RunNotFound

SPEC_URI = "longrun://runs/{run}/spec"
REPORT_URI = "longrun://runs/{run}/report"
JSON = "application/json"


def _json(read: Callable[[], Any]) -> str:
    """`read()` as indented JSON; a LongrunError as the resource error of its one line."""
    try:
        return json.dumps(read(), indent=2, ensure_ascii=False, default=str)
    except RunNotFound as exc:
        raise ResourceNotFoundError(exc.message) from None
    except LongrunError as exc:
        raise ResourceError(exc.message) from None


def register(server: MCPServer[Any], store: Store) -> None:
    @server.resource(SPEC_URI, name="spec", title="A run's spec", mime_type=JSON)
    def spec(run: str) -> str:
        """The run's spec as it holds it now (goal, features, worker, session, budget, breakers,
        approvals), with where it was read from."""

        def read() -> dict[str, Any]:
            found = runs.get_run(store, run)
            return {"run_id": found.id, "spec_path": found.spec_path, "spec": found.spec}

        return _json(read)

    @server.resource(REPORT_URI, name="report", title="A run's audit report", mime_type=JSON)
    def report(run: str) -> str:
        """The run's audit report as of now: its summary (state, spend, tokens, calls, features
        passing, approvals, breaker trips, whether its hash chain is whole, the sandbox) and each
        session's outcome and spend."""
        from longrun.app.report.collect import collect

        return _json(lambda: collect(store, run).to_json())
