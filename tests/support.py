"""Helpers the tests import by name (`from support import …`): a test module must not import from
`conftest`, since pytest loads several conftest files and which one that name means depends on the
order the tests were collected in."""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest


def write_script(path: Path, sessions: list[list[dict[str, Any]]]) -> Path:
    """A scripted-model script as JSON: one list of turns per session."""
    path.write_text(json.dumps({"sessions": [{"turns": turns} for turns in sessions]}, indent=1))
    return path


def chromium_or_skip() -> str:
    """Chromium's path; without it the test is skipped, or fails when `CI` is set."""
    path = shutil.which("chromium")
    if path is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not installed (`.ci/run` installs Debian's chromium)")
        pytest.skip("chromium is not installed (Debian: apt-get install chromium); with CI set this fails")
    return path


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll `check` every 0.2 s until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
