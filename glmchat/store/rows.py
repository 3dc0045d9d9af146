"""Reading and writing the rows of sessions, turns and steps (inside a caller's transaction).

A turn is one `turns` row (its user text, status, meta and place in the tree)
plus one `steps` row per step. While a turn streams, what arrived since its
last full write sits in `chunks` rows (see `streaming.py`); `apply_chunks`
folds them back in.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from glmchat.errors import StorageError, TurnNotFound
from glmchat.session import Session, Step, ToolCall, Turn, TurnStatus
from glmchat.store.codec import (
    dec,
    enc,
    json_load,
    searchable,
    session_settings,
    step_row,
    turn_from_row,
    turn_meta,
)
from glmchat.sanity import clean
from glmchat.usage import Usage

if TYPE_CHECKING:
    from glmchat.store.database import Owner

TURN_SELECT = "SELECT id, parent_id, status, created_at, user_text, meta FROM turns"
"""The columns `codec.turn_from_row` reads, in its order."""

# Kinds of chunk rows (see streaming.py).
CHUNK_REASONING = "r"
CHUNK_CONTENT = "c"
CHUNK_TOOL_CALL = "t"
CHUNK_DETAILS = "d"
CHUNK_META = "m"


def put_session(conn: sqlite3.Connection, session: Session, *, full: bool) -> None:
    """Insert the session row, or update it: everything (`full`) or just its freshness and host."""
    values = (
        session.id,
        enc(session.title),
        enc(session.host),
        enc(session.model),
        session.created_at,
        session.updated_at,
        session_settings(session),
    )
    if full:
        update = """title = ?2, host = ?3, model = ?4, created_at = ?5,
            updated_at = max(updated_at, ?6), settings = ?7, revision = revision + 1"""
    else:
        # Another process may have renamed the session: only fill a missing title.
        update = """title = CASE WHEN length(title) = 0 THEN ?2 ELSE title END,
            host = ?3, model = ?4, updated_at = max(updated_at, ?6)"""
    # UPDATE first, INSERT only when there is no row: an upsert would burn an
    # AUTOINCREMENT number on every update, leaving gaps in the numbers people see.
    bound = values if full else values[:6]  # sqlite3 wants exactly as many values as the highest ?N
    if conn.execute(f"UPDATE sessions SET {update} WHERE id = ?1", bound).rowcount == 0:
        conn.execute(
            "INSERT INTO sessions (id, title, host, model, created_at, updated_at, settings) VALUES (?, ?, ?, ?, ?, ?, ?)",
            values,
        )


def set_head(conn: sqlite3.Connection, session_id: str, turn_id: str | None) -> None:
    """Make `turn_id` the last turn of the session's current path."""
    depth = 0
    if turn_id is not None:
        row = conn.execute("SELECT depth FROM turns WHERE id = ?", (turn_id,)).fetchone()
        if row is None:
            raise TurnNotFound(f"Turn {turn_id} is not in the database.")
        depth = row[0]
    conn.execute(
        "UPDATE sessions SET head = ?, turn_count = ?, revision = revision + 1 WHERE id = ?",
        (turn_id, depth, session_id),
    )


def put_turn(conn: sqlite3.Connection, session_id: str, turn: Turn, *, owner: Owner | None) -> int:
    """Write the whole turn and its steps (insert, or update in place); return its row number."""
    turn.sync()
    values = (
        str(turn.status),
        turn.created_at,
        enc(turn.user_text),
        turn_meta(turn),
        owner.pid if owner else None,
        owner.host if owner else None,
        owner.start if owner else None,
    )
    row = conn.execute("SELECT num, session_id FROM turns WHERE id = ?", (turn.id,)).fetchone()
    if row is None:
        depth = 1
        if turn.parent_id is not None:
            parent = conn.execute("SELECT depth FROM turns WHERE id = ?", (turn.parent_id,)).fetchone()
            if parent is None:
                raise TurnNotFound(f"The turn {turn.id} follows a turn that is not in the database.")
            depth = parent[0] + 1
        seq = conn.execute("SELECT coalesce(max(seq), 0) + 1 FROM turns WHERE session_id = ?", (session_id,)).fetchone()[0]
        cursor = conn.execute(
            "INSERT INTO turns (status, created_at, user_text, meta, owner_pid, owner_host, owner_start, "
            "id, session_id, seq, parent_id, depth) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, turn.id, session_id, seq, turn.parent_id, depth),
        )
        num = cursor.lastrowid
        assert num is not None
    else:
        num, owner_session = row
        if owner_session != session_id:
            raise StorageError(f"Turn {turn.id} belongs to another session ({owner_session}).")
        conn.execute(
            "UPDATE turns SET status = ?, created_at = ?, user_text = ?, meta = ?, owner_pid = ?, owner_host = ?, "
            "owner_start = ? WHERE num = ?",
            (*values, num),
        )
        conn.execute("DELETE FROM chunks WHERE turn_id = ?", (turn.id,))
    put_steps(conn, turn.id, turn.steps, 0)
    index_turn(conn, num, turn)
    return num


def put_steps(conn: sqlite3.Connection, turn_id: str, steps: list[Step], first: int) -> None:
    """Write steps `first`… of a turn whole, and drop what a streaming save kept of them."""
    conn.execute("DELETE FROM steps WHERE turn_id = ? AND n >= ?", (turn_id, first))
    conn.executemany(
        "INSERT INTO steps (turn_id, n, reasoning, content, meta) VALUES (?, ?, ?, ?, ?)",
        [(turn_id, n, *step_row(step)) for n, step in enumerate(steps[first:], first)],
    )


def index_turn(conn: sqlite3.Connection, num: int, turn: Turn) -> None:
    """(Re)write the turn's full-text entry: its user text, and every step's answer and reasoning."""
    conn.execute("DELETE FROM turns_fts WHERE rowid = ?", (num,))
    conn.execute(
        "INSERT INTO turns_fts (rowid, user_text, content, reasoning) VALUES (?, ?, ?, ?)",
        (num, searchable(turn.user_text), searchable(turn.content), searchable(turn.reasoning)),
    )


def read_turns(conn: sqlite3.Connection, ids: Iterable[str]) -> dict[str, Turn]:
    """The turns with these ids, steps included (a streaming turn with what it saved so far)."""
    wanted = list(dict.fromkeys(ids))
    rows: dict[str, tuple[Any, ...]] = {}
    steps: dict[str, list[tuple[Any, ...]]] = {tid: [] for tid in wanted}
    for start in range(0, len(wanted), 500):
        batch = wanted[start : start + 500]
        marks = ",".join("?" * len(batch))
        for row in conn.execute(f"{TURN_SELECT} WHERE id IN ({marks})", batch):
            rows[row[0]] = row
        for tid, *step in conn.execute(
            f"SELECT turn_id, reasoning, content, meta FROM steps WHERE turn_id IN ({marks}) ORDER BY turn_id, n", batch
        ):
            steps[tid].append(tuple(step))
    turns = {tid: turn_from_row(rows[tid], steps[tid]) for tid in wanted if tid in rows}
    streaming = [t for t in turns.values() if t.status == TurnStatus.STREAMING]
    if streaming:
        chunks = chunks_of(conn, [t.id for t in streaming])
        for turn in streaming:
            apply_chunks(turn, chunks.get(turn.id, []))
    return turns


def chunks_of(conn: sqlite3.Connection, turn_ids: list[str]) -> dict[str, list[tuple[str, int, bytes, float]]]:
    out: dict[str, list[tuple[str, int, bytes, float]]] = {}
    for start in range(0, len(turn_ids), 500):
        batch = turn_ids[start : start + 500]
        marks = ",".join("?" * len(batch))
        for tid, kind, step, data, at in conn.execute(
            f"SELECT turn_id, kind, step, data, at FROM chunks WHERE turn_id IN ({marks}) ORDER BY turn_id, n", batch
        ):
            out.setdefault(tid, []).append((kind, step, data, at))
    return out


def apply_chunks(turn: Turn, chunks: list[tuple[str, int, bytes, float]]) -> float | None:
    """Rebuild a streaming turn from its saved chunks; return the time of the last one."""
    last = None
    for kind, index, data, at in chunks:
        last = at
        while len(turn.steps) <= index:
            turn.steps.append(Step())
        step = turn.steps[index]
        if kind == CHUNK_REASONING:
            step.pending_reasoning.append(dec(data))
        elif kind == CHUNK_CONTENT:
            step.pending_content.append(dec(data))
        elif kind == CHUNK_TOOL_CALL:
            item = json_load(data)
            for call in step.tool_calls:
                if call.index == item["index"]:
                    break
            else:
                call = ToolCall(index=item["index"])
                step.tool_calls.append(call)
            call.id = item.get("id", call.id)
            call.name = item.get("name", call.name)
            call.type = item.get("type", call.type)
            call.arguments += item.get("arguments", "")
        elif kind == CHUNK_DETAILS:
            step.reasoning_details = (step.reasoning_details or []) + list(json_load(data))
        elif kind == CHUNK_META:
            _apply_meta(turn, step, json_load(data))
    turn.sync()
    return last


_SETTABLE_TURN = frozenset({"finish_reason", "error", "error_kind", "first_reasoning_at", "first_content_at",
                            "finished_at", "include_in_context", "thinking_level"})


def _apply_meta(turn: Turn, step: Step, data: Any) -> None:
    if not isinstance(data, dict):
        return
    # glmchat 0.1 saved the turn's usage in its meta chunks; it is the first step's now.
    step_data = data.get("step", {"usage": data.get("usage"), "finish_reason": data.get("finish_reason")})
    turn_data = data.get("turn", data)
    if isinstance(turn_data, dict):
        for name, value in clean(turn_data, Turn).items():
            if name in _SETTABLE_TURN and name in turn_data:
                setattr(turn, name, value)
    if isinstance(step_data, dict):
        cleaned = clean(step_data, Step)
        if step_data.get("usage") is not None and "usage" in cleaned:
            step.usage = Usage.from_dict(cleaned["usage"])
        if step_data.get("finish_reason") is not None and "finish_reason" in cleaned:
            step.finish_reason = cleaned["finish_reason"]
