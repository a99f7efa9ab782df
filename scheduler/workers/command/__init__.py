"""The `command` backend: any program does the work, one run of it per session, under longrun's
time box, sandbox, metering proxy, budgets, breakers, approvals and judge.

- `spec`: its `[worker]` table (`command`, `env`, `script`).
- `contract`: the files and `LONGRUN_*` variables the command is given, and its handoff.
- `lines`: the JSON lines it writes as it goes (tool calls and results, notes, questions, usage,
  progress), checked and bounded.
- `output`: its stdout and stderr as events, head and tail.
- `meter`: the metering proxy behind `ANTHROPIC_BASE_URL`.
- `process`: its process group, the signals it is sent, and killing all it started.
- `worker`: one session, from the start to the outcome its exit code gives.

`examples/` holds commands that show the contract: a Ralph loop's iteration in shell
(`ralph.sh`) and a small tool-using agent on the anthropic SDK (`agent.py`).
"""

from pathlib import Path

from longrun.scheduler.workers.command.spec import CommandWorkerSpec

EXAMPLES = Path(__file__).parent / "examples"
"""The example commands that ship with longrun."""

__all__ = ["EXAMPLES", "CommandWorkerSpec"]
