"""A scripted, Anthropic-compatible model server on loopback.

It answers `POST /v1/messages` (plain and streaming) and `POST /v1/messages/count_tokens`
the way the real Messages API does, but every reply comes from a script: one list of turns
per agent session. The real `anthropic` SDK, and the real agent built on it, can then run in
tests and in the demo with no network and no API key.

A request whose first user message has not been seen before opens a new conversation, which
takes the script's next session; later requests of that conversation (same first message)
take that session's next turn, retries included. Error turns are turns.

A request that asks for structured output (its body has `output_config.format`) is the rubric
judge's, not the worker's: it takes no session and moves no conversation on. It is answered
from the script's optional `judges` list, statelessly: the first entry whose `match` strings
(one string or a list; none: always) all occur in the text of the request's messages.

    [[judges]]
    match = "def reading_time"
    verdict = { verdict = "pass", confidence = 0.9, rationale = "...", criteria = [
        { criterion = "counts words", met = true, note = "..." } ] }

    [[judges]]                # no match: the default
    text = "not JSON"         # raw reply text, e.g. to test a malformed reply

An entry gives `verdict` (sent as JSON text) or `text`, with optional `stop_reason`, `usage`
and `delay`; or `error` with optional `message`, `retry_after` and `should_retry`, as turns do.
A judge request no entry matches gets `JUDGE_FALLBACK_TEXT`, which is not JSON, so the judge
reports an error verdict rather than a made-up pass.

Token usage, when a turn gives none, is a deterministic estimate (see `estimate_usage`).

    python -m longrun.scheduler.endpoints.scripted --script demo --port 8765
"""

from __future__ import annotations

from longrun.scheduler.endpoints.scripted.player import (
    Reply,
    ScriptPlayer,
    error_reply,
    estimate_input_tokens,
    estimate_usage,
)
from longrun.scheduler.endpoints.scripted.script import (
    CHARS_PER_TOKEN,
    FALLBACK_TEXT,
    JUDGE_FALLBACK_TEXT,
    JudgeTurn,
    Script,
    ScriptedCriterion,
    ScriptedVerdict,
    ScriptSession,
    Seconds,
    StopReason,
    ToolCall,
    Turn,
    UsageOverride,
    builtin_scripts,
    load_script,
    parse_duration,
    script_from_data,
)
from longrun.scheduler.endpoints.scripted.server import (
    ScriptedModelServer,
)

__all__ = [
    "CHARS_PER_TOKEN",
    "FALLBACK_TEXT",
    "JUDGE_FALLBACK_TEXT",
    "JudgeTurn",
    "Reply",
    "Script",
    "ScriptPlayer",
    "ScriptSession",
    "ScriptedCriterion",
    "ScriptedModelServer",
    "ScriptedVerdict",
    "Seconds",
    "StopReason",
    "ToolCall",
    "Turn",
    "UsageOverride",
    "builtin_scripts",
    "error_reply",
    "estimate_input_tokens",
    "estimate_usage",
    "load_script",
    "parse_duration",
    "script_from_data",
]
