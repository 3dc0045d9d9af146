"""Full-text search over every turn's user text, answer and reasoning (SQLite FTS5).

Any input is safe: words are quoted, so FTS syntax is searched for as text;
each word also matches as a prefix; words in scripts written without spaces
(CJK) are also looked up as substrings. A hit says where its turn is: on its
session's current path, or on another branch (and where that branch leaves it).
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from typing import Any

from glmchat.store import sessions
from glmchat.store.codec import MARK_END, MARK_START, dec


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
    branch: str = ""
    """"" on the session's current path; else where its branch leaves the path ("branch 2/3 at turn 4")."""

    @property
    def number(self) -> int:
        """The session's short number (same as `session_number`)."""
        return self.session_number


FIELDS = ("user_text", "content", "reasoning")
# A searchable word has a letter or digit (the tokenizer drops everything else).
_WORD = re.compile(r"[^\W_]")
# Scripts written without spaces: the tokenizer sees a whole run as one word.
_UNSPACED = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]")


def search(conn: sqlite3.Connection, query: str, limit: int) -> list[SearchHit]:
    """Turns whose user text, answer or reasoning match every word of `query`, newest first."""
    terms = [t for t in query.split() if _WORD.search(t)]
    if not terms or limit <= 0:
        return []
    fts = " ".join('"' + t.replace('"', '""').replace("\x00", "") + '"*' for t in terms[:64])
    snippets = ", ".join(f"snippet(turns_fts, {i}, '{MARK_START}', '{MARK_END}', '…', 24)" for i in range(3))
    # Pick the newest matches first, then make snippets for those only
    # (a snippet costs a scan of the text; a common word matches everything).
    found = conn.execute(
        f"SELECT t.id, t.session_id, s.title, s.number, t.created_at, {snippets} "
        "FROM turns_fts JOIN turns t ON t.num = turns_fts.rowid JOIN sessions s ON s.id = t.session_id "
        "WHERE turns_fts MATCH ? AND turns_fts.rowid IN ("
        "  SELECT t2.num FROM turns_fts f2 JOIN turns t2 ON t2.num = f2.rowid"
        "  WHERE f2.turns_fts MATCH ? ORDER BY t2.created_at DESC LIMIT ?"
        ") ORDER BY t.created_at DESC",
        (fts, fts, limit),
    ).fetchall()
    hits = [_hit(row) for row in found]
    if any(_UNSPACED.search(t) for t in terms):
        seen = {h.turn_id for h in hits}
        hits.extend(h for h in _substring_hits(conn, terms, limit) if h.turn_id not in seen)
        hits.sort(key=lambda h: h.created_at, reverse=True)
    return _with_branches(conn, hits[:limit])


def _hit(row: tuple[Any, ...]) -> SearchHit:
    tid, sid, title, number, created_at, *snippets = row
    chosen, name = snippets[1], "content"
    for text, candidate in zip(snippets, FIELDS):
        if MARK_START in text:
            chosen, name = text, candidate
            break
    plain, spans = _strip_marks(chosen)
    return SearchHit(sid, tid, dec(title), plain, name, number, created_at, spans)


def _substring_hits(conn: sqlite3.Connection, terms: list[str], limit: int) -> list[SearchHit]:
    """Substring matches for words the tokenizer cannot split (a full scan of the index)."""
    where = " AND ".join("(instr(f.user_text, ?) OR instr(f.content, ?) OR instr(f.reasoning, ?))" for _ in terms)
    args = [t for t in terms for _ in range(3)]
    found = conn.execute(
        "SELECT t.id, t.session_id, s.title, s.number, t.created_at, f.user_text, f.content, f.reasoning "
        "FROM turns_fts f JOIN turns t ON t.num = f.rowid JOIN sessions s ON s.id = t.session_id "
        f"WHERE {where} ORDER BY t.created_at DESC LIMIT ?",
        (*args, limit),
    ).fetchall()
    hits = []
    for tid, sid, title, number, created_at, *texts in found:
        for text, name in zip(texts, FIELDS):
            at = text.find(terms[0])
            if at >= 0:
                start = max(0, at - 40)
                end = min(len(text), at + len(terms[0]) + 40)
                snippet = ("…" if start else "") + text[start:end] + ("…" if end < len(text) else "")
                offset = at - start + (1 if start else 0)
                hits.append(SearchHit(sid, tid, dec(title), snippet, name, number, created_at,
                                      ((offset, offset + len(terms[0])),)))
                break
    return hits


def _with_branches(conn: sqlite3.Connection, hits: list[SearchHit]) -> list[SearchHit]:
    """Each hit with the branch its turn is on, when that is not its session's current path."""
    paths: dict[str, set[str]] = {}
    out = []
    for hit in hits:
        if hit.session_id not in paths:
            head = conn.execute("SELECT head FROM sessions WHERE id = ?", (hit.session_id,)).fetchone()[0]
            paths[hit.session_id] = set(sessions.path_ids(conn, head))
        path = paths[hit.session_id]
        if hit.turn_id in path:
            out.append(hit)
            continue
        # The first turn from the root that is not on the current path: where the branch leaves it.
        leaving = next(tid for tid in sessions.path_ids(conn, hit.turn_id) if tid not in path)
        siblings = sessions.siblings(conn, hit.session_id, leaving)
        depth = conn.execute("SELECT depth FROM turns WHERE id = ?", (leaving,)).fetchone()[0]
        label = f"branch {siblings.index(leaving) + 1}/{len(siblings)} at turn {depth}"
        out.append(SearchHit(**{**hit.__dict__, "branch": label}))
    return out


def _strip_marks(text: str) -> tuple[str, tuple[tuple[int, int], ...]]:
    """Remove snippet markers; return the plain text and the marked spans."""
    out: list[str] = []
    spans: list[tuple[int, int]] = []
    length = 0
    start = None
    for piece in re.split(f"([{MARK_START}{MARK_END}])", text):
        if piece == MARK_START:
            start = length
        elif piece == MARK_END:
            if start is not None:
                spans.append((start, length))
            start = None
        elif piece:
            out.append(piece)
            length += len(piece)
    return "".join(out), tuple(spans)
