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
from glmchat.usage import compact_count, context_used, last_usage_turn, session_cost


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

    def show(self, facts: StatusFacts) -> None:
        """Redraw from the facts (cheap: called on turn end, switch and toggles, not per token)."""
        self._parts = status_parts(facts)
        self.refresh(layout=True)

    def _lines(self, width: int) -> list[Content]:
        head, tail = self._parts
        if not tail:
            return [head.truncate(width, ellipsis=True)]
        joined = head + Content.styled(" │ ", "$text-muted") + tail
        if joined.cell_length <= width:
            return [joined]
        return [head.truncate(width, ellipsis=True), tail.truncate(width, ellipsis=True)]

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self._lines(width))

    def render(self) -> Content:
        return Content("\n").join(self._lines(self.content_size.width or self.size.width))


def status_content(facts: StatusFacts) -> Content:
    """The status as one line (for tests and narrow uses)."""
    head, tail = status_parts(facts)
    return head + Content.styled(" │ ", "$text-muted") + tail if tail else head


def status_parts(facts: StatusFacts) -> tuple[Content, Content]:
    """(host, model, thinking, preserved) and (last turn's tokens, cost, context)."""
    host = facts.host
    sep = (" │ ", "$text-muted")
    head: list[tuple[str, str] | str] = [(host.name, "bold"), " · ", facts.model, sep]
    if not host.can_toggle_thinking:
        head.append(("thinking: set by host", "$text-muted"))
    elif facts.thinking_next:
        head.append(("next turn: thinking on", "$text-success"))
    else:
        head.append(("next turn: thinking off", "$text-muted"))
    head.append(sep)
    if not host.can_preserve_thinking:
        head.append((f"preserved thinking: not supported on {host.name}", "$text-warning"))
    elif facts.preserve:
        head.append(("preserved thinking on", "$text-success"))
    else:
        head.append(("preserved thinking off", "$text-muted"))

    tail: list[tuple[str, str] | str] = []
    turn = last_usage_turn(facts.session)
    if turn is not None:
        usage = turn.usage
        fields = []
        if usage.prompt_tokens is not None:
            fields.append(f"{usage.prompt_tokens:,} in")
        if usage.cached_tokens:
            fields.append(f"{usage.cached_tokens:,} cached")
        if usage.reasoning_tokens:
            fields.append(f"{usage.reasoning_tokens:,} reasoning")
        if usage.completion_tokens is not None:
            answer = usage.completion_tokens - (usage.reasoning_tokens or 0)
            fields.append(f"{max(answer, 0):,} answer")
        if fields:
            tail.append("last turn " + " · ".join(fields))
    cost = session_cost(facts.session, host)
    if cost is not None:
        if tail:
            tail.append(sep)
        tail.append(f"session ${cost:.4f}" if cost < 1 else f"session ${cost:.2f}")
    window = host.context_window
    if window:
        share = context_used(facts.session) / window
        style = "$text-error" if share > 0.9 else "$text-warning" if share > 0.7 else ""
        if tail:
            tail.append(sep)
        tail.append((f"context {share:.0%} of {compact_count(window)}", style))
    return Content.assemble(*head), Content.assemble(*tail)
