"""`longrun serve` as a process for the e2e tests: started on a free port against a store, the
URL it prints read back, stopped with its dashboards at the end."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar
from urllib.parse import parse_qs, urlsplit

import pytest

T = TypeVar("T")
PRINTED_URL = re.compile(r"^(http://\S+/\?token=\S+)$", re.MULTILINE)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """End a process started in a session of its own, and whatever of its group is left."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def output_of(*logs: Path) -> str:
    return "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')}" for log in logs if log.exists())


def wait_until(
    ready: Callable[[], T], what: str, proc: subprocess.Popen[bytes], *logs: Path, timeout: float = 20
) -> T:
    """Poll `ready()` until it returns something truthy; fail with the process's output if it dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = ready()
        if value:
            return value
        if proc.poll() is not None:
            pytest.fail(f"{what}: the process exited {proc.returncode}:\n{output_of(*logs)}")
        time.sleep(0.1)
    pytest.fail(f"{what}: not within {timeout:.0f} s:\n{output_of(*logs)}")


@dataclass(frozen=True)
class Served:
    """A running `longrun serve`: the URL it printed, and where its output goes."""

    url: str
    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path

    @property
    def base(self) -> str:
        """`http://host:port`, the server's own origin."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def port(self) -> int:
        return int(urlsplit(self.url).port or 80)

    @property
    def token(self) -> str:
        return parse_qs(urlsplit(self.url).query)["token"][0]

    def interrupt(self, timeout: float = 30) -> int:
        """Ctrl-C as a terminal sends it, to the whole group (the server and its dashboards); the
        server's exit code once it has stopped."""
        os.killpg(self.proc.pid, signal.SIGINT)
        return self.proc.wait(timeout=timeout)


def serve_command(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "longrun.app.cli", "serve", "--home", str(home), "--no-daemon", *args]


@contextmanager
def longrun_serve(home: Path, logs: Path, *args: str) -> Iterator[Served]:
    """`longrun serve --port 0 ARGS` on the store in `home`, once it has printed its URL."""
    stdout, stderr = logs / "serve.out", logs / "serve.err"
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        proc = subprocess.Popen(
            serve_command(home, "--port", "0", *args),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,
        )
    try:

        def printed() -> str | None:
            found = PRINTED_URL.search(stdout.read_text(errors="replace"))
            return found.group(1) if found else None

        yield Served(wait_until(printed, "longrun serve", proc, stdout, stderr), proc, stdout, stderr)
    finally:
        stop_group(proc)
