"""`longrun report`: a run's time on one self-contained HTML page, to audit a day of work in minutes.

`collect` reads everything the page shows through the SQL aggregates of `store.timeline` and
`store.audit` (nothing loops over the log in Python but `verify_chain`, which must read every
event to prove the chain) into a `ReportData`; `render` draws it with plotly, the library embedded
once, so the file opens offline. Every chart shares the window's time axis; zooming one zooms the
others.

Times are UTC throughout; `--since` and `--until` without an offset are read as UTC.

The modules, in the order they build on one another: `look` (the labels and colours of session
outcomes and event markers, the font, how times and token counts are written), `collect` (the
store read into a `ReportData`), `figures` (its plotly figures) and `page` (the HTML around them,
and writing it to a file).
"""

from __future__ import annotations

from longrun.app.report.collect import parse_time
from longrun.app.report.look import OUTCOMES
from longrun.app.report.page import CHART_IDS, build_report, check_writable, write_report

__all__ = ["CHART_IDS", "OUTCOMES", "build_report", "check_writable", "parse_time", "write_report"]
