"""The key bar at the bottom of every screen: Textual's footer, rebuilt once per burst of changes."""

from __future__ import annotations

from typing import Any

from textual.screen import Screen
from textual.widgets import Footer as TextualFooter


class Footer(TextualFooter):
    """Textual's footer rebuilds all of its keys, and restyles each, after every change of focus
    or of a binding's state: switching a tab asked for five or six rebuilds in a row, some 10 ms
    each. The first rebuild reads the bindings as they are by then, so the rest are skipped."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._asked = 0
        self._built = -1

    def bindings_changed(self, screen: Screen[Any]) -> None:
        self._asked += 1
        super().bindings_changed(screen)

    async def recompose(self) -> None:
        if self._built == self._asked:
            return  # a rebuild since the last change already showed it
        self._built = self._asked
        await super().recompose()
