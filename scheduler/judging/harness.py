"""The check harness: what a check depends on besides the code it checks, pinned when a person
approves the done-condition.

A check like `python -m pytest -q tests` passes or fails by what the test runner is told: its
configuration (`pytest.ini`, `[tool.pytest.ini_options]`, `conftest.py` files), the build file a
check names (`make test`), the script it runs (`bash check.sh`), and whatever would shadow the tool
(`pytest.py`). A worker that edits one of them can make the check pass without the work. So when
the done-condition is approved, the harness is recorded (a `harness_pinned` event: the checkpoint,
and a digest per path, None for a path that did not exist), and every later judgement restores the
pinned versions in the judge's tree before any check runs. A difference is a `harness_changed`
finding: the ratchet fails and a person approves (or denies) the change, seeing the diff.

For files that hold more than the runner's settings (`pyproject.toml`, `setup.cfg`, `tox.ini`,
`package.json`), only the runner's part counts: a new dependency in `pyproject.toml` is no finding,
a new `addopts` is. A module in the tree named like an installed one (a `hypothesis.py` beside the
tests) shadows it for the tests; one that was not there at the pin is a finding too, and is
removed from the judge's tree.
"""

from __future__ import annotations

import configparser
import difflib
import hashlib
import json
import re
import shlex
import site
import tomllib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path, PurePosixPath
from typing import Any

from longrun.evaluators.ratchet import DEFAULT_TEST_PATTERNS, _glob_regex

RUNNER_FILES = (
    "pytest.ini",
    ".pytest.ini",
    "pyproject.toml",
    "setup.cfg",
    "tox.ini",
    "conftest.py",
    "sitecustomize.py",
    "usercustomize.py",
    "noxfile.py",
    "package.json",
)
"""Pinned at the tree's root, present or not: where pytest (and npm) read their settings, and the
files Python runs at start-up."""
RUNNER_GLOBS = ("**/conftest.py", "**/pytest.ini", "jest.config.*", "vitest.config.*", ".mocharc*")
"""Pinned wherever they are when the pin is taken."""
MAKE_FILES = ("GNUmakefile", "makefile", "Makefile")
JUST_FILES = ("justfile", "Justfile")
INTERPRETERS = frozenset(
    {"bash", "sh", "zsh", "dash", "python", "python3", "node", "ruby", "perl", "source", "."}
)
TOOL_MODULES = {
    "pytest": ("pytest", "_pytest", "pluggy", "py"),
    "py.test": ("pytest", "_pytest", "pluggy", "py"),
}
"""Python modules a tool runs, pinned absent at the root so a module of the tree cannot stand in."""
_SPLIT = re.compile(r"&&|\|\||[;|&()\n]")
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
DIFF_BYTES = 6_000


@dataclass(frozen=True)
class Source:
    """The files of one tree, however they are read: the paths, and a reader of one file's bytes."""

    paths: frozenset[str]
    read: Callable[[str], bytes | None]


@dataclass(frozen=True)
class Change:
    path: str
    pinned: str | None
    now: str | None

    @property
    def how(self) -> str:
        if self.pinned is None:
            return "added"
        return "removed" if self.now is None else "changed"


def pin(
    source: Source, checks: Sequence[str], include: Sequence[str], exclude: Sequence[str]
) -> dict[str, Any]:
    """The harness of a tree: {"files": {path: digest or None}, "shadows": [paths]}."""
    paths = harness_paths(source.paths, checks, include, exclude)
    return {
        "files": {p: digest(p, source.read(p)) for p in sorted(paths)},
        "shadows": sorted(shadowing(source.paths, exclude)),
    }


def harness_paths(
    paths: Iterable[str], checks: Sequence[str], include: Sequence[str], exclude: Sequence[str]
) -> set[str]:
    """The paths pinned for a tree's files and the checks' commands."""
    present = set(paths)
    wanted = set(RUNNER_FILES)
    wanted |= {p for p in present if _matches(p, (*RUNNER_GLOBS, *include))}
    for dirname in {str(PurePosixPath(p).parent) for p in present if _matches(p, DEFAULT_TEST_PATTERNS)}:
        wanted |= {f"{d}/conftest.py" for d in _parents(dirname)}
    for check in checks:
        wanted |= named_by(check)
    return {p for p in wanted if not _matches(p, exclude) and not _matches(p, DEFAULT_TEST_PATTERNS)}


def _parents(dirname: str) -> list[str]:
    parts = PurePosixPath(dirname).parts
    return ["/".join(parts[:i]) for i in range(1, len(parts) + 1) if parts[0] != "."]


def named_by(check: str) -> set[str]:
    """Files a check command runs: the scripts it names, the build file of `make`/`just`/`npm`,
    and the modules that would stand in for a Python tool it starts."""
    named: set[str] = set()
    for part in _SPLIT.split(check):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        while words and _ASSIGNMENT.match(words[0]):
            words = words[1:]
        if not words:
            continue
        tool, rest = words[0], words[1:]
        name = PurePosixPath(tool).name
        if "/" in tool:
            named.add(_relative(tool))
        if name in ("make", "gmake"):
            given = _option(rest, "-f")
            named |= {_relative(given)} if given else set(MAKE_FILES)
        elif name == "just":
            named |= set(JUST_FILES)
        elif name in ("npm", "npx", "yarn", "pnpm"):
            named.add("package.json")
        elif name in INTERPRETERS and rest:
            if rest[0] == "-m" and len(rest) > 1:
                named |= _module_files(rest[1])
            elif not rest[0].startswith("-"):
                named.add(_relative(rest[0]))
        if name in TOOL_MODULES:
            named |= {f for module in TOOL_MODULES[name] for f in _module_files(module)}
    return {p for p in named if p and not p.startswith("/") and ".." not in PurePosixPath(p).parts}


def _module_files(module: str) -> set[str]:
    top = module.split(".")[0]
    found = {f"{top}.py", f"{top}/__init__.py"}
    if top in ("pytest", "py.test"):
        found |= {f for m in TOOL_MODULES["pytest"] for f in (f"{m}.py", f"{m}/__init__.py")}
    return found


def _option(words: Sequence[str], flag: str) -> str | None:
    for i, word in enumerate(words):
        if word == flag and i + 1 < len(words):
            return words[i + 1]
        if word.startswith(flag) and len(word) > len(flag):
            return word[len(flag) :]
    return None


def _relative(path: str) -> str:
    while path.startswith("./"):
        path = path[2:]
    return path


def _matches(path: str, patterns: Iterable[str]) -> bool:
    return any(_glob_regex(p).match(path) for p in patterns)


def digest(path: str, data: bytes | None) -> str | None:
    """What counts of a harness file: its bytes, or only the runner's settings in a shared file."""
    if data is None:
        return None
    name = PurePosixPath(path).name
    counted = _runner_part(name, data) if "/" not in path else None
    return hashlib.sha256(counted if counted is not None else data).hexdigest()


def _runner_part(name: str, data: bytes) -> bytes | None:
    """The runner's settings of a file that holds other things too, as canonical JSON; None when
    the whole file counts (it is not such a file, or it does not parse)."""
    try:
        text = data.decode()
        if name == "pyproject.toml":
            part: Any = tomllib.loads(text).get("tool", {}).get("pytest")
        elif name in ("setup.cfg", "tox.ini"):
            parser = configparser.ConfigParser(interpolation=None)
            parser.read_string(text)
            section = "tool:pytest" if name == "setup.cfg" else "pytest"
            part = dict(parser[section]) if parser.has_section(section) else None
        elif name == "package.json":
            doc = json.loads(text)
            part = {k: doc.get(k) for k in ("scripts", "jest", "mocha", "ava", "vitest")}
        else:
            return None
    except (UnicodeDecodeError, ValueError, tomllib.TOMLDecodeError, configparser.Error):
        return None
    return json.dumps(part, sort_keys=True).encode()


@lru_cache(maxsize=1)
def installed_modules() -> frozenset[str]:
    """Top-level module names installed in longrun's Python (its site-packages)."""
    import pkgutil

    folders = [p for p in [*site.getsitepackages(), site.getusersitepackages()] if Path(p).is_dir()]
    return frozenset(m.name for m in pkgutil.iter_modules(folders))


def shadowing(paths: Iterable[str], exclude: Sequence[str] = ()) -> set[str]:
    """Modules of the tree that would shadow an installed one for the tests: at the root and in
    the folders that hold test files or conftest files (which pytest puts on `sys.path`)."""
    present = set(paths)
    folders = {""} | {
        str(PurePosixPath(p).parent)
        for p in present
        if _matches(p, (*DEFAULT_TEST_PATTERNS, "**/conftest.py"))
    }
    folders = {"" if f == "." else f for f in folders}
    installed = installed_modules()
    found = set()
    for path in present:
        pure = PurePosixPath(path)
        if pure.name == "__init__.py" and len(pure.parts) >= 2:
            folder, module = str(pure.parent.parent), pure.parent.name
        elif pure.suffix == ".py":
            folder, module = str(pure.parent), pure.stem
        else:
            continue
        folder = "" if folder == "." else folder
        if folder in folders and module in installed and not _matches(path, exclude):
            found.add(path)
    return found


def changes(pinned: dict[str, Any], now: Source) -> list[Change]:
    """What differs from the pin in a tree: harness files changed, added or removed, and new
    shadowing modules."""
    found = []
    for path, was in pinned.get("files", {}).items():
        current = digest(path, now.read(path)) if path in now.paths else None
        if current != was:
            found.append(Change(path, was, current))
    files = set(pinned.get("files", {}))
    for path in sorted(p for p in now.paths - files if _matches(p, RUNNER_GLOBS)):
        found.append(Change(path, None, digest(path, now.read(path))))
    allowed = set(pinned.get("shadows", []))
    for path in sorted(shadowing(now.paths) - allowed - files):
        found.append(Change(path, None, "shadow"))
    return found


def diff(
    changes_: Sequence[Change], pinned: Callable[[str], bytes | None], now: Callable[[str], bytes | None]
) -> str:
    """A unified diff of the changed harness files, pinned → now, at most `DIFF_BYTES`."""
    out: list[str] = []
    for change in changes_:
        before = _lines(pinned(change.path) if change.pinned is not None else None)
        after = _lines(now(change.path))
        out.extend(
            difflib.unified_diff(before, after, f"pinned/{change.path}", f"now/{change.path}", lineterm="")
        )
    text = "\n".join(out)
    return text if len(text) <= DIFF_BYTES else text[:DIFF_BYTES] + "\n[… cut]"


def _lines(data: bytes | None) -> list[str]:
    if data is None:
        return []
    return data.decode(errors="replace").splitlines()


def summary(changes_: Sequence[Change]) -> str:
    """One line: "the check harness changed: conftest.py added, pytest.ini changed"."""
    parts = []
    for change in changes_[:5]:
        how = "added, shadowing an installed module" if change.now == "shadow" else change.how
        parts.append(f"{change.path} {how}")
    more = f", and {len(changes_) - 5} more" if len(changes_) > 5 else ""
    return "the check harness changed: " + ", ".join(parts) + more
