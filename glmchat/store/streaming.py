"""Saving a turn while it streams, in O(new text) per save, and getting it back after a crash.

`begin` writes the turn once (and makes it the head of its session's path).
`progress` appends only what arrived since the previous save, as `chunks` rows
tagged with the step they belong to; a step that is over (its tool results in,
the next step begun) is written whole into `steps` and its chunks dropped.
`finish` writes the settled turn and drops every chunk, in one transaction.
Neither the session row nor a finished step is rewritten while a turn streams.

A turn still marked streaming whose owner process is gone (same machine, pid
dead) is rebuilt from its rows and chunks and marked interrupted when a store
opens: SIGKILL in the middle of step 3 keeps steps 1 and 2 whole and the part
of step 3 that was saved.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass, field
from typing import Any

from glmchat.errors import StorageError, TurnNotFound
from glmchat.session import Session, Turn, TurnStatus
from glmchat.store import rows
from glmchat.store.codec import json_blob
from glmchat.store.database import Database, Owner


@dataclass
class _Mark:
    """How much of one growing text is in the database.

    `saved` counts characters stored. `joined` and `parts` record the shape of the
    step at that save (length of the joined string, number of pending parts), so
    the next save finds the new text without joining or scanning what came before.
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


_PROGRESS_TURN_FIELDS = ("finish_reason", "error", "error_kind", "first_reasoning_at", "first_content_at",
                         "finished_at", "include_in_context")


def _progress_meta(turn: Turn) -> bytes:
    step = turn.steps[-1]
    return json_blob({
        "turn": {name: getattr(turn, name) for name in _PROGRESS_TURN_FIELDS},
        "step": {"usage": step.usage.to_dict(), "finish_reason": step.finish_reason},
    })


@dataclass
class _Progress:
    session_id: str
    step: int
    """Index of the step streaming; the ones before it are in `steps` whole."""
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
        """The state right after the whole turn (synced) was written."""
        step = turn.steps[-1]
        return cls(
            session_id=session_id,
            step=len(turn.steps) - 1,
            reasoning=_Mark(len(step.reasoning), len(step.reasoning), 0),
            content=_Mark(len(step.content), len(step.content), 0),
            tools={c.index: (len(c.arguments), c.id, c.name) for c in step.tool_calls},
            details=len(step.reasoning_details or ()),
            meta=_progress_meta(turn),
        )


class StreamingWriter:
    """The writes of turns streaming in this process."""

    def __init__(self, db: Database, owner: Owner) -> None:
        self.db = db
        self.owner = owner
        self._progress: dict[str, _Progress] = {}

    def owns(self, turn_id: str) -> bool:
        return turn_id in self._progress

    def forget_session(self, session_id: str) -> None:
        for tid in [tid for tid, p in self._progress.items() if p.session_id == session_id]:
            del self._progress[tid]

    def begin(self, session: Session, turn: Turn) -> None:
        """Record a turn that starts streaming, as the head of its session's path (and the session, if new)."""
        turn.sync()

        def work(conn: sqlite3.Connection) -> None:
            rows.put_session(conn, session, full=False)
            rows.put_turn(conn, session.id, turn, owner=self.owner)
            rows.set_head(conn, session.id, turn.id)

        with self.db.lock:
            self.db.write("save the new turn", work)
            self._progress[turn.id] = _Progress.of(session.id, turn)

    def progress(self, turn: Turn) -> int:
        """Append what a streaming turn received since the last save; return the rows written."""
        with self.db.lock:
            return self._save_progress(turn)

    def _save_progress(self, turn: Turn) -> int:
        progress = self._progress.get(turn.id)
        if progress is None:
            raise TurnNotFound(f"Turn {turn.id} was not begun in this store (call begin_turn first).")
        now = time.time()
        current = len(turn.steps) - 1
        finished_steps = current > progress.step
        if finished_steps:
            # The steps before the current one are over: written whole, their chunks dropped.
            progress = _Progress(session_id=progress.session_id, step=current, next_n=progress.next_n)
        step = turn.steps[current]
        chunks: list[tuple[str, bytes]] = []

        taken_r = _take_new(progress.reasoning, step.reasoning, step.pending_reasoning)
        taken_c = _take_new(progress.content, step.content, step.pending_content)
        if taken_r is None or taken_c is None:
            return self._rewrite(turn, progress)  # the text was replaced, not appended to
        if taken_r[0]:
            chunks.append((rows.CHUNK_REASONING, taken_r[0].encode("utf-8", "surrogatepass")))
        if taken_c[0]:
            chunks.append((rows.CHUNK_CONTENT, taken_c[0].encode("utf-8", "surrogatepass")))

        tools = dict(progress.tools)
        for call in step.tool_calls:
            saved_len, saved_id, saved_name = tools.get(call.index, (0, None, ""))
            if len(call.arguments) < saved_len:
                return self._rewrite(turn, progress)
            if call.index in tools and (saved_len, saved_id, saved_name) == (len(call.arguments), call.id, call.name):
                continue
            item = {"index": call.index, "id": call.id, "name": call.name, "type": call.type,
                    "arguments": call.arguments[saved_len:]}
            chunks.append((rows.CHUNK_TOOL_CALL, json_blob(item)))
            tools[call.index] = (len(call.arguments), call.id, call.name)

        details = step.reasoning_details or []
        if len(details) < progress.details:
            return self._rewrite(turn, progress)
        if len(details) > progress.details:
            chunks.append((rows.CHUNK_DETAILS, json_blob(details[progress.details :])))

        meta = _progress_meta(turn)
        if meta != progress.meta:
            chunks.append((rows.CHUNK_META, meta))
        if not chunks and not finished_steps:
            return 0

        first = progress.next_n
        previous = self._progress[turn.id].step

        def work(conn: sqlite3.Connection) -> None:
            if finished_steps:
                rows.put_steps(conn, turn.id, turn.steps[:current], previous)
                conn.execute("DELETE FROM chunks WHERE turn_id = ? AND step < ?", (turn.id, current))
            conn.executemany(
                "INSERT INTO chunks (turn_id, n, kind, step, data, at) VALUES (?, ?, ?, ?, ?, ?)",
                [(turn.id, first + i, kind, current, data, now) for i, (kind, data) in enumerate(chunks)],
            )

        self.db.write("save the reply so far", work)
        # Only after the commit: a failed save leaves the marks where they were, so
        # the next save writes the same text again.
        progress.next_n = first + len(chunks)
        progress.reasoning = taken_r[1]
        progress.content = taken_c[1]
        progress.tools = tools
        progress.details = len(details)
        progress.meta = meta
        self._progress[turn.id] = progress
        return len(chunks) + (current - previous if finished_steps else 0)

    def _rewrite(self, turn: Turn, progress: _Progress) -> int:
        """Fallback when a streaming turn's text was replaced: write it whole."""

        def work(conn: sqlite3.Connection) -> None:
            rows.put_turn(conn, progress.session_id, turn, owner=self.owner)

        self.db.write("save the reply so far", work)
        self._progress[turn.id] = _Progress.of(progress.session_id, turn)
        return 1

    def finish(self, turn: Turn) -> None:
        """Write the settled turn and drop its chunks, in one transaction."""
        with self.db.lock:
            self.update(turn, "save the reply")
            self._progress.pop(turn.id, None)

    def update(self, turn: Turn, action: str = "save the turn") -> None:
        """Rewrite a stored turn whole (e.g. after the user changed `include_in_context`)."""
        with self.db.lock:
            ours = turn.id in self._progress

            def work(conn: sqlite3.Connection) -> None:
                row = conn.execute("SELECT session_id, status FROM turns WHERE id = ?", (turn.id,)).fetchone()
                if row is None:
                    raise TurnNotFound(f"Could not {action}: the turn is not in {self.db.path} (was its session deleted?).")
                session_id, status = row
                if status == TurnStatus.STREAMING and not ours:
                    raise StorageError(f"Could not {action}: the turn is still streaming in another glmchat process.")
                keep_owner = ours and turn.status == TurnStatus.STREAMING
                rows.put_turn(conn, session_id, turn, owner=self.owner if keep_owner else None)

            self.db.write(action, work)
            progress = self._progress.get(turn.id)
            if progress is not None:
                self._progress[turn.id] = _Progress.of(progress.session_id, turn)

    def recover(self) -> list[str]:
        """Rebuild turns whose streaming process died, mark them interrupted; return their ids.

        A turn is taken over only when its owner ran on this machine and is gone
        (or it has no owner). Runs when a store opens; safe to call again.
        """
        me = self.owner

        def orphans(conn: sqlite3.Connection) -> list[tuple[Any, ...]]:
            return conn.execute(
                "SELECT id, owner_pid, owner_host, owner_start FROM turns WHERE status = ?", (str(TurnStatus.STREAMING),)
            ).fetchall()

        dead = []
        for tid, pid, host, start in self.db.read("look for interrupted turns", orphans):
            if tid in self._progress:
                continue
            if pid is None or (host == me.host and not Owner(pid, host, start).alive()):
                dead.append((tid, pid))
        done = []
        for tid, pid in dead:

            def work(conn: sqlite3.Connection, tid: str = tid, pid: int | None = pid) -> bool:
                row = conn.execute("SELECT status, session_id, owner_pid FROM turns WHERE id = ?", (tid,)).fetchone()
                # Another process may have recovered it (or the owner finished it) meanwhile.
                if row is None or row[0] != TurnStatus.STREAMING or row[2] != pid:
                    return False
                turn = rows.read_turns(conn, [tid])[tid]
                last = rows.chunks_of(conn, [tid]).get(tid, [])
                turn.status = TurnStatus.INTERRUPTED
                if turn.finished_at is None:
                    turn.finished_at = last[-1][3] if last else turn.created_at
                rows.put_turn(conn, row[1], turn, owner=None)
                return True

            if self.db.write("recover an interrupted turn", work):
                done.append(tid)
        return done

