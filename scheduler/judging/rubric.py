"""The rubric judge's side of judging: its input (the run's goal, the feature, the check outputs and
the diff since the feature last passed), its client (the Anthropic API or the scripted server),
its price, and the share of the run's budget it may spend, every call charged to the run.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from longrun.evaluators.llm import (
    DIFF_BYTES,
    CheckOutput,
    RubricInput,
    RubricVerdict,
    judge_rubric,
    rubric_request,
)
from longrun.scheduler.endpoints.scripted import ScriptedModelServer, load_script
from longrun.scheduler.guards.budget import CapLeft, Spent, caps_left, fit_call
from longrun.scheduler.guards.pricing import Price, prices_for
from longrun.scheduler.session import workspace as ws
from longrun.scheduler.spec.checks import FeatureSpec
from longrun.scheduler.spec.run import RunSpec
from longrun.scheduler.workers.registry import judge_backend, worker_script
from longrun.scheduler.workers.scripted import SCRIPTED_KEY
from longrun.store import log, runs

if TYPE_CHECKING:
    import anthropic
from longrun.store.db import Store
from longrun.store.models import utcnow
from longrun.store.runs import CheckpointView, RunView, Usage, VerdictView

JUDGE_INPUT_OVERHEAD = 2048
"""Tokens the request may have beyond its bytes' worth (schema, system additions)."""


def _rubric_input(
    run: RunView,
    spec: RunSpec,
    feature: FeatureSpec,
    cp: CheckpointView,
    ancestors: list[CheckpointView],
    outputs: list[CheckOutput],
    repo: Path | None = None,
) -> tuple[RubricInput, CheckpointView | None]:
    """The rubric judge's evidence: the diff since the feature last passed (or since the run
    began) and the outputs of the command checks; and the checkpoint where it last passed."""
    base = ancestors[-1] if ancestors else cp
    words = "the start of the run"
    passed_at = None
    for earlier in ancestors[1:]:
        if earlier.features.get(feature.id) == "pass":
            base, words, passed_at = earlier, f"checkpoint {earlier.id}, where it last passed", earlier
            break
    if base.id == cp.id:
        diff = ""
    else:
        # A byte more than the judge shows, so that it marks the cut itself.
        diff, _ = ws.diff(repo or Path(run.workspace), base.commit, cp.commit, DIFF_BYTES + 1)
    item = RubricInput(
        feature_id=feature.id,
        description=feature.description,
        rubric=feature.rubric or "",
        goal=spec.goal,
        diff=diff,
        diff_base=words,
        checks=outputs,
    )
    return item, passed_at


def _carried(feature: FeatureSpec, cp: CheckpointView, passed_at: CheckpointView) -> RubricVerdict:
    """Nothing in the workspace changed since the rubric passed: the pass stands, with no call."""
    evidence = {
        "rubric": feature.rubric,
        "carried_from": passed_at.id,
        "rationale": f"nothing in the workspace changed since checkpoint {passed_at.id}, where it passed",
    }
    return RubricVerdict(feature.id, "pass", evidence, None)


class _RubricJudge:
    """One rubric judge for one judging: its client (a scripted server, when the judge's backend
    is scripted), its price, and the budget it may spend; every call charged to the run."""

    def __init__(self, store: Store, run: RunView, spec: RunSpec, session_id: int | None) -> None:
        self.store = store
        self.run = run
        self.spec = spec
        self.session_id = session_id
        self.model = spec.judge.model or spec.worker.model
        self.backend = judge_backend(spec.worker, spec.judge.backend)
        self.server: ScriptedModelServer | None = None
        self.client: anthropic.Anthropic | None = None
        self.problem: str | None = None
        self.price: Price | None = prices_for(spec, store.home).find(self.model)
        if self.price is None:
            self.problem = f"no price for the judge's model {self.model!r} (add it to pricing.toml)"

    def __enter__(self) -> _RubricJudge:
        if self.problem is not None:
            return self
        base_url = self.spec.judge.base_url or self.spec.worker.base_url
        api_key = os.environ.get("ANTHROPIC_API_KEY")
        if self.backend == "scripted":
            ref = self.spec.judge.script or worker_script(self.spec.worker) or "demo"
            spec_dir = Path(self.run.spec_path).parent if self.run.spec_path else None
            self.server = ScriptedModelServer(load_script(ref, spec_dir))
            base_url, api_key = self.server.start(), SCRIPTED_KEY
        elif not api_key:
            self.problem = "ANTHROPIC_API_KEY is not set in the environment"
            return self
        import anthropic

        self.client = anthropic.Anthropic(api_key=api_key, base_url=base_url, max_retries=2)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.client is not None:
            self.client.close()
        if self.server is not None:
            self.server.stop()

    def _caps(self) -> list[CapLeft]:
        """What is left of the run's caps, and of the judge's share of `budget.usd`."""
        run = runs.get_run(self.store, self.run.id)
        day = runs.day_usage(self.store, self.run.id, runs.utc_day(utcnow()))
        caps = [
            c
            for c in caps_left(self.spec.budget, Spent(run.usage, Usage(), day))
            if c.name != "per_session_usd"
        ]
        if self.spec.budget.usd is not None:
            share = self.spec.budget.usd * self.spec.judge.budget_share
            caps.append(CapLeft("judge.budget_share", share, judge_spent(self.store, self.run.id)))
        return caps

    def judge(
        self, feature: FeatureSpec, cp: CheckpointView, item: RubricInput
    ) -> tuple[VerdictView, float, bool]:
        rubric = {"rubric": feature.rubric, "model": self.model}
        if self.problem is not None or self.client is None or self.price is None:
            return _error(feature, cp, rubric, self.problem or "the judge has no client"), 0.0, False
        request = rubric_request(item)
        size = len(log.canonical_json(request).encode())
        fit = fit_call(self._caps(), self.price, size + JUDGE_INPUT_OVERHEAD, self.spec.judge.max_tokens)
        if not fit.useful:
            cap = fit.binding
            assert cap is not None
            detail = f"not judged: the judge's next call would not fit in what is left of {_cap_name(cap)}"
            detail += f" ({cap.spent:.4f} of {cap.limit:g} spent)"
            log.record(
                self.store,
                self.run.id,
                "judge_budget_stop",
                {"feature_id": feature.id, "cap": cap.name, "limit": cap.limit, "spent": round(cap.spent, 6)},
                session_id=self.session_id,
            )
            return _error(feature, cp, rubric, detail, budget=True), 0.0, True
        verdict = judge_rubric(self.client, self.model, fit.max_tokens, item)
        usd = 0.0
        if verdict.usage is not None:
            u = verdict.usage
            usage = self.price.usage(
                u.input_tokens, u.output_tokens, u.cache_write_tokens, u.cache_read_tokens
            )
            usd = usage.usd
            with self.store.writing() as conn:
                log.append(
                    conn,
                    self.run.id,
                    "judge_call",
                    {
                        "feature_id": feature.id,
                        "checkpoint_id": cp.id,
                        "model": u.model,
                        "request_id": u.request_id,
                        "status": verdict.status,
                        "usage": usage.to_json(),
                    },
                    session_id=self.session_id,
                )
                runs.add_usage(conn, self.run.id, None, usage)
        return VerdictView(feature.id, cp.id, "llm", verdict.status, verdict.evidence), usd, False


def _cap_name(cap: CapLeft) -> str:
    return cap.name if cap.name.startswith("judge.") else f"budget.{cap.name}"


def _error(
    feature: FeatureSpec, cp: CheckpointView, evidence: dict[str, Any], why: str, *, budget: bool = False
) -> VerdictView:
    return VerdictView(
        feature.id, cp.id, "llm", "error", {**evidence, "error": why, **({"budget": True} if budget else {})}
    )


def judge_spent(store: Store, run_id: str) -> float:
    """What the rubric judge has spent in the run, in US dollars (summed from its calls' events)."""
    with store.reading() as conn:
        value = conn.execute(
            text(
                "SELECT COALESCE(SUM(json_extract(data, '$.usage.usd')), 0) FROM event "
                "WHERE run_id = :run AND kind = 'judge_call'"
            ),
            {"run": run_id},
        ).scalar_one()
    return float(value)
