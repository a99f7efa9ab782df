"""The approvals inbox: every request that waits for a person, exactly what it would do, and
approve / deny / answer with a comment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Group
from rich.syntax import Syntax
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Header, Static

from longrun.app.actions import RunActions
from longrun.app.format import ago, pretty, usd
from longrun.app.messages import Loaded
from longrun.app.screens.modals import DecideScreen, Decision
from longrun.app.widgets.footer import Footer
from longrun.app.widgets.statusbar import StatusBar
from longrun.scheduler import control
from longrun.store import runs
from longrun.store.board import Changes, RunRow
from longrun.store.runs import (
    ApprovalRequest,
    ApprovalView,
    BreakerResetRequest,
    BudgetRaiseRequest,
    DoneConditionRequest,
    QuestionRequest,
    RatchetRequest,
    SignOffRequest,
    ToolCallRequest,
)

if TYPE_CHECKING:
    from longrun.app.dashboard import LongrunApp

KINDS = {
    "tool_call": "tool call",
    "question": "question",
    "budget_raise": "budget raise",
    "breaker_reset": "breaker reset",
    "done_condition": "done-condition",
    "sign_off": "sign-off",
    "ratchet": "test ratchet",
}


class InboxTable(DataTable[Text]):
    BINDINGS = [
        Binding("j", "cursor_down", "Down", show=False, id="inbox_down"),
        Binding("k", "cursor_up", "Up", show=False, id="inbox_up"),
    ]


class InboxScreen(RunActions, Screen[None]):
    app: LongrunApp
    BINDINGS = [
        Binding("a", "decide('approve')", "Approve", tooltip="Approve (or answer a question)", id="approve"),
        Binding(
            "d", "decide('deny')", "Deny", tooltip="Deny, with a comment the next session is told", id="deny"
        ),
        Binding("t", "decide('answer')", "Answer", tooltip="Answer the worker's question", id="answer"),
        Binding("h", "history", "Decided too", tooltip="Show decided approvals as well", id="history"),
        Binding("o", "open_run", "Open run", tooltip="The run this approval belongs to", id="open_run"),
    ]

    def __init__(self, select: int | None = None) -> None:
        super().__init__()
        self.select = select
        self.all = False
        self.shown: list[ApprovalView] = []

    def compose(self) -> ComposeResult:
        yield Header(icon="◆")
        yield StatusBar()
        table = InboxTable(id="inbox", cursor_type="row", zebra_stripes=True)
        for label in ("#", "RUN", "KIND", "ASKED", "STATE", "WHAT"):
            table.add_column(label)
        yield table
        with VerticalScroll(id="approval-detail", can_focus=True):
            yield Static(id="approval")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "approvals"
        self.query_one(StatusBar).show(self.app)
        self.fill(self.app.pending)

    def store_changed(self, changes: Changes, first: bool) -> None:
        self.query_one(StatusBar).show(self.app)
        if self.all:
            self._read_all()
        elif [a.id for a in self.app.pending] != [a.id for a in self.shown]:
            self.fill(self.app.pending)

    def action_history(self) -> None:
        self.all = not self.all
        self.sub_title = "approvals, decided too" if self.all else "approvals"
        if self.all:
            self._read_all()
        else:
            self.fill(self.app.pending)

    def _read_all(self) -> None:
        def read() -> None:
            self.post_message(Loaded("inbox-all", runs.list_approvals(self.app.store)))

        self.run_worker(read, thread=True, exclusive=True, exit_on_error=False, group="inbox")

    def on_loaded(self, message: Loaded) -> None:
        if message.what == "inbox-all" and self.all:
            self.fill(sorted(message.data, key=lambda a: (a.state != "pending", -a.id)))

    def fill(self, approvals: list[ApprovalView]) -> None:
        table = self.query_one(InboxTable)
        keep = self.current()
        self.shown = list(approvals)
        table.clear()
        now = self.app.clock()
        from longrun.app.dashboard import describe_short

        for a in self.shown:
            row = self.app.rows.get(a.run_id)
            state = Text(a.state, style="bold #ffb86c" if a.state == "pending" else "dim")
            table.add_row(
                Text(str(a.id), style="bold"),
                Text(row.name if row else a.run_id),
                Text(KINDS.get(a.kind, a.kind)),
                Text(ago(a.requested_at, now)),
                state,
                Text(describe_short(a)),
                key=str(a.id),
            )
        want = self.select or (keep.id if keep else None)
        self.select = None
        index = next((i for i, a in enumerate(self.shown) if a.id == want), 0)
        if self.shown:
            table.move_cursor(row=index, animate=False)
        self.show_detail()

    def current(self) -> ApprovalView | None:
        table = self.query_one(InboxTable)
        if not self.shown or not table.row_count:
            return None
        return self.shown[min(table.cursor_row, len(self.shown) - 1)]

    def current_row(self) -> RunRow | None:
        approval = self.current()
        return self.app.rows.get(approval.run_id) if approval else None

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self.show_detail()

    def show_detail(self) -> None:
        approval = self.current()
        detail = self.query_one("#approval", Static)
        if approval is None:
            detail.update(Text("Nothing waits for you.", style="dim"))
            return
        detail.update(what_would_happen(approval, self.app.rows.get(approval.run_id), self.app.clock()))

    # --- deciding -------------------------------------------------------------------------------

    def action_decide(self, verb: str) -> None:
        approval = self.current()
        if approval is None:
            self.app.notify("Nothing to decide.", severity="warning")
            return
        if approval.state != "pending":
            self.app.notify(
                f"Approval {approval.id} was already {approval.state} by {approval.decided_by}.",
                severity="warning",
            )
            return
        if approval.kind == "question" and verb == "approve":
            verb = "answer"
        if verb == "answer" and approval.kind != "question":
            self.app.notify(
                f"Approval {approval.id} is not a question: approve (a) or deny (d) it.", severity="warning"
            )
            return
        if approval.kind == "budget_raise" and verb == "approve":
            self.act_on_run("budget")
            return
        row = self.app.rows.get(approval.run_id)
        from longrun.app.dashboard import describe_short

        title = f"approval {approval.id} of {row.name if row else approval.run_id}"
        what = what_would_happen(approval, row, self.app.clock())
        asks = approval.asks
        choices = [str(c) for c in asks.choices or []] if isinstance(asks, QuestionRequest) else []

        def decided(decision: Decision | None) -> None:
            if decision is None:
                return
            store, who = self.app.store, self.app.who
            said = f"Approval {approval.id} ({describe_short(approval)})"
            if decision.verb == "answer":
                self.app.act(f"{said} answered", control.answer, store, approval.id, decision.text, by=who)
            else:
                self.app.act(
                    f"{said} {'approved' if decision.verb == 'approve' else 'denied'}",
                    control.decide,
                    store,
                    approval.id,
                    approve=decision.verb == "approve",
                    by=who,
                    comment=decision.text or None,
                )

        self.app.push_screen(DecideScreen(verb, title, what, choices), decided)

    def action_open_run(self) -> None:
        approval = self.current()
        if approval is not None:
            self.app.open_run(approval.run_id)


def what_would_happen(approval: ApprovalView, row: RunRow | None, now: Any) -> Group:
    """An approval for a person: what asked, why, and exactly what approving it does."""
    head = Text(f"Approval {approval.id} · {KINDS.get(approval.kind, approval.kind)}", style="bold")
    head.append(f" · {row.name if row else approval.run_id}", style="bold #8be9fd")
    head.append(f" · asked {ago(approval.requested_at, now)}", style="dim")
    if approval.state != "pending":
        head.append(f"\n{approval.state} by {approval.decided_by}", style="bold")
        if approval.comment:
            head.append(f": {approval.comment}")
    return Group(head, *_request_parts(approval.asks, row))


def _request_parts(asks: ApprovalRequest, row: RunRow | None) -> list[Any]:
    """What a request of each kind asks, and what approving or denying it does."""
    match asks:
        case ToolCallRequest():
            return _tool_call_parts(asks)
        case QuestionRequest():
            parts: list[Any] = [Text(f"\n{asks.question}", style="bold")]
            if asks.why:
                parts.append(Text(f"Why it asks: {asks.why}"))
            parts.extend(Text(f"  {i}. {choice}") for i, choice in enumerate(asks.choices or [], start=1))
            return [*parts, _effect("\nAnswer (a or t): your answer goes back to the worker as the reply.")]
        case BudgetRaiseRequest():
            spent = f"{usd(row.spent_usd)} of {usd(row.budget_usd or 0, 2)}" if row else "?"
            parts = [Text(f"\nbudget.{asks.cap} is spent: {spent}.")]
            if asks.detail:
                parts.append(Text(str(asks.detail), style="dim"))
            return [
                *parts,
                _effect("\nApprove (a): set a new cap; the run goes on. Deny: the run is paused."),
            ]
        case BreakerResetRequest():
            detail = (asks.model_extra or {}).get("detail")
            return [
                Text(f"\nBreaker {asks.breaker} tripped and stopped the run."),
                *([Text(f"  {detail}")] if detail else []),
                _effect(
                    "\nApprove: the breaker goes half-open; the next session is a trial and one more bad "
                    "sign opens it again. Deny: the run is paused."
                ),
            ]
        case DoneConditionRequest():
            return _done_condition_parts(asks)
        case SignOffRequest():
            features = ", ".join(asks.features)
            return [
                Text(f"\nEvery feature passes at checkpoint {asks.checkpoint_id}: {features}."),
                _effect("\nApprove: the run is done. Deny: it goes on."),
            ]
        case RatchetRequest():
            parts = [Text(f"\n{asks.summary}")]
            for key in ("missing_files", "tests_before", "tests_now", "baseline"):
                if key in asks.model_fields_set:
                    parts.append(Text(f"  {key.replace('_', ' ')}: {getattr(asks, key)}"))
            for finding in asks.findings or []:
                if isinstance(finding, dict):
                    parts.append(Text(f"  {finding.get('kind', '')}: {finding.get('detail', '')}"))
            changed = asks.harness_changed if isinstance(asks.harness_changed, dict) else None
            if changed and changed.get("diff"):
                parts.append(Text("\nThe check harness, pinned → now:", style="bold"))
                shown = Syntax(str(changed["diff"]), "diff", theme="monokai", background_color="default")
                parts.append(shown)
            return [
                *parts,
                _effect(
                    "\nApprove: the tests and the check harness as they are now become the baseline. "
                    "Deny: the next session restores them."
                ),
            ]
    return [Text(pretty(asks.model_dump()))]


def _effect(text: str) -> Text:
    return Text(text, style="italic")


def _tool_call_parts(asks: ToolCallRequest) -> list[Any]:
    parts: list[Any] = [Text(f"\nThe worker wants to run the {asks.tool} tool:", style="bold")]
    args = asks.input
    if "command" in args:
        parts.append(Syntax(str(args["command"]), "bash", theme="monokai", background_color="default"))
        rest = {k: v for k, v in args.items() if k != "command"}
        if rest:
            parts.append(Text(pretty(rest)))
    else:
        parts.append(Text(pretty(args)))
    why = Text("\nAsked because ", style="dim")
    why.append(f"{asks.reason or 'an approval rule matched'}", style="")
    if asks.rule:
        why.append(f" (rule: {one_rule(asks.rule)})", style="dim")
    parts.append(why)
    parts.append(
        _effect(
            "\nApprove: the call runs exactly as shown, once, first thing in the next session.\n"
            "Deny: it never runs; the worker is told it was refused, with your comment."
        )
    )
    return parts


def _done_condition_parts(asks: DoneConditionRequest) -> list[Any]:
    parts: list[Any] = [Text(f"\nProposed by {asks.proposed_by} as the run's done-condition:")]
    for f in asks.features:
        line = Text(f"  • {f.get('id')}", style="bold")
        line.append(f": {f.get('description', '')}")
        if f.get("check"):
            line.append(f"\n      check: {f['check']}", style="#8be9fd")
        if f.get("rubric"):
            line.append(f"\n      rubric: {f['rubric']}", style="#bd93f9")
        parts.append(line)
    parts.append(
        _effect(
            "\nApprove: the run is done when these pass, and coding sessions start. "
            "`longrun features edit` changes it first."
        )
    )
    return parts


def one_rule(rule: Any) -> str:
    if isinstance(rule, dict):
        return ", ".join(f"{k}={v}" for k, v in rule.items() if v not in (None, False, ""))
    return str(rule)
