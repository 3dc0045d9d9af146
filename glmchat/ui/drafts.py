"""Composer drafts kept across runs: a small JSON file in the data dir.

The composer text of every session (and of a new session not saved yet) is
written when the user switches session, when the app quits and a moment after
typing stops, and read back at start, so text typed but not sent survives a
restart and even a killed process. The file is replaced
atomically (written beside it, then renamed): a crash mid-write leaves the old
file whole. A file that cannot be read is ignored, never fatal.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

DRAFTS_FILE = "drafts.json"

NEW_SESSION = ""
"""Key of the draft typed in a new session that has no turns yet (it has no stored id)."""


def drafts_path(data_dir: Path) -> Path:
    return data_dir / DRAFTS_FILE


def load_drafts(path: Path) -> dict[str, str]:
    """Session id -> draft text; empty when the file is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: text for key, text in data.items() if isinstance(key, str) and isinstance(text, str) and text}


def save_drafts(path: Path, drafts: dict[str, str]) -> None:
    """Write the non-empty drafts (or remove the file when there are none).

    Raises:
        OSError: The folder cannot be written.
    """
    from glmchat.files import write_atomic  # Lazy import: only when writing (not on the start path).

    kept = {key: text for key, text in drafts.items() if text}
    if not kept:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # ensure_ascii keeps lone surrogates (pasted from odd sources) writable; 0600: drafts may hold anything.
    write_atomic(path, json.dumps(kept, ensure_ascii=True), mode=0o600)


class DraftWriter:
    """Writes the drafts file from any thread; a snapshot older than one written is dropped.

    The chat screen writes from a worker thread after typing stops (a 1 MB
    draft must not stall the screen) and directly on switch and quit; the
    ticket taken on the UI thread orders them, so a slow background write can
    never put older text over newer.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._issued = 0
        self._written = 0

    def ticket(self) -> int:
        """A number for a snapshot taken now (call on the UI thread)."""
        self._issued += 1
        return self._issued

    def write(self, drafts: dict[str, str], ticket: int) -> bool:
        """Write `drafts` unless a newer snapshot is on disk already.

        Returns:
            True when the file was written.

        Raises:
            OSError: The folder cannot be written.
        """
        with self._lock:
            if ticket < self._written:
                return False
            save_drafts(self.path, drafts)
            self._written = ticket
            return True
