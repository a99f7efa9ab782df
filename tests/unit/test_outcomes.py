"""Per-test outcomes: real pytest runs and their JUnit reports, test sources read as syntax trees, and
what a worker's edits to them look like against a baseline."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from longrun.evaluators import outcomes
from longrun.evaluators.outcomes import Finding, TestFunction

SUITE = {
    "tests/test_calc.py": """
        import pytest

        @pytest.fixture
        def broken():
            raise RuntimeError("no database")

        @pytest.fixture
        def bad_teardown():
            yield 1
            raise RuntimeError("teardown")

        def test_passes():
            assert 1 + 1 == 2

        def test_fails():
            assert 1 + 1 == 3

        def test_fixture_errors(broken):
            assert broken

        def test_fails_then_teardown_errors(bad_teardown):
            assert bad_teardown == 2

        @pytest.mark.skip(reason="later")
        def test_skipped():
            assert False

        @pytest.mark.xfail(reason="known bug")
        def test_xfails():
            assert 1 == 2

        @pytest.mark.xfail(reason="fixed since")
        def test_xpasses():
            assert 1 == 1

        @pytest.mark.parametrize("n", [1, 2, "a b", "x::y"])
        def test_param(n):
            assert n != 2

        @pytest.mark.parametrize("n", [1, 2])
        def test_param_all_pass(n):
            assert n

        class TestStack:
            def test_push(self):
                assert [1] == [1]

            class TestEmpty:
                def test_pop(self):
                    pytest.skip("not yet")
                    assert [].pop()
        """,
    "tests/sub/test_deep.py": """
        def test_deep():
            assert "deep"[0] == "d"
        """,
}
"""A suite with every outcome pytest reports; RAN_IDS is what its run reports."""

RAN_IDS = {
    "tests/test_calc.py::test_passes": "passed",
    "tests/test_calc.py::test_fails": "failed",
    "tests/test_calc.py::test_fixture_errors": "error",
    "tests/test_calc.py::test_fails_then_teardown_errors": "error",
    "tests/test_calc.py::test_skipped": "skipped",
    "tests/test_calc.py::test_xfails": "xfailed",
    "tests/test_calc.py::test_xpasses": "passed",
    "tests/test_calc.py::test_param[1]": "passed",
    "tests/test_calc.py::test_param[2]": "failed",
    "tests/test_calc.py::test_param[a b]": "passed",
    "tests/test_calc.py::test_param[x::y]": "passed",
    "tests/test_calc.py::test_param_all_pass[1]": "passed",
    "tests/test_calc.py::test_param_all_pass[2]": "passed",
    "tests/test_calc.py::TestStack::test_push": "passed",
    "tests/test_calc.py::TestStack::TestEmpty::test_pop": "skipped",
    "tests/sub/test_deep.py::test_deep": "passed",
}


def sources(files: dict[str, str]) -> dict[str, str]:
    return {path: textwrap.dedent(text).lstrip() for path, text in files.items()}


def run_pytest(tmp_path: Path, files: dict[str, str], *args: str) -> str:
    """The JUnit XML report of a real pytest run on `files` written under `tmp_path`."""
    for path, text in sources(files).items():
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_text(text)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    report = tmp_path / "report.xml"
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "junit_family=xunit1"]
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    subprocess.run([*command, f"--junitxml={report}", *args, "."], cwd=tmp_path, env=env, capture_output=True)
    return report.read_text()


def one(text: str, name: str = "test_x", path: str = "tests/test_a.py") -> TestFunction:
    """The static view of the test function `name` in a test file of `text`."""
    return outcomes.static_functions(sources({path: text}))[f"{path}::{name}"]


def kinds(findings: list[Finding]) -> list[tuple[str, str]]:
    return [(f.kind, f.function) for f in findings]


# --- the report ---------------------------------------------------------------------------------


def test_parse_junit_reads_every_outcome_of_a_real_run(tmp_path: Path) -> None:
    assert outcomes.parse_junit(run_pytest(tmp_path, SUITE)) == RAN_IDS


def test_strict_xpass_is_a_failure_and_a_collection_error_is_reported_under_its_file(tmp_path: Path) -> None:
    files = {
        "tests/test_strict.py": """
            import pytest

            @pytest.mark.xfail(strict=True)
            def test_xpass_strict():
                pass
            """,
        "tests/test_broken.py": "import no_such_module\n\ndef test_never():\n    pass\n",
    }
    report = outcomes.parse_junit(run_pytest(tmp_path, files, "--continue-on-collection-errors"))
    assert report == {"tests/test_strict.py::test_xpass_strict": "failed", "tests/test_broken.py": "error"}


def test_a_test_imported_from_a_helper_module_keeps_the_id_it_is_collected_under(tmp_path: Path) -> None:
    files = {
        "tests/__init__.py": "",
        "tests/helpers.py": "class TestShared:\n    def test_shared(self):\n        assert True\n",
        "tests/test_uses.py": "from tests.helpers import TestShared\n",
    }
    report = outcomes.parse_junit(run_pytest(tmp_path, files))
    assert report == {"tests/test_uses.py::TestShared::test_shared": "passed"}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("<testsuite><testcase", "the report is not XML"),
        ("<html><body/></html>", "not a JUnit report: its root is <html>"),
        ('<testsuite><testcase classname="a"/></testsuite>', "a <testcase> has no name"),
    ],
)
def test_parse_junit_refuses_what_is_not_a_report(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason) as raised:
        outcomes.parse_junit(text)
    assert "\n" not in str(raised.value)


def test_an_empty_run_has_no_outcomes(tmp_path: Path) -> None:
    assert outcomes.parse_junit(run_pytest(tmp_path, {"tests/test_none.py": "X = 1\n"})) == {}


def test_function_of_drops_the_parameters() -> None:
    assert outcomes.function_of("tests/a.py::TestK::test_y[1-2]") == "tests/a.py::TestK::test_y"
    assert outcomes.function_of("tests/a.py::test_p[x::y]") == "tests/a.py::test_p"
    assert outcomes.function_of("tests/a.py::test_plain") == "tests/a.py::test_plain"
    assert outcomes.function_of("tests/test_broken.py") == "tests/test_broken.py"


def test_with_outcomes_aggregates_cases_and_keeps_functions_only_the_report_has(tmp_path: Path) -> None:
    static = outcomes.static_functions(sources(SUITE))
    report = {
        **outcomes.parse_junit(run_pytest(tmp_path, SUITE)),
        "tests/gen.py::test_generated[0]": "passed",
    }
    report["tests/test_broken.py"] = "error"
    merged = outcomes.with_outcomes(static, report)

    param = merged["tests/test_calc.py::test_param"]
    assert (param.outcome, param.cases, param.assertions) == ("failed", 4, 1)
    assert merged["tests/test_calc.py::test_param_all_pass"].outcome == "passed"
    assert merged["tests/test_calc.py::test_fails_then_teardown_errors"].outcome == "error"
    assert merged["tests/test_calc.py::TestStack::TestEmpty::test_pop"].outcome == "skipped"
    assert merged["tests/gen.py::test_generated"] == TestFunction(
        "tests/gen.py::test_generated", None, None, (), "passed", 1
    )
    assert "tests/test_broken.py" not in merged  # a file, not a function: its functions are what is missing
    assert set(merged) == set(static) | {"tests/gen.py::test_generated"}


def test_case_outcomes_add_up_failed_then_error_then_passed_then_xfailed_then_skipped() -> None:
    static: dict[str, TestFunction] = {}
    cases = {
        "t.py::test_a[1]": "error",
        "t.py::test_a[2]": "failed",
        "t.py::test_b[1]": "passed",
        "t.py::test_b[2]": "error",
        "t.py::test_c[1]": "skipped",
        "t.py::test_c[2]": "passed",
        "t.py::test_d[1]": "skipped",
        "t.py::test_d[2]": "xfailed",
        "t.py::test_e[1]": "skipped",
    }
    merged = outcomes.with_outcomes(static, cases)
    assert {f: t.outcome for f, t in merged.items()} == {
        "t.py::test_a": "failed",
        "t.py::test_b": "error",
        "t.py::test_c": "passed",
        "t.py::test_d": "xfailed",
        "t.py::test_e": "skipped",
    }


def test_a_test_function_round_trips_through_json() -> None:
    function = outcomes.with_outcomes(outcomes.static_functions(sources(SUITE)), RAN_IDS)[
        "tests/test_calc.py::test_param"
    ]
    assert TestFunction.from_json(function.to_json()) == function
    finding = Finding("weakened", function.function, "lost 1 of 1 assertions")
    assert finding.to_json() == {
        "kind": "weakened",
        "function": function.function,
        "detail": "lost 1 of 1 assertions",
    }


# --- the sources --------------------------------------------------------------------------------


def test_static_functions_follow_pytest_discovery() -> None:
    text = """
        import unittest

        def test_module_level():
            assert True is not False

        async def test_async():
            assert await thing()

        def helper_test():
            assert 1

        class TestOuter:
            def test_method(self):
                assert self

            def helper(self):
                assert self

            class TestInner:
                def test_nested(self):
                    assert self

        class TestWithInit:
            def __init__(self):
                pass

            def test_never_collected(self):
                assert self

        class TestOptedOut:
            __test__ = False

            def test_not_either(self):
                assert self

        class Helpers:
            def test_not_a_test_class(self):
                assert self

        class CalcTests(unittest.TestCase):
            def test_unittest(self):
                self.assertEqual(1, 1)
        """
    found = outcomes.static_functions(
        sources({"tests/test_a.py": text, "tests/test_bad.py": "def test_(:\n"})
    )
    assert sorted(found) == [
        "tests/test_a.py::CalcTests::test_unittest",
        "tests/test_a.py::TestOuter::TestInner::test_nested",
        "tests/test_a.py::TestOuter::test_method",
        "tests/test_a.py::test_async",
        "tests/test_a.py::test_module_level",
    ]
    assert all(f.outcome is None and f.cases == 0 and f.assertions == 1 for f in found.values())


@pytest.mark.parametrize(
    ("body", "count"),
    [
        ("assert x\n    assert y == 2", 2),
        ("assert True\n    assert 1\n    assert 'x'\n    assert (x, 'why')\n    assert x == x", 0),
        ("assert x != x\n    assert False", 2),
        ("self.assertEqual(x, 1)\n    self.assertTrue(x)", 2),
        ("with pytest.raises(ValueError):\n        int('x')\n    pytest.warns(UserWarning, f)", 2),
        ("np.testing.assert_equal(x, y)\n    mock.assert_called_once()\n    pytest.fail('no')", 3),
        ("assert x\n    return\n    assert y", 1),
        ("pytest.skip('later')\n    assert x", 0),
        ("raise NotImplementedError\n    assert x", 0),
        ("try:\n        assert x\n    except AssertionError:\n        pass", 0),
        ("try:\n        assert x\n    except Exception:\n        assert y", 1),
        ("try:\n        assert x\n    except:\n        pass", 0),
        ("try:\n        assert x\n    except KeyError:\n        pass\n    finally:\n        assert z", 2),
        ("if False:\n        assert x\n    if 0:\n        assert y\n    else:\n        assert z", 1),
        ("if flag:\n        assert x\n    else:\n        assert y", 2),
        ("for i in range(3):\n        assert i >= 0", 1),
        ("def inner():\n        assert x\n    check = lambda: self.assertTrue(x)", 0),
        ("if flag:\n        return\n    assert x", 1),
        ("pass", 0),
    ],
)
def test_live_assertions_are_the_ones_that_can_run(body: str, count: int) -> None:
    assert one(f"def test_x():\n    {body}\n").assertions == count


@pytest.mark.parametrize(
    ("text", "skips"),
    [
        ("import pytest\n@pytest.mark.skip\ndef test_x():\n    assert x\n", ["decorator pytest.mark.skip"]),
        (
            "from pytest import mark\n@mark.skipif(True, reason='r')\n@mark.xfail\n"
            "def test_x():\n    assert x\n",
            ["decorator pytest.mark.skipif", "decorator pytest.mark.xfail"],
        ),
        ("import unittest\n@unittest.skip('r')\ndef test_x():\n    assert x\n", ["decorator unittest.skip"]),
        (
            "@pytest.mark.parametrize('n', [1, pytest.param(2, marks=pytest.mark.skip)])\n"
            "def test_x(n):\n    assert n\n",
            ["case mark pytest.mark.skip"],
        ),
        (
            "def test_x():\n    if flag:\n        pytest.skip('r')\n"
            "    pytest.importorskip('numpy')\n    assert x\n",
            ["calls pytest.importorskip", "calls pytest.skip"],
        ),
        ("def test_x():\n    raise unittest.SkipTest('r')\n", ["raises SkipTest"]),
        ("def test_x():\n    return\n    assert x\n", ["returns before its assertions"]),
        (
            "def test_x():\n    pytest.xfail('r')\n    assert x\n",
            ["calls pytest.xfail", "returns before its assertions"],
        ),
        ("def test_x():\n    '''Docs.'''\n    ...\n", ["empty body"]),
        ("def test_x():\n    pass\n", ["empty body"]),
        (
            "pytestmark = pytest.mark.skip\ndef test_x():\n    assert x\n",
            ["module pytestmark pytest.mark.skip"],
        ),
        (
            "pytestmark = [pytest.mark.slow, pytest.mark.xfail(reason='r')]\ndef test_x():\n    assert x\n",
            ["module pytestmark pytest.mark.xfail"],
        ),
        (
            "pytest.skip('r', allow_module_level=True)\ndef test_x():\n    assert x\n",
            ["module calls pytest.skip"],
        ),
        ("@pytest.mark.parametrize('n', [1])\n@pytest.mark.slow\ndef test_x(n):\n    assert n\n", []),
    ],
)
def test_skips_name_how_the_source_skips_a_test(text: str, skips: list[str]) -> None:
    assert list(one(text).skips) == skips


def test_class_skips_apply_to_every_method_inside() -> None:
    text = """
        @pytest.mark.skipif(sys.platform == "win32", reason="posix")
        class TestK:
            pytestmark = pytest.mark.xfail

            def test_x(self):
                assert self

            class TestInner:
                def test_y(self):
                    assert self
        """
    found = outcomes.static_functions(sources({"tests/test_a.py": text}))
    expected = ("class decorator pytest.mark.skipif", "class pytestmark pytest.mark.xfail")
    assert found["tests/test_a.py::TestK::test_x"].skips == expected
    assert found["tests/test_a.py::TestK::TestInner::test_y"].skips == expected


def test_the_fingerprint_is_what_a_function_does_not_its_name_docstring_or_layout() -> None:
    plain = one("def test_x(a):\n    assert a == 1  # one\n")
    renamed = one(
        'def test_renamed(a):\n    """Now with a docstring."""\n    assert (\n        a == 1\n    )\n',
        "test_renamed",
    )
    assert plain.fingerprint == renamed.fingerprint
    assert len(plain.fingerprint or "") == 64
    assert one("def test_x(a):\n    assert a == 2\n").fingerprint != plain.fingerprint
    assert one("def test_x(b):\n    assert b == 1\n").fingerprint != plain.fingerprint
    decorated = one("@pytest.mark.skip\ndef test_x(a):\n    assert a == 1\n")
    assert decorated.fingerprint != plain.fingerprint
    assert one("async def test_x(a):\n    assert a == 1\n").fingerprint != plain.fingerprint


# --- judging ------------------------------------------------------------------------------------

BASELINE_SOURCE = """
    import pytest

    def test_add():
        assert add(1, 2) == 3
        assert add(0, 0) == 0
        assert add(-1, 1) == 0

    def test_sub():
        assert sub(2, 1) == 1

    @pytest.mark.parametrize("n", [1, 2, 3])
    def test_neg(n):
        assert neg(n) == -n

    class TestMul:
        def test_mul(self):
            assert mul(2, 3) == 6
    """


def state(
    text: str, report: dict[str, str] | None = None, path: str = "tests/test_calc.py"
) -> dict[str, TestFunction]:
    """The functions of one test file, with the outcomes of `report` (every case passed when None)."""
    static = outcomes.static_functions(sources({path: text}))
    if report is None:
        report = {f: "passed" for f in static}
    return outcomes.with_outcomes(static, report)


def test_honest_changes_are_not_findings() -> None:
    baseline = state(BASELINE_SOURCE)
    edited = """
        import pytest

        def test_addition():  # renamed, same body
            assert add(1, 2) == 3
            assert add(0, 0) == 0
            assert add(-1, 1) == 0

        def test_sub():
            '''A docstring, and the body reformatted.'''
            assert sub(
                2, 1
            ) == 1

        @pytest.mark.parametrize("n", [1, 2, 3])
        def test_neg(n):
            result = neg(n)  # a body edit that keeps its assertion
            assert result == -n

        class TestMul:
            def test_mul(self):
                assert mul(2, 3) == 6
                assert mul(0, 3) == 0

        def test_div():  # a new test
            assert div(6, 3) == 2
        """
    now = state(edited)
    assert outcomes.compare_functions(baseline, now) == []
    assert outcomes.compare_functions(baseline, baseline) == []


def test_a_test_moved_to_another_file_is_not_missing() -> None:
    baseline = state(BASELINE_SOURCE)
    moved = {
        **state(BASELINE_SOURCE.replace("def test_sub", "def _gone_sub")),
        **state("def test_sub():\n    assert sub(2, 1) == 1\n", path="tests/test_other.py"),
    }
    assert outcomes.compare_functions(baseline, moved) == []


def test_each_kind_of_weakening_is_found() -> None:
    cases = {f"tests/test_calc.py::test_neg[{n}]": "passed" for n in (1, 2, 3)}
    baseline = state(BASELINE_SOURCE, {f: "passed" for f in state(BASELINE_SOURCE) if "neg" not in f} | cases)
    assert baseline["tests/test_calc.py::test_neg"].cases == 3
    weakened = """
        import pytest

        def test_add():
            assert add(1, 2) == 3
            return
            assert add(0, 0) == 0
            assert add(-1, 1) == 0

        @pytest.mark.parametrize("n", [1, 2])
        def test_neg(n):
            assert neg(n) == -n

        @pytest.mark.skip(reason="flaky")
        class TestMul:
            def test_mul(self):
                assert mul(2, 3) == 6
        """
    report = {"tests/test_calc.py::test_add": "passed", "tests/test_calc.py::test_neg[1]": "passed"}
    report |= {
        "tests/test_calc.py::test_neg[2]": "passed",
        "tests/test_calc.py::TestMul::test_mul": "skipped",
    }
    findings = outcomes.compare_functions(baseline, state(weakened, report))
    assert kinds(findings) == [
        ("newly_skipped", "tests/test_calc.py::TestMul::test_mul"),
        ("skip_added", "tests/test_calc.py::TestMul::test_mul"),
        ("skip_added", "tests/test_calc.py::test_add"),
        ("weakened", "tests/test_calc.py::test_add"),
        ("weakened", "tests/test_calc.py::test_neg"),
        ("missing", "tests/test_calc.py::test_sub"),
    ]
    details = [f.detail for f in findings]
    assert details[0] == "tests/test_calc.py::TestMul::test_mul passed before, now skipped"
    assert details[1] == "tests/test_calc.py::TestMul::test_mul now skips: class decorator pytest.mark.skip"
    assert details[2] == "tests/test_calc.py::test_add now skips: returns before its assertions"
    assert details[3] == "tests/test_calc.py::test_add lost 2 of 3 assertions"
    assert details[4] == "tests/test_calc.py::test_neg ran 2 of its 3 cases"
    assert details[5] == "tests/test_calc.py::test_sub is no longer among the tests"


def test_a_deselected_test_is_not_run_and_an_xfail_mark_is_newly_xfailed() -> None:
    baseline = state(BASELINE_SOURCE)
    marked = BASELINE_SOURCE.replace("    def test_mul", "    @pytest.mark.xfail\n        def test_mul")
    report = {f: "passed" for f in baseline if not f.endswith(("test_sub", "test_mul"))}
    report["tests/test_calc.py::TestMul::test_mul"] = "xfailed"
    findings = outcomes.compare_functions(baseline, state(marked, report))
    assert kinds(findings) == [
        ("newly_xfailed", "tests/test_calc.py::TestMul::test_mul"),
        ("skip_added", "tests/test_calc.py::TestMul::test_mul"),
        ("not_run", "tests/test_calc.py::test_sub"),
    ]
    assert findings[2].detail == (
        "tests/test_calc.py::test_sub passed before, now not in the report (deselected or not collected)"
    )


def test_a_failing_test_made_to_skip_is_newly_skipped() -> None:
    baseline = state(BASELINE_SOURCE, {"tests/test_calc.py::test_sub": "failed"})
    now = state(BASELINE_SOURCE, {"tests/test_calc.py::test_sub": "skipped"})
    assert kinds(outcomes.compare_functions(baseline, now)) == [
        ("newly_skipped", "tests/test_calc.py::test_sub")
    ]


def test_a_gutted_test_is_weakened_and_its_skip_added_against_a_static_baseline() -> None:
    baseline = outcomes.static_functions(sources({"tests/test_calc.py": BASELINE_SOURCE}))
    gutted = BASELINE_SOURCE.replace("assert sub(2, 1) == 1", "pass")
    findings = outcomes.compare_functions(baseline, state(gutted))
    assert [(f.kind, f.detail) for f in findings] == [
        ("skip_added", "tests/test_calc.py::test_sub now skips: empty body"),
        ("weakened", "tests/test_calc.py::test_sub lost 1 of 1 assertions"),
    ]


def test_a_renamed_test_is_still_compared() -> None:
    baseline = state(BASELINE_SOURCE)
    renamed = BASELINE_SOURCE.replace("def test_sub", "def test_subtract")
    now = state(
        renamed, {f: "passed" for f in state(renamed)} | {"tests/test_calc.py::test_subtract": "skipped"}
    )
    findings = outcomes.compare_functions(baseline, now)
    assert [(f.kind, f.detail) for f in findings] == [
        (
            "newly_skipped",
            "tests/test_calc.py::test_sub (now tests/test_calc.py::test_subtract) passed before, now skipped",
        )
    ]


def test_each_new_function_stands_for_one_missing_function_only() -> None:
    twins = "def test_a():\n    assert ok()\n\ndef test_b():\n    assert ok()\n"
    now = state("def test_c():\n    assert ok()\n")
    assert kinds(outcomes.compare_functions(state(twins), now)) == [("missing", "tests/test_calc.py::test_b")]


def test_what_one_side_does_not_know_is_not_a_finding() -> None:
    ran = state(BASELINE_SOURCE)
    reported_only = outcomes.with_outcomes({}, {f: "passed" for f in ran})
    static_only = outcomes.static_functions(sources({"tests/test_calc.py": BASELINE_SOURCE}))
    guarded = BASELINE_SOURCE.replace(
        "    def test_sub():\n        assert sub(2, 1) == 1",
        "    @pytest.mark.skipif(False, reason='never')\n    def test_sub():\n        pass",
    )
    # The baseline's source is unknown: a skip and no assertions now are nothing to compare with.
    assert outcomes.compare_functions(reported_only, state(guarded)) == []
    # The source is unknown now; it still ran.
    assert outcomes.compare_functions(ran, reported_only) == []
    # Nothing ran on either side: not "not run".
    assert outcomes.compare_functions(static_only, static_only) == []
    # Known on both sides, the same edit is found.
    assert kinds(outcomes.compare_functions(ran, state(guarded))) == [
        ("skip_added", "tests/test_calc.py::test_sub"),
        ("weakened", "tests/test_calc.py::test_sub"),
    ]


def test_findings_come_in_a_stable_order() -> None:
    baseline = state(BASELINE_SOURCE)
    findings = outcomes.compare_functions(dict(reversed(list(baseline.items()))), {})
    assert [f.function for f in findings] == sorted(baseline)
    assert {f.kind for f in findings} == {"missing"}


# --- patching the runner ------------------------------------------------------------------------

ORDINARY_TESTS = """
    import sys
    from typing import TYPE_CHECKING

    import pytest
    from pytest import MonkeyPatch, fixture, mark

    if TYPE_CHECKING:
        from _pytest.fixtures import FixtureRequest

    pytestmark = pytest.mark.slow

    @fixture
    def patched(monkeypatch: MonkeyPatch):
        monkeypatch.setattr(sys, "argv", ["prog"])
        monkeypatch.setitem(sys.modules, "fake", object())
        return monkeypatch

    @mark.parametrize("n", [1, pytest.param(2, marks=pytest.mark.slow)])
    def test_raises(n, patched):
        sys.modules["inside_a_test"] = object()
        with pytest.raises(ValueError):
            int("x")

    def pytest_generate_tests(metafunc):
        pass
    """

ORDINARY_CONFTEST = """
    import pytest

    pytest_plugins = ["pytester"]

    def pytest_collection_modifyitems(items):
        for item in items:
            item.add_marker(pytest.mark.slow)

    @pytest.hookimpl(tryfirst=True)
    def pytest_configure(config):
        config.addinivalue_line("markers", "slow: slow")
    """


def test_ordinary_pytest_use_is_not_runner_patching() -> None:
    files = sources(
        {"tests/test_a.py": ORDINARY_TESTS, "tests/conftest.py": ORDINARY_CONFTEST, "bad.py": "def (:"}
    )
    assert outcomes.runner_patching(files) == {}


@pytest.mark.parametrize(
    ("path", "text", "reason"),
    [
        ("tests/test_a.py", "import _pytest.runner\n", "imports _pytest.runner"),
        ("tests/conftest.py", "from pluggy import HookimplMarker\n", "imports pluggy"),
        ("tests/test_a.py", "import pytest\npytest.skip = lambda *a, **k: None\n", "assigns pytest.skip"),
        (
            "tests/test_a.py",
            "import pytest\n\ndef test_x():\n    pytest.fail = print\n",
            "assigns pytest.fail",
        ),
        ("tests/conftest.py", "import pytest\nsetattr(pytest, 'fail', print)\n", "assigns pytest.fail"),
        (
            "tests/test_a.py",
            "def test_x(monkeypatch):\n    monkeypatch.setattr('_pytest.runner.call_and_report', f)\n",
            "assigns _pytest.runner.call_and_report",  # no import: the string names the module
        ),
        ("tests/test_a.py", "import sys\nsys.modules['pytest'] = fake\n", "changes sys.modules"),
        ("tests/test_a.py", "import sys\nsys.modules.update(pytest=fake)\n", "changes sys.modules"),
        (
            "tests/test_a.py",
            "import builtins\nbuiltins.AssertionError = Exception\n",
            "assigns builtins.AssertionError",
        ),
        (
            "tests/test_a.py",
            "def pytest_runtest_makereport(item, call):\n    pass\n",
            "defines the hook pytest_runtest_makereport outside a conftest.py",
        ),
        (
            "tests/plugin.py",
            "import pytest\n\nclass Plugin:\n    @pytest.hookimpl(hookwrapper=True)\n"
            "    def pytest_pyfunc_call(self):\n        yield\n",
            "uses pytest.hookimpl outside a conftest.py",
        ),
        ("tests/test_a.py", "pytest_plugins = ['evil']\n", "sets pytest_plugins outside a conftest.py"),
        (
            "tests/conftest.py",
            "def pytest_runtest_makereport(item, call):\n    pass\n",
            "defines pytest_runtest_makereport, which can change test outcomes",
        ),
    ],
)
def test_runner_patching_names_how_a_file_reaches_into_pytest(path: str, text: str, reason: str) -> None:
    assert outcomes.runner_patching({path: text}) == {path: reason}


def test_runner_patching_lists_a_few_reasons_and_counts_the_rest() -> None:
    text = "import _pytest.runner, _pytest.main, pluggy, pytest\npytest.skip = None\npytest.fail = None\n"
    assert outcomes.runner_patching({"tests/test_a.py": text}) == {
        "tests/test_a.py": "imports _pytest.runner; imports _pytest.main; imports pluggy; and 2 more"
    }
