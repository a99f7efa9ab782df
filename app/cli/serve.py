"""`longrun serve`: the dashboard in a browser tab, behind a token, on this machine unless `--host`
says otherwise.
"""

from __future__ import annotations

import argparse
import socket
import sys
from pathlib import Path

from longrun.app.cli.output import EXIT_USAGE, open_store
from longrun.app.cli.parsing import Commands


def port_number(text: str) -> int:
    """An argparse type: a TCP port, 0 to 65535 (0: the system picks a free one)."""
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(
            f"expected a port from 0 to 65535 (0 picks a free one), found {text!r}"
        )
    return port


def cmd_serve(args: argparse.Namespace) -> int:
    from longrun.app.serve import (
        WILDCARDS,
        DashboardServer,
        Guard,
        ServeOptionError,
        bind,
        dashboard_command,
        host_port,
        is_loopback,
        new_token,
        token_from_file,
    )

    try:
        sock = bind(args.host, args.port)
        try:
            token = token_from_file(args.token_file) if args.token_file else new_token()
            store = open_store(args)
            home = store.home
            store.close()
        except BaseException:
            sock.close()
            raise
    except ServeOptionError as exc:
        # A value it cannot start with is a usage error (exit 2), like a bad --port.
        print(f"longrun: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    port = int(sock.getsockname()[1])
    shown = host_port(socket.gethostname() if args.host in WILDCARDS else args.host, port)
    if not is_loopback(args.host):
        listening = host_port(args.host or "0.0.0.0", port)
        print(
            f"longrun serve: warning: listening on {listening}: the dashboard is reachable from the network, "
            "and anyone with the token can approve tool calls (over plain HTTP)",
            file=sys.stderr,
        )
    print(f"Serving the dashboard of {home} (Ctrl+C stops it). Open:", flush=True)
    print(f"http://{shown}/?token={token}", flush=True)
    guard = Guard.for_bind(args.host, port, token)
    DashboardServer(sock, guard, dashboard_command(home, args.no_daemon)).run()
    print("longrun serve: stopped", flush=True)
    return 0


def register(commands: Commands) -> None:
    p = commands.add(
        "serve",
        cmd_serve,
        "the dashboard in a browser: every tab needs the token in the URL this prints",
    )
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="the address to listen on (default 127.0.0.1: this machine only); any other one makes the "
        "dashboard reachable from the network",
    )
    p.add_argument(
        "--port", type=port_number, default=8000, metavar="N", help="default 8000; 0 picks a free one"
    )
    p.add_argument(
        "--token-file",
        type=Path,
        metavar="PATH",
        help="take the token from PATH's first line (a file only you may read), or write a new one there "
        "(mode 0600) when PATH does not exist; without it, every start makes a new token",
    )
    p.add_argument(
        "--no-daemon", action="store_true", help="the dashboards do not start a supervisor when none runs"
    )
