"""Sessions, turns and steps: pure data, and which of them a next request replays.

A session is a tree of turns: each turn points to the turn it answers after
(`parent_id`), so editing an earlier message or regenerating an answer adds a
sibling and keeps the old path. A `Session` object holds one path of that
tree, root first (`turns`), and how many siblings each turn on it has.

A turn is a sequence of steps. A plain reply is one step; with tools, each
request the model answers is a step: its reasoning, its text, the tool calls
it made and the results sent back, after which the next step starts.

Every reasoning and answer text is kept exactly as its deltas arrived: only
ever concatenated, never stripped, normalised or re-encoded. Preserved thinking
depends on it (the host compares what is replayed with what it produced).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, fields
from enum import StrEnum
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
    WebSearchResults,
)
from glmchat.usage import Usage


class TurnStatus(StrEnum):
    """How a turn stands (stored as its value)."""

    STREAMING = "streaming"
    """Still receiving (or the process died while it was: see INTERRUPTED)."""
    COMPLETE = "complete"
    """Finished cleanly (finish reason `stop`, or `tool_calls` answered by a next step)."""
    STOPPED = "stopped"
    """The user stopped it; what arrived is kept."""
    INTERRUPTED = "interrupted"
    """The process ended mid-stream (found streaming when a store opened)."""
    ERROR = "error"
    """The request or the stream failed; `Turn.error` says why."""
    TRUNCATED = "truncated"
    """The host ended it early: `length`, `sensitive`, `network_error`, context window."""


CLEAN_FINISH_REASONS = frozenset({"stop", "tool_calls", "end_turn"})
"""Finish reasons that make a clean reply; anything else is marked TRUNCATED."""


def new_id() -> str:
    return uuid.uuid4().hex


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
class ToolResult:
    """What a tool call gave back: the complete text (what the model is sent may be shorter)."""

    call_id: str | None
    name: str
    content: str
    is_error: bool = False
    sent_limit: int | None = None
    """Characters of `content` the model was sent (None: all); a replay sends exactly the same."""

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ToolResult:
        return cls(**{f.name: data[f.name] for f in fields(cls) if f.name in data})


@dataclass
class Step:
    """One request of a turn and what the model answered to it."""

    reasoning: str = ""
    """Exact concatenation of the reasoning deltas (after `sync`)."""
    content: str = ""
    """Exact concatenation of the answer deltas (after `sync`)."""
    tool_calls: list[ToolCall] = field(default_factory=list)
    tool_results: list[ToolResult] = field(default_factory=list)
    """One per call, in call order, once the calls ran."""
    reasoning_details: list[dict[str, Any]] | None = None
    """OpenRouter's raw `reasoning_details`, kept for replay."""
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    web_search: list[dict[str, Any]] | None = None
    """The sources the host's built-in web search returned for this step (Z.ai), as sent."""

    pending_reasoning: list[str] = field(default_factory=list, repr=False, compare=False)
    """Reasoning deltas not joined into `reasoning` yet (appending is O(1) per token)."""
    pending_content: list[str] = field(default_factory=list, repr=False, compare=False)
    """Answer deltas not joined into `content` yet."""

    def sync(self) -> None:
        """Join the pending deltas into `reasoning` and `content`."""
        if self.pending_reasoning:
            self.reasoning += "".join(self.pending_reasoning)
            self.pending_reasoning.clear()
        if self.pending_content:
            self.content += "".join(self.pending_content)
            self.pending_content.clear()

    def apply_tool_call(self, event: ToolCallDelta) -> None:
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

    def to_dict(self) -> dict[str, Any]:
        self.sync()
        return {
            "reasoning": self.reasoning,
            "content": self.content,
            "tool_calls": [c.to_dict() for c in self.tool_calls],
            "tool_results": [r.to_dict() for r in self.tool_results],
            "reasoning_details": self.reasoning_details,
            "finish_reason": self.finish_reason,
            "usage": self.usage.to_dict(),
            "web_search": self.web_search,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Step:
        return cls(
            reasoning=data.get("reasoning") or "",
            content=data.get("content") or "",
            tool_calls=[ToolCall.from_dict(c) for c in data.get("tool_calls") or []],
            tool_results=[ToolResult.from_dict(r) for r in data.get("tool_results") or []],
            reasoning_details=data.get("reasoning_details"),
            finish_reason=data.get("finish_reason"),
            usage=Usage.from_dict(data.get("usage")),
            web_search=data.get("web_search") if isinstance(data.get("web_search"), list) else None,
        )


def _one_step() -> list[Step]:
    return [Step()]


@dataclass
class Turn:
    """One exchange: the user's text and the assistant's reply to it, in one or more steps."""

    user_text: str
    thinking: bool
    """Whether thinking was on for this turn's requests."""
    host: str = ""
    """Host id the turn was sent to (see hosts.py)."""
    model: str = ""
    id: str = field(default_factory=new_id)
    parent_id: str | None = None
    """The turn this one follows (None: the first of its branch)."""
    steps: list[Step] = field(default_factory=_one_step)
    status: TurnStatus = TurnStatus.STREAMING
    finish_reason: str | None = None
    error: str | None = None
    """One-line message of the failure, if any."""
    error_kind: str | None = None
    """Stable name of the failure (GlmChatError.kind)."""
    created_at: float = field(default_factory=time.time)
    """When the turn was sent."""
    first_reasoning_at: float | None = None
    first_content_at: float | None = None
    finished_at: float | None = None
    include_in_context: bool | None = None
    """None: replay only if clean. True/False: the user's explicit choice."""
    thinking_level: str | None = None
    """The thinking level sent, for models that take one (None: on/off only)."""

    # -- the text of every step -----------------------------------------------------------

    @property
    def step(self) -> Step:
        """The current (last) step."""
        return self.steps[-1]

    @property
    def reasoning(self) -> str:
        """All the turn's reasoning, step after step (for display, search and estimates)."""
        self.sync()
        return "".join(step.reasoning for step in self.steps)

    @property
    def content(self) -> str:
        """All the turn's answer text, step after step."""
        self.sync()
        return "".join(step.content for step in self.steps)

    @property
    def usage(self) -> Usage:
        """The token counts (and cost) of every step added up."""
        if len(self.steps) == 1:
            return self.steps[0].usage
        return Usage.total(step.usage for step in self.steps)

    @property
    def last_usage(self) -> Usage:
        """Usage of the last step that reported a prompt (its prompt is the context the turn ended with)."""
        for step in reversed(self.steps):
            if step.usage.prompt_tokens is not None:
                return step.usage
        return self.steps[-1].usage

    # -- streaming -------------------------------------------------------------------------

    def apply(self, event: Event, now: float | None = None) -> None:
        """Fold one stream event into the current step. Cheap: no string joins here."""
        step = self.steps[-1]
        if isinstance(event, ReasoningDelta):
            if event.text:
                if self.first_reasoning_at is None:
                    self.first_reasoning_at = now if now is not None else time.time()
                step.pending_reasoning.append(event.text)
        elif isinstance(event, ContentDelta):
            if event.text:
                if self.first_content_at is None:
                    self.first_content_at = now if now is not None else time.time()
                step.pending_content.append(event.text)
        elif isinstance(event, ToolCallDelta):
            step.apply_tool_call(event)
        elif isinstance(event, ReasoningDetailsDelta):
            if step.reasoning_details is None:
                step.reasoning_details = []
            step.reasoning_details.extend(event.items)
        elif isinstance(event, UsageUpdate):
            step.usage.merge(event.usage)
        elif isinstance(event, WebSearchResults):
            step.web_search = [*(step.web_search or []), *event.items]
        elif isinstance(event, Finish):
            if event.reason is not None:
                step.finish_reason = event.reason
                self.finish_reason = event.reason
        elif isinstance(event, StreamFailed):
            self.fail(event.error)

    def begin_step(self) -> Step:
        """Start the next step (after the current one's tool results are in)."""
        self.sync()
        step = Step()
        self.steps.append(step)
        return step

    def sync(self) -> None:
        """Join pending deltas into each step's `reasoning` and `content`."""
        for step in self.steps:
            step.sync()

    def fail(self, error: BaseException) -> None:
        """Mark the turn failed with the error's one-line message."""
        from glmchat.errors import GlmChatError

        self.status = TurnStatus.ERROR
        self.error = str(error) or type(error).__name__
        self.error_kind = error.kind if isinstance(error, GlmChatError) else "error"

    def finish(self, status: TurnStatus | None = None, now: float | None = None) -> None:
        """End the stream: join the text and settle the status.

        With no explicit status, the finish reason decides: a clean reason gives
        COMPLETE, any other (`length`, `sensitive`, ...) gives TRUNCATED. A turn
        already marked ERROR stays so.
        """
        self.sync()
        self.finished_at = now if now is not None else time.time()
        if status is not None:
            self.status = status
        elif self.status == TurnStatus.ERROR:
            pass
        elif self.finish_reason is None or self.finish_reason in CLEAN_FINISH_REASONS:
            self.status = TurnStatus.COMPLETE
        else:
            self.status = TurnStatus.TRUNCATED

    # -- derived ---------------------------------------------------------------------------

    @property
    def is_clean(self) -> bool:
        return self.status == TurnStatus.COMPLETE

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

    # -- (de)serialisation -------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "steps":
                value = [step.to_dict() for step in value]
            elif f.name == "status":
                value = str(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Turn:
        """A turn from `to_dict`'s shape, or from the one-step shape of glmchat 0.1 (text at the top)."""
        kwargs = {f.name: data[f.name] for f in fields(cls) if f.name in data and f.name != "steps"}
        if "status" in kwargs:
            kwargs["status"] = TurnStatus(kwargs["status"])
        if "steps" in data:
            kwargs["steps"] = [Step.from_dict(s) for s in data["steps"]] or _one_step()
        else:
            kwargs["steps"] = [Step.from_dict(data)]
        return cls(**kwargs)


@dataclass(frozen=True)
class Branch:
    """Where a turn stands among its siblings (the turns that follow the same turn)."""

    position: int
    """1-based, oldest first."""
    count: int


@dataclass
class Session:
    """A conversation: its settings and one path through its tree of turns, root first."""

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
    thinking_level_next: str | None = None
    """The thinking level chosen for the next turn, for models that have levels (None: the model's default)."""
    tool_servers: list[str] = field(default_factory=list)
    """The [mcp.NAME] servers whose tools this session's turns may call (chosen in settings)."""
    web_search: bool = False
    """Offer the host's built-in web search (Z.ai's `web_search` tool) to this session's turns."""
    id: str = field(default_factory=new_id)
    created_at: float = field(default_factory=time.time)
    updated_at: float = field(default_factory=time.time)
    turns: list[Turn] = field(default_factory=list)
    """The current path: the first turn, then each one's chosen follower, down to the head."""
    branches: dict[str, Branch] = field(default_factory=dict, compare=False)
    """Turn id -> its place among its siblings, for turns on the path that have some."""

    @property
    def head(self) -> Turn | None:
        """The last turn of the current path (the next turn follows it)."""
        return self.turns[-1] if self.turns else None

    def new_turn(self, text: str, thinking: bool | None = None, *, after: Turn | None = None) -> Turn:
        """Start a turn with the user's text and put it at the end of the path.

        Args:
            text: The user's message.
            thinking: Thinking for this turn; default the session's switch.
            after: The turn it follows; default the head. Following an earlier
                turn starts a new branch there: the path is cut after `after`.
        """
        parent = self.head if after is None else after
        if after is not None:
            index = next(i for i, t in enumerate(self.turns) if t is after)
            del self.turns[index + 1 :]
        thinking = self.thinking_next if thinking is None else thinking
        turn = Turn(
            user_text=text,
            thinking=thinking,
            host=self.host,
            model=self.model,
            parent_id=parent.id if parent is not None else None,
            # The session's level goes with the turn; the runner settles it against the model.
            thinking_level=self.thinking_level_next if thinking else None,
        )
        self.turns.append(turn)
        if not self.title:
            self.title = default_title(text)
        self.updated_at = turn.created_at
        return turn

    def branch_before(self, turn: Turn) -> Turn | None:
        """The turn a sibling of `turn` would follow (None for a first turn)."""
        index = next(i for i, t in enumerate(self.turns) if t is turn)
        return self.turns[index - 1] if index else None

    def history(self, before: Turn | None = None) -> list[Turn]:
        """Earlier turns the request for `before` (default: the head) replays, in order."""
        turns = self.turns
        if before is not None:
            turns = turns[: next(i for i, t in enumerate(turns) if t is before)]
        elif turns:
            turns = turns[:-1]
        return [t for t in turns if t.replayable]

    def settings(self) -> dict[str, Any]:
        """Everything but the turns (what a session row stores)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("turns", "branches")}

    def to_dict(self, *, with_turns: bool = True) -> dict[str, Any]:
        out = self.settings()
        if with_turns:
            out["turns"] = [t.to_dict() for t in self.turns]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Session:
        kwargs = {f.name: data[f.name] for f in fields(cls) if f.name not in ("turns", "branches") and f.name in data}
        kwargs["turns"] = [Turn.from_dict(t) for t in data.get("turns") or []]
        return cls(**kwargs)


@dataclass
class SessionTree:
    """A session with every turn of its tree (for the JSON export and import).

    `turns` lists parents before their children; `head` is the id of the
    current path's last turn. `session.turns` holds that path.
    """

    session: Session
    turns: list[Turn]
    head: str | None

    @classmethod
    def of(cls, session: Session) -> SessionTree:
        """A session's path as a tree of one branch (what an unsaved session, or a 0.1 export, holds)."""
        for previous, turn in zip(session.turns, session.turns[1:]):
            if turn.parent_id is None:
                turn.parent_id = previous.id
        head = session.turns[-1].id if session.turns else None
        return cls(session=session, turns=list(session.turns), head=head)

    def path_to(self, turn_id: str | None) -> list[Turn]:
        """The turns from the root to `turn_id`, in order."""
        by_id = {t.id: t for t in self.turns}
        path: list[Turn] = []
        current = by_id.get(turn_id) if turn_id else None
        while current is not None:
            path.append(current)
            current = by_id.get(current.parent_id) if current.parent_id else None
        path.reverse()
        return path


def default_title(text: str, limit: int = 60) -> str:
    """The first non-empty line of the user's text, shortened to `limit` characters."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"
    return "New chat"
