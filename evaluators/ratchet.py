"""The test ratchet: a tree's tests never go down, not in number and not in what they do.

Pure: inputs in, a verdict out; no database. `measure` finds the test files of a tree and, for a
Python suite, runs it once itself (`suite.run_suite`: a JUnit report, read per test function, and
the test functions' syntax trees); `compare` judges a measure against a baseline (the judge
picks it: the latest checkpoint that passed the ratchet).

A baseline test file missing now, fewer tests, and a test function
that disappeared, is newly skipped, xfailed or not run, lost assertions or gained a skip, or new
code reaching into the test runner, each fails: weakening tests is the cheapest way to make a
check pass without the work. A renamed test with the same body is no finding; a renamed or moved
test file is missing, and a person approves that.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from longrun.evaluators import outcomes, suite
from longrun.evaluators.command import run_shell

DEFAULT_TEST_PATTERNS: tuple[str, ...] = (
    "**/test_*.py",  # pytest's default file names
    "**/*_test.py",
    "**/*.test.[jt]s",  # Jest, Vitest, Mocha
    "**/*.test.[jt]sx",
    "**/*.spec.[jt]s",
    "**/*.spec.[jt]sx",
    "**/*_test.go",  # go test
    "**/*_spec.rb",  # RSpec
)
"""Common test file names at any depth. Globs are matched against the workspace-relative POSIX
path: `*`, `?` and `[...]` stay within one folder, `**/` spans any number of folders (none too),
so `test_*.py` alone matches at the root only."""

AUTO = "auto"
"""`collect`: the ratchet's own pytest run when Python test files are found, else files only."""
PYTEST_COLLECT = "python -m pytest --collect-only -q"
"""What `auto` ran before the ratchet ran the tests itself; kept to read measures stored then."""
FINDINGS_LISTED = 50
MISSING_FILES_LISTED = 50
"""At most this many missing files are listed in the evidence; the rest are counted."""
SKIPPED_DIRS = frozenset({"node_modules", "venv", "__pycache__", "site-packages", "build", "dist"})
"""Folders never searched for test files (besides every dot-folder and virtualenvs): dependencies
and build copies, which pytest does not collect either."""
_ERROR_TEXT_CHARS = 300


@dataclass(frozen=True)
class TestMeasure:
    """The tests of a workspace at one point: its test files and how many tests were collected."""

    __test__ = False  # a pytest-looking name, not a test class

    files: tuple[str, ...]
    """Test files found, workspace-relative POSIX paths, sorted."""
    collected: int | None
    """Tests the collect command counted; None when no collect command ran or it failed."""
    collect_command: str | None
    error: str | None = None
    """One line when the collect command failed: a timeout, an exit code, output without a count."""
    broken: str | None = None
    """One line when some test files could not be collected (an import or syntax error in them):
    the count is of the tests that could be, which is what a later checkpoint must not go below.
    Common while the code the tests import is not written yet."""
    functions: Mapping[str, Any] | None = None
    """Per test function (`outcomes.TestFunction.to_json`), from the ratchet's own run and the
    syntax trees; None when the suite is not Python's or the measure is older."""
    patches: Mapping[str, str] | None = None
    """Python files reaching into the test runner: path → why."""

    def to_json(self) -> dict[str, Any]:
        return {
            "files": list(self.files),
            "collected": self.collected,
            "collect_command": self.collect_command,
            "error": self.error,
            "broken": self.broken,
            "functions": dict(self.functions) if self.functions is not None else None,
            "patches": dict(self.patches) if self.patches is not None else None,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TestMeasure:
        return cls(
            files=tuple(sorted(data.get("files") or ())),
            collected=data.get("collected"),
            collect_command=data.get("collect_command"),
            error=data.get("error"),
            broken=data.get("broken"),
            functions=data.get("functions"),
            patches=data.get("patches"),
        )


@dataclass(frozen=True)
class RatchetVerdict:
    status: str
    """pass, fail (tests went down) or error (the suite cannot be collected)."""
    evidence: dict[str, Any]


# --- measuring ---------------------------------------------------------------------------------


def measure(
    workspace: Path,
    patterns: Sequence[str] = DEFAULT_TEST_PATTERNS,
    collect: str | None = AUTO,
    timeout_s: float = 300,
    env: dict[str, str] | None = None,
) -> TestMeasure:
    """Find the test files of `workspace` and count its collected tests.

    `collect` is AUTO (pytest's collection when a Python test file is found, else no count),
    None (no count) or a shell command run with bash in the workspace, by `run_shell` (a clean
    environment, its own process group, killed at `timeout_s`); its output is read by
    `count_collected`. pytest's exit code 5 (no tests collected) counts 0; any other non-zero
    exit is an error. With AUTO and Python test files, the suite is run (`suite.run_suite`).
    """
    workspace = Path(workspace)
    files = find_test_files(workspace, patterns)
    if collect == AUTO:
        if not any(f.endswith(".py") for f in files):
            return TestMeasure(files, None, None)
        ran = suite.run_suite(workspace, files, timeout_s, env)
        return TestMeasure(
            files,
            ran.cases if ran.error is None else None,
            suite.PYTEST_RUN,
            ran.error,
            ran.broken,
            functions=suite.functions_json(ran.functions),
            patches=ran.patches,
        )
    if collect is None:
        return TestMeasure(files, None, None)
    collected, error, broken = _run_collect(collect, workspace, timeout_s, env)
    return TestMeasure(files, collected, collect, error, broken)


def path_matches(path: str, patterns: Sequence[str]) -> bool:
    """Whether a tree-relative POSIX path matches any of the globs (see DEFAULT_TEST_PATTERNS)."""
    return any(_glob_regex(p).match(path) for p in patterns)


def find_test_files(workspace: Path, patterns: Sequence[str] = DEFAULT_TEST_PATTERNS) -> tuple[str, ...]:
    """Workspace-relative POSIX paths of the files matching any of `patterns`, sorted; dot-folders,
    virtualenvs and `SKIPPED_DIRS` are not searched."""
    regexes = [_glob_regex(p) for p in patterns]
    found: list[str] = []
    for folder, dirnames, filenames in os.walk(workspace):
        dirnames[:] = [d for d in dirnames if not _skipped(Path(folder, d))]
        relative = Path(folder).relative_to(workspace).as_posix()
        prefix = "" if relative == "." else relative + "/"
        found.extend(prefix + name for name in filenames if any(r.match(prefix + name) for r in regexes))
    return tuple(sorted(found))


def _skipped(folder: Path) -> bool:
    name = folder.name
    if name.startswith(".") or name in SKIPPED_DIRS or name.endswith(".egg"):
        return True
    # A virtualenv under any name, detected as pytest does.
    return (folder / "pyvenv.cfg").is_file() or (folder / "conda-meta" / "history").is_file()


@lru_cache(maxsize=256)
def _glob_regex(pattern: str) -> re.Pattern[str]:
    """A regex matching a whole workspace-relative path against a glob (see DEFAULT_TEST_PATTERNS)."""
    while pattern.startswith("./"):
        pattern = pattern[2:]
    parts = [p for p in pattern.strip().split("/") if p]
    regex = ""
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        if part == "**":
            regex += ".*" if last else "(?:[^/]+/)*"
        else:
            regex += _segment_regex(part) + ("" if last else "/")
    return re.compile(regex + r"\Z")


def _segment_regex(segment: str) -> str:
    out = ""
    i = 0
    while i < len(segment):
        c = segment[i]
        if c == "*":
            out += "[^/]*"
        elif c == "?":
            out += "[^/]"
        elif c == "[" and (end := segment.find("]", i + 2)) != -1:
            body = segment[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            out += "[" + ("^" if negate else "") + body.replace("\\", "\\\\") + "]"
            i = end
        else:
            out += re.escape(c)
        i += 1
    return out


def _run_collect(
    command: str, workspace: Path, timeout_s: float, env: dict[str, str] | None = None
) -> tuple[int | None, str | None, str | None]:
    """(collected, None, what could not be collected) or (None, one line saying why there is no
    count, None)."""
    ran = run_shell(command, workspace, timeout_s, env)
    if ran.cannot_start is not None:
        return None, ran.cannot_start, None
    if ran.timed_out:
        return None, f"timed out after {timeout_s:g}s", None
    out, returncode = ran.output, ran.returncode
    output = out.decode(errors="replace")
    count, problem = count_collected(output)
    broken = collection_errors(output)
    if returncode not in (0, 5) and not (broken and count is not None):
        return None, f"exit code {returncode}: {_failure_detail(output)}", None
    if problem is not None:
        return None, problem, None
    if count is None:
        detail = _failure_detail(output)
        return None, f"exit code 5: {detail}" if returncode == 5 else f"no test count in: {detail}", None
    return count, None, broken


_SUMMARY = re.compile(r"(no|\d+)(?:/\d+)? tests? collected\b(.*)")
_ERRORS = re.compile(r"\b(\d+) errors?\b")
_PER_FILE = re.compile(r"(\S+\.\w+): (\d+)")
_TIMING = re.compile(r"\s+in [\d.]+s\b.*$")


def count_collected(output: str) -> tuple[int | None, str | None]:
    """The number of tests a collect command's output shows, and the problem when it shows one.

    In order: pytest's summary line ("12 tests collected", "3/12 tests collected (9 deselected)",
    "no tests collected"; errors beside it are `collection_errors`); node ids, one a line (`-q`); per-file
    counts ("tests/test_a.py: 3", what `-qq` prints); an output that is one integer (`grep -c`).
    (None, None) when the output shows none of these.
    """
    lines = [line.rstrip() for line in output.splitlines()]
    for line in reversed(lines):
        found = _SUMMARY.match(line.strip(" ="))
        if found is None:
            continue
        return (0 if found.group(1) == "no" else int(found.group(1))), None
    node_ids = [line for line in lines if "::" in line and not line[:1].isspace()]
    if node_ids:
        return len(node_ids), None
    per_file = [_PER_FILE.fullmatch(line) for line in lines]
    if any(per_file):
        return sum(int(m.group(2)) for m in per_file if m is not None), None
    if output.strip().isdigit():
        return int(output.strip()), None
    return None, None


def collection_errors(output: str) -> str | None:
    """One line naming what pytest could not collect ("2 errors (ERROR tests/test_a.py; …)"),
    from its summary line; None when it collected everything."""
    for line in reversed(output.splitlines()):
        found = _SUMMARY.match(line.strip(" ="))
        if found is None:
            continue
        errors = _ERRORS.search(found.group(2))
        if errors is None or int(errors.group(1)) == 0:
            return None
        return f"errors during collection: {_failure_detail(output)}"
    return None


def _failure_detail(output: str) -> str:
    """One line from a failed collection's output: its last line and the files that failed."""
    lines = [s for line in output.splitlines() if (s := line.strip(" =!"))]
    if not lines:
        return "no output"
    detail = _TIMING.sub("", lines[-1])
    failed = [line for line in lines if line.startswith("ERROR ")]
    if failed:
        more = f", {len(failed) - 3} more" if len(failed) > 3 else ""
        detail += f" ({'; '.join(failed[:3])}{more})"
    return _one_line(detail, _ERROR_TEXT_CHARS)


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- judging ------------------------------------------------------------------------------------


def compare(
    now: TestMeasure, baseline: TestMeasure | None, baseline_label: str | None = None
) -> RatchetVerdict:
    """Judge `now` against `baseline` (None: there is none yet).

    Fail when a baseline test file is missing now, fewer tests are collected (compared only when
    both sides counted with the same command), a test function got weaker (`outcomes.compare_functions`,
    when both sides know their functions), or a Python file newly reaches into the test runner.
    Findings fail even when the suite cannot run now; otherwise a suite that cannot run is an
    error. `evidence["measure"]` is `now`, for use as a later baseline.
    """
    evidence: dict[str, Any] = {
        "measure": now.to_json(),
        "files": len(now.files),
        "collected": now.collected,
    }
    if now.error is not None:
        evidence["error"] = now.error
    if now.broken is not None:
        evidence["broken"] = now.broken
    if baseline is None:
        status = "error" if now.error is not None else "pass"
        evidence["summary"] = _error_line(now) if now.error is not None else f"{_size(now)}; no baseline yet"
        if now.broken is not None:
            evidence["summary"] += f"; {now.broken}"
        return RatchetVerdict(status, evidence)

    label = baseline_label or "the baseline"
    missing = sorted(set(baseline.files) - set(now.files))
    before, after = baseline.collected, now.collected
    counted = fewer = False
    if before is not None and after is not None and baseline.collect_command == now.collect_command:
        counted, fewer = True, after < before
    findings = _function_findings(baseline, now, set(missing))
    evidence.update(
        baseline=baseline_label,
        missing_files=missing[:MISSING_FILES_LISTED],
        missing_files_more=max(0, len(missing) - MISSING_FILES_LISTED),
        tests_before=before,
        tests_now=after,
        counts_compared=counted,
        findings=[f.to_json() for f in findings[:FINDINGS_LISTED]],
        findings_more=max(0, len(findings) - FINDINGS_LISTED),
    )
    counts = f"collected tests {before} → {after}"
    if missing or fewer or findings:
        evidence["summary"] = _fail_summary(now, missing, counts if fewer else None, findings, label)
        return RatchetVerdict("fail", evidence)
    if now.error is not None:
        evidence["summary"] = _error_line(now)
        return RatchetVerdict("error", evidence)
    changes = [f"test files {len(baseline.files)} → {len(now.files)}"]
    if counted:
        changes.append(counts)
    elif before is not None and after is not None:
        changes.append("collected tests not compared: the collect command changed")
    if baseline.functions is not None and now.functions is not None:
        changes.append(f"test functions {len(baseline.functions)} → {len(now.functions)}")
    if now.broken is not None:
        changes.append(now.broken)
    evidence["summary"] = f"no tests went down against {label}: " + ", ".join(changes)
    return RatchetVerdict("pass", evidence)


def _fail_summary(
    now: TestMeasure, missing: list[str], counts: str | None, findings: list[outcomes.Finding], label: str
) -> str:
    parts = []
    if missing:
        named = ", ".join(missing[:3]) + (f", and {len(missing) - 3} more" if len(missing) > 3 else "")
        parts.append(f"{_plural(len(missing), 'test file')} missing ({named})")
    if counts is not None:
        parts.append(counts)
    if findings:
        shown = "; ".join(f.detail for f in findings[:3])
        more = f"; and {len(findings) - 3} more" if len(findings) > 3 else ""
        parts.append(f"{_plural(len(findings), 'test finding')}: {shown}{more}")
    if now.error is not None:
        parts.append(_error_line(now))
    if now.broken is not None:
        parts.append(now.broken)
    return "; ".join(parts) + f" (against {label})"


def _function_findings(
    baseline: TestMeasure, now: TestMeasure, missing_files: set[str]
) -> list[outcomes.Finding]:
    """Per-function findings, less the disappearances a missing file already names; and the files
    newly reaching into the test runner."""
    found: list[outcomes.Finding] = []
    if baseline.functions is not None and now.functions is not None:
        before = suite.functions_from_json(baseline.functions)
        current = suite.functions_from_json(now.functions)
        for finding in outcomes.compare_functions(before, current):
            if finding.kind == "missing" and finding.function.split("::")[0] in missing_files:
                continue
            found.append(finding)
    if baseline.patches is None:
        return found  # an older measure: what it patched is not known
    for path, why in sorted((now.patches or {}).items()):
        if path not in baseline.patches:
            found.append(
                outcomes.Finding("patches_runner", path, f"{path} reaches into the test runner: {why}")
            )
    return found


def _size(m: TestMeasure) -> str:
    files = _plural(len(m.files), "test file")
    return f"{files}, {_plural(m.collected, 'test')} collected" if m.collected is not None else files


def _error_line(m: TestMeasure) -> str:
    return f"cannot collect the tests with `{m.collect_command}`: {m.error}"


def _plural(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
