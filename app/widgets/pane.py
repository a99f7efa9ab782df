"""A tab of the run screen: reads its data in a worker, shows it when the result comes back."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.containers import Vertical

from longrun.app.messages import Loaded
from longrun.store.errors import LongrunError

if TYPE_CHECKING:
    from longrun.app.dashboard import LongrunApp


class Pane(Vertical):
    """Subclasses give `read()` (runs in a thread, no widgets) and `show(data)` (on the loop)."""

    app: LongrunApp

    def __init__(self, run_id: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.run_id = run_id
        self.ready = False
        self._reading = False
        self._again = False

    FOCUS: str | None = None
    """The selector of the widget that takes the focus when the tab is shown."""

    def take_focus(self) -> None:
        if self.FOCUS:
            self.query_one(self.FOCUS).focus()

    def read(self) -> Any:
        raise NotImplementedError

    def show(self, data: Any) -> None:
        raise NotImplementedError

    def use(self, data: Any) -> None:
        """Show data read before the pane was built, as if it had just read it."""
        self.show(data)
        self.ready = True

    def load(self) -> None:
        """Read again now, or right after the read in flight (never two at once)."""
        if self._reading:
            self._again = True
            return
        self._reading = True
        self.run_worker(self._read, thread=True, exit_on_error=False, group=f"pane-{self.id}")

    def _read(self) -> None:
        try:
            self.post_message(Loaded(self.id or "", self.read()))
        except LongrunError as exc:
            self.post_message(Loaded(self.id or "", None, exc.message))
        except Exception as exc:  # a store read that failed must not take the dashboard down
            self.post_message(Loaded(self.id or "", None, f"{type(exc).__name__}: {exc}"))

    def on_loaded(self, message: Loaded) -> None:
        if message.what != self.id:
            return
        message.stop()
        self._reading = False
        if message.error is not None:
            self.app.notify(f"{self.id}: {message.error}", severity="error")
        else:
            self.show(message.data)
            self.ready = True
        if self._again:
            self._again = False
            self.load()
