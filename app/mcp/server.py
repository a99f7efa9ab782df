"""The MCP server: longrun's store and control verbs as tools, each a thin call into
`scheduler.control` or the store's read functions.

Reads: `list_runs`, `get_status`, `rehydrate` (the resume context, built by the function a session
builds it with), `list_checkpoints`, `list_approvals`. Writes, each through the event log:
`decide` (served only with `--allow-decisions`), `answer`, `record_handoff`, `report_progress`.
Whatever a tool changes is recorded as done by `mcp:<the client's name>`, the name the MCP client
gave in its `initialize` (Claude Code's is `claude-code`).

A tool that fails says why in one line, as the CLI does: a `LongrunError`'s message as it is, an
argument that does not fit its schema as `TOOL: argument NAME: what is wrong`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from mcp.server.auth.provider import TokenVerifier
from mcp.server.auth.settings import AuthSettings
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, InputRequiredResult, ToolAnnotations
from pydantic import Field, ValidationError

from longrun.app.mcp import resources, status
from longrun.scheduler import control
from longrun.scheduler.session.context import next_context
from longrun.store import runs
from longrun.store.db import Store
from longrun.store.errors import LongrunError

NAME = "longrun"
INSTRUCTIONS = (
    "longrun supervises AI agent work that outlasts any one session: runs, worked on by time-boxed "
    "sessions that resume from checkpoints, judged by an evaluator, inside budgets. Read a run with "
    "get_status and rehydrate (what its next session will be told); record work done outside a "
    "session with record_handoff; note progress with report_progress."
)
DECISION_TOOLS = ("decide",)
"""Tools that approve or deny what waits for a person: served only with `--allow-decisions`."""
CLIENT_NAME_CHARS = 64

RunRef = Annotated[str, Field(description="The run's id, a unique prefix of its id, or its name.")]
Items = Annotated[list[str], Field(description="One item per line of work.")]
READ = ToolAnnotations(read_only_hint=True, open_world_hint=False)
WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=False, open_world_hint=False)


class LongrunMCP(MCPServer[Any]):
    """An MCPServer whose tools fail in one line (see the module's docstring)."""

    def __init__(
        self,
        *,
        allow_decisions: bool,
        auth: AuthSettings | None = None,
        token_verifier: TokenVerifier | None = None,
    ) -> None:
        super().__init__(
            NAME,
            instructions=INSTRUCTIONS,
            log_level="WARNING",
            auth=auth,
            token_verifier=token_verifier,
        )
        self.allow_decisions = allow_decisions

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[Any, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        if name in DECISION_TOOLS and not self.allow_decisions:
            raise ToolError(
                f"{name} is not served: start the server with `longrun mcp --allow-decisions` "
                "to let MCP clients approve and deny"
            )
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            line = one_line_error(name, exc)
            if line is None:
                raise  # a crash: the SDK logs it and tells the client no more than its name
            raise ToolError(line) from None


def one_line_error(tool: str, error: ToolError) -> str | None:
    """What a failed call tells its client: a LongrunError's message, or the first argument that
    did not validate; None for a crash (anything else)."""
    cause = error.__cause__
    while isinstance(cause, ToolError) and cause.__cause__ is not None:
        cause = cause.__cause__
    if isinstance(cause, LongrunError):
        return cause.message
    if isinstance(cause, ValidationError):
        first = cause.errors(include_url=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "arguments"
        more = cause.error_count() - 1
        also = f" (and {more} more problem{'s' if more > 1 else ''})" if more else ""
        message = str(first["msg"])
        return f"{tool}: argument {where}: {message[:1].lower()}{message[1:]}{also}"
    if cause is None and not isinstance(error, UnexpectedToolError) and str(error):
        return str(error).splitlines()[0]  # the SDK's own, such as an unknown tool's name
    return None


def client_name(ctx: Context[Any, Any]) -> str:
    """Who a write is recorded as done by: `mcp:` and the name the client gave when it connected."""
    params = ctx.session.client_params
    given = params.client_info.name if params is not None else ""
    clean = "".join(ch for ch in given if ch.isprintable()).strip()[:CLIENT_NAME_CHARS]
    return f"mcp:{clean or 'unnamed-client'}"


def build_server(
    store: Store,
    *,
    allow_decisions: bool = False,
    auth: AuthSettings | None = None,
    token_verifier: TokenVerifier | None = None,
) -> LongrunMCP:
    """The server on `store`, its tools and resources registered (`decide` with `allow_decisions`);
    over HTTP, `auth` and `token_verifier` say who is let in."""
    server = LongrunMCP(allow_decisions=allow_decisions, auth=auth, token_verifier=token_verifier)
    _read_tools(server, store)
    _write_tools(server, store)
    if allow_decisions:
        _decision_tools(server, store)
    resources.register(server, store)
    return server


def _run_line(store: Store, run_id: str) -> dict[str, Any]:
    run = runs.get_run(store, run_id)
    return {"id": run.id, "name": run.name, "state": run.state, "why": run.state_reason}


def _read_tools(server: MCPServer[Any], store: Store) -> None:
    @server.tool(annotations=READ)
    def list_runs() -> dict[str, Any]:
        """Every run in the store, what needs a person first: its state and why, features passing,
        spend against the budget, the live session, the next session and why, open breakers and
        how many approvals wait."""
        return {"runs": status.run_list(store)}

    @server.tool(annotations=READ)
    def get_status(run: RunRef) -> dict[str, Any]:
        """A run's status: its state and why, the live session and the next one (when and why),
        the budget (every cap with what is spent and left), its breakers, each feature's status at
        the head checkpoint, and the approvals waiting for a person."""
        return status.run_status(store, run)

    @server.tool(annotations=READ)
    def rehydrate(
        run: RunRef,
        checkpoint: Annotated[
            int | None, Field(description="Resume from this checkpoint of the run (default: its head).")
        ] = None,
    ) -> str:
        """What the run's next session would be told if it started now: the goal, the
        done-condition with each feature's latest verdict, the last handoff, recent commits,
        decisions, and the budget and time left (from the head, or from `checkpoint`)."""
        return next_context(store, runs.get_run(store, run), checkpoint)

    @server.tool(annotations=READ)
    def list_checkpoints(
        run: RunRef,
        limit: Annotated[int, Field(ge=1, le=1000, description="At most this many, the newest.")] = 50,
    ) -> dict[str, Any]:
        """A run's checkpoints, oldest first (the newest `limit` of them): each one's commit,
        reason, parent, session, handoff, feature status and spend, and which is the head."""
        found = runs.get_run(store, run)
        every = runs.list_checkpoints(store, found.id)
        return {
            "run_id": found.id,
            "head_checkpoint_id": found.head_checkpoint_id,
            "total": len(every),
            "checkpoints": [c.to_json() for c in every[-limit:]],
        }

    @server.tool(annotations=READ)
    def list_approvals(
        run: Annotated[str | None, Field(description="Only this run's (id, id prefix or name).")] = None,
        include_decided: Annotated[bool, Field(description="Decided ones too, not only pending.")] = False,
    ) -> dict[str, Any]:
        """What waits for a person: each pending approval (with `include_decided`, every one) with
        its run, kind (tool call, question, budget raise, breaker reset, done-condition, sign-off,
        test ratchet), what it asks, and who decided it."""
        run_id = runs.get_run(store, run).id if run else None
        items = runs.list_approvals(store, run_id, state=None if include_decided else "pending")
        return {"approvals": [a.to_json() for a in items]}


def _write_tools(server: MCPServer[Any], store: Store) -> None:
    @server.tool(annotations=WRITE)
    def answer(
        question: Annotated[int, Field(description="The id of a pending approval of kind question.")],
        text: Annotated[str, Field(description="The answer; the next session goes on with it.")],
        ctx: Context[Any, Any],
    ) -> dict[str, Any]:
        """Answer a question a run's worker asked (ask_human); the run goes on with the answer."""
        approval = control.answer(store, question, text, by=client_name(ctx))
        return approval.to_json() | {"run": _run_line(store, approval.run_id)}

    @server.tool(annotations=WRITE)
    def record_handoff(
        run: RunRef,
        done: Items,
        next: Annotated[
            list[str], Field(description="What the next session should do, most important first.")
        ],
        ctx: Context[Any, Any],
        blockers: Annotated[
            list[str], Field(description="What stops progress and needs a person or a decision.")
        ] = [],  # noqa: B006 (pydantic copies a default)
        notes: Annotated[str, Field(description="Anything else the next session must know.")] = "",
    ) -> dict[str, Any]:
        """Hand off work done outside a session (by hand): checkpoint the run's workspace as it
        stands, with this note, as the run's new head. The next session starts from it."""
        handoff = control.handoff_of(done, next, blockers, notes)
        checkpoint = control.record_handoff(store, run, handoff, by=client_name(ctx))
        return checkpoint.to_json() | {"run": _run_line(store, checkpoint.run_id)}

    @server.tool(annotations=WRITE)
    def report_progress(
        run: RunRef,
        note: Annotated[str, Field(description="What was done or found, in a line or a few.")],
        ctx: Context[Any, Any],
    ) -> dict[str, Any]:
        """Write a progress note to the run's event log, with who wrote it."""
        who = client_name(ctx)
        found = runs.get_run(store, run)
        seq = control.report_progress(store, found.id, note, by=who)
        return {"run_id": found.id, "seq": seq, "kind": "progress", "by": who}


def _decision_tools(server: MCPServer[Any], store: Store) -> None:
    @server.tool(annotations=WRITE)
    def decide(
        approval: Annotated[int, Field(description="The id of a pending approval.")],
        decision: Literal["approve", "deny"],
        ctx: Context[Any, Any],
        comment: Annotated[str, Field(description="Why; the next session is told.")] = "",
    ) -> dict[str, Any]:
        """Approve or deny a pending approval (a tool call, a breaker reset, a done-condition, a
        sign-off, a test ratchet), once; it is recorded with the MCP client's name."""
        decided = control.decide(
            store, approval, approve=decision == "approve", by=client_name(ctx), comment=comment or None
        )
        return decided.to_json() | {"run": _run_line(store, decided.run_id)}
