"""research-notes (`RUN_FAILED`): two sessions crashed in a row."""

from __future__ import annotations

from datetime import timedelta

from longrun.store.models import RunState, SessionState
from seed.calls import Call, bash_call, commit_call, write_call
from seed.ids import RUN_FAILED, SEED_NOW
from seed.live import check_verdict, rubric_verdict
from seed.story import Story

NOTES_SPEC = """\
name = "research-notes"
goal = '''
Summarise the twelve papers in papers/ into notes/, one Markdown file per paper with its claims,
its method and its key numbers, and an index in notes/README.md that links them all.
'''
workspace = "~/research-notes"

[worker]
model = "claude-sonnet-5-5"
max_tokens = 8192

[session]
time_box = "40m"
wrap_up = "5m"

[schedule]
mode = "back_to_back"
cooldown = "10m"

[budget]
usd = 4.0

[[features]]
id = "notes-complete"
description = "Every PDF in papers/ has a note in notes/ with Claims, Method and Numbers sections."
check = "python tools/check_notes.py"

[[features]]
id = "index"
description = "notes/README.md links every note, one line per paper."
check = "python tools/check_index.py"

[[features]]
id = "faithful"
description = "The notes say what the papers say."
rubric = "Each note's numbers and claims appear in its paper; nothing is invented or overstated."
"""

PAPERS = [
    "01-attention.pdf",
    "02-scaling-laws.pdf",
    "03-chinchilla.pdf",
    "04-instructgpt.pdf",
    "05-constitutional-ai.pdf",
    "06-retrieval.pdf",
    "07-long-context-survey.pdf",
    "08-mixture-of-experts.pdf",
    "09-speculative-decoding.pdf",
    "10-flash-attention.pdf",
    "11-lora.pdf",
    "12-evals.pdf",
]

CHECK_NOTES = '''\
"""Fail unless every paper has a note with Claims, Method and Numbers sections."""

import sys
from pathlib import Path

missing = []
for paper in sorted(Path("papers").glob("*.pdf")):
    note = Path("notes") / f"{paper.stem}.md"
    text = note.read_text() if note.exists() else ""
    if not all(f"## {part}" in text for part in ("Claims", "Method", "Numbers")):
        missing.append(paper.name)
if missing:
    sys.exit(f"{len(missing)} of 12 papers have no complete note: {', '.join(missing)}")
'''


def _note(title: str) -> str:
    return f"# {title}\n\n## Claims\n\n- …\n\n## Method\n\n- …\n\n## Numbers\n\n- …\n"


def write_research_notes(story: Story) -> None:
    day = SEED_NOW.replace(hour=0)
    run = story.create_run(
        RUN_FAILED,
        NOTES_SPEC,
        when=day + timedelta(minutes=55, seconds=8),
        first_files={
            "papers/README.md": "The PDFs are not in git (see papers/fetch.sh).\n"
            + "".join(f"- {p}\n" for p in PAPERS),
            "tools/check_notes.py": CHECK_NOTES,
            "tools/check_index.py": '"""Fail unless notes/README.md links every note."""\n',
        },
        first_message="Papers list and the checks for the notes",
    )
    rubric = run.spec.features[2].rubric or ""
    story.start(run, day + timedelta(minutes=56))

    s1 = story.session(run, day + timedelta(minutes=56, seconds=1), "started", 20914)
    s1.turn("Listing the papers.", bash_call("ls papers", "\n".join(PAPERS) + "\nREADME.md", ms=5), out=200)
    done: dict[str, str] = {}
    for paper in PAPERS[:5]:
        stem = paper.removesuffix(".pdf")
        s1.turn(
            f"Extracting the text of {paper}.",
            bash_call(
                f"pdftotext -layout papers/{paper} - | head -c 60000",
                f"[{stem}: 60000 bytes of text]",
                ms=2300,
            ),
            out=300,
        )
        done[f"notes/{stem}.md"] = _note(stem.split("-", 1)[1].replace("-", " ").title())
        s1.turn(
            f"Writing the note for {paper}.",
            write_call(f"notes/{stem}.md", done[f"notes/{stem}.md"]),
            out=2400,
        )
    s1.turn(
        "Five notes written; committing them.", commit_call("Notes for papers 01 to 05", dict(done)), out=260
    )
    s1.handoff(
        "",
        {
            "done": ["notes for papers 01-05"],
            "next": ["notes for papers 06-12", "notes/README.md index"],
            "blockers": [],
            "notes": "pdftotext -layout works well; 07 is a 900-page scanned survey, read it in pieces.",
        },
    )
    s1.turn("Handoff left for the next session.", out=140)
    cp = s1.end("finished", "the model ended its turn")
    incomplete = "7 of 12 papers have no complete note: " + ", ".join(PAPERS[5:])
    verdicts = [
        (
            "notes-complete",
            "command",
            "fail",
            check_verdict("python tools/check_notes.py", "fail", incomplete, 0.09),
        ),
        (
            "index",
            "command",
            "fail",
            check_verdict("python tools/check_index.py", "fail", "notes/README.md: not found", 0.08),
        ),
        (
            "faithful",
            "llm",
            "pass",
            rubric_verdict(
                rubric,
                "pass",
                "The five notes quote their papers' numbers exactly and claim nothing the papers do not.",
                [("numbers appear in the paper", True, ""), ("nothing invented or overstated", True, "")],
                "the start of the run",
                9310,
            ),
        ),
    ]
    statuses = story.judge(run, s1, cp, verdicts, {"faithful": (11890, 410)})
    story.settle(run, s1, statuses, {})
    carried = {
        "carried_from": cp.id,
        "rationale": f"nothing in the workspace changed since checkpoint {cp.id}, where it passed",
        "rubric": rubric,
    }
    verdicts[2] = ("faithful", "llm", "pass", carried)
    story.next_session(run, s1)
    before = dict(statuses)

    for n, pid, minutes in ((2, 22307, 10), (3, 23561, 10)):
        live = story.session(
            run, story.now + timedelta(minutes=minutes), "cooldown of 600s after the last session", pid
        )
        live.turn(
            "Papers 06 and 07 next. 07 is a long scan; extracting it a few pages at a time.",
            bash_call(
                "pdftotext -layout -f 1 -l 40 papers/07-long-context-survey.pdf - | wc -c", "184220", ms=5100
            ),
            out=420,
        )
        live.turn(
            "The first 40 pages are fine. The whole file at once, to find its tables.",
            Call(
                "bash",
                {"command": "pdftotext -layout papers/07-long-context-survey.pdf /tmp/07.txt"},
                interrupted=True,
            ),
            out=300,
        )
        story.later(1.2)
        live.beat()
        story.later(25 * 60 + 6)
        cp = live.end("its heartbeat stopped", "", state=SessionState.crashed)
        statuses = story.judge(run, live, cp, verdicts, {})
        story.settle(run, live, statuses, before)
        if n == 2:
            story.next_session(run, live)
    story.set_state(
        run,
        RunState.failed,
        "sessions 2 and 3 crashed while pdftotext read papers/07-long-context-survey.pdf (a 900-page "
        "scan): it needs OCR and more memory than the session has",
        due_at=None,
        next_session_at=None,
        next_reason=None,
    )
    run.repo.write_refs()
