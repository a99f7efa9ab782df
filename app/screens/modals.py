"""Modal screens: a confirmation that says exactly what will happen, a one-line question, a
decision with a comment, and a read-only text viewer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from rich.console import RenderableType
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from longrun.app.messages import Loaded
from longrun.store.errors import LongrunError

MODAL_CSS = """
{name} {{
    align: center middle;
    background: $background 60%;
}}
{name} > Vertical {{
    width: 76;
    max-width: 95%;
    height: auto;
    max-height: 90%;
    border: thick $accent;
    background: $surface;
    padding: 1 2;
}}
{name} .title {{
    text-style: bold;
    margin-bottom: 1;
}}
{name} .body {{
    height: auto;
    max-height: 16;
    margin-bottom: 1;
}}
{name} .problem {{
    color: $error;
    height: auto;
}}
{name} Horizontal {{
    height: auto;
    align-horizontal: right;
    margin-top: 1;
}}
{name} Button {{
    margin-left: 2;
}}
"""


class ConfirmScreen(ModalScreen[bool]):
    """Yes or no, after saying exactly what will happen."""

    DEFAULT_CSS = MODAL_CSS.format(name="ConfirmScreen")
    BINDINGS = [
        Binding("y", "answer(True)", "Yes", tooltip="Do it", id="confirm_yes"),
        Binding("n,escape", "answer(False)", "No", tooltip="Leave everything as it is", id="confirm_no"),
    ]

    def __init__(self, title: str, body: str, yes: str = "Yes") -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.yes = yes

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            with VerticalScroll(classes="body"):
                yield Static(self.body)
            with Horizontal():
                yield Button("No (n)", id="no")
                yield Button(f"{self.yes} (y)", id="yes", variant="warning")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class AskScreen(ModalScreen[str | None]):
    """One line of input, checked by `check` (which returns the problem, or None) before it closes.

    With `act`, the answer is acted on before the dialog closes: `act(answer)` runs in a thread,
    and the dialog closes with what it returns, or stays open with the message of the
    `LongrunError` it raised under the field (a spec that does not load, say)."""

    DEFAULT_CSS = MODAL_CSS.format(name="AskScreen")
    BINDINGS = [
        Binding("ctrl+s", "ok", "OK", tooltip="The same as enter", id="ask_ok"),
        Binding("escape", "cancel", "Cancel", tooltip="Close without doing anything", id="ask_cancel"),
    ]

    def __init__(
        self,
        title: str,
        body: str,
        *,
        value: str = "",
        placeholder: str = "",
        check: Callable[[str], str | None] | None = None,
        act: Callable[[str], str] | None = None,
    ) -> None:
        super().__init__()
        self.title_text = title
        self.body = body
        self.value = value
        self.placeholder = placeholder
        self.check = check
        self.act = act
        self.acting = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.title_text, classes="title")
            yield Static(self.body, classes="body")
            yield Input(self.value, placeholder=self.placeholder, id="answer")
            yield Static("", classes="problem", id="problem")
            with Horizontal():
                yield Button("Cancel (esc)", id="cancel")
                yield Button("OK (enter)", id="ok", variant="primary")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._finish()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._finish()
        else:
            self.dismiss(None)

    def action_ok(self) -> None:
        self._finish()

    def _finish(self) -> None:
        if self.acting:
            return
        value = self.query_one("#answer", Input).value.strip()
        problem = self.check(value) if self.check else (None if value else "this cannot be empty")
        if problem:
            self.query_one("#problem", Static).update(Text(problem))
            return
        if self.act is None:
            self.dismiss(value)
            return
        self.acting = True
        self.query_one("#problem", Static).update("…")
        self._act(self.act, value)

    @work(thread=True, exclusive=True, exit_on_error=False, group="ask-act")
    def _act(self, act: Callable[[str], str], value: str) -> None:
        try:
            self.post_message(Loaded("ask-act", act(value)))
        except LongrunError as exc:
            self.post_message(Loaded("ask-act", None, exc.message))
        except Exception as exc:  # noqa: BLE001 - the dialog says what broke rather than vanish
            first = str(exc).splitlines()[0] if str(exc) else ""
            self.post_message(Loaded("ask-act", None, f"{type(exc).__name__}: {first}".rstrip(": ")))

    def on_loaded(self, message: Loaded) -> None:
        if message.what != "ask-act":
            return
        message.stop()
        self.acting = False
        if message.error is not None:
            self.query_one("#problem", Static).update(Text(message.error))
            self.query_one("#answer", Input).focus()
            return
        self.dismiss(message.data)

    def action_cancel(self) -> None:
        self.dismiss(None)


@dataclass(frozen=True)
class Decision:
    """What a person decided in `DecideScreen`: the verb, and the comment or the answer."""

    verb: str
    text: str


class DecideScreen(ModalScreen[Decision | None]):
    """Approve, deny or answer one approval, with a comment (an answer for a question)."""

    DEFAULT_CSS = MODAL_CSS.format(name="DecideScreen")
    BINDINGS = [
        Binding("ctrl+s", "confirm", "Confirm", tooltip="Record the decision", id="decide_confirm"),
        Binding("escape", "cancel", "Cancel", tooltip="Decide nothing", id="decide_cancel"),
    ]

    VERBS = {"approve": "Approve", "deny": "Deny", "answer": "Answer"}

    def __init__(self, verb: str, title: str, what: RenderableType, choices: list[str] | None = None) -> None:
        super().__init__()
        self.verb = verb
        self.title_text = title
        self.what = what
        self.choices = choices or []

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.VERBS[self.verb]} · {self.title_text}", classes="title")
            with VerticalScroll(classes="body"):
                yield Static(self.what)
            if self.verb == "answer":
                hint = "Your answer"
                if self.choices:
                    hint += " (or the number of a choice)"
            else:
                hint = "Comment (optional; the next session is told)"
            yield Input(placeholder=hint, id="comment")
            yield Static("", classes="problem", id="problem")
            with Horizontal():
                yield Button("Cancel (esc)", id="cancel")
                yield Button(
                    f"{self.VERBS[self.verb]} (ctrl+s)",
                    id="confirm",
                    variant="error" if self.verb == "deny" else "success",
                )

    def on_mount(self) -> None:
        self.query_one("#comment", Input).focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.action_confirm()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "confirm":
            self.action_confirm()
        else:
            self.dismiss(None)

    def action_confirm(self) -> None:
        text = self.query_one("#comment", Input).value.strip()
        if self.verb == "answer":
            if text.isdigit() and 1 <= int(text) <= len(self.choices):
                text = self.choices[int(text) - 1]
            if not text:
                self.query_one("#problem", Static).update("an answer cannot be empty")
                return
        self.dismiss(Decision(self.verb, text))

    def action_cancel(self) -> None:
        self.dismiss(None)


class TextScreen(ModalScreen[None]):
    """A long text to read (the next session's context, a diff), scrollable."""

    DEFAULT_CSS = (
        MODAL_CSS.format(name="TextScreen")
        + """
    TextScreen > Vertical { width: 110; height: 90%; }
    TextScreen VerticalScroll { height: 1fr; }
    """
    )
    BINDINGS = [Binding("escape,q", "close", "Close", tooltip="Back to where you were", id="text_close")]

    def __init__(self, title: str, text: str) -> None:
        super().__init__()
        self.title_text = title
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"{self.title_text}  (esc to close)", classes="title")
            with VerticalScroll():
                yield Static(self.text, markup=False)

    def action_close(self) -> None:
        self.dismiss(None)
