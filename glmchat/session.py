"""Sessions and turns: pure data, and which turns a next request replays.

A turn's reasoning and answer are kept exactly as the deltas arrived: they are
only ever concatenated, never stripped, normalised or re-encoded. Preserved
thinking depends on it (the host compares what we replay with what it produced).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field, fields
from typing import Any

from glmchat.protocol.events import (
    ContentDelta,
    Event,
    Finish,
    ReasoningDelta,
    ReasoningDetailsDelta,
    StreamFailed,
    ToolCallDelta,
    UsageUpdate,
)

# Turn.status values.
STREAMING = "streaming"
"""Still receiving (or the process died while it was: see INTERRUPTED)."""
COMPLETE = "complete"
"""Finished cleanly (finish reason `stop` or `tool_calls`)."""
STOPPED = "stopped"
"""The user stopped it; what arrived is kept."""
INTERRUPTED = "interrupted"
"""The process ended mid-stream (found as `streaming` on the next start)."""
ERROR = "error"
"""The request or the stream failed; `Turn.error` says why."""
TRUNCATED = "truncated"
"""The host ended it early: `length`, `sensitive`, `network_error`, context window."""

STATUSES = (STREAMING, COMPLETE, STOPPED, INTERRUPTED, ERROR, TRUNCATED)

CLEAN_FINISH_REASONS = frozenset({"stop", "tool_calls", "end_turn"})
"""Finish reasons that make a clean reply; anything else is marked TRUNCATED."""


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Usage:
    """Token counts of one turn, as the host reported them (None: not reported)."""

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

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage:
        data = data or {}
        return cls(**{f.name: data.get(f.name) for f in fields(cls)})


@dataclass
class ToolCall:
    """One tool call; `arguments` is the original JSON string, concatenated as streamed."""

    index: int
    id: str | None = None
    name: str = ""
    arguments: str = ""
    type: str = "function"

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolCall:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class Turn:
    """One exchange: the user's text and the assistant's reply to it."""

    user_text: str
    thinking: bool
    """Whether thinking was on for this turn's request."""
    host: str = ""
    """Host id the turn was sent to (see hosts.py)."""
    model: str = ""
    id: str = field(default_factory=new_id)
    reasoning: str = ""
    """Exact concatenation of the reasoning deltas."""
    content: str = ""
    """Exact concatenation of the answer deltas."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    reasoning_details: list[dict[str, Any]] | None = None
    """OpenRouter's raw `reasoning_details`, kept for replay."""
    status: str = STREAMING
    finish_reason: str | None = None
    error: str | None = None
    """One-line message of the failure, if any."""
    error_kind: str | None = None
    """Stable name of the failure (GlmChatError.kind)."""
    usage: Usage = field(default_factory=Usage)
    created_at: float = field(default_factory=time.time)
    """When the turn was sent."""
    first_reasoning_at: float | None = None
    first_content_at: float | None = None
    finished_at: float | None = None
    include_in_context: bool | None = None
    """None: replay only if clean. True/False: the user's explicit choice."""

    # Streaming accumulation: deltas are appended to lists (O(1) per token) and
    # joined into `reasoning`/`content` when someone asks (`sync()`).
    _reasoning_parts: list[str] = field(default_factory=list, repr=False, compare=False)
    _content_parts: list[str] = field(default_factory=list, repr=False, compare=False)

    # -- streaming -------------------------------------------------------------------

    def apply(self, event: Event, now: float | None = None) -> None:
        """Fold one stream event into the turn. Cheap: no string joins here."""
        if isinstance(event, ReasoningDelta):
            if event.text:
                if self.first_reasoning_at is None:
                    self.first_reasoning_at = now if now is not None else time.time()
                self._reasoning_parts.append(event.text)
        elif isinstance(event, ContentDelta):
            if event.text:
                if self.first_content_at is None:
                    self.first_content_at = now if now is not None else time.time()
                self._content_parts.append(event.text)
        elif isinstance(event, ToolCallDelta):
            self._apply_tool_call(event)
        elif isinstance(event, ReasoningDetailsDelta):
            if self.reasoning_details is None:
                self.reasoning_details = []
            self.reasoning_details.extend(event.items)
        elif isinstance(event, UsageUpdate):
            self.usage.merge(event.usage)
        elif isinstance(event, Finish):
            if event.reason is not None:
                self.finish_reason = event.reason
        elif isinstance(event, StreamFailed):
            self.fail(event.error)

    def _apply_tool_call(self, event: ToolCallDelta) -> None:
        for call in self.tool_calls:
            if call.index == event.index:
                break
        else:
            call = ToolCall(index=event.index)
            self.tool_calls.append(call)
        if event.id:
            call.id = event.id
        if event.name:
            call.name = event.name
        call.arguments += event.arguments

    def sync(self) -> None:
        """Join pending deltas into `reasoning` and `content`."""
        if self._reasoning_parts:
            self.reasoning += "".join(self._reasoning_parts)
            self._reasoning_parts.clear()
        if self._content_parts:
            self.content += "".join(self._content_parts)
            self._content_parts.clear()

    def fail(self, error: BaseException) -> None:
        """Mark the turn failed with the error's one-line message."""
        from glmchat.errors import GlmChatError

        self.status = ERROR
        self.error = str(error) or type(error).__name__
        self.error_kind = error.kind if isinstance(error, GlmChatError) else "error"

    def finish(self, status: str | None = None, now: float | None = None) -> None:
        """End the stream: join the text and settle the status.

        With no explicit status, the finish reason decides: a clean reason gives
        COMPLETE, any other (`length`, `sensitive`, ...) gives TRUNCATED. A turn
        already marked ERROR stays so.
        """
        self.sync()
        self.finished_at = now if now is not None else time.time()
        if status is not None:
            self.status = status
        elif self.status == ERROR:
            pass
        elif self.finish_reason is None or self.finish_reason in CLEAN_FINISH_REASONS:
            self.status = COMPLETE
        else:
            self.status = TRUNCATED

    # -- derived ---------------------------------------------------------------------

    @property
    def is_clean(self) -> bool:
        return self.status == COMPLETE

    @property
    def replayable(self) -> bool:
        """Whether the next request includes this turn."""
        if self.include_in_context is not None:
            return self.include_in_context
        return self.is_clean

    @property
    def reasoning_seconds(self) -> float | None:
        """How long the model thought: first reasoning token to first answer token (or end)."""
        if self.first_reasoning_at is None:
            return None
        end = self.first_content_at or self.finished_at
        return None if end is None else max(0.0, end - self.first_reasoning_at)

    # -- (de)serialisation -------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        self.sync()
        out: dict[str, Any] = {}
        for f in fields(self):
            if f.name.startswith("_"):
                continue
            value = getattr(self, f.name)
            if f.name == "usage":
                value = value.to_dict()
            elif f.name == "tool_calls":
                value = [c.to_dict() for c in value]
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        kwargs = {f.name: data[f.name] for f in fields(cls) if not f.name.startswith("_") and f.name in data}
        kwargs["usage"] = Usage.from_dict(data.get("usage"))
        kwargs["tool_calls"] = [ToolCall.from_dict(c) for c in data.get("tool_calls") or []]
        return cls(**kwargs)


@dataclass
class Session:
    """A conversation: its settings and its turns, oldest first."""

    title: str = ""
    host: str = "zai"
    model: str = "glm-4.7"
    system_prompt: str = ""
    temperature: float | None = 1.0
    top_p: float | None = 0.95
    max_tokens: int | None = None
    preserve_thinking: bool = True
    """Send earlier reasoning back (clear_thinking=false) so the model keeps it."""
    thinking_next: bool = True
    """The composer's thinking switch, remembered per session."""
    id: str = field(default_factory=new_id)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    turns: list[Turn] = field(default_factory=list)

    def new_turn(self, text: str, thinking: bool | None = None) -> Turn:
        """Start a turn with the user's text; `thinking` defaults to the session's switch."""
        turn = Turn(
            user_text=text,
            thinking=self.thinking_next if thinking is None else thinking,
            host=self.host,
            model=self.model,
        )
        self.turns.append(turn)
        if not self.title:
            self.title = default_title(text)
        self.updated_at = turn.created_at
        return turn

    def history(self, before: Turn | None = None) -> list[Turn]:
        """Earlier turns the request for `before` (default: the last turn) replays, in order."""
        turns = self.turns
        if before is not None:
            turns = turns[: self.turns.index(before)]
        elif turns:
            turns = turns[:-1]
        return [t for t in turns if t.replayable]

    def to_dict(self, *, with_turns: bool = True) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "turns"}
        if with_turns:
            out["turns"] = [t.to_dict() for t in self.turns]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        kwargs = {f.name: data[f.name] for f in fields(cls) if f.name != "turns" and f.name in data}
        kwargs["turns"] = [Turn.from_dict(t) for t in data.get("turns") or []]
        return cls(**kwargs)


def default_title(text: str, limit: int = 60) -> str:
    """The first non-empty line of the user's text, shortened to `limit` characters."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return "New chat"


def estimate_tokens(text: str) -> int:
    """A rough token count for warnings before sending (no tokenizer at hand).

    GLM's tokenizer averages about 3.5 characters per token on English and code,
    and about one token per CJK character; we take the larger of the two reads
    so the warning errs on the side of caution.
    """
    if not text:
        return 0
    # Runs of wide characters counted by the regex engine: this is called on the whole
    # history at every send, and a per-character Python loop made that O(history) slow.
    wide = 0 if text.isascii() else sum(map(len, _WIDE_RUNS.findall(text)))
    return max(1, round((len(text) - wide) / 3.5 + wide))


_WIDE_RUNS = re.compile("[\u2e80-\U0010ffff]+")
"""Characters from U+2E80 on (CJK and beyond), which GLM's tokenizer counts about one each."""


def estimate_request_tokens(session: Session, next_text: str = "") -> int:
    """Estimated prompt tokens of a request that sends `next_text` after every replayable turn."""
    total = estimate_tokens(session.system_prompt) + estimate_tokens(next_text)
    for turn in session.turns:
        if not turn.replayable:
            continue
        total += estimate_tokens(turn.user_text) + estimate_tokens(turn.content) + 4
        if session.preserve_thinking and turn.reasoning:
            # Replayed whenever it is there, also for a turn sent with thinking off that
            # still returned reasoning (some hosts and newer models do).
            total += estimate_tokens(turn.reasoning)
    return total
