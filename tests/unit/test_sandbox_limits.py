"""The session's cgroup: made with its bounds, and never left behind by an owner that died."""

from __future__ import annotations

import os
import subprocess

import pytest

from longrun.scheduler.session.sandbox.limits import Bounds, Limits, sweep


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.fixture
def bounds() -> Bounds:
    probe = Limits.make(f"longrun-probe-{os.getpid()}", Bounds(64, 16, 60))
    probe.remove()
    if not probe.version:
        pytest.skip(f"no cgroup can be made here ({probe.why_not})")
    return Bounds(64, 16, 60)


def test_a_group_whose_owner_died_is_swept_and_a_live_owners_is_kept(bounds: Bounds) -> None:
    live = Limits.make(f"longrun-test-2-{os.getpid()}", bounds)
    stale = Limits.make(f"longrun-test-1-{_dead_pid()}", bounds)  # made after, so nothing swept it yet
    try:
        assert all(d.is_dir() for d in [*stale.dirs.values(), *live.dirs.values()])
        sweep()
        assert not any(d.exists() for d in stale.dirs.values())
        assert all(d.is_dir() for d in live.dirs.values())
    finally:
        live.remove()
        stale.remove()
    assert not any(d.exists() for d in live.dirs.values())


def test_the_bounds_are_written_where_the_kernel_reads_them(bounds: Bounds) -> None:
    made = Limits.make(f"longrun-test-3-{os.getpid()}", bounds)
    try:
        if made.version == 1:
            assert (made.dirs["pids"] / "pids.max").read_text().strip() == "16"
            assert int((made.dirs["memory"] / "memory.limit_in_bytes").read_text()) == 64 * 1024 * 1024
        else:
            group = made.dirs["unified"]
            assert (group / "pids.max").read_text().strip() == "16"
            assert int((group / "memory.max").read_text()) == 64 * 1024 * 1024
        assert made.breach() is None and made.pids() == []
    finally:
        made.remove()
