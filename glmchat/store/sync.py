"""What other writers did to a session: a window asks before it builds a request, and now and then while idle.

Triggers keep a revision per session: every turn row inserted, rewritten or
deleted moves it on, whoever writes (this process or another), and so does a
change of the session's current path. A TEMP trigger, which fires for this
connection's writes alone, records the turns written here, which is what tells
"written here" from "written elsewhere". The question costs one `PRAGMA
data_version` when no other connection committed anything since it was last
asked; then one indexed read of the session's revision; and only when that
moved, the ids of the path and the rows other writers wrote.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, field

from glmchat.session import Turn
from glmchat.store import rows, sessions


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
    """Every turn of the session's current path now, in order; None when nothing changed."""
    turns: dict[str, Turn] = field(default_factory=dict)
    """The turns of that path other writers wrote (added or rewrote), by id, read whole."""

    @property
    def changed(self) -> bool:
        return self.deleted or self.turn_ids is not None


def watch_own_writes(conn: sqlite3.Connection) -> None:
    """Record, on this connection only, the revision of every turn it writes.

    A TEMP trigger fires for this connection's writes alone (and rolls back with
    them), which is what tells "written here" from "written elsewhere".
    """
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS own_turn_writes (id TEXT PRIMARY KEY, revision INTEGER NOT NULL)")
    conn.execute(
        """CREATE TEMP TRIGGER IF NOT EXISTS own_turn_write AFTER UPDATE OF revision ON main.turns BEGIN
            INSERT OR REPLACE INTO own_turn_writes (id, revision) VALUES (new.id, new.revision);
        END"""
    )


def revision(conn: sqlite3.Connection, session_id: str) -> int | None:
    row = conn.execute("SELECT revision FROM sessions WHERE id = ?", (session_id,)).fetchone()
    return None if row is None else row[0]


def changes(conn: sqlite3.Connection, session_id: str, since: SyncPoint, data_version: int) -> SessionChanges:
    """What other writers did to the session since `since` (`data_version` read before this snapshot)."""
    current = revision(conn, session_id)
    if current is None:
        return SessionChanges(SyncPoint(0, data_version), deleted=True)
    point = SyncPoint(current, data_version)
    if current == since.revision:
        return SessionChanges(point)
    # A revision below the one asked about: not the database the caller read. Everything counts.
    floor = since.revision if current > since.revision else -1
    path = sessions.path_ids(conn, sessions.head_of(conn, session_id))
    foreign: list[str] = []
    for start in range(0, len(path), 500):
        batch = path[start : start + 500]
        marks = ",".join("?" * len(batch))
        foreign.extend(
            tid for tid, theirs in conn.execute(
                f"SELECT t.id, t.revision > ? AND NOT EXISTS ("
                f"  SELECT 1 FROM temp.own_turn_writes o WHERE o.id = t.id AND o.revision = t.revision"
                f") FROM turns t WHERE t.id IN ({marks})",
                (floor, *batch),
            )
            if theirs
        )
    return SessionChanges(point, turn_ids=tuple(path), turns=rows.read_turns(conn, foreign))
