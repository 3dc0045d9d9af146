"""Run one turn end to end: the single streaming path used by `glmchat ask` and the TUI.

build the request -> stream it -> fold each event into the Turn -> tell the
caller -> save progress now and then -> settle and save the turn.

The per-event path stays O(1): `Turn.apply` appends to part lists, the clock
is read once, and the store is only touched every `save_interval` seconds
(it appends just the new text, so a save costs O(new text)).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import aclosing
from typing import TYPE_CHECKING, Any

from glmchat.errors import ConnectionDropped, GlmChatError, StorageError
from glmchat.protocol.events import ContentDelta, Event, ReasoningDelta, StreamFailed, ToolCallDelta
from glmchat.session import ERROR, STOPPED, TRUNCATED, Session, Turn

if TYPE_CHECKING:
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


async def run_turn(
    client: GlmClient,
    host: Host,
    session: Session,
    turn: Turn,
    *,
    api_key: str | None,
    store: Any = None,
    on_event: Callable[[Event], None] | None = None,
    save_interval: float = 0.25,
    retry_hint: str = "send again to retry",
) -> Turn:
    """Send `turn` (already in `session.turns`) to `host` and stream the reply into it.

    Args:
        client: The HTTP client.
        host: The host profile to send to.
        session: The session the turn belongs to (its history is replayed).
        turn: The turn to fill; returned settled (COMPLETE, TRUNCATED, ERROR or STOPPED).
        api_key: The key for `host`, or None for a local server.
        store: A `glmchat.store.Store` (or None): `begin_turn` first, `save_progress`
            at most every `save_interval` seconds while text arrives, `finish_turn` at the end.
        on_event: Called with every event, synchronously, right after the turn applied it.
        save_interval: Seconds between progress saves.
        retry_hint: How to try again, in the words of the caller's front end (the TUI
            says "Ctrl+R retries"); ends the message of a connection that dropped.

    Returns:
        The turn. A failed stream does not raise: the turn is ERROR with a one-line
        message and keeps what arrived.

    Raises:
        asyncio.CancelledError: when the task is cancelled; the turn is STOPPED and saved first.
        StorageError: when the store failed; the turn is settled in memory first.
        Exception: whatever `on_event` raised; the turn is marked ERROR and saved first.
    """
    from glmchat.protocol import build_request

    turn.host = host.id
    if not turn.model:
        turn.model = session.model
    storage_error: StorageError | None = None

    def save(method: str, *args: Any) -> None:
        nonlocal storage_error
        if store is None:
            return
        try:
            getattr(store, method)(*args)
        except StorageError as exc:
            # Keep streaming: the turn lives on in memory and the caller hears of it at the end.
            storage_error = storage_error or exc

    save("begin_turn", session, turn)
    if storage_error is not None:
        # Nothing can be kept: don't spend the user's tokens on an answer we cannot save.
        turn.fail(storage_error)
        turn.finish()
        raise storage_error

    try:
        request = build_request(host, session, turn)
    except GlmChatError as exc:
        turn.fail(exc)
        _settle(turn, host)
        save("finish_turn", turn)
        return _done(turn, storage_error)

    clock = time.monotonic
    next_save = clock() + save_interval
    try:
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
                        save("save_progress", turn)
                        next_save = now + save_interval
                elif isinstance(event, StreamFailed):
                    break
    except asyncio.CancelledError:
        turn.finish(STOPPED)
        save("finish_turn", turn)
        raise
    except Exception as exc:
        # A bug above us (an on_event callback) must not leave the turn "streaming" forever.
        turn.fail(exc)
        turn.finish()
        save("finish_turn", turn)
        raise
    _settle(turn, host)
    save("finish_turn", turn)
    return _done(turn, storage_error)


def _settle(turn: Turn, host: Host) -> None:
    """Finish the turn and, for a turn the host cut short, say why in one line."""
    turn.finish()
    if turn.status == TRUNCATED and turn.error is None:
        from glmchat.protocol.faults import describe_finish

        turn.error = describe_finish(host, turn.finish_reason)
        turn.error_kind = _FINISH_KIND.get(turn.finish_reason or "", "truncated")
    elif turn.status == ERROR and not turn.error:
        turn.error = f"{host.name}: the request failed — retry"


def _dropped(host: Host, turn: Turn, retry_hint: str) -> ConnectionDropped:
    """The drop said in terms of what the turn had received: the client only knew bytes came."""
    thinking_only = turn.first_reasoning_at is not None and turn.first_content_at is None and not turn.tool_calls
    return ConnectionDropped.describe(host.name, while_thinking=thinking_only, retry=retry_hint)


def _done(turn: Turn, storage_error: StorageError | None) -> Turn:
    if storage_error is not None:
        raise storage_error
    return turn
