"""The `[worker]` table of the `claude-code` backend."""

from __future__ import annotations

from pydantic import StrictInt, StrictStr, ValidationInfo, field_validator

from longrun.scheduler.spec.keys import spec_key
from longrun.scheduler.spec.worker import WorkerSpec, script_ref

PERMISSION_MODES = ("default", "acceptEdits", "plan", "dontAsk")
"""The CLI's modes a supervised session may run in (never one that skips the permission check)."""


class ClaudeCodeWorkerSpec(WorkerSpec):
    """`[worker]` with `backend = "claude-code"`."""

    max_tokens: StrictInt = spec_key(
        32_000,
        kind="an integer",
        expected="an integer from 1 to 128000",
        meaning="the output token limit of one model call (the CLI's own default; the proxy holds it)",
        ge=1,
        le=128_000,
    )
    allowed_tools: list[StrictStr] = spec_key(
        factory=list, kind="a list of strings", meaning="Claude Code tools the session may use without asking"
    )
    disallowed_tools: list[StrictStr] = spec_key(
        factory=list, kind="a list of strings", meaning="Claude Code tools the session may never use"
    )
    permission_mode: StrictStr = spec_key(
        "default",
        kind="a string",
        expected="one of " + ", ".join(f'"{m}"' for m in PERMISSION_MODES),
        meaning="Claude Code's permission mode (longrun's approval policy applies in every mode)",
        pattern="^(" + "|".join(PERMISSION_MODES) + ")$",
    )
    max_turns: StrictInt | None = spec_key(
        None, kind="an integer", expected="an integer of at least 1", meaning="agent turns per session", ge=1
    )
    cli_path: StrictStr | None = spec_key(
        None, kind="a string", meaning="a `claude` of your own instead of the one bundled with the SDK"
    )
    settings: StrictStr | None = spec_key(
        None, kind="a string", meaning="Claude Code settings (a path or JSON), passed through"
    )
    script: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="a built-in script name or a path to a script file",
        meaning="serve this scripted model to the CLI instead of the API (tests and the demo)",
    )

    @field_validator("script")
    @classmethod
    def _script_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        return script_ref(value, info)
