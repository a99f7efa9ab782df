"""The ratchet's own pytest run: every test of a tree run once with a JUnit XML report the judge
owns, and read back per test function together with what the test files' syntax trees say.

Pure: inputs in, figures out; no database. The run is pytest's own, started the way the judge
starts every check (the environment it is given), with the project's `addopts` off (the ratchet
needs every test run, not `-x` or a `-k` from the ini), its cache off and collection errors not
stopping the run. When pytest cannot run at all, the syntax trees alone still name every test
function: a project whose tests exist before its code is protected from the first checkpoint.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longrun.evaluators import outcomes
from longrun.evaluators.command import run_shell

PYTEST_RUN = (
    "python -m pytest -q -p no:cacheprovider -o addopts= -o junit_family=xunit1 "
    "--continue-on-collection-errors -rN --no-header"
)
"""The ratchet's pytest run; `--junitxml=<file of the judge's>` is added."""
SOURCE_BYTES = 1_000_000
"""Python files larger than this are not read for their syntax trees."""


@dataclass(frozen=True)
class SuiteRun:
    """What one run of the suite found."""

    functions: dict[str, outcomes.TestFunction]
    cases: int
    """Test cases in the report (parametrized cases each count)."""
    error: str | None = None
    """One line when pytest gave no report: the functions are then the syntax trees' alone."""
    patches: dict[str, str] = field(default_factory=dict)
    """Python files whose module-level code reaches into the test runner: path → why."""
    broken: str | None = None
    """One line naming the test files pytest could not collect (their functions are known from
    the syntax trees only)."""


def read_sources(tree: Path, paths: Sequence[str]) -> dict[str, str]:
    sources = {}
    for path in paths:
        file = tree / path
        try:
            if file.is_symlink() or not file.is_file() or file.stat().st_size > SOURCE_BYTES:
                continue
            sources[path] = file.read_text(errors="replace")
        except OSError:
            continue
    return sources


def runner_files(tree: Path, test_files: Sequence[str]) -> list[str]:
    """The Python files scanned for runner patching: the test files, every `.py` in their folders,
    and the tree's top-level `.py` files (what the tests import first)."""
    folders = {str(Path(p).parent) for p in test_files} | {"."}
    found = set(test_files)
    for folder in folders:
        base = tree / folder
        try:
            names = os.listdir(base)
        except OSError:
            continue
        found |= {str(Path(folder, n)) if folder != "." else n for n in names if n.endswith(".py")}
    return sorted(p for p in found if Path(p).name != "conftest.py")


def run_suite(
    tree: Path, test_files: Sequence[str], timeout_s: float, env: dict[str, str] | None = None
) -> SuiteRun:
    """Run the tree's tests once and read them back per function."""
    python_files = [p for p in test_files if p.endswith(".py")]
    static = outcomes.static_functions(read_sources(tree, python_files))
    patches = outcomes.runner_patching(read_sources(tree, runner_files(tree, python_files)))
    with tempfile.TemporaryDirectory(prefix="longrun-junit-") as folder:
        report = Path(folder) / "report.xml"
        ran = run_shell(f"{PYTEST_RUN} --junitxml={report}", tree, timeout_s, env)
        problem = None
        if ran.cannot_start is not None:
            problem = ran.cannot_start
        elif ran.timed_out:
            problem = f"the tests took longer than {timeout_s:g}s"
        elif not report.is_file():
            problem = f"pytest exited {ran.returncode} without a report: {_last_line(ran.output)}"
        found: dict[str, str] = {}
        if problem is None:
            try:
                found = outcomes.parse_junit(report.read_text(errors="replace"))
            except ValueError as exc:
                problem = f"unreadable test report: {exc}"
    if problem is not None:
        return SuiteRun(static, 0, problem, patches)
    tests = {k: v for k, v in found.items() if "::" in k}
    uncollected = sorted(k for k in found if "::" not in k)
    broken = None
    if uncollected:
        more = f", and {len(uncollected) - 3} more" if len(uncollected) > 3 else ""
        broken = f"cannot collect {', '.join(uncollected[:3])}{more}"
    return SuiteRun(outcomes.with_outcomes(static, tests), len(tests), None, patches, broken)


def _last_line(output: bytes) -> str:
    lines = [line.strip() for line in output.decode(errors="replace").splitlines() if line.strip()]
    text = lines[-1] if lines else "no output"
    return text if len(text) <= 200 else text[:199] + "…"


def functions_json(functions: dict[str, outcomes.TestFunction]) -> dict[str, Any]:
    return {k: v.to_json() for k, v in sorted(functions.items())}


def functions_from_json(data: Any) -> dict[str, outcomes.TestFunction]:
    if not isinstance(data, dict):
        return {}
    return {k: outcomes.TestFunction.from_json(v) for k, v in data.items() if isinstance(v, dict)}
