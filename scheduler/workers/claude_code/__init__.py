"""The `claude-code` backend: Claude Code (the CLI bundled with `claude-agent-sdk`) does the work,
longrun meters, polices, pauses and records it.

- `spec`: its `[worker]` table.
- `worker`: one session: the CLI behind the metering proxy, every tool call decided by the run's
  approval policy, the time box, usage limits, pausing for a person and going on after.
- `tools`: longrun's own tools (`handoff`, `ask_human`, `propose_features`) as the CLI's
  in-process MCP server, and Claude Code's tool names as the approval policy reads them.
- `follow`: what the CLI's messages say happened, as the session's events.
- `transcripts`: the CLI's own transcript, kept with the checkpoint so a later session (after a
  pause, a rewind or a fork, on any machine) goes on with the same Claude conversation.
- `auth`: credentials stay with longrun: placeholders for the CLI, the real ones for the proxy.
- `processes`: the CLI's process tree, killed whole at the time box.
"""

from importlib.util import find_spec

from longrun.scheduler.workers.claude_code.spec import ClaudeCodeWorkerSpec

NEEDS_SDK = 'needs Claude Code: pip install "longrun[claude-code]"'


def sdk_installed() -> bool:
    """Whether `claude-agent-sdk` (and with it the CLI) is installed."""
    return find_spec("claude_agent_sdk") is not None


__all__ = ["NEEDS_SDK", "ClaudeCodeWorkerSpec", "sdk_installed"]
