"""textstats (`RUN_ACTIVE`): three ended sessions, a rewind, a decided approval and two pending
ones.
"""

from __future__ import annotations

from datetime import timedelta

from longrun.scheduler.guards import policy
from longrun.scheduler.judging.judge import waiting_reason
from longrun.store import log, runs
from longrun.store.models import RunState, iso
from seed.calls import bash_call, commit_call, digest, edit_call, read_call, write_call
from seed.ids import (
    APPROVAL_DECIDED,
    APPROVAL_PUSH,
    APPROVAL_QUESTION,
    CP_BEFORE_REWIND,
    CP_HEAD,
    CP_S1_END,
    CP_S2_END,
    HAIKU,
    RUN_ACTIVE,
    SEED_NOW,
    WHO,
)
from seed.live import check_verdict, rubric_verdict, tool_use_id
from seed.story import Story
from seed.textstats_files import (
    CURL,
    INIT_0,
    INIT_1,
    INIT_2,
    INIT_3,
    INIT_REGEX,
    PYTEST_APOSTROPHE_FAIL,
    PYTEST_NO_READING_TIME,
    PYTEST_PUNCTUATION_FAIL,
    README_0,
    TEST_READING_TIME,
    TEST_TOP_WORDS,
    TEST_WORD_COUNT,
    TEXTSTATS_SPEC,
    USAGE,
    pytest_ok,
    ratchet_evidence,
)


def write_textstats(story: Story) -> None:
    day = SEED_NOW.replace(hour=0)
    run = story.create_run(
        RUN_ACTIVE,
        TEXTSTATS_SPEC,
        when=day + timedelta(hours=5, minutes=41, seconds=12),
        first_files={
            "README.md": README_0,
            "textstats/__init__.py": INIT_0,
            "tests/test_word_count.py": TEST_WORD_COUNT,
            "tests/test_top_words.py": TEST_TOP_WORDS,
            "tests/test_reading_time.py": TEST_READING_TIME,
        },
        first_message="Start textstats: the README and the tests the functions must pass",
    )
    spec = run.spec
    rubric_rt = spec.features[2].rubric or ""
    rubric_docs = spec.features[3].rubric or ""
    story.start(run, day + timedelta(hours=5, minutes=44, seconds=3))

    # Session 1: word_count and a first top_words; then it wants a long sample text (network: asks).
    s1 = story.session(run, day + timedelta(hours=5, minutes=44, seconds=4), "started", 31877)
    s1.turn(
        "I'll start by reading the README to see what the package needs.", read_call("README.md", README_0)
    )
    s1.turn(
        "Three functions in textstats/__init__.py. Let me look at the tests before writing anything.",
        read_call("tests/test_word_count.py", TEST_WORD_COUNT),
        read_call("tests/test_top_words.py", TEST_TOP_WORDS),
        out=420,
    )
    s1.turn(
        "word_count splits on whitespace; top_words counts lower-cased words. I'll write both now and "
        "leave reading_time for after they pass.",
        write_call("textstats/__init__.py", INIT_1),
        out=1400,
    )
    s1.turn(
        "Running the word_count tests.",
        bash_call("python -m pytest -q tests/test_word_count.py", pytest_ok(3, "0.01")),
        out=300,
    )
    s1.turn(
        "word_count passes. Now top_words.",
        bash_call("python -m pytest -q tests/test_top_words.py", PYTEST_PUNCTUATION_FAIL, is_error=True),
        out=300,
    )
    s1.turn(
        "top_words counts 'cat.' and 'CAT?' as different words: punctuation has to be stripped before "
        "counting. Before I change it, I'll commit what passes.",
        commit_call("Add word_count and a first top_words", {"textstats/__init__.py": INIT_1}),
        out=500,
    )
    s1.turn(
        "For reading_time I want a long real text to check the rounding on, not only the short strings "
        "in the tests.",
        bash_call(
            "ls tests", "__pycache__\ntest_reading_time.py\ntest_top_words.py\ntest_word_count.py", ms=6
        ),
        out=350,
    )
    s1.turn("I'll make a folder for test data first.", bash_call("mkdir -p tests/data", "", ms=5), out=250)
    curl_id = tool_use_id(run.id, 1, s1.calls)
    asked = s1.pause(
        "Downloading Pride and Prejudice from Project Gutenberg as a long sample text.",
        [{"id": curl_id, "name": "bash", "input": {"command": CURL}}],
    )
    assert asked == [APPROVAL_DECIDED]
    cp = run.head_checkpoint
    assert cp is not None and cp.id == CP_S1_END
    statuses = story.judge(
        run,
        s1,
        cp,
        [
            (
                "word-count",
                "command",
                "pass",
                check_verdict(spec.features[0].check or "", "pass", pytest_ok(3, "0.01"), 0.41),
            ),
            (
                "top-words",
                "command",
                "fail",
                check_verdict(spec.features[1].check or "", "fail", PYTEST_PUNCTUATION_FAIL, 0.44),
            ),
            (
                "reading-time",
                "command",
                "fail",
                check_verdict(spec.features[2].check or "", "fail", PYTEST_NO_READING_TIME, 0.37, 2)
                | {"rubric": rubric_rt, "rubric_skipped": "not judged: the check did not pass (fail)"},
            ),
            (
                "usage-docs",
                "llm",
                "fail",
                rubric_verdict(
                    rubric_docs,
                    "fail",
                    "README.md has no Usage section yet.",
                    [
                        ("a '## Usage' section exists", False, "there is none"),
                        ("each function has an example call", False, ""),
                        ("the results shown match the code", False, "nothing is shown"),
                    ],
                    "the start of the run",
                    1187,
                ),
            ),
            ("ratchet", "ratchet", "pass", ratchet_evidence(3, 6, None, None)),
        ],
        {"usage-docs": (1702, 344)},
    )
    story.settle(run, s1, statuses, {})
    approvals = runs.list_approvals(story.store, run.id, state="pending")
    story.set_state(
        run,
        RunState.awaiting_approval,
        waiting_reason(approvals),
        due_at=None,
        next_session_at=None,
        next_reason=None,
    )

    story.at(day + timedelta(hours=6, minutes=52, seconds=40))
    comment = "Fine: Project Gutenberg texts are public domain. Keep the file under tests/data/."
    with story.store.writing() as conn:
        runs.decide_approval(conn, APPROVAL_DECIDED, "approved", WHO, comment)
        said = f"tool call approved by {WHO}"
        runs.set_run_state(conn, run.id, RunState.scheduled, said)
        runs.set_run_plan(conn, run.id, due_at=None, hold_until=None, next_session_at=None, next_reason=said)

    # Session 2: goes on from the paused conversation; a regex tokenizer that breaks word_count.
    s2 = story.session(
        run, day + timedelta(hours=6, minutes=52, seconds=41), f"tool call approved by {WHO}", 33410
    )
    notice = (
        "[longrun] This session goes on from where the last one paused: bash call approved by "
        f"{WHO} at {iso(day + timedelta(hours=6, minutes=52, seconds=40))[:19]}+00:00: {comment}."
    )
    story.event(
        run.id,
        "conversation_resumed",
        {
            "approvals": [APPROVAL_DECIDED],
            "conversation_id": 1,
            "notice": notice,
            "results": {curl_id: {"action": "run", "text": ""}},
        },
        s2.id,
    )
    story.later(0.09)
    story.event(run.id, "tool_call", {"decision": "allow", "input": {"command": CURL}, "tool": "bash"}, s2.id)
    story.later(2.31)
    story.event(
        run.id, "tool_result", {"duration_ms": 2308, "is_error": False, "output": "", "tool": "bash"}, s2.id
    )
    with story.store.writing() as conn:
        runs.mark_resumed(conn, 1, s2.id)
    s2.turn(
        "The sample text is in tests/data. Back to top_words: rather than stripping punctuation word by "
        "word, a regex that finds words handles every case at once.",
        edit_call("textstats/__init__.py", INIT_1, INIT_REGEX),
        out=1300,
    )
    s2.turn(
        "Running the top_words tests.",
        bash_call("python -m pytest -q tests/test_top_words.py", pytest_ok(3, "0.02")),
        out=260,
    )
    s2.turn(
        "top_words passes. word_count now uses the same regex, so let me check it still passes.",
        bash_call("python -m pytest -q tests/test_word_count.py", PYTEST_APOSTROPHE_FAIL, is_error=True),
        out=320,
    )
    s2.turn(
        '\\w+ splits "don\'t" and "well-known" in two. The test says a word is a run of non-whitespace, '
        "so the regex is wrong for word_count; I'll note it and look at reading_time first.",
        read_call("tests/test_reading_time.py", TEST_READING_TIME),
        out=700,
    )
    s2.turn(
        "reading_time rounds up with integer division.",
        bash_call("python -m pytest -q tests/test_reading_time.py", pytest_ok(3, "0.01")),
        out=900,
    )
    s2.turn(
        "reading_time passes. Committing; word_count's regression is the first thing for the next session.",
        commit_call(
            "Tokenize with a regex so punctuation never counts; add reading_time",
            {"textstats/__init__.py": INIT_REGEX},
        ),
        out=420,
    )
    s2.handoff(
        "",
        {
            "done": ["top_words strips punctuation (regex tokenizer)", "reading_time"],
            "next": [
                "fix word_count: the \\w+ tokenizer splits don't and well-known",
                "Usage section in README",
            ],
            "blockers": [
                "tests/test_word_count.py::test_apostrophes_and_hyphens_do_not_split_words fails with the "
                "regex tokenizer; a word must stay a run of non-whitespace"
            ],
            "notes": "tests/data/pride-and-prejudice.txt (downloaded, approved) is a long sample "
            "for reading_time.",
        },
    )
    s2.turn("I've left a handoff: word_count regressed with the regex and needs fixing next.", out=180)
    cp = s2.end("finished", "the model ended its turn")
    assert cp.id == CP_S2_END
    statuses = story.judge(
        run,
        s2,
        cp,
        [
            (
                "word-count",
                "command",
                "fail",
                check_verdict(spec.features[0].check or "", "fail", PYTEST_APOSTROPHE_FAIL, 0.43),
            ),
            (
                "top-words",
                "command",
                "pass",
                check_verdict(spec.features[1].check or "", "pass", pytest_ok(3, "0.02"), 0.45),
            ),
            (
                "reading-time",
                "command+llm",
                "error",
                check_verdict(spec.features[2].check or "", "pass", pytest_ok(3, "0.01"), 0.36)
                | {
                    "rubric": rubric_rt,
                    "model": HAIKU.model,
                    "diff_bytes": 1544,
                    "error": "HTTP 529: Overloaded",
                    "request_id": f"req_01{digest(run.id, cp.id, 'overloaded')[:22]}",
                },
            ),
            (
                "usage-docs",
                "llm",
                "fail",
                rubric_verdict(
                    rubric_docs,
                    "fail",
                    "README.md still has no Usage section.",
                    [
                        ("a '## Usage' section exists", False, ""),
                        ("each function has an example call", False, ""),
                        ("the results shown match the code", False, ""),
                    ],
                    "the start of the run",
                    2406,
                ),
            ),
            ("ratchet", "ratchet", "pass", ratchet_evidence(3, 9, f"checkpoint {CP_S1_END}", 6)),
        ],
        {"usage-docs": (2011, 301)},
    )
    before = dict(runs.get_checkpoint(story.store, CP_S1_END).features)
    story.settle(run, s2, statuses, before)
    story.next_session(run, s2)

    # A person pauses, rewinds to checkpoint 3 (before the regex) and resumes from there.
    story.at(day + timedelta(hours=7, minutes=49, seconds=15))
    story.set_state(
        run, RunState.paused, f"paused by {WHO}", due_at=None, next_session_at=None, next_reason=None
    )
    story.event(run.id, "paused", {"by": WHO, "sessions_told_to_wrap_up": []})
    story.at(day + timedelta(hours=8, minutes=6, seconds=2))
    before_rewind = story.checkpoint(run, None, "before_rewind")
    assert before_rewind.id == CP_BEFORE_REWIND
    keep = f"refs/longrun/{run.id}/abandoned/1"
    run.repo.refs[keep] = before_rewind.commit
    run.repo.snapshot(
        "longrun: the workspace as found before a restore", run.id, story.now, keep=f"{keep}-found"
    )
    target = runs.get_checkpoint(story.store, CP_S1_END)
    run.repo.git("reset", "-q", "--hard", f"{target.commit}^")
    run.since_checkpoint = []
    story.flush()
    with story.store.writing() as conn:
        runs.set_head_checkpoint(conn, run.id, target.id)
        log.append(
            conn,
            run.id,
            "rewound",
            {
                "to": target.id,
                "from": before_rewind.id,
                "commit": target.commit,
                "abandoned_ref": keep,
                "by": WHO,
            },
        )
    run.head_checkpoint = target
    story.later(41.3)
    said = f"resumed by {WHO}"
    story.set_state(
        run,
        RunState.scheduled,
        said,
        due_at=story.now,
        hold_until=None,
        next_session_at=None,
        next_reason=said,
    )
    how = f"from the resume context of checkpoint {target.id}"
    story.event(run.id, "resumed", {"by": WHO, "checkpoint_id": target.id, "exact": False, "how": how})

    # Session 3, from checkpoint 3: punctuation stripped, reading_time, the Usage section; then it
    # wants to push and asks a question (both wait for a person).
    s3 = story.session(run, story.now + timedelta(seconds=0.8), said, 35102)
    s3.turn(
        "Session 2's line was rewound: I start again from checkpoint 3. top_words needs punctuation "
        "stripped without changing what word_count counts as a word.",
        read_call("textstats/__init__.py", INIT_1),
        out=800,
    )
    s3.turn(
        'Stripping string.punctuation from each whitespace-separated word keeps "don\'t" whole and '
        'drops "--".',
        edit_call("textstats/__init__.py", INIT_1, INIT_2),
        out=1100,
    )
    s3.turn(
        "Running both test files.",
        bash_call(
            "python -m pytest -q tests/test_word_count.py tests/test_top_words.py", pytest_ok(6, "0.02")
        ),
        out=260,
    )
    s3.turn(
        "Both pass. Committing.",
        commit_call("Strip punctuation in top_words", {"textstats/__init__.py": INIT_2}),
        out=240,
    )
    s3.turn(
        "Now reading_time: math.ceil of words over wpm, and a clear error for wpm <= 0 instead of a "
        "ZeroDivisionError.",
        edit_call("textstats/__init__.py", INIT_2, INIT_3),
        out=1200,
    )
    s3.turn(
        "Checking it against the long sample as well as the tests.",
        bash_call(
            'python -c "import textstats; '
            "print(textstats.reading_time(open('tests/data/pride-and-prejudice.txt').read()))\"",
            'Traceback (most recent call last):\n  File "<string>", line 1, in <module>\n'
            "FileNotFoundError: [Errno 2] No such file or directory: 'tests/data/pride-and-prejudice.txt'",
            is_error=True,
            ms=90,
        ),
        out=380,
    )
    s3.turn(
        "The sample was downloaded on the line that was rewound, so it is not here. The tests are enough.",
        bash_call("python -m pytest -q tests", pytest_ok(9, "0.03")),
        out=420,
    )
    s3.turn(
        "All nine tests pass. Now the Usage section of the README.",
        edit_call(
            "README.md",
            "Run the tests with `python -m pytest -q tests`.\n",
            "Run the tests with `python -m pytest -q tests`.\n" + USAGE,
        ),
        out=900,
    )
    s3.turn(
        "Committing the function and the docs.",
        commit_call(
            "Add reading_time and a Usage section to the README",
            {"textstats/__init__.py": INIT_3, "README.md": README_0 + USAGE},
        ),
        out=300,
    )
    s3.handoff(
        "",
        {
            "done": [
                "top_words strips punctuation",
                "reading_time, with a ValueError for wpm <= 0",
                "README Usage section",
            ],
            "next": ["push the branch", "check the README examples against the code once more"],
            "blockers": [],
            "notes": "All nine tests pass. The Pride and Prejudice sample from session 2 is gone "
            "with the rewind.",
        },
    )
    push_id = tool_use_id(run.id, 3, s3.calls)
    question_id = tool_use_id(run.id, 3, s3.calls + 1)
    asked = s3.pause(
        "I'll push the branch so the work is shared, and ask how the README's examples should read.",
        [
            {"id": push_id, "name": "bash", "input": {"command": "git push origin HEAD"}},
            {
                "id": question_id,
                "name": policy.ASK_HUMAN,
                "input": {
                    "question": "Should the README's examples quote a real text (a line of Pride and "
                    "Prejudice) or keep to short made-up sentences?",
                    "why": "The usage-docs rubric wants results a reader can check by eye; a quote reads "
                    "better but its counts are harder to verify.",
                    "choices": ["short made-up sentences", "a line of Pride and Prejudice"],
                },
            },
        ],
    )
    assert asked == [APPROVAL_PUSH, APPROVAL_QUESTION]
    cp = run.head_checkpoint
    assert cp is not None and cp.id == CP_HEAD
    statuses = story.judge(
        run,
        s3,
        cp,
        [
            (
                "word-count",
                "command",
                "pass",
                check_verdict(spec.features[0].check or "", "pass", pytest_ok(3, "0.01"), 0.4),
            ),
            (
                "top-words",
                "command",
                "pass",
                check_verdict(spec.features[1].check or "", "pass", pytest_ok(3, "0.02"), 0.42),
            ),
            (
                "reading-time",
                "command+llm",
                "pass",
                check_verdict(spec.features[2].check or "", "pass", pytest_ok(3, "0.01"), 0.38)
                | rubric_verdict(
                    rubric_rt,
                    "pass",
                    "reading_time has a docstring, returns 0 for empty text, and raises ValueError "
                    "for wpm <= 0.",
                    [
                        ("reading_time is documented", True, ""),
                        ("empty text returns 0", True, "math.ceil(0 / wpm) is 0"),
                        ("wpm <= 0 does not divide by zero", True, "raises ValueError first"),
                    ],
                    f"checkpoint {CP_S1_END}",
                    1893,
                ),
            ),
            (
                "usage-docs",
                "llm",
                "fail",
                rubric_verdict(
                    rubric_docs,
                    "fail",
                    "The Usage section shows all three functions, but reading_time('word ' * 450) is 3 only "
                    "at 200 wpm and the example does not say so.",
                    [
                        ("a '## Usage' section exists", True, ""),
                        ("each function has an example call", True, ""),
                        (
                            "the results shown match the code",
                            False,
                            "the reading_time example leaves wpm implicit",
                        ),
                    ],
                    "the start of the run",
                    3120,
                ),
            ),
            ("ratchet", "ratchet", "pass", ratchet_evidence(3, 9, f"checkpoint {CP_S1_END}", 6)),
        ],
        {"reading-time": (1988, 402), "usage-docs": (2260, 377)},
    )
    story.settle(run, s3, statuses, before)
    waiting = runs.list_approvals(story.store, run.id, state="pending")
    story.set_state(
        run,
        RunState.awaiting_approval,
        waiting_reason(waiting),
        due_at=None,
        next_session_at=None,
        next_reason=None,
    )
    story.flush()
    run.repo.write_refs()
