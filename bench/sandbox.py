"""`sandbox`: what the session's sandbox costs a tool call and a session, against no sandbox, in
the same run.

A tool call: the built-in worker's `bash` tool keeps one shell per session, so a call is one
command written to a shell that is already up. Both sides run the same short commands through
the SDK's `BashSession` (one started as it is, one inside a sandbox, as the worker does),
interleaved so that a machine that slows down mid-run slows both.

A session's set-up: making the sandbox (its cgroup and command line), starting the shell inside
it and running a first command, less doing the same without a sandbox; then throwing the
sandbox away (killing what is left inside, removing its cgroup).

Targets: the median sandboxed call is at most 1.2 times the unsandboxed one, and the set-up
adds at most 100 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from anthropic.lib.tools.agent_toolset import BashSession

from longrun.bench.common import BenchError, Benchmark, median, p95, positive_int, progress, ratio, versions
from longrun.scheduler.session.sandbox import Sandbox, SandboxUnavailable
from longrun.scheduler.spec.sandbox import SandboxSpec
from longrun.scheduler.workers.sandboxed_shell import _start_inside

CALLS = 300
SESSIONS = 20
COMMAND = "echo ok"
TARGET_CALL_RATIO = 1.2
TARGET_SETUP_MS = 100.0


async def _call(shell: BashSession) -> float:
    started = time.perf_counter()
    result = await shell.exec(COMMAND)
    if result.output.strip() != "ok":
        raise BenchError(f"the shell answered {result.output!r} to {COMMAND!r}")
    return (time.perf_counter() - started) * 1000


def _open(workspace: Path, n: int) -> Sandbox:
    return Sandbox.open(SandboxSpec(), workspace, f"longrun-bench-{n}-{os.getpid()}", hidden=[])


async def _calls(workspace: Path, calls: int) -> tuple[list[float], list[float]]:
    sandbox = _open(workspace, 0)
    plain = await BashSession.start(workspace, env=sandbox.env)
    inside = _start_inside(sandbox)
    try:
        for _ in range(10):  # warm both shells up
            await _call(plain)
            await _call(inside)
        outside_ms: list[float] = []
        inside_ms: list[float] = []
        for i in range(calls):
            pair = [(plain, outside_ms), (inside, inside_ms)]
            for shell, into in pair if i % 2 else pair[::-1]:
                into.append(await _call(shell))
        return outside_ms, inside_ms
    finally:
        await plain.close()
        await inside.close()
        sandbox.close()


async def _setups(workspace: Path, sessions: int) -> tuple[list[float], list[float], list[float]]:
    outside_ms: list[float] = []
    inside_ms: list[float] = []
    close_ms: list[float] = []
    first = _open(workspace, 1)
    env = first.env
    first.close()
    for n in range(sessions):
        started = time.perf_counter()
        plain = await BashSession.start(workspace, env=env)
        await _call(plain)
        outside_ms.append((time.perf_counter() - started) * 1000)
        await plain.close()

        started = time.perf_counter()
        sandbox = _open(workspace, n + 2)
        inside = _start_inside(sandbox)
        await _call(inside)
        inside_ms.append((time.perf_counter() - started) * 1000)
        started = time.perf_counter()
        await inside.close()
        sandbox.close()
        close_ms.append((time.perf_counter() - started) * 1000)
    return outside_ms, inside_ms, close_ms


def measure(calls: int, sessions: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="longrun-bench-sandbox-") as folder:
        workspace = Path(folder) / "workspace"
        workspace.mkdir()
        subprocess.run(["git", "init", "-q"], cwd=workspace, check=True)
        try:
            probe = _open(workspace, 0)
        except SandboxUnavailable as exc:
            raise BenchError(exc.message) from None
        limits = probe.limits.how
        probe.close()
        progress(f"sandbox: {calls} calls each way, then {sessions} session set-ups each way")
        call_out, call_in = asyncio.run(_calls(workspace, calls))
        setup_out, setup_in, closing = asyncio.run(_setups(workspace, sessions))
    call_ratio = ratio(median(call_in), median(call_out))
    added_setup = median(setup_in) - median(setup_out)
    return {
        "benchmark": "sandbox",
        "command": COMMAND,
        "calls": calls,
        "sessions": sessions,
        "limits": limits,
        "call_outside_median_ms": round(median(call_out), 3),
        "call_inside_median_ms": round(median(call_in), 3),
        "call_outside_p95_ms": round(p95(call_out), 3),
        "call_inside_p95_ms": round(p95(call_in), 3),
        "call_ratio": call_ratio,
        "setup_outside_median_ms": round(median(setup_out), 3),
        "setup_inside_median_ms": round(median(setup_in), 3),
        "setup_added_median_ms": round(added_setup, 3),
        "teardown_median_ms": round(median(closing), 3),
        "targets": {"call_ratio": TARGET_CALL_RATIO, "setup_added_ms": TARGET_SETUP_MS},
        "meets_targets": call_ratio <= TARGET_CALL_RATIO and added_setup <= TARGET_SETUP_MS,
        "versions": versions() | {"bwrap": _bwrap_version()},
    }


def _bwrap_version() -> str:
    proc = subprocess.run(["bwrap", "--version"], capture_output=True, text=True, check=False)
    return proc.stdout.strip().removeprefix("bubblewrap ")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--calls", type=positive_int, default=CALLS, help=f"tool calls timed each way (default {CALLS})"
    )
    parser.add_argument(
        "--sessions",
        type=positive_int,
        default=SESSIONS,
        help=f"session set-ups timed each way (default {SESSIONS})",
    )


def run(args: argparse.Namespace) -> dict[str, Any]:
    return measure(args.calls, args.sessions)


BENCHMARK = Benchmark(
    name="sandbox",
    help="a tool call's time inside the session's sandbox against outside, and the sandbox's set-up",
    configure=configure,
    run=run,
)
