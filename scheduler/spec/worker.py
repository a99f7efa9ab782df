"""`[worker]`: the keys every backend's table has. Each backend's own table (its extra keys) lives
with the backend, and `workers.registry` says which table goes with which `backend`.
"""

from __future__ import annotations

import os

from pydantic import StrictInt, StrictStr, ValidationInfo

from longrun.scheduler.spec.keys import Table, resolve_path, spec_key


class WorkerSpec(Table):
    """`[worker]`: what does the work in each session; the keys every backend's table has.

    A backend with keys of its own subclasses this, and the registry names the subclass; the
    backend's name is checked there too, so that adding a backend touches no spec module.
    """

    backend: StrictStr = spec_key(
        "anthropic",
        kind="a backend name",
        expected="the name of a worker backend",
        meaning="which worker runs the sessions (see workers.registry)",
    )
    model: StrictStr = spec_key(
        "claude-sonnet-5-5",
        kind="a string",
        expected="a model name (a non-empty string)",
        meaning="the model the worker calls",
        min_length=1,
    )
    max_tokens: StrictInt = spec_key(
        8192,
        kind="an integer",
        expected="an integer from 1 to 128000",
        meaning="the output token limit of one model call",
        ge=1,
        le=128_000,
    )
    base_url: StrictStr | None = spec_key(
        None,
        kind="a string",
        expected="an http:// or https:// URL",
        meaning="where the model API is served, when not the backend's usual address",
        pattern=r"^https?://[^\s/?#]+\S*$",
    )


def script_ref(value: str | None, info: ValidationInfo) -> str | None:
    """A scripted model's script: one that looks like a path is resolved against the spec's folder;
    a built-in name is kept."""
    if value is None:
        return None
    looks_like_path = "/" in value or os.sep in value or value.endswith((".toml", ".json"))
    return resolve_path(value, info) if looks_like_path else value
