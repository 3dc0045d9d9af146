"""The session sidebar: a search field, the saved sessions, and new/rename/delete buttons."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, ClassVar

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Button, Input, OptionList
from textual.widgets.option_list import Option

from glmchat.sanitize import inert

if TYPE_CHECKING:
    from glmchat.store import SessionSummary


def _when(timestamp: float, now: float) -> str:
    """A compact date: the time for today, the day for this year, else the full date."""
    then = time.localtime(timestamp)
    today = time.localtime(now)
    if then[:3] == today[:3]:
        return time.strftime("%H:%M", then)
    if then.tm_year == today.tm_year:
        return time.strftime("%b %d", then)
    return time.strftime("%Y-%m-%d", then)


def _one_line(text: str) -> str:
    # Titles are untrusted (the first user line, or an imported file): no control
    # characters, and no line breaks that would break the two-line layout.
    return " ".join(inert(text).split()) or "Untitled"


class SessionOptions(OptionList):
    """The list of sessions inside `SessionList` (keys act on the highlighted session).

    | Key(s) | Description |
    | :- | :- |
    | enter | Open the highlighted session. |
    | n | New session. |
    | r, f2 | Rename the highlighted session. |
    | d, delete | Delete the highlighted session (asks first). |
    | / | Search sessions. |
    """

    BINDING_GROUP_TITLE = "Sessions"

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "new", "New", tooltip="Start a new session.", id="session-new"),
        Binding("r,f2", "rename", "Rename", tooltip="Rename the highlighted session.", id="session-rename"),
        Binding("d,delete", "delete", "Delete", tooltip="Delete the highlighted session.", id="session-delete"),
        Binding("slash", "search", "Search", tooltip="Filter and search sessions.", id="session-search"),
    ]

    def _session_list(self) -> SessionList:
        return self.query_ancestor(SessionList)

    def action_new(self) -> None:
        self._session_list().request_new()

    def action_rename(self) -> None:
        self._session_list().request_rename()

    def action_delete(self) -> None:
        self._session_list().request_delete()

    def action_search(self) -> None:
        self._session_list().focus_search()


class SessionList(Widget):
    """Sidebar listing saved sessions, most recent first.

    It only shows and asks: every change (open, new, rename, delete, search) is a
    message for the screen to act on, so the store stays the one source of truth.
    Call `load` again after any change.
    """

    DEFAULT_CSS = """
    SessionList {
        width: 34;
        height: 1fr;
        layout: vertical;
        background: $surface;
        border-right: vkey $panel;
    }
    SessionList > #session-search {
        margin: 0 0 0 0;
    }
    SessionList > SessionOptions {
        height: 1fr;
        border: none;
        background: transparent;
        padding: 0;
        scrollbar-size-vertical: 1;
    }
    SessionList > SessionOptions:focus {
        border: none;
        background-tint: $foreground 3%;
    }
    SessionList > #session-actions {
        height: 1;
        margin-top: 1;
    }
    SessionList > #session-actions > Button {
        width: 1fr;
        min-width: 0;
        margin: 0 0 0 1;
    }
    """

    class _SessionMessage(Message):
        def __init__(self, session_list: SessionList, session_id: str) -> None:
            super().__init__()
            self.session_list = session_list
            self.session_id = session_id
            """The session's id (uuid hex)."""

        @property
        def control(self) -> SessionList:
            return self.session_list

    class Selected(_SessionMessage):
        """The user chose a session to open (Enter or a click)."""

    class RenameRequested(_SessionMessage):
        """The user asked to rename a session."""

    class DeleteRequested(_SessionMessage):
        """The user asked to delete a session (the screen confirms first)."""

    class NewRequested(Message):
        """The user asked for a new session."""

        def __init__(self, session_list: SessionList) -> None:
            super().__init__()
            self.session_list = session_list

        @property
        def control(self) -> SessionList:
            return self.session_list

    class SearchRequested(Message):
        """The user asked for a full-text search across all sessions (Enter in the search field)."""

        def __init__(self, session_list: SessionList, query: str) -> None:
            super().__init__()
            self.session_list = session_list
            self.query = query
            """The search text, stripped."""

        @property
        def control(self) -> SessionList:
            return self.session_list

    def __init__(
        self,
        summaries: Iterable[SessionSummary] = (),
        current_id: str | None = None,
        *,
        clock: Callable[[], float] = time.time,
        name: str | None = None,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        """Create the sidebar.

        Args:
            summaries: sessions to show at once (or call `load` later).
            current_id: the open session, marked and highlighted.
            clock: gives "now" for the dates shown (tests and screenshots pin it).
        """
        super().__init__(name=name, id=id, classes=classes)
        self._summaries: list[SessionSummary] = list(summaries)
        self.current_id = current_id
        self._filter = ""
        self._clock = clock

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Filter · Enter searches all", id="session-search", compact=True)
        yield SessionOptions(id="session-options", markup=False)
        with Horizontal(id="session-actions"):
            yield Button("+ New", id="session-new", compact=True, tooltip="New session")
            yield Button("Rename", id="session-rename", compact=True, tooltip="Rename the highlighted session")
            yield Button(
                "Delete", id="session-delete", compact=True, variant="error", tooltip="Delete the highlighted session"
            )

    def on_mount(self) -> None:
        self._render_options()

    # -- public API ----------------------------------------------------------------------

    @property
    def options(self) -> SessionOptions:
        return self.query_one(SessionOptions)

    @property
    def summaries(self) -> Sequence[SessionSummary]:
        """Every session loaded (not only those the filter shows)."""
        return tuple(self._summaries)

    @property
    def visible_ids(self) -> list[str]:
        """Ids of the sessions shown under the current filter, in order."""
        return [s.id for s in self._summaries if self._matches(s)]

    @property
    def highlighted_id(self) -> str | None:
        """The highlighted session, or None when the list is empty."""
        if not self.is_mounted:
            return self.current_id
        option = self.options.highlighted_option
        return option.id if option is not None else None

    def load(self, summaries: Iterable[SessionSummary], current_id: str | None) -> None:
        """Replace the list; the filter text is kept.

        Args:
            summaries: sessions, most recent first (``Store.list_sessions()``).
            current_id: the open session (marked with a dot and highlighted).
        """
        self._summaries = list(summaries)
        moved = current_id != self.current_id
        self.current_id = current_id
        # Not while the list is being taken down (a signal that closes the app as it is mounted).
        if self.is_mounted and self.query(SessionOptions):
            self._render_options(follow_current=moved)

    def set_current(self, session_id: str | None) -> None:
        """Mark another session as the open one."""
        self.load(self._summaries, session_id)

    def focus_search(self) -> None:
        """Put the cursor in the search field."""
        self.query_one("#session-search", Input).focus()

    def focus_list(self) -> None:
        """Focus the list of sessions (its keys: Enter opens, n, r, d, /)."""
        self.options.focus()

    def clear_filter(self) -> bool:
        """Empty the search field; False when it was empty already (nothing to clear)."""
        search = self.query_one("#session-search", Input)
        if not search.value:
            return False
        search.value = ""
        return True

    def request_new(self) -> None:
        self.post_message(self.NewRequested(self))

    def request_rename(self) -> None:
        if (session_id := self.highlighted_id) is not None:
            self.post_message(self.RenameRequested(self, session_id))

    def request_delete(self) -> None:
        if (session_id := self.highlighted_id) is not None:
            self.post_message(self.DeleteRequested(self, session_id))

    # -- rendering -----------------------------------------------------------------------

    def _matches(self, summary: SessionSummary) -> bool:
        if not self._filter:
            return True
        haystack = f"{summary.title} #{summary.number}".casefold()
        return all(word in haystack for word in self._filter.casefold().split())

    def _prompt(self, summary: SessionSummary, now: float) -> Content:
        current = summary.id == self.current_id
        turns = f"{summary.turn_count} turn{'' if summary.turn_count == 1 else 's'}"
        meta = f"#{summary.number} · {turns} · {_when(summary.updated_at, now)}"
        return Content.assemble(
            ("● " if current else "  ", "$accent"),
            (_one_line(summary.title), "bold" if current else ""),
            "\n  ",
            (meta, "$text-muted"),
        )

    def _render_options(self, *, follow_current: bool = False) -> None:
        """Fill the list; the highlight stays where the user put it unless another session was opened."""
        options = self.options
        now = self._clock()
        keep = options.highlighted_option.id if options.highlighted_option is not None else None
        shown = [s for s in self._summaries if self._matches(s)]
        options.set_options(Option(self._prompt(s, now), id=s.id) for s in shown)
        ids = [s.id for s in shown]
        for wanted in (self.current_id, keep) if follow_current or keep is None else (keep, self.current_id):
            if wanted in ids:
                options.highlighted = ids.index(wanted)
                break
        else:
            options.highlighted = 0 if ids else None
        self.query("#session-rename, #session-delete").set(disabled=not ids)

    # -- events --------------------------------------------------------------------------

    @on(Input.Changed, "#session-search")
    def _filter_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._filter = event.value.strip()
        self._render_options()

    @on(Input.Submitted, "#session-search")
    def _search_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        query = event.value.strip()
        if query:
            self.post_message(self.SearchRequested(self, query))

    @on(OptionList.OptionSelected, "#session-options")
    def _option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id is not None:
            self.post_message(self.Selected(self, event.option.id))

    @on(OptionList.OptionHighlighted, "#session-options")
    def _option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        event.stop()

    @on(Button.Pressed, "#session-new")
    def _new_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.request_new()

    @on(Button.Pressed, "#session-rename")
    def _rename_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.request_rename()

    @on(Button.Pressed, "#session-delete")
    def _delete_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.request_delete()

    def on_key(self, event: events.Key) -> None:
        # From the search field, Down moves into the list. (Escape, which clears the
        # filter, is the screen's key: see `clear_filter`.)
        search = self.query_one("#session-search", Input)
        if not search.has_focus:
            return
        if event.key == "down" and self.options.option_count:
            event.stop()
            self.options.focus()
        elif event.key == "escape" and search.value:
            event.stop()
            search.value = ""
