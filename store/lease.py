"""The supervisor lease: exactly one supervisor per store, taken and renewed by compare-and-set.

A lease row names its holder and when it expires. A supervisor takes the lease when there is
none, when it already holds it, or when the holder let it expire; every write is one statement
in a write transaction, so two supervisors can never both believe they hold it.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text

from longrun.store.db import Store
from longrun.store.models import iso, utcnow

SUPERVISOR = "supervisor"


def holder_id() -> str:
    """Who we are, readable by a person: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(3).hex()}"


@dataclass(frozen=True)
class LeaseView:
    holder: str
    heartbeat_at: datetime
    expires_at: datetime
    since: datetime | None = None
    """When the holder took the lease (as it announced)."""
    max_concurrent: int | None = None
    """How many sessions the holder runs at once."""

    def alive(self, now: datetime | None = None) -> bool:
        return (now or utcnow()) < self.expires_at

    @property
    def pid(self) -> int | None:
        parts = self.holder.split(":")
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else None

    def to_json(self, now: datetime | None = None) -> dict[str, Any]:
        return {
            "holder": self.holder,
            "pid": self.pid,
            "heartbeat_at": iso(self.heartbeat_at),
            "expires_at": iso(self.expires_at),
            "since": iso(self.since) if self.since else None,
            "max_concurrent": self.max_concurrent,
            "alive": self.alive(now),
        }


def acquire(store: Store, holder: str, ttl: timedelta, now: datetime | None = None) -> bool:
    """Take or renew the lease; True when `holder` holds it afterwards."""
    now = now or utcnow()
    params = {"name": SUPERVISOR, "holder": holder, "now": iso(now), "exp": iso(now + ttl)}
    with store.writing() as conn:
        conn.execute(
            text(
                "INSERT OR IGNORE INTO lease (name, holder, heartbeat_at, expires_at) "
                "VALUES (:name, :holder, :now, :exp)"
            ),
            params,
        )
        updated = conn.execute(
            text(
                "UPDATE lease SET holder = :holder, heartbeat_at = :now, expires_at = :exp "
                "WHERE name = :name AND (holder = :holder OR expires_at < :now)"
            ),
            params,
        )
        return updated.rowcount == 1


def release(store: Store, holder: str) -> None:
    """Give the lease up at once (a clean shutdown), so the next supervisor need not wait."""
    with store.writing() as conn:
        conn.execute(
            text("UPDATE lease SET expires_at = :now WHERE name = :name AND holder = :holder"),
            {"now": iso(utcnow()), "name": SUPERVISOR, "holder": holder},
        )


def announce(store: Store, holder: str, since: datetime, max_concurrent: int) -> None:
    """Say, for dashboards, since when `holder` supervises and how many sessions it runs at once."""
    value = json.dumps({"holder": holder, "since": iso(since), "max_concurrent": max_concurrent})
    with store.writing() as conn:
        conn.execute(
            text("INSERT OR REPLACE INTO meta (key, value) VALUES (:key, :value)"),
            {"key": ANNOUNCEMENT, "value": value},
        )


ANNOUNCEMENT = "supervisor_announcement"


def current(store: Store) -> LeaseView | None:
    with store.reading() as conn:
        row = conn.execute(
            text("SELECT holder, heartbeat_at, expires_at FROM lease WHERE name = :name"),
            {"name": SUPERVISOR},
        ).first()
        said = conn.execute(text("SELECT value FROM meta WHERE key = :key"), {"key": ANNOUNCEMENT}).first()
    if row is None:
        return None
    told = json.loads(said[0]) if said else {}
    mine = told.get("holder") == row[0]
    return LeaseView(
        row[0],
        datetime.fromisoformat(row[1]),
        datetime.fromisoformat(row[2]),
        since=datetime.fromisoformat(told["since"]) if mine else None,
        max_concurrent=told.get("max_concurrent") if mine else None,
    )
