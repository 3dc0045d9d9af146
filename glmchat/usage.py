"""Tokens and money: what a host reported for a turn, what it cost, and estimates where it said nothing.

Pure functions over sessions and hosts, shared by the TUI's status line, `glmchat
ask` and the exports, so every front end shows the same figures.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glmchat.hosts import Host
    from glmchat.models import Price
    from glmchat.session import Session, Turn


@dataclass
class Usage:
    """Token counts of one request, as the host reported them (None: not reported)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    cost: float | None = None
    """Cost in USD when the host reports it (OpenRouter, Runware)."""

    def merge(self, other: Usage) -> None:
        """Take every field the other usage reports (later chunks win)."""
        for f in fields(self):
            value = getattr(other, f.name)
            if value is not None:
                setattr(self, f.name, value)

    @classmethod
    def total(cls, usages: Iterable[Usage]) -> Usage:
        """Every field added up over the usages that report it (None where none does)."""
        out = cls()
        for usage in usages:
            for f in fields(cls):
                value = getattr(usage, f.name)
                if value is not None:
                    current = getattr(out, f.name)
                    setattr(out, f.name, value if current is None else current + value)
        return out

    @property
    def reported(self) -> bool:
        return any(getattr(self, f.name) is not None for f in fields(self))

    @property
    def cache_hit(self) -> float | None:
        """Cached share of the prompt (0..1), when the host reported both."""
        if not self.prompt_tokens or self.cached_tokens is None:
            return None
        return min(self.cached_tokens / self.prompt_tokens, 1.0)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        data = data or {}
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


# -- estimates ---------------------------------------------------------------------------------


def estimate_tokens(text: str) -> int:
    """A rough token count where the host reported none (no tokenizer at hand).

    GLM's tokenizer averages about 3.5 characters per token on English and code,
    and about one token per CJK character; the larger of the two reads is taken,
    so a warning errs on the side of caution.
    """
    if not text:
        return 0
    # Runs of wide characters counted by the regex engine: a per-character Python
    # loop made this O(history) slow when it ran over the whole history at a send.
    wide = 0 if text.isascii() else sum(map(len, _WIDE_RUNS.findall(text)))
    return max(1, round((len(text) - wide) / 3.5 + wide))


_WIDE_RUNS = re.compile("[\u2e80-\U0010ffff]+")
"""Characters from U+2E80 on (CJK and beyond), which GLM's tokenizer counts about one each."""


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


_ESTIMATES: dict[str, tuple[tuple[object, ...], int]] = {}
"""Turn id -> (what the estimate was made from, the estimate): a settled turn is counted once."""

_ESTIMATES_MAX = 20_000


def turn_estimate(turn: Turn, preserve_thinking: bool) -> int:
    """Estimated tokens a turn adds to the next request (0 when it is not replayed).

    Cached for settled turns: the count reads all of the turn's text, and a long
    session would pay for its whole history at every send.
    """
    from glmchat.session import TurnStatus

    if not turn.replayable:
        return 0
    key = (turn.status, len(turn.steps), len(turn.user_text), sum(len(s.content) for s in turn.steps),
           sum(len(s.reasoning) for s in turn.steps) if preserve_thinking else -1)
    hit = _ESTIMATES.get(turn.id)
    if hit is not None and hit[0] == key:
        return hit[1]
    tokens = estimate_tokens(turn.user_text) + 4
    for step in turn.steps:
        tokens += estimate_tokens(step.content)
        if preserve_thinking:
            tokens += estimate_tokens(step.reasoning)
        for call in step.tool_calls:
            tokens += estimate_tokens(call.arguments) + estimate_tokens(call.name) + 4
        for result in step.tool_results:
            tokens += estimate_tokens(result.content) + 4
    if turn.status != TurnStatus.STREAMING:
        if len(_ESTIMATES) >= _ESTIMATES_MAX:
            _ESTIMATES.clear()
        _ESTIMATES[turn.id] = (key, tokens)
    return tokens


def request_estimate(session: Session, next_text: str = "") -> int:
    """Estimated prompt tokens of a request that sends `next_text` after every replayable turn of the path."""
    total = estimate_tokens(session.system_prompt) + estimate_tokens(next_text)
    preserve = session.preserve_thinking
    return total + sum(turn_estimate(turn, preserve) for turn in session.turns)


def context_used(session: Session, next_text: str = "") -> int:
    """Tokens a request sending `next_text` would start with, estimated cheaply.

    The host's own count for the newest turn that reported one (its last prompt
    plus its answer), plus an estimate of what came after it; with no report at
    all, the full estimate. O(turns since the last report), not O(session).
    """
    base: int | None = None
    later: list[Turn] = []
    for turn in reversed(session.turns):
        usage = turn.last_usage
        if usage.prompt_tokens is not None:
            base = usage.prompt_tokens + (usage.completion_tokens or 0)
            break
        later.append(turn)
    if base is None:
        return request_estimate(session, next_text)
    preserve = session.preserve_thinking
    return base + estimate_tokens(next_text) + sum(turn_estimate(turn, preserve) for turn in later)


# -- money ---------------------------------------------------------------------------------------


def price_of(host: Host | None, model: str) -> Price | None:
    """The price per million tokens of `model` on `host`: the host's list, else the model table's (None: unknown)."""
    if host is None:
        return None
    from glmchat.models import model_info

    model = model or host.default_model
    price = host.price_for(model)
    if price is not None:
        return price
    if host.local and not host.demo:
        return None  # a self-hosted server costs nothing per token that we could know
    try:
        return model_info(host, model).price
    except ValueError:
        return None


def usage_cost(usage: Usage, host: Host | None, model: str) -> float | None:
    """USD of one request: the host's reported cost, else its price list; None if unknown."""
    if usage.cost is not None:
        return usage.cost
    if host is None or usage.prompt_tokens is None:
        return None
    price = price_of(host, model)
    if price is None:
        return None
    cached = usage.cached_tokens or 0
    fresh = max(usage.prompt_tokens - cached, 0)
    cached_price = price.cached_input if price.cached_input is not None else price.input
    output = usage.completion_tokens or 0
    return (fresh * price.input + cached * cached_price + output * price.output) / 1_000_000


def turn_cost(turn: Turn, host: Host | None) -> float | None:
    """USD of a turn: each step's cost added up; None when no step's is known."""
    costs = [usage_cost(step.usage, host, turn.model) for step in turn.steps]
    known = [c for c in costs if c is not None]
    return sum(known) if known else None


def host_of(turn: Turn, current: Host | None = None) -> Host | None:
    """The host a turn was sent to: `current` when it is that one (config overrides and all), else the built-in."""
    from glmchat.hosts import BUILTIN_HOSTS

    if current is not None and turn.host == current.id:
        return current
    return BUILTIN_HOSTS.get(turn.host)


def usage_saved(usage: Usage, host: Host | None, model: str) -> float | None:
    """USD the cached tokens of one request saved: what they would have cost at the full input price."""
    if not usage.cached_tokens:
        return 0.0 if usage.cached_tokens == 0 else None
    price = price_of(host, model)
    if price is None or price.cached_input is None:
        return None
    return usage.cached_tokens * (price.input - price.cached_input) / 1_000_000


def session_cost(session: Session, current: Host | None = None) -> float | None:
    """Sum of the known turn costs on the session's path; None when none is known."""
    total = 0.0
    known = False
    for turn in session.turns:
        host = host_of(turn, current)
        cost = turn_cost(turn, host)
        if cost is not None:
            total += cost
            known = True
    return total if known else None


def last_settled_turn(session: Session) -> Turn | None:
    """The newest turn that is not streaming (the one the status line gives figures for)."""
    from glmchat.session import TurnStatus

    for turn in reversed(session.turns):
        if turn.status != TurnStatus.STREAMING:
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
        hit = usage.cache_hit
        shown = f" ({hit:.0%} hit)" if hit is not None and not short else ""
        fields.append(f"{usage.cached_tokens:,} cached{shown}")
    if split.reasoning is not None:
        fields.append(f"{split.reasoning} {'think' if short else 'reasoning'}")
    if split.answer is not None:
        fields.append(f"{split.answer} answer")
    return " · ".join(fields)


def compact_count(value: int) -> str:
    """12,345 -> "12.3k"; 200,000 -> "200k"."""
    if value < 1000:
        return str(value)
    if value < 100_000:
        return f"{value / 1000:.1f}k".replace(".0k", "k")
    return f"{round(value / 1000)}k"


# -- the cache cockpit -----------------------------------------------------------------------------


def turn_cockpit(turn: Turn, host: Host | None = None) -> str:
    """A settled turn's footer figures: tokens (cache hit among them) and cost, "" when nothing is known.

    "12,000 in · 9,000 cached (75% hit) · 500 reasoning · 1,000 answer · $0.0031"
    """
    figures = turn_figures(turn)
    cost = turn_cost(turn, host or host_of(turn))
    if cost is not None:
        figures = f"{figures} · {money(cost)}" if figures else money(cost)
    return figures


def money(amount: float) -> str:
    """$0.0031 below a dollar (cache savings are small sums), $1.25 above."""
    return f"${amount:.4f}" if amount < 1 else f"${amount:.2f}"


def turn_report(turn: Turn, host: Host | None = None) -> dict[str, Any]:
    """A turn's figures for machines (`ask --json`, the JSON export): tokens, cache hit, cost, savings."""
    host = host or host_of(turn)
    usage = turn.usage
    split = turn_token_split(turn)
    costs = [usage_cost(step.usage, host, turn.model) for step in turn.steps]
    saved = [usage_saved(step.usage, host, turn.model) for step in turn.steps]
    return {
        "prompt_tokens": usage.prompt_tokens,
        "cached_tokens": usage.cached_tokens,
        "reasoning_tokens": split.reasoning.value if split.reasoning is not None else 0,
        "answer_tokens": split.answer.value if split.answer is not None else 0,
        "estimated": bool((split.reasoning and split.reasoning.estimated) or (split.answer and split.answer.estimated)),
        "cache_hit": usage.cache_hit,
        "cost_usd": sum(c for c in costs if c is not None) if any(c is not None for c in costs) else None,
        "saved_by_cache_usd": sum(s for s in saved if s is not None) if any(s is not None for s in saved) else None,
    }


@dataclass
class SessionUsage:
    """A session path's usage added up: what the "usage" summary shows."""

    turns: int = 0
    reported: int = 0
    """Turns whose host reported a prompt."""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    answer_tokens: int = 0
    estimated: bool = False
    """Some reasoning/answer figure is our estimate."""
    cost: float | None = None
    saved: float | None = None

    @property
    def cache_hit(self) -> float | None:
        """Cached share of all prompt tokens the hosts reported."""
        return self.cached_tokens / self.prompt_tokens if self.prompt_tokens else None

    def lines(self) -> list[str]:
        """The summary as lines of text."""
        out = [f"{self.turns} turn{'s' if self.turns != 1 else ''} ({self.reported} with the host's token counts)"]
        out.append(f"prompt {self.prompt_tokens:,} tokens, of which cached {self.cached_tokens:,}")
        hit = self.cache_hit
        out.append(f"cache hit over the session: {hit:.1%}" if hit is not None else "cache hit: not reported")
        mark = "≈" if self.estimated else ""
        out.append(f"reasoning {mark}{self.reasoning_tokens:,} tokens · answer {mark}{self.answer_tokens:,} tokens")
        out.append(f"cost: {money(self.cost)}" if self.cost is not None else "cost: unknown (no prices for this host or model)")
        if self.saved is not None:
            out.append(f"saved by caching: {money(self.saved)}")
        return out


def session_usage(session: Session, current: Host | None = None) -> SessionUsage:
    """The usage of every turn on the session's path, added up."""
    total = SessionUsage()
    for turn in session.turns:
        total.turns += 1
        report = turn_report(turn, host_of(turn, current))
        if report["prompt_tokens"] is not None:
            total.reported += 1
            total.prompt_tokens += report["prompt_tokens"]
            total.cached_tokens += report["cached_tokens"] or 0
        total.reasoning_tokens += report["reasoning_tokens"]
        total.answer_tokens += report["answer_tokens"]
        total.estimated = total.estimated or report["estimated"]
        if report["cost_usd"] is not None:
            total.cost = (total.cost or 0.0) + report["cost_usd"]
        if report["saved_by_cache_usd"] is not None:
            total.saved = (total.saved or 0.0) + report["saved_by_cache_usd"]
    return total
