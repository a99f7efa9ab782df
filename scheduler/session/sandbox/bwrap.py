"""The bubblewrap command line of a session's sandbox, and the environment inside it.

The sandbox's root is built from nothing: the system's programs and libraries read-only, the
Python that runs longrun read-only, a private `/tmp` (the home folder inside it), the workspace
read-write (with its `.longrun` folder read-only) and its git folder when that lives elsewhere.
Nothing else of the machine exists inside: not the user's home, not the store, not the judge's
trees or the checkpoint mirror. It has new user, PID, IPC, UTS and cgroup namespaces, a network
namespace of its own unless the network is on, no capabilities, and it dies with its parent.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path

from longrun.scheduler.session.workspace import PRIVATE_DIR

SYSTEM_DIRS = ("/usr", "/etc", "/opt")
"""Bound read-only. `/bin`, `/lib` and the like are bound too, or recreated as the links they are."""
TOP_LINKS = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
MASKED = ("/etc/shadow", "/etc/gshadow", "/etc/sudoers", "/etc/ssh")
"""Under `/etc`, hidden behind an empty file or folder: secrets of the machine, not of the run."""
HOME_INSIDE = "/tmp/home"
PASSED_ENV = ("LANG", "LANGUAGE", "LC_ALL", "LC_CTYPE", "LC_MESSAGES", "TZ", "TERM", "USER", "LOGNAME")
"""Variables passed in as they are (with the spec's `pass_env`); every other one stays outside."""
INSTALL_HINT = (
    'install bubblewrap (Debian and Ubuntu: apt-get install bubblewrap), or set [sandbox] mode = "off" '
    "to run the worker unconfined"
)


def find_bwrap() -> str | None:
    return shutil.which("bwrap")


def python_dirs() -> list[Path]:
    """The folders the Python running longrun needs (its install and its virtual environment)."""
    dirs: list[Path] = []
    for d in (sys.base_prefix, sys.prefix, str(Path(sys.executable).resolve().parent.parent)):
        path = Path(d).resolve()
        if not any(path.is_relative_to(s) for s in SYSTEM_DIRS) and path not in dirs:
            dirs.append(path)
    return dirs


def git_dirs(workspace: Path) -> list[Path]:
    """The workspace's git folders that are not inside it (a worktree's, the repository's)."""
    found: list[Path] = []
    for flag in ("--absolute-git-dir", "--git-common-dir"):
        proc = subprocess.run(
            ["git", "rev-parse", "--path-format=absolute", flag],
            cwd=workspace,
            capture_output=True,
            text=True,
            check=False,
        )
        path = Path(proc.stdout.strip()) if proc.returncode == 0 and proc.stdout.strip() else None
        if path is not None and not path.is_relative_to(workspace) and path not in found:
            found.append(path)
    return found


def _system_binds() -> list[str]:
    args: list[str] = []
    for d in SYSTEM_DIRS:
        if os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for d in TOP_LINKS:
        if os.path.islink(d):
            args += ["--symlink", os.readlink(d), d]
        elif os.path.isdir(d):
            args += ["--ro-bind", d, d]
    for masked in MASKED:
        if os.path.isdir(masked):
            args += ["--tmpfs", masked]
        elif os.path.exists(masked):
            args += ["--ro-bind", "/dev/null", masked]
    return args


def argv(
    bwrap: str,
    workspace: Path,
    *,
    network: bool,
    extra_rw: Iterable[Path] = (),
    extra_ro: Iterable[Path] = (),
) -> list[str]:
    """The `bwrap …` words before the command to run inside."""
    args = [bwrap, "--unshare-all", "--die-with-parent", "--new-session", "--cap-drop", "ALL"]
    if network:
        args.append("--share-net")
    args += _system_binds()
    args += [
        "--proc",
        "/proc",
        "--dev",
        "/dev",
        "--tmpfs",
        "/tmp",
        "--dir",
        HOME_INSIDE,
        "--tmpfs",
        "/var/tmp",
    ]
    for path in extra_ro:  # after the private /tmp, which would hide one that lives there
        args += ["--ro-bind", str(path), str(path)]
    args += ["--bind", str(workspace), str(workspace)]
    private = workspace / PRIVATE_DIR
    if private.is_dir():
        args += ["--ro-bind", str(private), str(private)]
    for path in extra_rw:
        args += ["--bind", str(path), str(path)]
    return [*args, "--chdir", str(workspace), "--"]


def inside_env(pass_env: Iterable[str], identity: dict[str, str]) -> dict[str, str]:
    """The environment of what runs inside: built up from nothing, so no secret can be in it."""
    env = {name: os.environ[name] for name in (*PASSED_ENV, *pass_env) if name in os.environ}
    path = [str(Path(sys.executable).parent), "/usr/local/bin", "/usr/bin", "/bin"]
    env |= {"PATH": os.pathsep.join(path), "HOME": HOME_INSIDE, "TMPDIR": "/tmp"}
    return env | identity


def proxy_env(port: int) -> dict[str, str]:
    """What tells the programs inside to reach the network through the egress proxy on `port`
    (loopback itself stays direct: a server the work started inside is reached as it is)."""
    url = f"http://127.0.0.1:{port}"
    names = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    direct = "localhost,127.0.0.1,::1"
    return {
        **{name: url for name in names},
        **{name.lower(): url for name in names},
        "NO_PROXY": direct,
        "no_proxy": direct,
    }


def git_identity(workspace: Path) -> dict[str, str]:
    """Who commits inside (the user's git identity is in a home the sandbox does not show)."""
    out: dict[str, str] = {}
    for key, names in (
        ("user.name", ("GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME")),
        ("user.email", ("GIT_AUTHOR_EMAIL", "GIT_COMMITTER_EMAIL")),
    ):
        proc = subprocess.run(
            ["git", "config", key], cwd=workspace, capture_output=True, text=True, check=False
        )
        if proc.returncode == 0 and proc.stdout.strip():
            out |= dict.fromkeys(names, proc.stdout.strip())
    return out
