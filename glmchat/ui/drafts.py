"""Composer drafts kept across runs: a small JSON file in the data dir.

The composer text of every session (and of a new session not saved yet) is
written when the user switches session and when the app quits, and read back
at start, so text typed but not sent survives a restart. The file is replaced
atomically (written beside it, then renamed): a crash mid-write leaves the old
file whole. A file that cannot be read is ignored, never fatal.
"""

from __future__ import annotations

import json
import os
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
    import tempfile  # Lazy import: only when writing (not on the start path).

    kept = {key: text for key, text in drafts.items() if text}
    if not kept:
        path.unlink(missing_ok=True)
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".drafts-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            # ensure_ascii keeps lone surrogates (pasted from odd sources) writable.
            json.dump(kept, handle, ensure_ascii=True)
        os.chmod(tmp, 0o600)  # drafts may hold anything the user typed
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
