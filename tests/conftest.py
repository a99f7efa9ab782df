"""Shared fixtures for every tier (unit, pilot, snapshots, e2e): a temp store, specs and scripts
written to disk, the CLI as a subprocess.

Nothing here is a mock: sessions are real processes, the model is the scripted server behind the
real SDK, workspaces are real git repositories and the store is a real SQLite file.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import chromium_or_skip, write_script  # noqa: F401 (the tests' helpers, also here)

from longrun.store.db import Store

E2E = Path(__file__).parent / "e2e"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/e2e is marked `e2e`, so `-m "not e2e"` leaves it out."""
    for item in items:
        if item.path.is_relative_to(E2E):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def _child_pytest_without_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """Processes a test starts that run pytest themselves (the demo's checks, the ratchet's count)
    need none of the plugins of this test environment, and loading them costs seconds a run."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "home"
    monkeypatch.setenv("LONGRUN_HOME", str(path))
    return path


@pytest.fixture
def store(home: Path) -> Store:
    opened = Store.open(home)
    yield opened
    opened.close()


def toml_value(value: Any) -> str:
    return json.dumps(value) if not isinstance(value, bool) else ("true" if value else "false")


SpecWriter = Callable[..., Path]


@pytest.fixture
def write_spec(tmp_path: Path) -> SpecWriter:
    """Write a spec (scripted backend, the given script sessions) and return its path."""

    def write(
        sessions: list[list[dict[str, Any]]],
        *,
        name: str = "test-run",
        time_box: str = "2m",
        wrap_up: str = "20s",
        features: list[dict[str, str]] | None = None,
        budget: str = "usd = 5.0",
        extra: str = "",
        folder: str = "project",
    ) -> Path:
        base = tmp_path / folder
        (base / "workspace").mkdir(parents=True, exist_ok=True)
        write_script(base / "script.json", sessions)
        feature_text = "".join(
            "\n[[features]]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in f.items())
            for f in features or []
        )
        spec = base / "longrun.toml"
        spec.write_text(
            f'name = "{name}"\n'
            'goal = "Make the files the script writes."\n'
            'workspace = "workspace"\n'
            "[worker]\n"
            'backend = "scripted"\n'
            'script = "script.json"\n'
            "max_tokens = 2048\n"
            "[session]\n"
            f'time_box = "{time_box}"\n'
            f'wrap_up = "{wrap_up}"\n'
            "checkpoint_every_calls = 50\n"
            f"[budget]\n{budget}\n"
            f"{extra}\n"
            f"{feature_text}"
        )
        return spec

    return write


@pytest.fixture
def cli(home: Path) -> Callable[..., subprocess.CompletedProcess[str]]:
    """Run the `longrun` CLI in a subprocess against the test's home."""

    def run(*args: str, check: bool = False, env: dict[str, str] | None = None, timeout: float = 120):
        proc = subprocess.run(
            [sys.executable, "-m", "longrun.app.cli", *args],
            capture_output=True,
            text=True,
            env={**os.environ, "LONGRUN_HOME": str(home), **(env or {})},
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"longrun {' '.join(args)} exited {proc.returncode}: {proc.stderr}")
        return proc

    return run
