"""`longrun mcp`: the store as an MCP server, over stdio (for a client that starts it, as Claude Code
and Claude Desktop do) or with `--http` over streamable HTTP behind a bearer token."""

from __future__ import annotations

import argparse
import socket
import sys
from typing import TYPE_CHECKING

from longrun.app.cli.output import EXIT_USAGE, open_store
from longrun.app.cli.parsing import Commands
from longrun.app.cli.serve import port_number

if TYPE_CHECKING:
    from longrun.store.db import Store

DEFAULT_PORT = 8001


def cmd_mcp(args: argparse.Namespace) -> int:
    from longrun.app.mcp.server import build_server

    if not args.http and (args.host is not None or args.port is not None):
        print("longrun mcp: error: --host and --port go with --http", file=sys.stderr)
        return EXIT_USAGE
    store = open_store(args)
    try:
        if not args.http:
            # stdout is the protocol's channel from here on: nothing else may be printed to it.
            build_server(store, allow_decisions=args.allow_decisions).run("stdio")
            return 0
        return _serve_http(args, store)
    finally:
        store.close()


def _serve_http(args: argparse.Namespace, store: Store) -> int:
    from longrun.app.mcp.http import PATH, HashedToken, auth_for, serve
    from longrun.app.mcp.server import build_server
    from longrun.app.serve import WILDCARDS, ServeOptionError, bind, host_port, is_loopback, new_token

    host = "127.0.0.1" if args.host is None else args.host
    try:
        sock = bind(host, DEFAULT_PORT if args.port is None else args.port)
    except ServeOptionError as exc:
        print(f"longrun: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    port = int(sock.getsockname()[1])
    shown = host_port(socket.gethostname() if host in WILDCARDS else host, port)
    url = f"http://{shown}{PATH}"
    token = new_token()
    server = build_server(
        store,
        allow_decisions=args.allow_decisions,
        auth=auth_for(f"http://{shown}"),
        token_verifier=HashedToken(token),
    )
    if not is_loopback(host):
        print(
            f"longrun mcp: warning: listening on {host_port(host or '0.0.0.0', port)}: the store is "
            "reachable from the network, and anyone with the token can use its tools (over plain HTTP)",
            file=sys.stderr,
        )
    print(f"Serving the MCP server of {store.home} over streamable HTTP (Ctrl+C stops it).", flush=True)
    print(f"url: {url}", flush=True)
    print(f"token: {token}", flush=True)
    print(
        "Send it as the header `Authorization: Bearer TOKEN`. It is shown only now: the server keeps "
        "nothing of it but its hash.",
        flush=True,
    )
    del token
    try:
        serve(server, sock, host)
    except KeyboardInterrupt:
        pass  # Ctrl+C: uvicorn has shut down gracefully, then passed the signal on
    print("longrun mcp: stopped", flush=True)
    return 0


def register(commands: Commands) -> None:
    p = commands.add(
        "mcp",
        cmd_mcp,
        "the store as an MCP server (runs, status, resume context, approvals, handoffs) over stdio, "
        "or over HTTP with --http",
    )
    p.add_argument(
        "--allow-decisions",
        action="store_true",
        help="serve the decide tool: MCP clients may approve and deny what waits for a person",
    )
    p.add_argument(
        "--http",
        action="store_true",
        help="serve streamable HTTP at /mcp behind a bearer token (printed once) instead of stdio",
    )
    p.add_argument(
        "--host",
        help="with --http: the address to listen on (default 127.0.0.1: this machine only); any other "
        "one makes the store reachable from the network",
    )
    p.add_argument(
        "--port",
        type=port_number,
        metavar="N",
        help=f"with --http: default {DEFAULT_PORT}; 0 picks a free one",
    )
