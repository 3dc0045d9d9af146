"""Full-text search across every session: type, see matching turns, open one."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from glmchat.errors import GlmChatError
from glmchat.sanitize import inert

if TYPE_CHECKING:
    from glmchat.store import SearchHit, Store

FIELD_LABELS = {"user_text": "you", "user": "you", "content": "answer", "reasoning": "reasoning"}
"""How each searched field is named to the user."""

SEARCH_DELAY = 0.2
"""Seconds of no typing before the search runs again."""


@dataclass(frozen=True)
class SearchTarget:
    """Where a chosen hit is: the turn, which of its texts matched, and the matched words."""

    session_id: str
    turn_id: str
    field: str = ""
    """"user_text", "content" or "reasoning" (as `SearchHit.field`)."""
    match: str = ""
    """The first matched word, as it is written in the text."""
    context: str = ""
    """The snippet around it, without the ellipses (to tell one occurrence from another)."""

    @classmethod
    def from_hit(cls, hit: SearchHit) -> SearchTarget:
        snippet = hit.snippet
        match = ""
        if hit.highlights:
            start, end = min(hit.highlights)
            match = snippet[start:end]
        return cls(hit.session_id, hit.turn_id, hit.field, match, snippet.strip("…"))


def hit_prompt(hit: SearchHit) -> Content:
    """Two lines for a hit: the session and where it matched, then the snippet with matches marked.

    Everything from the store is untrusted text: it is made inert piece by piece
    (so the match offsets still line up) and never parsed as markup.
    """
    where = FIELD_LABELS.get(hit.field, hit.field)
    number = f" #{hit.session_number}" if hit.session_number else ""
    title = " ".join(inert(hit.title).split()) or "Untitled"
    # Tabs and line breaks become spaces (same length, so the offsets hold).
    snippet = hit.snippet.replace("\n", " ").replace("\t", " ").replace("\r", " ")
    parts: list[tuple[str, str] | str] = [
        (title, "bold"),
        (number, "$text-muted"),
        "  ",
        (f"[{where}]", "$accent"),
        "\n  ",
    ]
    position = 0
    for start, end in sorted(hit.highlights):
        start, end = max(start, position), min(end, len(snippet))
        if start >= end:
            continue
        parts.append(inert(snippet[position:start]))
        parts.append((inert(snippet[start:end]), "bold $text-accent underline"))
        position = end
    parts.append(inert(snippet[position:]))
    return Content.assemble(*parts)


class SearchScreen(ModalScreen["SearchTarget | None"]):
    """Search every session's turns; dismisses with a `SearchTarget` or None.

    | Key(s) | Description |
    | :- | :- |
    | enter | Search now (in the field), open the hit (in the list). |
    | down | From the field to the results. |
    | escape | Close. |
    """

    DEFAULT_CSS = """
    SearchScreen {
        align: center middle;
        background: $background 70%;
    }
    SearchScreen > #dialog {
        width: 100;
        max-width: 100%;
        height: 90%;
        max-height: 40;
        padding: 0 1;
        border: thick $primary 60%;
        background: $surface;
    }
    SearchScreen #status {
        color: $text-muted;
        height: auto;
        padding: 0 1;
    }
    SearchScreen #hits {
        height: 1fr;
        border: none;
        background: transparent;
    }
    SearchScreen #hits > .option-list--option {
        padding: 0 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "Close", id="search-close")]

    def __init__(self, store: Store, query: str = "") -> None:
        """Create the screen.

        Args:
            store: where to search (``Store.search``).
            query: the text to search for at once (e.g. from the sidebar's field).
        """
        super().__init__()
        self.store = store
        self.query_text = query
        self.hits: list[SearchHit] = []
        self._shown_query: str | None = None
        """The query whose hits are on screen."""
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Input(self.query_text, placeholder="Search all sessions", id="query")
            yield Static("", id="status", markup=False)
            yield OptionList(id="hits", markup=False)

    def on_mount(self) -> None:
        self.query_one("#query", Input).focus()
        if self.query_text.strip():
            self.run_search(self.query_text)
        else:
            self._set_status("Type to search every session (your messages, answers and reasoning).")

    def _set_status(self, text: str) -> None:
        self.query_one("#status", Static).update(text)

    # -- searching -----------------------------------------------------------------------

    @work(exclusive=True, group="search", thread=True, exit_on_error=False)
    def run_search(self, query: str) -> list[SearchHit]:
        """Run the query in a thread (SQLite may take a moment on a big store) and show the hits."""
        try:
            hits = self.store.search(query)
        except GlmChatError as exc:
            self.app.call_from_thread(self._set_status, f"Search failed: {exc}")
            return []
        self.app.call_from_thread(self._show_hits, query, hits)
        return hits

    def _show_hits(self, query: str, hits: Sequence[SearchHit]) -> None:
        if query.strip() != self.query_one("#query", Input).value.strip():
            return  # the user typed on; a newer search is coming
        self.hits = list(hits)
        self._shown_query = query.strip()
        options = self.query_one("#hits", OptionList)
        options.set_options(Option(hit_prompt(hit), id=str(i)) for i, hit in enumerate(self.hits))
        if hits:
            count = len(hits)
            self._set_status(f"{count} match{'' if count == 1 else 'es'} · Enter opens")
            options.highlighted = 0
        else:
            self._set_status(f"No matches for {' '.join(inert(query).split())!r}.")

    @on(Input.Changed, "#query")
    def _query_changed(self, event: Input.Changed) -> None:
        if self._timer is not None:
            self._timer.stop()
        query = event.value
        if not query.strip():
            self.query_one("#hits", OptionList).clear_options()
            self.hits = []
            self._shown_query = None
            self._set_status("Type to search every session (your messages, answers and reasoning).")
            return
        self._timer = self.set_timer(SEARCH_DELAY, lambda: self.run_search(query))

    @on(Input.Submitted, "#query")
    def _query_submitted(self, event: Input.Submitted) -> None:
        if self._timer is not None:
            self._timer.stop()
        options = self.query_one("#hits", OptionList)
        query = event.value.strip()
        if not query:
            return
        if query == self._shown_query and self.hits and options.highlighted is not None:
            # The hits on screen are for this query: Enter opens the highlighted one.
            self._open(options.highlighted)
        else:
            self.run_search(query)

    def on_key(self, event: events.Key) -> None:
        options = self.query_one("#hits", OptionList)
        if event.key == "down" and self.query_one("#query", Input).has_focus and options.option_count:
            event.stop()
            options.focus()

    # -- choosing ------------------------------------------------------------------------

    @on(OptionList.OptionSelected, "#hits")
    def _hit_selected(self, event: OptionList.OptionSelected) -> None:
        self._open(event.option_index)

    def _open(self, index: int) -> None:
        self.dismiss(SearchTarget.from_hit(self.hits[index]))

    def action_close(self) -> None:
        """Dismiss with None."""
        self.dismiss(None)
