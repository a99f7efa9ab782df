"""What the big store's events and rows say: the benchmark's typical model and tool payloads
(`common.sample_event`), handoffs, commits and verdict evidence."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from longrun.bench.common import sample_event
from longrun.store import log

TEMPLATES = 1200
"""Distinct model/tool payloads cycled through (a multiple of the 12-event period of sample_event)."""


@dataclass(frozen=True)
class Template:
    """One work event: its kind and canonical data, and its usage when it is a model call."""

    kind: str
    data: str
    usage: tuple[int, int, int, int, float] | None


def payload_templates() -> list[Template]:
    """The `TEMPLATES` work events that every run's sessions cycle through."""
    out = []
    for i in range(TEMPLATES):
        kind, data = sample_event(i)
        usage = None
        if kind == "model_call":
            u = data["usage"]
            usage = (
                u["input_tokens"],
                u["output_tokens"],
                u["cache_write_tokens"],
                u["cache_read_tokens"],
                u["usd"],
            )
        out.append(Template(kind, log.canonical_json(data), usage))
    return out


HANDOFF = {
    "done": ["top_words strips punctuation", "tests for the empty text"],
    "next": ["reading_time rounding", "README examples"],
    "blockers": [],
    "notes": "All tests but tests/test_reading_time.py pass; see the handoff of the last session.",
}


def commit_sha(run_id: str, what: str) -> str:
    return hashlib.sha1(f"{run_id}:{what}".encode()).hexdigest()


def session_commits(run_id: str, n: int) -> list[dict[str, str]]:
    return [
        {"sha": commit_sha(run_id, f"s{n}c{k}"), "subject": subject}
        for k, subject in enumerate(("Strip punctuation in top_words", "Test the empty text"))
    ]


def verdict_evidence(check: str | None, rubric: str | None, status: str) -> dict[str, Any]:
    evidence: dict[str, Any] = {}
    if check:
        tail = "3 passed in 0.02s" if status == "pass" else "1 failed, 2 passed in 0.03s"
        evidence |= {
            "command": check,
            "exit_code": 0 if status == "pass" else 1,
            "duration_s": 0.41,
            "output_tail": tail,
        }
    if rubric and (status == "pass" or not check):
        evidence |= {
            "rubric": rubric,
            "confidence": 0.9,
            "rationale": "Every criterion is met." if status == "pass" else "One criterion is not met yet.",
            "model": "claude-sonnet-5-5",
        }
    return evidence
