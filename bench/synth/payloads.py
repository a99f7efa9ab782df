"""What the events say: the worker's tools and words for each feature, the judge's evidence, the
handoff, and the question and the push that a person decides."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from longrun.bench.synth.story import CLI, READING_TIME, README, SENTENCES, TOP_WORDS, WORD_COUNT
from longrun.scheduler.spec.run import RunSpec
from longrun.store import log


@dataclass(frozen=True)
class Work:
    """What the worker does for one feature: its code, tests, words and the tools it calls."""

    feature: str
    function: str
    source: str
    test: str


WORK = {
    WORD_COUNT: Work(WORD_COUNT, "word_count", "src/textstats/core.py", "tests/test_word_count.py"),
    TOP_WORDS: Work(TOP_WORDS, "top_words", "src/textstats/core.py", "tests/test_top_words.py"),
    READING_TIME: Work(READING_TIME, "reading_time", "src/textstats/timing.py", "tests/test_reading_time.py"),
    SENTENCES: Work(SENTENCES, "sentences", "src/textstats/sentences.py", "tests/test_sentences.py"),
    CLI: Work(CLI, "main", "src/textstats/cli.py", "tests/test_cli.py"),
    README: Work(README, "README", "README.md", "tests/test_readme_examples.py"),
}

SAYINGS = (
    "Let me run {test} to see where {function} stands.",
    "The failure is in {function}: the empty text is not handled. I'll fix that first.",
    "I'll read {source} before changing {function}.",
    "The test expects lower-cased words with punctuation stripped; {function} keeps the punctuation.",
    "That edit should do it. Running the tests again.",
    "All of {test} passes now. Committing, then the full suite to check for regressions.",
    "One more case: text with only whitespace. Adding a test for it.",
    "The full suite passes. Next: the docstring of {function}.",
    "I'll look for other callers of {function} before renaming the parameter.",
    "The test for {function} fails on a trailing newline; splitting on whitespace handles it.",
)


@dataclass(frozen=True)
class Tool:
    """One tool call the worker makes, as the two JSON payloads its events carry."""

    name: str
    call: str
    """The tool_call event's data."""
    result_rest: str
    """The tool_result event's data without its leading duration_ms."""
    ms: int
    """About how long it takes, in milliseconds."""


def _tool(name: str, args: dict[str, Any], output: str, ms: int, is_error: bool = False) -> Tool:
    call = log.canonical_json({"decision": "allow", "input": args, "tool": name})
    rest = log.canonical_json({"is_error": is_error, "output": output, "tool": name})[1:-1]
    return Tool(name, call, rest, ms)


def tool_pool(run_id: str, work: Work) -> list[Tool]:
    """The tool calls of work on one feature, repeated by how often an agent makes each."""
    f, src, test = work.function, work.source, work.test
    sha = hashlib.sha1(f"{run_id}:{f}".encode()).hexdigest()[:7]
    failing = (
        f"..F.                                                                     [100%]\n"
        f"FAILED {test}::test_{f}_empty - AssertionError: assert None == 0\n"
        "1 failed, 3 passed in 0.07s"
    )
    weighted = [
        (4, _tool("bash", {"command": f"python -m pytest -q {test}"}, failing, 900)),
        (
            2,
            _tool("bash", {"command": f"python -m pytest -q {test}"}, "....  [100%]\n4 passed in 0.05s", 850),
        ),
        (
            3,
            _tool(
                "read", {"file_path": src}, f'"""textstats."""\n\n\ndef {f}(text: str) -> int:\n    ...\n', 20
            ),
        ),
        (
            4,
            _tool(
                "edit",
                {"file_path": src, "old_string": "    return None\n", "new_string": "    return 0\n"},
                f"The file {src} has been updated.",
                30,
            ),
        ),
        (
            2,
            _tool("grep", {"pattern": f"def {f}", "path": "src"}, f"{src}:14:def {f}(text: str) -> int:", 60),
        ),
        (1, _tool("glob", {"pattern": "tests/test_*.py"}, "\n".join(w.test for w in WORK.values()), 15)),
        (
            2,
            _tool(
                "bash",
                {"command": f'git add -A && git commit -q -m "{f}: handle the empty text"'},
                f"[longrun/{run_id} {sha}] {f}: handle the empty text\n 2 files changed, 9 insertions(+)",
                120,
            ),
        ),
        (1, _tool("bash", {"command": "git status --short"}, f" M {src}\n M {test}", 40)),
        (
            1,
            _tool(
                "write",
                {"file_path": test, "content": f"from textstats import {f}\n\n\ndef test_{f}_empty():\n"},
                f"File created successfully at: {test}",
                25,
            ),
        ),
        (
            2,
            _tool(
                "bash",
                {"command": "python -m pytest -q"},
                "....................  [100%]\n20 passed in 0.31s",
                2400,
            ),
        ),
        (
            1,
            _tool(
                "edit",
                {"file_path": src, "old_string": "def helper(:\n", "new_string": "def helper():\n"},
                "String to replace not found in file.",
                20,
                is_error=True,
            ),
        ),
    ]
    return [tool for times, tool in weighted for _ in range(times)]


def sayings_json(work: Work) -> list[str]:
    return [json.dumps(s.format(**work.__dict__), ensure_ascii=False) for s in SAYINGS]


VERDICT_OUTPUT = {"pass": "4 passed in 0.05s", "fail": "1 failed, 3 passed in 0.07s"}


def evidence(feature: str, status: str, spec: RunSpec) -> dict[str, Any]:
    """What the judge keeps for a verdict: the check's command and output, the rubric's reasons."""
    declared = next(f for f in spec.features if f.id == feature)
    out: dict[str, Any] = {}
    if declared.check:
        out |= {
            "command": declared.check,
            "exit_code": 0 if status == "pass" else 1,
            "duration_s": 0.412,
            "output_tail": VERDICT_OUTPUT[status],
        }
        if declared.rubric and status != "pass":
            out |= {
                "rubric": declared.rubric,
                "rubric_skipped": f"not judged: the check did not pass ({status})",
            }
    if declared.rubric and (status == "pass" or not declared.check):
        met = status == "pass"
        out |= {
            "rubric": declared.rubric,
            "confidence": 0.86 if met else 0.74,
            "rationale": "The diff and the check output show every criterion met."
            if met
            else "The README has no example for sentences() or for the command line yet.",
            "criteria": [
                {"criterion": declared.rubric, "met": met, "note": "" if met else "examples missing"}
            ],
            "model": spec.judge.model or spec.worker.model,
            "diff_base": "the start of the run",
            "diff_bytes": 18_204,
        }
    return out


def judge_name(feature: str, status: str, spec: RunSpec) -> str:
    declared = next(f for f in spec.features if f.id == feature)
    if not declared.check:
        return "llm"
    return "command+llm" if declared.rubric and status == "pass" else "command"


HANDOFF = {
    "done": ["{function}: the empty text and punctuation", "tests for the edge cases"],
    "next": ["the next failing feature", "README examples"],
    "blockers": [],
    "notes": "Run the whole suite before committing: top_words broke once when core.py changed.",
}
QUESTION = {
    "question": "Should sentences() treat a line break as the end of a sentence?",
    "why": "The tests do not say, and the README example splits a poem line by line.",
    "choices": ["yes, always", "only a blank line", "never"],
}
ANSWER = "Only a blank line ends a sentence; a single line break does not."
PUSH = "git push origin HEAD"
PUSH_OUTPUT = "To github.com:textstats/textstats.git\n * [new branch]      HEAD -> {branch}"
APPROVE_COMMENT = "ok: the branch goes to the team remote for review, nothing is merged"
RESET_COMMENT = "looked at the last four handoffs: the tokenizer rewrite is real progress; go on"
RATE_LIMIT = "This request would exceed your account's rate limit. Please try again later."
