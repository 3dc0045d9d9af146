"""Make untrusted model output inert before it reaches a terminal or a Markdown file.

Model text may carry ANSI/OSC escape sequences (clipboard writes via OSC 52,
title changes, cursor movement, hyperlinks). We never pass control characters
through: each one is replaced by a visible stand-in, so the text stays readable
and nothing is executed. Stored text is never changed; only what is shown.
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
    """Replace every control character but tab and newline with a visible, harmless stand-in.

    ESC becomes "␛", so "\\x1b]52;c;..." shows as "␛]52;c;..." and does nothing.
    """
    if not _CONTROL.search(text):
        return text
    return _CONTROL.sub(_picture, text)


_SAFE_LINK_SCHEMES = ("http://", "https://", "mailto:")


def safe_link(url: str) -> bool:
    """Whether a link target may be made clickable (no file:, javascript:, data: ...)."""
    return url.strip().lower().startswith(_SAFE_LINK_SCHEMES)
