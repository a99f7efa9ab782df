"""The command palette (ctrl+p): runs, approvals and actions, found by name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

from textual.command import DiscoveryHit, Hit, Hits, Provider

if TYPE_CHECKING:
    from longrun.app.dashboard import LongrunApp
    from longrun.store.board import RunRow


class LongrunCommands(Provider):
    """Open a run, decide an approval, or act on the run in front of you, by typing its name."""

    def _commands(self) -> Iterator[tuple[str, str, Callable[[], Any]]]:
        from longrun.app.actions import allowed_actions
        from longrun.app.dashboard import describe_short

        app: LongrunApp = self.app  # type: ignore[assignment]
        yield "Approvals inbox", "what waits for a person (i)", app.action_inbox
        yield "New run from a spec file", "create a run (n)", app.action_new_run
        yield "Help: every key", "(?)", app.action_help
        screen: Any = self.screen
        current = screen.current_row() if hasattr(screen, "current_row") else None
        if current is not None:
            allowed = allowed_actions(current)
            for name, verb, key in RUN_ACTIONS:
                if name in allowed:
                    yield f"{verb} {current.name}", f"{name} ({key})", partial(screen.act_on_run, name)
            yield from self._history(screen, current, allowed)
        for row in app.ordered_rows():
            yield f"Open run {row.name}", f"{row.state} · {row.id}", partial(app.open_run, row.id)
        for approval in app.pending:
            run = app.rows.get(approval.run_id)
            label = f"Decide approval {approval.id}: {describe_short(approval)}"
            yield (
                label,
                f"{run.name if run else approval.run_id} · {approval.kind}",
                partial(app.open_inbox_at, approval.id),
            )

    def _history(
        self, screen: Any, row: RunRow, allowed: frozenset[str]
    ) -> Iterator[tuple[str, str, Callable[[], Any]]]:
        """Rewind and fork: from the checkpoint selected in the run's Checkpoints tab, or (with none
        selected) fork from the head, and rewind after choosing where to in that tab."""
        app: LongrunApp = self.app  # type: ignore[assignment]
        picked = screen.picked_checkpoint() if hasattr(screen, "picked_checkpoint") else None
        if "rewind" in allowed:
            if picked is not None and not picked[1]:
                yield (
                    f"Rewind {row.name} to checkpoint #{picked[0]}",
                    "the checkpoint selected in the Checkpoints tab (w there)",
                    partial(screen.checkpoint_action, "rewind", picked[0]),
                )
            else:
                here = getattr(screen, "run_id", None) == row.id
                yield (
                    f"Rewind {row.name}: choose the checkpoint",
                    "opens the Checkpoints tab; select one and press w",
                    partial(screen.action_tab, "checkpoints")
                    if here
                    else partial(app.open_run, row.id, "checkpoints"),
                )
        if picked is not None:
            yield (
                f"Fork {row.name} from checkpoint #{picked[0]}",
                "a new run from the checkpoint selected in the Checkpoints tab (f there)",
                partial(screen.checkpoint_action, "fork", picked[0]),
            )
        else:
            yield (
                f"Fork {row.name} from its head",
                "a new run from the latest checkpoint (f in the Checkpoints tab forks from any)",
                partial(screen.checkpoint_action, "fork", None),
            )

    async def discover(self) -> Hits:
        for text, help_, callback in self._commands():
            yield DiscoveryHit(text, callback, help=help_)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for text, help_, callback in self._commands():
            score = matcher.match(text)
            if score > 0:
                yield Hit(score, matcher.highlight(text), callback, help=help_)


RUN_ACTIONS = (
    ("start", "Start", "s"),
    ("pause", "Pause", "p"),
    ("stop", "Stop", "x"),
    ("resume", "Resume", "r"),
    ("budget", "Raise the budget of", "b"),
    ("breaker", "Reset a breaker of", "c"),
    ("judge", "Judge now", "J"),
    ("report", "Audit report of", "e"),
)
"""The actions on a run: (name, verb for the palette, key); offered when the run's state allows."""
