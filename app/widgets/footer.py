"""The key bar at the bottom of every screen: Textual's footer, rebuilt once per burst of changes,
and cut to fit so that Approvals, Help and Back always show."""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer as TextualFooter
from textual.widgets._footer import FooterKey

KEPT = frozenset({"inbox", "help", "back"})
"""The ids of the bindings the footer always shows (the app's own: `i`, `?`, `q`)."""

PALETTE_EXTRA = 2
"""The command palette's key has a border on its left and a pad on its right."""


class Footer(TextualFooter):
    """Textual's footer rebuilds all of its keys, and restyles each, after every change of focus
    or of a binding's state: switching a tab asked for five or six rebuilds in a row, some 10 ms
    each. The first rebuild reads the bindings as they are by then, so the rest are skipped.

    Textual's footer shows keys from the focused widget outwards and cuts what does not fit at
    the right, which is where the app's own keys are: at 100 columns `? Help` and `q Back` were
    gone. This one leaves out the keys nearest the right end, but never those of `KEPT`, until
    the rest fits; `?` lists every key. (It draws no binding groups: the dashboard has none.)"""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._asked = 0
        self._built = -1
        self._fitted_to = 0

    def bindings_changed(self, screen: Screen[Any]) -> None:
        self._asked += 1
        super().bindings_changed(screen)

    async def recompose(self) -> None:
        if self._built == self._asked:
            return  # a rebuild since the last change already showed it
        self._built = self._asked
        await super().recompose()

    def on_resize(self, event: events.Resize) -> None:
        if self._bindings_ready and event.size.width != self._fitted_to:
            self._asked += 1
            self.call_after_refresh(self.recompose)

    def compose(self) -> ComposeResult:
        if not self._bindings_ready:
            return
        self._fitted_to = width = self.size.width or self.app.size.width
        active = self.screen.active_bindings
        shown: dict[str, tuple[Binding, bool, str]] = {}
        for _, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in shown:  # an action's first key stands for all
                shown[binding.action] = (binding, enabled, tooltip)
        palette = active.get(self.app.COMMAND_PALETTE_BINDING)
        room = width
        if palette is not None and self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            room -= self._width(palette[1]) + PALETTE_EXTRA
        keys = self._fit(list(shown.values()), room)
        for binding, enabled, tooltip in keys:
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                disabled=not enabled,
                tooltip=tooltip,
            ).data_bind(compact=TextualFooter.compact)
        if palette is not None and self.show_command_palette and self.app.ENABLE_COMMAND_PALETTE:
            _, binding, enabled, tooltip = palette
            yield FooterKey(
                binding.key,
                self.app.get_key_display(binding),
                binding.description,
                binding.action,
                classes="-command-palette",
                disabled=not enabled,
                tooltip=binding.tooltip or binding.description,
            )

    def _fit(self, keys: list[tuple[Binding, bool, str]], room: int) -> list[tuple[Binding, bool, str]]:
        """`keys` less the ones nearest the right end (never a `KEPT` one) until they fit in `room`."""
        left = list(keys)
        used = sum(self._width(b) for b, _, _ in left)
        for item in reversed(keys):
            if used <= room:
                break
            if item[0].id not in KEPT:
                left.remove(item)
                used -= self._width(item[0])
        return left

    def _width(self, binding: Binding) -> int:
        """The columns a key takes, as Textual's `FooterKey` draws it: a space each side of the
        key and one after the description (in a compact footer, one between them and a margin)."""
        key = cell_len(self.app.get_key_display(binding))
        if not binding.description:
            return key + (1 if self.compact else 0)
        return key + cell_len(binding.description) + (2 if self.compact else 3)
