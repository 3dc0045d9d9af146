"""The parser skeleton every dialect shares, and small readers for JSON payloads.

The skeleton guarantees the event contract: a stream ends with exactly one
`Finish` or one `StreamFailed`, nothing comes after it, and no input, however
broken, makes `feed` or `close` raise.
"""

from __future__ import annotations

import json
import re
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from glmchat.errors import GlmChatError
from glmchat.protocol import classify
from glmchat.protocol.events import ContentDelta, Event, Finish, ReasoningDelta, StreamFailed, UsageUpdate
from glmchat.protocol.decoding import SSEDecoder
from glmchat.usage import Usage

if TYPE_CHECKING:
    from glmchat.hosts import Host


class Malformed(Exception):
    """A payload that is not the JSON we expect (carries a sample for the message)."""

    def __init__(self, sample: str) -> None:
        super().__init__(sample)
        self.sample = sample


class BaseParser:
    """Feed/close bookkeeping; dialects implement `_feed` and `_close`.

    Subclasses append events to `out` and call `_end` (clean end) or `_fail`;
    once either ran, the parser ignores everything else.
    """

    def __init__(self, host: Host) -> None:
        self.host = host
        self._done = False
        self._finish_reason: str | None = None
        self._saw_finish = False

    @property
    def done(self) -> bool:
        return self._done

    def feed(self, data: bytes) -> list[Event]:
        if self._done or not data:
            return []
        out: list[Event] = []
        self._guarded(self._feed, data, out)
        return out

    def close(self) -> list[Event]:
        if self._done:
            return []
        out: list[Event] = []
        self._guarded(self._close, None, out)
        if not self._done:
            if self._saw_finish:
                self._end(out)  # a finish reason but no [DONE]: the answer is complete
            else:
                self._fail(classify.ended_early(self.host), out)
        return out

    def _guarded(self, step: Any, data: bytes | None, out: list[Event]) -> None:
        try:
            if data is None:
                step(out)
            else:
                step(data, out)
        except GlmChatError as exc:
            self._fail(exc, out)
        except Malformed as exc:
            self._fail(classify.malformed_chunk(self.host, exc.sample), out)
        except Exception as exc:  # noqa: BLE001 - a parser bug must end the stream, not the app
            self._fail(classify.internal_error(self.host, exc), out)

    # -- for subclasses --------------------------------------------------------------

    def _feed(self, data: bytes, out: list[Event]) -> None:
        raise NotImplementedError

    def _close(self, out: list[Event]) -> None:
        raise NotImplementedError

    def _set_finish(self, reason: Any) -> None:
        if isinstance(reason, str) and reason:
            self._finish_reason = reason
            self._saw_finish = True

    def _end(self, out: list[Event]) -> None:
        if not self._done:
            out.append(Finish(self._finish_reason))
            self._done = True

    def _fail(self, error: GlmChatError, out: list[Event]) -> None:
        if not self._done:
            out.append(StreamFailed(error))
            self._done = True


class SSEParser(BaseParser):
    """A dialect that streams SSE events, or answers with one JSON body when not streaming.

    Subclasses implement `_on_event` (one SSE event) and `_parse_body` (the whole body).
    """

    def __init__(self, host: Host, *, stream: bool = True) -> None:
        super().__init__(host)
        self._stream = stream
        self._sse = SSEDecoder(host.name)
        self._body: list[bytes] = []

    def _feed(self, data: bytes, out: list[Event]) -> None:
        if not self._stream:
            self._body.append(data)
            return
        self._drain(self._sse.feed(data), out)

    def _close(self, out: list[Event]) -> None:
        if not self._stream:
            self._parse_body(b"".join(self._body), out)
            return
        self._drain(self._sse.close(), out)

    def _drain(self, events: Any, out: list[Event]) -> None:
        for event in events:
            self._on_event(event, out)
            if self._done:
                return
        if self._sse.failure is not None:
            raise self._sse.failure

    def _on_event(self, event: Any, out: list[Event]) -> None:
        raise NotImplementedError

    def _parse_body(self, raw: bytes, out: list[Event]) -> None:
        raise NotImplementedError


class BodyKind(StrEnum):
    """What a 2xx response body turned out to be."""

    STREAM = "stream"
    """What the dialect streams (SSE events, NDJSON lines), or the JSON body a non-streaming request asked for."""
    JSON = "json"
    """One JSON document where a stream was asked for (a whole completion, or an error object)."""
    HTML = "html"
    """A web page: the base URL reached a website, a login portal or a proxy, not the API."""


_HTML_START = re.compile(rb"\s*(?:<!doctype\s+html|<html|<head|<body|<\?xml|<title|<h1|<center|<!--)", re.IGNORECASE)


def sniff_body(content_type: str, head: bytes, dialect: str, *, stream: bool) -> BodyKind:
    """Decide from the Content-Type and the first bytes how to read a 2xx body.

    Args:
        content_type: The response's Content-Type header ("" when absent).
        head: The first bytes of the body (at least the first non-blank one, when there is one).
        dialect: The host's dialect (a `hosts.Dialect`).
        stream: Whether the request asked for a stream.
    """
    ctype = content_type.split(";", 1)[0].strip().lower()
    start = head.lstrip()[:1]
    if start == b"<" and ctype in ("", "text/plain", "application/octet-stream"):
        ctype = "text/html" if _HTML_START.match(head[:512]) else ctype
    if ctype in ("text/html", "application/xhtml+xml") or _HTML_START.match(head[:512]):
        return BodyKind.HTML
    if not stream or dialect == "ollama":
        return BodyKind.STREAM  # NDJSON lines are JSON objects: Ollama's parser reads either
    # The first byte decides over the header: an SSE stream never starts with "{" or "["
    # (proxies mislabel both ways), and "data:" under a JSON Content-Type is still a stream.
    if start in (b"{", b"["):
        return BodyKind.JSON
    return BodyKind.STREAM


def loads(text: str) -> Any:
    """json.loads that reports any failure (including absurd nesting) as Malformed."""
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        raise Malformed(text[:80]) from None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def as_number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return None
    return None


def dig(obj: Any, *keys: str) -> Any:
    """obj[k1][k2]… or None when any step is missing or not a dict."""
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def first_str(obj: dict[str, Any], names: tuple[str, ...]) -> str:
    """The first of `names` that holds a non-empty string ("" if none does)."""
    for name in names:
        value = obj.get(name)
        if isinstance(value, str) and value:
            return value
    return ""


def openai_usage(obj: Any, extra: Any = None) -> UsageUpdate | None:
    """Usage from an OpenAI-style `usage` object (None if it reports nothing).

    `extra` is llama.cpp's `timings`, whose `cache_n` is the prompt cache hit
    when `usage` has no `cached_tokens`.
    """
    if not isinstance(obj, dict):
        return None
    reasoning = as_int(dig(obj, "completion_tokens_details", "reasoning_tokens"))
    if reasoning is None:
        reasoning = as_int(obj.get("reasoning_tokens"))  # SGLang
    cached = as_int(dig(obj, "prompt_tokens_details", "cached_tokens"))
    if cached is None and isinstance(extra, dict):
        cached = as_int(extra.get("cache_n"))
    usage = Usage(
        prompt_tokens=as_int(obj.get("prompt_tokens")),
        completion_tokens=as_int(obj.get("completion_tokens")),
        cached_tokens=cached,
        reasoning_tokens=reasoning,
        cost=as_number(obj.get("cost")),
    )
    return UsageUpdate(usage) if any(v is not None for v in usage.to_dict().values()) else None


def tool_arguments(value: Any) -> str:
    """Tool-call arguments as the JSON string to store (the original string when given one)."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def text_deltas(reasoning: Any, content: Any, out: list[Event]) -> None:
    """Append a ReasoningDelta and a ContentDelta for whichever of the two is a non-empty string."""
    if isinstance(reasoning, str) and reasoning:
        out.append(ReasoningDelta(reasoning))
    if isinstance(content, str) and content:
        out.append(ContentDelta(content))
