"""The run spec: what a valid spec gives, and the one-line message each kind of mistake gives."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from longrun.scheduler.spec.durations import format_duration, parse_duration
from longrun.scheduler.spec.load import load_spec, parse_spec
from longrun.scheduler.spec.overrides import apply_overrides
from longrun.scheduler.spec.run import RunSpec
from longrun.store.errors import SpecError

MINIMAL = """\
name = "todo api"
goal = "A small TODO REST API with tests"
workspace = "ws"
"""

FULL = """\
name = "todo-api.v2"
goal = "A small TODO REST API with tests"
workspace = "projects/todo"

[worker]
backend = "scripted"
model = "claude-opus-4-5"
max_tokens = 4096
base_url = "http://127.0.0.1:8765"
script = "scripts/demo.toml"

[session]
time_box = "1h30m"
wrap_up = "5m"
checkpoint_every_calls = 10
checkpoint_every_minutes = 7.5

[budget]
usd = 10
tokens = 2_000_000
per_session_usd = 2.5

[[features]]
id = "api-tests"
description = "The API's tests pass"
check = "pytest -q"
timeout = "90s"

[[features]]
id = "readme"
description = "The README explains how to run the server"
rubric = "A newcomer can start the server from the README alone"
"""

FEATURE_A = """
[[features]]
id = "a"
description = "first"
check = "true"
"""


def write_spec(directory: Path, text: str, name: str = "longrun.toml") -> Path:
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return path


def spec_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, overrides: tuple[str, ...] = ()
) -> SpecError:
    """Load `text` from ./longrun.toml (a relative path, as a person types it) and return the error."""
    write_spec(tmp_path, text)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_spec("longrun.toml", overrides)
    return caught.value


# --- valid specs -------------------------------------------------------------------------------


def test_full_spec_gives_every_value(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, FULL))

    assert spec.name == "todo-api.v2"
    assert spec.workspace == tmp_path / "projects" / "todo"
    assert spec.worker.backend == "scripted"
    assert spec.worker.model == "claude-opus-4-5"
    assert spec.worker.max_tokens == 4096
    assert spec.worker.base_url == "http://127.0.0.1:8765"
    assert spec.worker.script == str(tmp_path / "scripts" / "demo.toml")
    assert spec.session.time_box == timedelta(hours=1, minutes=30)
    assert spec.session.wrap_up == timedelta(minutes=5)
    assert spec.session.checkpoint_every_calls == 10
    assert spec.session.checkpoint_every_minutes == 7.5
    assert spec.budget.usd == 10.0 and isinstance(spec.budget.usd, float)
    assert spec.budget.tokens == 2_000_000
    assert spec.budget.per_session_usd == 2.5
    assert [f.id for f in spec.features] == ["api-tests", "readme"]
    assert spec.features[0].check == "pytest -q"
    assert spec.features[0].timeout == timedelta(seconds=90)
    assert spec.features[1].rubric.startswith("A newcomer")
    assert spec.features[1].timeout == timedelta(minutes=5)


def test_minimal_spec_gets_defaults(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, MINIMAL))

    assert spec.workspace == tmp_path / "ws"
    assert spec.worker.backend == "anthropic"
    assert spec.worker.model == "claude-sonnet-5-5"
    assert spec.worker.max_tokens == 8192
    assert spec.worker.base_url is None and "script" not in type(spec.worker).model_fields
    assert spec.session.time_box == timedelta(hours=5)
    assert spec.session.wrap_up == timedelta(minutes=10)
    assert spec.session.checkpoint_every_calls == 20
    assert spec.session.checkpoint_every_minutes == 15
    assert (spec.budget.usd, spec.budget.tokens, spec.budget.per_session_usd) == (None, None, None)
    assert spec.features == ()


def test_workspace_is_taken_from_the_spec_folder_not_the_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec_dir = tmp_path / "runs"
    spec_dir.mkdir()
    write_spec(spec_dir, MINIMAL.replace('"ws"', '"../ws"'))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    spec = load_spec("../runs/longrun.toml")

    assert spec.workspace == tmp_path / "ws"
    assert spec.workspace.is_absolute()


def test_workspace_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    spec = parse_spec(MINIMAL.replace('"ws"', '"~/ws"'), source="x.toml", base_dir=tmp_path)
    assert spec.workspace == tmp_path / "home" / "ws"


def test_builtin_script_name_is_kept_as_a_name(tmp_path: Path) -> None:
    text = MINIMAL + '[worker]\nbackend = "scripted"\nscript = "demo"\n'
    assert load_spec(write_spec(tmp_path, text)).worker.script == "demo"


@pytest.mark.parametrize(
    ("time_box", "wrap_up"),
    [("10m", timedelta(minutes=2)), ("30s", timedelta(seconds=6)), ("11m", timedelta(minutes=10))],
)
def test_short_time_box_gets_a_fifth_of_itself_as_wrap_up(
    tmp_path: Path, time_box: str, wrap_up: timedelta
) -> None:
    spec = load_spec(write_spec(tmp_path, MINIMAL + f'[session]\ntime_box = "{time_box}"\n'))
    assert spec.session.wrap_up == wrap_up


def test_round_trip_through_json(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, FULL))
    dumped = spec.model_dump(mode="json")

    assert dumped["session"]["time_box"] == "1h30m"
    assert dumped["features"][0]["timeout"] == "1m30s"
    assert dumped["workspace"] == str(tmp_path / "projects" / "todo")
    assert RunSpec.model_validate(dumped) == spec
    assert RunSpec.model_validate_json(spec.model_dump_json()) == spec


# --- one message per kind of mistake -------------------------------------------------------


def test_missing_key_names_file_key_and_what_it_is_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = spec_error(
        tmp_path, monkeypatch, MINIMAL.replace('goal = "A small TODO REST API with tests"\n', "")
    )
    assert str(error) == "longrun.toml: goal: missing (expected a string: what the run is for)"
    assert error.errors == [str(error)]


def test_wrong_type_names_what_was_found_and_expected(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + '[budget]\nusd = "ten"\n')
    assert str(error) == 'longrun.toml: budget.usd: expected a number greater than 0, found "ten"'


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ("[budget]\nusd = 0\n", "budget.usd: expected a number greater than 0, found 0"),
        ("[budget]\ntokens = 1.5\n", "budget.tokens: expected an integer greater than 0, found 1.5"),
        (
            "[worker]\nmax_tokens = true\n",
            "worker.max_tokens: expected an integer from 1 to 128000, found true",
        ),
        (
            "[worker]\nmax_tokens = 200000\n",
            "worker.max_tokens: expected an integer from 1 to 128000, found 200000",
        ),
        (
            '[worker]\nbackend = "openai"\n',
            'worker.backend: expected one of "anthropic", "scripted", "claude-code", "command", '
            'found "openai"',
        ),
        (
            '[worker]\nbase_url = "ftp://x"\n',
            'worker.base_url: expected an http:// or https:// URL, found "ftp://x"',
        ),
        (
            "[session]\ncheckpoint_every_calls = 0\n",
            "session.checkpoint_every_calls: expected an integer of at least 1, found 0",
        ),
        ('worker = "fast"\n', 'worker: expected a table, found "fast"'),
        ('[features]\nid = "a"\n', "features: expected an array of tables ([[features]]), found a table"),
    ],
)
def test_type_and_range_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, extra: str, message: str
) -> None:
    error = spec_error(
        tmp_path, monkeypatch, (extra + MINIMAL) if not extra.startswith("[") else MINIMAL + extra
    )
    assert str(error) == f"longrun.toml: {message}"


def test_bad_name_says_what_a_name_may_hold(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL.replace('"todo api"', '"-todo"'))
    assert str(error).startswith("longrun.toml: name: expected a name of 1 to 64 letters")
    assert str(error).endswith('found "-todo"')


def test_unknown_key_suggests_the_close_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + "[budget]\nusdd = 5\n")
    assert str(error) == "longrun.toml: budget.usdd: unknown key (did you mean budget.usd?)"


def test_key_in_the_wrong_table_suggests_where_it_belongs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = spec_error(tmp_path, monkeypatch, 'time_box = "1h"\n' + MINIMAL)
    assert str(error) == "longrun.toml: time_box: unknown key (did you mean session.time_box?)"


def test_unknown_key_with_no_likely_match_lists_the_known_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + "[budget]\nzebra = 1\n")
    assert (
        str(error) == "longrun.toml: budget.zebra: unknown key "
        "(expected one of: usd, tokens, per_session_usd, per_day_usd, warn_at)"
    )


def test_bad_duration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + '[session]\ntime_box = "5 hours"\n')
    assert (
        str(error)
        == 'longrun.toml: session.time_box: expected a duration like 90s, 10m, 5h or 1d, found "5 hours"'
    )


def test_bare_number_is_not_a_duration(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + "[session]\ntime_box = 300\n")
    assert (
        str(error) == "longrun.toml: session.time_box: expected a duration like 90s, 10m, 5h or 1d, found 300"
    )


def test_time_box_too_short(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + '[session]\ntime_box = "5s"\n')
    assert str(error) == 'longrun.toml: session.time_box: expected a duration of at least 10s, found "5s"'


def test_bad_toml_gives_line_and_column(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(tmp_path, monkeypatch, 'name = "x"\ngoal = "g"\nx = 1 2\n')
    assert str(error) == (
        "longrun.toml:3:7: not valid TOML: Expected newline or end of document after a statement"
    )


def test_bad_toml_at_end_of_document_points_at_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = spec_error(tmp_path, monkeypatch, 'name = "x"\ngoal = "g')
    assert str(error) == "longrun.toml:2:10: not valid TOML: Unterminated string"


def test_several_errors_show_the_first_and_count_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = spec_error(tmp_path, monkeypatch, "[budget]\nusd = -1\n")
    assert error.errors == [
        "longrun.toml: name: missing (expected a string: a short name for the run, shown in lists)",
        "longrun.toml: goal: missing (expected a string: what the run is for)",
        "longrun.toml: workspace: missing "
        "(expected a string: the folder (a git working tree) the agent works in)",
        "longrun.toml: budget.usd: expected a number greater than 0, found -1",
    ]
    assert str(error) == error.errors[0] + " (and 3 more)"


def test_duplicate_feature_id_names_the_second(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + FEATURE_A + FEATURE_A)
    assert str(error) == 'longrun.toml: features[2].id: duplicate id "a" (features[1] has it too)'


def test_feature_errors_count_items_from_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(
        tmp_path, monkeypatch, MINIMAL + FEATURE_A + FEATURE_A.replace('"a"', '"b"') + "timeout = 5\n"
    )
    assert (
        str(error)
        == "longrun.toml: features[2].timeout: expected a duration like 90s, 10m, 5h or 1d, found 5"
    )


def test_feature_without_check_or_rubric(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    text = MINIMAL + FEATURE_A + '\n[[features]]\nid = "docs"\ndescription = "documented"\n'
    error = spec_error(tmp_path, monkeypatch, text)
    assert str(error) == (
        'longrun.toml: features[2]: feature "docs" needs a check (a shell command), '
        "a rubric (for the LLM judge), or both"
    )


def test_scripted_backend_needs_a_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + '[worker]\nbackend = "scripted"\n')
    assert str(error).startswith("longrun.toml: worker.script: missing (expected a string:")
    assert 'required when worker.backend = "scripted"' in str(error)


def test_anthropic_backend_refuses_a_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + '[worker]\nscript = "demo"\n')
    assert str(error).startswith('longrun.toml: worker.script: only used when worker.backend = "scripted"')


def test_explicit_wrap_up_must_be_shorter_than_time_box(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + '[session]\ntime_box = "20m"\nwrap_up = "20m"\n')
    assert str(error) == (
        'longrun.toml: session.wrap_up: expected a duration shorter than session.time_box (20m), found "20m"'
    )


def test_session_budget_cannot_exceed_run_budget(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + "[budget]\nusd = 1\nper_session_usd = 2\n")
    assert str(error) == (
        "longrun.toml: budget.per_session_usd: expected a number no greater than budget.usd (1.0), found 2.0"
    )


def test_missing_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError) as caught:
        load_spec("nope.toml")
    assert str(caught.value) == "nope.toml: cannot read the spec: no such file or directory"


def test_file_that_is_not_utf8_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "longrun.toml").write_bytes(b'name = "caf\xe9"\n')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SpecError, match=r"^longrun\.toml: not UTF-8 text"):
        load_spec("longrun.toml")


BAD_SPECS = [
    "",
    "x = 1 2",
    '[budget]\nusd = "ten"\ntokens = 1.5\nper_session_usd = []\n',
    'name = 5\ngoal = true\nworkspace = 3\n[worker]\nbackend = 1\nmodel = ""\nbase_url = 2\nscript = {a = 1}',
    '[session]\ntime_box = "1x"\nwrap_up = 1979-05-27\ncheckpoint_every_calls = "a"\n'
    "checkpoint_every_minutes = nan\n",
    '[[features]]\nid = "Bad Id"\ndescription = ""\ncheck = 1\nrubric = [1]\ntimeout = "0s"\nwhat = 1\n',
    "features = [1, 2]\nworker = []\nsession = 1\n",
]


@pytest.mark.parametrize("text", BAD_SPECS)
def test_no_message_leaks_pydantic_or_toml_internals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str
) -> None:
    error = spec_error(tmp_path, monkeypatch, text)
    for line in [str(error), *error.errors]:
        assert "\n" not in line
        assert line.startswith("longrun.toml")
        for leak in (
            "pydantic",
            "ValidationError",
            "Input should be",
            "type=",
            "(at line",
            "errors.pydantic.dev",
        ):
            assert leak not in line


# --- overrides -----------------------------------------------------------------------------


def test_override_values_are_read_as_toml(tmp_path: Path) -> None:
    overrides = [
        "budget.usd=0.05",
        "budget.tokens = 1000",
        'worker.model="claude x"',
        "session.checkpoint_every_calls=5",
    ]
    spec = load_spec(write_spec(tmp_path, MINIMAL), overrides)
    assert spec.budget.usd == 0.05
    assert spec.budget.tokens == 1000
    assert spec.worker.model == "claude x"
    assert spec.session.checkpoint_every_calls == 5


def test_override_falls_back_to_the_raw_string(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, MINIMAL), ["session.time_box=20s", "worker.model=claude-x"])
    assert spec.session.time_box == timedelta(seconds=20)
    assert spec.session.wrap_up == timedelta(seconds=4)
    assert spec.worker.model == "claude-x"


def test_override_replaces_a_value_from_the_file(tmp_path: Path) -> None:
    spec = load_spec(write_spec(tmp_path, MINIMAL + "[budget]\nusd = 10\n"), ["budget.usd=3"])
    assert spec.budget.usd == 3.0


def test_override_reaches_into_a_feature_counting_from_one(tmp_path: Path) -> None:
    text = MINIMAL + FEATURE_A + FEATURE_A.replace('"a"', '"b"')
    spec = load_spec(write_spec(tmp_path, text), ["features.2.check=make test"])
    assert [f.check for f in spec.features] == ["true", "make test"]


def test_apply_overrides_returns_a_new_dict() -> None:
    raw = {"budget": {"usd": 1.0}, "name": "x"}
    result = apply_overrides(raw, ["budget.usd=2", "session.time_box=1h", "flags=[1, 2]", "ok=true"])
    assert result == {
        "budget": {"usd": 2},
        "name": "x",
        "session": {"time_box": "1h"},
        "flags": [1, 2],
        "ok": True,
    }
    assert raw == {"budget": {"usd": 1.0}, "name": "x"}


def test_unknown_key_from_override_names_set(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL, ("budget.usdd=0.05",))
    assert str(error) == "--set budget.usdd: unknown key (did you mean budget.usd?)"


def test_bad_value_from_override_names_set_and_file_errors_keep_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    error = spec_error(tmp_path, monkeypatch, MINIMAL + "[worker]\nmax_tokens = 0\n", ("budget.usd=ten",))
    assert error.errors == [
        "longrun.toml: worker.max_tokens: expected an integer from 1 to 128000, found 0",
        '--set budget.usd: expected a number greater than 0, found "ten"',
    ]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("budget.usd", '--set "budget.usd": expected KEY=VALUE, like budget.usd=0.05'),
        ("=5", '--set "=5": the key is empty, expected KEY=VALUE, like budget.usd=0.05'),
        (
            "budget..usd=5",
            '--set "budget..usd=5": the key is empty, expected KEY=VALUE, like budget.usd=0.05',
        ),
        ("name.first=x", '--set name.first: name is not a table (found "todo api")'),
        (
            "features.1.check=x",
            '--set features.1.check: features has 0 items; expected an item number counted from 1, found "1"',
        ),
    ],
)
def test_malformed_override(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, override: str, message: str
) -> None:
    text = MINIMAL + "features = []\n"
    error = spec_error(tmp_path, monkeypatch, text, (override,))
    assert str(error) == message


def test_apply_overrides_alone_refuses_a_malformed_override() -> None:
    with pytest.raises(SpecError, match=r'^--set "nokey": expected KEY=VALUE'):
        apply_overrides({}, ["nokey"])


# --- durations ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "td", "compact"),
    [
        ("90s", timedelta(seconds=90), "1m30s"),
        ("10m", timedelta(minutes=10), "10m"),
        ("5h", timedelta(hours=5), "5h"),
        ("1d", timedelta(days=1), "1d"),
        ("1h30m", timedelta(hours=1, minutes=30), "1h30m"),
        ("1.5h", timedelta(hours=1, minutes=30), "1h30m"),
        ("1h 30m", timedelta(hours=1, minutes=30), "1h30m"),
        ("5400s", timedelta(seconds=5400), "1h30m"),
        ("20s", timedelta(seconds=20), "20s"),
        ("0s", timedelta(0), "0s"),
        ("2d3h4m5s", timedelta(days=2, hours=3, minutes=4, seconds=5), "2d3h4m5s"),
        ("0.25s", timedelta(milliseconds=250), "0.25s"),
        ("36h", timedelta(hours=36), "1d12h"),
        (" 10m ", timedelta(minutes=10), "10m"),
    ],
)
def test_durations_parse_and_format(text: str, td: timedelta, compact: str) -> None:
    assert parse_duration(text) == td
    assert format_duration(td) == compact


@pytest.mark.parametrize(
    "text",
    ["", "90", "1.5", "5 hours", "5 h", "10min", "1w", "-5m", "30m1h", "1h1h", "1e3s", "h", ".5h", "5H"],
)
def test_durations_that_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"^expected a duration like 90s, 10m, 5h or 1d, found "):
        parse_duration(text)


def test_negative_duration_cannot_be_formatted() -> None:
    with pytest.raises(ValueError, match="negative"):
        format_duration(timedelta(seconds=-1))


@given(st.timedeltas(min_value=timedelta(0)))
def test_format_then_parse_gives_the_same_duration(td: timedelta) -> None:
    assert parse_duration(format_duration(td)) == td


# --- robustness ------------------------------------------------------------------------------

_KEYS = [
    "name",
    "goal",
    "workspace",
    "worker",
    "worker.backend",
    "worker.model",
    "worker.max_tokens",
    "worker.base_url",
    "worker.script",
    "session",
    "session.time_box",
    "session.wrap_up",
    "session.checkpoint_every_calls",
    "session.checkpoint_every_minutes",
    "budget",
    "budget.usd",
    "budget.tokens",
    "budget.per_session_usd",
    "features",
    "features.1.id",
    "features.1.check",
    "features.1.rubric",
    "features.1.timeout",
    "budget.usd.x",
    "nope",
]
_VALUES = [
    "1",
    "0",
    "-1",
    "1.5",
    "nan",
    "inf",
    "true",
    '"x"',
    '""',
    "[]",
    "[1, 2]",
    "{}",
    "{a = 1}",
    '[{id = "a"}]',
    "1979-05-27",
    "07:32:00",
    "10m",
    "1h30m",
    "scripted",
    "http://x",
    "a/b.toml",
    '"\\u0000"',
    "=",
    " ",
]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(_KEYS), st.sampled_from(_VALUES)), max_size=6),
    st.booleans(),
)
def test_any_spec_either_validates_or_raises_spec_error(
    pairs: list[tuple[str, str]], with_feature: bool
) -> None:
    text = MINIMAL + (FEATURE_A if with_feature else "")
    try:
        spec = parse_spec(
            text, source="longrun.toml", base_dir=Path("/tmp"), overrides=[f"{k}={v}" for k, v in pairs]
        )
    except SpecError as error:
        assert error.errors and all(line.startswith(("longrun.toml", "--set")) for line in error.errors)
        assert not any("Input should be" in line for line in error.errors)
    else:
        assert RunSpec.model_validate(spec.model_dump(mode="json")) == spec


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_either_validates_or_raises_spec_error(text: str) -> None:
    try:
        parse_spec(text, source="longrun.toml", base_dir=Path("/tmp"))
    except SpecError as error:
        assert error.errors


def test_duration_too_long_to_hold() -> None:
    with pytest.raises(ValueError, match=r'^expected a duration of at most 999999999d, found "9999999999d"$'):
        parse_duration("9999999999d")


def test_the_network_names_hosts_or_says_off_or_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    hosts = '[sandbox]\nnetwork = ["pypi.org", "*.pythonhosted.org:443"]\n'
    spec = load_spec(write_spec(tmp_path, MINIMAL + hosts))
    assert spec.sandbox.network == ("pypi.org", "*.pythonhosted.org:443")
    assert [str(rule) for rule in spec.sandbox.allowed_hosts] == ["pypi.org", "*.pythonhosted.org:443"]
    assert spec.sandbox.network_words == "only pypi.org, *.pythonhosted.org:443"
    on = load_spec(write_spec(tmp_path, MINIMAL + '[sandbox]\nnetwork = "on"\n'))
    assert on.sandbox.allowed_hosts == ()

    error = spec_error(tmp_path, monkeypatch, MINIMAL + '[sandbox]\nnetwork = "maybe"\n')
    assert str(error).startswith('longrun.toml: sandbox.network: expected "off", "on", or an array of hosts')
    assert str(error).endswith('found "maybe"')
    error = spec_error(tmp_path, monkeypatch, MINIMAL + "[sandbox]\nnetwork = []\n")
    assert str(error) == 'longrun.toml: sandbox.network: an empty list allows no host: write "off"'
    error = spec_error(tmp_path, monkeypatch, MINIMAL + '[sandbox]\nnetwork = ["ok.org", "*.10.0.0.1", 3]\n')
    assert str(error) == (
        "longrun.toml: sandbox.network[2]: '*.10.0.0.1': a wildcard takes a domain name, not an address"
        " (and 1 more)"
    )
