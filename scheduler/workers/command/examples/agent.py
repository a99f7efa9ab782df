"""A small tool-using agent on the anthropic SDK, run by longrun as a command worker.

One session of it: read the context longrun wrote (`LONGRUN_CONTEXT_FILE`), ask the model, run
the tools it calls (`bash`, `read`, `write` in the workspace, `handoff`, `ask_human`), and go
round until the model ends its turn. Every call and result is written to `LONGRUN_EVENTS_FILE`,
so the judge, the breakers and the timeline see them; the handoff goes to
`LONGRUN_HANDOFF_FILE`. The SDK reads `ANTHROPIC_BASE_URL` and `ANTHROPIC_API_KEY`, which longrun
points at its metering proxy, so every call is priced and capped there.

    [worker]
    backend = "command"
    command = ["python", "/path/to/agent.py"]
    # script = "/path/to/agent-script.toml"   # the scripted model instead of the API: no key

SIGUSR1 (wrap up) asks the model for its handoff at the next turn; SIGTERM ends the session now,
with the handoff so far. A usage limit exits 75 with `retry_at` in the handoff.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anthropic
from anthropic.types import MessageParam, ToolParam, ToolResultBlockParam

EX_TEMPFAIL = 75
OUTPUT_CHARS = 10_000
WRAP_UP = "[longrun] Time to wrap up: commit your work and call `handoff` now."


def _schema(**fields: str) -> dict[str, Any]:
    properties: dict[str, Any] = {
        name: {"type": "array", "items": {"type": "string"}} if kind == "list" else {"type": kind}
        for name, kind in fields.items()
    }
    return {"type": "object", "properties": properties}


TOOLS: list[ToolParam] = [
    {
        "name": "bash",
        "description": "Run a shell command in the workspace.",
        "input_schema": _schema(command="string"),
    },
    {
        "name": "read",
        "description": "Read a file of the workspace.",
        "input_schema": _schema(file_path="string"),
    },
    {
        "name": "write",
        "description": "Write a file of the workspace (the whole file).",
        "input_schema": _schema(file_path="string", content="string"),
    },
    {
        "name": "handoff",
        "description": "Leave the note the next session starts from: what is done, what is next, blockers.",
        "input_schema": _schema(done="list", next="list", blockers="list", notes="string"),
    },
    {
        "name": "ask_human",
        "description": "Ask the person supervising the run; the session pauses until they answer.",
        "input_schema": _schema(question="string", why="string", choices="list"),
    },
]


class Agent:
    def __init__(self) -> None:
        self.events = Path(os.environ["LONGRUN_EVENTS_FILE"])
        self.handoff: dict[str, Any] = {"done": [], "next": [], "blockers": [], "notes": ""}
        self.wrap_up = False
        self.stop = False
        self.asked = False

    def event(self, kind: str, **fields: Any) -> None:
        with self.events.open("a") as out:
            out.write(json.dumps({"kind": kind, **fields}) + "\n")

    def write_handoff(self, **more: Any) -> None:
        Path(os.environ["LONGRUN_HANDOFF_FILE"]).write_text(json.dumps(self.handoff | more))

    def tool(self, name: str, args: dict[str, Any]) -> tuple[str, bool]:
        """Run one tool call; (its output, whether it failed)."""
        if name == "bash":
            done = subprocess.run(
                ["/bin/sh", "-c", str(args.get("command", ""))], capture_output=True, text=True, timeout=600
            )
            return (done.stdout + done.stderr)[-OUTPUT_CHARS:], done.returncode != 0
        path = Path(str(args.get("file_path", "")))
        if name in ("read", "write") and (path.is_absolute() or ".." in path.parts):
            return f"{path}: only paths inside the workspace", True
        try:
            if name == "read":
                return path.read_text()[-OUTPUT_CHARS:], False
            if name == "write":
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(str(args.get("content", "")))
                return f"wrote {path}", False
        except OSError as exc:
            return f"{path}: {exc.strerror}", True
        if name == "handoff":
            self.handoff = {key: args.get(key, self.handoff[key]) for key in self.handoff}
            return "handoff recorded", False
        if name == "ask_human":
            self.event("question", **{k: args[k] for k in ("question", "why", "choices") if k in args})
            self.asked = True
            return "asked: the session pauses until a person answers", False
        return f"no tool named {name}", True

    def run(self) -> int:
        client = anthropic.Anthropic(max_retries=2)
        context = Path(os.environ["LONGRUN_CONTEXT_FILE"]).read_text()
        messages: list[MessageParam] = [{"role": "user", "content": context}]
        told = False
        while not self.stop and not self.asked:
            try:
                reply = client.messages.create(
                    model=os.environ["LONGRUN_MODEL"],
                    max_tokens=int(os.environ.get("LONGRUN_MAX_TOKENS", "4096")),
                    tools=TOOLS,
                    messages=messages,
                )
            except anthropic.RateLimitError as exc:
                wait = float(exc.response.headers.get("retry-after") or 60)
                retry_at = datetime.now(UTC) + timedelta(seconds=wait)
                self.write_handoff(retry_at=retry_at.isoformat())
                return EX_TEMPFAIL
            except anthropic.APIStatusError as exc:
                # longrun's proxy refuses a call that could cross a budget cap: the session is over
                self.handoff["blockers"] = [*self.handoff["blockers"], f"the API said: {exc.message}"]
                break
            messages.append({"role": "assistant", "content": reply.content})
            results: list[ToolResultBlockParam] = []
            for block in reply.content:
                if block.type != "tool_use":
                    continue
                args = dict(block.input) if isinstance(block.input, dict) else {}
                self.event("tool_call", tool=block.name, input=args)
                output, failed = self.tool(block.name, args)
                self.event("tool_result", tool=block.name, is_error=failed, output=output[-4000:])
                results.append(
                    {"type": "tool_result", "tool_use_id": block.id, "content": output, "is_error": failed}
                )
            if not results:
                break  # the model ended its turn
            content: list[Any] = list(results)
            if self.wrap_up and not told:
                content.append({"type": "text", "text": WRAP_UP})
                told = True
            messages.append({"role": "user", "content": content})
        self.write_handoff()
        return 0

    def on_signal(self, number: int, _frame: object) -> None:
        if number == signal.SIGUSR1:
            self.wrap_up = True
        else:
            self.write_handoff()
            sys.exit(0)


def main() -> int:
    agent = Agent()
    signal.signal(signal.SIGUSR1, agent.on_signal)
    signal.signal(signal.SIGTERM, agent.on_signal)
    return agent.run()


if __name__ == "__main__":
    sys.exit(main())
