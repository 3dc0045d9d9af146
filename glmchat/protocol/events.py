"""Typed stream events: what every dialect's parser turns bytes into."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from glmchat.errors import GlmChatError
    from glmchat.session import Usage


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of the model's reasoning, exactly as it arrived."""

    text: str


@dataclass(frozen=True, slots=True)
class ContentDelta:
    """A piece of the answer, exactly as it arrived."""

    text: str


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """A tool call or a fragment of one (fragments share `index`; `arguments` concatenate)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@dataclass(frozen=True, slots=True)
class ReasoningDetailsDelta:
    """OpenRouter's `reasoning_details` items, raw, to send back unmodified."""

    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class WebSearchResults:
    """The sources Z.ai's built-in web search found for this reply (its top-level `web_search` items), raw."""

    items: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class UsageUpdate:
    """Token counts (and cost) from any chunk that carries them."""

    usage: Usage


@dataclass(frozen=True, slots=True)
class Finish:
    """The host said the turn is over, and why (`stop`, `length`, `sensitive`, ...)."""

    reason: str | None


@dataclass(frozen=True, slots=True)
class StreamFailed:
    """The stream carried an error, was malformed, or ended early. Always the last event."""

    error: GlmChatError


@dataclass(frozen=True, slots=True)
class Retrying:
    """The client is waiting `delay` seconds before retry number `attempt` (emitted by client.py)."""

    attempt: int
    delay: float
    error: GlmChatError


Event = Union[
    ReasoningDelta, ContentDelta, ToolCallDelta, ReasoningDetailsDelta, WebSearchResults, UsageUpdate, Finish,
    StreamFailed, Retrying,
]
