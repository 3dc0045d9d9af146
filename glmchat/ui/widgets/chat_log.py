"""The chat log: turn views in a stream layout, the newest at the bottom.

A frame costs time in proportion to the widgets mounted (textual-notes §1.4),
so a session opens with only its last `PAGE` turns mounted; older ones are
paged in, a page at a time, when the user scrolls to the top (or clicks the
marker there). The log never takes focus: focusing a container restyles its
whole subtree.
"""

from __future__ import annotations

import time
from typing import Callable

from textual.containers import VerticalScroll
from textual.content import Content
from textual.events import Click
from textual.widgets import Static

from glmchat.session import Session, Turn
from glmchat.ui.widgets.turn import TurnView

PAGE = 12
"""Turns mounted per page scrolled in."""

FIRST_PAGE = 4
"""Turns mounted when a session opens: enough for the first frame; more follow
right after it if they do not fill the screen."""


class EarlierMarker(Static):
    """The line at the top of a log with unmounted older turns."""

    DEFAULT_CSS = """
    EarlierMarker {
        height: 1;
        width: 1fr;
        content-align: center middle;
    }
    """

    def on_click(self, event: Click) -> None:
        event.stop()
        log = self.parent
        if isinstance(log, ChatLog):
            log.load_earlier()


class ChatLog(VerticalScroll, can_focus=False):
    """Turns of the open session."""

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
        self._marker = EarlierMarker("", id="earlier")
        self._loading = False
        self.fold_state: dict[str, bool] = {}
        """Turn id -> the user's fold choice (shared with the screen, survives switching sessions)."""
        self.clock: Callable[[], float] = time.time
        self.host_name = ""

    # -- building ------------------------------------------------------------------------

    def make_view(self, turn: Turn, *, live: bool = False, last: bool = False) -> TurnView:
        return TurnView(
            turn,
            live=live,
            expanded=self.fold_state.get(turn.id),
            last=last,
            clock=self.clock,
            host_name=self.host_name,
        )

    async def show_session(self, session: Session, *, skip_last: bool = False) -> None:
        """Show a session: its last PAGE turns, and a marker if there are more.

        Args:
            session: The session to show.
            skip_last: Leave the last turn out (the caller mounts a live view for it).
        """
        self.session = session
        turns = session.turns[:-1] if skip_last else session.turns
        self._first_mounted = max(len(turns) - FIRST_PAGE, 0)
        last_id = session.turns[-1].id if session.turns else None
        views = [self.make_view(t, last=t.id == last_id) for t in turns[self._first_mounted :]]
        with self.app.batch_update():
            await self.remove_children()
            self._marker = EarlierMarker(self._marker_text(), id="earlier")
            self._marker.display = self._first_mounted > 0
            await self.mount(self._marker)
            if views:
                await self.mount_all(views)
        self.scroll_end(animate=False, immediate=True)
        self.anchor()
        self.call_after_refresh(self._fill_screen)

    def _fill_screen(self) -> None:
        """Page in older turns while the log does not fill its height yet."""
        if self.has_earlier and self.virtual_size.height <= self.size.height:
            self.load_earlier()

    def _marker_text(self) -> Content:
        count = self._first_mounted
        return Content.styled(
            f"▲ {count:,} earlier turn{'s' if count != 1 else ''} — scroll up or click to show more",
            "$text-muted",
        )

    @property
    def has_earlier(self) -> bool:
        return self._first_mounted > 0

    @property
    def mounted_views(self) -> list[TurnView]:
        return list(self.query_children(TurnView))

    def view_for(self, turn_id: str) -> TurnView | None:
        for view in self.query_children(TurnView):
            if view.turn.id == turn_id:
                return view
        return None

    async def add_view(self, view: TurnView) -> TurnView:
        """Mount a view at the bottom (a new turn) and follow it."""
        for other in self.query_children(TurnView):
            other.set_last(False)
        await self.mount(view)
        self.anchor()
        self.scroll_end(animate=False)
        return view

    async def remove_view(self, turn_id: str) -> None:
        view = self.view_for(turn_id)
        if view is not None:
            await view.remove()
        views = self.mounted_views
        if views:
            views[-1].set_last(True)

    # -- paging --------------------------------------------------------------------------

    def load_earlier(self) -> None:
        """Mount the previous page of turns above the oldest one shown (keeps the view still)."""
        if self._loading or not self.has_earlier or self.session is None:
            return
        self._loading = True
        self.run_worker(self._load_earlier(), exclusive=True, group="page-earlier")

    async def _load_earlier(self) -> None:
        try:
            session = self.session
            assert session is not None
            end = self._first_mounted
            start = max(end - PAGE, 0)
            views = [self.make_view(t) for t in session.turns[start:end]]
            before_height = self.virtual_size.height
            old_y = self.scroll_y
            self._first_mounted = start
            first = self.query_children(TurnView).first() if self.query_children(TurnView) else None
            with self.app.batch_update():
                if first is not None:
                    await self.mount_all(views, before=first)
                else:
                    await self.mount_all(views)
                self._marker.update(self._marker_text())
                self._marker.display = self.has_earlier

            def keep_position() -> None:
                added = self.virtual_size.height - before_height
                self.scroll_to(y=old_y + max(added, 0), animate=False, immediate=True)
                self._loading = False
                self._fill_screen()

            self.call_after_refresh(keep_position)
        except Exception:
            self._loading = False
            raise

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value <= 0 and old_value > 0 and self.has_earlier and not self._loading:
            self.load_earlier()

    def rebase(self, added: int) -> None:
        """Older turns were put in front of session.turns (the rest of a partly loaded session)."""
        self._first_mounted += added
        self._marker.update(self._marker_text())
        self._marker.display = self.has_earlier

    async def reveal(self, turn_id: str) -> TurnView | None:
        """The view of a turn, mounting it (and every turn after it) if it was paged out."""
        view = self.view_for(turn_id)
        if view is not None or self.session is None:
            return view
        index = next((i for i, t in enumerate(self.session.turns) if t.id == turn_id), None)
        if index is None or index >= self._first_mounted:
            return None
        views = [self.make_view(t) for t in self.session.turns[index : self._first_mounted]]
        first = self.query_children(TurnView).first() if self.query_children(TurnView) else None
        self._first_mounted = index
        with self.app.batch_update():
            if first is not None:
                await self.mount_all(views, before=first)
            else:
                await self.mount_all(views)
            self._marker.update(self._marker_text())
            self._marker.display = self.has_earlier
        return views[0]

    # -- folding -------------------------------------------------------------------------

    def set_all_expanded(self, expanded: bool) -> None:
        """Fold or unfold every turn's reasoning, mounted or not."""
        if self.session is not None:
            for turn in self.session.turns:
                if turn.reasoning or turn.status == "streaming":
                    self.fold_state[turn.id] = expanded
        for view in self.query_children(TurnView):
            if view.reasoning.display:
                view.set_expanded(expanded)
                self.fold_state[view.turn.id] = expanded

    def any_expanded(self) -> bool:
        return any(view.reasoning.display and view.expanded for view in self.query_children(TurnView))
