"""The command's processes: started in the workspace in a process group of their own, inside the
session's sandbox when there is one, told to wrap up or stop with signals, and killed whole.

A signal sent to bubblewrap does not reach what runs inside it (bubblewrap passes none on, and
the command has a session and a PID namespace of its own). So the command is started by a small
helper (`HELPER`, with the sandbox's Python, or this one's when there is no sandbox) that reads
signal names from a FIFO in the session's folder and sends them on: SIGTERM to the command's
process group, SIGUSR1 to each process of it that handles SIGUSR1 (its default action would end
one that does not). SIGKILL needs no helper: the whole tree is killed from outside
(`processes.kill_tree`), and if this process dies first, a watchdog kills the group (and
bubblewrap, dying with its parent, everything inside).
"""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import stat
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from longrun.scheduler.workers.claude_code import processes

if TYPE_CHECKING:  # the harness makes the sandbox; a worker only runs things in it
    from longrun.scheduler.session.sandbox import Sandbox

SHOWN_ANYWAY = ("/usr/", "/etc/", "/opt/", "/bin/", "/sbin/", "/lib/", "/lib32/", "/lib64/")
"""Where the sandbox shows the system's files already: a program there needs no binding."""

HELPER = r"""
import os, signal, subprocess, sys
fifo, command = sys.argv[1], sys.argv[3:]
for sig in (signal.SIGTERM, signal.SIGUSR1, signal.SIGINT, signal.SIGHUP):
    signal.signal(sig, lambda n, f: None)  # a handler, not SIG_IGN: the command starts with none
channel = os.open(fifo, os.O_RDWR)
try:
    child = subprocess.Popen(command, stdin=subprocess.DEVNULL)
except OSError as exc:
    print("longrun: cannot run %s: %s" % (command[0], exc.strerror), file=sys.stderr)
    sys.exit(127)
def handles(pid, sig):
    try:
        with open("/proc/%d/status" % pid) as status:
            for line in status:
                if line.startswith("SigCgt:"):
                    return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    except OSError:
        pass
    return False
def group():
    mine, found = os.getpgrp(), []
    for name in os.listdir("/proc"):
        if name.isdigit() and int(name) != os.getpid():
            try:
                with open("/proc/%s/stat" % name) as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == mine:
                found.append(int(name))
    return found
def listen():
    pending = b""
    while True:
        pending += os.read(channel, 256)
        while b"\n" in pending:
            word, pending = pending.split(b"\n", 1)
            try:
                if word == b"TERM":
                    os.killpg(os.getpgrp(), signal.SIGTERM)
                elif word == b"USR1":
                    for pid in group():
                        if handles(pid, signal.SIGUSR1):
                            os.kill(pid, signal.SIGUSR1)
            except OSError:
                pass
import threading
threading.Thread(target=listen, daemon=True).start()
code = child.wait()
sys.exit(128 - code if code < 0 else code)
"""
"""`python -c HELPER FIFO -- COMMAND…`: run COMMAND in this process's group, pass it the signals
named in FIFO (one a line: TERM, USR1), and exit with its code (128 + N when signal N ended it)."""


def named_files(argv: Sequence[str], workspace: Path) -> list[Path]:
    """The program and its script, when the command names them by absolute path outside what a
    sandbox shows (`["python", "/opt/agents/agent.py"]`): they are shown read-only, each file on
    its own. Only the first two words of the array form count; a path anywhere else (or in a
    string run by `sh -c`) is not shown, so a command cannot name its way to the user's files."""
    found: list[Path] = []
    for word in argv[:2]:
        if not word.startswith("/"):
            continue
        path = Path(word)
        try:
            real = path.resolve()
            is_file = real.is_file()
        except OSError:
            continue
        inside = real.is_relative_to(workspace.resolve())
        if is_file and not inside and not str(real).startswith(SHOWN_ANYWAY):
            found.append(path)
    return found


@dataclass
class CommandProcess:
    """The running command (through its helper), its watchdog and its signal channel."""

    proc: asyncio.subprocess.Process
    watchdog: asyncio.subprocess.Process
    fifo: Path
    sent: list[str]
    """Signal names waiting for the helper to be listening."""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def signal(self, name: str) -> None:
        """Send TERM or USR1 through the helper (as soon as it listens)."""
        self.sent.append(name)
        self.deliver()

    def deliver(self) -> None:
        """Write the signals not yet written; kept for the next look while the helper starts."""
        if not self.sent:
            return
        try:
            fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ENXIO:
                return  # the helper does not listen yet
            self.sent.clear()  # gone, or the command put something else in its place
            return
        try:
            if stat.S_ISFIFO(os.fstat(fd).st_mode):  # never a file of the user's it was pointed at
                os.write(fd, "".join(f"{name}\n" for name in self.sent).encode())
            self.sent.clear()
        except OSError:
            pass
        finally:
            os.close(fd)

    def kill(self) -> int:
        """SIGKILL the command and everything it started; how many processes were signalled."""
        killed = processes.kill_tree({self.proc.pid})
        _kill_group(self.proc.pid)
        return len(killed)

    async def close(self) -> None:
        """After the command's end: kill what it left running in its group, stop the watchdog."""
        _kill_group(self.proc.pid)
        if self.watchdog.returncode is None:
            self.watchdog.kill()
        await self.watchdog.wait()
        if self.watchdog.stdin is not None:
            self.watchdog.stdin.close()


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


async def start(
    argv: list[str], workspace: Path, env: dict[str, str], fifo: Path, folder: Path, sandbox: Sandbox | None
) -> CommandProcess:
    """Start the command in `workspace` with `env` (and nothing else of this process's), inside
    `sandbox` when there is one, with `folder` shown read-write at its own path."""
    os.mkfifo(fifo, 0o600)
    helper = [sys.executable, "-I", "-S", "-c", HELPER, str(fifo), "--", *argv]
    words = helper
    if sandbox is not None:
        words = sandbox.command(helper, binds=[folder], read_only=named_files(argv, workspace))
    proc = await asyncio.create_subprocess_exec(
        *words,
        cwd=workspace,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    watchdog = await asyncio.create_subprocess_exec(
        "/bin/sh",
        "-c",
        f"read _; kill -KILL -- -{proc.pid}",
        cwd="/",
        env={},
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    return CommandProcess(proc, watchdog, fifo, [])
