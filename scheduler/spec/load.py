"""The only doors in: reading a spec file or text, or a features file, into a validated `RunSpec`.

Every problem a person can make in a spec comes out as one `SpecError` whose lines name the file
(or `--set`), the key path, what was found and what was expected, so the CLI and the UI can show
it as is, never a traceback. Array items are counted from 1, as a person counts: `features[1]`
is the first feature.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pydantic import (
    ValidationError,
)

from longrun.scheduler.spec.keys import OVERRIDE_SOURCE
from longrun.scheduler.spec.messages import problem_lines, spec_error
from longrun.scheduler.spec.overrides import apply_with_locs
from longrun.scheduler.spec.run import RunSpec

_TOML_AT = re.compile(r"^(?P<reason>.*) \(at (?:line (?P<line>\d+), column (?P<col>\d+)|end of document)\)$")


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """Parse TOML; a syntax error names the file, line and column, in the form editors jump to."""
    try:
        return tomllib.loads(text)
    except (ValueError, RecursionError) as exc:
        message = str(exc)
        match = _TOML_AT.match(message)
        if match is None:
            raise spec_error([f"{source}: not valid TOML: {message}"]) from None
        if match["line"]:
            line, col = int(match["line"]), int(match["col"])
        else:
            line = text.count("\n") + 1
            col = len(text) - text.rfind("\n")
        raise spec_error([f"{source}:{line}:{col}: not valid TOML: {match['reason']}"]) from None


def parse_spec(text: str, *, source: str, base_dir: Path | str, overrides: Sequence[str] = ()) -> RunSpec:
    """Validate spec text; `source` names it in messages, `base_dir` anchors its relative paths."""
    raw = parse_toml(text, source)
    raw, override_locs = apply_with_locs(raw, overrides, OVERRIDE_SOURCE)
    base = Path(base_dir).expanduser().absolute()
    try:
        return RunSpec.model_validate(raw, context={"base_dir": base})
    except ValidationError as exc:
        raise spec_error(problem_lines(exc, source, override_locs)) from None


def load_spec(path: Path | str, overrides: Sequence[str] = ()) -> RunSpec:
    """Read and validate the spec file at `path`; its relative paths are taken from its folder."""
    source = os.fspath(path)
    file = Path(source).expanduser()
    try:
        data = file.read_bytes()
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise spec_error([f"{source}: cannot read the spec: {reason.lower()}"]) from None
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise spec_error([f"{source}: not UTF-8 text (byte {exc.start} cannot be decoded)"]) from None
    return parse_spec(text, source=source, base_dir=file.parent, overrides=overrides)


def parse_features(text: str, *, source: str, spec: RunSpec) -> RunSpec:
    """`spec` with its done-condition replaced by the `[[features]]` tables of `text` (a features
    file a person edited); problems are one-line errors naming the file and the key."""
    raw = parse_toml(text, source)
    extra = sorted(key for key in raw if key != "features")
    if extra:
        raise spec_error([f"{source}: {extra[0]}: only [[features]] tables belong in a features file"])
    features = raw.get("features")
    if not features:
        raise spec_error([f"{source}: a done-condition needs at least one [[features]] table"])
    try:
        return RunSpec.model_validate({**spec.model_dump(mode="json"), "features": features})
    except ValidationError as exc:
        raise spec_error(problem_lines(exc, source, ())) from None
