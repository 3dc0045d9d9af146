"""Alt keys as xterm-style terminals and tmux send them.

Without the kitty keyboard protocol, a terminal sends Alt+key as ESC followed
by the key's own byte: Alt+D is ``ESC d``, Alt+Enter is ``ESC CR``. Textual's
input parser (8.2) reads ``ESC d`` as the key "alt+d" (its `character` is still
"d", which is why a text area types it unless told otherwise: see
`glmchat.ui.widgets.composer.PromptArea`). But for a byte its sequence table
names (CR is "enter", TAB is "tab") the parser drops the Alt: ``ESC CR`` arrives
as a plain "enter", and Alt+Enter would send the message instead of starting a
new line.

`register_alt_keys` puts the two-byte sequences into that table as keys of
their own, which the parser looks up before it falls back to dropping the Alt.
Nothing else changes: a terminal that speaks the kitty protocol reports these
keys with their modifiers anyway, and the table is only read, never rebuilt.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class _KeyName:
    """A key as Textual's sequence table holds it (it reads only `value`)."""

    value: str


ALT_SEQUENCES: dict[str, str] = {
    "\x1b\r": "alt+enter",
}
"""Byte sequences a terminal sends for Alt+key that Textual would read without the Alt."""


def register_alt_keys() -> None:
    """Teach Textual's input parser the sequences of `ALT_SEQUENCES` (idempotent).

    A sequence Textual already names (a later Textual that fixes this itself) is
    left as it is.
    """
    from textual._ansi_sequences import ANSI_SEQUENCES_KEYS

    for sequence, key in ALT_SEQUENCES.items():
        ANSI_SEQUENCES_KEYS.setdefault(sequence, (_KeyName(key),))  # type: ignore[arg-type]
