"""What each kind of approval asks: one typed model per kind, read from the stored request.

An approval's request is stored as JSON (it is in the hash chain as written); `ApprovalView.asks`
reads it into the model of its kind, so the dashboard, the CLI, the judge and the control verbs
read named fields instead of picking apart a dict. Unknown keys are kept, missing ones default,
so a request written by an older longrun still reads.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class _Request(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)


class _Paused(_Request):
    """A call of the model's that waited for a person, in a kept conversation."""

    tool_use_id: str = ""
    conversation_id: int | None = None
    checkpoint_id: int | None = None


class ToolCallRequest(_Paused):
    """`tool_call`: the worker wants to run a tool an approval rule asks about."""

    tool: str = ""
    input: dict[str, Any] = Field(default_factory=dict)
    reason: str | None = None
    rule: dict[str, Any] | str | None = None

    @property
    def on_expiry(self) -> str:
        """What an expired request becomes: `deny` unless its rule said `approve`."""
        return str(self.rule.get("on_expiry", "deny")) if isinstance(self.rule, dict) else "deny"


class QuestionRequest(_Paused):
    """`question`: the worker asked a person (its `ask_human` tool)."""

    question: str = ""
    why: str | None = None
    choices: list[Any] | None = None


class BudgetRaiseRequest(_Request):
    """`budget_raise`: a cap is spent; approving sets a new one."""

    cap: str = "usd"
    detail: str | None = None


class BreakerResetRequest(_Request):
    """`breaker_reset`: a breaker tripped; approving makes it half-open."""

    breaker: str = ""


class DoneConditionRequest(_Request):
    """`done_condition`: the worker proposed the run's features."""

    features: list[dict[str, Any]] = Field(default_factory=list)
    proposed_by: str = "the worker"


class SignOffRequest(_Request):
    """`sign_off`: every feature passes; a person signs the run off as done."""

    checkpoint_id: int | None = None
    features: list[str] = Field(default_factory=list)


class RatchetRequest(_Request):
    """`ratchet`: the tests went down or the check harness changed; approving makes the tests and
    the harness as they are at the checkpoint the new baseline."""

    checkpoint_id: int | None = None
    summary: str = "The tests went down."
    missing_files: Any = None
    tests_before: Any = None
    tests_now: Any = None
    baseline: Any = None
    findings: Any = None
    harness_changed: Any = None


class OtherRequest(_Request):
    """A kind this longrun does not know (written by a newer one): shown as it was stored."""


ApprovalRequest = (
    ToolCallRequest
    | QuestionRequest
    | BudgetRaiseRequest
    | BreakerResetRequest
    | DoneConditionRequest
    | SignOffRequest
    | RatchetRequest
    | OtherRequest
)

REQUEST_MODELS: dict[str, type[_Request]] = {
    "tool_call": ToolCallRequest,
    "question": QuestionRequest,
    "budget_raise": BudgetRaiseRequest,
    "breaker_reset": BreakerResetRequest,
    "done_condition": DoneConditionRequest,
    "sign_off": SignOffRequest,
    "ratchet": RatchetRequest,
}


def read_request(kind: str, request: dict[str, Any]) -> ApprovalRequest:
    """The stored request of an approval of `kind` as its model."""
    model = REQUEST_MODELS.get(kind, OtherRequest)
    return model.model_validate(request)  # type: ignore[return-value]
