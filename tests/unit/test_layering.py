"""Dependencies point one way: app → scheduler → evaluators, and app, scheduler → store; inside
the scheduler, what a spec or a guard is never depends on what runs it. And every package on disk
is one `pyproject.toml` installs.

Every module of a package (found by walking it, not listed by hand) is imported in a fresh
interpreter and the modules it pulled in are checked.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

RUNNERS = ("longrun.scheduler.control", "longrun.scheduler.supervisor", "longrun.scheduler.session")
FORBIDDEN = {
    "longrun.store": ("longrun.scheduler", "longrun.app", "longrun.evaluators", "textual"),
    "longrun.evaluators": ("longrun.scheduler", "longrun.app", "longrun.store", "textual", "sqlalchemy"),
    "longrun.scheduler": ("longrun.app", "textual"),
    "longrun.scheduler.spec": (*RUNNERS, "longrun.scheduler.judging", "anthropic"),
    "longrun.scheduler.guards": (*RUNNERS, "longrun.scheduler.judging"),
    "longrun.scheduler.workers": RUNNERS,
}

WALK = """
import importlib, pkgutil, sys
top = importlib.import_module({package!r})
names = [m.name for m in pkgutil.walk_packages(top.__path__, top.__name__ + ".")]
for name in names:
    if not name.endswith(".__main__"):
        importlib.import_module(name)
print(len(names))
print(" ".join(sorted(m for m in sys.modules if m.startswith({forbidden!r}))))
"""


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_above_it(package: str) -> None:
    code = WALK.format(package=package, forbidden=FORBIDDEN[package])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    walked, pulled = (proc.stdout.splitlines() + ["", ""])[:2]
    assert int(walked) >= 2, f"{package}: the walk found {walked} modules"
    assert pulled.strip() == "", f"{package} pulled in: {pulled.strip()}"


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


def test_every_package_on_disk_is_installed_and_every_installed_one_exists() -> None:
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    on_disk = set()
    for name, folder in setuptools["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / folder)
            on_disk.add(".".join([name, *rel.parts]))
    assert sorted(on_disk - listed) == [], "folders with an __init__.py missing from pyproject's packages"
    assert sorted(listed - on_disk) == [], "packages in pyproject with no folder"
