"""The `command` evaluator: a feature's shell check, run in the workspace, judged by its exit code.

Pure: inputs in, a verdict out; no database. The check runs in its own process group with a
clean environment (no credentials) and a timeout; the tail of its output and its duration are
the evidence.
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


def clean_env() -> dict[str, str]:
    """The process environment without credentials, with longrun's Python first on PATH."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("ANTHROPIC_", "LONGRUN_")) and not any(w in k.upper() for w in _SECRET_WORDS)
    }
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("PYTHONPATH", None)
    return env


def _tail(data: bytes) -> str:
    text = data.decode(errors="replace")
    encoded = text.encode()
    if len(encoded) <= OUTPUT_TAIL_BYTES:
        return text
    return "[…]" + encoded[-OUTPUT_TAIL_BYTES:].decode(errors="ignore")


def run_check(feature_id: str, command: str, workspace: Path, timeout_s: float) -> CheckVerdict:
    """Run `command` with bash in `workspace`; exit 0 passes."""
    started = time.monotonic()
    try:
        proc = subprocess.Popen(
            ["bash", "-c", command],
            cwd=workspace,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    except OSError as exc:
        return CheckVerdict(feature_id, "error", {"command": command, "output_tail": f"cannot start: {exc}"})
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        return CheckVerdict(
            feature_id,
            "error",
            {
                "command": command,
                "timeout_s": timeout_s,
                "duration_s": round(time.monotonic() - started, 3),
                "output_tail": _tail(out) + f"\n[stopped after {timeout_s:g}s]",
            },
        )
    return CheckVerdict(
        feature_id,
        "pass" if proc.returncode == 0 else "fail",
        {
            "command": command,
            "exit_code": proc.returncode,
            "duration_s": round(time.monotonic() - started, 3),
            "output_tail": _tail(out),
        },
    )
