"""The report's HTML page: the summary, the charts (plotly.js embedded once; zooming one zooms the
others), the sessions and the people's decisions; and writing it to a file without ever leaving
a half-written one.
"""

from __future__ import annotations

import html
import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from longrun.app.format import span, usd
from longrun.app.report.collect import ReportData, ReportError, collect
from longrun.app.report.figures import (
    features_figure,
    gantt_figure,
    heatmap_figure,
    spend_figure,
    tokens_figure,
)
from longrun.app.report.look import FONTS, OUTCOMES, axis_time, tokens, when
from longrun.store.db import Store

CHART_IDS = ("chart-spend", "chart-tokens", "chart-features", "chart-sessions", "chart-events")
PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def build_report(
    store: Store, run_ref: str, *, since: datetime | None = None, until: datetime | None = None
) -> str:
    """The report of run `run_ref` as one self-contained HTML page (plotly.js embedded)."""
    return render(collect(store, run_ref, since=since, until=until))


def render(data: ReportData) -> str:
    figures = [
        (
            "Spend",
            "Cumulative spend of model and judge calls against the budget; approvals, breaker "
            "trips and other events marked on the time axis.",
            spend_figure(data),
        ),
        ("Tokens", f"Tokens per {_width_words(data.bucket_s)} by kind.", tokens_figure(data)),
        (
            "Features",
            "Done-condition features passing, as judged at each checkpoint.",
            features_figure(data),
        ),
        (
            "Session timeline",
            "Each session from its start to its end, coloured by how it ended.",
            gantt_figure(data),
        ),
        (
            "Events",
            f"Events per {_width_words(data.bucket_s)} by kind (colour on a log scale).",
            heatmap_figure(data),
        ),
    ]
    from plotly.io import to_html

    charts = []
    for k, ((title, note, figure), div_id) in enumerate(zip(figures, CHART_IDS, strict=True)):
        # The figures are plotly.js's own dicts, every value written by `figures`: not validated
        # again (building graph objects to do it costs more than the rest of the page).
        div = to_html(
            figure,
            validate=False,
            full_html=False,
            include_plotlyjs=k == 0,
            div_id=div_id,
            config=PLOTLY_CONFIG,
            default_width="100%",
        )
        charts.append(
            f'<section class="chart" id="{div_id.removeprefix("chart-")}"><h2>{_e(title)}</h2>'
            f'<p class="note">{_e(note)}</p>{div}</section>'
        )
    title = f"longrun report: {data.name}"
    payload = json.dumps(data.to_json(), ensure_ascii=False).replace("<", "\\u003c")
    return "".join(
        [
            '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f"<title>{_e(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n",
            _header(data),
            _summary(data),
            *charts,
            _sessions_table(data),
            _decisions_table(data),
            f"<footer>Made by <code>longrun report</code> at {_e(when(datetime.now(UTC)))} UTC. "
            "Every time on this page is UTC.</footer>\n",
            f'<script type="application/json" id="report-data">{payload}</script>\n',
            f"<script>{_sync_script(data)}</script>\n",
            "</main>\n</body>\n</html>\n",
        ]
    )


def _header(data: ReportData) -> str:
    which = "window" if data.windowed else "whole run"
    return (
        f'<header><h1>{_e(data.name)} <span class="id">{_e(data.run_id)}</span></h1>'
        f'<p class="window">{which}: {_e(when(data.start))} → {_e(when(data.end))} UTC '
        f"({_e(span(data.end - data.start))})</p></header>\n"
    )


def _summary(data: ReportData) -> str:
    s = data.summary
    spend = usd(s.spend_usd)
    if s.spend_before_usd:
        spend += f" in the window ({usd(s.spend_before_usd + s.spend_usd)} by its end)"
    if s.budget_usd:
        spend += f" of {usd(s.budget_usd)} budget"
    approvals = f"{s.approvals.asked} asked, {s.approvals.decided} decided"
    if s.approvals.pending:
        approvals += f", {s.approvals.pending} still pending"
    if s.approvals.expired:
        approvals += f", {s.approvals.expired} expired"
    chain = s.chain
    if chain.ok:
        chain_text, chain_class = f"whole: all {chain.events:,} events of the run verified", "ok"
    else:
        chain_text, chain_class = f"BROKEN at event {chain.broken_at}: {chain.reason}", "bad"
    features = f"{s.features_passing} of {s.features_total} pass" if s.features_total else "no done-condition"
    box = s.sandbox
    if box.unconfined:
        sandbox_class = "bad"
        sandbox_text = f"UNCONFINED: {box.unconfined} of {box.confined + box.unconfined} sessions ran "
        sandbox_text += "without the sandbox (" + "; ".join(box.why) + ")"
    elif box.confined:
        sandbox_text, sandbox_class = f"every session confined ({box.confined})", "ok"
    else:
        sandbox_text, sandbox_class = "no session recorded its sandbox", ""
    cells = [
        ("Duration", span(data.end - data.start), ""),
        ("Sessions", f"{s.sessions}", ""),
        ("Spend", spend, ""),
        ("Tokens", f"{tokens(sum(s.tokens.values()))} in {s.calls:,} calls", ""),
        ("Features", features, ""),
        ("Approvals", approvals, ""),
        ("Breaker trips", f"{s.breaker_trips}", "bad" if s.breaker_trips else ""),
        ("Events", f"{s.events:,}", ""),
        ("Hash chain", chain_text, chain_class),
        ("Sandbox", sandbox_text, sandbox_class),
    ]
    items = "".join(f'<div class="cell {cls}"><dt>{_e(k)}</dt><dd>{_e(v)}</dd></div>' for k, v, cls in cells)
    return (
        '<section class="summary" id="summary"><h2>Summary</h2>'
        f'<p class="goal"><b>Goal:</b> {_e(s.goal.strip())}</p>'
        f'<p class="outcome"><b>Outcome:</b> <span class="state {_e(s.state)}">{_e(s.state)}</span> '
        f"{_e(s.state_reason or '')}</p><dl>{items}</dl></section>\n"
    )


def _sessions_table(data: ReportData) -> str:
    rows = []
    for s in data.sessions:
        label, color = OUTCOMES.get(s.outcome, (s.outcome, "#7f7f7f"))
        how = label + (f" ({s.end_reason})" if s.end_reason and s.end_reason != s.outcome else "")
        rows.append(
            f"<tr><td class=num>{s.n}</td><td class=when>{_e(when(s.start))}</td>"
            f"<td class=when>{_e(when(s.end)) if s.end else '—'}</td>"
            f'<td><span class="swatch" style="background:{color}"></span>{_e(how)}</td>'
            f"<td class=num>{_e(usd(s.usd))}</td><td class=num>{_e(tokens(s.tokens))}</td></tr>"
        )
    if data.outside_sessions is not None:
        o = data.outside_sessions
        rows.append(
            '<tr class="muted"><td></td><td colspan=3>calls outside any session</td>'
            f"<td class=num>{_e(usd(o.usd))}</td><td class=num>{_e(tokens(o.total_tokens))}</td></tr>"
        )
    total = data.summary
    rows.append(
        '<tr class="total"><td></td><td colspan=3>in all</td>'
        f"<td class=num>{_e(usd(total.spend_usd))}</td>"
        f"<td class=num>{_e(tokens(sum(total.tokens.values())))}</td></tr>"
    )
    where = " (spend and tokens within the window)" if data.windowed else ""
    return (
        '<section class="table" id="session-table"><h2>Sessions</h2>'
        f'<p class="note">{len(data.sessions)} sessions{_e(where)}.</p>'
        "<table><thead><tr><th>n</th><th>start</th><th>end</th><th>how it ended</th><th>spend</th>"
        f"<th>tokens</th></tr></thead><tbody>{''.join(rows)}</tbody></table></section>\n"
    )


def _decisions_table(data: ReportData) -> str:
    if not data.decisions:
        body = '<p class="note">No decisions by a person in this window.</p>'
    else:
        rows = "".join(
            f"<tr><td>{_e(d.by)}</td><td class=when>{_e(when(d.ts))}</td><td>{_e(d.what)}</td>"
            f"<td>{_e(d.comment or '')}</td></tr>"
            for d in data.decisions
        )
        body = (
            "<table><thead><tr><th>who</th><th>when</th><th>what</th><th>comment</th></tr></thead>"
            f"<tbody>{rows}</tbody></table>"
        )
    return f'<section class="table" id="decisions"><h2>Human decisions</h2>{body}</section>\n'


def _sync_script(data: ReportData) -> str:
    """Zooming or panning one chart's time axis moves the others; a double click resets all."""
    window = json.dumps([axis_time(data.start), axis_time(data.end)])
    ids = json.dumps(list(CHART_IDS))
    return (
        "(function(){"
        f"var ids={ids},full={window},busy=false;"
        "function sync(src,ev){if(busy)return;var r;"
        "if(ev['xaxis.range[0]']!==undefined)r=[ev['xaxis.range[0]'],ev['xaxis.range[1]']];"
        "else if(ev['xaxis.range'])r=ev['xaxis.range'];else if(ev['xaxis.autorange'])r=full;else return;"
        "busy=true;Promise.all(ids.filter(function(o){return o!==src;}).map(function(o){"
        "return Plotly.relayout(o,{'xaxis.range':r});}))"
        ".then(function(){busy=false;},function(){busy=false;});}"
        "window.addEventListener('load',function(){ids.forEach(function(id){"
        "var gd=document.getElementById(id);"
        "if(gd&&gd.on)gd.on('plotly_relayout',function(ev){sync(id,ev);});});});"
        "})();"
    )


# --- writing it ---------------------------------------------------------------------------------


def check_writable(path: Path) -> Path:
    """The absolute path the report will be written to, once it is sure a file can be made there."""
    target = path.expanduser().absolute()
    if target.is_dir():
        raise ReportError(f"{target}: is a directory (give a file name, e.g. {target / 'report.html'})")
    folder = target.parent
    if not folder.is_dir():
        raise ReportError(f"{folder}: no such directory")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ReportError(f"{folder}: cannot write there (permission denied)")
    if target.exists() and not os.access(target, os.W_OK):
        raise ReportError(f"{target}: cannot overwrite it (permission denied)")
    return target


def write_report(text: str, path: Path) -> Path:
    """Write the page next to `path` and rename it into place, so no half-written file is ever left."""
    target = check_writable(path)
    try:
        fd, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    except OSError as exc:
        raise ReportError(f"{target.parent}: cannot write there ({exc.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            out.flush()
            os.fsync(out.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temp, 0o666 & ~umask)
        os.replace(temp, target)
    except OSError as exc:
        Path(temp).unlink(missing_ok=True)
        raise ReportError(f"{target}: cannot write it ({exc.strerror})") from None
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return target


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _width_words(seconds: int) -> str:
    if seconds % 3600 == 0 or seconds >= 3 * 3600:
        return f"{round(seconds / 3600)} h"
    if seconds >= 120:
        return f"{round(seconds / 60)} min"
    return f"{seconds} s"


STYLE = f"""
* {{ box-sizing: border-box; }}
body {{ margin: 0; background: #f6f7f9; color: #1d232a; font: 14px/1.45 {FONTS}; }}
main {{ max-width: 1400px; margin: 0 auto; padding: 24px 28px 40px; }}
header h1 {{ margin: 0 0 4px; font-size: 24px; }}
header .id {{ color: #6b7785; font-weight: normal; font-size: 16px; font-family: ui-monospace, monospace; }}
header .window {{ margin: 0 0 16px; color: #4a5562; }}
section {{ background: #fff; border: 1px solid #e1e5ea; border-radius: 8px; padding: 14px 18px;
  margin: 0 0 16px; }}
h2 {{ margin: 0 0 4px; font-size: 17px; }}
.note {{ margin: 0 0 6px; color: #5b6673; font-size: 13px; }}
.goal {{ margin: 6px 0 6px; }}
.outcome {{ margin: 0 0 12px; }}
.state {{ display: inline-block; padding: 0 8px; border-radius: 10px; background: #e1e5ea;
  font-weight: 600; }}
.state.done {{ background: #d4f0d4; }}
.state.failed, .state.tripped {{ background: #f8d4d4; }}
.state.awaiting_approval, .state.paused {{ background: #fde8c8; }}
.state.running, .state.scheduled {{ background: #d4e8f8; }}
dl {{ display: grid; grid-template-columns: repeat(auto-fill, minmax(250px, 1fr)); gap: 10px; margin: 0; }}
.cell {{ background: #f6f7f9; border-radius: 6px; padding: 8px 12px; border-left: 4px solid #c6ced8; }}
.cell.ok {{ border-left-color: #2ca02c; }}
.cell.bad {{ border-left-color: #d62728; }}
dt {{ font-size: 12px; color: #5b6673; text-transform: uppercase; letter-spacing: .04em; }}
dd {{ margin: 2px 0 0; font-size: 15px; overflow-wrap: anywhere; }}
table {{ border-collapse: collapse; width: 100%; font-size: 13px; }}
th, td {{ text-align: left; padding: 5px 10px; border-bottom: 1px solid #e8ebef; vertical-align: top; }}
th {{ background: #f6f7f9; font-weight: 600; }}
td.when {{ white-space: nowrap; }}
td.num {{ text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }}
tr.total td {{ font-weight: 600; border-top: 2px solid #c6ced8; }}
tr.muted td {{ color: #5b6673; }}
.swatch {{ display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 6px; }}
footer {{ color: #6b7785; font-size: 12px; margin-top: 8px; }}
"""
