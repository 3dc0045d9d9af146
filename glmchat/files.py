"""Writing a file so that a crash or a full disk never leaves half of it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def write_atomic(path: Path, text: str | Iterable[str], *, mode: int = 0o600, durable: bool = False) -> None:
    """Write `text` (UTF-8; a str, or pieces written as they come) to `path` through a temp file and a rename.

    The temp file is created 0600 (mkstemp), so a private file is never readable
    by others, not even for a moment; it gets `mode` just before the rename.

    Args:
        path: The file to (re)place.
        text: What it should hold.
        mode: Permission bits of the result.
        durable: fsync the file and its folder (for files that must survive a power cut).

    Raises:
        OSError: the folder cannot be written; the old file, if any, is left as it was.
    """
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            if isinstance(text, str):
                handle.write(text)
            else:
                for piece in text:
                    handle.write(piece)
            if durable:
                handle.flush()
                os.fsync(handle.fileno())
        if mode != 0o600:
            os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    if durable:
        _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
