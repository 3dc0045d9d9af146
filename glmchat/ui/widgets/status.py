"""The status line: host, model, thinking for the next turn, preserved thinking, tokens, cost, context.

The figures are computed by small pure functions (tested without a screen);
the widget only formats them.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.geometry import Size
from textual.widgets import Static

from glmchat.hosts import BUILTIN_HOSTS, Host
from glmchat.session import STREAMING, Session, Turn, Usage, estimate_tokens


# -- token figures ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenCount:
    """A token figure and whether it is the host's own count or our estimate."""

    value: int
    estimated: bool = False

    def __str__(self) -> str:
        """ "1,234" when the host reported it, "≈1,234" when it is an estimate."""
        return f"≈{self.value:,}" if self.estimated else f"{self.value:,}"


@dataclass(frozen=True)
class TokenSplit:
    """A turn's output tokens: its reasoning and its answer (None: nothing to show)."""

    reasoning: TokenCount | None
    answer: TokenCount | None


def token_split(usage: Usage, reasoning_estimate: int, answer_estimate: int) -> TokenSplit:
    """How many of a turn's tokens were reasoning and how many answer, as far as is known.

    Hosts report differently: Z.ai and OpenRouter give the reasoning tokens inside
    the completion tokens; vLLM, SGLang, llama.cpp and Ollama give only the
    completion tokens (reasoning and answer together); a stopped turn has no
    report at all. So:

    - reasoning reported: both figures are the host's (answer = completion - reasoning);
    - only completion reported, and the turn reasoned: the host's total is split in
      the proportion of our estimates of the two texts, and both shares are marked
      as estimates (the total is still the host's);
    - only completion reported, no reasoning: it is all answer, exactly;
    - nothing reported: our estimates of the texts, marked as such.

    A host that reports 0 reasoning tokens for a turn that did reason is not
    counting them: that 0 is treated as not reported.

    Args:
        usage: what the host reported for the turn.
        reasoning_estimate: `estimate_tokens` of the turn's reasoning (0: none).
        answer_estimate: `estimate_tokens` of the turn's answer.
    """
    completion = usage.completion_tokens
    reasoning = usage.reasoning_tokens
    reasoned = reasoning_estimate > 0
    if reasoning is not None and (reasoning > 0 or not reasoned):
        shown_reasoning = TokenCount(reasoning) if reasoning > 0 else None
        if completion is not None:
            return TokenSplit(shown_reasoning, TokenCount(max(completion - reasoning, 0)))
        return TokenSplit(shown_reasoning, TokenCount(answer_estimate, estimated=True) if answer_estimate else None)
    if completion is not None:
        if not reasoned:
            return TokenSplit(None, TokenCount(completion))
        share = round(completion * reasoning_estimate / (reasoning_estimate + answer_estimate))
        return TokenSplit(TokenCount(share, estimated=True), TokenCount(completion - share, estimated=True))
    return TokenSplit(
        TokenCount(reasoning_estimate, estimated=True) if reasoned else None,
        TokenCount(answer_estimate, estimated=True) if answer_estimate else None,
    )


def turn_token_split(turn: Turn) -> TokenSplit:
    """`token_split` of a settled turn (reads its texts: call it per refresh, not per token)."""
    return token_split(turn.usage, estimate_tokens(turn.reasoning), estimate_tokens(turn.content))


def turn_cost(turn: Turn, host: Host | None) -> float | None:
    """USD cost of a turn: the host's reported cost, else its price list; None if unknown."""
    usage = turn.usage
    if usage.cost is not None:
        return usage.cost
    if host is None or usage.prompt_tokens is None:
        return None
    price = host.price_for(turn.model or host.default_model)
    if price is None:
        return None
    cached = usage.cached_tokens or 0
    fresh = max(usage.prompt_tokens - cached, 0)
    cached_price = price.cached_input if price.cached_input is not None else price.input
    output = usage.completion_tokens or 0
    return (fresh * price.input + cached * cached_price + output * price.output) / 1_000_000


def session_cost(session: Session, current: Host | None = None) -> float | None:
    """Sum of the turn costs that are known; None when none is."""
    total = 0.0
    known = False
    for turn in session.turns:
        host = current if current is not None and turn.host == current.id else BUILTIN_HOSTS.get(turn.host)
        cost = turn_cost(turn, host)
        if cost is not None:
            total += cost
            known = True
    return total if known else None


def last_usage_turn(session: Session) -> Turn | None:
    """The newest turn that reported token counts."""
    for turn in reversed(session.turns):
        if turn.usage.prompt_tokens is not None or turn.usage.completion_tokens is not None:
            return turn
    return None


_ESTIMATES: dict[str, tuple[tuple[object, ...], int]] = {}
"""Turn id -> (what the estimate was made from, the estimate): a settled turn is counted once."""

_ESTIMATES_MAX = 20_000


def turn_estimate(turn: Turn, preserve_thinking: bool) -> int:
    """Estimated tokens a turn adds to the next request (0 when it is not replayed).

    The same count as `estimate_request_tokens` gives the turn, cached for
    settled turns: that count reads all of the turn's text, and a long
    session would pay for its whole history at every send.
    """
    if not turn.replayable:
        return 0
    with_reasoning = preserve_thinking and bool(turn.reasoning)  # replayed whenever there is reasoning
    key = (turn.status, len(turn.user_text), len(turn.content), len(turn.reasoning) if with_reasoning else -1)
    hit = _ESTIMATES.get(turn.id)
    if hit is not None and hit[0] == key:
        return hit[1]
    tokens = estimate_tokens(turn.user_text) + estimate_tokens(turn.content) + 4
    if with_reasoning:
        tokens += estimate_tokens(turn.reasoning)
    if turn.status != STREAMING:
        if len(_ESTIMATES) >= _ESTIMATES_MAX:
            _ESTIMATES.clear()
        _ESTIMATES[turn.id] = (key, tokens)
    return tokens


def request_estimate(session: Session, next_text: str = "") -> int:
    """`estimate_request_tokens` with each settled turn's share counted once (see `turn_estimate`)."""
    total = estimate_tokens(session.system_prompt) + estimate_tokens(next_text)
    preserve = session.preserve_thinking
    return total + sum(turn_estimate(turn, preserve) for turn in session.turns)


def context_used(session: Session, next_text: str = "") -> int:
    """Tokens a request sending `next_text` would start with, estimated cheaply.

    The host's own count for the newest turn that reported one (its prompt plus
    its answer), plus an estimate of what came after it; with no report at all,
    the full estimate. Costs O(turns since the last report), not O(session), so
    it can run on every send of a long session.
    """
    base: int | None = None
    later: list[Turn] = []
    for turn in reversed(session.turns):
        usage = turn.usage
        if usage.prompt_tokens is not None:
            base = usage.prompt_tokens + (usage.completion_tokens or 0)
            break
        later.append(turn)
    if base is None:
        return request_estimate(session, next_text)
    preserve = session.preserve_thinking
    return base + estimate_tokens(next_text) + sum(turn_estimate(turn, preserve) for turn in later)


def compact_count(value: int) -> str:
    """12,345 -> "12.3k"; 200,000 -> "200k"."""
    if value < 1000:
        return str(value)
    if value < 100_000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{round(value / 1000)}k"


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


def last_settled_turn(session: Session) -> Turn | None:
    """The newest turn that is not streaming (the one the status line gives figures for)."""
    for turn in reversed(session.turns):
        if turn.status != STREAMING:
            return turn
    return None


def turn_figures(turn: Turn, *, short: bool = False) -> str:
    """ "12,000 in · 9,000 cached · 500 reasoning · 1,000 answer" for a turn, "≈" where estimated.

    Prompt and cached tokens are shown only when the host reported them (an
    estimate of the prompt is what the context share is for).
    """
    usage = turn.usage
    split = turn_token_split(turn)
    fields = []
    if usage.prompt_tokens is not None:
        fields.append(f"{usage.prompt_tokens:,} in")
    if usage.cached_tokens:
        fields.append(f"{usage.cached_tokens:,} cached")
    if split.reasoning is not None:
        fields.append(f"{split.reasoning} {'think' if short else 'reasoning'}")
    if split.answer is not None:
        fields.append(f"{split.answer} answer")
    return " · ".join(fields)


def status_parts(facts: StatusFacts, *, short: bool = False) -> tuple[Content, Content]:
    """(host, model, thinking, preserved) and (last turn's tokens, cost, context).

    Args:
        facts: what to show.
        short: fewer words, for a narrow screen (the same facts).
    """
    host = facts.host
    sep = (" │ ", "$text-muted")
    head: list[tuple[str, str] | str] = [(host.name, "bold"), " · ", facts.model, sep]
    if not host.can_toggle_thinking:
        head.append(("thinking: set by host", "$text-muted"))
    elif facts.thinking_next:
        head.append(("thinking on" if short else "next turn: thinking on", "$text-success"))
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
