"""The composer: a multi-line prompt, the thinking switch for the next turn, and key hints.

Enter sends. Ctrl+J inserts a newline in every terminal (it is a distinct
byte, "\n"). Shift+Enter and Alt+Enter do too where the terminal reports them
(kitty, WezTerm, foot, Ghostty: Textual asks for the kitty keyboard protocol);
xterm and tmux send both as a plain Enter, which Textual cannot tell apart.

Nothing here reads the whole text on a keystroke: a 1 MB paste is one edit,
and typing after it costs what TextArea's own edit costs.
"""

from __future__ import annotations


from textual import events, on
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widgets import Label, Switch, TextArea

NEWLINE_KEYS = frozenset({"ctrl+j", "shift+enter", "alt+enter", "ctrl+enter", "shift+\r"})
"""Keys that insert a newline instead of sending ("shift+\r" is xterm's modifyOtherKeys Shift+Enter)."""

SEND_HINT = "Enter send · Ctrl+J newline"


class PromptArea(TextArea):
    """The text area of the composer: Enter sends, the newline keys insert a newline."""

    class SubmitRequested(Message):
        """Enter was pressed."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text
            """The prompt when Enter was pressed (keys typed after it are not part of it)."""

    class EditLastRequested(Message):
        """Up was pressed in an empty prompt: edit the last message."""

    def _is_empty(self) -> bool:
        document = self.document
        return document.line_count == 1 and not document.get_line(0)

    async def _on_key(self, event: events.Key) -> None:
        key = event.key
        if key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.SubmitRequested(self.text))
            return
        if key in NEWLINE_KEYS:
            event.stop()
            event.prevent_default()
            if not self.read_only:
                self._replace_via_keyboard("\n", *self.selection)
            return
        if key == "up" and self._is_empty():
            event.stop()
            event.prevent_default()
            self.post_message(self.EditLastRequested())
            return
        await super()._on_key(event)


class Composer(Vertical):
    """Prompt, thinking switch and hints.

    | Key(s) | Description |
    | :- | :- |
    | enter | Send the message. |
    | ctrl+j (shift+enter, alt+enter where reported) | Insert a newline. |
    | up (empty prompt) | Edit the last message. |
    """

    DEFAULT_CSS = """
    Composer {
        height: auto;
    }
    """

    class Submitted(Message):
        """The user sends the prompt."""

        def __init__(self, composer: Composer, text: str, thinking: bool) -> None:
            super().__init__()
            self.composer = composer
            self.text = text
            """The prompt text, exactly as typed."""
            self.thinking = thinking
            """Whether thinking is on for this turn."""

        @property
        def control(self) -> Composer:
            return self.composer

    class ThinkingChanged(Message):
        """The thinking switch changed (by click, key or Ctrl+T)."""

        def __init__(self, composer: Composer, thinking: bool) -> None:
            super().__init__()
            self.composer = composer
            self.thinking = thinking

        @property
        def control(self) -> Composer:
            return self.composer

    class EditLastRequested(Message):
        """The user pressed Up in an empty prompt."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.prompt = PromptArea(
            "",
            id="prompt",
            soft_wrap=True,
            show_line_numbers=False,
            tab_behavior="focus",
            compact=True,
            placeholder="Message GLM…",
        )
        self.prompt.cursor_blink = True
        self.switch = Switch(True, id="thinking-switch", tooltip="Thinking for the next turn (Ctrl+T)")
        self.switch_label = Label("Thinking", id="thinking-label")
        self.mode_label = Label("", id="composer-mode")
        self.hint = Label(SEND_HINT, id="composer-hint")
        self._can_toggle = True
        self._quiet = False

    def compose(self):
        yield self.prompt
        with Horizontal(id="composer-bar"):
            yield self.switch
            yield self.switch_label
            yield self.mode_label
            yield self.hint

    # -- text ----------------------------------------------------------------------------

    @property
    def text(self) -> str:
        """The whole prompt (O(length): read it on send or switch, never per key)."""
        return self.prompt.text

    def set_text(self, text: str) -> None:
        """Replace the prompt and put the cursor at its end."""
        self.prompt.load_text(text)
        self.prompt.move_cursor(self.prompt.document.end)

    def clear(self) -> None:
        self.prompt.load_text("")

    def take(self, sent: str) -> None:
        """Remove the text that was sent, keeping anything typed after Enter."""
        text = self.prompt.text
        if text == sent:
            self.clear()
        elif text.startswith(sent):
            self.set_text(text[len(sent) :].lstrip("\n"))

    def focus_prompt(self) -> None:
        self.prompt.focus()

    def set_editing(self, editing: bool) -> None:
        """Show that Enter will replace the last message instead of adding one."""
        self.set_class(editing, "-editing")
        self.mode_label.update("Editing the last message · Enter resends · Esc cancels" if editing else "")

    # -- thinking ------------------------------------------------------------------------

    @property
    def thinking(self) -> bool:
        """Thinking for the next turn (False when the host cannot switch it off)."""
        return self.switch.value

    def set_thinking(self, value: bool, *, can_toggle: bool = True, reason: str = "") -> None:
        """Set the switch without posting ThinkingChanged.

        Args:
            value: On or off.
            can_toggle: The host can switch thinking per turn; if not, the switch is disabled.
            reason: Shown next to a disabled switch ("Runware sets thinking itself").
        """
        self._can_toggle = can_toggle
        self._quiet = True
        try:
            with self.switch.prevent(Switch.Changed):
                self.switch.value = value
        finally:
            self._quiet = False
        self.switch.disabled = not can_toggle
        if can_toggle:
            self.switch_label.update(f"Thinking {'on' if value else 'off'}")
            self.switch.tooltip = "Thinking for the next turn (Ctrl+T)"
        else:
            self.switch_label.update(f"Thinking: {reason or 'not switchable on this host'}")
            self.switch.tooltip = reason or "This host cannot switch thinking per turn."

    def toggle_thinking(self) -> bool:
        """Flip the switch (Ctrl+T); returns False when the host cannot switch thinking."""
        if not self._can_toggle:
            return False
        self.switch.toggle()
        return True

    @on(Switch.Changed, "#thinking-switch")
    def _switch_changed(self, event: Switch.Changed) -> None:
        event.stop()
        if self._quiet:
            return
        self.switch_label.update(f"Thinking {'on' if event.value else 'off'}")
        self.post_message(self.ThinkingChanged(self, event.value))
        # Back to typing: Enter on a focused switch would flip it instead of sending.
        self.prompt.focus()

    def on_click(self, event: events.Click) -> None:
        # The label is part of the switch for the mouse.
        if event.widget is self.switch_label and self._can_toggle:
            self.switch.toggle()

    # -- sending -------------------------------------------------------------------------

    @on(PromptArea.SubmitRequested)
    def _submit(self, event: PromptArea.SubmitRequested) -> None:
        event.stop()
        text = event.text
        if not text.strip():
            return
        self.post_message(self.Submitted(self, text, self.thinking))

    @on(PromptArea.EditLastRequested)
    def _edit_last(self, event: PromptArea.EditLastRequested) -> None:
        event.stop()
        self.post_message(self.EditLastRequested())
