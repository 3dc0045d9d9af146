"""Make untrusted model output inert before it reaches a terminal or a Markdown file.

Model text may carry ANSI/OSC escape sequences (clipboard writes via OSC 52,
title changes, cursor movement, hyperlinks) and bidi controls that reorder what
is shown. We never pass them through: each one is replaced by a visible
stand-in, so the text stays readable and nothing is executed. And a host may
echo an API key back (in an error, even in the answer): every key this process
knows, and every piece of one of six characters or more, is redacted in what is
shown, exported or written to an error.

Stored text is never changed (preserved thinking replays it byte for byte);
only what is shown or exported.
"""

from __future__ import annotations

import re

# C0 controls except tab and newline, DEL, and C1 controls (0x80-0x9f, which
# include the 8-bit CSI and OSC introducers). \r is included: a bare carriage
# return can overwrite what a terminal already shows.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")

# Control Pictures block: U+2400 + code for C0, U+2421 for DEL.
def _picture(match: re.Match[str]) -> str:
    ch = match.group()
    code = ord(ch)
    if ch == "\r":
        return ""  # \r\n line endings: keep the line break, drop the return
    if code < 0x20:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "\u2421"
    return f"\\x{code:02x}"


def inert(text: str) -> str:
    """Text made safe to show: controls and bidi controls visible and harmless, keys redacted.

    ESC becomes "␛", so "\\x1b]52;c;..." shows as "␛]52;c;..." and does nothing; a
    bidi control (which could reorder what is shown: "exe.txt" that reads "txt.exe")
    becomes a visible mark like "⟨U+202E⟩"; any known API key, or a piece of one of
    six characters or more, becomes "[redacted]" (see `redact`).
    """
    if _CONTROL.search(text):
        text = _CONTROL.sub(_picture, text)
    if _BIDI.search(text):
        text = _BIDI.sub(_bidi_mark, text)
    return redact(text) if _secrets else text


# Bidi controls: embeddings and overrides (U+202A-U+202E), isolates (U+2066-U+2069), the
# marks (U+200E/U+200F, U+061C). They can make text display in another order than it reads.
_BIDI = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def _bidi_mark(match: re.Match[str]) -> str:
    return f"⟨U+{ord(match.group()):04X}⟩"


_SAFE_LINK_SCHEMES = ("http://", "https://", "mailto:")


def safe_link(url: str) -> bool:
    """Whether a link target may be made clickable (no file:, javascript:, data: ...)."""
    return url.strip().lower().startswith(_SAFE_LINK_SCHEMES)


# -- secrets ------------------------------------------------------------------------------------

REDACTED = "[redacted]"
MIN_FRAGMENT = 6
"""A piece of a key this long or longer is redacted wherever it appears."""
MIN_SECRET = 8
"""Values shorter than this are not treated as keys (they would match ordinary words)."""

_secrets: set[str] = set()
_matcher: _Matcher | None = None


def remember_secret(value: str | None) -> None:
    """Add a key this process knows (from the config file or the environment) to what is redacted.

    Called where keys are read; `redact` and `inert` then hide it, and every piece
    of it of MIN_FRAGMENT characters or more, in whatever they are given.
    """
    global _matcher
    if value is None:
        return
    value = value.strip()
    if len(value) >= MIN_SECRET and value not in _secrets:
        _secrets.add(value)
        _matcher = None


def forget_secrets() -> None:
    """Forget every remembered key (tests; a process that reloads its config)."""
    global _matcher
    _secrets.clear()
    _matcher = None


def redact(text: str, extra: tuple[str, ...] | list[str] = ()) -> str:
    """`text` with every remembered key (and `extra` ones) and every piece of one of ≥ 6 characters blanked.

    The one redaction helper: error messages, stored errors, exports and what the
    CLI and the screen show all go through it. Cost: one regex scan of `text` (no
    scan at all when no key is known), plus a little work at each match.
    """
    matcher = _current_matcher(extra)
    if matcher is None or not text:
        return text
    return matcher.redact(text)


def stream_redactor(extra: tuple[str, ...] | list[str] = ()) -> StreamRedactor:
    """A redactor for text that arrives in pieces (a key split across two deltas is still found)."""
    return StreamRedactor(_current_matcher(extra))


def _current_matcher(extra: tuple[str, ...] | list[str]) -> _Matcher | None:
    global _matcher
    wanted = [s.strip() for s in extra if s and len(s.strip()) >= MIN_SECRET]
    if wanted and not set(wanted) <= _secrets:
        return _Matcher(_secrets | set(wanted))
    if not _secrets:
        return None
    if _matcher is None:
        _matcher = _Matcher(set(_secrets))
    return _matcher


class _Matcher:
    """Finds every substring of ≥ MIN_FRAGMENT characters of any of some keys in a text.

    Every such fragment contains a MIN_FRAGMENT-long piece of a key, so one regex of
    all those pieces (a few dozen per key) finds a foothold in C; each foothold is
    then grown left and right along the key as far as the text agrees with it.
    """

    def __init__(self, secrets: set[str]) -> None:
        self.secrets = sorted(secrets, key=len, reverse=True)
        grams: dict[str, list[tuple[str, int]]] = {}
        for secret in self.secrets:
            for i in range(len(secret) - MIN_FRAGMENT + 1):
                grams.setdefault(secret[i : i + MIN_FRAGMENT], []).append((secret, i))
        self.grams = grams
        self.pattern = re.compile("|".join(re.escape(g) for g in sorted(grams))) if grams else None
        self.longest = max((len(s) for s in self.secrets), default=0)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Sorted, merged (start, end) spans of key fragments in `text`."""
        if self.pattern is None:
            return []
        spans: list[tuple[int, int]] = []
        pos = 0
        search = self.pattern.search
        while True:
            match = search(text, pos)
            if match is None:
                return spans
            start, end = match.start(), match.end()
            for secret, at in self.grams[match.group()]:
                left = 0
                while start - left > 0 and at - left > 0 and text[start - left - 1] == secret[at - left - 1]:
                    left += 1
                right = 0
                tail = at + MIN_FRAGMENT
                while end + right < len(text) and tail + right < len(secret) and text[end + right] == secret[tail + right]:
                    right += 1
                span = (start - left, end + right)
                if spans and span[0] <= spans[-1][1]:
                    spans[-1] = (spans[-1][0], max(spans[-1][1], span[1]))
                else:
                    spans.append(span)
            pos = max(spans[-1][1], start + 1)

    def redact(self, text: str) -> str:
        spans = self.spans(text)
        if not spans:
            return text
        out = []
        last = 0
        for start, end in spans:
            out.append(text[last:start])
            out.append(REDACTED)
            last = end
        out.append(text[last:])
        return "".join(out)


class StreamRedactor:
    """Redacts text fed in pieces, with no delay: what is given back for a piece is final.

    A fragment that began in an earlier piece is redacted from this piece on; at most
    MIN_FRAGMENT - 1 of its characters were shown before it became recognisable.
    """

    def __init__(self, matcher: _Matcher | None) -> None:
        self._matcher = matcher
        self._tail = ""
        self._redacted_to = -1
        """Absolute position where the last redaction shown ended (to join a fragment's pieces into one mark)."""
        self._fed = 0

    def feed(self, piece: str) -> str:
        matcher = self._matcher
        if matcher is None or not piece:
            return piece
        base = self._fed - len(self._tail)
        combined = self._tail + piece
        out = []
        last = self._fed
        for start, end in matcher.spans(combined):
            start, end = start + base, end + base
            if end <= self._fed:
                continue  # wholly in what was already given back
            cut = max(start, self._fed)
            out.append(piece[last - self._fed : cut - self._fed])
            if not (start < self._fed and self._redacted_to == self._fed and cut == self._fed):
                out.append(REDACTED)
            last = end
            self._redacted_to = end
        out.append(piece[last - self._fed :])
        self._fed += len(piece)
        self._tail = combined[-(matcher.longest - 1) :] if matcher.longest > 1 else ""
        return "".join(out)
