"""`python -m longrun.scheduler.endpoints.scripted`: serve a script until SIGTERM or SIGINT."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from longrun.scheduler.endpoints.scripted.script import builtin_scripts, load_script
from longrun.scheduler.endpoints.scripted.server import ScriptedModelServer
from longrun.store.errors import ScriptError


def main(argv: list[str] | None = None) -> int:
    """Serve a script until SIGTERM or SIGINT; print the base URL as the first line."""
    parser = argparse.ArgumentParser(
        prog="python -m longrun.scheduler.endpoints.scripted",
        description="Serve an Anthropic-compatible Messages API on loopback that plays a script.",
    )
    parser.add_argument(
        "--script", required=True, help=f"a built-in name ({', '.join(builtin_scripts())}) or a path"
    )
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--first-session", type=int, default=0, help="0-based script session to start at")
    args = parser.parse_args(argv)
    if args.first_session < 0:
        print("scripted: --first-session is 0 or more", file=sys.stderr)
        return 2
    try:
        script = load_script(args.script, base_dir=Path.cwd())
    except ScriptError as exc:
        print(f"scripted: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    server = ScriptedModelServer(script, first_session=args.first_session, port=args.port)
    try:
        url = server.start()
    except OSError as exc:
        print(f"scripted: cannot listen on port {args.port}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(url, flush=True)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
