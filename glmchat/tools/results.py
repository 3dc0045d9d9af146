"""What a tool call gives back: the complete text for storage, a bounded text for the model, a notice for the user.

Nothing here imports `mcp`: result blocks are read by their ``type`` field, so
this module also serves code that only handles stored results.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class CallStatus(StrEnum):
    """How a tool call ended."""

    OK = "ok"
    """The tool ran and returned a result."""
    TOOL_ERROR = "tool_error"
    """The tool ran and reported an error (MCP ``isError``); the model reads the error text."""
    FAILED = "failed"
    """The call could not run or did not finish: unknown tool, bad arguments, server down or crashed."""
    TIMEOUT = "timeout"
    """No answer within the call's timeout; the call was abandoned."""
    DENIED = "denied"
    """The user did not allow the call; it never reached the server."""


@dataclass(frozen=True)
class ToolResult:
    """The outcome of one tool call, always something the model can read."""

    name: str
    """The function name the model called."""
    status: CallStatus
    text: str
    """The complete result (or the failure, in words): what is stored."""
    for_model: str
    """What goes back to the model: `text`, cut to ``[tools] max_result_chars`` with a note saying so."""
    server: str | None = None
    """The MCP server, when the name was known."""
    tool: str | None = None
    """The tool's own name on that server."""
    notice: str | None = None
    """One line for the user when something went wrong (None when all went well)."""
    duration: float = 0.0
    """Seconds from the call to its result."""

    @property
    def is_error(self) -> bool:
        return self.status is not CallStatus.OK

    @property
    def truncated(self) -> bool:
        """Whether the model was given less than the whole result."""
        return self.for_model != self.text

    @classmethod
    def denied(cls, name: str, server: str | None = None, tool: str | None = None) -> ToolResult:
        """The result to send when the user declined a call (the server never saw it)."""
        text = "The user declined this tool call; it was not run."
        return cls(name=name, status=CallStatus.DENIED, text=text, for_model=text, server=server, tool=tool)


# -- turning MCP content into text --------------------------------------------------------


def content_text(blocks: Sequence[Any], structured: Any = None) -> str:
    """The text of a result's content blocks: text joined by newlines, anything else summarised.

    A result with no content blocks but structured content gives that content as JSON.
    """
    parts: list[str] = []
    for block in blocks:
        parts.append(_block_text(block))
    if not parts and structured is not None:
        return json.dumps(structured, ensure_ascii=False)
    return "\n".join(parts)


def _field(block: Any, name: str) -> Any:
    if isinstance(block, dict):
        return block.get(name)
    return getattr(block, name, None)  # pydantic models from the SDK: plain data fields


def _block_text(block: Any) -> str:
    kind = _field(block, "type")
    if kind == "text":
        return str(_field(block, "text") or "")
    if kind in ("image", "audio"):
        mime = _field(block, "mime_type") or _field(block, "mimeType") or "unknown type"
        return f"[{kind}: {mime}, {_size_of_base64(_field(block, 'data'))}]"
    if kind == "resource_link":
        title = _field(block, "title") or _field(block, "name") or ""
        return f"[resource link: {title} <{_field(block, 'uri')}>]".replace(":  <", ": <")
    if kind == "resource":
        resource = _field(block, "resource")
        uri = _field(resource, "uri")
        text = _field(resource, "text")
        if isinstance(text, str):
            return f"[resource {uri}]\n{text}"
        mime = _field(resource, "mime_type") or _field(resource, "mimeType") or "binary"
        return f"[resource {uri}: {mime}, {_size_of_base64(_field(resource, 'blob'))}]"
    return f"[{kind or 'unknown'} content]"


def _size_of_base64(data: Any) -> str:
    if not isinstance(data, str):
        return "size unknown"
    size = len(data) * 3 // 4 - data[-2:].count("=")
    return format_size(size)


def format_size(size: int) -> str:
    if size < 1000:
        return f"{size} bytes"
    if size < 1_000_000:
        return f"{size / 1000:.1f} kB"
    return f"{size / 1_000_000:.1f} MB"


def for_model(text: str, max_chars: int) -> str:
    """`text` cut to at most `max_chars` characters, ending with a note of how much was left out."""
    if len(text) <= max_chars:
        return text
    note = f"\n[… result truncated: {len(text):,} characters in all; the first {{shown:,}} are shown]"
    shown = max(0, max_chars - len(note.format(shown=max_chars)))
    return text[:shown] + note.format(shown=shown)


# -- keeping secrets out of what is shown ------------------------------------------------------

SECRET_PIECE = 8
"""A run of this many characters of a secret counts as the secret: a piece of it is hidden too."""


def scrub(text: str, secrets: Iterable[str]) -> str:
    """`text` with every secret, and every piece of one of SECRET_PIECE characters or more, replaced by "…".

    Secrets shorter than SECRET_PIECE are replaced only whole (a short value
    like "1" cannot be told apart from ordinary text, so it is left alone below
    4 characters). A value like "Bearer abc…" is also looked for without its
    scheme word.
    """
    candidates: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        candidates.add(secret)
        candidates.update(word for word in secret.split() if len(word) >= 4)
    if not candidates or not text:
        return text
    marks: list[tuple[int, int]] = []
    for secret in candidates:
        if len(secret) < 4:
            continue
        pieces = [secret] if len(secret) < SECRET_PIECE else {
            secret[i : i + SECRET_PIECE] for i in range(len(secret) - SECRET_PIECE + 1)
        }
        for piece in pieces:
            start = text.find(piece)
            while start != -1:
                marks.append((start, start + len(piece)))
                start = text.find(piece, start + 1)
    if not marks:
        return text
    marks.sort()
    merged: list[list[int]] = []
    for start, stop in marks:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], stop)
        else:
            merged.append([start, stop])
    out: list[str] = []
    position = 0
    for start, stop in merged:
        out.append(text[position:start])
        out.append("…")
        position = stop
    out.append(text[position:])
    return "".join(out)


def one_line(text: str, limit: int = 240) -> str:
    """Text made fit for a one-line notice: whitespace runs become one space, cut to `limit`."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"
