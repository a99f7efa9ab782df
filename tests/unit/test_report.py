"""`longrun report`: the HTML audit report of a run, checked against the store it was built from.

The charts' numbers are read back out of the page (each chart's `Plotly.newPlot` JSON and the
`report-data` block) and compared with sums taken straight from the store's tables.
"""

from __future__ import annotations

import html.parser
import json
import math
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support import chromium_or_skip

from longrun.app.report import CHART_IDS, build_report
from longrun.store import log
from longrun.store.db import DB_NAME, Store

CLI = Callable[..., subprocess.CompletedProcess[str]]
EVENTS = 20_000
CALLS = "kind IN ('model_call', 'judge_call')"


# --- reading a report back ------------------------------------------------------------------------


def figures(page: str) -> dict[str, dict[str, Any]]:
    """Each chart's data and layout, by its div id, as the page hands them to plotly.js."""
    out = {}
    decoder = json.JSONDecoder()
    for div_id in CHART_IDS:
        call = re.search(rf'Plotly\.newPlot\(\s*"{div_id}",\s*', page)
        assert call is not None, div_id
        data, end = decoder.raw_decode(page, call.end())
        at = page.index("{", end)
        layout, _ = decoder.raw_decode(page, at)
        out[div_id] = {"data": data, "layout": layout}
    return out


def report_data(page: str) -> dict[str, Any]:
    start = page.index('<script type="application/json" id="report-data">') + len(
        '<script type="application/json" id="report-data">'
    )
    return json.loads(page[start : page.index("</script>", start)])


def trace(figure: dict[str, Any], name_starts: str) -> dict[str, Any]:
    found = [t for t in figure["data"] if t.get("name", "").startswith(name_starts)]
    assert len(found) == 1, [t.get("name") for t in figure["data"]]
    return found[0]


def x_values(figure: dict[str, Any]) -> list[datetime]:
    """Every time a chart draws at (bar bases for the Gantt)."""
    out = []
    for t in figure["data"]:
        for x in t.get("base") or t.get("x") or []:
            out.append(datetime.fromisoformat(x).replace(tzinfo=UTC))
    return out


class Tags(html.parser.HTMLParser):
    """The page's script, link and style tags and table rows, as parsed."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def query(home: Path, sql: str, *params: Any) -> Any:
    with sqlite3.connect(home / DB_NAME) as db:
        return db.execute(sql, params).fetchone()[0]


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat(timespec="microseconds")


# --- a synthetic day of work ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Any]]:
    """A store holding a synthetic 24-hour run (and its fork), written once for the module."""
    from longrun.bench.synth import synthesize

    home = tmp_path_factory.mktemp("report") / "home"
    store = Store.open(home)
    try:
        made = synthesize(store, hours=24.0, events=EVENTS, seed=0)
    finally:
        store.close()
    yield home, made


@pytest.fixture(scope="module")
def whole_page(synthetic: tuple[Path, Any]) -> str:
    home, made = synthetic
    store = Store.open(home, create=False)
    try:
        return build_report(store, made.run_id)
    finally:
        store.close()


def test_summary_spend_is_the_sum_of_the_calls_costs(synthetic: tuple[Path, Any], whole_page: str) -> None:
    home, made = synthetic
    with sqlite3.connect(home / DB_NAME) as db:
        costs = [
            json.loads(d)["usage"]["usd"]
            for (d,) in db.execute(f"SELECT data FROM event WHERE run_id = ? AND {CALLS}", (made.run_id,))
        ]
    expected = math.fsum(costs)
    assert expected > 0
    summary = report_data(whole_page)["summary"]
    assert summary["spend_usd"] == pytest.approx(expected, rel=1e-12)
    assert summary["spend_before_usd"] == 0
    assert summary["calls"] == len(costs)
    shown = f"${expected:,.2f}" if expected >= 10 else f"${expected:,.3f}"
    assert shown in whole_page
    spend = trace(figures(whole_page)["chart-spend"], "spend")
    assert spend["y"][0] == 0
    assert spend["y"][-1] == pytest.approx(expected, rel=1e-9)
    assert all(a <= b for a, b in zip(spend["y"], spend["y"][1:], strict=False))


def test_budget_line_is_the_runs_budget(synthetic: tuple[Path, Any], whole_page: str) -> None:
    home, made = synthetic
    budget = json.loads(query(home, "SELECT spec_json FROM run WHERE id = ?", made.run_id))["budget"]["usd"]
    line = trace(figures(whole_page)["chart-spend"], "budget $")
    assert line["y"] == [budget, budget]
    assert report_data(whole_page)["summary"]["budget_usd"] == budget


def test_gantt_has_a_bar_for_every_session(synthetic: tuple[Path, Any], whole_page: str) -> None:
    home, made = synthetic
    sessions = query(home, "SELECT count(*) FROM session WHERE run_id = ?", made.run_id)
    assert sessions > 1
    bars = figures(whole_page)["chart-sessions"]["data"]
    labels = [y for t in bars for y in t["y"]]
    assert len(labels) == sessions
    assert sorted(labels) == sorted(f"session {n}" for n in range(1, sessions + 1))
    # one trace per way of ending, its legend saying how many
    for t in bars:
        assert t["name"].endswith(f"({len(t['y'])})")
    assert report_data(whole_page)["summary"]["sessions"] == sessions
    assert whole_page.count("<tr><td class=num>") == sessions


def test_sessions_are_coloured_by_how_they_ended(synthetic: tuple[Path, Any], whole_page: str) -> None:
    home, made = synthetic
    with sqlite3.connect(home / DB_NAME) as db:
        ends = dict(
            db.execute(
                "SELECT 'session ' || n, CASE WHEN ended_at IS NULL THEN 'running' WHEN state = 'ended' "
                "THEN end_reason ELSE state END FROM session WHERE run_id = ?",
                (made.run_id,),
            ).fetchall()
        )
    from longrun.app.report import OUTCOMES

    for t in figures(whole_page)["chart-sessions"]["data"]:
        outcomes = {ends[y] for y in t["y"]}
        assert len(outcomes) == 1
        (outcome,) = outcomes
        assert t["name"].startswith(OUTCOMES[outcome][0])
        assert t["marker"]["color"] == OUTCOMES[outcome][1]


def test_token_chart_holds_every_token(synthetic: tuple[Path, Any], whole_page: str) -> None:
    home, made = synthetic
    chart = figures(whole_page)["chart-tokens"]
    for kind, label in (
        ("input_tokens", "input"),
        ("output_tokens", "output"),
        ("cache_write_tokens", "cache write"),
        ("cache_read_tokens", "cache read"),
    ):
        expected = query(
            home,
            f"SELECT coalesce(sum(json_extract(data, '$.usage.{kind}')), 0) FROM event "
            f"WHERE run_id = ? AND {CALLS}",
            made.run_id,
        )
        line = trace(chart, f"{label} (")
        assert sum(y for y in line["y"] if y is not None) == expected


def test_event_heatmap_counts_every_event(synthetic: tuple[Path, Any], whole_page: str) -> None:
    home, made = synthetic
    events = query(home, "SELECT count(*) FROM event WHERE run_id = ?", made.run_id)
    (heat,) = figures(whole_page)["chart-events"]["data"]
    counted = sum(int(cell.replace(",", "")) for row in heat["text"] for cell in row)
    assert counted == events
    kinds = query(home, "SELECT count(DISTINCT kind) FROM event WHERE run_id = ?", made.run_id)
    assert len(heat["y"]) == kinds
    model_calls = query(
        home, "SELECT count(*) FROM event WHERE run_id = ? AND kind = 'model_call'", made.run_id
    )
    row = heat["text"][heat["y"].index("model_call")]
    assert sum(int(c.replace(",", "")) for c in row) == model_calls
    assert report_data(whole_page)["summary"]["events"] == events


def test_features_chart_ends_at_the_heads_verdicts(synthetic: tuple[Path, Any], whole_page: str) -> None:
    home, made = synthetic
    head = query(
        home,
        "SELECT c.features_json FROM run r JOIN checkpoint c ON c.id = r.head_checkpoint_id WHERE r.id = ?",
        made.run_id,
    )
    spec = json.loads(query(home, "SELECT spec_json FROM run WHERE id = ?", made.run_id))
    passing = sum(1 for f in spec["features"] if json.loads(head).get(f["id"]) == "pass")
    line = trace(figures(whole_page)["chart-features"], "features passing")
    assert line["y"][-1] == passing
    assert max(line["y"]) <= len(spec["features"])
    summary = report_data(whole_page)["summary"]
    assert (summary["features_passing"], summary["features_total"]) == (passing, len(spec["features"]))
    assert f"{passing} of {len(spec['features'])} pass" in whole_page


def test_approvals_and_breaker_trips_are_marked_on_the_spend_chart(
    synthetic: tuple[Path, Any], whole_page: str
) -> None:
    home, made = synthetic
    chart = figures(whole_page)["chart-spend"]

    def count(kind: str) -> int:
        return query(home, "SELECT count(*) FROM event WHERE run_id = ? AND kind = ?", made.run_id, kind)

    asked, decided, trips = count("approval_requested"), count("approval_decided"), count("breaker_tripped")
    assert asked and decided and trips
    assert len(trace(chart, "approval asked")["x"]) == asked
    assert len(trace(chart, "approval decided")["x"]) == decided
    tripped = trace(chart, "breaker tripped")
    assert len(tripped["x"]) == trips
    assert all("breaker" in text for text in tripped["hovertext"])
    lines = [s for s in chart["layout"]["shapes"] if s["yref"] == "paper"]
    markers = sum(len(t["x"]) for t in chart["data"] if t.get("mode") == "markers")
    assert len(lines) == markers
    summary = report_data(whole_page)["summary"]
    assert summary["breaker_trips"] == trips
    assert summary["approvals"]["asked"] == query(
        home, "SELECT count(*) FROM approval WHERE run_id = ?", made.run_id
    )


def test_decisions_table_says_who_when_what_and_why(synthetic: tuple[Path, Any], whole_page: str) -> None:
    home, made = synthetic
    with sqlite3.connect(home / DB_NAME) as db:
        decided = db.execute(
            "SELECT decided_by, decided_at, comment FROM approval "
            "WHERE run_id = ? AND decided_by IS NOT NULL",
            (made.run_id,),
        ).fetchall()
    assert decided
    table = whole_page[whole_page.index("<h2>Human decisions</h2>") :]
    for by, at, comment in decided:
        when = datetime.fromisoformat(at).strftime("%Y-%m-%d %H:%M:%S")
        assert f"<tr><td>{by}</td><td class=when>{when}</td>" in table
        if comment:
            assert html_escape(comment) in table


def html_escape(text: str) -> str:
    import html

    return html.escape(text, quote=True)


def test_hash_chain_result_is_in_the_summary(synthetic: tuple[Path, Any], whole_page: str) -> None:
    home, made = synthetic
    chain = report_data(whole_page)["summary"]["chain"]
    events = query(home, "SELECT count(*) FROM event WHERE run_id = ?", made.run_id)
    assert chain == {"run_id": made.run_id, "events": events, "ok": True, "broken_at": None, "reason": None}
    assert f"whole: all {events:,} events of the run verified" in whole_page


def test_a_broken_chain_is_reported(tmp_path: Path) -> None:
    from longrun.bench.synth import synthesize

    store = Store.open(tmp_path / "home")
    try:
        made = synthesize(store, hours=24.0, events=2000, seed=3)
        with store.engine.connect() as conn:
            conn.exec_driver_sql("DROP TRIGGER event_append_only_update")
            conn.exec_driver_sql(
                "UPDATE event SET data = '{}' WHERE run_id = ? AND seq = 100", (made.run_id,)
            )
            conn.commit()
        page = build_report(store, made.run_id)
    finally:
        store.close()
    chain = report_data(page)["summary"]["chain"]
    assert chain["ok"] is False and chain["broken_at"] == 100
    assert "BROKEN at event 100" in page


def test_the_summary_says_how_many_sessions_ran_unconfined(tmp_path: Path) -> None:
    from longrun.bench.synth import synthesize

    store = Store.open(tmp_path / "home")
    try:
        made = synthesize(store, hours=24.0, events=2000, seed=3)
        confined = {"mode": "on", "confined": True, "network": "off", "limits": "cgroup v1: …", "env": []}
        log.record(store, made.run_id, "sandbox", confined)
        log.record(store, made.run_id, "sandbox", {"mode": "off", "confined": False, "why": "mode off"})
        page = build_report(store, made.run_id)
    finally:
        store.close()
    assert report_data(page)["summary"]["sandbox"] == {"confined": 1, "unconfined": 1, "why": ["mode off"]}
    assert "UNCONFINED: 1 of 2 sessions ran without the sandbox (mode off)" in page


# --- a window -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def window(synthetic: tuple[Path, Any]) -> tuple[datetime, datetime]:
    """Six hours from the run's fourth hour on."""
    _, made = synthetic
    since = made.start + timedelta(hours=4)
    return since, since + timedelta(hours=6)


@pytest.fixture(scope="module")
def window_page(synthetic: tuple[Path, Any], window: tuple[datetime, datetime]) -> str:
    home, made = synthetic
    store = Store.open(home, create=False)
    try:
        return build_report(store, made.run_id, since=window[0], until=window[1])
    finally:
        store.close()


def test_window_holds_only_its_time(window_page: str, window: tuple[datetime, datetime]) -> None:
    since, until = window
    data = report_data(window_page)
    assert (data["start"], data["end"]) == (
        since.isoformat(timespec="seconds"),
        until.isoformat(timespec="seconds"),
    )
    bucket = timedelta(seconds=data["bucket_s"])
    for div_id, figure in figures(window_page).items():
        times = x_values(figure)
        assert times, div_id
        assert min(times) >= since, div_id
        # per-bucket charts draw at a bucket's middle: the last may lie past the window's end
        assert max(times) < until + bucket / 2, div_id
        assert figure["layout"]["xaxis"]["range"] == [
            since.strftime("%Y-%m-%d %H:%M:%S.000"),
            until.strftime("%Y-%m-%d %H:%M:%S.000"),
        ]


def test_window_numbers_are_the_windows(
    synthetic: tuple[Path, Any], window_page: str, window: tuple[datetime, datetime]
) -> None:
    home, made = synthetic
    since, until = (iso(t) for t in window)
    inside = "run_id = ? AND ts >= ? AND ts < ?"
    summary = report_data(window_page)["summary"]
    spend = query(
        home,
        f"SELECT sum(json_extract(data, '$.usage.usd')) FROM event WHERE {inside} AND {CALLS}",
        made.run_id,
        since,
        until,
    )
    before = query(
        home,
        f"SELECT sum(json_extract(data, '$.usage.usd')) FROM event WHERE run_id = ? AND ts < ? AND {CALLS}",
        made.run_id,
        since,
    )
    assert summary["spend_usd"] == pytest.approx(spend, rel=1e-9)
    assert summary["spend_before_usd"] == pytest.approx(before, rel=1e-9)
    assert 0 < summary["spend_usd"] < made.spent_usd
    assert summary["events"] == query(
        home, f"SELECT count(*) FROM event WHERE {inside}", made.run_id, since, until
    )
    sessions = query(
        home,
        "SELECT count(*) FROM session WHERE run_id = ? AND coalesce(started_at, created_at) < ? "
        "AND (ended_at IS NULL OR ended_at >= ?)",
        made.run_id,
        until,
        since,
    )
    bars = figures(window_page)["chart-sessions"]["data"]
    assert sum(len(t["y"]) for t in bars) == sessions == summary["sessions"]
    spend_line = trace(figures(window_page)["chart-spend"], "spend")
    assert spend_line["y"][0] == pytest.approx(before, rel=1e-9)
    assert spend_line["y"][-1] == pytest.approx(before + spend, rel=1e-9)
    asked = query(
        home,
        "SELECT count(*) FROM approval WHERE run_id = ? AND requested_at >= ? AND requested_at < ?",
        made.run_id,
        since,
        until,
    )
    assert summary["approvals"]["asked"] == asked


# --- the figures as plotly takes them -------------------------------------------------------------


def test_every_chart_is_what_plotly_would_validate_it_into(whole_page: str, window_page: str) -> None:
    """The figures go to the page as plain dicts, not validated on the way: plotly's validation
    (what `go.Figure` does to a dict, template included) must leave each one as it is."""
    import plotly.graph_objects as go

    for page in (whole_page, window_page):
        for div_id, figure in figures(page).items():
            assert figure["layout"]["template"]["layout"], div_id  # the template, spelt out
            assert json.loads(go.Figure(figure).to_json()) == figure, div_id


# --- offline, and in a browser --------------------------------------------------------------------


def test_page_needs_nothing_from_the_network(whole_page: str) -> None:
    parser = Tags()
    parser.feed(whole_page)
    scripts = [attrs for tag, attrs in parser.tags if tag == "script"]
    assert len(scripts) >= 3
    assert all("src" not in attrs for attrs in scripts)
    assert not [attrs for tag, attrs in parser.tags if tag in ("link", "img", "iframe", "object", "embed")]
    styles = whole_page[whole_page.index("<style>") : whole_page.index("</style>")]
    assert "url(" not in styles and "@import" not in styles
    assert whole_page.count("plotly.js v") >= 1
    # the library is embedded once, not once per chart
    assert whole_page.count("window.PlotlyConfig") == 1


def test_report_draws_in_headless_chromium_offline(whole_page: str, tmp_path: Path) -> None:
    chromium = chromium_or_skip()
    page = tmp_path / "report.html"
    page.write_text(whole_page, encoding="utf-8")
    proc = subprocess.run(
        [
            chromium,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            f"--user-data-dir={tmp_path / 'profile'}",
            "--host-resolver-rules=MAP * ~NOTFOUND",
            "--virtual-time-budget=10000",
            "--window-size=1400,1000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    dom = proc.stdout
    assert proc.returncode == 0, proc.stderr[-2000:]
    for div_id in CHART_IDS:
        at = dom.index(f'id="{div_id}"')
        drawn = dom[at : at + 200]
        assert "js-plotly-plot" in drawn, div_id
    assert dom.count('class="main-svg"') >= 2 * len(CHART_IDS)
    assert dom.count('class="point"') + dom.count('class="bars"') > 0
    assert "<h2>Human decisions</h2>" in dom


# --- the command line -----------------------------------------------------------------------------


@pytest.fixture
def synthetic_cli(synthetic: tuple[Path, Any]) -> CLI:
    home, _ = synthetic

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "longrun.app.cli", "--home", str(home), *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    return run


def test_cli_writes_the_report_and_prints_its_path(
    synthetic: tuple[Path, Any], synthetic_cli: CLI, tmp_path: Path
) -> None:
    _, made = synthetic
    out = tmp_path / "out" / "report.html"
    out.parent.mkdir()
    proc = synthetic_cli(
        "report", made.run_id, "--html", str(out), "--since", made.start.strftime("%Y-%m-%dT%H:%M")
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == str(out)
    assert os.listdir(out.parent) == ["report.html"]
    page = out.read_text(encoding="utf-8")
    assert report_data(page)["run_id"] == made.run_id
    assert report_data(page)["windowed"] is True


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["nosuchrun"], "no run with id or name 'nosuchrun'"),
        (["{run}", "--since", "yesterday"], "--since 'yesterday' is not an ISO time"),
        (["{run}", "--until", "2026-13-40"], "--until '2026-13-40' is not an ISO time"),
        (["{run}", "--since", "2030-01-02", "--until", "2030-01-01"], "is not before --until"),
        (["{run}", "--since", "2099-01-01"], "is after the last event"),
    ],
    ids=["unknown run", "bad since", "bad until", "since after until", "window after the run"],
)
def test_bad_input_is_one_line_and_writes_nothing(
    synthetic: tuple[Path, Any], synthetic_cli: CLI, tmp_path: Path, args: list[str], said: str
) -> None:
    _, made = synthetic
    out = tmp_path / "report.html"
    proc = synthetic_cli("report", *[a.format(run=made.run_id) for a in args], "--html", str(out))
    assert proc.returncode == 1
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("longrun: error: ") and said in lines[0], proc.stderr
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("where", ["missing folder", "a folder", "a file's folder"])
def test_an_unwritable_path_is_refused(
    synthetic: tuple[Path, Any], synthetic_cli: CLI, tmp_path: Path, where: str
) -> None:
    _, made = synthetic
    (tmp_path / "plain").write_text("not a folder")
    target = {
        "missing folder": tmp_path / "nope" / "report.html",
        "a folder": tmp_path,
        "a file's folder": tmp_path / "plain" / "report.html",
    }[where]
    proc = synthetic_cli("report", made.run_id, "--html", str(target))
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("longrun: error: ") and "Traceback" not in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ["plain"]


def test_an_error_leaves_an_existing_report_alone(
    synthetic: tuple[Path, Any], synthetic_cli: CLI, tmp_path: Path
) -> None:
    out = tmp_path / "report.html"
    out.write_text("the report of yesterday")
    proc = synthetic_cli("report", "nosuchrun", "--html", str(out))
    assert proc.returncode == 1
    assert out.read_text() == "the report of yesterday"
    assert os.listdir(tmp_path) == ["report.html"]


# --- the benchmark --------------------------------------------------------------------------------


def test_benchmark_reports_time_and_memory_against_a_baseline() -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "longrun.bench",
            "report",
            "--events",
            "4000",
            "--baseline-events",
            "2000",
            "--repeat",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout)
    assert result["benchmark"] == "report"
    assert (result["events"], result["baseline"]["events"]) == (4000, 2000)
    for figures_ in (result, result["baseline"]):
        assert 0 < figures_["build_min_s"] <= figures_["build_s"]
        assert len(figures_["build_samples_s"]) == 1
        assert 0 < figures_["import_rss_mb"] <= figures_["peak_rss_mb"]
        assert figures_["html_bytes"] > 4_000_000
    assert result["targets"] == {"build_s": 10.0, "peak_rss_mb": 500.0}
    assert result["met"] == {"build": result["build_s"] < 10.0, "memory": result["peak_rss_mb"] < 500.0}
    assert result["meets_targets"] is all(result["met"].values())
    assert set(result["load_avg_1m"]) == {"before", "after"}


def test_benchmark_child_reports_its_own_peak_memory_not_its_parents() -> None:
    """A child inherits its parent's `ru_maxrss` through fork and exec: the benchmark's children
    (whose parent holds the synthetic runs it wrote) must measure their own."""
    grown = bytearray(300 * 1024 * 1024)
    grown[::4096] = b"\x01" * len(range(0, len(grown), 4096))  # touch every page: resident
    proc = subprocess.run(
        [sys.executable, "-c", "from longrun.bench.report import _rss_mb; print(_rss_mb())"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    del grown
    assert proc.returncode == 0, proc.stderr
    assert 0 < float(proc.stdout) < 200
