"""One SQLite connection shared by the store's parts: transactions, retries, and one-line errors.

Writes run in `BEGIN IMMEDIATE` transactions with a busy timeout and a few
retries, so several glmchat processes can share the file. Every SQLite failure
leaves here as a `StorageError` naming the file and what could not be done;
nothing above the store sees an sqlite3 type.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from glmchat.errors import DamagedStorage, StorageError
from glmchat.store.files import (
    SQLITE_CANTOPEN,
    SQLITE_FULL,
    SQLITE_IOERR,
    SQLITE_READONLY,
    is_busy,
    is_corruption,
    result_code,
)

T = TypeVar("T")

BUSY_TIMEOUT_MS = 5000
BUSY_RETRIES = 4
"""Extra attempts after SQLITE_BUSY slips past the busy handler (WAL recovery, snapshots)."""


_PRIVATE = 0o600
_SIDE_FILES = ("-wal", "-shm", "-journal")


def _make_private(path: Path) -> None:
    """Create the database file 0600 if it is missing, and take group/other bits off it and its side files.

    SQLite creates the -wal and -shm files with the database file's permissions, so
    a private database keeps its side files private too, whatever the umask or the
    data folder's mode.

    An existing file is changed by its path only, never opened: closing any
    descriptor of the file drops every POSIX lock this process holds on it,
    SQLite's included. Another process then takes itself for the last connection,
    checkpoints and resets the WAL, and commits of this one are lost.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        try:
            # New: no connection can hold it yet. O_EXCL: never open one that appeared meanwhile.
            os.close(os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, _PRIVATE))
        except FileExistsError:
            pass
        except OSError:
            return  # a read-only folder or a missing one: SQLite says what is wrong
        try:
            mode = os.stat(path).st_mode
        except OSError:
            return
    except OSError:
        return
    if mode & 0o077:
        with contextlib.suppress(OSError):  # not ours to change (another user's file): leave it
            os.chmod(path, _PRIVATE)
    for suffix in _SIDE_FILES:
        with contextlib.suppress(OSError):
            side = path.with_name(path.name + suffix)
            if side.stat().st_mode & 0o077:
                os.chmod(side, _PRIVATE)


def connect(path: Path) -> sqlite3.Connection:
    """A connection in WAL mode; the file and its -wal/-shm are private to the user."""
    _make_private(path)
    conn = sqlite3.connect(str(path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA journal_mode = WAL")
        # NORMAL in WAL mode: a killed process loses nothing committed; only a
        # power cut may lose the last transactions. Much cheaper than FULL.
        conn.execute("PRAGMA synchronous = NORMAL")
        _make_private(path)  # the -wal/-shm that WAL mode just created
    except BaseException:
        conn.close()
        raise
    return conn


_OPEN_HERE: dict[str, int] = {}
"""Database files this process has a `Database` open on, and how many."""


def in_use_here(path: Path) -> bool:
    """Whether this process has the file open as a database: then it must not open it by hand (see `_make_private`)."""
    return _OPEN_HERE.get(os.path.realpath(path), 0) > 0


class Database:
    """The connection, its lock and the transaction helpers every part of the store uses."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.lock = threading.RLock()
        self._conn: sqlite3.Connection | None = conn
        self._key = os.path.realpath(path)
        _OPEN_HERE[self._key] = _OPEN_HERE.get(self._key, 0) + 1

    def close(self) -> None:
        with self.lock:
            conn, self._conn = self._conn, None
            if conn is not None:
                _OPEN_HERE[self._key] -= 1
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA optimize")  # keeps the query planner's statistics fresh; cheap
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    @property
    def closed(self) -> bool:
        return self._conn is None

    def error(self, exc: BaseException, action: str) -> StorageError:
        """A one-line StorageError for a failed database operation."""
        code = result_code(exc)
        where = self.path
        if code == SQLITE_FULL:
            message = f"Could not {action}: the disk holding {where} is full. Free some space and try again."
        elif code == SQLITE_READONLY:
            message = f"Could not {action}: the database {where} is read-only."
        elif is_corruption(exc):
            return DamagedStorage(
                f"Could not {action}: the database {where} is damaged ({exc}). "
                "Restart glmchat to set it aside and start a new one.",
                code=str(code),
            )
        elif is_busy(exc):
            message = f"Could not {action}: the database {where} stayed locked by another glmchat process."
        elif code in (SQLITE_IOERR, SQLITE_CANTOPEN):
            message = f"Could not {action}: cannot read or write {where} ({exc})."
        else:
            message = f"Could not {action}: {exc} ({where})."
        return StorageError(message, code=None if code is None else str(code))

    def _connection(self, action: str) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"Could not {action}: the store {self.path} is closed.")
        return self._conn

    def pragma(self, action: str, name: str) -> int:
        """One integer pragma, read outside a transaction (the cheapest question the file answers)."""
        with self.lock:
            conn = self._connection(action)
            try:
                return conn.execute(f"PRAGMA {name}").fetchone()[0]
            except sqlite3.Error as exc:
                raise self.error(exc, action) from exc

    def write(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one IMMEDIATE transaction, retrying while another process holds the lock."""
        with self.lock:
            conn = self._connection(action)
            for attempt in range(BUSY_RETRIES + 1):
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    if is_busy(exc) and attempt < BUSY_RETRIES:
                        time.sleep(0.05 * 2**attempt)
                        continue
                    raise self.error(exc, action) from exc
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException as exc:
                    with contextlib.suppress(sqlite3.Error):
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        if is_busy(exc) and attempt < BUSY_RETRIES:
                            time.sleep(0.05 * 2**attempt)
                            continue
                        raise self.error(exc, action) from exc
                    raise
            raise AssertionError("unreachable")  # pragma: no cover

    def read(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read in one transaction (a consistent snapshot)."""
        with self.lock:
            conn = self._connection(action)
            for attempt in range(BUSY_RETRIES + 1):
                try:
                    conn.execute("BEGIN")
                    try:
                        return work(conn)
                    except (ValueError, TypeError) as exc:
                        # A row that does not decode (a damaged file, or a value no glmchat wrote).
                        raise DamagedStorage(
                            f"Could not {action}: a stored row could not be read ({type(exc).__name__}) in {self.path}."
                        ) from exc
                    finally:
                        with contextlib.suppress(sqlite3.Error):
                            if conn.in_transaction:
                                conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    if is_busy(exc) and attempt < BUSY_RETRIES:
                        time.sleep(0.05 * 2**attempt)
                        continue
                    raise self.error(exc, action) from exc
            raise AssertionError("unreachable")  # pragma: no cover


# -- who owns a streaming turn -------------------------------------------------------------------


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) of a process from /proc, or None when there is no such process."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    rest = raw[raw.rfind(")") + 2 :].split()
    return (rest[0], rest[19]) if len(rest) > 19 else None


_HAVE_PROC = sys.platform.startswith("linux") and Path("/proc/self/stat").exists()


@dataclass(frozen=True)
class Owner:
    """The process streaming a turn: a dead owner on this machine means the turn was interrupted."""

    pid: int
    host: str
    start: str | None
    """Process start time (Linux): tells a reused pid from the original process."""

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        stat = _proc_stat(pid) if _HAVE_PROC else None
        return cls(pid, socket.gethostname(), stat[1] if stat else None)

    def alive(self) -> bool:
        """Whether the process is still running (only meaningful on this machine)."""
        if _HAVE_PROC:
            stat = _proc_stat(self.pid)
            if stat is None or stat[0] in ("Z", "X"):
                return False
            return self.start is None or stat[1] == self.start
        if sys.platform == "win32":
            return _windows_pid_alive(self.pid)
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except OSError:
            return True  # exists, owned by someone else
        return True


def _windows_pid_alive(pid: int) -> bool:  # pragma: no cover - exercised on Windows only
    # os.kill(pid, 0) would terminate the process on Windows: ask the kernel instead.
    import ctypes

    kernel32 = ctypes.windll.kernel32  # type: ignore[attr-defined]
    handle = kernel32.OpenProcess(0x1000, False, pid)  # PROCESS_QUERY_LIMITED_INFORMATION
    if not handle:
        return False
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == 259  # STILL_ACTIVE
    finally:
        kernel32.CloseHandle(handle)
