"""A session's sandbox: where the worker's hands run, made when the session starts and thrown away
when it ends.

The harness (the brain) keeps the secrets, the store and the judge; only what the worker runs
(its shell, its commands) goes inside: the workspace read-write and nothing else of the user's,
no secret in the environment, no network unless the spec turns it on (or names the hosts it may
reach, through the egress proxy), bounded in memory, processes and CPU time (`limits`), and every
process it started killed at the end.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from longrun.scheduler.endpoints.egress import EgressProxy
from longrun.scheduler.endpoints.relay import UnixRelays
from longrun.scheduler.session.sandbox import bwrap
from longrun.scheduler.session.sandbox.limits import Bounds, Limits
from longrun.scheduler.session.workspace import PRIVATE_DIR
from longrun.scheduler.spec.sandbox import SandboxSpec
from longrun.store.errors import LongrunError

WATCH_SECONDS = 0.25
"""How often the limits are looked at while the session runs."""

__all__ = ["Sandbox", "SandboxUnavailable", "require_bwrap"]


class SandboxUnavailable(LongrunError):
    """The sandbox the spec asks for cannot be made here; nothing runs unconfined instead."""

    title = "sandbox"


_probed: dict[str, str | None] = {}


def require_bwrap() -> str:
    """The path of a bubblewrap that can make a sandbox here, or a one-line `SandboxUnavailable`."""
    found = bwrap.find_bwrap()
    if found is None:
        raise SandboxUnavailable(
            f"the sandbox needs bubblewrap, which is not installed: {bwrap.INSTALL_HINT}"
        )
    if found not in _probed:
        proc = subprocess.run(
            [found, "--unshare-all", "--ro-bind", "/", "/", "--", "true"],
            capture_output=True,
            text=True,
            check=False,
        )
        _probed[found] = (
            None if proc.returncode == 0 else (proc.stderr.strip().splitlines() or ["failed"])[-1]
        )
    why = _probed[found]
    if why is not None:
        raise SandboxUnavailable(
            f"bubblewrap ({found}) cannot make a sandbox on this machine ({why}); "
            'allow unprivileged user namespaces, or set [sandbox] mode = "off" to run unconfined'
        )
    return found


@dataclass
class Sandbox:
    """One session's sandbox. `command(argv)` is what runs `argv` inside; `close` ends it all."""

    spec: SandboxSpec
    workspace: Path
    limits: Limits
    prefix: list[str]
    env: dict[str, str]
    read_only: list[Path]
    """Folders of the workspace that are read-only inside (and to the worker's file tools)."""
    breached: str | None = None
    on_breach: Callable[[str], None] | None = None
    relays: UnixRelays | None = None
    """The loopback ports outside that are reachable inside (`reach`), when it has no network."""
    egress: EgressProxy | None = None
    """The proxy to the hosts `[sandbox] network` allows, when it names hosts."""
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _watch: threading.Thread | None = field(default=None, repr=False)

    @classmethod
    def open(cls, spec: SandboxSpec, workspace: Path, name: str, hidden: list[Path]) -> Sandbox:
        """Make the session's sandbox. `hidden` are the folders it must not show (the store, the
        user's home): a workspace that holds one of them is refused, not half-hidden."""
        found = require_bwrap()
        workspace = workspace.resolve()
        for path in hidden:
            if path.resolve().is_relative_to(workspace):
                raise SandboxUnavailable(
                    f"the workspace {workspace} holds {path}, which the sandbox must hide: "
                    "give the run a workspace of its own"
                )
        cpu = spec.cpu_minutes * 60
        limits = Limits.make(name, Bounds(spec.memory_mb, spec.processes, cpu))
        words = bwrap.argv(
            found,
            workspace,
            network=spec.network == "on",
            extra_rw=bwrap.git_dirs(workspace),
            extra_ro=bwrap.python_dirs(),
        )
        prefix = ["/bin/sh", "-c", limits.entry() + 'exec "$@"', "sh", *words]
        env = bwrap.inside_env(spec.pass_env, bwrap.git_identity(workspace))
        private = workspace / PRIVATE_DIR
        sandbox = cls(spec, workspace, limits, prefix, env, [private] if private.is_dir() else [])
        if spec.allowed_hosts:
            sandbox.egress = EgressProxy(spec.allowed_hosts)
            port = sandbox.egress.start()
            sandbox.reach(port)
            sandbox.env |= bwrap.proxy_env(port)
        return sandbox

    def reach(self, port: int) -> None:
        """Make 127.0.0.1:`port` outside (a server of this process's) reachable inside at the same
        address: with the network on it already is; without, through a relay (`endpoints.relay`)."""
        if self.spec.network == "on":
            return
        if self.relays is None:
            self.relays = UnixRelays()
        self.relays.add(port)

    def command(
        self, argv: list[str], binds: Sequence[Path] = (), read_only: Sequence[Path] = ()
    ) -> list[str]:
        """The words that run `argv` inside; `binds` are more folders to show read-write (a
        socket's folder), `read_only` more to show read-only (the folder of a program to run)."""
        outside, inside = self.words(binds, read_only)
        return [*outside, "--", *inside, *argv]

    def words(
        self, binds: Sequence[Path] = (), read_only: Sequence[Path] = ()
    ) -> tuple[list[str], list[str]]:
        """`command`'s words in two: the sandbox's (before `--`; more bwrap options may be added
        at their end), and those that start the command inside (the relays, when there are any)."""
        assert self.prefix[-1] == "--"
        extra = [word for path in read_only for word in ("--ro-bind", str(path), str(path))]
        extra += [word for path in binds for word in ("--bind", str(path), str(path))]
        inside: list[str] = []
        if self.relays is not None and self.relays.ports:
            extra += ["--ro-bind", str(self.relays.folder), str(self.relays.folder)]
            inside = self.relays.inside(sys.executable)
        return [*self.prefix[:-1], *extra], inside

    def describe(self) -> dict[str, Any]:
        """What the session's `sandbox` event records."""
        return {
            "mode": "on",
            "workspace": str(self.workspace),
            "network": self.spec.network_words,
            "limits": self.limits.how,
            "env": sorted(self.env),
        }

    def watch(self, on_breach: Callable[[str], None]) -> None:
        """Look at the limits every `WATCH_SECONDS` until `close`: when one is hit, kill what runs
        inside and call `on_breach` with the reason (from the watching thread)."""
        self.on_breach = on_breach
        if self.limits.version and self._watch is None:
            self._watch = threading.Thread(target=self._watching, name="sandbox-limits", daemon=True)
            self._watch.start()

    def _watching(self) -> None:
        while not self._stop.wait(WATCH_SECONDS):
            if self.check() is not None:
                return

    def check(self) -> str | None:
        """The limit hit so far (killing everything inside the first time it is seen), or None."""
        if self.breached is None:
            why = self.limits.breach()
            if why is not None:
                self.breached = why
                self.limits.kill()
                if self.on_breach is not None:
                    self.on_breach(why)
        return self.breached

    def close(self) -> None:
        """End the sandbox: stop watching, kill every process still inside, remove its cgroup."""
        self._stop.set()
        if self._watch is not None and self._watch is not threading.current_thread():
            self._watch.join(5)
        self.check()
        self.limits.kill()
        self.limits.remove()
        if self.relays is not None:
            self.relays.stop()
        if self.egress is not None:
            self.egress.stop()


def home_dirs() -> list[Path]:
    """The user's home folder, which no sandbox shows."""
    home = os.path.expanduser("~")
    return [Path(home)] if home not in ("/", "") else []
