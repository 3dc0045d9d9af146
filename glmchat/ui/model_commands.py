"""The chat's model, thinking-level and usage commands (command palette and Ctrl+T), and the usage summary.

Thin: the decisions are in glmchat/models.py (which choices a model offers, what
a choice sends) and glmchat/usage.py (the figures); this module only wires
them to the chat screen.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Static

if TYPE_CHECKING:
    from glmchat.hosts import Host
    from glmchat.ui.screens.chat import ChatScreen


def _after_change(chat: ChatScreen) -> None:
    chat._save_settings()
    chat._sync_thinking_switch()
    chat.refresh_status()


def cycle_thinking(chat: ChatScreen) -> bool:
    """Ctrl+T on a model with thinking levels: its next level (or off); False when the model has none."""
    from glmchat.models import cycle_next_thinking, session_model_info

    host = chat.current_host()
    if host is None or not host.can_toggle_thinking or not session_model_info(host, chat.session).has_levels:
        return False
    cycle_next_thinking(host, chat.session)
    _after_change(chat)
    return True


def set_thinking(chat: ChatScreen, label: str) -> None:
    """Set the next turn's thinking to a choice of the model ("off", "on" or a level)."""
    from glmchat.models import choice_from_label, session_model_info, set_next_thinking

    choice = choice_from_label(session_model_info(chat.current_host(), chat.session), label)
    set_next_thinking(chat.session, choice)
    _after_change(chat)
    if choice.note:
        chat.notify(choice.note, severity="warning")


def switch_model(chat: ChatScreen, model: str) -> None:
    """Use `model` for the session's next turns (earlier turns keep the model they used)."""
    if chat.session.model == model:
        return
    chat.session.model = model
    _after_change(chat)
    chat.notify(f"Next turns use {model}.")


def model_facts(host: Host, model: str) -> str:
    """One line about a model on a host, from the model table (with the host's overrides)."""
    from glmchat.models import model_info

    try:
        return model_info(host, model).describe()
    except ValueError as exc:
        return f"its settings in config.toml are not usable: {exc}"


def commands(chat: ChatScreen) -> Iterable[SystemCommand]:
    """The palette's thinking-level, model and usage commands for the chat's session."""
    from glmchat.models import ThinkingMode, session_model_info

    host = chat.current_host()
    yield SystemCommand("Usage", "This session's tokens, cache hit, cost and what caching saved", lambda: show_usage(chat))
    if host is None:
        return
    yield SystemCommand("Choose model…", f"The models {host.name} lists, with each one's limits, prices and thinking",
                        lambda: pick_model(chat))
    info = session_model_info(host, chat.session)
    if host.can_toggle_thinking and info.has_levels:
        for label in info.choices():
            what = "no thinking" if label == "off" else f"thinking level {label}"
            extra = " (the model always thinks)" if info.thinking == ThinkingMode.ALWAYS and label == info.levels[0] else ""
            yield SystemCommand(f"Thinking: {label}", f"Next turn: {what}{extra} (Ctrl+T cycles)", _bind(set_thinking, chat, label))
    for model in dict.fromkeys((*host.models, chat.session.model)):
        if model:
            current = " (current)" if model == chat.session.model else ""
            yield SystemCommand(f"Model: {model}{current}", model_facts(host, model), _bind(switch_model, chat, model))


def pick_model(chat: ChatScreen, *, refresh: bool = False) -> None:
    """Ask the host for its models (a worker: it may take a moment), then offer them."""
    host = chat.current_host()
    if host is None:
        chat.notify("The session's host is not usable; see F4.", severity="error")
        return

    async def fetch() -> None:
        listing = await chat.gapp.controller.model_list(host, refresh=refresh)
        if listing.error:
            chat.notify(f"{listing.error} — showing glmchat's list for {host.name}", severity="warning", markup=False)
        rows = [(name, model_facts(host, name)) for name in listing.names]

        def chosen(model: str | None) -> None:
            if model:
                switch_model(chat, model)

        chat.app.push_screen(ModelPicker(rows, chat.session.model, host.name), chosen)

    chat.run_worker(fetch(), group="model-list", exclusive=True, exit_on_error=False, description="list models")


class ModelPicker(ModalScreen[str | None]):
    """The host's models with the table's facts beside each; Enter uses one for this session, Esc cancels."""

    DEFAULT_CSS = """
    ModelPicker {
        align: center middle;
    }
    ModelPicker > Vertical {
        width: 90%;
        max-width: 120;
        height: auto;
        max-height: 80%;
        padding: 1 2;
        border: round $accent;
        background: $surface;
    }
    ModelPicker #models {
        height: auto;
        max-height: 20;
    }
    """

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="model-picker-cancel")]

    def __init__(self, rows: list[tuple[str, str]], current: str, host_name: str) -> None:
        super().__init__()
        self.rows = rows
        self.current = current
        self.host_name = host_name

    def compose(self) -> ComposeResult:
        from rich.text import Text
        from textual.widgets import OptionList
        from textual.widgets.option_list import Option

        width = max((len(name) for name, _ in self.rows), default=10) + 2
        options = [
            Option(Text.assemble((f"{'● ' if name == self.current else '  '}{name:<{width}}", "bold"), (facts, "dim")), id=name)
            for name, facts in self.rows
        ]
        with Vertical():
            yield Static(f"Model for this session on {self.host_name}", id="picker-title")
            yield OptionList(*options, id="models")
            yield Static("Enter uses it for the next turns · Esc cancels", classes="hint")

    def on_mount(self) -> None:
        from textual.widgets import OptionList

        models = self.query_one("#models", OptionList)
        names = [name for name, _ in self.rows]
        if self.current in names:
            models.highlighted = names.index(self.current)
        models.focus()

    def on_option_list_option_selected(self, event: Any) -> None:
        event.stop()
        self.dismiss(event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


def _bind(function: Any, chat: ChatScreen, value: str) -> Any:
    return lambda: function(chat, value)


def show_usage(chat: ChatScreen) -> None:
    chat.ensure_full_session()
    chat.app.push_screen(UsageScreen(usage_text(chat)))


def usage_text(chat: ChatScreen) -> str:
    """The session usage summary, with the cache breaks found in this run."""
    from glmchat.usage import session_usage

    summary = session_usage(chat.session, chat.current_host())
    lines = summary.lines()
    breaks = [found for session_id, found in chat.gapp.controller.cache_watch.breaks if session_id == chat.session.id]
    if breaks:
        lines.append("prompt cache broken: " + "; ".join(found.message() for found in breaks))
    return "\n".join(lines)


class UsageScreen(ModalScreen[None]):
    """The session's usage summary (palette "Usage"); Esc closes it."""

    DEFAULT_CSS = """
    UsageScreen {
        align: center middle;
    }
    UsageScreen > Vertical {
        width: auto;
        max-width: 90%;
        height: auto;
        padding: 1 2;
        border: round $accent;
        background: $surface;
    }
    UsageScreen #usage-title {
        text-style: bold;
        margin-bottom: 1;
    }
    """

    BINDINGS = [Binding("escape", "dismiss", "Close", id="usage-close")]

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Session usage", id="usage-title")
            yield Static(self.text, id="usage-body", markup=False)
            yield Static("Esc closes", classes="hint")

    async def action_dismiss(self, result: None = None) -> None:
        self.dismiss(result)
