"""The demo project: a spec and a small Python workspace that the built-in demo script builds.

`write_demo_project` lays out `longrun.toml` and `workspace/` with a README and real pytest
tests for a module, `textstats.py`, that does not exist yet: the scripted agent writes it
(script `demo`, `scheduler/endpoints/scripts/demo.toml`) and the judge runs the tests to decide.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from longrun.store.errors import LongrunError

DEMO_SCRIPT = "demo"

DEMO_WORKERS = {"scripted": "a scripted model", "claude-code": "Claude Code on a scripted model"}
"""Who may work the demo (`--worker`), and how the demo says so."""


def demo_worker_missing(worker: str) -> str | None:
    """Why the demo cannot run with `worker` here (None: it can), before a run is made."""
    if worker == "claude-code":
        from longrun.scheduler.workers.claude_code import NEEDS_SDK, sdk_installed

        return None if sdk_installed() else f"--worker claude-code {NEEDS_SDK}"
    return None


DEMO_SPEC: dict[str, Any] = {
    "name": "demo",
    "goal": (
        "Build textstats.py, a small text-statistics module, until its three functions pass their "
        "tests, and document them in the README."
    ),
    "workspace": "workspace",
    "worker": {
        "backend": "scripted",
        "script": DEMO_SCRIPT,
        "model": "claude-sonnet-5-5",
        "max_tokens": 4096,
    },
    "session": {"time_box": "3m", "wrap_up": "30s", "checkpoint_every_calls": 4},
    "budget": {"usd": 2.0},
    "schedule": {"mode": "back_to_back", "cooldown": "1s"},
    "features": [
        {
            "id": "word_count",
            "description": "word_count(text) returns the number of words: runs of non-whitespace.",
            "check": "python -m pytest -q tests/test_word_count.py",
        },
        {
            "id": "top_words",
            "description": (
                "top_words(text, n=3) returns the n most frequent words as (word, count) pairs: "
                "lower-cased, punctuation stripped, most frequent first, ties alphabetical."
            ),
            "check": "python -m pytest -q tests/test_top_words.py",
        },
        {
            "id": "reading_time",
            "description": (
                "reading_time(text, wpm=200) returns the minutes needed to read the text, "
                "rounded up; 0 for empty text."
            ),
            "check": "python -m pytest -q tests/test_reading_time.py",
        },
        {
            "id": "usage-docs",
            "description": "README.md has a Usage section with an example of each of the three functions.",
            "rubric": (
                "README.md has a '## Usage' section that shows word_count, top_words and "
                "reading_time, each with an example call and the result it returns, and the "
                "results shown are the ones the code returns."
            ),
        },
    ],
    "judge": {"model": "claude-haiku-5-5"},
}

_HEADER = """\
# The longrun demo: a run spec.
#
# `longrun demo` runs it with no network and no API key: the model is SCRIPTED. A scripted,
# Anthropic-compatible server on 127.0.0.1 plays the built-in script "demo", and the real
# built-in agent talks to it through the real SDK, so the tool calls, the git checkpoints, the
# cost accounting and the judge's test runs are all real. Paths are relative to this file.
"""

# Comments above a key or table, keyed by its dotted path ("features" comments the first feature).
_COMMENTS: dict[str, str] = {
    "goal": "What the run is for; it is done when the judge passes every feature below.",
    "workspace": "The git working tree the agent works in (longrun makes it a repository).",
    "worker": "Who does the work: the built-in agent, here on the scripted model.",
    "worker.script": "The script the scripted model plays: a built-in name or a .toml/.json path.",
    "worker.max_tokens": "Output tokens a model call may use at most.",
    "session": "Each session is time-boxed and ends with a checkpoint: a commit, a handoff, the spend.",
    "session.wrap_up": "How long before the time box the agent is told to wrap up and hand off.",
    "session.checkpoint_every_calls": "Also checkpoint after this many tool calls.",
    "schedule": "The supervisor starts the next session a second after the last one ends.",
    "budget": "Hard caps in US dollars (the scripted model is priced as the model named above).",
    "features": "The done-condition. Only the judge decides: it runs each check in the workspace, "
    "and a\n# separate model judges each rubric against the diff and the checks' output.",
    "judge": "The rubric judge: its own model and prompt, never the worker's; its cost counts too.",
}


def _toml_value(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write {value!r} in a spec")
        return repr(value)
    if isinstance(value, str):
        # A JSON string is a valid TOML basic string (the same escapes, \u ones included).
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write a {type(value).__name__} in a spec")


def _toml_key(key: str) -> str:
    bare = key.replace("_", "").replace("-", "").isalnum() and key.isascii()
    return key if bare else json.dumps(key)


def _is_table_array(value: object) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)


def render_spec(spec: Mapping[str, Any]) -> str:
    """The spec as commented TOML: top-level keys, then tables, then arrays of tables."""
    lines = [_HEADER]

    def comment(path: str) -> None:
        if path in _COMMENTS:
            lines.append(f"# {_COMMENTS[path]}")

    def table(prefix: str, body: Mapping[str, Any]) -> None:
        for key, value in body.items():
            if not isinstance(value, Mapping) and not _is_table_array(value):
                comment(f"{prefix}{key}")
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        for key, value in body.items():
            path = f"{prefix}{key}"
            if isinstance(value, Mapping):
                lines.append("")
                comment(path)
                lines.append(f"[{path}]")
                table(f"{path}.", value)
            elif _is_table_array(value):
                for number, item in enumerate(value):
                    lines.append("")
                    if number == 0:
                        comment(path)
                    lines.append(f"[[{path}]]")
                    table(f"{path}.", item)

    table("", spec)
    return "\n".join(lines) + "\n"


def _merged(base: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """`base` with `overrides` laid over it: tables merge key by key, anything else replaces."""
    result = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(result.get(key), Mapping):
            result[key] = _merged(result[key], value)
        else:
            result[key] = value
    return result


_README = """\
# textstats

A small text-statistics module. Write `textstats.py` in this folder with three functions:

- `word_count(text) -> int`: the number of words in `text`, where a word is a run of
  non-whitespace characters. `word_count("Hello, world!")` is 2; empty text has 0 words.
- `top_words(text, n=3) -> list[tuple[str, int]]`: the `n` most frequent words as
  `(word, count)` pairs. Words are lower-cased and stripped of surrounding punctuation
  (a "word" that is only punctuation is dropped), the most frequent come first, and words
  with the same count are in alphabetical order.
  `top_words("The cat. The dog! the CAT?", n=2)` is `[("the", 3), ("cat", 2)]`.
- `reading_time(text, wpm=200) -> int`: the minutes needed to read `text` at `wpm` words a
  minute, rounded up to a whole minute; 0 for empty text.

Each function has its tests in `tests/`. Run them all with:

    python -m pytest -q tests

When the functions work, add a `## Usage` section at the end of this README with an example
call of each function and the result it returns.
"""

_TEST_WORD_COUNT = """\
from textstats import word_count


def test_empty_text_has_no_words():
    assert word_count("") == 0
    assert word_count("   \\n\\t ") == 0


def test_words_are_separated_by_any_whitespace():
    assert word_count("one two\\nthree\\tfour   five") == 5


def test_punctuation_stays_with_its_word():
    assert word_count("Hello, world! It's me.") == 4
"""

_TEST_TOP_WORDS = """\
from textstats import top_words


def test_most_frequent_first():
    assert top_words("the cat and the hat and the bat") == [("the", 3), ("and", 2), ("bat", 1)]


def test_case_and_punctuation_do_not_make_a_new_word():
    assert top_words("The cat. The dog! the CAT?", n=2) == [("the", 3), ("cat", 2)]


def test_punctuation_alone_is_not_a_word():
    assert top_words("wait -- what?") == [("wait", 1), ("what", 1)]


def test_ties_are_alphabetical():
    assert top_words("pear apple fig apple pear fig") == [("apple", 2), ("fig", 2), ("pear", 2)]


def test_n_limits_the_list():
    assert top_words("a b c d", n=2) == [("a", 1), ("b", 1)]


def test_empty_text_has_no_top_words():
    assert top_words("") == []
"""

_TEST_READING_TIME = """\
from textstats import reading_time


def test_empty_text_takes_no_time():
    assert reading_time("") == 0
    assert reading_time("  \\n ") == 0


def test_a_few_words_take_a_minute():
    assert reading_time("just a few words") == 1


def test_rounds_up_to_whole_minutes():
    assert reading_time("word " * 200) == 1
    assert reading_time("word " * 201) == 2


def test_reading_speed_can_be_set():
    assert reading_time("word " * 250, wpm=100) == 3
"""

# Keeps pytest from picking up the configuration of a project the demo is written inside.
_PYTEST_INI = """\
[pytest]
testpaths = tests
"""

_GITIGNORE = """\
__pycache__/
.pytest_cache/
"""

WORKSPACE_FILES: dict[str, str] = {
    "README.md": _README,
    "tests/test_word_count.py": _TEST_WORD_COUNT,
    "tests/test_top_words.py": _TEST_TOP_WORDS,
    "tests/test_reading_time.py": _TEST_READING_TIME,
    "pytest.ini": _PYTEST_INI,
    ".gitignore": _GITIGNORE,
}


def write_demo_project(dest: Path, *, overrides: Mapping[str, Any] | None = None) -> Path:
    """Write `dest/longrun.toml` and `dest/workspace/`; return the spec's path.

    `dest` must be missing or empty, so nothing of a person's is overwritten. `overrides` is
    laid over the demo spec (tables merge key by key, e.g. `{"session": {"time_box": "1m"}}`).
    """
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise LongrunError(f"{dest} is a file; give a new or empty directory for the demo")
    if dest.is_dir() and any(dest.iterdir()):
        raise LongrunError(f"{dest} is not empty; give a new or empty directory for the demo")
    spec = _merged(DEMO_SPEC, overrides or {})
    text = render_spec(spec)
    workspace = dest / str(spec.get("workspace", "workspace"))
    for relative, content in WORKSPACE_FILES.items():
        path = workspace / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    spec_path = dest / "longrun.toml"
    spec_path.write_text(text, encoding="utf-8")
    return spec_path
