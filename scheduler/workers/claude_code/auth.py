"""Claude Code's credentials stay with longrun: the CLI gets placeholders, the proxy the real ones.

The CLI passes its environment on to every shell it starts, so a key in it is one `env` away from
the model, its tool results, the event log and the store. Instead each credential found in the
environment (`CREDENTIALS`) reaches the CLI as `PLACEHOLDER`, and the metering proxy, the only way
the CLI has to the API, swaps the real one in on the way out. Every other variable that looks
like a secret (what a judge's check never sees either) reaches the CLI empty. A login kept by the
CLI itself (`claude login`, under its config folder) is the CLI's own and is passed on untouched.
"""

from __future__ import annotations

import os

from longrun.evaluators.command import is_withheld

PLACEHOLDER = "longrun-proxy-holds-this-credential"

CREDENTIALS = {
    "ANTHROPIC_API_KEY": ("x-api-key", "{}"),
    "ANTHROPIC_AUTH_TOKEN": ("authorization", "Bearer {}"),
    "CLAUDE_CODE_OAUTH_TOKEN": ("authorization", "Bearer {}"),
}
"""Variables the CLI authenticates with, and the header each becomes upstream."""


def cli_credentials(environ: dict[str, str] | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """The CLI's environment overrides (secrets blanked, credentials as placeholders) and the
    proxy's headers (the real credentials; the first of a kind wins, as in the CLI)."""
    environ = dict(os.environ if environ is None else environ)
    env = {name: "" for name in environ if is_withheld(name)}
    headers: dict[str, str] = {}
    for name, (header, shape) in CREDENTIALS.items():
        value = environ.get(name)
        if value:
            env[name] = PLACEHOLDER
            headers.setdefault(header, shape.format(value))
    return env, headers
