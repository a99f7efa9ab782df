"""The test ratchet on real projects: real files in temp folders, real pytest collection."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from longrun.evaluators import ratchet, suite
from longrun.evaluators.ratchet import TestMeasure

MATH_TESTS = "def test_add():\n    assert 1 + 1 == 2\n\n\ndef test_sub():\n    assert 2 - 1 == 1\n"
ONE_TEST = "def test_one():\n    assert True\n"


def write(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A small Python project of 5 tests in 4 files, plus test files where none should be looked for."""
    root = tmp_path / "workspace"
    write(root / "pytest.ini", "[pytest]\n")  # the project's own root, whatever lies above it
    write(root / "src" / "calc.py", "def add(a, b):\n    return a + b\n")
    write(root / "tests" / "test_math.py", MATH_TESTS)
    write(root / "tests" / "test_text.py", "def test_upper():\n    assert 'a'.upper() == 'A'\n")
    write(root / "pkg" / "deep" / "calc_test.py", ONE_TEST)
    write(root / "test_root.py", ONE_TEST)
    for hidden in (".git", ".longrun", ".venv", "node_modules", "venv", "__pycache__", "build"):
        write(root / hidden / "test_hidden.py", ONE_TEST)
    write(root / "env" / "pyvenv.cfg", "home = /usr/bin\n")  # a virtualenv by another name
    write(root / "env" / "lib" / "site-packages" / "dep" / "test_dep.py", ONE_TEST)
    return root


PROJECT_FILES = ("pkg/deep/calc_test.py", "test_root.py", "tests/test_math.py", "tests/test_text.py")


def test_measure_finds_the_test_files_and_counts_the_collected_tests(project: Path) -> None:
    m = ratchet.measure(project)
    assert m.files == PROJECT_FILES
    assert m.collected == 5
    assert m.collect_command == suite.PYTEST_RUN
    assert m.error is None
    assert m.functions is not None and sorted(m.functions) == [
        "pkg/deep/calc_test.py::test_one",
        "test_root.py::test_one",
        "tests/test_math.py::test_add",
        "tests/test_math.py::test_sub",
        "tests/test_text.py::test_upper",
    ]
    assert {f["outcome"] for f in m.functions.values()} == {"passed"}


def test_patterns_are_globs_from_the_workspace_root(tmp_path: Path) -> None:
    for rel in ("tests/test_a.py", "tests/unit/test_b.py", "other/test_c.py", "web/app.test.ts"):
        write(tmp_path / rel)
    write(tmp_path / "web" / "app.spec.jsx")
    write(tmp_path / "web" / "app.test.py")
    write(tmp_path / "go" / "calc_test.go")

    assert ratchet.find_test_files(tmp_path, ["tests/**/test_*.py"]) == (
        "tests/test_a.py",
        "tests/unit/test_b.py",
    )
    assert ratchet.find_test_files(tmp_path, ["test_*.py"]) == ()
    assert ratchet.find_test_files(tmp_path) == (
        "go/calc_test.go",
        "other/test_c.py",
        "tests/test_a.py",
        "tests/unit/test_b.py",
        "web/app.spec.jsx",
        "web/app.test.ts",
    )


def test_deleting_a_test_file_fails_naming_it(project: Path) -> None:
    before = ratchet.measure(project)
    (project / "tests" / "test_text.py").unlink()

    verdict = ratchet.compare(ratchet.measure(project), before, "checkpoint 3")

    assert verdict.status == "fail"
    assert verdict.evidence["missing_files"] == ["tests/test_text.py"]
    assert verdict.evidence["baseline"] == "checkpoint 3"
    assert (verdict.evidence["tests_before"], verdict.evidence["tests_now"]) == (5, 4)
    assert verdict.evidence["summary"] == (
        "1 test file missing (tests/test_text.py); collected tests 5 → 4 (against checkpoint 3)"
    )


def test_removing_a_test_function_fails(project: Path) -> None:
    before = ratchet.measure(project)
    write(project / "tests" / "test_math.py", "def test_add():\n    assert 1 + 1 == 2\n")

    verdict = ratchet.compare(ratchet.measure(project), before, "checkpoint 3")

    assert verdict.status == "fail"
    assert verdict.evidence["missing_files"] == []
    assert (verdict.evidence["tests_before"], verdict.evidence["tests_now"]) == (5, 4)
    assert "collected tests 5 → 4" in verdict.evidence["summary"]


def test_a_renamed_test_file_is_a_missing_file(project: Path) -> None:
    before = ratchet.measure(project)
    (project / "tests" / "test_text.py").rename(project / "tests" / "test_words.py")

    verdict = ratchet.compare(ratchet.measure(project), before, "checkpoint 3")

    assert verdict.status == "fail"
    assert verdict.evidence["missing_files"] == ["tests/test_text.py"]
    assert verdict.evidence["tests_now"] == 5


def test_adding_tests_passes_and_keeps_the_measure_for_later(project: Path) -> None:
    before = ratchet.measure(project)
    write(project / "tests" / "test_math.py", MATH_TESTS + "\n\ndef test_mul():\n    assert 2 * 3 == 6\n")
    write(project / "tests" / "test_more.py", ONE_TEST)
    now = ratchet.measure(project)

    verdict = ratchet.compare(now, before, "checkpoint 3")

    assert verdict.status == "pass"
    assert verdict.evidence["files"] == 5
    assert verdict.evidence["collected"] == 7
    assert verdict.evidence["missing_files"] == []
    assert TestMeasure.from_json(verdict.evidence["measure"]) == now
    assert "collected tests 5 → 7" in verdict.evidence["summary"]


def test_the_first_measure_passes_without_a_baseline(project: Path) -> None:
    verdict = ratchet.compare(ratchet.measure(project), None)

    assert verdict.status == "pass"
    assert "baseline" not in verdict.evidence
    assert verdict.evidence["summary"] == "4 test files, 5 tests collected; no baseline yet"


def test_a_test_file_that_cannot_be_collected_counts_none_of_its_tests(project: Path) -> None:
    before = ratchet.measure(project)
    write(project / "tests" / "test_broken.py", "def test_x(:\n    pass\n")

    now = ratchet.measure(project)
    assert now.error is None and now.collected == before.collected
    assert now.broken is not None and "tests/test_broken.py" in now.broken and "\n" not in now.broken
    # Tests written before the code they import are common: nothing went down, so it passes.
    verdict = ratchet.compare(now, before, "checkpoint 3")
    assert verdict.status == "pass" and verdict.evidence["broken"] == now.broken
    assert "tests/test_broken.py" in verdict.evidence["summary"]

    # Breaking a file that had tests takes its tests out of the count: that fails.
    write(project / "tests" / "test_math.py", "def test_add(:\n")
    broken = ratchet.compare(ratchet.measure(project), before, "checkpoint 3")
    assert broken.status == "fail"
    assert broken.evidence["tests_now"] == before.collected - 2
    assert "tests/test_math.py" in broken.evidence["broken"]


def test_a_missing_file_fails_even_when_the_suite_cannot_be_collected(project: Path) -> None:
    before = ratchet.measure(project)
    (project / "tests" / "test_text.py").unlink()
    write(project / "tests" / "test_math.py", "def test_x(:\n")

    verdict = ratchet.compare(ratchet.measure(project), before, "checkpoint 3")

    assert verdict.status == "fail"
    assert verdict.evidence["missing_files"] == ["tests/test_text.py"]
    assert "tests/test_math.py" in verdict.evidence["broken"]


def test_an_empty_suite_collects_zero(tmp_path: Path) -> None:
    write(tmp_path / "pytest.ini", "[pytest]\n")
    write(tmp_path / "tests" / "test_nothing.py", "import os\n")

    m = ratchet.measure(tmp_path)

    assert (m.collected, m.error) == (0, None)


@pytest.mark.parametrize(
    ("command", "count"),
    [
        ("grep -c '^def test_' tests/test_math.py", 2),
        ("python -m pytest --collect-only -qq", 5),  # per-file counts, no summary line
        ("printf 'a.js::one\\na.js::two\\nb.js::three\\n'", 3),
    ],
)
def test_a_custom_collect_command_is_counted(project: Path, command: str, count: int) -> None:
    m = ratchet.measure(project, collect=command)

    assert (m.collected, m.collect_command, m.error) == (count, command, None)


def test_a_failing_or_silent_collect_command_is_an_error(project: Path) -> None:
    failed = ratchet.measure(project, collect="echo boom; exit 3")
    silent = ratchet.measure(project, collect="true")

    assert (failed.collected, failed.error) == (None, "exit code 3: boom")
    assert silent.collected is None and silent.error is not None


def test_without_python_tests_or_collect_command_only_files_count(tmp_path: Path) -> None:
    write(tmp_path / "web" / "a.test.ts")
    write(tmp_path / "web" / "b.test.ts")
    before = ratchet.measure(tmp_path)
    (tmp_path / "web" / "b.test.ts").unlink()

    now = ratchet.measure(tmp_path)
    verdict = ratchet.compare(now, before, "checkpoint 1")

    assert (before.collected, before.collect_command) == (None, None)
    assert verdict.status == "fail"
    assert verdict.evidence["missing_files"] == ["web/b.test.ts"]
    assert verdict.evidence["counts_compared"] is False
    assert ratchet.measure(tmp_path, collect=None) == now


def test_counts_are_compared_only_from_the_same_collect_command() -> None:
    files = ("tests/test_a.py",)
    uncounted = TestMeasure(files, None, None)
    counted = TestMeasure(files, 10, ratchet.PYTEST_COLLECT)
    other_command = TestMeasure(files, 3, "grep -c '^def test_' tests/test_a.py")

    assert ratchet.compare(TestMeasure(files, 0, ratchet.PYTEST_COLLECT), uncounted).status == "pass"
    assert ratchet.compare(uncounted, counted).status == "pass"
    changed = ratchet.compare(other_command, counted, "checkpoint 2")
    assert changed.status == "pass"
    assert "the collect command changed" in changed.evidence["summary"]
    assert ratchet.compare(TestMeasure(files, 9, ratchet.PYTEST_COLLECT), counted).status == "fail"


def test_many_missing_files_are_listed_up_to_a_cap() -> None:
    baseline = TestMeasure(tuple(f"tests/test_{i:02}.py" for i in range(60)), None, None)

    verdict = ratchet.compare(TestMeasure((), None, None), baseline, "checkpoint 1")

    assert len(verdict.evidence["missing_files"]) == ratchet.MISSING_FILES_LISTED
    assert verdict.evidence["missing_files_more"] == 60 - ratchet.MISSING_FILES_LISTED
    assert verdict.evidence["summary"].startswith(
        "60 test files missing (tests/test_00.py, tests/test_01.py, tests/test_02.py, and 57 more)"
    )


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def test_a_hanging_collect_command_is_killed_at_the_timeout(project: Path) -> None:
    m = ratchet.measure(project, collect="sleep 300 & echo $! > sleeper.pid; wait", timeout_s=1)

    assert m.collected is None
    assert m.error == "timed out after 1s"  # stopped by the timeout, not by the sleep's end
    sleeper = int((project / "sleeper.pid").read_text())
    deadline = time.monotonic() + 5
    while _alive(sleeper) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(sleeper), "the collect command's process group outlived the timeout"


def test_a_measure_survives_a_json_round_trip(project: Path) -> None:
    measured = ratchet.measure(project)
    failed = TestMeasure(("a_test.go",), None, "go test ./...", error="exit code 1: FAIL")

    for m in (measured, failed):
        assert TestMeasure.from_json(json.loads(json.dumps(m.to_json()))) == m
