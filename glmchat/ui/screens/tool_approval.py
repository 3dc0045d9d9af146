"""Approve one tool call: allow it once, allow the tool for the rest of the session, or deny it."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Static

from glmchat.sanitize import inert
from glmchat.ui.widgets.steps import ARGUMENTS_SHOWN, pretty_arguments, shorten

if TYPE_CHECKING:
    from textual.app import App

    from glmchat.session import ToolCall
    from glmchat.tools.runner import Approval
    from glmchat.tools.toolbox import ToolSpec


class ApprovalChoice(StrEnum):
    """What the dialog ends with (the tool runner's Approval, plus stopping the whole turn)."""

    ONCE = "once"
    ALWAYS = "always"
    DENY = "deny"
    STOP = "stop"
    """Esc: stop the turn here (the finished steps are kept)."""


class ToolApprovalScreen(ModalScreen[ApprovalChoice]):
    """Ask whether a tool call may run. Focus starts on Deny: a stray Enter never runs a tool.

    | Key(s) | Description |
    | :- | :- |
    | y | Allow this call. |
    | a | Allow every call of this tool in this session. |
    | n | Deny (the model is told). |
    | escape | Stop the turn. |
    """

    DEFAULT_CSS = """
    ToolApprovalScreen {
        align: center middle;
        background: $background 60%;
    }
    ToolApprovalScreen > #dialog {
        width: 80;
        max-width: 95%;
        height: auto;
        max-height: 90%;
        padding: 1 2;
        border: thick $warning 70%;
        background: $surface;
    }
    ToolApprovalScreen #question {
        margin-bottom: 1;
    }
    ToolApprovalScreen #arguments {
        height: auto;
        max-height: 16;
        background: $boost;
        padding: 0 1;
        margin-bottom: 1;
    }
    ToolApprovalScreen #buttons {
        height: auto;
        align-horizontal: right;
    }
    ToolApprovalScreen #buttons Button {
        margin-left: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "choose('once')", "Allow once"),
        Binding("a", "choose('always')", "Always"),
        Binding("n", "choose('deny')", "Deny"),
        Binding("escape", "choose('stop')", "Stop turn"),
    ]

    def __init__(self, name: str, arguments: str, *, server: str = "", tool: str = "") -> None:
        """Create the dialog for a call of `name` (the function the model named) with `arguments` as sent."""
        super().__init__()
        self.call_name = name
        self.arguments = arguments
        self.server = server
        self.tool = tool

    def compose(self) -> ComposeResult:
        where = f" (tool {self.tool!r} of MCP server {self.server!r})" if self.server else ""
        with Vertical(id="dialog"):
            yield Static(Content(inert(f"The model wants to call {self.call_name}{where}.")), id="question")
            with VerticalScroll(id="arguments"):
                yield Static(Content(inert(shorten(pretty_arguments(self.arguments), ARGUMENTS_SHOWN))), markup=False)
            with Horizontal(id="buttons"):
                yield Button("Deny", id="deny")
                yield Button("Always for this tool", id="always")
                yield Button("Allow once", variant="primary", id="once")

    def on_mount(self) -> None:
        self.query_one("#deny", Button).focus()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id:
            self.action_choose(event.button.id)

    def action_choose(self, choice: str) -> None:
        """Dismiss with the choice."""
        self.dismiss(ApprovalChoice(choice))


async def ask_approval(app: App[object], call: ToolCall, spec: ToolSpec | None) -> Approval:
    """The TUI's approver: the dialog, from the worker that streams the turn.

    Esc stops the turn: the worker's task is cancelled, so the runner settles the
    turn as stopped with every finished step kept.
    """
    import asyncio

    from glmchat.tools.runner import Approval

    screen = ToolApprovalScreen(call.name, call.arguments, server=spec.server if spec else "", tool=spec.tool if spec else "")
    choice = await app.push_screen_wait(screen)
    if choice is ApprovalChoice.STOP:
        task = asyncio.current_task()
        if task is not None:
            task.cancel()
            await asyncio.sleep(0)  # the cancellation lands here
        return Approval.DENY
    return Approval(str(choice))
