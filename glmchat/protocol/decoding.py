"""Incremental decoding of a byte stream into lines, and of lines into SSE events.

Network reads split the stream anywhere: inside a multi-byte UTF-8 character,
between the `\\r` and `\\n` of a line end, inside a field name. Both decoders
keep only what they must (the undecoded tail of a character, the unfinished
line as a list of pieces) so each `feed` costs O(new bytes), however long the
stream or a single line grows.

Text is never repaired: invalid UTF-8 ends decoding with a `StreamError`
(in `failure`), because a replaced character would make the stored reasoning
differ from what the model produced.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from glmchat.errors import StreamError

_EOL = re.compile(r"\r\n|\r|\n")

MAX_LINE = 64 * 1024 * 1024
"""Longest line (in characters) we buffer before calling the stream broken."""


class LineDecoder:
    """Bytes in, complete lines out (without their line ends).

    Lines end at `\\n`, `\\r\\n` or `\\r` (the SSE rule; NDJSON never has a raw
    `\\r` inside a line, JSON escapes it). Nothing else splits a line: U+2028
    and friends are text.
    """

    def __init__(self, host_name: str = "", *, max_line: int = MAX_LINE) -> None:
        self._host_name = host_name
        self._max_line = max_line
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._partial: list[str] = []
        self._partial_len = 0
        self._skip_lf = False
        """The last text ended with `\\r`: a `\\n` right after belongs to it."""
        self._started = False
        self._offset = 0

    failure: StreamError | None = None
    """Set when the bytes turned out not to be UTF-8; nothing is decoded after that."""

    def feed(self, data: bytes) -> list[str]:
        """Decode `data` and return the lines it completed.

        On invalid UTF-8, the lines completed before the bad byte are still
        returned and `failure` is set: the caller handles those lines, then
        reports the failure.
        """
        if self.failure is not None:
            return []
        try:
            text = self._decoder.decode(data)
        except UnicodeDecodeError as exc:
            return self._fail(exc, len(data))
        self._offset += len(data)
        if not text:
            return []
        if "\n" not in text and "\r" not in text and self._started and not self._skip_lf:
            # The common case for small reads: the middle of a line.
            self._partial.append(text)
            self._partial_len += len(text)
            if self._partial_len > self._max_line:
                raise self._too_long()
            return []
        return self._split(text)

    def close(self) -> list[str]:
        """End of input: return the remaining lines, the last one even without a line end."""
        if self.failure is not None:
            return []
        try:
            text = self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return self._fail(exc, 0)
        lines = self._split(text) if text else []
        if self._partial:
            lines.append("".join(self._partial))
            self._partial.clear()
            self._partial_len = 0
        return lines

    def _fail(self, exc: UnicodeDecodeError, fed: int) -> list[str]:
        # exc.object is the decoder's held-back bytes followed by this feed's bytes;
        # everything before exc.start is valid and may complete lines.
        lines = self._split(exc.object[: exc.start].decode("utf-8")) if exc.start else []
        position = self._offset - (len(exc.object) - fed) + exc.start
        self.failure = self._invalid(position)
        return lines

    def _invalid(self, position: int) -> StreamError:
        prefix = f"{self._host_name}: " if self._host_name else ""
        return StreamError(
            f"{prefix}the stream is not valid UTF-8 (at byte {position}) — "
            "retry; if it keeps happening, check the server or any proxy in between",
            host=self._host_name,
            code="invalid_utf8",
        )

    def _split(self, text: str) -> list[str]:
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
                if not text:
                    return []
        if not self._started:
            self._started = True
            if text[0] == "\ufeff":  # a byte-order mark is not part of the first line
                text = text[1:]
                if not text:
                    return []
        if "\r" in text:
            parts = _EOL.split(text)
            self._skip_lf = text[-1] == "\r"
        else:
            parts = text.split("\n")
        rest = parts.pop()
        if parts and self._partial:
            self._partial.append(parts[0])
            parts[0] = "".join(self._partial)
            self._partial.clear()
            self._partial_len = 0
        if rest:
            self._partial.append(rest)
            self._partial_len += len(rest)
            if self._partial_len > self._max_line:
                raise self._too_long()
        return parts

    def _too_long(self) -> StreamError:
        prefix = f"{self._host_name}: " if self._host_name else ""
        return StreamError(
            f"{prefix}the stream sent a line longer than {self._max_line:,} characters — "
            "check that the base URL points at the right API",
            host=self._host_name,
            code="line_too_long",
        )


@dataclass(frozen=True, slots=True)
class SSEEvent:
    """One dispatched server-sent event."""

    data: str
    """The event's `data:` lines joined with `\\n`."""
    event: str = ""
    """The `event:` field, empty when the server sent none (a plain message)."""


class SSEDecoder:
    """Server-sent events from a byte stream, per the WHATWG rules a chat stream needs.

    Comment lines (`: OPENROUTER PROCESSING`) and the `id`/`retry` fields are
    skipped; several `data:` lines make one event joined with `\\n`; a blank
    line dispatches. At `close()`, an event the server did not end with a
    blank line is still delivered (many servers end the stream right after
    `data: [DONE]`).
    """

    def __init__(self, host_name: str = "", *, max_line: int = MAX_LINE) -> None:
        self._lines = LineDecoder(host_name, max_line=max_line)
        self._data: list[str] = []
        self._event = ""

    @property
    def failure(self) -> StreamError | None:
        """Set when the bytes were not UTF-8 (after the events before the bad byte were returned)."""
        return self._lines.failure

    def feed(self, data: bytes) -> list[SSEEvent]:
        """Decode `data`; return the events it completed."""
        lines = self._lines.feed(data)
        return self._process(lines) if lines else []

    def close(self) -> list[SSEEvent]:
        """End of input: return what is left, including an unterminated last event."""
        events = self._process(self._lines.close())
        if self._data and self._lines.failure is None:
            events.append(self._dispatch())
        return events

    def _dispatch(self) -> SSEEvent:
        data = self._data[0] if len(self._data) == 1 else "\n".join(self._data)
        event = SSEEvent(data, self._event)
        self._data.clear()
        self._event = ""
        return event

    def _process(self, lines: list[str]) -> list[SSEEvent]:
        events: list[SSEEvent] = []
        for line in lines:
            if not line:
                if self._data:
                    events.append(self._dispatch())
                else:
                    self._event = ""
                continue
            if line[0] == ":":
                continue
            name, colon, value = line.partition(":")
            if colon and value[:1] == " ":
                value = value[1:]
            if name == "data":
                self._data.append(value)
            elif name == "event":
                self._event = value
        return events
