"""Per-test outcomes for the test ratchet: what each test function's source says and how it ran.

Pure: text in, values out. The judge runs a project's pytest suite in a tree it owns, with a JUnit
XML report (`-o junit_family=xunit1`); `parse_junit` reads the report, `static_functions` reads the
test files' syntax trees, `with_outcomes` joins the two, and `compare_functions` lists what got
weaker since a baseline: a test gone or not run, newly skipped, a skip added, assertions lost.
`runner_patching` names the files that reach into pytest itself, the way around all of these.
"""

from __future__ import annotations

import ast
import hashlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import Any
from xml.etree import ElementTree

RAN = ("passed", "failed", "error")
"""Outcomes of a test that ran."""
_CASES_ORDER = ("failed", "error", "passed", "xfailed", "skipped")
"""A parametrized function's outcome: the first of these any of its cases had."""
_REPEAT_ORDER = ("error", "failed", "passed", "xfailed", "skipped")
"""One case reported twice (pytest writes a teardown error as a second <testcase>): the first of these."""
_SKIP_CALLS = frozenset({"pytest.skip", "pytest.xfail", "pytest.importorskip", "self.skipTest"})
_STOP_CALLS = frozenset({"pytest.skip", "pytest.xfail", "self.skipTest"})
_MODULE_SKIP_CALLS = frozenset({"pytest.skip", "pytest.importorskip"})
_SKIP_EXCEPTIONS = ("SkipTest", "skip.Exception")  # unittest.SkipTest, pytest.skip.Exception
_ASSERTING_CALLS = frozenset(
    {"pytest.raises", "pytest.warns", "pytest.deprecated_call", "pytest.fail", "self.fail"}
)
_SWALLOWING = frozenset({"AssertionError", "Exception", "BaseException"})
_UNITTEST_SKIPS = frozenset({"skip", "skipIf", "skipUnless", "expectedFailure"})
_SCOPES = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)
_OUTCOME_HOOKS = frozenset(
    "pytest_runtest_protocol pytest_runtest_call pytest_pyfunc_call pytest_runtest_makereport"
    " pytest_runtest_logreport pytest_report_teststatus".split()
)
"""Hooks that decide or rewrite a test's outcome: worth a look even in a conftest.py."""
_BUILTINS = ("builtins", "__builtins__")
_REASONS_LISTED = 3

_FunctionNode = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass(frozen=True)
class TestFunction:
    """One test function (or method) of a suite: what its source says and how its cases went."""

    __test__ = False  # a pytest-looking name, not a test class

    function: str
    """Its id, "tests/test_a.py::test_x" or "tests/test_a.py::TestK::test_y": a POSIX path from the root."""
    fingerprint: str | None
    """sha256 of its syntax tree without name, docstring, positions or comments; None if only reported."""
    assertions: int | None
    """Assertions in its body that can run; None when its source is unknown."""
    skips: tuple[str, ...]
    """How its source skips it, sorted (see `static_functions`)."""
    outcome: str | None
    """passed, failed, error, skipped or xfailed, over all its cases; None when the report lacks it."""
    cases: int
    """How many cases the report had (a parametrized function has several); 0 when not run."""

    def to_json(self) -> dict[str, Any]:
        return {
            "function": self.function,
            "fingerprint": self.fingerprint,
            "assertions": self.assertions,
            "skips": list(self.skips),
            "outcome": self.outcome,
            "cases": self.cases,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> TestFunction:
        return cls(
            function=data["function"],
            fingerprint=data.get("fingerprint"),
            assertions=data.get("assertions"),
            skips=tuple(sorted(data.get("skips") or ())),
            outcome=data.get("outcome"),
            cases=int(data.get("cases") or 0),
        )


@dataclass(frozen=True)
class Finding:
    """One way a test got weaker since the baseline."""

    kind: str
    """missing, not_run, newly_skipped, newly_xfailed, weakened, skip_added or patches_runner."""
    function: str
    """The function id; the file path for patches_runner."""
    detail: str
    """One line a person reads."""

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "function": self.function, "detail": self.detail}


# --- the report ---------------------------------------------------------------------------------


def function_of(test_id: str) -> str:
    """The function of a test id: "tests/a.py::TestK::test_y[1-2]" -> "tests/a.py::TestK::test_y"."""
    path, sep, rest = test_id.partition("::")
    return path + sep + rest.partition("[")[0]


def parse_junit(xml_text: str) -> dict[str, str]:
    """Test ids (pytest's node ids) -> passed, failed, error, skipped or xfailed, from a JUnit XML report
    written with `-o junit_family=xunit1`.

    A failure or pass that also has an error (at teardown) is an error. A file pytest could not collect
    is reported under its path, as an error. Raises ValueError, one line, on text that is not a JUnit
    report. ElementTree resolves no external entities; the report is the judge's own anyway.
    """
    try:
        root = ElementTree.fromstring(xml_text)
    except ElementTree.ParseError as error:
        raise ValueError(f"the report is not XML: {error}") from None
    if root.tag not in ("testsuites", "testsuite"):
        raise ValueError(f"not a JUnit report: its root is <{root.tag}>")
    outcomes: dict[str, str] = {}
    for case in root.iter("testcase"):
        test_id, outcome = _test_id(case), _case_outcome(case)
        earlier = outcomes.get(test_id)
        outcomes[test_id] = outcome if earlier is None else _first_of(_REPEAT_ORDER, (earlier, outcome))
    return outcomes


def _test_id(case: ElementTree.Element) -> str:
    """The node id back from xunit1's classname (the file's dotted path, then the classes) and name."""
    name = case.get("name")
    if not name:
        raise ValueError("not a JUnit report: a <testcase> has no name")
    file = (case.get("file") or "").replace("\\", "/")
    classname = case.get("classname") or ""
    if not classname:  # a collection error: the node is the file
        return file or name
    dotted = file.removesuffix(".py").replace("/", ".")
    if file and (classname == dotted or classname.startswith(dotted + ".")):
        module, classes = file, [c for c in classname[len(dotted) + 1 :].split(".") if c]
    else:  # the function is defined in another file than the one it is collected from
        parts = classname.split(".")
        split = len(parts)
        while split > 1 and parts[split - 1][:1].isupper():  # class names are capitalised, modules not
            split -= 1
        module, classes = "/".join(parts[:split]) + ".py", parts[split:]
    return "::".join([module, *classes, name])


def _case_outcome(case: ElementTree.Element) -> str:
    children = {child.tag: child for child in case}
    if "error" in children or "failure" in children:
        return "error" if "error" in children else "failed"
    skipped = children.get("skipped")
    if skipped is None:
        return "passed"
    return "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"


def _first_of(order: tuple[str, ...], outcomes: Iterable[str]) -> str:
    present = set(outcomes)
    return next((o for o in order if o in present), min(present))


def with_outcomes(static: Mapping[str, TestFunction], outcomes: Mapping[str, str]) -> dict[str, TestFunction]:
    """The static view with the report merged in: each function's outcome over its cases and their number.

    A function the report has but the sources do not (a generated test, a file that did not parse) is
    kept, with fingerprint and assertions None. A file that could not be collected is not a function
    and is left out: its functions are the ones missing from the report.
    """
    cases: dict[str, list[str]] = {}
    for test_id, outcome in outcomes.items():
        if "::" in (function := function_of(test_id)):
            cases.setdefault(function, []).append(outcome)
    merged: dict[str, TestFunction] = {}
    for function in sorted(set(static) | set(cases)):
        known = static.get(function) or TestFunction(function, None, None, (), None, 0)
        ran = cases.get(function, [])
        aggregate = _first_of(_CASES_ORDER, ran) if ran else None
        merged[function] = replace(known, outcome=aggregate, cases=len(ran))
    return merged


# --- the sources --------------------------------------------------------------------------------


def static_functions(sources: Mapping[str, str]) -> dict[str, TestFunction]:
    """The test functions of test files (path -> source) by id, read from their syntax trees.

    pytest's default discovery: module-level functions named test*, methods named test* of classes
    named Test* that have no __init__ or __new__ (nested ones too: Outer::Inner::test_x), and of
    unittest TestCase classes. `skips` entries: "decorator pytest.mark.skip" (skipif, xfail, or
    unittest.skip, skipIf, skipUnless, expectedFailure), "case mark pytest.mark.skip" (inside a
    parametrize), "calls pytest.skip" (xfail, importorskip, self.skipTest), "raises SkipTest",
    "returns before its assertions", "empty body", and from the enclosing class or module
    "class decorator …", "class pytestmark …", "module pytestmark …", "module calls pytest.skip"
    (or importorskip). A file that does not parse contributes nothing.
    """
    found: dict[str, TestFunction] = {}
    for path, text in sorted(sources.items()):
        if (tree := _parse(text)) is not None:
            _collect(tree.body, path, _module_skips(tree), found)
    return found


def _parse(text: str) -> ast.Module | None:
    try:
        return ast.parse(text)
    except (SyntaxError, ValueError, RecursionError):  # ValueError: a null byte
        return None


def _collect(
    body: list[ast.stmt], prefix: str, inherited: tuple[str, ...], found: dict[str, TestFunction]
) -> None:
    for node in body:
        if isinstance(node, _FunctionNode) and node.name.startswith("test"):
            found[f"{prefix}::{node.name}"] = _static_function(f"{prefix}::{node.name}", node, inherited)
        elif isinstance(node, ast.ClassDef) and _collected_class(node):
            _collect(node.body, f"{prefix}::{node.name}", inherited + _class_skips(node), found)


def _collected_class(node: ast.ClassDef) -> bool:
    if any(_dotted(base).endswith("TestCase") for base in node.bases):
        return True
    for stmt in node.body:
        if isinstance(stmt, _FunctionNode) and stmt.name in ("__init__", "__new__"):
            return False
        if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Constant) and not stmt.value.value:
            if any(_dotted(t) == "__test__" for t in stmt.targets):
                return False
    return node.name.startswith("Test")


def _static_function(function: str, node: _FunctionNode, inherited: tuple[str, ...]) -> TestFunction:
    body = node.body[1:] if _constant(node.body[0], str) else node.body
    live, dead = _count_assertions(body)
    skips = set(inherited) | _own_skips(node, body)
    if dead:
        skips.add("returns before its assertions")
    if all(isinstance(s, ast.Pass) or _constant(s) for s in body):
        skips.add("empty body")
    return TestFunction(function, _fingerprint(node, body), live, tuple(sorted(skips)), None, 0)


def _fingerprint(node: _FunctionNode, body: list[ast.stmt]) -> str:
    """What the function does, not what it is called: a rename or reformatting keeps it."""
    fields = {name: getattr(node, name) for name in node._fields}
    clone = type(node)(**{**fields, "name": "_", "body": body})
    return hashlib.sha256(ast.dump(clone, include_attributes=False).encode()).hexdigest()


def _own_skips(node: _FunctionNode, body: list[ast.stmt]) -> set[str]:
    skips: set[str] = set()
    for decorator in node.decorator_list:
        if kind := _mark_kind(decorator):
            skips.add(f"decorator {kind}")
        else:  # pytest.param(..., marks=pytest.mark.skip) in a parametrize
            skips.update(f"case mark {k}" for sub in ast.walk(decorator) if (k := _mark_kind(sub)))
    for sub in _shallow(body):
        if isinstance(sub, ast.Call) and (name := _dotted(sub.func)) in _SKIP_CALLS:
            skips.add(f"calls {name}")
        elif isinstance(sub, ast.Raise) and sub.exc and _dotted(_callee(sub.exc)).endswith(_SKIP_EXCEPTIONS):
            skips.add("raises SkipTest")
    return skips


def _class_skips(node: ast.ClassDef) -> tuple[str, ...]:
    decorated = [f"class decorator {k}" for d in node.decorator_list if (k := _mark_kind(d))]
    return (*decorated, *(f"class pytestmark {k}" for k in _pytestmark_kinds(node.body)))


def _module_skips(tree: ast.Module) -> tuple[str, ...]:
    calls = {name for sub in _shallow(tree.body) if isinstance(sub, ast.Call) and (name := _dotted(sub.func))}
    marks = [f"module pytestmark {k}" for k in _pytestmark_kinds(tree.body)]
    return (*marks, *(f"module calls {c}" for c in sorted(calls & _MODULE_SKIP_CALLS)))


def _pytestmark_kinds(body: list[ast.stmt]) -> list[str]:
    kinds: list[str] = []
    for stmt in body:
        value = stmt.value if isinstance(stmt, ast.Assign | ast.AnnAssign) else None
        if value is not None and any(_dotted(t) == "pytestmark" for t in _targets(stmt)):
            marks = value.elts if isinstance(value, ast.List | ast.Tuple) else [value]
            kinds.extend(k for mark in marks if (k := _mark_kind(mark)))
    return kinds


def _mark_kind(node: ast.AST) -> str | None:
    """The skip mark `node` is, however spelled (`mark.skip`, `pytest.mark.skip(...)`): "pytest.mark.skip",
    skipif or xfail, or "unittest.skip", skipIf, …; None for anything else."""
    parts = _dotted(_callee(node)).split(".")
    if len(parts) >= 2 and parts[-2] == "mark" and parts[-1] in ("skip", "skipif", "xfail"):
        return f"pytest.mark.{parts[-1]}"
    if parts[0] == "unittest" and parts[-1] in _UNITTEST_SKIPS:
        return f"unittest.{parts[-1]}"
    return None


# --- live assertions ----------------------------------------------------------------------------


def _count_assertions(body: list[ast.stmt]) -> tuple[int, int]:
    """(live, dead): the assertions that can run, and those after a top-level return, raise or skip."""
    live = dead = 0
    stopped = False
    for stmt in body:
        if stopped:
            dead += _assertions_in(stmt)
            continue
        live += _assertions_in(stmt)
        call = stmt.value if isinstance(stmt, ast.Expr) else None
        stopped = isinstance(stmt, ast.Return | ast.Raise) or (
            isinstance(call, ast.Call) and _dotted(call.func) in _STOP_CALLS
        )
    return live, dead


def _assertions_in(stmt: ast.stmt) -> int:
    if isinstance(stmt, ast.Assert):
        return 0 if _always_true(stmt.test) else 1
    if isinstance(stmt, _SCOPES):
        return 0  # defined here, run who knows when
    if isinstance(stmt, ast.If | ast.While):
        known = _truth(stmt.test)
        body = 0 if known is False else _block(stmt.body)
        orelse = 0 if known is True and isinstance(stmt, ast.If) else _block(stmt.orelse)
        return _asserting_calls(stmt.test) + body + orelse
    if isinstance(stmt, ast.For | ast.AsyncFor):
        return _asserting_calls(stmt.iter) + _block(stmt.body) + _block(stmt.orelse)
    if isinstance(stmt, ast.With | ast.AsyncWith):
        return sum(_asserting_calls(item.context_expr) for item in stmt.items) + _block(stmt.body)
    if isinstance(stmt, ast.Try | ast.TryStar):
        body = 0 if any(_swallows(handler.type) for handler in stmt.handlers) else _block(stmt.body)
        handled = sum(_block(handler.body) for handler in stmt.handlers)
        return body + handled + _block(stmt.orelse) + _block(stmt.finalbody)
    if isinstance(stmt, ast.Match):
        return _asserting_calls(stmt.subject) + sum(_block(case.body) for case in stmt.cases)
    return _asserting_calls(stmt)


def _block(body: list[ast.stmt]) -> int:
    return sum(_assertions_in(stmt) for stmt in body)


def _asserting_calls(node: ast.AST) -> int:
    """Calls in `node` that assert: self.assert*, pytest.raises/warns/fail, anything named assert_*."""
    return sum(1 for sub in _shallow([node]) if isinstance(sub, ast.Call) and _asserts(sub.func))


def _asserts(func: ast.expr) -> bool:
    dotted = _dotted(func)
    name = func.attr if isinstance(func, ast.Attribute) else dotted
    return name.startswith("assert_") or dotted.startswith("self.assert") or dotted in _ASSERTING_CALLS


def _always_true(test: ast.expr) -> bool:
    """`assert True`, `assert (x, "why")`, `assert x == x`: an assert that cannot fail."""
    if _truth(test) is True or (isinstance(test, ast.Tuple | ast.List) and test.elts):
        return True
    return (
        isinstance(test, ast.Compare)
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.Eq | ast.Is | ast.LtE | ast.GtE)
        and ast.dump(test.left) == ast.dump(test.comparators[0])
    )


def _truth(test: ast.expr) -> bool | None:
    return bool(test.value) if isinstance(test, ast.Constant) else None


def _swallows(handler_type: ast.expr | None) -> bool:
    types = handler_type.elts if isinstance(handler_type, ast.Tuple) else [handler_type]
    return any(t is None or _dotted(t).rpartition(".")[2] in _SWALLOWING for t in types)


def _constant(stmt: ast.stmt, kind: type = object) -> bool:
    value = stmt.value if isinstance(stmt, ast.Expr) else None
    return isinstance(value, ast.Constant) and isinstance(value.value, kind)


# --- judging ------------------------------------------------------------------------------------


def compare_functions(baseline: Mapping[str, TestFunction], now: Mapping[str, TestFunction]) -> list[Finding]:
    """What got weaker from `baseline` to `now`, by function id, then kind.

    A function gone is missing unless a new function has its fingerprint (a rename or a move, then
    compared as the same function). What one side does not know (None) is never a finding by itself.
    """
    by_fingerprint: dict[str, list[str]] = {}
    for function in sorted(set(now) - set(baseline)):
        if (fingerprint := now[function].fingerprint) is not None:
            by_fingerprint.setdefault(fingerprint, []).append(function)
    findings: list[Finding] = []
    for function, before in sorted(baseline.items()):
        if function in now:
            findings += _compare_one(function, function, before, now[function])
        elif before.fingerprint is not None and by_fingerprint.get(before.fingerprint):
            moved = by_fingerprint[before.fingerprint].pop(0)
            findings += _compare_one(function, f"{function} (now {moved})", before, now[moved])
        else:
            findings.append(Finding("missing", function, f"{function} is no longer among the tests"))
    return sorted(findings, key=lambda f: (f.function, f.kind))


def _compare_one(function: str, label: str, before: TestFunction, after: TestFunction) -> list[Finding]:
    found: dict[str, list[str]] = {}
    if before.outcome is not None and after.outcome is None and after.fingerprint is not None:
        found["not_run"] = [f"{before.outcome} before, now not in the report (deselected or not collected)"]
    if before.outcome in RAN and after.outcome in ("skipped", "xfailed"):
        found[f"newly_{after.outcome}"] = [f"{before.outcome} before, now {after.outcome}"]
    added = sorted(set(after.skips) - set(before.skips))
    if added and before.fingerprint is not None and after.fingerprint is not None:
        found["skip_added"] = ["now skips: " + ", ".join(added)]
    had, has = before.assertions, after.assertions
    if had is not None and has is not None and has < had:
        found["weakened"] = [f"lost {had - has} of {had} assertions"]
    if 0 < after.cases < before.cases:  # a parameter dropped, or a case deselected
        found.setdefault("weakened", []).append(f"ran {after.cases} of its {before.cases} cases")
    return [Finding(kind, function, f"{label} {'; '.join(details)}") for kind, details in found.items()]


# --- patching the runner ------------------------------------------------------------------------


def runner_patching(sources: Mapping[str, str]) -> dict[str, str]:
    """Python files (path -> source) that reach into the test runner -> one line saying how.

    Anywhere in a file: importing `_pytest` or `pluggy` (outside `if TYPE_CHECKING:`), assigning an
    attribute of `pytest` or `_pytest` (also by setattr or monkeypatch.setattr), `pytest.hookimpl`
    outside a conftest.py. In module-level code: changing `sys.modules` or `builtins`, defining hooks
    (def pytest_*) or `pytest_plugins` outside a conftest.py, and in a conftest.py the hooks that decide
    outcomes. Ordinary use (import pytest, marks, fixtures, raises) is not reported, nor files that do
    not parse.
    """
    found: dict[str, str] = {}
    for path, text in sorted(sources.items()):
        tree = _parse(text)
        conftest = path.rpartition("/")[2] == "conftest.py"
        reasons = list(dict.fromkeys(_runner_reasons(tree, conftest) if tree else ()))
        if reasons:
            more = len(reasons) - _REASONS_LISTED
            found[path] = "; ".join(reasons[:_REASONS_LISTED]) + (f"; and {more} more" if more > 0 else "")
    return found


def _runner_reasons(tree: ast.Module, conftest: bool) -> Iterator[str]:
    module_level = {id(node) for node in _shallow(tree.body)}
    guards = [
        n.body for n in ast.walk(tree) if isinstance(n, ast.If) and _dotted(n.test).endswith("TYPE_CHECKING")
    ]
    typing_only = {id(sub) for body in guards for sub in _shallow(body)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom) and id(node) not in typing_only:
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            yield from (f"imports {m}" for m in modules if m.partition(".")[0] in ("_pytest", "pluggy"))
        for name in _assigned_names(node):
            root = name.partition(".")[0]
            if root in ("pytest", "_pytest") or (root in _BUILTINS and id(node) in module_level):
                yield f"assigns {name}"
        if id(node) in module_level and _changes_sys_modules(node):
            yield "changes sys.modules"
        if not conftest and isinstance(node, _FunctionNode | ast.ClassDef):
            if any(_dotted(_callee(d)) == "pytest.hookimpl" for d in node.decorator_list):
                yield "uses pytest.hookimpl outside a conftest.py"
    for stmt in tree.body:
        if not conftest and any(_dotted(t) == "pytest_plugins" for t in _targets(stmt)):
            yield "sets pytest_plugins outside a conftest.py"
        hook = stmt.name if isinstance(stmt, _FunctionNode) and stmt.name.startswith("pytest_") else None
        if hook and not conftest and hook != "pytest_generate_tests":  # that one is ordinary in a test module
            yield f"defines the hook {hook} outside a conftest.py"
        elif hook and conftest and hook in _OUTCOME_HOOKS:
            yield f"defines {hook}, which can change test outcomes"


def _assigned_names(node: ast.AST) -> list[str]:
    """The attributes `node` assigns or deletes (dotted names): by statement, by setattr(obj, "name", …)
    or by monkeypatch.setattr(obj, "name", …) and ("module.name", …)."""
    if not isinstance(node, ast.Call):
        return [_dotted(t) for t in _targets(node) if isinstance(t, ast.Attribute)]
    if not node.args or _dotted(node.func).rpartition(".")[2] not in ("setattr", "delattr"):
        return []
    first, name = node.args[0], node.args[1] if len(node.args) > 1 else None
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        return [first.value]
    attribute = f".{name.value}" if isinstance(name, ast.Constant) and isinstance(name.value, str) else ""
    return [_dotted(first) + attribute]


def _changes_sys_modules(node: ast.AST) -> bool:
    """`sys.modules[name] = …`, `del sys.modules[name]`, `sys.modules.update(…)` and the like."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
        writes = node.func.attr in ("update", "setdefault", "__setitem__")
        return writes and _dotted(node.func.value) == "sys.modules"
    subscripts = [t.value for t in _targets(node) if isinstance(t, ast.Subscript)]
    return any(_dotted(value) == "sys.modules" for value in subscripts)


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign | ast.Delete):
        return list(node.targets)
    return [node.target] if isinstance(node, ast.AugAssign | ast.AnnAssign) else []


# --- syntax helpers -----------------------------------------------------------------------------


def _shallow(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Every node in `nodes`, in order, not descending into functions, classes or lambdas defined there."""
    stack = [n for n in reversed(list(nodes)) if not isinstance(n, _SCOPES)]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(c for c in reversed(list(ast.iter_child_nodes(node))) if not isinstance(c, _SCOPES))


def _dotted(node: ast.AST) -> str:
    """The dotted name an expression is ("pytest.mark.skip"); "" when it is not one."""
    if isinstance(node, ast.Name):
        return node.id
    inner = _dotted(node.value) if isinstance(node, ast.Attribute) else ""
    return f"{inner}.{node.attr}" if inner and isinstance(node, ast.Attribute) else ""


def _callee(node: ast.AST) -> ast.AST:
    return node.func if isinstance(node, ast.Call) else node
