"""Run one turn end to end: the single streaming path of `glmchat ask` and the TUI.

For each step: build the request -> stream it -> fold each event into the turn
-> tell the caller -> save progress now and then. A step that ends asking for
tools (and a `ToolRunner` to answer them) gets its calls run, their results
kept with the step, and the next step starts; otherwise the turn settles and
is saved.

The per-event path stays O(1): `Turn.apply` appends to part lists, the clock
is read once, and the store is only touched every `save_interval` seconds (it
appends just the new text, so a save costs O(new text)).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Protocol

from glmchat.errors import ConnectionDropped, GlmChatError, StorageError
from glmchat.protocol.events import ContentDelta, Event, ReasoningDelta, StreamFailed, ToolCallDelta
from glmchat.session import CLEAN_FINISH_REASONS, Session, Step, ToolResult, Turn, TurnStatus

if TYPE_CHECKING:
    from glmchat.cache_break import CacheBreak, CacheWatch
    from glmchat.client import GlmClient
    from glmchat.hosts import Host

_TEXT_EVENTS = (ReasoningDelta, ContentDelta, ToolCallDelta)

# error_kind for a turn the host ended early (the finish reason, in GlmChatError.kind words).
_FINISH_KIND = {
    "length": "length",
    "sensitive": "content_filter",
    "content_filter": "content_filter",
    "network_error": "network",
    "model_context_window_exceeded": "context_length",
}


class TurnStore(Protocol):
    """What the runner needs of a store (`glmchat.store.Store` is one)."""

    def begin_turn(self, session: Session, turn: Turn) -> None: ...

    def save_progress(self, turn: Turn) -> int: ...

    def finish_turn(self, turn: Turn) -> None: ...


class ToolRunner(Protocol):
    """Answers a step's tool calls (see `glmchat.tools`); None means tools are off for the turn."""

    max_steps: int
    """Steps a turn may take at most; the last one is offered no tools, so it answers."""

    @property
    def specs(self) -> list[dict[str, object]]:
        """The tools offered, as the chat-completions `tools` array."""
        ...

    async def run(self, step: Step) -> list[ToolResult]:
        """One result per call of `step`, in call order; never raises for a failed call."""
        ...


async def run_turn(
    client: GlmClient,
    host: Host,
    session: Session,
    turn: Turn,
    *,
    api_key: str | None,
    store: TurnStore | None = None,
    on_event: Callable[[Event], None] | None = None,
    tools: ToolRunner | None = None,
    save_interval: float = 0.25,
    retry_hint: str = "send again to retry",
    cache_watch: CacheWatch | None = None,
    on_cache_break: Callable[[CacheBreak], None] | None = None,
) -> Turn:
    """Send `turn` (the last of `session.turns`) to `host` and stream the reply into it.

    Args:
        client: The HTTP client.
        host: The host profile to send to.
        session: The session the turn belongs to (its path is replayed).
        turn: The turn to fill; returned settled (COMPLETE, TRUNCATED, ERROR or STOPPED).
        api_key: The key for `host`, or None for a local server.
        store: Where the turn is saved: `begin_turn` first, `save_progress` at most
            every `save_interval` seconds while text arrives, `finish_turn` at the end.
        on_event: Called with every event, synchronously, right after the turn applied it.
        tools: Runs tool calls between steps (None: a step asking for tools ends the turn).
        save_interval: Seconds between progress saves.
        retry_hint: How to try again, in the words of the caller's front end (the TUI
            says "Ctrl+R retries"); ends the message of a connection that dropped.
        cache_watch: Checks each request against the session's previous one (see cache_break.py).
        on_cache_break: Told when a request should have extended the previous one and does not.

    Returns:
        The turn. A failed stream does not raise: the turn is ERROR with a one-line
        message and keeps what arrived.

    Raises:
        asyncio.CancelledError: when the task is cancelled; the turn is STOPPED and saved first.
        StorageError: when the store failed; the turn is settled in memory first.
        Exception: whatever `on_event` raised; the turn is marked ERROR and saved first.
    """
    from glmchat.protocol import build_request

    from glmchat.protocol.messages import turn_thinking

    turn.host = host.id
    if not turn.model:
        turn.model = session.model
    # What the request will carry, made valid for the turn's model, is what the turn records.
    choice = turn_thinking(host, session, turn)
    turn.thinking, turn.thinking_level = choice.thinking, choice.level
    saver = _Saver(store)
    saver.call(lambda s: s.begin_turn(session, turn))
    if saver.error is not None:
        # Nothing can be kept: don't spend the user's tokens on an answer we cannot save.
        turn.fail(saver.error)
        turn.finish()
        raise saver.error

    clock = time.monotonic
    next_save = clock() + save_interval
    try:
        while True:
            offered = tools is not None and len(turn.steps) < tools.max_steps
            try:
                request = build_request(host, session, turn, tools=tools.specs if tools is not None and offered else None)
            except GlmChatError as exc:
                turn.fail(exc)
                break
            if cache_watch is not None:
                broken = cache_watch.check(host, session, turn, request.body)
                if broken is not None and on_cache_break is not None:
                    on_cache_break(broken)
            async with aclosing(client.stream(host, request, api_key)) as events:
                async for event in events:
                    if type(event) is StreamFailed and isinstance(event.error, ConnectionDropped):
                        event = StreamFailed(_dropped(host, turn, retry_hint))
                    turn.apply(event)
                    if on_event is not None:
                        on_event(event)
                    if isinstance(event, _TEXT_EVENTS):
                        now = clock()
                        if now >= next_save:
                            saver.call(lambda s: s.save_progress(turn))
                            next_save = now + save_interval
                    elif isinstance(event, StreamFailed):
                        break
            step = turn.step
            if turn.status == TurnStatus.ERROR or tools is None or not offered:
                break
            # Chat hosts end a calling step with "tool_calls"; Ollama says "stop". A step cut short
            # (length, filter) may hold half a call's arguments: it is not run.
            if not step.tool_calls or (step.finish_reason is not None and step.finish_reason not in CLEAN_FINISH_REASONS):
                break
            step.tool_results = await tools.run(step)
            turn.begin_step()
            # The finished step (its calls and results) is written whole before the next request.
            saver.call(lambda s: s.save_progress(turn))
            next_save = clock() + save_interval
    except asyncio.CancelledError:
        turn.finish(TurnStatus.STOPPED)
        saver.call(lambda s: s.finish_turn(turn))
        raise
    except Exception as exc:
        # A bug above us (an on_event callback) must not leave the turn "streaming" forever.
        turn.fail(exc)
        turn.finish()
        saver.call(lambda s: s.finish_turn(turn))
        raise
    _settle(turn, host)
    saver.call(lambda s: s.finish_turn(turn))
    if saver.error is not None:
        raise saver.error
    return turn


def _dropped(host: Host, turn: Turn, retry_hint: str) -> ConnectionDropped:
    """The drop said in terms of what the turn had received: the client only knew bytes came."""
    step = turn.step
    thinking_only = (
        turn.first_reasoning_at is not None and not step.content and not step.pending_content and not step.tool_calls
    )
    return ConnectionDropped.describe(host.name, while_thinking=thinking_only, retry=retry_hint)


class _Saver:
    """Calls the store and keeps the first storage failure instead of stopping the stream."""

    def __init__(self, store: TurnStore | None) -> None:
        self.store = store
        self.error: StorageError | None = None

    def call(self, write: Callable[[TurnStore], object]) -> None:
        if self.store is None:
            return
        try:
            write(self.store)
        except StorageError as exc:
            # Keep streaming: the turn lives on in memory and the caller hears of it at the end.
            self.error = self.error or exc


def _settle(turn: Turn, host: Host) -> None:
    """Finish the turn and, for a turn the host cut short, say why in one line."""
    turn.finish()
    if turn.status == TurnStatus.TRUNCATED and turn.error is None:
        from glmchat.protocol.classify import describe_finish

        turn.error = describe_finish(host, turn.finish_reason)
        turn.error_kind = _FINISH_KIND.get(turn.finish_reason or "", "truncated")
    elif turn.status == TurnStatus.ERROR and not turn.error:
        turn.error = f"{host.name}: the request failed — retry"
