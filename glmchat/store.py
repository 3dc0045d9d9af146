"""SQLite persistence for sessions and turns: crash-safe, shared between processes, searchable.

One database file (`glmchat.db` in the data dir) in WAL mode holds every session.
Design points, each for a promise glmchat makes:

- **Exact text.** Every text is stored as a BLOB of UTF-8 with ``surrogatepass``,
  and small structured fields as JSON written the same way (raw code points, not
  ``\\u`` escapes), so any Python str comes back identical: NUL, ``\\r\\n``,
  trailing spaces, lone surrogates. Full-text search indexes a separate,
  display-safe copy.
- **Cheap streaming saves.** `begin_turn` writes the turn once; `save_progress`
  appends only the text that arrived since the previous save, as rows of the
  `chunks` table; `finish_turn` writes the final turn and drops its chunks in one
  transaction. The session row is never rewritten while a turn streams.
- **Crash recovery.** A turn still marked streaming whose owner process is gone
  (same host, pid dead) is rebuilt from its chunks and marked interrupted when a
  store opens. A turn streaming in another live process is left alone.
- **Several processes.** Writes run in ``BEGIN IMMEDIATE`` transactions with a
  busy timeout and retries; a turn's position (``seq``) is assigned inside one.
- **Other writers, seen.** Every write to a session's turns moves the session's
  ``revision`` on (triggers keep it, whoever writes); `changes_since` tells a
  window what other connections did since it read the session, for the cost of
  one ``PRAGMA data_version`` when nobody else wrote anything.
- **Bad files.** A corrupt, truncated, foreign or newer-schema database is moved
  aside (never deleted) and a fresh one started; `Store.warnings` says where the
  old file went.
- **Schema versions** live in ``PRAGMA user_version``; `MIGRATIONS[i]` takes a
  database from version i to i + 1.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import socket
import sqlite3
import sys
import threading
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Iterator, TypeVar

from glmchat.errors import GlmChatError, StorageError
from glmchat.session import INTERRUPTED, STREAMING, Session, ToolCall, Turn, Usage, new_id

DB_NAME = "glmchat.db"

T = TypeVar("T")

# SQLite primary result codes (the low byte of an extended code).
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_READONLY = 8
_SQLITE_IOERR = 10
_SQLITE_CORRUPT = 11
_SQLITE_FULL = 13
_SQLITE_CANTOPEN = 14
_SQLITE_NOTADB = 26

_BUSY_TIMEOUT_MS = 5000
_BUSY_RETRIES = 4
"""Extra attempts after SQLITE_BUSY slips past the busy handler (WAL recovery, snapshots)."""

# Snippet markers: private-use characters, stripped from the indexed copy so they
# can only come from snippet() itself.
_MARK_START = "\ue000"
_MARK_END = "\ue001"


class SessionNotFoundError(GlmChatError, KeyError):
    """No session matches the given id, prefix or number (or the prefix is ambiguous)."""


# -- encodings ---------------------------------------------------------------------------


def _enc(text: str) -> bytes:
    """Exact bytes of any Python str (lone surrogates included)."""
    return text.encode("utf-8", "surrogatepass")


def _dec(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return bytes(data).decode("utf-8", "surrogatepass")


def _json_blob(value: Any) -> bytes:
    # ensure_ascii=False keeps lone surrogates as raw code points; escaping them
    # would make json.loads merge an adjacent high+low pair into one character.
    return _enc(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def _json_load(data: bytes | str | None) -> Any:
    return json.loads(_dec(data)) if data else None


def _searchable(text: str) -> str:
    """The copy of a text the full-text index gets: valid UTF-8, no NUL, no snippet markers."""
    clean = text.encode("utf-8", "replace").decode("utf-8")
    return clean.replace("\x00", " ").replace(_MARK_START, " ").replace(_MARK_END, " ")


# -- reading back whatever a database holds ---------------------------------------------------


def _readable_time(value: Any) -> float:
    """A stored time every formatter can take; 0.0 (shown as "unknown") for anything out of range."""
    from glmchat.sanity import UNKNOWN_TIME, sane_time

    return sane_time(value) or UNKNOWN_TIME


def _known_fields(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = {f.name for f in fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _readable_session(data: dict[str, Any]) -> dict[str, Any]:
    """A session dict from a row, with values no reader can take (absurd numbers, wrong types) dropped."""
    from glmchat.sanity import SESSION_FIELDS, UNKNOWN_TIME, clean_session_fields, type_ok

    data = _known_fields(Session, data)
    for name, allowed in SESSION_FIELDS.items():
        if name in data and not type_ok(data[name], allowed):
            data.pop(name)
    for name in ("created_at", "updated_at"):
        data.setdefault(name, UNKNOWN_TIME)
    return clean_session_fields(data)


def _readable_turn(data: dict[str, Any]) -> dict[str, Any]:
    """A turn dict from a row (or a progress record), with values no reader can take dropped."""
    from glmchat.sanity import TOOL_CALL_FIELDS, TURN_FIELDS, UNKNOWN_TIME, USAGE_FIELDS, clean_turn_fields, type_ok

    data = _known_fields(Turn, data)
    for name, allowed in TURN_FIELDS.items():
        if name in data and not type_ok(data[name], allowed):
            data.pop(name)
    data.setdefault("created_at", UNKNOWN_TIME)
    data = clean_turn_fields(data)
    data["usage"] = {k: v for k, v in data["usage"].items() if k in USAGE_FIELDS and type_ok(v, USAGE_FIELDS[k])}
    data["tool_calls"] = [
        {k: v for k, v in call.items() if k in TOOL_CALL_FIELDS and type_ok(v, TOOL_CALL_FIELDS[k])}
        for call in data["tool_calls"]
    ]
    if data.get("reasoning_details") is not None:
        data["reasoning_details"] = [item for item in data["reasoning_details"] if isinstance(item, dict)]
    return data


# -- public records ------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionSummary:
    """One line of the session list: what a sidebar or `sessions list` shows, without turns."""

    id: str
    number: int
    """Short number for people (`glmchat sessions show 42`); never reused."""
    title: str
    host: str
    model: str
    created_at: float
    updated_at: float
    turn_count: int


@dataclass(frozen=True)
class SearchHit:
    """A turn that matches a search."""

    session_id: str
    turn_id: str
    title: str
    """Title of the session the turn belongs to."""
    snippet: str
    """A short excerpt around the match (plain text; see `highlights`)."""
    field: str
    """Which text matched: "user_text", "content" or "reasoning"."""
    session_number: int = 0
    created_at: float = 0.0
    highlights: tuple[tuple[int, int], ...] = ()
    """(start, end) offsets of the matched words in `snippet`."""

    @property
    def number(self) -> int:
        """The session's short number (same as `session_number`)."""
        return self.session_number


@dataclass(frozen=True)
class SyncPoint:
    """Where a copy of a session stands against the database (see `Store.changes_since`)."""

    revision: int
    """The session's revision the copy was read at (0: not read from the database)."""
    data_version: int
    """This connection's `PRAGMA data_version` when it was read (-1: unknown, look at the revision)."""


NOT_SYNCED = SyncPoint(0, -1)
"""The point of a session never read from the database: every turn someone else wrote is new to it."""


@dataclass(frozen=True)
class SessionChanges:
    """What other writers changed in a session since a `SyncPoint`."""

    point: SyncPoint
    """Where the caller stands once it has applied these changes."""
    deleted: bool = False
    """The session is no longer in the database."""
    turn_ids: tuple[str, ...] | None = None
    """Every turn of the session now, in order; None when its turns did not change."""
    turns: dict[str, Turn] = field(default_factory=dict)
    """The turns other writers wrote (added or rewrote), by id, read whole."""

    @property
    def changed(self) -> bool:
        return self.deleted or self.turn_ids is not None


# -- owner of a streaming turn ---------------------------------------------------------------


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
class _Owner:
    pid: int
    host: str
    start: str | None
    """Process start time (Linux): tells a reused pid from the original process."""

    @classmethod
    def current(cls) -> _Owner:
        pid = os.getpid()
        stat = _proc_stat(pid) if _HAVE_PROC else None
        return cls(pid, socket.gethostname(), stat[1] if stat else None)


def _process_alive(pid: int, start: str | None) -> bool:
    """Whether the process that began a turn is still running on this machine."""
    if _HAVE_PROC:
        stat = _proc_stat(pid)
        if stat is None or stat[0] in ("Z", "X"):
            return False
        return start is None or stat[1] == start
    if sys.platform == "win32":
        return _windows_pid_alive(pid)
    try:
        os.kill(pid, 0)
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


# -- what is saved of a streaming turn ---------------------------------------------------------


@dataclass
class _Mark:
    """How much of one growing text is in the database.

    `saved` counts characters stored (turn row + chunks). `joined` and `parts`
    record the shape of the Turn at that save (length of the joined string, number
    of pending parts), so the next save can find the new text without joining or
    scanning what came before.
    """

    saved: int = 0
    joined: int = 0
    parts: int = 0


def _take_new(mark: _Mark, joined: str, parts: list[str]) -> tuple[str, _Mark] | None:
    """The text added since `mark`, and the mark after it; None if the text shrank."""
    length = len(joined)
    if length == mark.joined and len(parts) >= mark.parts:
        # No sync since the last save: everything new is in the pending parts.
        new = "".join(parts[mark.parts :])
    elif length >= mark.saved:
        # A sync folded the parts into the joined string.
        new = joined[mark.saved :] + "".join(parts)
    else:
        return None
    return new, _Mark(mark.saved + len(new), length, len(parts))


@dataclass
class _Progress:
    session_id: str
    next_n: int = 0
    reasoning: _Mark = field(default_factory=_Mark)
    content: _Mark = field(default_factory=_Mark)
    tools: dict[int, tuple[int, str | None, str]] = field(default_factory=dict)
    """index -> (characters of arguments saved, id, name)."""
    details: int = 0
    """reasoning_details items saved."""
    meta: bytes = b""

    @classmethod
    def of(cls, session_id: str, turn: Turn) -> _Progress:
        """The state right after the whole turn (already synced) was written."""
        return cls(
            session_id=session_id,
            reasoning=_Mark(len(turn.reasoning), len(turn.reasoning), 0),
            content=_Mark(len(turn.content), len(turn.content), 0),
            tools={c.index: (len(c.arguments), c.id, c.name) for c in turn.tool_calls},
            details=len(turn.reasoning_details or ()),
            meta=_json_blob(_progress_meta(turn)),
        )


# Turn fields stored in their own columns (the rest goes to the JSON `meta`).
_TURN_COLUMNS = ("id", "status", "created_at", "user_text", "reasoning", "content")
# Fields a progress save never carries in its small meta record: fixed at
# begin_turn, or appended as deltas (tool_calls, reasoning_details).
_PROGRESS_SKIP = frozenset(
    {"id", "user_text", "reasoning", "content", "created_at", "thinking", "host", "model", "tool_calls",
     "reasoning_details"}
)
# Session fields stored in their own columns (the rest goes to the JSON `settings`).
_SESSION_COLUMNS = ("id", "title", "host", "model", "created_at", "updated_at")


def _progress_meta(turn: Turn) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for f in fields(turn):
        if f.name.startswith("_") or f.name in _PROGRESS_SKIP:
            continue
        value = getattr(turn, f.name)
        out[f.name] = value.to_dict() if isinstance(value, Usage) else value
    return out


# -- schema --------------------------------------------------------------------------------


def _migrate_v1(conn: sqlite3.Connection) -> None:
    """The first schema: sessions, turns, chunks of streaming turns, full-text index."""
    for statement in (
        """CREATE TABLE sessions (
            number INTEGER PRIMARY KEY AUTOINCREMENT,
            id TEXT NOT NULL UNIQUE,
            title BLOB NOT NULL,
            host BLOB NOT NULL,
            model BLOB NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            turn_count INTEGER NOT NULL DEFAULT 0,
            settings BLOB NOT NULL
        )""",
        "CREATE INDEX sessions_by_update ON sessions(updated_at)",
        """CREATE TABLE turns (
            num INTEGER PRIMARY KEY,
            id TEXT NOT NULL UNIQUE,
            session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
            seq INTEGER NOT NULL,
            status TEXT NOT NULL,
            created_at REAL NOT NULL,
            user_text BLOB NOT NULL,
            reasoning BLOB NOT NULL,
            content BLOB NOT NULL,
            meta BLOB NOT NULL,
            owner_pid INTEGER,
            owner_host TEXT,
            owner_start TEXT,
            UNIQUE (session_id, seq)
        )""",
        "CREATE INDEX turns_streaming ON turns(status) WHERE status = 'streaming'",
        """CREATE TABLE chunks (
            turn_id TEXT NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
            n INTEGER NOT NULL,
            kind TEXT NOT NULL,
            data BLOB NOT NULL,
            at REAL NOT NULL,
            PRIMARY KEY (turn_id, n)
        ) WITHOUT ROWID""",
        """CREATE VIRTUAL TABLE turns_fts USING fts5(
            user_text, content, reasoning, tokenize = 'unicode61 remove_diacritics 2'
        )""",
        """CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN
            DELETE FROM turns_fts WHERE rowid = old.num;
        END""",
    ):
        conn.execute(statement)


def _migrate_v2(conn: sqlite3.Connection) -> None:
    """Revisions: every write to a session's turns moves the session's counter on.

    Triggers keep them, so every way of writing a turn counts, in this process
    or another: `sessions.revision` goes up by one for each turn row inserted,
    rewritten or deleted, and `turns.revision` records the session's revision
    at the turn's last write. Progress saves of a streaming turn (its chunks)
    do not count: they leave the turn row alone.
    """
    for statement in (
        "ALTER TABLE sessions ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE turns ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
        """CREATE TRIGGER turns_revision_insert AFTER INSERT ON turns BEGIN
            UPDATE sessions SET revision = revision + 1 WHERE id = new.session_id;
            UPDATE turns SET revision = (SELECT revision FROM sessions WHERE id = new.session_id)
                WHERE num = new.num;
        END""",
        # Every column but `revision` itself (which the triggers set) and the owner
        # columns alone (never written without the rest).
        """CREATE TRIGGER turns_revision_update
            AFTER UPDATE OF session_id, seq, status, created_at, user_text, reasoning, content, meta ON turns
        BEGIN
            UPDATE sessions SET revision = revision + 1 WHERE id = new.session_id;
            UPDATE turns SET revision = (SELECT revision FROM sessions WHERE id = new.session_id)
                WHERE num = new.num;
        END""",
        """CREATE TRIGGER turns_revision_delete AFTER DELETE ON turns BEGIN
            UPDATE sessions SET revision = revision + 1 WHERE id = old.session_id;
        END""",
    ):
        conn.execute(statement)


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_migrate_v1, _migrate_v2]
"""MIGRATIONS[i] takes the schema from version i to i + 1, inside the caller's transaction."""


def schema_version() -> int:
    """The schema version this glmchat writes."""
    return len(MIGRATIONS)


# -- opening and setting bad files aside -------------------------------------------------------


class _BadDatabase(Exception):
    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def _code(exc: BaseException) -> int | None:
    code = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF


def _is_busy(exc: BaseException) -> bool:
    if _code(exc) in (_SQLITE_BUSY, _SQLITE_LOCKED):
        return True
    text = str(exc).lower()
    return "database is locked" in text or "database is busy" in text


def _is_corruption(exc: BaseException) -> bool:
    if _code(exc) in (_SQLITE_CORRUPT, _SQLITE_NOTADB):
        return True
    text = str(exc).lower()
    return "malformed" in text or "not a database" in text


def _header_problem(path: Path) -> str | None:
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


def _set_aside(path: Path, kind: str) -> Path:
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
def _open_lock(path: Path) -> Iterator[None]:
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


_PRIVATE = 0o600
_SIDE_FILES = ("-wal", "-shm", "-journal")


def _make_private(path: Path) -> None:
    """Create the database file 0600 if it is missing, and take group/other bits off it and its side files.

    SQLite creates the -wal and -shm files with the database file's permissions, so
    a private database keeps its side files private too, whatever the umask or the
    data folder's mode.
    """
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, _PRIVATE)
    except OSError:
        return  # a read-only folder or a missing one: SQLite says what is wrong
    try:
        if os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, _PRIVATE)
    except OSError:
        pass  # not ours to change (another user's file): leave it
    finally:
        os.close(fd)
    for suffix in _SIDE_FILES:
        side = path.with_name(path.name + suffix)
        try:
            if side.stat().st_mode & 0o077:
                os.chmod(side, _PRIVATE)
        except OSError:
            pass


def _connect(path: Path) -> sqlite3.Connection:
    _make_private(path)
    conn = sqlite3.connect(
        str(path), timeout=_BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
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


# -- the store -----------------------------------------------------------------------------


def _locked(method: Callable[..., T]) -> Callable[..., T]:
    """Hold the store's lock for the whole call: the bookkeeping of streaming turns included."""

    @functools.wraps(method)
    def wrapper(self: Store, *args: Any, **kwargs: Any) -> T:
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class Store:
    """Sessions and turns in one SQLite database.

    Thread-safe (one lock around the connection). Several processes may share the
    same file. Every failure to read or write is raised as `StorageError` with a
    one-line message; nothing is half-written.

    Args:
        path: The database file; its folder is created if needed.
        verify: Run ``PRAGMA quick_check`` on open, to find damage early and set
            the file aside. Costs a read of the whole file.
    """

    def __init__(self, path: Path | str, *, verify: bool = True) -> None:
        self.path = Path(path)
        self.warnings: list[str] = []
        """One-line messages about what happened on open (a bad file set aside...)."""
        self.recovered: list[str] = []
        """Ids of interrupted turns rebuilt from their chunks on open."""
        self._lock = threading.RLock()
        self._progress: dict[str, _Progress] = {}
        self._owner = _Owner.current()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"Cannot create the data folder {self.path.parent}: {exc.strerror or exc}") from exc
        with _open_lock(self.path):
            self._conn = self._open(verify)
            try:
                self._migrate()
                self._watch_own_writes()
            except BaseException:
                self._conn.close()
                raise
        self.recover()

    @classmethod
    def open(cls, data_dir: Path | str, *, verify: bool = True) -> Store:
        """The store of a data dir: `data_dir/glmchat.db`."""
        return cls(Path(data_dir) / DB_NAME, verify=verify)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Store({str(self.path)!r})"

    def close(self) -> None:
        """Close the database. Streaming turns not finished stay recoverable."""
        with self._lock:
            conn, self._conn = self._conn, None  # type: ignore[assignment]
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("PRAGMA optimize")  # keeps the query planner's statistics fresh; cheap
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    # -- opening -------------------------------------------------------------------------

    def _open(self, verify: bool) -> sqlite3.Connection:
        try:
            conn = self._open_checked(verify)
        except _BadDatabase as bad:
            try:
                moved = _set_aside(self.path, bad.kind)
            except OSError as exc:
                raise StorageError(
                    f"The database {self.path} is unusable ({bad.reason}) and could not be moved aside: "
                    f"{exc.strerror or exc}"
                ) from exc
            self.warnings.append(
                f"The database {self.path} was unusable ({bad.reason}); it was moved to {moved} "
                "and a new one was started."
            )
            try:
                conn = _connect(self.path)
            except sqlite3.Error as exc:
                raise self._error(exc, "create a new database") from exc
        return conn

    def _open_checked(self, verify: bool) -> sqlite3.Connection:
        try:
            problem = _header_problem(self.path)
        except OSError as exc:
            raise StorageError(f"Cannot read the database {self.path}: {exc.strerror or exc}") from exc
        if problem:
            raise _BadDatabase("corrupt", problem)
        try:
            conn = _connect(self.path)
        except sqlite3.DatabaseError as exc:
            if _is_corruption(exc):
                raise _BadDatabase("corrupt", str(exc)) from exc
            raise self._error(exc, "open the database") from exc
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if verify:
                result = [row[0] for row in conn.execute("PRAGMA quick_check")]
                if result != ["ok"]:
                    raise _BadDatabase("corrupt", f"integrity check failed: {result[0]}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            if _is_corruption(exc):
                raise _BadDatabase("corrupt", str(exc)) from exc
            raise self._error(exc, "open the database") from exc
        except _BadDatabase:
            conn.close()
            raise
        if version > schema_version():
            conn.close()
            raise _BadDatabase(
                "newer",
                f"it was written by a newer glmchat (schema {version}; this one reads up to {schema_version()})",
            )
        if version == 0 and {n for n in names if not n.startswith("sqlite_")}:
            conn.close()
            raise _BadDatabase("corrupt", "not a glmchat database")
        return conn

    def _migrate(self) -> None:
        target = schema_version()

        def work(conn: sqlite3.Connection) -> None:
            # Read again inside the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for step in MIGRATIONS[version:target]:
                step(conn)
            if version < target:
                conn.execute(f"PRAGMA user_version = {target}")

        if self._conn.execute("PRAGMA user_version").fetchone()[0] < target:
            self._write("set up the database", work)

    # -- plumbing --------------------------------------------------------------------------

    def _error(self, exc: BaseException, action: str) -> StorageError:
        """A one-line StorageError for a failed database operation."""
        code = _code(exc)
        where = self.path
        if code == _SQLITE_FULL or "disk is full" in str(exc).lower():
            message = f"Could not {action}: the disk holding {where} is full. Free some space and try again."
        elif code == _SQLITE_READONLY or "readonly" in str(exc).lower():
            message = f"Could not {action}: the database {where} is read-only."
        elif _is_corruption(exc):
            message = (
                f"Could not {action}: the database {where} is damaged ({exc}). "
                "Restart glmchat to set it aside and start a new one."
            )
        elif _is_busy(exc):
            message = f"Could not {action}: the database {where} stayed locked by another glmchat process."
        elif code in (_SQLITE_IOERR, _SQLITE_CANTOPEN):
            message = f"Could not {action}: cannot read or write {where} ({exc})."
        elif isinstance(exc, sqlite3.ProgrammingError) and "closed" in str(exc).lower():
            message = f"Could not {action}: the store {where} is closed."
        else:
            message = f"Could not {action}: {exc} ({where})."
        return StorageError(message, code=None if code is None else str(code))

    def _connection(self, action: str) -> sqlite3.Connection:
        if self._conn is None:
            raise StorageError(f"Could not {action}: the store {self.path} is closed.")
        return self._conn

    def _write(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work` in one IMMEDIATE transaction, retrying while another process holds the lock."""
        with self._lock:
            conn = self._connection(action)
            for attempt in range(_BUSY_RETRIES + 1):
                try:
                    conn.execute("BEGIN IMMEDIATE")
                except sqlite3.Error as exc:
                    if _is_busy(exc) and attempt < _BUSY_RETRIES:
                        time.sleep(0.05 * 2**attempt)
                        continue
                    raise self._error(exc, action) from exc
                try:
                    result = work(conn)
                    conn.execute("COMMIT")
                    return result
                except BaseException as exc:
                    with contextlib.suppress(sqlite3.Error):
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                    if isinstance(exc, sqlite3.Error):
                        if _is_busy(exc) and attempt < _BUSY_RETRIES:
                            time.sleep(0.05 * 2**attempt)
                            continue
                        raise self._error(exc, action) from exc
                    raise
            raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run a read in one transaction (a consistent snapshot)."""
        with self._lock:
            conn = self._connection(action)
            for attempt in range(_BUSY_RETRIES + 1):
                try:
                    conn.execute("BEGIN")
                    try:
                        return work(conn)
                    finally:
                        with contextlib.suppress(sqlite3.Error):
                            if conn.in_transaction:
                                conn.execute("COMMIT")
                except sqlite3.Error as exc:
                    if _is_busy(exc) and attempt < _BUSY_RETRIES:
                        time.sleep(0.05 * 2**attempt)
                        continue
                    raise self._error(exc, action) from exc
            raise AssertionError("unreachable")  # pragma: no cover

    # -- rows <-> objects --------------------------------------------------------------------

    @staticmethod
    def _put_session(conn: sqlite3.Connection, session: Session, *, full: bool) -> None:
        """Insert the session row, or update it: everything (`full`) or just its freshness."""
        settings = {k: v for k, v in session.to_dict(with_turns=False).items() if k not in _SESSION_COLUMNS}
        values = (
            session.id,
            _enc(session.title),
            _enc(session.host),
            _enc(session.model),
            session.created_at,
            session.updated_at,
            _json_blob(settings),
        )
        if full:
            update = """title = ?2, host = ?3, model = ?4, created_at = ?5,
                updated_at = max(updated_at, ?6), settings = ?7"""
        else:
            # Another process may have renamed the session: only fill a missing title.
            update = """title = CASE WHEN length(title) = 0 THEN ?2 ELSE title END,
                host = ?3, model = ?4, updated_at = max(updated_at, ?6)"""
        # UPDATE first, INSERT only when there is no row: an upsert (INSERT ... ON
        # CONFLICT) would burn an AUTOINCREMENT number on every update, leaving gaps
        # in the session numbers people see.
        bound = values if full else values[:6]  # sqlite3 wants exactly as many values as the highest ?N
        if conn.execute(f"UPDATE sessions SET {update} WHERE id = ?1", bound).rowcount == 0:
            conn.execute(
                "INSERT INTO sessions (id, title, host, model, created_at, updated_at, settings) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                values,
            )

    @staticmethod
    def _session_from_row(row: sqlite3.Row | tuple) -> Session:
        number, sid, title, host, model, created_at, updated_at, settings = row
        data = _json_load(settings) or {}
        if not isinstance(data, dict):
            data = {}
        data.update(
            id=sid, title=_dec(title), host=_dec(host), model=_dec(model), created_at=created_at,
            updated_at=updated_at,
        )
        return Session.from_dict(_readable_session(data))

    def _put_turn(
        self, conn: sqlite3.Connection, session_id: str, turn: Turn, *, owner: _Owner | None
    ) -> int:
        """Write the whole turn (insert with the next seq, or update in place); return its row number."""
        data = turn.to_dict()  # also joins pending deltas
        meta = {k: v for k, v in data.items() if k not in _TURN_COLUMNS}
        values = (
            turn.status,
            turn.created_at,
            _enc(turn.user_text),
            _enc(turn.reasoning),
            _enc(turn.content),
            _json_blob(meta),
            owner.pid if owner else None,
            owner.host if owner else None,
            owner.start if owner else None,
        )
        row = conn.execute("SELECT num, session_id FROM turns WHERE id = ?", (turn.id,)).fetchone()
        if row is None:
            seq = conn.execute(
                "SELECT coalesce(max(seq), 0) + 1 FROM turns WHERE session_id = ?", (session_id,)
            ).fetchone()[0]
            cursor = conn.execute(
                "INSERT INTO turns (status, created_at, user_text, reasoning, content, meta, owner_pid, "
                "owner_host, owner_start, id, session_id, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*values, turn.id, session_id, seq),
            )
            num = cursor.lastrowid
            conn.execute("UPDATE sessions SET turn_count = turn_count + 1 WHERE id = ?", (session_id,))
        else:
            num, owner_session = row
            if owner_session != session_id:
                raise StorageError(f"Turn {turn.id} belongs to another session ({owner_session}).")
            conn.execute(
                "UPDATE turns SET status = ?, created_at = ?, user_text = ?, reasoning = ?, content = ?, "
                "meta = ?, owner_pid = ?, owner_host = ?, owner_start = ? WHERE num = ?",
                (*values, num),
            )
            conn.execute("DELETE FROM chunks WHERE turn_id = ?", (turn.id,))
        conn.execute("DELETE FROM turns_fts WHERE rowid = ?", (num,))
        conn.execute(
            "INSERT INTO turns_fts (rowid, user_text, content, reasoning) VALUES (?, ?, ?, ?)",
            (num, _searchable(turn.user_text), _searchable(turn.content), _searchable(turn.reasoning)),
        )
        return num

    @staticmethod
    def _turn_from_row(row: tuple) -> Turn:
        tid, status, created_at, user_text, reasoning, content, meta = row
        data = _json_load(meta) or {}
        if not isinstance(data, dict):
            data = {}
        data.update(
            id=tid, status=status, created_at=created_at, user_text=_dec(user_text), reasoning=_dec(reasoning),
            content=_dec(content),
        )
        return Turn.from_dict(_readable_turn(data))

    @staticmethod
    def _apply_chunks(turn: Turn, chunks: list[tuple[str, bytes, float]]) -> float | None:
        """Rebuild a streaming turn from its saved chunks; return the time of the last one."""
        reasoning = [turn.reasoning]
        content = [turn.content]
        last = None
        for kind, data, at in chunks:
            last = at
            if kind == "r":
                reasoning.append(_dec(data))
            elif kind == "c":
                content.append(_dec(data))
            elif kind == "t":
                item = _json_load(data)
                for call in turn.tool_calls:
                    if call.index == item["index"]:
                        break
                else:
                    call = ToolCall(index=item["index"])
                    turn.tool_calls.append(call)
                call.id = item.get("id", call.id)
                call.name = item.get("name", call.name)
                call.type = item.get("type", call.type)
                call.arguments += item.get("arguments", "")
            elif kind == "d":
                turn.reasoning_details = (turn.reasoning_details or []) + list(_json_load(data))
            elif kind == "m":
                meta = _json_load(data)
                if not isinstance(meta, dict):
                    continue
                clean = _readable_turn({**meta, "created_at": turn.created_at})
                for name in meta:
                    if name == "usage":
                        turn.usage = Usage.from_dict(clean["usage"])
                    elif name in clean and name not in ("created_at", "tool_calls", "id"):
                        setattr(turn, name, clean[name])
        turn.reasoning = "".join(reasoning)
        turn.content = "".join(content)
        return last

    # -- sessions --------------------------------------------------------------------------

    @_locked
    def save_session(self, session: Session, *, turns: bool = True) -> None:
        """Write the session's settings and (with `turns`) every turn it holds.

        Turns in the database that the object does not hold are kept (another
        process may have added them; deleting is `delete_turn`'s job). A turn
        streaming in another process is not touched, nor is a stale streaming copy.
        Costs O(session) with `turns`; use it for imports and bulk edits, and
        `turns=False` for a settings change.
        """

        def work(conn: sqlite3.Connection) -> list[Turn]:
            self._put_session(conn, session, full=True)
            written: list[Turn] = []
            if not turns:
                return written
            in_db_streaming = {
                row[0]
                for row in conn.execute(
                    "SELECT id FROM turns WHERE session_id = ? AND status = ?", (session.id, STREAMING)
                )
            }
            known = {row[0] for row in conn.execute("SELECT id FROM turns WHERE session_id = ?", (session.id,))}
            for turn in session.turns:
                ours = turn.id in self._progress
                if not ours and (turn.id in in_db_streaming or (turn.status == STREAMING and turn.id in known)):
                    continue
                self._put_turn(conn, session.id, turn, owner=self._owner if ours else None)
                written.append(turn)
            return written

        written = self._write("save the session", work)
        for turn in written:
            if turn.id in self._progress:
                self._progress[turn.id] = _Progress.of(session.id, turn)

    def list_sessions(self, limit: int = 200, offset: int = 0) -> list[SessionSummary]:
        """Sessions, most recently updated first, without their turns."""

        def work(conn: sqlite3.Connection) -> list[SessionSummary]:
            rows = conn.execute(
                "SELECT id, number, title, host, model, created_at, updated_at, turn_count FROM sessions "
                "ORDER BY updated_at DESC, number DESC LIMIT ? OFFSET ?",
                (limit, offset),
            ).fetchall()
            return [
                SessionSummary(
                    sid, number, _dec(title), _dec(host), _dec(model), _readable_time(created),
                    _readable_time(updated), count if isinstance(count, int) and count >= 0 else 0,
                )
                for sid, number, title, host, model, created, updated, count in rows
            ]

        return self._read("list the sessions", work)

    def count_sessions(self) -> int:
        return self._read("count the sessions", lambda c: c.execute("SELECT count(*) FROM sessions").fetchone()[0])

    def resolve_id(self, ref: str) -> str:
        """The session id for a full id, a unique id prefix, or a session number ("42" or "#42").

        Raises:
            SessionNotFoundError: Nothing matches, or the prefix matches several sessions.
        """
        text = ref.strip()
        if text.startswith("#"):
            text = text[1:]
        if not text:
            raise SessionNotFoundError("No session given.")

        def work(conn: sqlite3.Connection) -> str:
            if text.isascii() and text.isdigit() and len(text) != 32:
                # Numbers always mean session numbers: an id (even an old imported one that
                # is all digits) never shadows them.
                if len(text) <= 18:
                    row = conn.execute("SELECT id FROM sessions WHERE number = ?", (int(text),)).fetchone()
                    if row:
                        return row[0]
                raise SessionNotFoundError(f"No session number {text}.")
            row = conn.execute("SELECT id FROM sessions WHERE id = ?", (text,)).fetchone()
            if row:
                return row[0]
            prefix = text.lower()
            if re.fullmatch(r"[0-9a-f]{4,32}", prefix):
                # Ids are lowercase hex: every id starting with the prefix sorts below prefix + "g".
                rows = conn.execute(
                    "SELECT id FROM sessions WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "g")
                ).fetchall()
                if len(rows) == 1:
                    return rows[0][0]
                if len(rows) > 1:
                    raise SessionNotFoundError(f"'{ref}' matches several sessions; give more of the id.")
            raise SessionNotFoundError(f"No session '{ref}'.")

        return self._read("find the session", work)

    def most_recent_session_id(self) -> str | None:
        row = self._read(
            "find the latest session",
            lambda c: c.execute("SELECT id FROM sessions ORDER BY updated_at DESC, number DESC LIMIT 1").fetchone(),
        )
        return row[0] if row else None

    def session_number(self, session_id: str) -> int:
        """The short number of a session."""
        row = self._read(
            "find the session",
            lambda c: c.execute("SELECT number FROM sessions WHERE id = ?", (session_id,)).fetchone(),
        )
        if row is None:
            raise SessionNotFoundError(f"No session '{session_id}'.")
        return row[0]

    def load_session(self, ref: str, *, last: int | None = None) -> Session:
        """A session with its turns (all, or only the `last` N), oldest first.

        `ref` may be anything `resolve_id` accepts. A turn still streaming (in
        another process) is shown with what it has saved so far.
        """
        session_id = self.resolve_id(ref)

        def work(conn: sqlite3.Connection) -> Session:
            row = conn.execute(
                "SELECT number, id, title, host, model, created_at, updated_at, settings FROM sessions WHERE id = ?",
                (session_id,),
            ).fetchone()
            if row is None:
                raise SessionNotFoundError(f"No session '{ref}'.")
            session = self._session_from_row(row)
            session.turns = self._select_turns(conn, session_id, last, None)
            return session

        return self._read("load the session", work)

    def load_turns(
        self,
        session_id: str,
        limit: int | None = None,
        before_seq: int | None = None,
        *,
        before_turn: str | None = None,
    ) -> list[Turn]:
        """A page of a session's turns, oldest first: the last `limit` ones before a point.

        Args:
            session_id: The session.
            limit: How many turns at most (None: all).
            before_seq: Only turns whose position is below this (see `turn_seq`).
            before_turn: Only turns older than the turn with this id (for paging
                back from the oldest turn on screen).
        """

        def work(conn: sqlite3.Connection) -> list[Turn]:
            bound = before_seq
            if before_turn is not None:
                row = conn.execute("SELECT seq FROM turns WHERE id = ?", (before_turn,)).fetchone()
                if row is None:
                    return []
                bound = row[0] if bound is None else min(bound, row[0])
            return self._select_turns(conn, session_id, limit, bound)

        return self._read("load turns", work)

    def iter_turns(self, session_id: str, batch: int = 200) -> Iterator[Turn]:
        """Every turn of a session, oldest first, read `batch` at a time (for exports of any length).

        Each batch is its own short read: the store is not held between batches, and
        memory holds one batch. Turns added meanwhile may or may not be included.
        """
        after = 0
        while True:

            def work(conn: sqlite3.Connection, after: int = after) -> list[tuple[int, Turn]]:
                rows = conn.execute(
                    "SELECT seq, id, status, created_at, user_text, reasoning, content, meta FROM turns "
                    "WHERE session_id = ? AND seq > ? ORDER BY seq LIMIT ?",
                    (session_id, after, batch),
                ).fetchall()
                turns = [(row[0], self._turn_from_row(row[1:])) for row in rows]
                streaming = [t for _, t in turns if t.status == STREAMING]
                if streaming:
                    chunks = self._chunks_of(conn, [t.id for t in streaming])
                    for turn in streaming:
                        self._apply_chunks(turn, chunks.get(turn.id, []))
                return turns

            page = self._read("load turns", work)
            for _, turn in page:
                yield turn
            if len(page) < batch:
                return
            after = page[-1][0]

    def turn_seq(self, turn_id: str) -> int | None:
        """A turn's position in its session (increasing; gaps where turns were deleted)."""
        row = self._read(
            "find the turn", lambda c: c.execute("SELECT seq FROM turns WHERE id = ?", (turn_id,)).fetchone()
        )
        return row[0] if row else None

    def _select_turns(
        self, conn: sqlite3.Connection, session_id: str, limit: int | None, before_seq: int | None
    ) -> list[Turn]:
        sql = "SELECT id, status, created_at, user_text, reasoning, content, meta FROM turns WHERE session_id = ?"
        args: list[Any] = [session_id]
        if before_seq is not None:
            sql += " AND seq < ?"
            args.append(before_seq)
        sql += " ORDER BY seq DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(max(0, limit))
        turns = [self._turn_from_row(row) for row in conn.execute(sql, args)]
        turns.reverse()
        streaming = [t for t in turns if t.status == STREAMING]
        if streaming:
            chunks = self._chunks_of(conn, [t.id for t in streaming])
            for turn in streaming:
                self._apply_chunks(turn, chunks.get(turn.id, []))
        return turns

    @staticmethod
    def _chunks_of(conn: sqlite3.Connection, turn_ids: list[str]) -> dict[str, list[tuple[str, bytes, float]]]:
        out: dict[str, list[tuple[str, bytes, float]]] = {}
        for start in range(0, len(turn_ids), 500):
            batch = turn_ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            for tid, kind, data, at in conn.execute(
                f"SELECT turn_id, kind, data, at FROM chunks WHERE turn_id IN ({marks}) ORDER BY turn_id, n", batch
            ):
                out.setdefault(tid, []).append((kind, data, at))
        return out

    def rename_session(self, session_id: str, title: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("UPDATE sessions SET title = ? WHERE id = ?", (_enc(title), session_id)).rowcount == 0:
                raise SessionNotFoundError(f"No session '{session_id}'.")

        self._write("rename the session", work)

    @_locked
    def delete_session(self, session_id: str) -> None:
        """Delete a session and all its turns (and their index entries)."""

        def work(conn: sqlite3.Connection) -> None:
            if conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,)).rowcount == 0:
                raise SessionNotFoundError(f"No session '{session_id}'.")

        self._write("delete the session", work)
        for tid in [tid for tid, p in self._progress.items() if p.session_id == session_id]:
            del self._progress[tid]

    def import_session(self, session: Session) -> Session:
        """Store a session from elsewhere (a JSON import) without overwriting anything.

        Returns the session as stored: a copy that got a new id if one with the
        same id already exists (compare `.id` with the original's to tell the
        user), and new turn ids for turns whose id is taken. A turn that was
        streaming when exported is stored as interrupted.
        """
        copy = Session.from_dict(session.to_dict())
        for turn in copy.turns:
            if turn.status == STREAMING:
                turn.status = INTERRUPTED
        if not _is_own_id(copy.id):
            # Ids are 32 lowercase hex digits: anything else (an id "1" would read as a
            # session number, an id "../x" as who knows what) gets a new one.
            copy.id = new_id()

        def work(conn: sqlite3.Connection) -> Session:
            if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (copy.id,)).fetchone():
                copy.id = new_id()
            for turn in copy.turns:
                if not _is_own_id(turn.id) or conn.execute("SELECT 1 FROM turns WHERE id = ?", (turn.id,)).fetchone():
                    turn.id = new_id()
            self._put_session(conn, copy, full=True)
            for turn in copy.turns:
                self._put_turn(conn, copy.id, turn, owner=None)
            return copy

        return self._write("import the session", work)

    # -- turns -----------------------------------------------------------------------------

    @_locked
    def begin_turn(self, session: Session, turn: Turn) -> None:
        """Record a turn that starts streaming (and the session, if it is new).

        The turn is marked as owned by this process, so that if the process dies
        the next store to open can tell it was interrupted.
        """
        turn.sync()

        def work(conn: sqlite3.Connection) -> None:
            self._put_session(conn, session, full=False)
            self._put_turn(conn, session.id, turn, owner=self._owner)

        self._write("save the new turn", work)
        self._progress[turn.id] = _Progress.of(session.id, turn)

    @_locked
    def save_progress(self, turn: Turn) -> int:
        """Append what a streaming turn received since the last save; return the rows written.

        Costs O(new text): nothing already saved is read, joined or written again,
        and neither the turn row nor the session row is rewritten.
        """
        progress = self._progress.get(turn.id)
        if progress is None:
            raise ValueError(f"Turn {turn.id} was not begun in this store (call begin_turn first).")
        now = time.time()
        rows: list[tuple[str, bytes]] = []

        taken_r = _take_new(progress.reasoning, turn.reasoning, getattr(turn, "_reasoning_parts", []))
        taken_c = _take_new(progress.content, turn.content, getattr(turn, "_content_parts", []))
        if taken_r is None or taken_c is None:
            return self._rewrite_streaming(turn, progress)  # the text was replaced, not appended to
        if taken_r[0]:
            rows.append(("r", _enc(taken_r[0])))
        if taken_c[0]:
            rows.append(("c", _enc(taken_c[0])))

        tools = dict(progress.tools)
        for call in turn.tool_calls:
            saved_len, saved_id, saved_name = tools.get(call.index, (0, None, ""))
            if len(call.arguments) < saved_len:
                return self._rewrite_streaming(turn, progress)
            if call.index in tools and (saved_len, saved_id, saved_name) == (len(call.arguments), call.id, call.name):
                continue
            item = {"index": call.index, "id": call.id, "name": call.name, "type": call.type,
                    "arguments": call.arguments[saved_len:]}
            rows.append(("t", _json_blob(item)))
            tools[call.index] = (len(call.arguments), call.id, call.name)

        details = turn.reasoning_details or []
        if len(details) < progress.details:
            return self._rewrite_streaming(turn, progress)
        if len(details) > progress.details:
            rows.append(("d", _json_blob(details[progress.details :])))

        meta = _json_blob(_progress_meta(turn))
        if meta != progress.meta:
            rows.append(("m", meta))
        if not rows:
            return 0

        first = progress.next_n

        def work(conn: sqlite3.Connection) -> None:
            conn.executemany(
                "INSERT INTO chunks (turn_id, n, kind, data, at) VALUES (?, ?, ?, ?, ?)",
                [(turn.id, first + i, kind, data, now) for i, (kind, data) in enumerate(rows)],
            )

        self._write("save the reply so far", work)
        # Only after the commit: a failed save leaves the marks where they were, so
        # the next save writes the same text again.
        progress.next_n = first + len(rows)
        progress.reasoning = taken_r[1]
        progress.content = taken_c[1]
        progress.tools = tools
        progress.details = len(details)
        progress.meta = meta
        return len(rows)

    def _rewrite_streaming(self, turn: Turn, progress: _Progress) -> int:
        """Fallback when a streaming turn's text was replaced: write it whole."""

        def work(conn: sqlite3.Connection) -> None:
            self._put_turn(conn, progress.session_id, turn, owner=self._owner)

        self._write("save the reply so far", work)
        self._progress[turn.id] = _Progress.of(progress.session_id, turn)
        return 1

    @_locked
    def finish_turn(self, turn: Turn) -> None:
        """Write the settled turn and drop its chunks, in one transaction."""
        self._update(turn, "save the reply")
        self._progress.pop(turn.id, None)

    @_locked
    def update_turn(self, turn: Turn) -> None:
        """Rewrite a stored turn (e.g. after the user changed `include_in_context`)."""
        self._update(turn, "save the turn")
        progress = self._progress.get(turn.id)
        if progress is not None:
            self._progress[turn.id] = _Progress.of(progress.session_id, turn)

    def _update(self, turn: Turn, action: str) -> None:
        ours = turn.id in self._progress

        def work(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT session_id, status FROM turns WHERE id = ?", (turn.id,)).fetchone()
            if row is None:
                raise StorageError(f"Could not {action}: the turn is not in {self.path} (was its session deleted?).")
            session_id, status = row
            if status == STREAMING and not ours:
                raise StorageError(f"Could not {action}: the turn is still streaming in another glmchat process.")
            keep_owner = ours and turn.status == STREAMING
            # The session's updated_at stays as begin_turn set it (the turn's start), so a
            # session saved by the caller and the stored one agree.
            self._put_turn(conn, session_id, turn, owner=self._owner if keep_owner else None)

        self._write(action, work)

    @_locked
    def delete_turn(self, turn_id: str) -> None:
        def work(conn: sqlite3.Connection) -> None:
            row = conn.execute("SELECT session_id FROM turns WHERE id = ?", (turn_id,)).fetchone()
            if row is None:
                raise StorageError(f"Could not delete the turn: it is not in {self.path}.")
            conn.execute("DELETE FROM turns WHERE id = ?", (turn_id,))
            conn.execute("UPDATE sessions SET turn_count = turn_count - 1 WHERE id = ?", (row[0],))

        self._write("delete the turn", work)
        self._progress.pop(turn_id, None)

    # -- revisions: what other writers changed ---------------------------------------------
    # A window showing a session asks, before it builds a request (and now and then
    # while idle), whether anyone else changed the session's turns. The question
    # costs one PRAGMA when no other connection committed anything since it last
    # asked; then one indexed read of the session's revision; and only when that
    # moved, the ids of its turns and the rows other writers wrote.

    def _watch_own_writes(self) -> None:
        """Record, on this connection only, the revision of every turn it writes.

        A TEMP trigger fires for this connection's writes alone (and rolls back
        with them), which is what tells "written here" from "written elsewhere".
        """
        conn = self._conn
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS own_turn_writes (id TEXT PRIMARY KEY, revision INTEGER NOT NULL)")
        conn.execute(
            """CREATE TEMP TRIGGER IF NOT EXISTS own_turn_write AFTER UPDATE OF revision ON main.turns BEGIN
                INSERT OR REPLACE INTO own_turn_writes (id, revision) VALUES (new.id, new.revision);
            END"""
        )

    def _data_version(self) -> int:
        """SQLite's count of commits made by other connections (it moves only for them)."""
        with self._lock:
            conn = self._connection("check for changes")
            try:
                return conn.execute("PRAGMA data_version").fetchone()[0]
            except sqlite3.Error as exc:
                raise self._error(exc, "check for changes") from exc

    def load_session_synced(self, ref: str, *, last: int | None = None) -> tuple[Session, SyncPoint]:
        """`load_session`, and the point it was read at, for `changes_since`."""
        session_id = self.resolve_id(ref)
        # Read before the snapshot: a commit after this read moves it, so the next
        # `changes_since` looks; one between it and the snapshot is merely looked at twice.
        data_version = self._data_version()

        def work(conn: sqlite3.Connection) -> tuple[Session, int]:
            row = conn.execute(
                "SELECT number, id, title, host, model, created_at, updated_at, settings, revision "
                "FROM sessions WHERE id = ?",
                (session_id,),
            ).fetchone()
            if row is None:
                raise SessionNotFoundError(f"No session '{ref}'.")
            session = self._session_from_row(row[:8])
            session.turns = self._select_turns(conn, session_id, last, None)
            return session, row[8]

        session, revision = self._read("load the session", work)
        return session, SyncPoint(revision, data_version)

    def changes_since(self, session_id: str, since: SyncPoint) -> SessionChanges:
        """What other writers did to a session's turns since `since`.

        Turns this store wrote are not reported (the caller has them). The result's
        `point` is where the caller stands once it has applied the result.
        """
        data_version = self._data_version()
        if data_version == since.data_version:
            return SessionChanges(since)

        def work(conn: sqlite3.Connection) -> SessionChanges:
            row = conn.execute("SELECT revision FROM sessions WHERE id = ?", (session_id,)).fetchone()
            if row is None:
                return SessionChanges(SyncPoint(0, data_version), deleted=True)
            revision = row[0]
            point = SyncPoint(revision, data_version)
            if revision == since.revision:
                return SessionChanges(point)
            # A revision below the one asked about: not the database the caller read. Everything counts.
            floor = since.revision if revision > since.revision else -1
            rows = conn.execute(
                "SELECT t.id, t.revision > ? AND NOT EXISTS ("
                "  SELECT 1 FROM temp.own_turn_writes o WHERE o.id = t.id AND o.revision = t.revision"
                ") FROM turns t WHERE t.session_id = ? ORDER BY t.seq",
                (floor, session_id),
            ).fetchall()
            foreign = [tid for tid, theirs in rows if theirs]
            return SessionChanges(
                point, turn_ids=tuple(tid for tid, _ in rows), turns=self._turns_by_id(conn, foreign)
            )

        return self._read("check the session for changes", work)

    def _turns_by_id(self, conn: sqlite3.Connection, turn_ids: list[str]) -> dict[str, Turn]:
        out: dict[str, Turn] = {}
        for start in range(0, len(turn_ids), 500):
            batch = turn_ids[start : start + 500]
            marks = ",".join("?" * len(batch))
            for row in conn.execute(
                f"SELECT id, status, created_at, user_text, reasoning, content, meta FROM turns WHERE id IN ({marks})",
                batch,
            ):
                turn = self._turn_from_row(row)
                out[turn.id] = turn
        streaming = [t for t in out.values() if t.status == STREAMING]
        if streaming:
            chunks = self._chunks_of(conn, [t.id for t in streaming])
            for turn in streaming:
                self._apply_chunks(turn, chunks.get(turn.id, []))
        return out

    # -- recovery ----------------------------------------------------------------------------

    @_locked
    def recover(self) -> list[str]:
        """Rebuild turns whose streaming process died, mark them interrupted; return their ids.

        A turn is taken over only when its owner ran on this machine and is gone
        (or it has no owner). Runs on open; safe to call again.
        """
        me = self._owner

        def orphans(conn: sqlite3.Connection) -> list[tuple]:
            return conn.execute(
                "SELECT id, owner_pid, owner_host, owner_start FROM turns WHERE status = ?", (STREAMING,)
            ).fetchall()

        dead = []
        for tid, pid, host, start in self._read("look for interrupted turns", orphans):
            if tid in self._progress:
                continue
            if pid is None or (host == me.host and not _process_alive(pid, start)):
                dead.append((tid, pid, host, start))
        done = []
        for tid, pid, host, start in dead:

            def work(conn: sqlite3.Connection, tid: str = tid, pid: int | None = pid) -> bool:
                row = conn.execute(
                    "SELECT id, status, created_at, user_text, reasoning, content, meta, session_id, owner_pid "
                    "FROM turns WHERE id = ?",
                    (tid,),
                ).fetchone()
                # Another process may have recovered it (or the owner finished it) meanwhile.
                if row is None or row[1] != STREAMING or row[8] != pid:
                    return False
                turn = self._turn_from_row(row[:7])
                last = self._apply_chunks(turn, self._chunks_of(conn, [tid]).get(tid, []))
                turn.status = INTERRUPTED
                if turn.finished_at is None:
                    turn.finished_at = last or turn.created_at
                self._put_turn(conn, row[7], turn, owner=None)
                return True

            if self._write("recover an interrupted turn", work):
                done.append(tid)
        self.recovered.extend(done)
        return done

    # -- search ------------------------------------------------------------------------------

    def search(self, query: str, limit: int = 50, *, cancel: SearchCancel | None = None) -> list[SearchHit]:
        """Turns whose user text, answer or reasoning match every word of `query`, newest first.

        Any input is safe: words are quoted, so FTS syntax (quotes, AND, NEAR,
        parentheses, column filters) is searched for as text. Each word also
        matches as a prefix. Words in scripts without spaces (CJK) are also looked
        up as substrings.

        Costs O(text): the index finds the turns, and each hit's snippet comes from
        the first match found by reading its text once, a window at a time (never
        FTS5's snippet(), which re-reads a text for every occurrence of a word).
        The search runs on its own read-only connection and never takes the
        store's lock, so progress saves and draft saves go on meanwhile.

        Args:
            query: The words to find.
            limit: At most this many hits.
            cancel: A handle another thread may `cancel()` to stop the search at once.

        Raises:
            SearchCancelledError: `cancel` was called.
            StorageError: the database could not be read.
        """
        terms = [t for t in query.split() if _WORD.search(t)]
        if not terms or limit <= 0:
            return []
        terms = terms[:64]
        fts = " ".join('"' + t.replace('"', '""').replace("\x00", "") + '"*' for t in terms)
        cancel = cancel or SearchCancel()
        conn = self._search_connection()
        try:
            if not cancel.attach(conn):
                raise SearchCancelledError("The search was cancelled.")
            conn.execute("BEGIN")  # one snapshot for the whole search
            rows = conn.execute(
                "SELECT t.num, t.id, t.session_id, s.title, s.number, t.created_at "
                "FROM turns_fts f JOIN turns t ON t.num = f.rowid JOIN sessions s ON s.id = t.session_id "
                "WHERE turns_fts MATCH ? ORDER BY t.created_at DESC LIMIT ?",
                (fts, limit),
            ).fetchall()
            finder = _Finder(terms)
            hits = [self._hit_for(conn, row, fts, finder, cancel) for row in rows]
            if any(_UNSPACED.search(t) for t in terms):
                seen = {h.turn_id for h in hits}
                hits.extend(h for h in self._substring_hits(conn, terms, limit, finder, cancel) if h.turn_id not in seen)
                hits.sort(key=lambda h: h.created_at, reverse=True)
            return hits[:limit]
        except sqlite3.Error as exc:
            if cancel.cancelled:
                raise SearchCancelledError("The search was cancelled.") from None
            raise self._error(exc, "search") from exc
        finally:
            cancel.detach()
            with contextlib.suppress(sqlite3.Error):
                conn.close()

    def _search_connection(self) -> sqlite3.Connection:
        """A read-only connection for one search (the store's own connection and lock stay free)."""
        from urllib.parse import quote

        if self._conn is None:
            raise StorageError(f"Could not search: the store {self.path} is closed.")
        try:
            conn = sqlite3.connect(
                f"file:{quote(str(self.path))}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_MS / 1000,
                isolation_level=None, check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        except sqlite3.Error as exc:
            raise self._error(exc, "search") from exc
        return conn

    def _hit_for(
        self, conn: sqlite3.Connection, row: tuple, fts: str, finder: _Finder, cancel: SearchCancel
    ) -> SearchHit:
        num, tid, sid, title, number, created_at = row
        # Fields that hold every word, as the index decides (prefixes, case, diacritics),
        # first; when the words are spread over fields, the first field holding one.
        whole = [
            name for name in _FTS_FIELDS
            if conn.execute(
                "SELECT 1 FROM turns_fts WHERE turns_fts MATCH ? AND rowid = ?", (f"{{{name}}} : ({fts})", num)
            ).fetchone()
        ]
        first: tuple[str, str, tuple[tuple[int, int], ...]] | None = None
        for name in whole + [n for n in _FTS_FIELDS if n not in whole]:
            snippet, spans = finder.snippet(conn, num, name, cancel)
            if first is None:
                first = (name, snippet, spans)
            if spans:
                first = (name, snippet, spans)
                break
        assert first is not None
        name, snippet, spans = first
        return SearchHit(sid, tid, _dec(title), snippet, name, number, _readable_time(created_at), spans)

    @staticmethod
    def _substring_hits(
        conn: sqlite3.Connection, terms: list[str], limit: int, finder: _Finder, cancel: SearchCancel
    ) -> list[SearchHit]:
        """Substring matches for words the tokenizer cannot split (one pass over the index's text)."""
        where = " AND ".join(
            "(instr(f.user_text, ?) OR instr(f.content, ?) OR instr(f.reasoning, ?))" for _ in terms
        )
        args = [t for t in terms for _ in range(3)]
        rows = conn.execute(
            "SELECT t.num, t.id, t.session_id, s.title, s.number, t.created_at, "
            "instr(f.user_text, ?) > 0, instr(f.content, ?) > 0 "
            "FROM turns_fts f JOIN turns t ON t.num = f.rowid JOIN sessions s ON s.id = t.session_id "
            f"WHERE {where} ORDER BY t.created_at DESC LIMIT ?",
            (terms[0], terms[0], *args, limit),
        ).fetchall()
        hits = []
        for num, tid, sid, title, number, created_at, in_user, in_content in rows:
            name = "user_text" if in_user else "content" if in_content else "reasoning"
            snippet, spans = finder.snippet(conn, num, name, cancel, substring=terms[0])
            hits.append(SearchHit(sid, tid, _dec(title), snippet, name, number, _readable_time(created_at), spans))
        return hits

    # -- maintenance -------------------------------------------------------------------------

    def check(self) -> str:
        """``PRAGMA integrity_check``: "ok", or the problems found, one per line."""
        rows = self._read("check the database", lambda c: c.execute("PRAGMA integrity_check").fetchall())
        return "\n".join(str(row[0]) for row in rows)


_FTS_FIELDS = ("user_text", "content", "reasoning")

_WINDOW = 1 << 20
"""Bytes of a text read at a time when looking for a snippet."""
_CONTEXT = 48
"""Characters of context on each side of the match in a snippet."""


class SearchCancelledError(GlmChatError):
    """A search was stopped through its `SearchCancel` handle."""


class SearchCancel:
    """A handle to stop a running `Store.search` from another thread (`cancel()`).

    Cancelling interrupts the search's SQLite statement at once (`interrupt()`) and
    stops the reading of texts between two windows; the search then raises
    `SearchCancelledError`. A handle cancelled before the search starts stops it
    before it reads anything. One handle serves one search at a time.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self.cancelled = False

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            if self._conn is not None:
                self._conn.interrupt()

    def attach(self, conn: sqlite3.Connection) -> bool:
        """Tie the handle to the search's connection; False if it was cancelled already."""
        with self._lock:
            self._conn = conn
            return not self.cancelled

    def detach(self) -> None:
        with self._lock:
            self._conn = None

    def check(self) -> None:
        if self.cancelled:
            raise SearchCancelledError("The search was cancelled.")


class _Finder:
    """Finds the first match of the query's words in a stored text, reading it a window at a time."""

    def __init__(self, terms: list[str]) -> None:
        # A word matches at the start of a word (FTS prefix queries); scripts without
        # spaces match anywhere.
        parts = []
        for term in sorted(set(terms), key=len, reverse=True):
            escaped = re.escape(term)
            parts.append(escaped if _UNSPACED.search(term) else r"(?<!\w)" + escaped)
        self.pattern = re.compile("|".join(parts), re.IGNORECASE)
        self.longest = max(len(t) for t in terms)

    def snippet(
        self, conn: sqlite3.Connection, num: int, column: str, cancel: SearchCancel, substring: str | None = None
    ) -> tuple[str, tuple[tuple[int, int], ...]]:
        """The snippet around the first match in `turns.<column>` of row `num`, and the matched spans in it.

        Reads O(position of the first match) bytes, a window at a time, keeping only
        a short tail of what came before; with no match found (the index folds
        diacritics, this pattern does not) the snippet is the start of the text.
        """
        import codecs

        try:
            blob = conn.blobopen("turns", column, num, readonly=True)
        except sqlite3.Error:
            return "", ()
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        carry = ""
        start_text = ""
        offset = 0
        with blob:
            size = len(blob)
            while offset < size:
                cancel.check()
                data = blob.read(_WINDOW)
                offset += len(data)
                text = carry + decoder.decode(data, final=offset >= size)
                if not start_text:
                    start_text = text[: 2 * _CONTEXT]
                match = self.pattern.search(text)
                if match is not None:
                    after = text[match.end() : match.end() + _CONTEXT]
                    while len(after) < _CONTEXT and offset < size:
                        more = blob.read(4 * _CONTEXT)
                        offset += len(more)
                        after += decoder.decode(more, final=offset >= size)
                    before = text[max(0, match.start() - _CONTEXT) : match.start()]
                    return _make_snippet(
                        before, after, self.pattern, text[match.start() : match.end()],
                        left=match.start() > _CONTEXT or offset - len(data) > 0,
                        right=len(after) > _CONTEXT or offset < size,
                    )
                # Keep enough to see a word that straddles two windows, and the context before it.
                carry = text[-(self.longest + _CONTEXT) :]
        clean = " ".join(start_text.split())
        return (clean + ("…" if size > len(start_text) else "")), ()


def _make_snippet(
    before: str, after: str, pattern: re.Pattern[str], matched: str, *, left: bool, right: bool
) -> tuple[str, tuple[tuple[int, int], ...]]:
    """`…before MATCH after…` on one line, with the spans of every match of the pattern in it."""
    head = ("…" if left else "") + before
    tail = after[:_CONTEXT] + ("…" if right else "")
    text = head + matched + tail
    spans = tuple((m.start(), m.end()) for m in pattern.finditer(text))
    return text, spans or ((len(head), len(head) + len(matched)),)
# A searchable word has a letter or digit (the tokenizer drops everything else).
_WORD = re.compile(r"[^\W_]")
# Scripts written without spaces: the tokenizer sees a whole run as one word.
_UNSPACED = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]")


_OWN_ID = re.compile(r"[0-9a-f]{32}")


def _is_own_id(value: str) -> bool:
    """Whether an id has the shape glmchat gives ids (32 lowercase hex digits)."""
    return bool(_OWN_ID.fullmatch(value))
