"""The cache-break detector: does a request extend the previous one of its session, as the prompt cache needs?

A host's prompt cache hits only as far as the new prompt repeats an earlier one
byte for byte. In a session that only grows, each request is the previous
request plus the reply and the new message: everything before is cached. If a
replay comes out different (earlier reasoning dropped or re-encoded, an answer
stripped, a tool result cut differently), the cache ends there and every token
after it is paid in full, silently.

So before each request the detector compares its messages with the previous
request of the same session on the same host, and reports the first place
where the new one stops extending the old one: the turn, the field (message,
reasoning, answer, tool calls, tool result, system prompt) and the character
offset in it. It reports only where the request *should* have extended the
old one: the same session, host, model, system prompt and preserved-thinking
setting, and the new request continues the turn the old one was for (its next
step, or the turn after it). An edit, a retry, a regenerated answer or a
branch switch starts from an earlier point on purpose and is not reported.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glmchat.hosts import Host
    from glmchat.session import Session, Turn

log = logging.getLogger("glmchat.cache")

_REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking", "reasoning_details")
"""Where the dialects carry earlier reasoning in an assistant message."""


@dataclass(frozen=True)
class CacheBreak:
    """Where a request stopped extending the previous one."""

    turn: int
    """1-based number of the turn on the session's path (0: before the first turn, the system prompt)."""
    field: str
    """"message", "reasoning", "answer", "tool calls", "tool result", "system prompt" or "messages"."""
    offset: int
    """Characters of the field that still matched."""

    def message(self) -> str:
        return f"cache broken at turn {self.turn} {self.field}, offset {self.offset:,}"


@dataclass
class _Sent:
    """What the previous request of a session was, and the facts that decide whether the next should extend it."""

    host: str
    model: str
    system_prompt: str
    preserve: bool
    turn_id: str
    messages: list[dict[str, Any]]


def _common(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _text(value: Any) -> str:
    """A field as text for comparison: strings as they are, anything else as canonical JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _fields(message: dict[str, Any]) -> list[tuple[str, str]]:
    """A message's parts in the order a template lays them out, named for the report."""
    role = message.get("role")
    if role == "assistant":
        reasoning = next((message[f] for f in _REASONING_FIELDS if message.get(f)), None)
        return [("reasoning", _text(reasoning)), ("answer", _text(message.get("content"))),
                ("tool calls", _text(message.get("tool_calls")))]
    if role == "tool":
        return [("tool result", _text(message.get("content")))]
    if role == "system":
        return [("system prompt", _text(message.get("content")))]
    return [("message", _text(message.get("content")))]


def first_difference(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> CacheBreak | None:
    """Where `new` stops starting with all of `old` (None: it extends it)."""
    turn = 0
    for index, before in enumerate(old):
        if before.get("role") == "user":
            turn += 1
        if index >= len(new):
            return CacheBreak(turn, "messages", 0)
        after = new[index]
        if before == after:
            continue
        if before.get("role") != after.get("role"):
            return CacheBreak(turn, "messages", 0)
        for (name, was), (_, now) in zip(_fields(before), _fields(after)):
            if was != now:
                return CacheBreak(turn, name, _common(was, now))
        # Same texts, other keys differ (a name, an id): the message as a whole.
        return CacheBreak(turn, "message", 0)
    return None


class CacheWatch:
    """Remembers each session's last request (per process) and checks the next one against it."""

    def __init__(self) -> None:
        self._last: dict[str, _Sent] = {}
        self.breaks: list[tuple[str, CacheBreak]] = []
        """Every break found, with its session id, oldest first."""

    def check(self, host: Host, session: Session, turn: Turn, body: Any) -> CacheBreak | None:
        """Compare the request about to be sent for `turn` with the previous one; remember this one.

        Returns the break when the request should have extended the previous one and does not.
        """
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(messages, list):
            return None  # a dialect without a message list (Runware's task API has no cache to keep)
        previous = self._last.get(session.id)
        sent = _Sent(host.id, turn.model or session.model, session.system_prompt, session.preserve_thinking, turn.id,
                     [m for m in messages if isinstance(m, dict)])
        self._last[session.id] = sent
        if previous is None or not self._should_extend(previous, sent, session, turn):
            return None
        found = first_difference(previous.messages, sent.messages)
        if found is not None:
            self.breaks.append((session.id, found))
            log.warning("session %s on %s: %s", session.id, host.id, found.message())
        return found

    @staticmethod
    def _should_extend(previous: _Sent, sent: _Sent, session: Session, turn: Turn) -> bool:
        same_settings = (previous.host, previous.model, previous.system_prompt, previous.preserve) == (
            sent.host, sent.model, sent.system_prompt, sent.preserve
        )
        if not same_settings:
            return False
        if turn.id == previous.turn_id:
            return True  # the next step of the same turn (a tool loop)
        if turn.parent_id != previous.turn_id:
            return False  # an edit, a retry, a regenerated answer, another branch
        # The turn right after the previous request's: that one is replayed only if it settled cleanly.
        parent = next((t for t in session.turns if t.id == previous.turn_id), None)
        return parent is not None and parent.replayable

    def forget(self, session_id: str) -> None:
        """Drop a session's last request (it was deleted, or its history rewritten on purpose)."""
        self._last.pop(session_id, None)
