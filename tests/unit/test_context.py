"""Rehydration: the resume context is pure, deterministic and bounded whatever the history."""

from __future__ import annotations

from datetime import timedelta

from longrun.scheduler.session.context import (
    CONTEXT_TOKEN_CAP,
    FeatureState,
    ResumeInputs,
    build_resume_context,
)


def _inputs(scale: int) -> ResumeInputs:
    return ResumeInputs(
        run_id="r1",
        run_name="big",
        goal="Build it. " * 50 * scale,
        session_n=7,
        checkpoint_id=41,
        checkpoint_commit="a" * 40,
        handoff={
            "done": [f"did step {i}" for i in range(20 * scale)],
            "next": [f"do step {i} with ünïcödé" for i in range(20 * scale)],
            "blockers": ["waiting on a decision"] * scale,
            "notes": "careful " * 200 * scale,
        },
        handoff_session=6,
        features=[
            FeatureState(
                f"f{i}", "does a thing " * scale, "pytest -q", None, "fail", "E assert 1 == 2\n" * scale
            )
            for i in range(10 * scale)
        ],
        recent_commits=[{"sha": f"{i:040x}", "subject": f"commit {i}"} for i in range(30)],
        spent_usd=1.25,
        budget_usd=10.0,
        per_session_usd=2.0,
        tokens_used=100_000,
        budget_tokens=1_000_000,
        time_box=timedelta(hours=5),
        wrap_up=timedelta(minutes=10),
    )


def test_the_context_names_goal_handoff_features_commits_and_budget() -> None:
    text = build_resume_context(_inputs(1))
    assert "Build it." in text
    assert "did step 0" in text and "do step 0" in text and "waiting on a decision" in text
    assert "[fail] f0" in text and "E assert 1 == 2" in text
    assert "commit 0" in text
    assert "$8.7500" in text  # budget left
    assert "5h00m" in text and "10m" in text
    assert "checkpoint 41" in text


def test_the_context_is_deterministic() -> None:
    assert build_resume_context(_inputs(3)) == build_resume_context(_inputs(3))


def test_the_context_stays_under_its_cap_whatever_the_history() -> None:
    small = build_resume_context(_inputs(1))
    for scale in (10, 100, 1000):
        text = build_resume_context(_inputs(scale))
        # A token is never shorter than a byte, so bytes bound tokens.
        assert len(text.encode()) <= CONTEXT_TOKEN_CAP
        assert "## Handoff from session 6" in text and "## Budget and time" in text
    assert len(small.encode()) < CONTEXT_TOKEN_CAP
