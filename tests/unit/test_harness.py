"""The judge's own tree and the pinned check harness: real git, real files, real Python processes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from longrun.scheduler.judging import harness
from longrun.scheduler.judging.tree import judge_env, judge_tree, write_tree
from longrun.scheduler.session import mirror
from longrun.scheduler.session import workspace as ws


def _source(files: dict[str, str]) -> harness.Source:
    return harness.Source(frozenset(files), lambda p: files[p].encode() if p in files else None)


def test_a_check_names_its_scripts_build_files_and_the_modules_that_would_stand_in_for_its_tool() -> None:
    named = harness.named_by("python -m pytest -q tests")
    assert {"pytest.py", "pytest/__init__.py", "_pytest/__init__.py", "pluggy.py"} <= named
    assert "tests" not in named
    assert {"check.sh", "Makefile", "makefile", "GNUmakefile"} <= harness.named_by(
        "bash check.sh && make test"
    )
    assert harness.named_by("./scripts/run.sh --fast") == {"scripts/run.sh"}
    assert harness.named_by("FOO=1 npm test") == {"package.json"}
    assert harness.named_by("make -f build/tests.mk check") == {"build/tests.mk"}
    assert "t.js" in harness.named_by("cd web; node t.js")
    assert harness.named_by("grep -q ready state.txt") == set()
    assert harness.named_by("cat /etc/passwd; bash ../outside.sh") == set()


def test_only_the_runners_part_of_a_shared_file_counts() -> None:
    base = '[project]\nname = "x"\ndependencies = []\n\n[tool.pytest.ini_options]\naddopts = "-q"\n'
    deps = base.replace("dependencies = []", 'dependencies = ["httpx"]')
    opts = base.replace('addopts = "-q"', "addopts = \"-q -k 'not hard'\"")
    digest = harness.digest
    assert digest("pyproject.toml", deps.encode()) == digest("pyproject.toml", base.encode())
    assert digest("pyproject.toml", opts.encode()) != digest("pyproject.toml", base.encode())
    cfg = "[metadata]\nname = x\n[tool:pytest]\naddopts = -q\n"
    assert digest("setup.cfg", cfg.replace("name = x", "name = y").encode()) == digest(
        "setup.cfg", cfg.encode()
    )
    assert digest("setup.cfg", cfg.replace("-q", "-x").encode()) != digest("setup.cfg", cfg.encode())
    pkg = '{"name": "x", "dependencies": {}, "scripts": {"test": "jest"}}'
    assert digest("package.json", pkg.replace('"name": "x"', '"name": "y"').encode()) == digest(
        "package.json", pkg.encode()
    )
    assert digest("package.json", pkg.replace("jest", "true").encode()) != digest(
        "package.json", pkg.encode()
    )
    assert digest("pyproject.toml", b"not = [toml") != digest("pyproject.toml", b"not = [toml2")
    assert digest("pytest.ini", None) is None


def test_what_changed_since_the_pin() -> None:
    start = {"tests/test_a.py": "def test_a(): pass\n", "pytest.ini": "[pytest]\n", "calc.py": ""}
    pinned = harness.pin(_source(start), ["python -m pytest -q tests"], (), ())
    assert pinned["files"]["pytest.ini"] is not None and pinned["files"]["conftest.py"] is None
    assert "tests/test_a.py" not in pinned["files"]  # tests are the ratchet's, not the harness's
    assert harness.changes(pinned, _source(start)) == []

    now = {
        **start,
        "pytest.ini": "[pytest]\naddopts = -k easy\n",
        "tests/conftest.py": "",
        "tests/deep/conftest.py": "",  # a new folder: no conftest was pinned there
        "pytest.py": "",
        "calc.py": "def add(): ...\n",  # the work itself
    }
    found = {c.path: c.how for c in harness.changes(pinned, _source(now))}
    assert found == {
        "pytest.ini": "changed",
        "tests/conftest.py": "added",
        "tests/deep/conftest.py": "added",
        "pytest.py": "added",
    }
    line = harness.summary(harness.changes(pinned, _source(now)))
    assert line.startswith("the check harness changed: ") and "pytest.ini changed" in line

    excluded = harness.pin(_source(start), ["python -m pytest -q tests"], (), ("pytest.ini",))
    assert "pytest.ini" not in excluded["files"]


def test_a_module_beside_the_tests_that_shadows_an_installed_one_is_found() -> None:
    pytest.importorskip("hypothesis")
    paths = ["tests/test_a.py", "tests/hypothesis.py", "src/hypothesis.py", "json.py", "calc.py"]
    assert harness.shadowing(paths) == {"tests/hypothesis.py"}
    pinned = harness.pin(_source({"tests/test_a.py": ""}), [], (), ())
    now = _source({"tests/test_a.py": "", "hypothesis/__init__.py": ""})
    assert [(c.path, c.now) for c in harness.changes(pinned, now)] == [("hypothesis/__init__.py", "shadow")]


def _repo(tmp_path: Path, home: Path) -> tuple[Path, str]:
    repo = tmp_path / "repo"
    ws.init_workspace(repo, "longrun/t")
    (repo / "tests").mkdir()
    (repo / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    (repo / "check.sh").write_text("#!/bin/sh\nexit 0\n")
    (repo / "check.sh").chmod(0o755)
    (repo / ".gitattributes").write_text("tests/** export-ignore\n* text eol=crlf\n")
    (repo / "inside").symlink_to("tests/test_a.py")
    (repo / "absolute").symlink_to("/etc/hostname")
    (repo / "dot").symlink_to(".")
    (repo / "__pycache__").mkdir()
    (repo / "__pycache__" / "calc.cpython-311.pyc").write_bytes(b"not the source")
    (repo / "escape").symlink_to("dot/..")
    sha = ws.snapshot(repo, "t", "refs/longrun/t/checkpoints/head")
    mirror.keep(home, repo, "t", sha)
    return repo, sha


def test_the_judges_tree_is_the_commit_byte_for_byte_without_links_that_leave_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    repo, sha = _repo(tmp_path, home)
    folder = tmp_path / "out"
    folder.mkdir()
    files, left_out = write_tree(home, sha, folder)

    assert sorted(left_out) == ["absolute", "escape"]
    assert (folder / "tests" / "test_a.py").read_bytes() == b"def test_a():\n    assert True\n"  # no CRLF
    assert (folder / "check.sh").stat().st_mode & 0o100
    assert (folder / "inside").is_symlink() and (folder / "inside").read_text().startswith("def test_a")
    assert not (folder / "absolute").exists() and not (folder / "escape").exists()
    assert "tests/test_a.py" in files and "absolute" not in files
    assert not (folder / "__pycache__").exists()  # committed bytecode could stand in for its source


def test_the_tree_comes_from_the_mirror_when_the_workspace_lost_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    repo, sha = _repo(tmp_path, home)
    ws.git(repo, "update-ref", "-d", "refs/longrun/t/checkpoints/head")
    ws.git(repo, "reflog", "expire", "--expire=now", "--all")
    ws.git(repo, "gc", "-q", "--prune=now")
    assert not ws.git(repo, "cat-file", "-e", sha, check=False)
    with judge_tree(home, repo, "t", sha) as tree:
        assert (tree.path / "check.sh").is_file()
        assert tree.path.parent == home / "judging"
        assert tree.tree == mirror.mgit(home, "rev-parse", f"{sha}^{{tree}}")
    assert not tree.path.exists()
    assert mirror.bring_back(home, repo, "t", sha) is True
    assert ws.git(repo, "cat-file", "-t", sha) == "commit"


def test_in_the_judges_environment_a_module_of_the_tree_cannot_shadow_an_installed_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, tree, live = tmp_path / "home", tmp_path / "tree", tmp_path / "live"
    tree.mkdir()
    live.mkdir()
    (tree / "pytest.py").write_text("raise SystemExit('the fake pytest ran')\n")
    (tree / "calc.py").write_text("VALUE = 'from the tree'\n")
    (live / "calc.py").write_text("VALUE = 'from the live workspace'\n")
    monkeypatch.setenv("PATH", os.pathsep.join([str(tree), str(live / "bin"), ".", os.environ["PATH"]]))
    monkeypatch.setenv("PYTHONPATH", str(live))
    env = judge_env(home, tree, live)

    def python(*args: str) -> str:
        ran = subprocess.run(["python", *args], cwd=tree, env=env, capture_output=True, text=True, timeout=60)
        assert ran.returncode == 0, ran.stderr
        return ran.stdout.strip()

    assert python("-m", "pytest", "--version").startswith("pytest ")  # the installed one, not the fake
    assert python("-c", "import calc; print(calc.VALUE)") == "from the tree"
    paths = python("-c", "import sys; print('\\n'.join(sys.path))").splitlines()
    assert paths[-1] == str(tree) and not any(p.startswith(str(live)) for p in paths)
    assert all(not p.startswith((str(tree), str(live))) for p in env["PATH"].split(":"))
    assert env["PYTHONSAFEPATH"] == "1" and Path(env["PATH"].split(":")[0]) == Path(sys.executable).parent
