"""Small helpers the audit's parts share: the raw connection, digests, and how values are shown."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any


def raw_of(conn: Any) -> Any:
    raw = conn.connection.driver_connection
    assert raw is not None, "a connection in a transaction has its driver's connection"
    return raw


def has_table(raw: Any, name: str) -> bool:
    return (
        raw.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,)).fetchone()
        is not None
    )


def digest(text: str | None) -> str:
    return "sha256:" + hashlib.sha256((text or "").encode()).hexdigest()


def digest_or_none(text: str | None) -> str | None:
    return None if text is None else digest(text)


def prefixed(digest: Any) -> str | None:
    return None if digest is None else f"sha256:{digest}"


def says(seq: int | None) -> str:
    return "the log says" if seq is None else f"event {seq} says"


def same(found: Any, expected: Any, *, loose: bool = False) -> bool:
    """Equal, with floats equal to a part in 10^9 (10^6 when `loose`: sums taken in another order)."""
    if isinstance(found, bool) or isinstance(expected, bool):
        return found == expected
    if isinstance(found, int | float) and isinstance(expected, int | float):
        tol = 1e-6 if loose else 1e-9
        return math.isclose(float(found), float(expected), rel_tol=tol, abs_tol=tol)
    return bool(found == expected)


def shown(value: Any) -> str:
    if isinstance(value, str):
        if value.startswith("sha256:"):
            return value[:19] + "…"
        return repr(value if len(value) <= 60 else value[:59] + "…")
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, dict | list):
        text = json.dumps(value, ensure_ascii=False, sort_keys=True)
        return text if len(text) <= 60 else text[:59] + "…"
    return repr(value)


def plural(table: str, n: int) -> str:
    return table if n == 1 else table + "s"
