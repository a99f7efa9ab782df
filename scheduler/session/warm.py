"""A warm session starter: `python -m longrun.scheduler.session --warm`.

Most of a session's start is Python importing what it needs (the store, the spec, the SDKs of the
workers), the same for every session. This process imports all of it once, then forks one child
per session it is asked for, and the child runs `python -m longrun.scheduler.session SESSION_ID`
from there on, as a cold start would: in a new session and process group, its output to its log,
its standard input empty. The supervisor (`supervisor.dispatch.WarmStarter`) writes one request a
line, `SESSION_ID LOG_PATH`, and reads back the child's pid (or `error: …`). Children are reaped
as they end. The parent holds no store, no thread and no connection, so nothing is shared after
the fork but imported code.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

PRELOAD = ("longrun.scheduler.session.harness", "longrun.scheduler.workers.sandboxed_shell")


def preload() -> list[str]:
    """Import the harness and every worker backend's module (those whose SDK is installed)."""
    from longrun.scheduler.workers.registry import BACKENDS

    modules = [*PRELOAD, *(backend.factory.partition(":")[0] for backend in BACKENDS.values())]
    loaded = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            continue  # a backend whose SDK is not installed starts cold, and says why then
        loaded.append(name)
    for name in ("anthropic", "claude_agent_sdk"):
        try:
            importlib.import_module(name)
        except ImportError:
            continue
        loaded.append(name)
    return loaded


def _child(session_id: int, log_path: str, grouped: int) -> None:
    """In the forked child: become the session's own process group (and say so on `grouped`),
    then run the session."""
    code = 1
    try:
        os.setsid()
        os.write(grouped, b"g")
        os.close(grouped)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # its own children's exit codes matter
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.close(null)
        os.close(out)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 (the streams live as long as the process)
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        from longrun.scheduler.session.harness import main

        code = main([str(session_id)])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # noqa: BLE001 (the child must never return into the parent's loop)
        print(f"longrun session: {type(exc).__name__}: {exc}", file=sys.stderr)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def serve() -> int:
    """Read requests from standard input until it closes; answer each with a pid or an error."""
    preload()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel as they end
    print("ready", flush=True)
    for line in sys.stdin:
        words = line.split(maxsplit=1)
        if len(words) != 2 or not words[0].isdigit():
            print(f"error: expected SESSION_ID LOG_PATH, got {line.strip()!r}", flush=True)
            continue
        # The pid is answered only once the child leads its own group (or is gone): a supervisor
        # that signals the group at once must reach the session, never this starter's group.
        grouped, told = os.pipe()
        try:
            pid = os.fork()
        except OSError as exc:
            os.close(grouped)
            os.close(told)
            print(f"error: cannot fork: {exc.strerror}", flush=True)
            continue
        if pid == 0:
            os.close(grouped)
            _child(int(words[0]), words[1].strip(), told)
        os.close(told)
        os.read(grouped, 1)  # b"" when the child died before it said so
        os.close(grouped)
        print(pid, flush=True)
    return 0
