"""The health of the database file: is it one of ours, sound, and where does a bad one go.

A corrupt, truncated, foreign or newer-schema file is moved aside (never
deleted) so a fresh database can start; opening is serialised between
processes so two starts never both migrate or both set a file aside.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

# SQLite primary result codes (the low byte of an extended code).
SQLITE_BUSY = 5
SQLITE_LOCKED = 6
SQLITE_READONLY = 8
SQLITE_IOERR = 10
SQLITE_CORRUPT = 11
SQLITE_FULL = 13
SQLITE_CANTOPEN = 14
SQLITE_NOTADB = 26


class BadDatabase(Exception):
    """The file cannot be used as glmchat's database; `kind` names the reason in the set-aside name."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def result_code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def is_busy(exc: BaseException) -> bool:
    return result_code(exc) in (SQLITE_BUSY, SQLITE_LOCKED)


def is_corruption(exc: BaseException) -> bool:
    return result_code(exc) in (SQLITE_CORRUPT, SQLITE_NOTADB)


def header_problem(path: Path) -> str | None:
    """A reason the file cannot be a sound SQLite database, judged from its header and size."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return None
    if size == 0:
        return None  # SQLite treats an empty file as an empty database
    with path.open("rb") as handle:
        head = handle.read(100)
    if not head.startswith(b"SQLite format 3\x00"[: len(head)]) or len(head) < 16:
        return "not a SQLite database"
    if len(head) < 100:
        return f"truncated ({size} bytes)"
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    header_valid = head[24:28] == head[92:96]
    wal = path.with_name(path.name + "-wal")
    wal_pending = wal.exists() and wal.stat().st_size > 0
    # While a WAL holds frames, the main file may legitimately lag its header.
    if pages and header_valid and not wal_pending and size < pages * page_size:
        return f"truncated ({size} of {pages * page_size} bytes)"
    return None


def set_aside(path: Path, kind: str) -> Path:
    """Rename the database (and its -wal/-shm) to `<name>.<kind>-<stamp>`; return the new path."""
    base = f"{path.name}.{kind}-{time.strftime('%Y%m%d-%H%M%S')}"
    target = path.with_name(base)
    counter = 2
    while target.exists():
        target = path.with_name(f"{base}-{counter}")
        counter += 1
    os.replace(path, target)
    for suffix in ("-wal", "-shm", "-journal"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.replace(side, target.with_name(target.name + suffix))
    return target


@contextlib.contextmanager
def open_lock(path: Path) -> Iterator[None]:
    """Serialise opening (checks, setting aside, migrations) between processes."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows: SQLite's own locking must do
        yield
        return
    lock_path = path.with_name(path.name + ".lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        yield  # a read-only folder: nothing to serialise with
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def quick_check(path: Path | str) -> str | None:
    """SQLite's `quick_check` on a database file, read-only: the first problem, or None if it is sound."""
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    except sqlite3.Error as exc:
        return str(exc)
    try:
        rows = [row[0] for row in conn.execute("PRAGMA quick_check")]
    except sqlite3.Error as exc:
        return str(exc)
    finally:
        conn.close()
    return None if rows == ["ok"] else str(rows[0] if rows else "no answer")
