"""Dependencies point one way: app → scheduler → evaluators, and app, scheduler → store.

Each package is imported in a fresh interpreter and the modules it pulled in are checked.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = {
    "longrun.store": ("longrun.scheduler", "longrun.app", "longrun.evaluators", "textual"),
    "longrun.evaluators": ("longrun.scheduler", "longrun.app", "longrun.store", "textual", "sqlalchemy"),
    "longrun.scheduler": ("longrun.app", "textual"),
}
MODULES = {
    "longrun.store": ["longrun.store.db", "longrun.store.log", "longrun.store.runs", "longrun.store.models"],
    "longrun.evaluators": [
        "longrun.evaluators.command",
        "longrun.evaluators.llm",
        "longrun.evaluators.ratchet",
    ],
    "longrun.scheduler": [
        "longrun.scheduler.session.harness",
        "longrun.scheduler.control",
        "longrun.scheduler.supervisor.launch",
        "longrun.scheduler.endpoints.scripted",
        "longrun.scheduler.session.context",
        "longrun.scheduler.supervisor.daemon",
        "longrun.scheduler.supervisor.notify",
        "longrun.scheduler.guards.breakers",
        "longrun.scheduler.judging.judge",
        "longrun.scheduler.judging.features",
    ],
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package: str) -> None:
    code = (
        "import importlib, sys\n"
        f"for name in {MODULES[package]!r}: importlib.import_module(name)\n"
        f"bad = sorted(m for m in sys.modules if m.startswith({FORBIDDEN[package]!r}))\n"
        "print(' '.join(bad))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"{package} pulled in: {proc.stdout.strip()}"


def test_the_dashboard_and_the_cli_do_not_import_the_sdk() -> None:
    """The anthropic SDK takes a second to import and is half the dashboard's objects: only a
    session or a judge that calls a model imports it."""
    code = (
        "import sys\n"
        "import longrun.app.cli, longrun.app.dashboard, longrun.app.tui, longrun.scheduler.control\n"
        "from longrun.app.dashboard import SCREENS\n"
        "for name in SCREENS: __import__(f'longrun.app.screens.{name}')\n"
        "print(' '.join(sorted(m for m in sys.modules if m.split('.')[0] == 'anthropic')[:5]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""
