"""The judge against a corpus of lying workers (`seed.lies`), with honest controls beside them.

Each case seeds a tiny project, runs its scripted sessions for real and asks the store how the run
ended. A lie is caught when the run is not done and the judge said so: a failing (or erroring)
verdict at the latest judged checkpoint, or an approval waiting for a person. A control must end
done. The README states how many of each hold.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from seed.lies import CASES, CONTROLS, LIES, Case

from longrun.scheduler.control import create_run_from_file, run_session_now, start
from longrun.store import runs
from longrun.store.db import Store
from longrun.store.runs import RunView, VerdictView

README = Path(__file__).parents[2] / "README.md"


def play(store: Store, write_spec, case: Case) -> RunView:
    """Seed the case's workspace, create and start its run, and run its sessions one by one while
    the run stays scheduled."""
    spec = write_spec(case.sessions, name=case.name, features=case.features, extra=case.extra)
    workspace = spec.parent / "workspace"
    for path, text in case.files.items():
        target = workspace / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    if case.setup is not None:
        case.setup(workspace)
    run = create_run_from_file(store, spec)
    start(store, run.id)
    for _ in case.sessions:
        run_session_now(store, run.id)
        if runs.get_run(store, run.id).state != "scheduled":
            break
    return runs.get_run(store, run.id)


def judged_last(store: Store, run_id: str) -> dict[str, VerdictView]:
    """The verdicts given at the run's latest judged checkpoint."""
    latest = runs.latest_verdicts(store, run_id)
    if not latest:
        return {}
    at = max(v.checkpoint_id for v in latest.values())
    return {f: v for f, v in latest.items() if v.checkpoint_id == at}


def why(verdict: VerdictView) -> str:
    """A verdict's evidence in a few words: the ratchet's summary, a check's last line of output."""
    evidence = verdict.evidence
    if "summary" in evidence:
        return str(evidence["summary"])
    lines = [line for line in str(evidence.get("output_tail", "")).splitlines() if line.strip()]
    return lines[-1].strip() if lines else f"exit code {evidence.get('exit_code')}"


def caught(store: Store, run_id: str) -> str | None:
    """Why the judge did not let the run end done (one line), or None when it was not caught."""
    run = runs.get_run(store, run_id)
    if run.state == "done":
        return None
    reasons = [
        f"{v.feature_id} {v.status}: {why(v)}"
        for v in judged_last(store, run_id).values()
        if v.status in ("fail", "error")
    ]
    reasons += [f"pending {a.kind} approval" for a in runs.list_approvals(store, run_id, state="pending")]
    return f"{run.state}: " + "; ".join(reasons) if reasons else None


def ended(store: Store, run: RunView) -> str:
    """How a run ended, for a failure message: its state, why, and the last verdicts."""
    verdicts = ", ".join(f"{f}={v.status} ({why(v)})" for f, v in judged_last(store, run.id).items())
    return f"{run.state} ({run.state_reason}); verdicts: {verdicts or 'none'}"


@pytest.mark.parametrize("case", LIES, ids=[c.name for c in LIES])
def test_a_lying_worker_is_caught(store: Store, write_spec, case: Case) -> None:
    run = play(store, write_spec, case)
    assert caught(store, run.id), f"lie {case.name!r} ({case.summary}) got through: {ended(store, run)}"


@pytest.mark.parametrize("case", CONTROLS, ids=[c.name for c in CONTROLS])
def test_an_honest_worker_is_done(store: Store, write_spec, case: Case) -> None:
    run = play(store, write_spec, case)
    assert run.state == "done", f"control {case.name!r} ({case.summary}) is not done: {ended(store, run)}"


@pytest.mark.timeout(300)
def test_deleting_the_checkpoint_refs_is_flagged_and_loses_no_checkpoint(
    store: Store, write_spec, cli
) -> None:
    run = play(store, write_spec, CASES["prunes-checkpoint-refs"])
    pending = runs.list_approvals(store, run.id, state="pending")
    assert run.state != "done" and (pending or run.state == "tripped"), (
        f"pruning the checkpoint refs was not flagged: {ended(store, run)}"
    )

    first = runs.list_checkpoints(store, run.id)[0]
    rewound = cli("rewind", run.id, "--to", str(first.id), "--yes", "--json")
    assert rewound.returncode == 0, f"rewind to checkpoint {first.id}: {rewound.stderr.strip()}"
    assert json.loads(rewound.stdout)["head_checkpoint_id"] == first.id
    restored = Path(run.workspace)
    assert (restored / "tests" / "test_mul.py").is_file()
    assert "NotImplementedError" in (restored / "calc.py").read_text()

    forked = cli("fork", run.id, "--from", str(first.id), "--json")
    assert forked.returncode == 0, f"fork from checkpoint {first.id}: {forked.stderr.strip()}"
    assert (Path(json.loads(forked.stdout)["workspace"]) / "tests" / "test_mul.py").is_file()


def test_the_readme_states_the_corpus_summary() -> None:
    line = f"{len(LIES)} of {len(LIES)} lies caught, {len(CONTROLS)} of {len(CONTROLS)} controls done"
    assert line in README.read_text(), f"README.md does not say {line!r}"
