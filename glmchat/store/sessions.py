"""Sessions as trees of turns: listing, loading a path, branches, forks, renaming, deleting, importing.

A session row points to the last turn of its current path (`head`); the path
is found by following `parent_id` up from there. A fork is one new session
row whose head (and `base`: where it leaves the source, kept when the head
moves on) is a turn of the source: the turns they have in common are shared,
not copied. A turn's siblings, as a session shows them, are the turns
following the same turn that belong to that session, plus the one on its
shared path (a fork's, up to its base).
"""

from __future__ import annotations

import re
import sqlite3
import time
from dataclasses import dataclass
from typing import Any

from glmchat.errors import SessionNotFound, TurnNotFound
from glmchat.sanity import UNKNOWN_TIME, sane_time
from glmchat.session import Branch, Session, SessionTree, Turn, TurnStatus, new_id
from glmchat.store import rows
from glmchat.store.codec import dec, enc, session_from_row, session_settings

_HEX_ID = re.compile(r"[0-9a-f]{32}")


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
    """Turns on the current path."""


def list_sessions(conn: sqlite3.Connection, limit: int, offset: int) -> list[SessionSummary]:
    found = conn.execute(
        "SELECT id, number, title, host, model, created_at, updated_at, turn_count FROM sessions "
        "ORDER BY updated_at DESC, number DESC LIMIT ? OFFSET ?",
        (limit, offset),
    ).fetchall()
    return [
        SessionSummary(
            sid, number, dec(title), dec(host), dec(model), sane_time(created) or UNKNOWN_TIME,
            sane_time(updated) or UNKNOWN_TIME, count if isinstance(count, int) and count >= 0 else 0,
        )
        for sid, number, title, host, model, created, updated, count in found
    ]


def resolve(conn: sqlite3.Connection, ref: str) -> str:
    """The session id for a full id, a session number ("42" or "#42"), or a unique id prefix.

    A full id is 32 hex digits; anything shorter made of digits is a number, never
    an id (imported ids are re-keyed to full ids, so none can look like a number).
    """
    text = ref.strip()
    if _HEX_ID.fullmatch(text):
        row = conn.execute("SELECT id FROM sessions WHERE id = ?", (text,)).fetchone()
        if row:
            return row[0]
        raise SessionNotFound(f"No session '{ref}'.")
    numbered = text.startswith("#")
    if numbered:
        text = text[1:]
    if not text:
        raise SessionNotFound("No session given.")
    if text.isascii() and text.isdigit():
        row = conn.execute("SELECT id FROM sessions WHERE number = ?", (int(text),)).fetchone() if len(text) <= 18 else None
        if row:
            return row[0]
        if numbered or len(text) < 4:
            raise SessionNotFound(f"No session number {text}.")
        # No such number: an id prefix that happens to be all digits.
    if numbered:
        raise SessionNotFound(f"No session '{ref}'.")
    row = conn.execute("SELECT id FROM sessions WHERE id = ?", (text,)).fetchone()
    if row:
        return row[0]
    prefix = text.lower()
    if re.fullmatch(r"[0-9a-f]{4,32}", prefix):
        # Ids are lowercase hex: every id starting with the prefix sorts below prefix + "g".
        found = conn.execute("SELECT id FROM sessions WHERE id >= ? AND id < ? LIMIT 2", (prefix, prefix + "g")).fetchall()
        if len(found) == 1:
            return found[0][0]
        if len(found) > 1:
            raise SessionNotFound(f"'{ref}' matches several sessions; give more of the id.")
    raise SessionNotFound(f"No session '{ref}'.")


def head_of(conn: sqlite3.Connection, session_id: str) -> str | None:
    """The last turn of the session's current path (None for a session without turns)."""
    row = conn.execute("SELECT head FROM sessions WHERE id = ?", (session_id,)).fetchone()
    if row is None:
        raise SessionNotFound(f"No session '{session_id}'.")
    return row[0]


def _session_row(conn: sqlite3.Connection, session_id: str) -> tuple[Session, str | None]:
    """The session's settings (no turns) and the id of its current path's last turn."""
    row = conn.execute(
        "SELECT id, title, host, model, created_at, updated_at, settings, head FROM sessions WHERE id = ?", (session_id,)
    ).fetchone()
    if row is None:
        raise SessionNotFound(f"No session '{session_id}'.")
    return session_from_row(row[:7]), row[7]


# -- paths ------------------------------------------------------------------------------------------

_PATH = """
WITH RECURSIVE path(id, parent_id, depth) AS (
    SELECT id, parent_id, depth FROM turns WHERE id = ?
    UNION ALL
    SELECT t.id, t.parent_id, t.depth FROM turns t JOIN path p ON t.id = p.parent_id WHERE p.depth - 1 > ?
)
SELECT id FROM path ORDER BY depth
"""


def path_ids(conn: sqlite3.Connection, last: str | None, limit: int | None = None) -> list[str]:
    """Ids from the root down to `last` (only the last `limit` of them when given)."""
    if last is None:
        return []
    if limit is None:
        floor = 0
    else:
        row = conn.execute("SELECT depth FROM turns WHERE id = ?", (last,)).fetchone()
        if row is None:
            raise TurnNotFound(f"Turn {last} is not in the database.")
        floor = row[0] - limit
        if limit <= 0:
            return []
    return [r[0] for r in conn.execute(_PATH, (last, floor))]


def _shared_next(conn: sqlite3.Connection, session_id: str, from_depth: int = 0) -> dict[str | None, str]:
    """For a fork: the turn after each turn of the path it shares (None: its first); empty for other sessions.

    Only for the turns at `from_depth` and below (0: all), so that a look near the
    end of a long fork does not walk its whole shared path.
    """
    row = conn.execute(
        "SELECT s.base, t.depth FROM sessions s JOIN turns t ON t.id = s.base WHERE s.id = ?", (session_id,)
    ).fetchone()
    if row is None:
        return {}
    base, depth = row
    shared = path_ids(conn, base, depth - from_depth + 1)
    nexts: dict[str | None, str] = dict(zip(shared, shared[1:]))
    if from_depth <= 1 and shared:
        nexts[None] = shared[0]
    return nexts


def branches(conn: sqlite3.Connection, session_id: str, path: list[Turn]) -> dict[str, Branch]:
    """Where each turn of the path stands among its siblings, for those that have some."""
    return _branches(conn, session_id, [(t.id, t.parent_id) for t in path])


def path_branches(conn: sqlite3.Connection, session_id: str) -> dict[str, Branch]:
    """`branches` of the session's whole current path, read without loading its turns."""
    ids = path_ids(conn, head_of(conn, session_id))
    parents: dict[str, str | None] = {}
    for start in range(0, len(ids), 500):
        batch = ids[start : start + 500]
        marks = ",".join("?" * len(batch))
        parents.update(conn.execute(f"SELECT id, parent_id FROM turns WHERE id IN ({marks})", batch).fetchall())
    return _branches(conn, session_id, [(tid, parents.get(tid)) for tid in ids])


def _branches(conn: sqlite3.Connection, session_id: str, path: list[tuple[str, str | None]]) -> dict[str, Branch]:
    parents = [parent for _, parent in path if parent is not None]
    by_parent: dict[str | None, list[tuple[float, int, str]]] = {}
    for start in range(0, len(parents), 500):
        batch = parents[start : start + 500]
        marks = ",".join("?" * len(batch))
        for parent, tid, created, num in conn.execute(
            f"SELECT parent_id, id, created_at, num FROM turns WHERE session_id = ? AND parent_id IN ({marks})",
            (session_id, *batch),
        ):
            by_parent.setdefault(parent, []).append((created, num, tid))
    if any(parent is None for _, parent in path):
        for tid, created, num in conn.execute(
            "SELECT id, created_at, num FROM turns WHERE session_id = ? AND parent_id IS NULL", (session_id,)
        ):
            by_parent.setdefault(None, []).append((created, num, tid))
    # A fork's shared turns belong to its source but are siblings here too.
    top = conn.execute("SELECT depth FROM turns WHERE id = ?", (path[0][0],)).fetchone() if path else None
    shared_next = _shared_next(conn, session_id, top[0] - 1) if top else {}
    wanted = list({shared_next[parent] for _, parent in path if parent in shared_next})
    for start in range(0, len(wanted), 500):
        batch = wanted[start : start + 500]
        marks = ",".join("?" * len(batch))
        for parent, tid, created, num in conn.execute(
            f"SELECT parent_id, id, created_at, num FROM turns WHERE id IN ({marks})", batch
        ):
            if all(tid != known for _, _, known in by_parent.get(parent, [])):
                by_parent.setdefault(parent, []).append((created, num, tid))
    out: dict[str, Branch] = {}
    for turn_id, parent in path:
        siblings = by_parent.get(parent, [])
        ids = [tid for _, _, tid in sorted(siblings)]
        if turn_id not in ids:  # a shared turn of a fork: it belongs to the source session
            ids = [turn_id, *ids]
        if len(ids) > 1:
            out[turn_id] = Branch(ids.index(turn_id) + 1, len(ids))
    return out


def siblings(conn: sqlite3.Connection, session_id: str, turn_id: str) -> list[str]:
    """The turns following the same turn as `turn_id` in this session (itself included), oldest first."""
    row = conn.execute("SELECT parent_id, depth FROM turns WHERE id = ?", (turn_id,)).fetchone()
    if row is None:
        raise TurnNotFound(f"Turn {turn_id} is not in the database.")
    parent = row[0]
    shared = _shared_next(conn, session_id, row[1] - 1).get(parent)
    clause = "parent_id IS NULL" if parent is None else "parent_id = ?"
    args: tuple[Any, ...] = (session_id,) if parent is None else (session_id, parent)
    found = [r[0] for r in conn.execute(
        f"SELECT id FROM turns WHERE (session_id = ? AND {clause}) OR id = ? ORDER BY created_at, num", (*args, shared)
    )]
    return found if turn_id in found else [turn_id, *found]


def newest_leaf(conn: sqlite3.Connection, session_id: str, turn_id: str) -> str:
    """The last turn of the most recent path through `turn_id` (what a switch to that branch shows)."""
    row = conn.execute("SELECT depth FROM turns WHERE id = ?", (turn_id,)).fetchone()
    shared_next = _shared_next(conn, session_id, row[0]) if row else {}
    current = turn_id
    while True:
        row = conn.execute(
            "SELECT id FROM turns WHERE parent_id = ? AND (session_id = ? OR id = ?) "
            "ORDER BY created_at DESC, num DESC LIMIT 1",
            (current, session_id, shared_next.get(current)),
        ).fetchone()
        if row is None:
            return current
        current = row[0]


def load(conn: sqlite3.Connection, session_id: str, last: int | None) -> Session:
    """A session with (the last `last` turns of) its current path, and their branches."""
    session, head = _session_row(conn, session_id)
    ids = path_ids(conn, head, last)
    turns = rows.read_turns(conn, ids)
    session.turns = [turns[tid] for tid in ids if tid in turns]
    session.branches = branches(conn, session_id, session.turns)
    return session


def load_before(conn: sqlite3.Connection, session_id: str, turn_id: str, limit: int | None) -> tuple[list[Turn], dict[str, Branch]]:
    """The `limit` turns of the path before `turn_id` (all with None), oldest first, and their branches."""
    row = conn.execute("SELECT parent_id FROM turns WHERE id = ?", (turn_id,)).fetchone()
    if row is None:
        raise TurnNotFound(f"Turn {turn_id} is not in the database.")
    ids = path_ids(conn, row[0], limit)
    found = rows.read_turns(conn, ids)
    turns = [found[tid] for tid in ids if tid in found]
    return turns, branches(conn, session_id, turns)


def tree(conn: sqlite3.Connection, session_id: str) -> SessionTree:
    """The session with every turn of its tree, parents first (shared turns of a fork included)."""
    session, head = _session_row(conn, session_id)
    base = conn.execute("SELECT base FROM sessions WHERE id = ?", (session_id,)).fetchone()[0]
    own = [r[0] for r in conn.execute("SELECT id FROM turns WHERE session_id = ?", (session_id,))]
    owned = set(own)
    # Turns of another session this one builds on (a fork's shared path).
    starts = {r[0] for r in conn.execute(
        "SELECT parent_id FROM turns WHERE session_id = ? AND parent_id IS NOT NULL", (session_id,)
    )} - owned
    starts |= {tid for tid in (head, base) if tid is not None and tid not in owned}
    shared: list[str] = []
    for start in starts:
        shared.extend(tid for tid in path_ids(conn, start) if tid not in owned and tid not in shared)
    turns = rows.read_turns(conn, shared + own)
    ordered = sorted(turns.values(), key=lambda t: (_depth(conn, t.id), t.created_at))
    session.turns = [turns[tid] for tid in path_ids(conn, head) if tid in turns]
    session.branches = branches(conn, session_id, session.turns)
    return SessionTree(session=session, turns=ordered, head=head)


def _parents_first(turns: list[Turn]) -> list[Turn]:
    """The turns ordered so that each comes after the turn it follows (when that one is among them)."""
    by_id = {t.id: t for t in turns}
    done: set[str] = set()
    out: list[Turn] = []
    for turn in turns:
        chain = []
        current: Turn | None = turn
        while current is not None and current.id not in done:
            chain.append(current)
            done.add(current.id)
            current = by_id.get(current.parent_id) if current.parent_id else None
        out.extend(reversed(chain))
    return out


def _depth(conn: sqlite3.Connection, turn_id: str) -> int:
    return conn.execute("SELECT depth FROM turns WHERE id = ?", (turn_id,)).fetchone()[0]


# -- changes -----------------------------------------------------------------------------------------


def save(conn: sqlite3.Connection, session: Session, *, writer_owns: Any) -> list[Turn]:
    """Write the session's settings and every turn of its path (chained as one path); return the turns written.

    A turn streaming in another process is not touched, nor is a stale streaming copy.
    """
    rows.put_session(conn, session, full=True)
    written: list[Turn] = []
    streaming_elsewhere = {
        r[0] for r in conn.execute(
            "SELECT id FROM turns WHERE session_id = ? AND status = ?", (session.id, str(TurnStatus.STREAMING))
        )
    }
    previous: Turn | None = None
    for turn in session.turns:
        if turn.parent_id is None and previous is not None:
            turn.parent_id = previous.id
        previous = turn
        ours = writer_owns(turn.id)
        if not ours and (turn.id in streaming_elsewhere or turn.status == TurnStatus.STREAMING):
            continue
        rows.put_turn(conn, session.id, turn, owner=None)
        written.append(turn)
    if session.turns:
        # A stale copy must not take the session back: a stored head that follows the
        # written path (another process went on) stays.
        last = session.turns[-1].id
        head = conn.execute("SELECT head FROM sessions WHERE id = ?", (session.id,)).fetchone()[0]
        if head is None or last not in path_ids(conn, head):
            rows.set_head(conn, session.id, last)
    return written


def rename(conn: sqlite3.Connection, session_id: str, title: str) -> None:
    if conn.execute("UPDATE sessions SET title = ?, revision = revision + 1 WHERE id = ?", (enc(title), session_id)).rowcount == 0:
        raise SessionNotFound(f"No session '{session_id}'.")


def fork(conn: sqlite3.Connection, session_id: str, at: int, title: str | None) -> str:
    """A new session whose path is the first `at` turns of the source's current path; returns its id.

    One row: the new session points at the source's turn (its head and its base); nothing is copied.
    """
    source, head = _session_row(conn, session_id)
    ids = path_ids(conn, head)
    if not 0 <= at <= len(ids):
        raise TurnNotFound(f"The session has {len(ids)} turns; cannot fork at turn {at}.")
    fork_head = ids[at - 1] if at else None
    now = time.time()
    forked = Session.from_dict(source.to_dict(with_turns=False))
    forked.id = new_id()
    forked.title = title or f"{source.title or 'Chat'} (fork)"
    forked.created_at = forked.updated_at = now
    conn.execute(
        "INSERT INTO sessions (id, title, host, model, created_at, updated_at, settings, head, base, turn_count) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (forked.id, enc(forked.title), enc(forked.host), enc(forked.model), now, now, session_settings(forked),
         fork_head, fork_head, at),
    )
    return forked.id


def delete(conn: sqlite3.Connection, session_id: str) -> None:
    """Delete a session and its turns, except the turns another session builds on (a fork's shared path).

    Each is handed to the first session that builds on it, so every fork keeps its history and
    none is given turns it never had (which would show there as branches).
    """
    if conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone() is None:
        raise SessionNotFound(f"No session '{session_id}'.")
    needed = conn.execute(
        """SELECT s.head, s.id, s.number FROM sessions s JOIN turns t ON t.id = s.head
               WHERE s.id != ?1 AND t.session_id = ?1
           UNION ALL
           SELECT c.parent_id, c.session_id, s.number FROM turns c JOIN turns p ON p.id = c.parent_id
               JOIN sessions s ON s.id = c.session_id
               WHERE c.session_id != ?1 AND p.session_id = ?1
           UNION ALL
           SELECT s.base, s.id, s.number FROM sessions s JOIN turns t ON t.id = s.base
               WHERE s.id != ?1 AND t.session_id = ?1
           ORDER BY 3""",
        (session_id,),
    ).fetchall()
    heirs: dict[str, str] = {}
    for turn_id, heir, _ in needed:
        for tid in path_ids(conn, turn_id):
            heirs.setdefault(tid, heir)
    seqs: dict[str, int] = {}
    for tid, heir in heirs.items():
        if heir not in seqs:
            seqs[heir] = conn.execute("SELECT coalesce(max(seq), 0) FROM turns WHERE session_id = ?", (heir,)).fetchone()[0]
        seqs[heir] += conn.execute(
            "UPDATE turns SET session_id = ?, seq = ? WHERE id = ? AND session_id = ?", (heir, seqs[heir] + 1, tid, session_id)
        ).rowcount
    conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))


def import_tree(conn: sqlite3.Connection, tree: SessionTree) -> SessionTree:
    """Store a session from elsewhere (a JSON import) without overwriting anything; return it as stored.

    A session id that is not one of ours (32 hex digits) or is taken gets a new
    one, so an imported id can never be read as a session number; turn ids that
    are taken get new ones too. A turn that was streaming when exported is
    stored as interrupted.
    """
    copy = SessionTree(
        session=Session.from_dict(tree.session.to_dict(with_turns=False)),
        turns=[Turn.from_dict(t.to_dict()) for t in tree.turns],
        head=tree.head,
    )
    session = copy.session
    if not _HEX_ID.fullmatch(session.id) or conn.execute("SELECT 1 FROM sessions WHERE id = ?", (session.id,)).fetchone():
        session.id = new_id()
    renamed: dict[str, str] = {}
    for turn in copy.turns:
        taken = conn.execute("SELECT 1 FROM turns WHERE id = ?", (turn.id,)).fetchone()
        if taken or not _HEX_ID.fullmatch(turn.id) or turn.id in renamed.values():
            renamed[turn.id] = new_id()
    for turn in copy.turns:
        turn.id = renamed.get(turn.id, turn.id)
        if turn.parent_id is not None:
            turn.parent_id = renamed.get(turn.parent_id, turn.parent_id)
        if turn.status == TurnStatus.STREAMING:
            turn.status = TurnStatus.INTERRUPTED
    copy.head = renamed.get(copy.head, copy.head) if copy.head else None
    rows.put_session(conn, session, full=True)
    for turn in _parents_first(copy.turns):
        rows.put_turn(conn, session.id, turn, owner=None)
    rows.set_head(conn, session.id, copy.head)
    session.turns = copy.path_to(copy.head)
    return copy
