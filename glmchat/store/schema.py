"""The database schema and its migrations (`PRAGMA user_version` says which one a file has).

`MIGRATIONS[i]` takes a database from version i to i + 1, inside the caller's
transaction. Version 1 (glmchat 0.1) kept one list of turns per session, each
turn's text in its own row. Version 2 makes sessions trees (a turn points to
the turn it follows; a session points to the last turn of its current path),
turns sequences of steps (one row per step), and counts every change to a
session (`revision`, kept by triggers) so an open window sees other writers.
Version 3 remembers where a fork leaves its source (`sessions.base`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from glmchat.store.codec import json_blob, json_load


def _v1(conn: sqlite3.Connection) -> None:
    """Sessions, turns, chunks of streaming turns, full-text index."""
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


_STEP_FIELDS = ("tool_calls", "reasoning_details", "usage")
"""Turn fields of version 1 that belong to a step in version 2."""


def _v2(conn: sqlite3.Connection) -> None:
    """Trees of turns, and turns made of steps; every version 1 session becomes one path, losslessly."""
    for statement in (
        "ALTER TABLE sessions ADD COLUMN head TEXT",
        "ALTER TABLE sessions ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE turns ADD COLUMN revision INTEGER NOT NULL DEFAULT 0",
        # A turn of a fork's shared path belongs to the session it was made in; the
        # fork only points at it, so parent_id carries no foreign key.
        "ALTER TABLE turns ADD COLUMN parent_id TEXT",
        "ALTER TABLE turns ADD COLUMN depth INTEGER NOT NULL DEFAULT 1",
        "CREATE INDEX turns_by_parent ON turns(parent_id)",
        """CREATE TABLE steps (
            turn_id TEXT NOT NULL REFERENCES turns(id) ON DELETE CASCADE,
            n INTEGER NOT NULL,
            reasoning BLOB NOT NULL,
            content BLOB NOT NULL,
            meta BLOB NOT NULL,
            PRIMARY KEY (turn_id, n)
        ) WITHOUT ROWID""",
        "ALTER TABLE chunks ADD COLUMN step INTEGER NOT NULL DEFAULT 0",
        # Each session's turns, in the order they were made, become one path.
        """UPDATE turns SET
            parent_id = (SELECT p.id FROM turns p WHERE p.session_id = turns.session_id AND p.seq < turns.seq
                         ORDER BY p.seq DESC LIMIT 1),
            depth = (SELECT count(*) FROM turns p WHERE p.session_id = turns.session_id AND p.seq <= turns.seq)""",
        """UPDATE sessions SET
            head = (SELECT t.id FROM turns t WHERE t.session_id = sessions.id ORDER BY t.seq DESC LIMIT 1),
            turn_count = (SELECT count(*) FROM turns t WHERE t.session_id = sessions.id)""",
    ):
        conn.execute(statement)
    # A turn's text and its tool calls become its first step.
    rows = conn.execute("SELECT id, reasoning, content, meta FROM turns").fetchall()
    for tid, reasoning, content, meta in rows:
        data = json_load(meta) or {}
        step = {name: data.pop(name, None) for name in _STEP_FIELDS}
        step["tool_calls"] = step["tool_calls"] or []
        step["tool_results"] = []
        step["finish_reason"] = data.get("finish_reason")
        conn.execute(
            "INSERT INTO steps (turn_id, n, reasoning, content, meta) VALUES (?, 0, ?, ?, ?)",
            (tid, reasoning, content, json_blob(step)),
        )
        conn.execute("UPDATE turns SET meta = ? WHERE id = ?", (json_blob(data), tid))
    conn.execute("ALTER TABLE turns DROP COLUMN reasoning")
    conn.execute("ALTER TABLE turns DROP COLUMN content")
    # Revisions: every write to a session's turns moves the session's counter on, whoever
    # writes (another process included); `turns.revision` is the session's revision at the
    # turn's last write. Progress saves of a streaming turn (chunks, finished steps) leave
    # the turn row alone and do not count. (A change of the current path moves it too: set_head.)
    for statement in (
        """CREATE TRIGGER turns_revision_insert AFTER INSERT ON turns BEGIN
            UPDATE sessions SET revision = revision + 1 WHERE id = new.session_id;
            UPDATE turns SET revision = (SELECT revision FROM sessions WHERE id = new.session_id) WHERE num = new.num;
        END""",
        # Every column but `revision` itself (which the triggers set) and the owner
        # columns alone (never written without the rest).
        """CREATE TRIGGER turns_revision_update
            AFTER UPDATE OF session_id, seq, status, created_at, user_text, meta, parent_id, depth ON turns
        BEGIN
            UPDATE sessions SET revision = revision + 1 WHERE id = new.session_id;
            UPDATE turns SET revision = (SELECT revision FROM sessions WHERE id = new.session_id) WHERE num = new.num;
        END""",
        """CREATE TRIGGER turns_revision_delete AFTER DELETE ON turns BEGIN
            UPDATE sessions SET revision = revision + 1 WHERE id = old.session_id;
        END""",
    ):
        conn.execute(statement)


def _v3(conn: sqlite3.Connection) -> None:
    """Where a fork leaves its source (`base`), kept when the fork's head moves to a branch of its own.

    Without it a fork that branched at a shared turn could no longer reach the
    shared turns below that point. Forks made before this: the deepest shared
    turn they still point at (their head, or what their own turns follow).
    """
    conn.execute("ALTER TABLE sessions ADD COLUMN base TEXT")
    conn.execute(
        """UPDATE sessions SET base = (
            SELECT t.id FROM turns t WHERE t.session_id != sessions.id AND (
                t.id = sessions.head
                OR t.id IN (SELECT c.parent_id FROM turns c WHERE c.session_id = sessions.id))
            ORDER BY t.depth DESC LIMIT 1)"""
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3]


def schema_version() -> int:
    """The schema version this glmchat writes."""
    return len(MIGRATIONS)
