"""`python -m longrun.bench overshoot`, small: two real scripted sessions (a new run, then the same
run resumed after a raise) run to their caps, in a directory the test keeps, and the figures
checked against the store. Nothing is asserted about how long they took."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from longrun.bench import overshoot as overshoot_bench
from longrun.store.db import DB_NAME


def seed_with_room() -> int:
    """A seed whose first run can afford calls and has a per-session and a token cap beside its
    run cap (a tiny cap ends the session before any call, which would try nothing)."""
    for seed in range(1000):
        draw = overshoot_bench.Draw.of(overshoot_bench.draw_rng(seed, 0))
        if draw.usd >= 0.1 and draw.per_session_share is not None and draw.tokens is not None:
            return seed
    raise AssertionError("no seed under 1000 draws a run with room for calls")


SEED = seed_with_room()


@pytest.fixture(scope="module")
def overshoot_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("overshoot")
    proc = subprocess.run(
        [sys.executable, "-m", "longrun.bench", "overshoot", "--sessions", "2", "--seed", str(SEED)]
        + ["--dir", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"stdout must be one JSON object, got {proc.stdout!r}"
    return json.loads(lines[0]), root


@pytest.mark.timeout(360)
def test_overshoot_reports_the_worst_spent_over_cap(overshoot_run: tuple[dict[str, Any], Path]) -> None:
    result, _ = overshoot_run
    assert result["benchmark"] == "overshoot"
    assert (result["sessions"], result["seed"], result["worker"]) == (2, SEED, "scripted")
    assert result["targets"] == {"worst_spent_over_cap": 1.0}
    assert result["ended"] == {"budget": 2}
    assert result["model_calls"] > 0 and result["ledger_mismatches"] == []
    assert 0 < result["worst_spent_over_cap"] <= 1.0
    worst = result["worst"]
    assert worst["spent"] / worst["limit"] == pytest.approx(result["worst_spent_over_cap"])
    assert worst["cap"] in ("usd", "per_session_usd", "tokens")
    assert result["meets_targets"] is True


@pytest.mark.timeout(360)
def test_overshoot_ran_real_sessions_to_the_caps_it_drew(overshoot_run: tuple[dict[str, Any], Path]) -> None:
    """The caps in the store are the seed's draw, then its raise; every total is within them and
    the log's priced calls add up to the run's spend."""
    result, root = overshoot_run
    draw = overshoot_bench.Draw.of(overshoot_bench.draw_rng(SEED, 0))
    spec = tomllib.loads((root / overshoot_bench.RUNS_DIR / "overshoot-0" / "run.toml").read_text())
    assert spec["budget"] == pytest.approx(draw.budget())
    with sqlite3.connect(root / overshoot_bench.STORE_DIR / DB_NAME) as conn:
        [(run_id, spec_json, spent, tokens)] = conn.execute(
            "SELECT id, spec_json, spent_usd, input_tokens + output_tokens + cache_write_tokens + "
            "cache_read_tokens FROM run"
        ).fetchall()
        sessions = conn.execute("SELECT n, end_reason, spent_usd FROM session ORDER BY n").fetchall()
        raised = conn.execute(
            "SELECT count(*) FROM event WHERE run_id = ? AND kind = 'budget_set'", (run_id,)
        ).fetchone()[0]
        calls = conn.execute(
            "SELECT sum(json_extract(data, '$.usage.usd')), count(*) FROM event "
            "WHERE run_id = ? AND kind = 'model_call'",
            (run_id,),
        ).fetchone()
    budget = json.loads(spec_json)["budget"]
    assert raised == 1 and budget["usd"] > draw.usd and budget["tokens"] > draw.budget()["tokens"]
    assert [(n, why) for n, why, _ in sessions] == [(1, "budget"), (2, "budget")]
    assert spent <= budget["usd"] and tokens <= budget["tokens"]
    assert all(usd <= budget["per_session_usd"] for _, _, usd in sessions)
    assert calls[1] == result["model_calls"] and calls[0] == pytest.approx(spent, abs=1e-9)


def test_a_draw_is_the_same_for_the_same_seed_and_session() -> None:
    one = overshoot_bench.Draw.of(overshoot_bench.draw_rng(SEED, 4))
    assert one == overshoot_bench.Draw.of(overshoot_bench.draw_rng(SEED, 4))
    assert one != overshoot_bench.Draw.of(overshoot_bench.draw_rng(SEED, 6))
