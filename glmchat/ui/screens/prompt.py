"""Ask for one line of text in a modal dialog (rename a session, and the like)."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from glmchat.sanitize import inert


class PromptScreen(ModalScreen[str | None]):
    """One-line text entry; dismisses with the stripped text, or None when cancelled or left blank.

    | Key(s) | Description |
    | :- | :- |
    | enter | Accept. |
    | escape | Cancel. |
    """

    DEFAULT_CSS = """
    PromptScreen {
        align: center middle;
        background: $background 60%;
    }
    PromptScreen > #dialog {
        width: 70;
        max-width: 95%;
        height: auto;
        padding: 1 2;
        border: thick $primary 70%;
        background: $surface;
    }
    PromptScreen #title {
        width: 1fr;
        text-style: bold;
        margin-bottom: 1;
    }
    PromptScreen #buttons {
        height: auto;
        margin-top: 1;
        align-horizontal: right;
    }
    PromptScreen #buttons Button {
        margin-left: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, value: str = "", *, placeholder: str = "", ok_label: str = "OK") -> None:
        """Create the dialog.

        Args:
            title: the question, shown as plain text.
            value: the text the field starts with (e.g. the current title).
            placeholder: hint shown while the field is empty.
            ok_label: label of the accepting button.
        """
        super().__init__()
        self.prompt_title = title
        self.value = value
        self.placeholder = placeholder
        self.ok_label = ok_label

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content(inert(self.prompt_title)), id="title")
            yield Input(inert(self.value), placeholder=self.placeholder, id="value")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(Content(self.ok_label), variant="primary", id="ok")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#ok")
    def action_accept(self) -> None:
        """Dismiss with the stripped text (None if blank)."""
        text = self.query_one(Input).value.strip()
        self.dismiss(text or None)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Dismiss with None."""
        self.dismiss(None)
