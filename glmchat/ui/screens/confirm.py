"""A yes/no question in a modal dialog."""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from glmchat.sanitize import inert


class ConfirmScreen(ModalScreen[bool]):
    """Ask the user to confirm an action; dismisses with True (confirmed) or False.

    The focus starts on Cancel, so a stray Enter never confirms a deletion.

    | Key(s) | Description |
    | :- | :- |
    | y | Confirm. |
    | n, escape | Cancel. |
    """

    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
        background: $background 60%;
    }
    ConfirmScreen > #dialog {
        width: 60;
        max-width: 90%;
        height: auto;
        padding: 1 2;
        border: thick $error 70%;
        background: $surface;
    }
    ConfirmScreen.-safe > #dialog {
        border: thick $primary 70%;
    }
    ConfirmScreen #message {
        width: 1fr;
        margin-bottom: 1;
    }
    ConfirmScreen #buttons {
        height: auto;
        align-horizontal: right;
    }
    ConfirmScreen #buttons Button {
        margin-left: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "confirm", "Yes", show=False),
        Binding("n", "cancel", "No", show=False),
        Binding("escape", "cancel", "Cancel"),
    ]

    def __init__(self, message: str, confirm_label: str = "Delete", *, danger: bool = True) -> None:
        """Create the dialog.

        Args:
            message: the question; shown as plain text (no markup), control characters inert.
            confirm_label: label of the confirming button.
            danger: style the confirm button as destructive (red).
        """
        super().__init__(classes=None if danger else "-safe")
        self.message = message
        self.confirm_label = confirm_label
        self.danger = danger

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static(Content(inert(self.message)), id="message")
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(
                    Content(self.confirm_label), variant="error" if self.danger else "primary", id="confirm"
                )

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    @on(Button.Pressed, "#confirm")
    def action_confirm(self) -> None:
        """Dismiss with True."""
        self.dismiss(True)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Dismiss with False."""
        self.dismiss(False)
