"""The textstats project as it grows: its spec, its tests, its code at each step and the outputs
its checks print.
"""

from __future__ import annotations

from typing import Any

TEXTSTATS_SPEC = """\
name = "textstats"
goal = '''
Build textstats, a small text-statistics package: word_count, top_words and reading_time, each
passing its tests, with a Usage section in the README that shows every function.
'''
workspace = "~/textstats"

[worker]
model = "claude-sonnet-5-5"
max_tokens = 8192

[session]
time_box = "45m"
wrap_up = "5m"
checkpoint_every_calls = 20

[schedule]
mode = "back_to_back"
cooldown = "5m"

[budget]
usd = 5.0
per_session_usd = 2.0

[judge]
model = "claude-haiku-5-5"

[[features]]
id = "word-count"
description = "word_count(text) returns the number of words: runs of non-whitespace characters."
check = "python -m pytest -q tests/test_word_count.py"

[[features]]
id = "top-words"
description = "top_words(text, n=3) returns the n most frequent words, lower-cased, punctuation stripped."
check = "python -m pytest -q tests/test_top_words.py"

[[features]]
id = "reading-time"
description = "reading_time(text, wpm=200) returns the whole minutes needed to read text, rounded up."
check = "python -m pytest -q tests/test_reading_time.py"
rubric = "reading_time is documented and handles empty text and wpm <= 0 without dividing by zero."

[[features]]
id = "usage-docs"
description = "README.md has a Usage section with an example of each of the three functions."
rubric = '''
README.md has a '## Usage' section that shows word_count, top_words and reading_time, each with
an example call and the result it returns, and the results shown are the ones the code returns.
'''
"""

README_0 = """\
# textstats

Small text statistics for Python: how many words a text has, which words it uses most, and
how long it takes to read.

- `word_count(text) -> int`: the number of words, where a word is a run of non-whitespace
  characters. `word_count("Hello, world!")` is 2.
- `top_words(text, n=3) -> list[tuple[str, int]]`: the `n` most frequent words, lower-cased and
  stripped of surrounding punctuation, most frequent first, ties in alphabetical order.
- `reading_time(text, wpm=200) -> int`: whole minutes to read `text`, rounded up; 0 when empty.

Run the tests with `python -m pytest -q tests`.
"""

USAGE = """
## Usage

```python
>>> from textstats import word_count, top_words, reading_time
>>> word_count("Hello, world!")
2
>>> top_words("The cat. The dog! the CAT?", n=2)
[('the', 3), ('cat', 2)]
>>> reading_time("word " * 450)
3
```
"""

TEST_WORD_COUNT = """\
from textstats import word_count


def test_empty_text_has_no_words():
    assert word_count("") == 0
    assert word_count("  \\n\\t ") == 0


def test_punctuation_stays_with_its_word():
    assert word_count("Hello, world!") == 2


def test_apostrophes_and_hyphens_do_not_split_words():
    assert word_count("don't stop the well-known band") == 5
"""

TEST_TOP_WORDS = """\
from textstats import top_words


def test_most_frequent_first():
    assert top_words("b a b c b a", n=2) == [("b", 3), ("a", 2)]


def test_case_and_punctuation_do_not_make_a_new_word():
    assert top_words("The cat. The dog! the CAT?", n=2) == [("the", 3), ("cat", 2)]


def test_ties_are_alphabetical():
    assert top_words("pear apple fig", n=3) == [("apple", 1), ("fig", 1), ("pear", 1)]
"""

TEST_READING_TIME = """\
from textstats import reading_time


def test_empty_text_takes_no_time():
    assert reading_time("") == 0


def test_rounds_up_to_a_whole_minute():
    assert reading_time("word " * 201) == 2


def test_words_per_minute_can_be_given():
    assert reading_time("word " * 300, wpm=100) == 3
"""

INIT_0 = '"""Small text statistics: how many words, which words are most frequent, how long to read."""\n'

INIT_1 = (
    INIT_0
    + '''
from collections import Counter


def word_count(text: str) -> int:
    """The number of words in text: runs of non-whitespace characters."""
    return len(text.split())


def top_words(text: str, n: int = 3) -> list[tuple[str, int]]:
    """The n most frequent words as (word, count) pairs, most frequent first, ties alphabetical."""
    counts = Counter(word.lower() for word in text.split())
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
'''
)

INIT_REGEX = (
    INIT_0
    + '''
import re
from collections import Counter

_WORD = re.compile(r"\\w+")


def word_count(text: str) -> int:
    """The number of words in text."""
    return len(_WORD.findall(text))


def top_words(text: str, n: int = 3) -> list[tuple[str, int]]:
    """The n most frequent words as (word, count) pairs, most frequent first, ties alphabetical."""
    counts = Counter(word.lower() for word in _WORD.findall(text))
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]


def reading_time(text: str, wpm: int = 200) -> int:
    """Whole minutes to read text at wpm words a minute, rounded up."""
    return -(-word_count(text) // wpm)
'''
)

INIT_2 = (
    INIT_0
    + '''
import string
from collections import Counter


def word_count(text: str) -> int:
    """The number of words in text: runs of non-whitespace characters."""
    return len(text.split())


def top_words(text: str, n: int = 3) -> list[tuple[str, int]]:
    """The n most frequent words as (word, count) pairs, most frequent first, ties alphabetical.

    Words are lower-cased and stripped of surrounding punctuation; what is only punctuation is dropped.
    """
    words = (word.strip(string.punctuation).lower() for word in text.split())
    counts = Counter(word for word in words if word)
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:n]
'''
)

INIT_3 = (
    INIT_2.replace("import string\n", "import math\nimport string\n")
    + '''

def reading_time(text: str, wpm: int = 200) -> int:
    """Whole minutes to read text at wpm words a minute, rounded up; 0 for empty text.

    A wpm of 0 or less is refused with a ValueError rather than divided by.
    """
    if wpm <= 0:
        raise ValueError(f"wpm must be positive, got {wpm}")
    return math.ceil(word_count(text) / wpm)
'''
)

PYTEST_PUNCTUATION_FAIL = """\
.F.                                                                      [100%]
=================================== FAILURES ===================================
_______________ test_case_and_punctuation_do_not_make_a_new_word _______________

    def test_case_and_punctuation_do_not_make_a_new_word():
>       assert top_words("The cat. The dog! the CAT?", n=2) == [("the", 3), ("cat", 2)]
E       AssertionError: assert [('the', 3), ('cat.', 1)] == [('the', 3), ('cat', 2)]

tests/test_top_words.py:9: AssertionError
=========================== short test summary info ============================
FAILED tests/test_top_words.py::test_case_and_punctuation_do_not_make_a_new_word
1 failed, 2 passed in 0.02s"""

PYTEST_APOSTROPHE_FAIL = """\
..F                                                                      [100%]
=================================== FAILURES ===================================
_______________ test_apostrophes_and_hyphens_do_not_split_words ________________

    def test_apostrophes_and_hyphens_do_not_split_words():
>       assert word_count("don't stop the well-known band") == 5
E       AssertionError: assert 7 == 5

tests/test_word_count.py:13: AssertionError
=========================== short test summary info ============================
FAILED tests/test_word_count.py::test_apostrophes_and_hyphens_do_not_split_words
1 failed, 2 passed in 0.02s"""

PYTEST_NO_READING_TIME = """\

==================================== ERRORS ====================================
_________________ ERROR collecting tests/test_reading_time.py __________________
ImportError while importing test module 'tests/test_reading_time.py'.
E   ImportError: cannot import name 'reading_time' from 'textstats'
=========================== short test summary info ============================
ERROR tests/test_reading_time.py
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
1 error in 0.05s"""

CURL = "curl -sSfL -o tests/data/pride-and-prejudice.txt https://www.gutenberg.org/cache/epub/1342/pg1342.txt"


def pytest_ok(n: int, seconds: str) -> str:
    dots = "." * n
    return f"{dots}{' ' * (73 - n)}[100%]\n{n} passed in {seconds}s"


def ratchet_evidence(files: int, collected: int, base: str | None, before: int | None) -> dict[str, Any]:
    measure = {
        "broken": None,
        "collect_command": "python -m pytest --collect-only -q",
        "collected": collected,
        "error": None,
        "files": ["tests/test_reading_time.py", "tests/test_top_words.py", "tests/test_word_count.py"][
            :files
        ],
    }
    if base is None:
        summary = f"{files} test files, {collected} tests collected; no baseline yet"
        return {"collected": collected, "files": files, "measure": measure, "summary": summary}
    return {
        "baseline": base,
        "collected": collected,
        "counts_compared": True,
        "files": files,
        "measure": measure,
        "missing_files": [],
        "missing_files_more": 0,
        "summary": f"no tests went down against {base}: test files {files} → {files}, "
        f"collected tests {before} → {collected}",
        "tests_before": before,
        "tests_now": collected,
    }
