"""The `command` evaluator: a feature's shell check, run in a folder, judged by its exit code.

Pure: inputs in, a verdict out; no database. The check runs in its own process group with the
environment it is given (by default a clean one: no credentials) and a timeout; the tail of its
output and its duration are the evidence. The judge runs it in its own tree of the checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTPUT_TAIL_BYTES = 3_000
_SECRET_WORDS = ("API_KEY", "TOKEN", "SECRET", "PASSWORD")


@dataclass(frozen=True)
class CheckVerdict:
    feature_id: str
    status: str
    """pass, fail or error (the check could not be judged: timeout, cannot start)."""
    evidence: dict[str, Any] = field(default_factory=dict)


def is_withheld(name: str) -> bool:
    """Whether an environment variable is kept from what longrun runs: credentials, and longrun's
    and the API client's own settings."""
    return name.startswith(("ANTHROPIC_", "LONGRUN_")) or any(w in name.upper() for w in _SECRET_WORDS)


def clean_env() -> dict[str, str]:
    """The process environment without credentials, with longrun's Python first on PATH."""
    env = {k: v for k, v in os.environ.items() if not is_withheld(k)}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)
    return env


def _tail(data: bytes) -> str:
    text = data.decode(errors="replace")
    encoded = text.encode()
    if len(encoded) <= OUTPUT_TAIL_BYTES:
        return text
    return "[…]" + encoded[-OUTPUT_TAIL_BYTES:].decode(errors="ignore")


@dataclass(frozen=True)
class Ran:
    """How a shell command run by an evaluator went."""

    output: bytes
    """Its stdout and stderr, as far as they were read (what it wrote before a timeout, too)."""
    returncode: int | None
    """None when it timed out or could not start."""
    seconds: float
    timed_out: bool = False
    cannot_start: str | None = None


def run_shell(command: str, cwd: Path, timeout_s: float, env: dict[str, str] | None = None) -> Ran:
    """Run `command` with bash in `cwd`, in its own process group with `env` (by default a clean
    environment); the whole group is killed at the timeout."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=cwd,
            env=env if env is not None else clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return Ran(b"", None, 0.0, cannot_start=f"cannot start: {exc}")
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            out, _ = proc.communicate(timeout=5)
        except subprocess.TimeoutExpired:
            out = b""  # a process that left the group still holds the pipe; stop reading it
        proc.wait()
        return Ran(out or b"", None, time.monotonic() - started, timed_out=True)
    return Ran(out, proc.returncode, time.monotonic() - started)


def run_check(
    feature_id: str, command: str, workspace: Path, timeout_s: float, env: dict[str, str] | None = None
) -> CheckVerdict:
    """Run `command` with bash in `workspace`; exit 0 passes."""
    ran = run_shell(command, workspace, timeout_s, env)
    if ran.cannot_start is not None:
        return CheckVerdict(feature_id, "error", {"command": command, "output_tail": ran.cannot_start})
    evidence: dict[str, Any] = {"command": command}
    if ran.timed_out:
        evidence["timeout_s"] = timeout_s
    else:
        evidence["exit_code"] = ran.returncode
    evidence["duration_s"] = round(ran.seconds, 3)
    evidence["output_tail"] = _tail(ran.output)
    if ran.timed_out:
        evidence["output_tail"] += f"\n[stopped after {timeout_s:g}s]"
        return CheckVerdict(feature_id, "error", evidence)
    return CheckVerdict(feature_id, "pass" if ran.returncode == 0 else "fail", evidence)
