"""What every dialect shares: the request, the parser protocol, the body encoding.

This module imports nothing from `glmchat.session`: `session.py` imports the
events of this package, so the package's own import must stay free of it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from glmchat.protocol.events import Event


@dataclass
class Request:
    """One HTTP request for a turn, ready to send.

    `headers` never hold the Authorization header: the client adds the key at
    the last moment so a Request can be logged, stored or shown safely.
    """

    url: str
    body: dict[str, Any] | list[Any]
    """A JSON object (chat, Ollama) or, for Runware's task API, a JSON array of tasks."""
    headers: dict[str, str] = field(default_factory=dict)
    stream: bool = True
    """Whether the response is a stream (pick the parser with `new_parser(host, stream=...)`)."""

    def encoded(self) -> bytes:
        """The body as the bytes to send (see `encode_body`)."""
        return encode_body(self.body)


class Parser(Protocol):
    """Turns the bytes of one response into events.

    `feed` may be called with any split of the bytes (even inside a UTF-8
    character or a line end). Its last event, at the latest after `close()`,
    is exactly one `Finish` (clean end) or one `StreamFailed`; after that both
    methods return nothing.
    """

    def feed(self, data: bytes) -> list[Event]: ...

    def close(self) -> list[Event]: ...

    @property
    def done(self) -> bool:
        """True once the final event was produced (the client may stop reading)."""
        ...


# Lone surrogates: a str can hold them (a JSON "\ud800" escape decodes to one),
# UTF-8 cannot. They can only occur inside JSON strings of the dumped text.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _escape_surrogate(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def encode_body(body: dict[str, Any] | list[Any]) -> bytes:
    """Compact JSON in UTF-8 (non-ASCII kept as is), exact for every str.

    A lone surrogate is written as its `\\uXXXX` escape, so the host decodes the
    very string the parser produced from the host's own escape. (A high surrogate
    directly followed by a low one is written as two escapes, which any JSON
    decoder reads as the one character they spell in UTF-16.)

    Raises:
        ValueError: the body holds NaN or infinity (not JSON).
    """
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub(_escape_surrogate, text).encode("utf-8")


def deep_merge(target: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Merge `extra` into `target` in place: nested dicts merge, anything else replaces."""
    for key, value in extra.items():
        current = target.get(key)
        if isinstance(value, dict) and isinstance(current, dict):
            deep_merge(current, value)
        elif isinstance(value, dict):
            target[key] = deep_merge({}, value)
        else:
            target[key] = value
    return target


def json_headers(accept: str) -> dict[str, str]:
    """Headers every dialect sends (no auth: the client adds it)."""
    return {
        "Content-Type": "application/json",
        "Accept": accept,
        # Z.ai and BigModel answer errors in Chinese unless asked otherwise; harmless elsewhere.
        "Accept-Language": "en-US,en",
    }
