"""One turn on screen: the user's message, the reasoning pane, the answer, a status line.

Streaming goes through `TurnView.feed`, which only appends to lists (O(1) per
event, no UI call), and a 30 Hz timer (`flush`) that moves what arrived onto
the screen in one go. The timer skips ticks when a flush runs long, so the
rate adapts by itself to a slow terminal.
"""

from __future__ import annotations

import gc
import time
from typing import Callable

from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Static

from glmchat.protocol.events import ContentDelta, Event, Finish, ReasoningDelta, Retrying, StreamFailed
from glmchat.sanitize import inert
from glmchat.session import Branch, Turn, TurnStatus
from glmchat.usage import estimate_tokens

from glmchat.ui.widgets.answer import AnswerView
from glmchat.ui.widgets.pager import PageBar, Pages, needs_pages
from glmchat.ui.widgets.reasoning import ReasoningPane, format_seconds
from glmchat.ui.widgets.steps import StepsView
from glmchat.usage import TokenCount, token_split, turn_cockpit

FLUSH_INTERVAL = 1 / 30
"""Seconds between timer ticks while streaming: the fastest the screen is updated."""

SLOWEST_INTERVAL = 0.25
"""The longest the screen waits between updates while text keeps arriving."""

CPU_BUDGET = 0.16
"""Share of one core the process may use while streaming before updates are spaced out.

A frame costs about the same for one token as for a hundred (layout and
scrolling dominate), so on a fast host fewer, fuller frames keep the app light;
on a slow host frames stay at the fastest rate, since each one is cheap then.
The last text of a turn is drawn at once when the stream ends, whatever the rate."""

FLUSH_LIMIT = 12_000
"""Characters a timer flush moves to the screen at most; the rest waits for the next tick.

After a stall (a slow frame, a burst from the host) the backlog can be tens of
kilobytes: drawn in one go, that frame blocks the app for ~200 ms and Esc waits.
The flush on Finish and on `finish` still draws everything."""

USER_PAGE = 6_000
"""Characters of a long user message shown at a time (the whole text is stored and sent)."""

REASONING_PAGE = 16_000
"""Characters of a long reasoning shown at a time when unfolded (about 600 lines at 100 columns)."""

ANSWER_PAGE = 16_000
"""Characters of a long stored answer parsed and shown at a time."""

ESTIMATE_SAMPLE = 1_000_000
"""Characters read to estimate the tokens of a longer text (the rest is counted in proportion)."""


def estimate_long(text: str) -> int:
    """`estimate_tokens`, from a sample when the text is long (the count is only shown, rounded)."""
    if len(text) <= ESTIMATE_SAMPLE:
        return estimate_tokens(text)
    return round(estimate_tokens(text[:ESTIMATE_SAMPLE]) * len(text) / ESTIMATE_SAMPLE)


def reasoning_title(turn: Turn, *, live: bool, tokens: TokenCount, now: float | None = None) -> str:
    """The pane title: "Thinking… ≈1,234 tokens · 3.1 s" live, "Thought for 3.1 s · 1,234 tokens" after.

    The count is the host's where it reported one, else an estimate, marked "≈"
    (always so while streaming: hosts report usage at the end).
    """
    if live:
        elapsed = None
        if turn.first_reasoning_at is not None and now is not None:
            elapsed = max(0.0, now - turn.first_reasoning_at)
        text = f"Thinking… {tokens} tokens"
        return f"{text} · {format_seconds(elapsed)}" if elapsed is not None else text
    seconds = turn.reasoning_seconds
    if seconds is None:
        return f"Reasoning · {tokens} tokens"
    return f"Thought for {format_seconds(seconds)} · {tokens} tokens"


def settled_reasoning_tokens(turn: Turn, reasoning_estimate: int, answer_estimate: int) -> TokenCount:
    """The reasoning figure of a turn that stopped thinking: reported, or estimated (see `token_split`)."""
    split = token_split(turn.usage, reasoning_estimate, answer_estimate)
    return split.reasoning or TokenCount(reasoning_estimate, estimated=True)


class UserMessage(Static):
    """The user's text with the turn's thinking flag."""

    DEFAULT_CSS = """
    UserMessage {
        height: auto;
    }
    """


class TurnFooter(Static):
    """A line under the answer: how the turn ended and what can be done with it.

    A turn with siblings (other branches from the same point) shows `‹ 2/3 ›`; its
    footer can then take the focus (Tab), and ← and → switch between the branches.
    """

    DEFAULT_CSS = """
    TurnFooter {
        height: auto;
        &:focus {
            background: $surface-lighten-1;
        }
    }
    """

    BINDINGS = [
        Binding("left", "turn('branch_previous')", "Previous branch", tooltip="Show the previous branch from this turn."),
        Binding("right", "turn('branch_next')", "Next branch", tooltip="Show the next branch from this turn."),
    ]

    def action_turn(self, action: str) -> None:
        """A click on one of the line's actions, or a key while it has focus."""
        view = self.parent
        if isinstance(view, TurnView):
            self.post_message(TurnView.ActionRequested(view, action))


class TurnView(Vertical):
    """One turn of the chat log.

    It has no keys of its own: letters typed while its reasoning pane has focus
    are text for the composer. Alt+C and Alt+K copy the answer of the turn in
    focus (see `ChatScreen.action_copy_answer`).
    """

    DEFAULT_CSS = """
    TurnView {
        height: auto;
        width: 1fr;
        layout: stream;
    }
    """

    class ActionRequested(Message):
        """The user asked for something on this turn: copy, copy_code, copy_reasoning, copy_message, retry,
        regenerate, edit, fork, branch_previous, branch_next."""

        def __init__(self, view: TurnView, action: str) -> None:
            super().__init__()
            self.view = view
            self.action = action

        @property
        def control(self) -> TurnView:
            return self.view

    class FoldChanged(Message):
        """The user folded or unfolded this turn's reasoning."""

        def __init__(self, view: TurnView, expanded: bool) -> None:
            super().__init__()
            self.view = view
            self.expanded = expanded

        @property
        def control(self) -> TurnView:
            return self.view

    def __init__(
        self,
        turn: Turn,
        *,
        live: bool = False,
        expanded: bool | None = None,
        last: bool = False,
        clock: Callable[[], float] = time.time,
        host_name: str = "",
        defer_highlight: bool = False,
        branch: Branch | None = None,
    ) -> None:
        """Create the view of a turn.

        Args:
            turn: The turn (for a live turn, the one `run_turn` is filling).
            live: The turn is streaming: use `feed` and `finish`.
            expanded: The user's fold choice for this turn (None: the default,
                open while thinking live, folded otherwise).
            last: This is the session's last turn (offers regenerate and edit).
            clock: Wall-clock time source, the same clock as the turn's timestamps.
            host_name: Shown in messages such as "retrying".
            defer_highlight: Highlight the answer's code right after the first frame
                (for the turns shown when a session opens).
            branch: Where the turn stands among its siblings (None: it has none).
        """
        super().__init__(id=f"turn-{turn.id}")
        self.turn = turn
        self._live = live
        self._clock = clock
        self._host_name = host_name
        self._user_choice = expanded
        self.last = last
        self.branch = branch
        self._pending_reasoning: list[str] = []
        self._pending_answer: list[str] = []
        self._reasoning_parts: list[str] = []
        self._reasoning_joined: str | None = None
        self._reasoning_tokens = 0
        self._answer_started = False
        self._retry: tuple[Retrying, float] | None = None
        self._status_dirty = False
        self._timer: Timer | None = None
        self._interval = FLUSH_INTERVAL
        self._next_draw = 0.0
        self._last_draw: tuple[float, float] | None = None
        self.flushes = 0
        """How many flushes drew something (for benchmarks and tests)."""

        # A text too long to lay out at once is shown by pages, with a bar to move between them.
        self.user_pages: PageBar | None = None
        self.reasoning_pages: PageBar | None = None
        self.answer_pages: PageBar | None = None

        user_text = turn.user_text
        if needs_pages(user_text, USER_PAGE):
            self.user_pages = PageBar(Pages(user_text, USER_PAGE), what="message")
            user_text = self.user_pages.pages.page(0)
        self.user_message = UserMessage(self._user_content(user_text), classes="user")
        has_reasoning = bool(turn.reasoning) or live
        if live:
            self.reasoning = ReasoningPane(self._reasoning_text, title="Thinking…", expanded=expanded is not False, live=True)
            self.reasoning.display = False
        else:
            tokens = settled_reasoning_tokens(turn, estimate_long(turn.reasoning), estimate_long(turn.content))
            self.reasoning = ReasoningPane(
                lambda: inert(turn.reasoning),
                title=reasoning_title(turn, live=False, tokens=tokens),
                expanded=bool(expanded),
            )
            self.reasoning.display = has_reasoning
            if needs_pages(turn.reasoning, REASONING_PAGE):
                self._page_reasoning(turn.reasoning)
        answer = "" if live else turn.content
        if needs_pages(answer, ANSWER_PAGE):
            # Only a stored answer: a streaming one is drawn by chunks as it comes.
            self.answer_pages = PageBar(Pages(answer, ANSWER_PAGE, markdown=True), what="answer")
            answer = self.answer_pages.pages.page(0)
        self.answer = AnswerView(inert(answer), live=live, defer_highlight=defer_highlight)
        self.steps = StepsView(turn, live=live)
        self.status = TurnFooter(self._status_content(), classes="status")
        self._apply_status_classes()
        self.status.can_focus = self._has_branches

    def compose(self):
        yield self.user_message
        if self.user_pages is not None:
            yield self.user_pages
        yield self.reasoning
        if self.reasoning_pages is not None:
            yield self.reasoning_pages
        if self._live or any(step.tool_calls or step.web_search for step in self.turn.steps):
            yield self.steps  # a plain stored turn (most of a long session) mounts no steps view
        yield self.answer
        if self.answer_pages is not None:
            yield self.answer_pages
        yield self.status

    def on_mount(self) -> None:
        if self._live:
            self._timer = self.set_interval(FLUSH_INTERVAL, self._tick)

    def _tick(self) -> None:
        """Timer: flush when due, and space the flushes out when the process runs hot."""
        now = time.monotonic()
        if now < self._next_draw:
            return
        if not (self._pending_reasoning or self._pending_answer):
            # Nothing new: keep live titles and countdowns ticking, and start the budget afresh.
            self.flush()
            self._last_draw = None
            return
        cpu = time.process_time()
        self.flush(limit=FLUSH_LIMIT)
        # What this flush made is there to stay (strips, spans, layout caches): out of the
        # collector's way, so the collections a stream triggers walk only what is new
        # (`GlmChatApp.settle_memory` thaws and collects once the turn is over).
        gc.freeze()
        last = self._last_draw
        if last is not None and now > last[0]:
            share = (cpu - last[1]) / (now - last[0])
            if share > CPU_BUDGET:
                self._interval = min(self._interval * 1.5, SLOWEST_INTERVAL)
            elif share < CPU_BUDGET / 2:
                self._interval = max(self._interval / 1.5, FLUSH_INTERVAL)
        self._last_draw = (now, cpu)
        self._next_draw = now + self._interval - FLUSH_INTERVAL / 2

    # -- streaming -----------------------------------------------------------------------

    @property
    def live(self) -> bool:
        return self._live

    def feed(self, event: Event) -> None:
        """Take one stream event. O(1): it only lands in a list; `flush` draws it.

        This is the `on_event` callback given to `glmchat.turn_runner.run_turn`.
        """
        kind = type(event)
        if kind is ReasoningDelta:
            self._pending_reasoning.append(event.text)  # type: ignore[union-attr]
        elif kind is ContentDelta:
            self._pending_answer.append(event.text)  # type: ignore[union-attr]
        elif kind is Retrying:
            self._retry = (event, self._clock() + event.delay)  # type: ignore[arg-type, union-attr]
            self._status_dirty = True
        else:
            if kind is StreamFailed:
                self._retry = None
            self._status_dirty = True
            if kind is Finish and self.is_attached:
                # The host is done: draw the rest now, before the turn is saved and settled.
                self.flush()
                self.steps.sync()  # a step's calls are complete once its stream finished

    def feed_existing(self, turn: Turn) -> None:
        """Prime a live view with what the turn received before the view existed."""
        if turn.reasoning:
            self._pending_reasoning.append(turn.reasoning)
        if turn.content:
            self._pending_answer.append(turn.content)

    def _reasoning_text(self) -> str:
        if self._reasoning_joined is None:
            self._reasoning_joined = "".join(self._reasoning_parts)
        return self._reasoning_joined

    def flush(self, limit: int | None = None) -> None:
        """Draw what arrived since the last flush (called by the timer, ~30 times a second).

        Args:
            limit: Characters to draw at most (None: everything); the rest stays pending.
        """
        drew = False
        if self._pending_reasoning:
            chunk = _take(self._pending_reasoning, limit)
            if limit is not None:
                limit = max(limit - len(chunk), 0)
            chunk = inert(chunk)
            if chunk:
                drew = True
                self._retry = None
                self._reasoning_parts.append(chunk)
                self._reasoning_joined = None
                self._reasoning_tokens += estimate_tokens(chunk)
                if not self.reasoning.display:
                    self.reasoning.display = True
                self.reasoning.append(chunk)
        # The answer waits while reasoning is still pending: it must start below all of it.
        if self._pending_answer and not self._pending_reasoning and limit != 0:
            chunk = inert(_take(self._pending_answer, limit))
            if chunk:
                drew = True
                self._retry = None
                if not self._answer_started:
                    self._answer_started = True
                    self._end_live_reasoning()
                self.answer.append(chunk)
        if self.reasoning.live and self.reasoning.display:
            self.reasoning.title = reasoning_title(
                self.turn, live=True, tokens=TokenCount(self._reasoning_tokens, estimated=True), now=self._clock()
            )
        if self._status_dirty or self._retry is not None:
            self._status_dirty = False
            self._refresh_status()
        if drew:
            self.flushes += 1

    def _end_live_reasoning(self) -> None:
        """The answer started: fold the reasoning (unless the user chose otherwise)."""
        pane = self.reasoning
        if not pane.live:
            return
        pane.end_live(self._reasoning_text)
        if sum(map(len, self._reasoning_parts)) > 2 * REASONING_PAGE:
            bar = self._page_reasoning(self._reasoning_text())
            if self.is_attached:
                self.mount(bar, after=pane)
        pane.title = reasoning_title(self.turn, live=False, tokens=self._settled_reasoning_tokens())
        if self._user_choice is None and pane.expanded:
            pane.expanded = False

    def finish(self) -> None:
        """The stream is over (done, stopped or failed): draw the rest and settle the view."""
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.flush()
        self._live = False
        self._retry = None
        self._end_live_reasoning()
        if self.reasoning.display:
            self.reasoning.title = reasoning_title(self.turn, live=False, tokens=self._settled_reasoning_tokens())
        self.answer.finish()
        self.steps.sync(live=False)
        self._refresh_status()

    def _settled_reasoning_tokens(self) -> TokenCount:
        # Estimated from the whole text, once: the running count made while streaming adds
        # up per-flush roundings. (The answer's estimate only matters once the host reported
        # its total, at the end, when the turn's text is joined.)
        return settled_reasoning_tokens(
            self.turn, estimate_long(self._reasoning_text()), estimate_long(self.turn.content)
        )

    # -- folding -------------------------------------------------------------------------

    @property
    def expanded(self) -> bool:
        return self.reasoning.expanded

    def set_expanded(self, expanded: bool) -> None:
        """Fold or unfold the reasoning (from fold-all)."""
        self._user_choice = expanded
        self.reasoning.expanded = expanded
        self._sync_reasoning_bar()

    def on_reasoning_pane_toggled(self, message: ReasoningPane.Toggled) -> None:
        message.stop()
        self._user_choice = message.expanded
        self._sync_reasoning_bar()
        self.post_message(self.FoldChanged(self, message.expanded))

    # -- pages of long texts ---------------------------------------------------------------

    class Paged(Message):
        """The user moved to another page of one of this turn's texts (shown in `widget`)."""

        def __init__(self, view: TurnView, widget: Widget) -> None:
            super().__init__()
            self.view = view
            self.widget = widget

        @property
        def control(self) -> TurnView:
            return self.view

    def _page_reasoning(self, text: str) -> PageBar:
        """Show the reasoning by pages from now on; returns the bar (mounted by the caller if need be)."""
        bar = PageBar(Pages(text, REASONING_PAGE), what="reasoning")
        self.reasoning_pages = bar
        self.reasoning.set_text(lambda: inert(bar.pages.page(bar.page)))
        bar.display = self.reasoning.expanded
        return bar

    def _sync_reasoning_bar(self) -> None:
        if self.reasoning_pages is not None:
            self.reasoning_pages.display = self.reasoning.expanded and self.reasoning.display

    def on_page_bar_changed(self, message: PageBar.Changed) -> None:
        message.stop()
        bar, page = message.bar, message.page
        shown: Widget
        if bar is self.user_pages:
            self.user_message.update(self._user_content(bar.pages.page(page)))
            shown = self.user_message
        elif bar is self.reasoning_pages:
            self.reasoning.set_text(lambda: inert(bar.pages.page(bar.page)))
            shown = self.reasoning
        elif bar is self.answer_pages:
            self.answer.replace(inert(bar.pages.page(page)))
            shown = self.answer
        else:
            return
        self.post_message(self.Paged(self, shown))

    def on_page_bar_copy_requested(self, message: PageBar.CopyRequested) -> None:
        message.stop()
        if message.bar is self.user_pages:
            action = "copy_message"
        elif message.bar is self.reasoning_pages:
            action = "copy_reasoning"
        else:
            action = "copy"
        self.post_message(self.ActionRequested(self, action))

    # -- status --------------------------------------------------------------------------

    def set_last(self, last: bool) -> None:
        """Whether this is the session's last turn (changes the actions offered)."""
        if last != self.last:
            self.last = last
            self._refresh_status()

    def set_branch(self, branch: Branch | None) -> None:
        """Where the turn stands among its siblings now (a branch was added from its place)."""
        if branch != self.branch:
            self.branch = branch
            self.status.can_focus = self._has_branches
            self._refresh_status()

    @property
    def _has_branches(self) -> bool:
        return self.branch is not None and self.branch.count > 1

    def _user_content(self, text: str) -> Content:
        """The header and `text`: the whole message, or the page of it shown."""
        turn = self.turn
        flag = ("thinking on", "$text-success") if turn.thinking else ("thinking off", "$text-muted")
        return Content.assemble(("You", "bold $text-primary"), ("  ·  ", "$text-muted"), flag, "\n", inert(text))

    def _status_content(self) -> Content:
        turn = self.turn
        parts: list[tuple[str, str] | str | Content] = []

        def action(label: str, name: str) -> None:
            parts.append("  ")
            parts.append(Content.styled(label, "$text-accent underline").stylize(_click(name)))

        if self._retry is not None:
            event, at = self._retry
            left = max(0, int(round(at - self._clock())))
            where = f"{self._host_name}: " if self._host_name and self._host_name not in str(event.error) else ""
            parts.append((f"⟳ {where}{inert(_short(event.error))} — retrying in {left} s (attempt {event.attempt})", "$text-warning"))
            return Content.assemble(*parts)
        status = turn.status
        if self._live:
            return Content("")
        if self.branch is not None and self.branch.count > 1:
            # The arrows first: they are what changes the rest of the log.
            position, count = self.branch.position, self.branch.count
            parts.append(Content.styled("‹", "$text-accent bold").stylize(_click("branch_previous")) if position > 1 else ("‹", "$text-muted"))
            parts.append((f" {position}/{count} ", "$text-muted"))
            parts.append(Content.styled("›", "$text-accent bold").stylize(_click("branch_next")) if position < count else ("›", "$text-muted"))
            parts.append("  ")
        if status == TurnStatus.ERROR:
            # The message may quote the host's reply: shown inert like model text.
            parts.append((f"✖ {inert(turn.error or 'the request failed')}", "$text-error"))
            action("retry", "retry")
        elif status == TurnStatus.STOPPED:
            parts.append(("■ stopped", "$text-warning"))
            action("retry", "retry")
        elif status == TurnStatus.STREAMING:
            # Not ours, still streaming: the store leaves a turn so while the glmchat
            # process that streams it is alive (another window, same data dir).
            parts.append(("⟳ streaming in another window — reopen the session to see the rest", "$text-warning"))
            return Content.assemble(*parts)
        elif status == TurnStatus.INTERRUPTED:
            parts.append(("⚠ interrupted: glmchat ended during this answer", "$text-warning"))
            action("retry", "retry")
        elif status == TurnStatus.TRUNCATED:
            reason = turn.error or f"the host ended the answer early ({turn.finish_reason or 'cut short'})"
            parts.append((f"⚠ {inert(reason)}", "$text-warning"))
            action("retry", "retry")
        else:
            parts.append(("✓", "$text-success"))
        if turn.content:
            action("copy", "copy")
            if "```" in turn.content or "~~~" in turn.content:
                action("copy code", "copy_code")
        # Any turn, not only the last: each adds a sibling branch (the old path is kept).
        if status == TurnStatus.COMPLETE:
            action("regenerate", "regenerate")
        action("edit", "edit")
        action("fork", "fork")
        figures = turn_cockpit(turn)  # tokens, cache hit and cost: the cache cockpit's per-turn line
        if figures:
            parts.append((f"  {figures}", "$text-muted"))
        return Content.assemble(*parts)

    def _refresh_status(self) -> None:
        self.status.update(self._status_content())
        self._apply_status_classes()

    def _apply_status_classes(self) -> None:
        status = self.turn.status
        self.set_class(status == TurnStatus.ERROR, "-error")
        self.set_class(status == TurnStatus.STOPPED, "-stopped")
        self.set_class(self._live, "-streaming")

    def action_request(self, action: str) -> None:
        """Ask the screen to do something with this turn."""
        self.post_message(self.ActionRequested(self, action))


def _take(parts: list[str], limit: int | None) -> str:
    """Join and remove the pending parts, up to `limit` characters (the rest stays, as one part)."""
    text = "".join(parts)
    parts.clear()
    if limit is not None and len(text) > limit:
        parts.append(text[limit:])
        text = text[:limit]
    return text


def _click(action: str):
    from textual.style import Style

    return Style.from_meta({"@click": f"turn({action!r})"})


def _short(error: object) -> str:
    text = str(error)
    return text if len(text) <= 120 else text[:119] + "…"
