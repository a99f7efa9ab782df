"""The done-condition as the worker sees it and as a person edits it.

The features live in the store, in the run's spec, outside the workspace. The worker gets a
read-only copy, `.longrun/features.json`, written at every session start with each feature's
latest verdict. The copy's digest is recorded with it, so a change the worker makes is found
and flagged by the judge; nothing ever reads the copy back.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from longrun.scheduler.session.context import FeatureState
from longrun.scheduler.session.workspace import PRIVATE_DIR
from longrun.scheduler.spec.checks import FeatureSpec
from longrun.scheduler.spec.durations import format_duration

FEATURES_FILE = f"{PRIVATE_DIR}/features.json"


def features_document(
    run_id: str, checkpoint_id: int | None, features: Sequence[FeatureState]
) -> dict[str, Any]:
    """What `.longrun/features.json` holds: each feature and where the judge left it."""
    return {
        "about": (
            "A read-only copy of the run's done-condition. Only longrun's judge decides what "
            "passes; editing this file changes nothing and is recorded."
        ),
        "run_id": run_id,
        "checkpoint_id": checkpoint_id,
        "features": [
            {
                "id": f.id,
                "description": f.description,
                "check": f.check,
                "rubric": f.rubric,
                "status": f.status,
                "evidence": f.evidence or None,
            }
            for f in features
        ],
    }


def write_features_file(workspace: Path, document: Mapping[str, Any]) -> str:
    """Write the read-only copy (replacing whatever is there) and return its SHA-256."""
    data = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
    path = workspace / FEATURES_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".features-{os.getpid()}.json")
    temp.write_bytes(data)
    temp.chmod(stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH)
    os.replace(temp, path)
    return hashlib.sha256(data).hexdigest()


def features_file_change(workspace: Path, written_sha: str) -> str | None:
    """How the copy differs from what was written (None when it does not)."""
    path = workspace / FEATURES_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return "deleted"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    return None if hashlib.sha256(data).hexdigest() == written_sha else "modified"


def _toml_string(value: str) -> str:
    if "\n" in value and "'''" not in value:
        return "'''\n" + value + "'''"
    return json.dumps(value, ensure_ascii=False)


def features_toml(features: Sequence[FeatureSpec], header: str) -> str:
    """The features as `[[features]]` tables, for a person to read and edit, below `header` (comments)."""
    lines = [f"# {line}".rstrip() for line in header.splitlines()]
    default_timeout = FeatureSpec.model_fields["timeout"].default
    for feature in features:
        lines += ["", "[[features]]", f"id = {_toml_string(feature.id)}"]
        lines.append(f"description = {_toml_string(feature.description)}")
        if feature.check is not None:
            lines.append(f"check = {_toml_string(feature.check)}")
        if feature.rubric is not None:
            lines.append(f"rubric = {_toml_string(feature.rubric)}")
        if feature.timeout != default_timeout:
            lines.append(f'timeout = "{format_duration(feature.timeout)}"')
    return "\n".join(lines) + "\n"
