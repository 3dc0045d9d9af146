"""The keys screen: every key binding of the app and the screen below, generated from the bindings.

Nothing here is a hand-written list of keys: the entries come from the BINDINGS
of the app, the screen and each widget on it, so the help cannot drift from
what the keys do.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from textual.app import App, ComposeResult, active_app
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen, Screen
from textual.widgets import Static

if TYPE_CHECKING:
    from textual.dom import DOMNode

_KEY_NAMES = {
    "escape": "Esc",
    "enter": "Enter",
    "\r": "Enter",
    "tab": "Tab",
    "space": "Space",
    "backspace": "Backspace",
    "delete": "Del",
    "insert": "Ins",
    "pageup": "PgUp",
    "pagedown": "PgDn",
    "home": "Home",
    "end": "End",
    "up": "↑",
    "down": "↓",
    "left": "←",
    "right": "→",
    "slash": "/",
    "question_mark": "?",
    "plus": "+",
    "minus": "-",
    "comma": ",",
    "full_stop": ".",
    "left_square_bracket": "[",
    "right_square_bracket": "]",
}
_MODIFIERS = {"ctrl": "Ctrl", "shift": "Shift", "alt": "Alt", "meta": "Meta", "super": "Super"}

# Textual's own bindings that deserve a friendlier description in the help.
_DESCRIPTIONS = {"command_palette": "Command palette: every action", "quit": "Quit"}


def sentence_case(text: str) -> str:
    """ "Focus Next" -> "Focus next": a Title Case description in the app's sentence case.

    Only text whose every word is capitalised is changed (Textual's own binding
    descriptions); a sentence that already capitalises a name ("Export to
    Markdown") is left alone, and so are all-capital words ("JSON", "F1").
    """
    words = text.split(" ")
    if len(words) < 2 or not all(word[:1].isupper() for word in words if word[:1].isalpha()):
        return text
    return " ".join([words[0], *(word if word.isupper() else word.lower() for word in words[1:])])


def format_key(key: str) -> str:
    """A key as people write it: "ctrl+t" -> "Ctrl+T", "escape" -> "Esc", "slash" -> "/"."""
    *mods, name = key.split("+") if key != "+" else ["+"]
    label = _KEY_NAMES.get(name, name.upper() if len(name) == 1 and mods else name)
    if len(label) > 1 and label.islower() and label not in _KEY_NAMES.values():
        label = label.capitalize()  # f1 -> F1
    return "+".join([*(_MODIFIERS.get(m, m.capitalize()) for m in mods), label])


@dataclass
class HelpEntry:
    """One line of help: the keys and what they do."""

    keys: list[str]
    description: str
    group: str


def _group_title(node: DOMNode) -> str:
    title = getattr(node, "BINDING_GROUP_TITLE", None)
    if title:
        return str(title)
    if isinstance(node, App):
        return "Everywhere"
    name = type(node).__name__
    for suffix in ("Screen", "Widget"):
        if name.endswith(suffix) and name != suffix:
            name = name[: -len(suffix)]
    # CamelCase -> words
    words = "".join(f" {ch}" if ch.isupper() else ch for ch in name).strip()
    return words[:1].upper() + words[1:].lower()


def _declared_actions(node: DOMNode) -> set[str] | None:
    """Actions bound by the project's own classes in the node's MRO; None: list every binding.

    The app and its screens have few bindings, all worth listing (Textual's quit
    and command palette among them). A widget that subclasses a Textual widget
    lists only what glmchat added, plus any binding shown in the footer.
    """
    if isinstance(node, (App, Screen)):
        return None
    actions: set[str] = set()
    for cls in type(node).__mro__:
        if cls.__module__.startswith("glmchat.") and "BINDINGS" in cls.__dict__:
            for item in cls.__dict__["BINDINGS"]:
                action = item.action if isinstance(item, Binding) else item[1]
                actions.add(action)
    return actions


def _entries_for(node: DOMNode) -> Iterable[HelpEntry]:
    group = _group_title(node)
    declared = _declared_actions(node)
    for key, bindings in node._bindings.key_to_bindings.items():
        for binding in bindings:
            if declared is not None and binding.action not in declared and not binding.show:
                continue  # a built-in widget's own keys (cursor moves...) are not news
            action = binding.action.split("(", 1)[0]
            description = binding.description
            if action in _DESCRIPTIONS and (not description or description == "palette"):
                description = _DESCRIPTIONS[action]
            if binding.tooltip and len(binding.tooltip) <= 60:
                description = binding.tooltip.rstrip(".")
            if not description:
                continue
            label = binding.key_display or format_key(key)
            group_title = binding.group.description if binding.group else group
            yield HelpEntry([label], sentence_case(description), sentence_case(group_title))


def collect_help(nodes: Iterable[DOMNode]) -> list[HelpEntry]:
    """The help entries of `nodes`, grouped, each class once, keys of one action merged.

    Args:
        nodes: the app, the screen and its widgets, in the order to show their groups.
    """
    seen_classes: set[type] = set()
    merged: dict[tuple[str, str], HelpEntry] = {}
    for node in nodes:
        if type(node) in seen_classes:
            continue
        seen_classes.add(type(node))
        for entry in _entries_for(node):
            slot = merged.get((entry.group, entry.description))
            if slot is None:
                merged[(entry.group, entry.description)] = entry
            elif entry.keys[0] not in slot.keys:
                slot.keys.extend(entry.keys)
    return list(merged.values())


def nodes_of(app: App[Any], screen: Screen[Any] | None = None) -> list[DOMNode]:
    """The app, the screen (default: the one showing) and every widget on it."""
    screen = screen if screen is not None else app.screen
    return [app, screen, *screen.walk_children()]


def _newline_note() -> tuple[str, str] | None:
    # The composer handles its newline keys itself (not as bindings): read them from it.
    try:
        from glmchat.ui.widgets.composer import NEWLINE_KEYS
    except ImportError:
        return None
    order = ["shift+enter", "ctrl+j", "alt+enter", "ctrl+enter"]
    keys = sorted(NEWLINE_KEYS, key=lambda k: (order.index(k) if k in order else len(order), k))
    # Two names of one key ("shift+enter", and "shift+\r" from xterm's modifyOtherKeys) read the same.
    labels = dict.fromkeys(format_key(k) for k in keys)
    return (" / ".join(labels), "New line in the composer (Enter sends)")


class HelpScreen(ModalScreen[None]):
    """Lists every key of the app and of the screen it was opened from.

    | Key(s) | Description |
    | :- | :- |
    | escape, q, f1 | Close. |
    """

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        background: $background 70%;
    }
    HelpScreen > #dialog {
        width: 84;
        max-width: 100%;
        height: 90%;
        border: thick $primary 60%;
        background: $surface;
    }
    HelpScreen #title {
        text-style: bold;
        color: $primary;
        padding: 1 2 0 2;
    }
    HelpScreen #keys {
        height: 1fr;
        padding: 0 2;
    }
    HelpScreen .group {
        margin-top: 1;
        text-style: bold;
        color: $text-accent;
    }
    HelpScreen .entry {
        height: auto;
    }
    HelpScreen .entry > .keys {
        text-style: bold;
        color: $text-primary;
    }
    HelpScreen .entry > .description {
        width: 1fr;
    }
    HelpScreen #footer {
        color: $text-muted;
        padding: 0 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape,q,f1", "close", "Close", id="help-close"),
    ]

    def __init__(
        self,
        source: App[Any] | Screen[Any] | Sequence[HelpEntry] | None = None,
        *,
        notes: Sequence[tuple[str, str]] = (),
        title: str = "Keys",
    ) -> None:
        """Create the screen.

        Args:
            source: the app (its bindings and those of the screen showing now and
                its widgets are listed), a screen (it, its widgets and its app),
                or ready-made entries. None: the running app, read now, before
                this screen is pushed over the one it describes.
            notes: extra (keys, description) lines for keys that are not bindings;
                the composer's newline keys are added by themselves.
            title: the heading.
        """
        super().__init__()
        if source is None:
            source = active_app.get()
        if isinstance(source, App):
            entries = collect_help(nodes_of(source))
        elif isinstance(source, Screen):
            entries = collect_help(nodes_of(source.app, source))
        else:
            entries = list(source)
        extra = list(notes)
        if (note := _newline_note()) is not None and all(n[1] != note[1] for n in extra):
            extra.append(note)
        for keys, description in extra:
            entries.append(HelpEntry([keys], description, "Composer"))
        self.entries = entries
        self.help_title = title

    def compose(self) -> ComposeResult:
        groups: dict[str, list[HelpEntry]] = {}
        for entry in self.entries:
            groups.setdefault(entry.group, []).append(entry)
        width = max((len(" / ".join(e.keys)) for e in self.entries), default=8)
        width = min(max(width, 8), 24) + 2
        with Vertical(id="dialog"):
            yield Static(self.help_title, id="title", markup=False)
            with VerticalScroll(id="keys"):
                for group, entries in groups.items():
                    yield Static(Content(group), classes="group")
                    for entry in entries:
                        with Horizontal(classes="entry"):
                            keys = Static(Content(" / ".join(entry.keys)), classes="keys")
                            keys.styles.width = width
                            yield keys
                            yield Static(Content(entry.description), classes="description")
            footer = "Esc closes"
            if self.app.ENABLE_COMMAND_PALETTE:
                palette = format_key(self.app.COMMAND_PALETTE_BINDING.split(",")[0])
                footer += f" · {palette} lists every action by name"
            yield Static(footer, id="footer", markup=False)

    def action_close(self) -> None:
        """Close the help."""
        self.dismiss(None)
