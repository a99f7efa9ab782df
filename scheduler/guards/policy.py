"""The approval policy: which tool calls ask a person first, which are refused, which run.

Pure: a tool call and the run's rules in, a decision out. The spec's `[[approvals.rules]]` come
first; then, unless `default_rules = false`, the default rules below, which ask before what is
destructive or reaches outside: pushes, `rm -r` outside the workspace, publishing a package,
network tools, and writes outside the workspace. The first rule that matches decides; a call no
rule matches runs.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from longrun.scheduler.spec.checks import RuleSpec
from longrun.scheduler.spec.run import RunSpec

ASK_HUMAN = "ask_human"
"""The built-in worker's tool for a question to a person: it always waits for an answer."""

DEFAULT_RULES: tuple[RuleSpec, ...] = (
    RuleSpec(tool="bash", regex=r"\bgit\s+push\b", action="ask", reason="pushes to a remote"),
    RuleSpec(
        tool="bash",
        regex=r"\brm\s+(-\w*\s+)*-\w*[rR]\w*\s+(.*\s)?(/|~|\.\./|\$HOME)",
        action="ask",
        reason="deletes recursively outside the workspace",
    ),
    RuleSpec(
        tool="bash",
        regex=r"\b((npm|pnpm|yarn|cargo|poetry|uv|flit|hatch)\s+publish|twine\s+upload|gem\s+push|"
        r"docker\s+push|gh\s+release\s+create)\b",
        action="ask",
        reason="publishes a package or an image",
    ),
    RuleSpec(
        tool="bash",
        regex=r"(^|[\s;&|(`])(curl|wget|ssh|scp|sftp|rsync|nc|ncat|telnet|ftp)\b",
        action="ask",
        reason="uses the network",
    ),
    RuleSpec(tool="write", outside_workspace=True, action="ask", reason="writes outside the workspace"),
    RuleSpec(tool="edit", outside_workspace=True, action="ask", reason="writes outside the workspace"),
)


@dataclass(frozen=True)
class PolicyDecision:
    """What the policy says about one call, and the rule that said it (None: no rule matched)."""

    action: str
    """ask, deny or allow."""
    reason: str
    rule: RuleSpec | None = None

    @property
    def expires_after(self) -> timedelta | None:
        return self.rule.expires_after if self.rule else None

    def to_json(self) -> dict[str, Any]:
        rule = self.rule.model_dump(mode="json", exclude_defaults=True) if self.rule else None
        return {"action": self.action, "reason": self.reason, "rule": rule}


def rules_of(spec: RunSpec) -> tuple[RuleSpec, ...]:
    """The run's rules in the order they are tried."""
    return spec.approvals.rules + (DEFAULT_RULES if spec.approvals.default_rules else ())


def decide(rules: tuple[RuleSpec, ...], tool: str, args: dict[str, Any], workspace: Path) -> PolicyDecision:
    """The first rule that matches the call decides; none: it runs. `ask_human` always asks."""
    if tool == ASK_HUMAN:
        return PolicyDecision("ask", "a question for a person")
    for rule in rules:
        if _matches(rule, tool, args, workspace):
            return PolicyDecision(rule.action, rule.reason or _describe(rule), rule)
    return PolicyDecision("allow", "no rule matched")


def subject(tool: str, args: dict[str, Any]) -> str:
    """The text a rule's `match` and `regex` look at: a shell call's command, else its main input."""
    for key in ("command", "file_path", "path", "pattern", "url", "query"):
        value = args.get(key)
        if isinstance(value, str):
            return value
    return " ".join(str(v) for v in args.values() if isinstance(v, str | int | float))


def _matches(rule: RuleSpec, tool: str, args: dict[str, Any], workspace: Path) -> bool:
    if not fnmatchcase(tool, rule.tool):
        return False
    text = subject(tool, args)
    if rule.match is not None and not fnmatchcase(text.strip(), rule.match):
        return False
    if rule.regex is not None and re.search(rule.regex, text) is None:
        return False
    if rule.path is not None or rule.outside_workspace:
        path = args.get("file_path") or args.get("path")
        if not isinstance(path, str):
            return False
        where = _relative(path, workspace)
        if rule.outside_workspace and where is not None:
            return False
        if rule.path is not None and re.fullmatch(_glob(rule.path), where or path) is None:
            return False
    return True


def _relative(path: str, workspace: Path) -> str | None:
    """`path` relative to the workspace (POSIX), or None when it is outside it (links followed)."""
    root = os.path.realpath(workspace)
    full = os.path.realpath(os.path.join(root, os.path.expanduser(path)))
    if full != root and not full.startswith(root + os.sep):
        return None
    return Path(os.path.relpath(full, root)).as_posix()


def _glob(pattern: str) -> str:
    """A path glob as a regular expression: `**/` is any folders (or none), `*` and `?` stay in one."""
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
        elif pattern.startswith("**", i):
            out, i = out + ".*", i + 2
        elif pattern[i] == "*":
            out, i = out + "[^/]*", i + 1
        elif pattern[i] == "?":
            out, i = out + "[^/]", i + 1
        else:
            out, i = out + re.escape(pattern[i]), i + 1
    return out


def _describe(rule: RuleSpec) -> str:
    what = (
        rule.match or rule.regex or rule.path or ("outside the workspace" if rule.outside_workspace else "")
    )
    return f"rule {rule.tool} {what}".strip()
