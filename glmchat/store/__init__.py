"""Sessions kept in SQLite: crash-safe, shared between processes, searchable, trees of turns.

One database file (`glmchat.db` in the data dir) in WAL mode holds every
session. `Store` is the whole interface; its parts live beside it:

- `files`: is the file sound and ours; a bad one is set aside, never deleted;
- `database`: the connection, transactions with retries, one-line errors;
- `schema`: the tables and the migrations between versions;
- `codec`: exact text in, exact text out;
- `rows`: sessions, turns and steps as rows;
- `streaming`: saving a streaming turn in O(new text), and crash recovery;
- `sessions`: paths, branches, forks, renames, deletes, imports;
- `search`: full-text search.

Nothing above the store sees an SQLite type: every failure is a `StorageError`
(`SessionNotFound`, `TurnNotFound`) with a one-line message naming the file.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from collections.abc import Callable, Iterator
from typing import TypeVar

from glmchat.errors import SessionNotFound, StorageError, TurnNotFound
from glmchat.session import Branch, Session, SessionTree, Turn
from glmchat.store import files, rows, schema, sync
from glmchat.store import search as _search
from glmchat.store import sessions as _sessions
from glmchat.store import database
from glmchat.store.database import Database, Owner, connect, in_use_here
from glmchat.store.schema import schema_version
from glmchat.store.search import SearchCancel, SearchCancelledError, SearchHit
from glmchat.store.sessions import SessionSummary
from glmchat.store.sync import NOT_SYNCED, SessionChanges, SyncPoint
from glmchat.store.streaming import StreamingWriter

__all__ = ["DB_NAME", "NOT_SYNCED", "SearchCancel", "SearchCancelledError", "SearchHit", "SessionChanges",
           "SessionNotFound", "SessionSummary", "Store", "StorageError", "SyncPoint", "TurnNotFound", "schema_version"]

DB_NAME = "glmchat.db"

T = TypeVar("T")


class Store:
    """Sessions and turns in one SQLite database.

    Thread-safe (one lock around the connection). Several processes may share the
    same file. Every failure to read or write is raised as `StorageError` with a
    one-line message; nothing is half-written.

    Args:
        path: The database file; its folder is created if needed.
        verify: Run `PRAGMA quick_check` on open, to find damage early and set
            the file aside. Costs a read of the whole file.
    """

    def __init__(self, path: Path | str, *, verify: bool = True) -> None:
        self.path = Path(path)
        self.warnings: list[str] = []
        """One-line messages about what happened on open (a bad file set aside...)."""
        self.recovered: list[str] = []
        """Ids of interrupted turns rebuilt from what they saved, on open."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StorageError(f"Cannot create the data folder {self.path.parent}: {exc.strerror or exc}") from exc
        with files.open_lock(self.path):
            self._db = Database(self.path, self._open(verify))
            try:
                self._migrate()
                self._db.read("watch this store's writes", sync.watch_own_writes)
            except BaseException:
                self._db.close()
                raise
        self._writer = StreamingWriter(self._db, Owner.current())
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
        self._db.close()

    # -- opening -----------------------------------------------------------------------------

    def _open(self, verify: bool) -> sqlite3.Connection:
        try:
            return self._open_checked(verify)
        except files.BadDatabase as bad:
            try:
                moved = files.set_aside(self.path, bad.kind)
            except OSError as exc:
                raise StorageError(
                    f"The database {self.path} is unusable ({bad.reason}) and could not be moved aside: "
                    f"{exc.strerror or exc}"
                ) from exc
            self.warnings.append(
                f"The database {self.path} was unusable ({bad.reason}); it was moved to {moved} and a new one was started."
            )
            try:
                return connect(self.path)
            except sqlite3.Error as exc:
                raise StorageError(f"Could not create a new database {self.path}: {exc}") from exc

    def _open_checked(self, verify: bool) -> sqlite3.Connection:
        try:
            # Read by hand only when no connection of this process holds the file (closing
            # a descriptor of it would drop that connection's locks).
            problem = None if in_use_here(self.path) else files.header_problem(self.path)
        except OSError as exc:
            raise StorageError(f"Cannot read the database {self.path}: {exc.strerror or exc}") from exc
        if problem:
            raise files.BadDatabase("corrupt", problem)
        try:
            conn = connect(self.path)
        except sqlite3.DatabaseError as exc:
            if files.is_corruption(exc):
                raise files.BadDatabase("corrupt", str(exc)) from exc
            raise StorageError(f"Could not open the database {self.path}: {exc}") from exc
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            names = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if verify:
                result = [row[0] for row in conn.execute("PRAGMA quick_check")]
                if result != ["ok"]:
                    raise files.BadDatabase("corrupt", f"integrity check failed: {result[0]}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            if files.is_corruption(exc):
                raise files.BadDatabase("corrupt", str(exc)) from exc
            raise StorageError(f"Could not open the database {self.path}: {exc}") from exc
        except files.BadDatabase:
            conn.close()
            raise
        if version > schema_version():
            conn.close()
            raise files.BadDatabase(
                "newer", f"it was written by a newer glmchat (schema {version}; this one reads up to {schema_version()})"
            )
        if version == 0 and {n for n in names if not n.startswith("sqlite_")}:
            conn.close()
            raise files.BadDatabase("corrupt", "not a glmchat database")
        return conn

    def _migrate(self) -> None:
        target = schema_version()

        def work(conn: sqlite3.Connection) -> None:
            # Read again inside the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for step in schema.MIGRATIONS[version:target]:
                step(conn)
            if version < target:
                conn.execute(f"PRAGMA user_version = {target}")

        current = self._db.read("read the schema version", lambda c: c.execute("PRAGMA user_version").fetchone()[0])
        if current < target:
            self._db.write("set up the database", work)

    def _read(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._db.read(action, work)

    def _write(self, action: str, work: Callable[[sqlite3.Connection], T]) -> T:
        return self._db.write(action, work)

    # -- streaming turns -------------------------------------------------------------------------

    def begin_turn(self, session: Session, turn: Turn) -> None:
        """Record a turn that starts streaming as the head of its session's path (and the session, if new).

        The turn is marked as owned by this process, so that if the process dies
        the next store to open can tell it was interrupted.
        """
        self._writer.begin(session, turn)

    def save_progress(self, turn: Turn) -> int:
        """Append what a streaming turn received since the last save; return the rows written.

        Costs O(new text): nothing already saved is read, joined or written again.
        """
        return self._writer.progress(turn)

    def finish_turn(self, turn: Turn) -> None:
        """Write the settled turn and drop its saved progress, in one transaction."""
        self._writer.finish(turn)

    def update_turn(self, turn: Turn) -> None:
        """Rewrite a stored turn (e.g. after the user changed `include_in_context`)."""
        self._writer.update(turn)

    def recover(self) -> list[str]:
        """Rebuild turns whose streaming process died and mark them interrupted; return their ids."""
        done = self._writer.recover()
        self.recovered.extend(done)
        return done

    # -- sessions --------------------------------------------------------------------------------

    def save_session(self, session: Session, *, turns: bool = True) -> None:
        """Write the session's settings and (with `turns`) every turn of its path, as one path.

        Costs O(session) with `turns`: for bulk writes (tests, tools); a settings
        change uses `turns=False`.
        """
        with self._db.lock:
            if not turns:
                self._write("save the session", lambda c: rows.put_session(c, session, full=True))
                return
            self._write("save the session", lambda c: _sessions.save(c, session, writer_owns=self._writer.owns))

    def list_sessions(self, limit: int = 200, offset: int = 0) -> list[SessionSummary]:
        """Sessions, most recently updated first, without their turns."""
        return self._read("list the sessions", lambda c: _sessions.list_sessions(c, limit, offset))

    def count_sessions(self) -> int:
        return self._read("count the sessions", lambda c: c.execute("SELECT count(*) FROM sessions").fetchone()[0])

    def resolve_id(self, ref: str) -> str:
        """The session id for a session number ("42" or "#42"), a full id, or a unique id prefix.

        Raises:
            SessionNotFound: Nothing matches, or the prefix matches several sessions.
        """
        return self._read("find the session", lambda c: _sessions.resolve(c, ref))

    def most_recent_session_id(self) -> str | None:
        row = self._read(
            "find the latest session",
            lambda c: c.execute("SELECT id FROM sessions ORDER BY updated_at DESC, number DESC LIMIT 1").fetchone(),
        )
        return row[0] if row else None

    def session_number(self, session_id: str) -> int:
        """The short number of a session."""
        row = self._read(
            "find the session", lambda c: c.execute("SELECT number FROM sessions WHERE id = ?", (session_id,)).fetchone()
        )
        if row is None:
            raise SessionNotFound(f"No session '{session_id}'.")
        return row[0]

    def revision(self, session_id: str) -> int:
        """A number that changes whenever the session's turns or settings change (in any process)."""
        row = self._read(
            "check the session", lambda c: c.execute("SELECT revision FROM sessions WHERE id = ?", (session_id,)).fetchone()
        )
        if row is None:
            raise SessionNotFound(f"No session '{session_id}'.")
        return row[0]

    def load_session(self, ref: str, *, last: int | None = None) -> Session:
        """A session with its current path (all of it, or only the `last` N turns), root first.

        `ref` may be anything `resolve_id` accepts. A turn still streaming (in
        another process) is shown with what it has saved so far.
        """

        def work(conn: sqlite3.Connection) -> Session:
            return _sessions.load(conn, _sessions.resolve(conn, ref), last)

        return self._read("load the session", work)

    def has_turn(self, turn_id: str) -> bool:
        """Whether the turn is in the database."""
        return self._read(
            "find the turn", lambda c: c.execute("SELECT 1 FROM turns WHERE id = ?", (turn_id,)).fetchone() is not None
        )

    # -- other writers ---------------------------------------------------------------------------

    def _data_version(self) -> int:
        """SQLite's count of commits made by other connections (it moves only for them)."""
        return self._db.pragma("check for changes", "data_version")

    def load_session_synced(self, ref: str, *, last: int | None = None) -> tuple[Session, SyncPoint]:
        """`load_session`, and the point it was read at, for `changes_since`."""
        # Read before the snapshot: a commit after this read moves it, so the next
        # `changes_since` looks; one between it and the snapshot is merely looked at twice.
        data_version = self._data_version()

        def work(conn: sqlite3.Connection) -> tuple[Session, int]:
            session_id = _sessions.resolve(conn, ref)
            return _sessions.load(conn, session_id, last), sync.revision(conn, session_id) or 0

        session, revision = self._read("load the session", work)
        return session, SyncPoint(revision, data_version)

    def changes_since(self, session_id: str, since: SyncPoint) -> SessionChanges:
        """What other writers did to a session since `since` (this store's own writes are not reported).

        The result's `point` is where the caller stands once it has applied the result.
        """
        data_version = self._data_version()
        if data_version == since.data_version:
            return SessionChanges(since)
        return self._read("check the session for changes", lambda c: sync.changes(c, session_id, since, data_version))

    def load_turns_before(self, session_id: str, turn_id: str, limit: int | None = None) -> tuple[list[Turn], dict[str, Branch]]:
        """The path's turns before `turn_id` (the last `limit` of them), oldest first, with their branches."""
        return self._read("load turns", lambda c: _sessions.load_before(c, session_id, turn_id, limit))

    def iter_turns(self, session_id: str, batch: int = 200) -> Iterator[Turn]:
        """The turns of the session's current path, oldest first, read `batch` at a time (exports of any length).

        Each batch is its own short read: the store is not held between batches, and
        memory holds one batch.
        """
        ids = self._read("load turns", lambda c: _sessions.path_ids(c, _sessions.head_of(c, session_id)))
        for start in range(0, len(ids), batch):
            page = ids[start : start + batch]
            found = self._read("load turns", lambda c, page=page: rows.read_turns(c, page))
            yield from (found[tid] for tid in page if tid in found)

    def path_branches(self, session_id: str) -> dict[str, Branch]:
        """Where each turn of the current path stands among its siblings (for those that have some)."""
        return self._read("find the branches", lambda c: _sessions.path_branches(c, session_id))

    def load_tree(self, ref: str) -> SessionTree:
        """A session with every turn of its tree (for the JSON export and `sessions show --json`)."""
        return self._read("load the session", lambda c: _sessions.tree(c, _sessions.resolve(c, ref)))

    def siblings(self, session_id: str, turn_id: str) -> list[str]:
        """The ids of the turns following the same turn as `turn_id` in this session, oldest first."""
        return self._read("find the branches", lambda c: _sessions.siblings(c, session_id, turn_id))

    def switch_branch(self, session_id: str, turn_id: str) -> None:
        """Make the newest path through `turn_id` the session's current path."""

        def work(conn: sqlite3.Connection) -> None:
            rows.set_head(conn, session_id, _sessions.newest_leaf(conn, session_id, turn_id))

        self._write("switch branches", work)

    def fork_session(self, ref: str, at: int, title: str | None = None) -> str:
        """A new session sharing the first `at` turns of `ref`'s current path; returns its id. Writes one row."""
        return self._write("fork the session", lambda c: _sessions.fork(c, _sessions.resolve(c, ref), at, title))

    def rename_session(self, session_id: str, title: str) -> None:
        self._write("rename the session", lambda c: _sessions.rename(c, session_id, title))

    def delete_session(self, session_id: str) -> None:
        """Delete a session and its turns (but the turns a fork of it still builds on)."""
        with self._db.lock:
            self._write("delete the session", lambda c: _sessions.delete(c, session_id))
            self._writer.forget_session(session_id)

    def import_session(self, tree: SessionTree) -> SessionTree:
        """Store a session from elsewhere (a JSON import) without overwriting anything; return it as stored."""
        return self._write("import the session", lambda c: _sessions.import_tree(c, tree))

    # -- search and maintenance ------------------------------------------------------------------

    def search(self, query: str, limit: int = 50, *, cancel: SearchCancel | None = None) -> list[SearchHit]:
        """Turns whose user text, answer or reasoning match every word of `query`, newest first.

        Any input is safe: words are quoted, so FTS syntax is searched for as text.
        The search runs on its own read-only connection and never takes the store's
        lock, so progress saves and draft saves go on meanwhile.

        Args:
            query: The words to find.
            limit: At most this many hits.
            cancel: A handle another thread may `cancel()` to stop the search at once.

        Raises:
            SearchCancelledError: `cancel` was called.
            StorageError: the database could not be read.
        """
        from urllib.parse import quote

        if self._db.closed:
            raise StorageError(f"Could not search: the store {self.path} is closed.")
        try:
            conn = sqlite3.connect(
                f"file:{quote(str(self.path))}?mode=ro", uri=True, timeout=database.BUSY_TIMEOUT_MS / 1000,
                isolation_level=None, check_same_thread=False,
            )
        except sqlite3.Error as exc:
            raise self._db.error(exc, "search") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {database.BUSY_TIMEOUT_MS}")
            return _search.search(conn, query, limit, cancel or SearchCancel())
        except sqlite3.Error as exc:
            raise self._db.error(exc, "search") from exc
        finally:
            conn.close()

    def check(self) -> str:
        """`PRAGMA integrity_check`: "ok", or the problems found, one per line."""
        found = self._read("check the database", lambda c: c.execute("PRAGMA integrity_check").fetchall())
        return "\n".join(str(row[0]) for row in found)
