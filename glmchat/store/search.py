"""Full-text search over every turn's user text, answer and reasoning (SQLite FTS5).

Any input is safe: words are quoted, so FTS syntax is searched for as text;
each word also matches as a prefix; words in scripts written without spaces
(CJK) are also looked up as substrings. A hit says where its turn is: on its
session's current path, or on another branch (and where that branch leaves it).
"""

from __future__ import annotations

import re
import sqlite3
import threading
from dataclasses import dataclass
from typing import Any

from glmchat.errors import GlmChatError
from glmchat.sanity import UNKNOWN_TIME, sane_time
from glmchat.store import sessions
from glmchat.store.codec import dec


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
_COLUMNS = {"user_text": "c0", "content": "c1", "reasoning": "c2"}
"""Each field's column in the index's own copy of the text (FTS5 keeps it in `turns_fts_content`)."""

_WINDOW = 1 << 20
"""Bytes of a text read at a time when looking for a snippet."""
_CONTEXT = 48
"""Characters of context on each side of the match in a snippet."""
# A searchable word has a letter or digit (the tokenizer drops everything else).
_WORD = re.compile(r"[^\W_]")
# Scripts written without spaces: the tokenizer sees a whole run as one word.
_UNSPACED = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]")


def search(conn: sqlite3.Connection, query: str, limit: int, cancel: SearchCancel) -> list[SearchHit]:
    """Turns whose user text, answer or reasoning match every word of `query`, newest first.

    Costs O(text): the index finds the turns, and each hit's snippet comes from the
    first match found by reading its indexed text once, a window at a time (never
    FTS5's snippet(), which re-reads a text for every occurrence of a word).
    `conn` is the search's own read-only connection, which `cancel` may interrupt.

    Raises:
        SearchCancelledError: `cancel` was called.
    """
    terms = [t for t in query.split() if _WORD.search(t)]
    if not terms or limit <= 0:
        return []
    terms = terms[:64]
    fts = " ".join('"' + t.replace('"', '""').replace("\x00", "") + '"*' for t in terms)
    if not cancel.attach(conn):
        raise SearchCancelledError("The search was cancelled.")
    try:
        conn.execute("BEGIN")  # one snapshot for the whole search
        found = conn.execute(
            "SELECT t.num, t.id, t.session_id, s.title, s.number, t.created_at "
            "FROM turns_fts f JOIN turns t ON t.num = f.rowid JOIN sessions s ON s.id = t.session_id "
            "WHERE turns_fts MATCH ? ORDER BY t.created_at DESC LIMIT ?",
            (fts, limit),
        ).fetchall()
        finder = _Finder(terms)
        hits = [_hit_for(conn, row, fts, finder, cancel) for row in found]
        if any(_UNSPACED.search(t) for t in terms):
            seen = {h.turn_id for h in hits}
            hits.extend(h for h in _substring_hits(conn, terms, limit, finder, cancel) if h.turn_id not in seen)
            hits.sort(key=lambda h: h.created_at, reverse=True)
        return _with_branches(conn, hits[:limit])
    except sqlite3.Error:
        if cancel.cancelled:
            raise SearchCancelledError("The search was cancelled.") from None
        raise
    finally:
        cancel.detach()


def _hit_for(conn: sqlite3.Connection, row: tuple[Any, ...], fts: str, finder: _Finder, cancel: SearchCancel) -> SearchHit:
    num, tid, sid, title, number, created_at = row
    # Fields that hold every word, as the index decides (prefixes, case, diacritics),
    # first; when the words are spread over fields, the first field holding one.
    whole = [
        name for name in FIELDS
        if conn.execute(
            "SELECT 1 FROM turns_fts WHERE turns_fts MATCH ? AND rowid = ?", (f"{{{name}}} : ({fts})", num)
        ).fetchone()
    ]
    first: tuple[str, str, tuple[tuple[int, int], ...]] | None = None
    for name in whole + [n for n in FIELDS if n not in whole]:
        snippet, spans = finder.snippet(conn, num, name, cancel)
        if first is None:
            first = (name, snippet, spans)
        if spans:
            first = (name, snippet, spans)
            break
    assert first is not None
    name, snippet, spans = first
    return SearchHit(sid, tid, dec(title), snippet, name, number, sane_time(created_at) or UNKNOWN_TIME, spans)


def _substring_hits(
    conn: sqlite3.Connection, terms: list[str], limit: int, finder: _Finder, cancel: SearchCancel
) -> list[SearchHit]:
    """Substring matches for words the tokenizer cannot split (one pass over the index's text)."""
    where = " AND ".join("(instr(f.user_text, ?) OR instr(f.content, ?) OR instr(f.reasoning, ?))" for _ in terms)
    args = [t for t in terms for _ in range(3)]
    found = conn.execute(
        "SELECT t.num, t.id, t.session_id, s.title, s.number, t.created_at, "
        "instr(f.user_text, ?) > 0, instr(f.content, ?) > 0 "
        "FROM turns_fts f JOIN turns t ON t.num = f.rowid JOIN sessions s ON s.id = t.session_id "
        f"WHERE {where} ORDER BY t.created_at DESC LIMIT ?",
        (terms[0], terms[0], *args, limit),
    ).fetchall()
    hits = []
    for num, tid, sid, title, number, created_at, in_user, in_content in found:
        name = "user_text" if in_user else "content" if in_content else "reasoning"
        snippet, spans = finder.snippet(conn, num, name, cancel, substring=terms[0])
        hits.append(SearchHit(sid, tid, dec(title), snippet, name, number, sane_time(created_at) or UNKNOWN_TIME, spans))
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
        """The snippet around the first match in the indexed copy of a turn's text, and the matched spans in it.

        Reads O(position of the first match) bytes, a window at a time, keeping only
        a short tail of what came before; with no match found (the index folds
        diacritics, this pattern does not) the snippet is the start of the text.
        """
        import codecs

        try:
            blob = conn.blobopen("turns_fts_content", _COLUMNS[column], num, readonly=True)
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
