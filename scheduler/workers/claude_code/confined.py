"""Claude Code inside the session's sandbox: a `cli_path` of the session's own that runs the real
CLI in it.

claude-agent-sdk starts `cli_path` with its arguments and an environment of its making (the
harness's, plus its own `CLAUDE_*` settings). The wrapper written here starts the CLI inside the
sandbox instead, with the sandbox's environment, the CLI's placeholders (never a credential: the
proxy holds those) and the SDK's own `CLAUDE_*` variables; a config folder the SDK made for a
resume is bound in (its copy of a login hidden). With the network off, the only way out is the
metering proxy, through a relay into the sandbox (`Sandbox.reach`).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from longrun.evaluators.command import is_withheld

if TYPE_CHECKING:
    from longrun.scheduler.session.sandbox import Sandbox

CREDENTIALS_FILE = ".credentials.json"


def real_cli(cli_path: str | None) -> str | None:
    """The CLI the SDK would start: the spec's, else the one claude-agent-sdk bundles, else `claude`."""
    if cli_path is not None:
        return cli_path
    import claude_agent_sdk

    bundled = Path(claude_agent_sdk.__file__).parent / "_bundled" / "claude"
    return str(bundled) if bundled.is_file() else shutil.which("claude")


def write_wrapper(folder: Path, sandbox: Sandbox, cli: str, env: dict[str, str]) -> Path:
    """Write `claude` (the wrapper) and its config into `folder`, and return the wrapper."""
    outside, inside = sandbox.words(read_only=[Path(cli).resolve().parent])
    config = {"outside": outside, "inside": [*inside, cli], "env": sandbox.env | env}
    (folder / "config.json").write_text(json.dumps(config))
    wrapper = folder / "claude"
    wrapper.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        "from longrun.scheduler.workers.claude_code.confined import enter\n"
        f"enter({str(folder / 'config.json')!r}, sys.argv[1:])\n"
    )
    wrapper.chmod(0o700)
    return wrapper


def enter(config_path: str, args: list[str]) -> None:
    """The wrapper's body: exec the real CLI inside the sandbox (never returns)."""
    config: dict[str, Any] = json.loads(Path(config_path).read_text())
    env: dict[str, str] = dict(config["env"])
    for name, value in os.environ.items():
        if name.startswith("CLAUDE") and name not in env and not is_withheld(name):
            env[name] = value
    extra: list[str] = []
    config_dir = os.environ.get("CLAUDE_CONFIG_DIR")
    if config_dir:
        extra += ["--bind", config_dir, config_dir]
        login = Path(config_dir) / CREDENTIALS_FILE
        if login.exists():  # a copy of the user's login: the proxy authenticates, not the CLI
            extra += ["--ro-bind", "/dev/null", str(login)]
        env["CLAUDE_CONFIG_DIR"] = config_dir
    outside: list[str] = config["outside"]
    os.execve(outside[0], [*outside, *extra, "--", *config["inside"], *args], env)
