"""The composer: a multi-line prompt, the thinking switch for the next turn, and key hints.

Enter sends. Ctrl+J inserts a newline in every terminal (it is a distinct
byte, "\n"). Alt+Enter does too: terminals without the kitty keyboard protocol
send it as ESC + CR, which `glmchat.ui.keys` teaches Textual to read as
"alt+enter". Shift+Enter does where the terminal reports it (kitty, WezTerm,
foot, Ghostty; xterm with modifyOtherKeys); xterm and tmux send it as a plain
Enter, which no program can tell apart.

Nothing here reads the whole text on a keystroke: a 1 MB paste is one edit,
and typing after it costs what TextArea's own edit costs.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import events, on
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.geometry import Size
from textual.message import Message
from textual.widgets import Static, Switch, TextArea

NEWLINE_KEYS = frozenset({"ctrl+j", "shift+enter", "alt+enter", "ctrl+enter", "shift+\r"})
"""Keys that insert a newline instead of sending ("shift+\r" is xterm's modifyOtherKeys Shift+Enter)."""

SEND_HINTS = (
    "Enter send · Ctrl+J or Alt+Enter new line",
    "Enter send · Ctrl+J new line",
    "Enter send · ^J new line",
    "^J new line",
)
"""The composer's key hint, longest first: the longest that fits is shown, never a cut one."""

EDIT_HINTS = (
    "Editing a message · Enter sends it as a new branch · Esc cancels",
    "Editing · Enter sends a new branch · Esc cancels",
    "Editing · Esc cancels",
    "Editing",
)
"""The hint while a message is being edited, longest first."""

THINKING_KEY = "^T"
"""The thinking switch's key, as the footer writes keys."""


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
        if key.startswith("alt+"):
            # An Alt chord is a command, never text. The terminal sends Alt+D as ESC d, and
            # Textual's key event for it still carries the character "d", which TextArea's
            # handler would type. Preventing the default skips that handler only: the event
            # goes on up to the bindings (Alt+D deletes the session, Alt+M exports...), and
            # an unbound chord types nothing.
            event.prevent_default()
            return
        await super()._on_key(event)


class ThinkingSwitch(Switch):
    """The thinking switch, in words: "━● Thinking: on ^T" / "○━ Thinking: off ^T".

    A `Switch` for the mouse and keyboard (click, Enter and Space toggle it, it
    posts `Switch.Changed`), drawn as a small switch followed by its state and key.
    """

    DEFAULT_CSS = """
    ThinkingSwitch, ThinkingSwitch:focus {
        border: none;
        padding: 0 1 0 0;
        height: 1;
        width: auto;
        background: transparent;
    }
    ThinkingSwitch:focus {
        text-style: bold;
        background-tint: $foreground 8%;
    }
    """

    def __init__(self, value: bool, *, id: str | None = None) -> None:
        super().__init__(value, animate=False, id=id, tooltip="Thinking for the next turn (Ctrl+T)")
        self._reason = ""

    def set_reason(self, reason: str) -> None:
        """Why the host sets thinking itself ("" when the switch works)."""
        if reason != self._reason:
            self._reason = reason
            self.refresh(layout=True)

    def label(self) -> Content:
        """The switch as drawn: knob, state in words, key."""
        if self.disabled:
            return Content.assemble(("Thinking: ", "$text-muted"), (self._reason or "set by the host", "$text-muted"))
        if self.value:
            return Content.assemble(("━●", "$text-success"), " Thinking: ", ("on", "bold $text-success"), (f" {THINKING_KEY}", "$text-muted"))
        return Content.assemble(("○━", "$text-muted"), " Thinking: ", ("off", "bold"), (f" {THINKING_KEY}", "$text-muted"))

    def render(self) -> Content:
        return self.label()

    def get_content_width(self, container: Size, viewport: Size) -> int:
        return self.label().cell_length

    def watch_value(self, value: bool) -> None:
        super().watch_value(value)
        self.refresh(layout=True)  # "on" and "off" differ in width


class FittingHint(Static):
    """A one-line hint that shows the longest of its variants that fits its width (or nothing).

    Words are never cut: a narrow composer gets a shorter sentence, not a clipped one.
    """

    DEFAULT_CSS = """
    FittingHint {
        width: 1fr;
        height: 1;
        content-align: right middle;
        color: $text-muted;
    }
    FittingHint.-editing {
        color: $text-warning;
    }
    """

    def __init__(self, variants: Sequence[str], *, id: str | None = None) -> None:
        super().__init__("", id=id, markup=False)
        self._variants = tuple(variants)

    @property
    def variants(self) -> tuple[str, ...]:
        return self._variants

    def set_variants(self, variants: Sequence[str]) -> None:
        variants = tuple(variants)
        if variants != self._variants:
            self._variants = variants
            self.refresh()

    def fitting(self, width: int) -> str:
        """The longest variant of at most `width` cells ("" when none fits)."""
        return pick_fitting(self._variants, width)

    def render(self) -> Content:
        return Content(self.fitting(self.content_size.width))


def pick_fitting(variants: Sequence[str], width: int) -> str:
    """The first of `variants` (longest first) that fits in `width` cells, else ""."""
    for text in variants:
        if Content(text).cell_length <= width:
            return text
    return ""


class Composer(Vertical):
    """Prompt, thinking switch and hints.

    | Key(s) | Description |
    | :- | :- |
    | enter | Send the message. |
    | ctrl+j, alt+enter (shift+enter where reported) | Insert a newline. |
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
        self.switch = ThinkingSwitch(True, id="thinking-switch")
        self.hint = FittingHint(SEND_HINTS, id="composer-hint")
        self._can_toggle = True
        self._quiet = False

    def compose(self):
        yield self.prompt
        with Horizontal(id="composer-bar"):
            yield self.switch
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

    def type_text(self, text: str) -> None:
        """Focus the prompt and insert `text` at its cursor, as if typed there."""
        prompt = self.prompt
        prompt.focus()
        if not prompt.read_only:
            prompt.replace(text, *prompt.selection, maintain_selection_offset=False)

    def set_editing(self, editing: bool) -> None:
        """Show that Enter will send an edited message (a new branch from its turn) instead of adding one."""
        self.set_class(editing, "-editing")
        self.hint.set_class(editing, "-editing")
        self.hint.set_variants(EDIT_HINTS if editing else SEND_HINTS)

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
            reason: Shown in place of a disabled switch ("set by Runware").
        """
        self._can_toggle = can_toggle
        self._quiet = True
        try:
            with self.switch.prevent(Switch.Changed):
                self.switch.value = value
        finally:
            self._quiet = False
        self.switch.disabled = not can_toggle
        self.switch.set_reason("" if can_toggle else reason or "not switchable on this host")
        self.switch.tooltip = (
            "Thinking for the next turn (Ctrl+T)" if can_toggle else reason or "This host cannot switch thinking per turn."
        )

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
        self.post_message(self.ThinkingChanged(self, event.value))
        # Back to typing: Enter on a focused switch would flip it instead of sending.
        self.prompt.focus()

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
