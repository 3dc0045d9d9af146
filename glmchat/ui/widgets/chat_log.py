"""The chat log: turn views in a stream layout, the newest at the bottom.

A frame costs time in proportion to the widgets mounted (textual-notes §1.4),
so only a window of the session's turns is mounted: a session opens with its
last few turns; scrolling to the top pages older turns in above, and once the
window holds more than `MAX_MOUNTED` turns the ones furthest below are
unmounted (and paged back in when the user scrolls down to them). However
long the session, the log holds a bounded number of widgets.

The log never takes focus: focusing a container restyles its whole subtree.
"""

from __future__ import annotations

import time
from typing import Callable

from textual.containers import VerticalScroll
from textual.content import Content
from textual.events import Click
from textual.widgets import Static

from typing import TYPE_CHECKING

from glmchat.session import Session, Turn

if TYPE_CHECKING:
    from glmchat.ui.widgets.turn import TurnView

PAGE = 8
"""Turns mounted per page scrolled in."""

FIRST_PAGE = 2
"""Turns mounted when the log comes back to the end of the session (on send)."""

FIRST_FRAME = 1
"""Turns mounted when a session opens, before its first frame: the last one,
the turn the user comes back for. The turns above it are paged in right after
that frame (while the log keeps following the bottom) until the screen is full."""

MAX_MOUNTED = 3 * PAGE
"""Turns mounted at most; paging in beyond it unmounts turns at the other end."""

KEEP_ON_SEND = 2
"""Turns left mounted above a new turn: the log follows the new turn at the
bottom, so a stream costs the same at turn 20 as at turn 1."""


class PageMarker(Static):
    """The line above (or below) the mounted turns when more turns are there, unmounted."""

    DEFAULT_CSS = """
    PageMarker {
        height: 1;
        width: 1fr;
        content-align: center middle;
    }
    """

    def __init__(self, *, later: bool, id: str) -> None:
        super().__init__("", id=id)
        self.later = later
        self.display = False

    def show_count(self, count: int) -> None:
        self.display = count > 0
        if count:
            arrow, where, how = ("▼", "later", "down") if self.later else ("▲", "earlier", "up")
            self.update(
                Content.styled(
                    f"{arrow} {count:,} {where} turn{'s' if count != 1 else ''} — scroll {how} or click to show more",
                    "$text-muted",
                )
            )

    def on_click(self, event: Click) -> None:
        event.stop()
        log = self.parent
        if isinstance(log, ChatLog):
            if self.later:
                log.load_later()
            else:
                log.load_earlier()


WELCOME_KEYS = (
    ("Enter", "send"),
    ("Ctrl+J", "new line (Alt+Enter too)"),
    ("Ctrl+T", "thinking on/off for the next message"),
    ("Ctrl+B", "sessions"),
    ("Ctrl+P", "every action, by name"),
    ("F1", "all keys"),
)
"""The keys an empty chat lists (the full list is F1's)."""


def welcome_content(host_name: str, model: str, *, can_toggle_thinking: bool = True) -> Content:
    """What an empty chat shows: where messages go, the keys that matter, how thinking is switched."""
    if can_toggle_thinking:
        thinking = (
            "Thinking is chosen per message: Ctrl+T, or a click on the switch under the "
            "message box, turns it on or off for the next one."
        )
    else:
        thinking = f"{host_name} decides about thinking itself: it cannot be switched per message here."
    width = max(len(key) for key, _ in WELCOME_KEYS) + 3
    parts: list[tuple[str, str] | str] = [
        ("glmchat", "bold $text-primary"),
        (" · ", "$text-muted"),
        (host_name, "bold"),
        (" · ", "$text-muted"),
        model,
        "\n\n",
        "Type a message below and press Enter. ",
        thinking,
        "\n",
    ]
    for key, what in WELCOME_KEYS:
        parts.extend(["\n  ", (key.ljust(width), "bold $text-accent"), (what, "$text-muted")])
    return Content.assemble(*parts)


class Welcome(Static):
    """Shown in an empty chat; gone with the first turn."""

    DEFAULT_CSS = """
    Welcome {
        height: auto;
        width: 1fr;
        padding: 1 1;
    }
    """


class ChatLog(VerticalScroll, can_focus=False):
    """Turns of the open session, a window of them mounted."""

    DEFAULT_CSS = """
    ChatLog {
        layout: stream;
        height: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.session: Session | None = None
        self._first_mounted = 0
        """Index in session.turns of the oldest mounted turn."""
        self._end_mounted = 0
        """Index in session.turns just past the newest mounted turn."""
        self._earlier = PageMarker(later=False, id="earlier")
        self._later = PageMarker(later=True, id="later")
        self._loading = False
        self.fold_state: dict[str, bool] = {}
        """Turn id -> the user's fold choice (shared with the screen, survives switching sessions)."""
        self.clock: Callable[[], float] = time.time
        self.host_name = ""
        self._welcome: Welcome | None = None

    # -- building ------------------------------------------------------------------------

    def make_view(self, turn: Turn, *, live: bool = False, last: bool = False, first_frame: bool = False) -> TurnView:
        # Lazy import: an empty session's first frame needs no turn widgets (nor Markdown).
        from glmchat.ui.widgets.turn import TurnView

        return TurnView(
            turn,
            live=live,
            expanded=self.fold_state.get(turn.id),
            last=last,
            clock=self.clock,
            host_name=self.host_name,
            defer_highlight=first_frame,
            branch=self.session.branches.get(turn.id) if self.session is not None else None,
        )

    def _is_last(self, turn: Turn) -> bool:
        return self.session is not None and bool(self.session.turns) and self.session.turns[-1] is turn

    async def show_session(self, session: Session, *, skip_last: bool = False) -> None:
        """Show a session: its last few turns, and a marker if there are more.

        Args:
            session: The session to show.
            skip_last: Leave the last turn out (the caller mounts a live view for it).
        """
        self.session = session
        end = len(session.turns) - (1 if skip_last and session.turns else 0)
        await self._show_window(max(end - FIRST_FRAME, 0), end, first_frame=True)
        self.scroll_end(animate=False, immediate=True)
        self.anchor()
        self.call_after_refresh(self._fill_screen)

    async def _show_window(self, start: int, end: int, *, first_frame: bool = False) -> None:
        assert self.session is not None
        turns = self.session.turns
        self._first_mounted, self._end_mounted = start, end
        views = [self.make_view(t, last=self._is_last(t), first_frame=first_frame) for t in turns[start:end]]
        with self.app.batch_update():
            await self.remove_children()
            self._welcome = None
            self._earlier = PageMarker(later=False, id="earlier")
            self._later = PageMarker(later=True, id="later")
            await self.mount(self._earlier)
            if views:
                await self.mount_all(views)
            await self.mount(self._later)
            self._update_markers()

    def _update_markers(self) -> None:
        self._earlier.show_count(self._first_mounted)
        self._later.show_count(self.later_count)

    def _fill_screen(self) -> None:
        """Page in older turns while the log does not fill its height yet."""
        if self.has_earlier and self.virtual_size.height <= self.size.height:
            self.load_earlier()

    @property
    def has_earlier(self) -> bool:
        return self._first_mounted > 0

    @property
    def later_count(self) -> int:
        """Turns after the mounted ones that are not mounted (0 when the window reaches the end)."""
        if self.session is None:
            return 0
        return max(len(self.session.turns) - self._end_mounted, 0)

    @property
    def has_later(self) -> bool:
        return self.later_count > 0

    @property
    def mounted_views(self) -> list[TurnView]:
        return list(self.query_children("TurnView"))

    def view_for(self, turn_id: str) -> TurnView | None:
        for view in self.query_children("TurnView"):
            if view.turn.id == turn_id:
                return view
        return None

    async def show_welcome(self, content: Content) -> None:
        """Show the welcome (an empty session); `add_view` takes it away."""
        if self._welcome is not None and self._welcome.is_attached:
            self._welcome.update(content)
            return
        self._welcome = Welcome(content, id="welcome")
        await self.mount(self._welcome, before=self._later)

    @property
    def welcome_shown(self) -> bool:
        return self._welcome is not None and self._welcome.is_attached

    async def add_view(self, view: TurnView) -> TurnView:
        """Mount the view of the session's newest turn at the bottom and follow it."""
        if self._welcome is not None:
            welcome, self._welcome = self._welcome, None
            if welcome.is_attached:
                await welcome.remove()
        index = len(self.session.turns) - 1 if self.session is not None else self._end_mounted
        if self._end_mounted < index:
            # The window is up in the history: come back to the end first.
            await self._show_window(max(index - FIRST_PAGE, 0), index)
        for other in self.query_children("TurnView"):
            other.set_last(False)
        # Counted as mounted before the mount starts: a scroll to the bottom while it runs
        # must not page this turn in a second time (see `watch_scroll_y`).
        self._end_mounted = index + 1
        await self.mount(view, before=self._later)
        await self._prune(from_top=True, keep=KEEP_ON_SEND)
        self._update_markers()
        self.anchor()
        self.scroll_end(animate=False)
        return view

    async def remove_view(self, turn_id: str) -> None:
        view = self.view_for(turn_id)
        if view is not None:
            await view.remove()
            if self.session is not None:
                self._end_mounted = min(self._end_mounted, len(self.session.turns))
        views = self.mounted_views
        if views:
            views[-1].set_last(self._is_last(views[-1].turn))
        self._update_markers()

    # -- paging --------------------------------------------------------------------------

    def load_earlier(self) -> None:
        """Mount the previous page of turns above the oldest one shown (keeps the view still)."""
        if self._loading or not self.has_earlier or self.session is None:
            return
        self._loading = True
        self.run_worker(self._load_earlier(), exclusive=True, group="page")

    def load_later(self) -> None:
        """Mount the next page of turns below the newest one shown."""
        if self._loading or not self.has_later or self.session is None:
            return
        self._loading = True
        self.run_worker(self._load_later(), exclusive=True, group="page")

    async def _load_earlier(self) -> None:
        try:
            session = self.session
            assert session is not None
            end = self._first_mounted
            start = max(end - PAGE, 0)
            views = [self.make_view(t) for t in session.turns[start:end]]
            old_y = max(self.scroll_y, 0)
            # At the bottom, or everything fits (then scroll_y may even be below 0): stay at
            # the bottom, so the newest turn stays whole on screen while older ones come in above.
            follow = (self.max_scroll_y <= 0 or old_y >= self.max_scroll_y) and not self.has_later
            self._first_mounted = start
            with self.app.batch_update():
                await self.mount_all(views, after=self._earlier)
                await self._prune(from_top=False)
                self._update_markers()
            if self.has_later:
                self.anchor(False)

            def keep_position() -> None:
                if follow:
                    self.scroll_end(animate=False, immediate=True)
                else:
                    # Everything above the old top moved down by what was added.
                    added = sum(view.outer_size.height for view in views)
                    self.scroll_to(y=old_y + max(added, 0), animate=False, immediate=True)
                self._loading = False
                self._fill_screen()

            self.call_after_refresh(keep_position)
        except Exception:
            self._loading = False
            raise

    async def _load_later(self) -> None:
        try:
            session = self.session
            assert session is not None
            start = self._end_mounted
            end = min(start + PAGE, len(session.turns))
            views = [self.make_view(t, last=self._is_last(t)) for t in session.turns[start:end]]
            old_y = self.scroll_y
            removed_height = 0
            with self.app.batch_update():
                await self.mount_all(views, before=self._later)
                self._end_mounted = end
                removed_height = await self._prune(from_top=True)
                self._update_markers()

            def keep_position() -> None:
                self.scroll_to(y=max(old_y - removed_height, 0), animate=False, immediate=True)
                self._loading = False
                if not self.has_later:
                    self.anchor()

            self.call_after_refresh(keep_position)
        except Exception:
            self._loading = False
            raise

    async def _prune(self, *, from_top: bool, keep: int = MAX_MOUNTED) -> int:
        """Unmount turns beyond `keep` at one end; returns the height removed (from the top)."""
        views = self.mounted_views
        excess = len(views) - keep
        if excess <= 0:
            return 0
        doomed = views[:excess] if from_top else views[-excess:]
        # A streaming turn stays mounted: its view is what the stream feeds.
        doomed = [view for view in doomed if not view.live]
        if not doomed:
            return 0
        height = sum(view.outer_size.height for view in doomed) if from_top else 0
        if from_top:
            self._first_mounted += len(doomed)
        else:
            self._end_mounted -= len(doomed)
        await self.remove_children(doomed)
        settle = getattr(self.app, "request_settle", None)
        if settle is not None:
            settle()
        return height

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if self._loading:
            return
        if new_value <= 0 and old_value > 0 and self.has_earlier:
            self.load_earlier()
        elif new_value >= self.max_scroll_y and old_value < new_value and self.has_later:
            self.load_later()

    def rebase(self, added: int) -> None:
        """Older turns were put in front of session.turns (the rest of a partly loaded session)."""
        self._first_mounted += added
        self._end_mounted += added
        self._update_markers()

    async def reveal(self, turn_id: str) -> TurnView | None:
        """The view of a turn, moving the window of mounted turns to it if needed."""
        view = self.view_for(turn_id)
        if view is not None or self.session is None:
            return view
        index = next((i for i, t in enumerate(self.session.turns) if t.id == turn_id), None)
        if index is None:
            return None
        start = max(index - PAGE // 2, 0)
        end = min(start + PAGE, len(self.session.turns))
        await self._show_window(start, end)
        if self.has_later:
            self.anchor(False)
        return self.view_for(turn_id)

    # -- folding -------------------------------------------------------------------------

    def set_all_expanded(self, expanded: bool) -> None:
        """Fold or unfold every turn's reasoning, mounted or not."""
        if self.session is not None:
            for turn in self.session.turns:
                if turn.reasoning or turn.status == "streaming":
                    self.fold_state[turn.id] = expanded
        for view in self.query_children("TurnView"):
            if view.reasoning.display:
                view.set_expanded(expanded)
                self.fold_state[view.turn.id] = expanded

    def any_expanded(self) -> bool:
        return any(view.reasoning.display and view.expanded for view in self.query_children("TurnView"))
