"""`longrun budget` (show or set a run's caps) and `longrun breaker reset`."""

from __future__ import annotations

import argparse

from longrun.app.cli.output import open_store, print_json, print_table, supervisor_alive
from longrun.app.cli.parsing import Commands
from longrun.store.errors import SpecError


def cmd_budget(args: argparse.Namespace) -> int:
    from longrun.scheduler import control

    store = open_store(args)
    setting = args.words[0] == "set"
    if len(args.words) != (2 if setting else 1):
        raise SpecError("usage: longrun budget RUN [--json] | longrun budget set RUN --usd N …")
    args.run = args.words[-1]
    if setting:
        caps = {
            k: v
            for k, v in (
                ("usd", args.usd),
                ("tokens", args.tokens),
                ("per_session_usd", args.per_session_usd),
                ("per_day_usd", args.per_day_usd),
            )
            if v is not None
        }
        if not caps:
            raise SpecError(
                "budget set: give at least one of --usd, --tokens, --per-session-usd, --per-day-usd"
            )
        run = control.set_budget(store, args.run, caps, by=args.by, comment=args.comment)
        shown = ", ".join(f"budget.{k} = {v:g}" for k, v in caps.items())
        print(f"{run.name} ({run.id}): {shown}; the run is {run.state}")
        if run.state == "scheduled" and not supervisor_alive(store):
            print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
        return 0
    doc = control.budget_document(store, args.run)
    if args.json:
        print_json(doc)
        return 0
    print(
        f"{doc['run_id']}  {doc['state']}  spent ${doc['spent_usd']:.4f}  today ${doc['today_usd']:.4f}  "
        f"last hour ${doc['last_hour_usd']:.4f}  (warn at {doc['warn_at']:.0%})"
    )
    if doc["caps"]:
        print_table(
            [
                [
                    c["cap"],
                    _amount(c["cap"], c["limit"]),
                    _amount(c["cap"], c["spent"]),
                    _amount(c["cap"], c["left"]),
                    f"{c['fraction']:.0%}",
                ]
                for c in doc["caps"]
            ],
            ["CAP", "LIMIT", "SPENT", "LEFT", "USED"],
        )
    else:
        print("no caps set")
    print_table(
        [[b["name"], str(b["limit"]), b["state"], b["reason"] or ""] for b in doc["breakers"]],
        ["BREAKER", "LIMIT", "STATE", "REASON"],
    )
    return 0


def _amount(cap: str, value: float) -> str:
    """A cap's figure as a person reads it: tokens whole, dollars to the cent's hundredth."""
    return f"{int(value):,}" if cap == "tokens" else f"${value:.4f}"


def cmd_breaker_reset(args: argparse.Namespace) -> int:
    from longrun.scheduler import control

    store = open_store(args)
    run = control.reset_breaker(store, args.run, args.name, by=args.by, comment=args.comment)
    if args.json:
        print_json(run.to_json() | {"breaker": args.name, "breaker_state": "half_open"})
        return 0
    print(f"breaker {args.name} of {run.name} ({run.id}) is half-open; the run is {run.state}")
    if run.state == "scheduled" and not supervisor_alive(store):
        print("no supervisor is running: start one with `longrun daemon` (or open longrun-ui)")
    return 0


def register(commands: Commands) -> None:
    p = commands.add(
        "budget",
        cmd_budget,
        "a run's caps, spend and breakers; `budget set RUN …` changes caps",
        commands.json_flag,
    )
    p.add_argument("words", nargs="+", metavar="[set] RUN", help="RUN to show it, or set RUN to change caps")
    p.add_argument("--usd", type=float, help="new cap on the run's spend")
    p.add_argument("--tokens", type=int, help="new cap on the run's tokens")
    p.add_argument("--per-session-usd", type=float, help="new cap on one session's spend")
    p.add_argument("--per-day-usd", type=float, help="new cap on one day's spend")
    p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    p.add_argument("--comment", help="why")
    breaker = commands.group("breaker", "circuit breakers")
    p = commands.add(
        "reset",
        cmd_breaker_reset,
        "half-open a tripped breaker: one trial session",
        commands.json_flag,
        into=breaker,
    )
    p.add_argument("run", metavar="RUN")
    p.add_argument("name", metavar="NAME", help="the breaker (as `longrun budget RUN` names it)")
    p.add_argument("--by", metavar="NAME", help="who decides (default: your user name)")
    p.add_argument("--comment", help="why")
