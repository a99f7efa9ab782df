"""The SDK agent toolset's `bash`, with its shell started inside the session's sandbox.

`AgentToolContext` starts one persistent `/bin/bash` for the `bash` tool (and a new one after a
timeout); this context starts it as `bwrap … /bin/bash` instead, with the SDK's own start-up
handshake, so everything else the SDK does with the shell (framing, timeouts, killing its
process group, saving long output) is unchanged. The file tools stay in this process, where the
SDK confines them to the workspace; `.longrun` is read-only to them as it is inside.
"""

from __future__ import annotations

import os
import subprocess
from contextlib import suppress
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from anthropic.lib.tools.agent_toolset import _BASH_SETUP, AgentToolContext, BashSession

if TYPE_CHECKING:  # the harness makes the sandbox; a worker only runs things in it
    from longrun.scheduler.session.sandbox import Sandbox

SHELL = ["/bin/bash", "--noprofile", "--norc"]


@dataclass
class SandboxedToolContext(AgentToolContext):
    sandbox: Sandbox | None = field(default=None, kw_only=True)

    async def _start_shell(self) -> BashSession:
        if self.sandbox is None:
            return await super()._start_shell()
        shell = _start_inside(self.sandbox)
        self._shells.add(shell)
        return shell


def _start_inside(sandbox: Sandbox) -> BashSession:
    """`BashSession.start`, with the shell inside `sandbox`: the same pipes, the same set-up written
    to it first, and the same watchdog that kills its group when this process dies."""
    env = {**sandbox.env, "PS1": "", "PS2": "", "TERM": "dumb", "HISTFILE": ""}
    proc = subprocess.Popen(
        sandbox.command(SHELL),
        bufsize=0,
        cwd=sandbox.workspace,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    assert proc.stdin is not None
    os.set_blocking(proc.stdin.fileno(), False)
    watchdog = None
    with suppress(OSError):
        proc.stdin.write(_BASH_SETUP)
        watchdog = subprocess.Popen(
            ["/bin/sh", "-c", f"read _; kill -KILL -- -{proc.pid}"],
            cwd="/",
            env={},
            stdin=subprocess.PIPE,
            stdout=proc.stdout,
            stderr=proc.stderr,
            start_new_session=True,
        )
    return BashSession(proc, watchdog=watchdog)
