"""The status line: host, model, thinking for the next turn, preserved thinking, tokens, cost, context.

The figures are computed by small pure functions (tested without a screen);
the widget only formats them.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.geometry import Size
from textual.widgets import Static

from glmchat.hosts import Host
from glmchat.session import Session
from glmchat.models import resolve_thinking, session_model_info
from glmchat.usage import compact_count, context_used, last_settled_turn, session_cost, turn_figures


@dataclass
class StatusFacts:
    """Everything the status line shows, computed once per refresh."""

    host: Host
    model: str
    thinking_next: bool
    preserve: bool
    session: Session
    streaming: bool = False


class StatusLine(Static):
    """The status line: one line when it fits, else two (session facts, then the last turn's figures)."""

    DEFAULT_CSS = """
    StatusLine {
        height: auto;
        max-height: 2;
        width: 1fr;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._parts: tuple[Content, Content] = (Content(), Content())
        self._short_parts: tuple[Content, Content] = (Content(), Content())

    def show(self, facts: StatusFacts) -> None:
        """Redraw from the facts (cheap: called on turn end, switch and toggles, not per token)."""
        self._parts = status_parts(facts)
        self._short_parts = status_parts(facts, short=True)
        self.refresh(layout=True)

    def _lines(self, width: int) -> list[Content]:
        head, tail = self._parts
        if not tail:
            if head.cell_length > width:
                head = self._short_parts[0]
            return [head.truncate(width, ellipsis=True)]
        joined = head + Content.styled(" │ ", "$text-muted") + tail
        if joined.cell_length <= width:
            return [joined]
        # Two lines; on a narrow screen in shorter words rather than cut ones.
        short_head, short_tail = self._short_parts
        if head.cell_length > width:
            head = short_head
        if tail.cell_length > width:
            tail = short_tail
        return [head.truncate(width, ellipsis=True), tail.truncate(width, ellipsis=True)]

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> Content:
        return Content("\n").join(self._lines(self.content_size.width or self.size.width))


def status_content(facts: StatusFacts) -> Content:
    """The status as one line (for tests and narrow uses)."""
    head, tail = status_parts(facts)
    return head + Content.styled(" │ ", "$text-muted") + tail if tail else head


def status_parts(facts: StatusFacts, *, short: bool = False) -> tuple[Content, Content]:
    """(host, model, thinking, preserved) and (last turn's tokens, cost, context).

    Args:
        facts: what to show.
        short: fewer words, for a narrow screen (the same facts).
    """
    host = facts.host
    sep = (" │ ", "$text-muted")
    head: list[tuple[str, str] | str] = [(host.name, "bold"), " · ", facts.model, sep]
    choice = resolve_thinking(session_model_info(host, facts.session), facts.thinking_next, facts.session.thinking_level_next)
    if not host.can_toggle_thinking:
        head.append(("thinking: set by host", "$text-muted"))
    elif choice.thinking:
        label = f"thinking {choice.level or 'on'}"
        head.append((label if short else f"next turn: {label}", "$text-success"))
    else:
        head.append(("thinking off" if short else "next turn: thinking off", "$text-muted"))
    head.append(sep)
    if not host.can_preserve_thinking:
        what = "not preserved" if short else f"preserved thinking: not supported on {host.name}"
        head.append((what, "$text-warning"))
    elif facts.preserve:
        head.append(("preserved on" if short else "preserved thinking on", "$text-success"))
    else:
        head.append(("preserved off" if short else "preserved thinking off", "$text-muted"))

    tail: list[tuple[str, str] | str] = []
    turn = last_settled_turn(facts.session)
    if turn is not None:
        figures = turn_figures(turn, short=short)
        if figures:
            tail.append(figures if short else f"last turn {figures}")
    cost = session_cost(facts.session, host)
    if cost is not None:
        if tail:
            tail.append(sep)
        amount = f"${cost:.4f}" if cost < 1 else f"${cost:.2f}"
        tail.append(amount if short else f"session {amount}")
    window = host.context_window
    if window:
        share = context_used(facts.session) / window
        style = "$text-error" if share > 0.9 else "$text-warning" if share > 0.7 else ""
        if tail:
            tail.append(sep)
        what = f"ctx {share:.0%}" if short else f"context {share:.0%} of {compact_count(window)}"
        tail.append((what, style))
    return Content.assemble(*head), Content.assemble(*tail)
