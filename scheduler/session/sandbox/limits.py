"""A session's resource limits: a cgroup of its own where this process may make one (cgroup v2 with
the controllers delegated, or the v1 `memory`, `pids` and `cpuacct` hierarchies), else `ulimit`
per process.

A cgroup bounds everything the sandbox runs together (memory, processes at once, CPU time) and
says when a bound was hit (`pids.events`, the OOM killer's count, the CPU used), so the harness
can end the session `error` with the reason. Without one, each process is bounded on its own
(address space and CPU time) and nobody is told; `Limits.how` says which it is.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from longrun.scheduler.session.processes import process_alive

CGROUP_ROOT = Path("/sys/fs/cgroup")
V1_CONTROLLERS = ("memory", "pids", "cpuacct")


@dataclass(frozen=True)
class Bounds:
    memory_mb: int
    processes: int
    cpu_seconds: int


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _keyed(text: str) -> dict[str, int]:
    """`key value` lines (pids.events, memory.events, memory.oom_control, cpu.stat) as ints."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if value.strip().isdigit():
            out[key] = int(value)
    return out


def _mounts() -> list[tuple[str, str, set[str]]]:
    """(mount point, file system type, super options) of every cgroup mount this process sees."""
    found = []
    for line in _read(Path("/proc/self/mountinfo")).splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 5 and len(tail) >= 3 and tail[0] in ("cgroup", "cgroup2"):
            found.append((fields[4], tail[0], set(tail[2].split(","))))
    return found


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per v1 controller, and under "" its v2 path."""
    paths: dict[str, str] = {}
    for line in _read(Path("/proc/self/cgroup")).splitlines():
        _, controllers, path = line.split(":", 2)
        for name in controllers.split(",") if controllers else [""]:
            paths[name] = path
    return paths


@dataclass
class Limits:
    """The session's bounds as applied: `dirs` are its cgroups (none: per-process ulimits)."""

    bounds: Bounds
    version: int = 0
    """2 or 1 for a cgroup of that version, 0 for ulimit."""
    dirs: dict[str, Path] = field(default_factory=dict)
    why_not: str = ""
    """Why no cgroup could be made (with `version` 0)."""

    @classmethod
    def make(cls, name: str, bounds: Bounds) -> Limits:
        """The session's cgroup, made and bounded now, or per-process limits saying why not.

        `name` ends with `-PID`, the process that owns it; the groups of owners that died without
        removing theirs (a session killed at its deadline) are removed first."""
        sweep()
        reasons = []
        for attempt in (cls._v2, cls._v1):
            try:
                made = attempt(name, bounds)
            except OSError as exc:
                reasons.append(f"{exc.strerror or exc}")
                continue
            if isinstance(made, str):
                reasons.append(made)
                continue
            return made
        return cls(bounds, 0, {}, "; ".join(reasons) or "no cgroup file system")

    @classmethod
    def _v2(cls, name: str, bounds: Bounds) -> Limits | str:
        mount = next((m for m, kind, _ in _mounts() if kind == "cgroup2"), None)
        own = _own_paths().get("")
        if mount is None or own is None:
            return "no cgroup v2"
        parent = Path(mount) / own.lstrip("/")
        enabled = set(_read(parent / "cgroup.subtree_control").split())
        if not {"memory", "pids", "cpu"} <= enabled:
            return "cgroup v2 without the memory, pids and cpu controllers delegated"
        group = parent / name
        group.mkdir()
        made = cls(bounds, 2, {"unified": group})
        try:
            (group / "memory.max").write_text(str(bounds.memory_mb * 1024 * 1024))
            if (group / "memory.swap.max").exists():
                (group / "memory.swap.max").write_text("0")
            (group / "pids.max").write_text(str(bounds.processes))
        except OSError:
            made.remove()
            raise
        return made

    @classmethod
    def _v1(cls, name: str, bounds: Bounds) -> Limits | str:
        mounts = {c: Path(m) for m, kind, opts in _mounts() if kind == "cgroup" for c in opts}
        own = _own_paths()
        if not all(c in mounts and c in own for c in V1_CONTROLLERS):
            return "no cgroup v1 memory, pids and cpuacct hierarchies"
        made = cls(bounds, 1, {})
        try:
            for controller in V1_CONTROLLERS:
                group = mounts[controller] / own[controller].lstrip("/") / name
                group.mkdir()
                made.dirs[controller] = group
            memory = made.dirs["memory"]
            (memory / "memory.limit_in_bytes").write_text(str(bounds.memory_mb * 1024 * 1024))
            if (memory / "memory.memsw.limit_in_bytes").exists():  # no way around the limit through swap
                (memory / "memory.memsw.limit_in_bytes").write_text(str(bounds.memory_mb * 1024 * 1024))
            (made.dirs["pids"] / "pids.max").write_text(str(bounds.processes))
        except OSError:
            made.remove()
            raise
        return made

    @property
    def how(self) -> str:
        b = self.bounds
        if self.version:
            return (
                f"cgroup v{self.version}: {b.memory_mb} MiB, {b.processes} processes, "
                f"{b.cpu_seconds // 60} CPU minutes for the whole session"
            )
        return (
            f"ulimit per process: {b.memory_mb} MiB of address space and {b.cpu_seconds // 60} CPU "
            f"minutes each, processes not bounded (no cgroup: {self.why_not})"
        )

    def entry(self) -> str:
        """Shell words that put the shell running them into the session's cgroup (or under its
        ulimits) before it `exec`s the sandbox: what runs inside can never start outside it."""
        if self.version:
            return "".join(
                f"echo $$ > {shlex.quote(str(d / 'cgroup.procs'))} && " for d in self.dirs.values()
            )
        b = self.bounds
        return f"ulimit -v {b.memory_mb * 1024} -t {b.cpu_seconds} && "

    def _file(self, controller: str, name: str) -> Path | None:
        d = self.dirs.get("unified" if self.version == 2 else controller)
        return None if d is None else d / name

    def breach(self) -> str | None:
        """The bound that was hit, in words, or None."""
        if not self.version:
            return None
        b = self.bounds
        pids = self._file("pids", "pids.events")
        if pids is not None and _keyed(_read(pids)).get("max", 0) > 0:
            return f"the sandbox's process limit ({b.processes}) was reached"
        oom = self._file("memory", "memory.events" if self.version == 2 else "memory.oom_control")
        if oom is not None and _keyed(_read(oom)).get("oom_kill", 0) > 0:
            return f"the sandbox's memory limit ({b.memory_mb} MiB) was reached: a process was killed"
        if self.cpu_seconds_used() > b.cpu_seconds:
            return f"the sandbox's CPU time limit ({b.cpu_seconds // 60} minutes) was used up"
        return None

    def cpu_seconds_used(self) -> float:
        if self.version == 2:
            used = self._file("cpu", "cpu.stat")
            return _keyed(_read(used)).get("usage_usec", 0) / 1e6 if used is not None else 0.0
        used = self._file("cpuacct", "cpuacct.usage")
        text = _read(used).strip() if used is not None else ""
        return int(text) / 1e9 if text.isdigit() else 0.0

    def pids(self) -> list[int]:
        procs = self._file("pids", "cgroup.procs")
        return [int(p) for p in _read(procs).split()] if procs is not None else []

    def kill(self, wait_s: float = 5.0) -> None:
        """SIGKILL everything in the session's cgroup, until it is empty (or `wait_s` passed)."""
        end = time.monotonic() + wait_s
        while (pids := self.pids()) and time.monotonic() < end:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            time.sleep(0.02)

    def remove(self) -> None:
        for group in self.dirs.values():
            for _ in range(50):  # a killed process leaves its group once it has been reaped
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.02)


def _parents() -> list[Path]:
    """The folders this process's session groups are made in (v2, then each v1 controller)."""
    found: list[Path] = []
    own = _own_paths()
    for mount, kind, opts in _mounts():
        controllers = [""] if kind == "cgroup2" else [c for c in V1_CONTROLLERS if c in opts]
        for c in controllers:
            if c in own:
                found.append(Path(mount) / own[c].lstrip("/"))
    return found


def sweep() -> None:
    """Remove the empty session groups whose owning process is gone."""
    for parent in _parents():
        try:
            groups = list(parent.glob("longrun-*"))
        except OSError:
            continue
        for group in groups:
            owner = group.name.rsplit("-", 1)[-1]
            if owner.isdigit() and not process_alive(int(owner)):
                try:
                    group.rmdir()
                except OSError:
                    pass
