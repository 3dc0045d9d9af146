"""The SQLite store: round trips, listing, ids, paging, streaming saves, search, import, migrations."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from glmchat import store as store_module
from glmchat.errors import SessionNotFound, StorageError, TurnNotFound
from glmchat.store import schema
from glmchat.protocol.events import (
    ContentDelta,
    Finish,
    ReasoningDelta,
    ReasoningDetailsDelta,
    ToolCallDelta,
    UsageUpdate,
)
from glmchat.session import Session, SessionTree, Turn, TurnStatus
from glmchat.usage import Usage
from glmchat.store import DB_NAME, Store


@pytest.fixture
def store(glmchat_home: Path) -> Store:
    s = Store.open(glmchat_home)
    yield s
    s.close()


def reopen(store: Store) -> Store:
    store.close()
    return Store(store.path)


def finished_turn(session: Session, text: str, reasoning: str = "", content: str = "", **kw) -> Turn:
    turn = session.new_turn(text, thinking=bool(reasoning))
    if reasoning:
        turn.apply(ReasoningDelta(reasoning))
    if content:
        turn.apply(ContentDelta(content))
    turn.apply(Finish(kw.pop("finish_reason", "stop")))
    turn.finish()
    for key, value in kw.items():
        setattr(turn.step if key == "usage" else turn, key, value)
    return turn


def rich_session() -> Session:
    session = Session(title="A chat", system_prompt="Be brief.\r\n", temperature=0.6, top_p=None, max_tokens=2048,
                      preserve_thinking=False, thinking_next=False)
    finished_turn(session, "first?", "hmm  \n", "**yes**", usage=Usage(10, 20, 5, 12, 0.001))
    turn = session.new_turn("call a tool", thinking=True)
    turn.apply(ToolCallDelta(0, "call_1", "search", '{"q": '))
    turn.apply(ToolCallDelta(0, None, None, '"x"}'))
    turn.apply(ReasoningDetailsDelta([{"type": "reasoning.text", "text": "abc"}]))
    turn.apply(Finish("tool_calls"))
    turn.finish()
    finished_turn(session, "long one", "r", "partial", finish_reason="length")
    finished_turn(session, "broken", "", "", status=TurnStatus.ERROR, error="Z.ai: server error (500)", error_kind="server",
                  include_in_context=True)
    return session


def save_all(store: Store, session: Session) -> None:
    for turn in session.turns:
        store.begin_turn(session, turn)
        store.finish_turn(turn)


# -- round trips -----------------------------------------------------------------------------


def test_round_trip_through_streaming_api(store: Store) -> None:
    session = rich_session()
    save_all(store, session)
    loaded = reopen(store).load_session(session.id)
    assert loaded.to_dict() == session.to_dict()
    assert [t.status for t in loaded.turns] == [TurnStatus.COMPLETE, TurnStatus.COMPLETE, TurnStatus.TRUNCATED, TurnStatus.ERROR]
    assert loaded.turns[1].steps[0].tool_calls[0].arguments == '{"q": "x"}'


def test_round_trip_through_save_session(store: Store) -> None:
    session = rich_session()
    store.save_session(session)
    store = reopen(store)
    assert store.load_session(session.id).to_dict() == session.to_dict()
    store.close()


def test_save_session_without_turns_keeps_turns(store: Store) -> None:
    session = rich_session()
    save_all(store, session)
    settings_only = Session.from_dict(session.to_dict(with_turns=False))
    settings_only.system_prompt = "changed"
    store.save_session(settings_only, turns=False)
    loaded = store.load_session(session.id)
    assert loaded.system_prompt == "changed"
    assert len(loaded.turns) == 4


def test_save_session_keeps_turns_the_object_lacks(store: Store) -> None:
    """Another process's turns are not deleted by a save of a stale copy."""
    session = Session()
    finished_turn(session, "one")
    store.save_session(session)
    stale = Session.from_dict(session.to_dict())
    finished_turn(session, "two")
    store.save_session(session)
    store.save_session(stale)
    assert [t.user_text for t in store.load_session(session.id).turns] == ["one", "two"]


# -- listing and ids -----------------------------------------------------------------------


def test_list_sessions_is_newest_first_with_counts(store: Store) -> None:
    sessions = []
    for i in range(3):
        session = Session(title=f"s{i}", created_at=100 + i, updated_at=100 + i)
        store.save_session(session)
        sessions.append(session)
    turn = sessions[0].new_turn("bump")  # new activity moves it to the top
    store.begin_turn(sessions[0], turn)
    listed = store.list_sessions()
    assert [s.title for s in listed] == ["s0", "s2", "s1"]
    assert [s.turn_count for s in listed] == [1, 0, 0]
    assert [s.number for s in listed] == [1, 3, 2]
    assert [s.title for s in store.list_sessions(limit=1, offset=1)] == ["s2"]
    assert store.most_recent_session_id() == sessions[0].id
    assert store.count_sessions() == 3


def test_numbers_are_not_reused_after_delete(store: Store) -> None:
    a, b = Session(title="a"), Session(title="b")
    store.save_session(a)
    store.save_session(b)
    store.delete_session(b.id)
    c = Session(title="c")
    store.save_session(c)
    assert store.session_number(c.id) == 3


def test_numbers_have_no_gaps_after_many_turns(store: Store) -> None:
    """Updating a session row (every begin_turn) must not use up session numbers."""
    first = Session(title="first")
    save_all(store, first)
    for _ in range(3):
        save_all(store, Session.from_dict(first.to_dict()))
        finished_turn(first, "more")
        store.begin_turn(first, first.turns[-1])
    second = Session(title="second")
    store.save_session(second)
    assert store.session_number(second.id) == 2


def test_resolve_id(store: Store) -> None:
    a = Session(id="abcd" + "0" * 28)
    b = Session(id="abce" + "0" * 28)
    store.save_session(a)
    store.save_session(b)
    assert store.resolve_id(a.id) == a.id
    assert store.resolve_id("ABCD0") == a.id  # prefix, case-insensitive
    assert store.resolve_id("1") == a.id
    assert store.resolve_id(" #2 ") == b.id
    with pytest.raises(SessionNotFound, match="No session"):
        store.resolve_id("abc")  # too short to be taken as a prefix


def test_resolve_id_errors(store: Store) -> None:
    a = Session(id="abcd" + "0" * 28)
    b = Session(id="abcd" + "1" * 28)
    store.save_session(a)
    store.save_session(b)
    with pytest.raises(SessionNotFound, match="several"):
        store.resolve_id("abcd")
    with pytest.raises(SessionNotFound, match="No session"):
        store.resolve_id("99")
    with pytest.raises(SessionNotFound):
        store.resolve_id("")
    with pytest.raises(SessionNotFound):
        store.load_session("ffff")
    assert store.load_session("abcd1").id == b.id


def test_rename_and_delete(store: Store) -> None:
    session = rich_session()
    save_all(store, session)
    store.rename_session(session.id, "New \ud800 name")
    assert store.list_sessions()[0].title == "New \ud800 name"
    store.delete_session(session.id)
    assert store.list_sessions() == []
    assert store.search("yes") == []
    conn = sqlite3.connect(store.path)
    assert conn.execute("SELECT count(*) FROM turns").fetchone() == (0,)
    assert conn.execute("SELECT count(*) FROM turns_fts").fetchone() == (0,)
    conn.close()
    with pytest.raises(SessionNotFound):
        store.delete_session(session.id)
    with pytest.raises(SessionNotFound):
        store.rename_session(session.id, "x")


def test_update_turn(store: Store) -> None:
    session = rich_session()
    save_all(store, session)
    turn = session.turns[2]
    turn.include_in_context = True
    store.update_turn(turn)
    assert store.load_session(session.id).turns[2].include_in_context is True


def test_load_turns_before_pages_back_along_the_path(store: Store) -> None:
    session = Session()
    for i in range(10):
        finished_turn(session, f"q{i}")
    save_all(store, session)
    last = store.load_session(session.id, last=3).turns
    assert [t.user_text for t in last] == ["q7", "q8", "q9"]
    older, _ = store.load_turns_before(session.id, last[0].id, 3)
    assert [t.user_text for t in older] == ["q4", "q5", "q6"]
    rest, _ = store.load_turns_before(session.id, older[0].id)
    assert [t.user_text for t in rest] == ["q0", "q1", "q2", "q3"]
    assert store.load_turns_before(session.id, rest[0].id) == ([], {})
    with pytest.raises(TurnNotFound):
        store.load_turns_before(session.id, "nope")


# -- streaming saves --------------------------------------------------------------------------


def chunk_rows(store: Store, turn: Turn) -> list[tuple[str, bytes]]:
    conn = sqlite3.connect(store.path)
    rows = conn.execute("SELECT kind, data FROM chunks WHERE turn_id = ? ORDER BY n", (turn.id,)).fetchall()
    conn.close()
    return rows


def test_save_progress_writes_only_new_text(store: Store) -> None:
    session = Session()
    store.save_session(session)
    turn = session.new_turn("question")
    store.begin_turn(session, turn)

    # Count every row update of sessions and turns from here on, on the store's own connection.
    conn = store._db._conn
    conn.execute("CREATE TEMP TABLE writes (what TEXT)")
    conn.execute("CREATE TEMP TRIGGER s_upd AFTER UPDATE ON main.sessions BEGIN INSERT INTO writes VALUES ('s'); END")
    conn.execute("CREATE TEMP TRIGGER t_upd AFTER UPDATE ON main.turns BEGIN INSERT INTO writes VALUES ('t'); END")

    turn.apply(ReasoningDelta("abc"))
    turn.apply(ReasoningDelta("def"))
    assert store.save_progress(turn) == 2  # the reasoning, and the first-token timestamp
    assert store.save_progress(turn) == 0  # nothing new: nothing written
    turn.apply(ReasoningDelta("ghi"))
    turn.sync()  # someone (the UI) joined the parts in between
    turn.apply(ReasoningDelta("jkl"))
    turn.apply(ContentDelta("answer"))
    store.save_progress(turn)
    turn.apply(UsageUpdate(Usage(prompt_tokens=5)))
    store.save_progress(turn)

    rows = chunk_rows(store, turn)
    texts = [(kind, data) for kind, data in rows if kind in "rc"]
    assert texts == [("r", b"abcdef"), ("r", b"ghijkl"), ("c", b"answer")]
    assert [kind for kind, _ in rows].count("m") == 3  # first reasoning, first content, usage
    assert conn.execute("SELECT count(*) FROM writes").fetchone() == (0,)

    turn.apply(Finish("stop"))
    turn.finish()
    store.finish_turn(turn)
    assert chunk_rows(store, turn) == []
    assert store.load_session(session.id).turns[0].to_dict() == turn.to_dict()


def test_save_progress_needs_begin(store: Store) -> None:
    with pytest.raises(TurnNotFound, match="begin_turn"):
        store.save_progress(Turn(user_text="x", thinking=False))


def test_streaming_turn_visible_to_another_store(store: Store) -> None:
    session = Session()
    turn = session.new_turn("q")
    store.begin_turn(session, turn)
    turn.apply(ReasoningDelta("so far"))
    turn.apply(ToolCallDelta(0, "c1", "f", '{"a"'))
    store.save_progress(turn)
    turn.apply(ToolCallDelta(0, None, None, ": 1}"))
    store.save_progress(turn)
    other = Store(store.path)
    seen = other.load_session(session.id).turns[0]
    assert seen.status == TurnStatus.STREAMING
    assert seen.reasoning == "so far"
    assert seen.steps[0].tool_calls[0].arguments == '{"a": 1}'
    # It is alive (this process): the other store leaves it alone.
    assert other.recover() == []
    other.close()


def test_replaced_text_falls_back_to_full_write(store: Store) -> None:
    session = Session()
    turn = session.new_turn("q")
    store.begin_turn(session, turn)
    turn.apply(ContentDelta("first version"))
    store.save_progress(turn)
    turn.sync()
    turn.step.content = "short"
    store.save_progress(turn)
    turn.apply(ContentDelta(" and more"))
    store.save_progress(turn)
    assert store.load_session(session.id).turns[0].content == "short and more"


def test_begin_turn_keeps_a_rename_from_elsewhere(store: Store) -> None:
    session = Session()
    finished_turn(session, "first")
    save_all(store, session)
    store.rename_session(session.id, "Renamed")
    turn = session.new_turn("second")
    store.begin_turn(session, turn)
    assert store.list_sessions()[0].title == "Renamed"


def test_save_session_leaves_a_turn_streaming_elsewhere(store: Store) -> None:
    session = Session()
    turn = session.new_turn("q")
    store.begin_turn(session, turn)
    turn.apply(ContentDelta("live text"))
    store.save_progress(turn)
    other = Store(store.path)
    copy = other.load_session(session.id)
    copy.title = "edited elsewhere"
    other.save_session(copy)
    with pytest.raises(StorageError, match="streaming"):
        other.update_turn(copy.turns[0])
    other.close()
    turn.apply(ContentDelta(", more"))
    store.save_progress(turn)
    turn.finish()
    store.finish_turn(turn)
    loaded = store.load_session(session.id)
    assert loaded.title == "edited elsewhere"
    assert loaded.turns[0].content == "live text, more"


# -- search ---------------------------------------------------------------------------------


def test_search_fields_and_order(store: Store) -> None:
    older = Session(title="Old")
    finished_turn(older, "tell me about walruses", "", "Walruses are large.")
    newer = Session(title="New")
    finished_turn(newer, "anything", "the user asks about walrus facts", "sure")
    finished_turn(newer, "zebras?", "", "stripes")
    for s in (older, newer):
        save_all(store, s)
    hits = store.search("walrus")
    assert [(h.title, h.field) for h in hits] == [("New", "reasoning"), ("Old", "user_text")]
    hit = hits[0]
    assert hit.session_id == newer.id and hit.turn_id == newer.turns[0].id
    start, end = hit.highlights[0]
    assert hit.snippet[start:end] == "walrus"
    assert [h.field for h in store.search("stripes")] == ["content"]
    assert store.search("walrus", limit=1)[0].title == "New"
    assert store.search("walruses large") [0].title == "Old"  # every word must match


@pytest.mark.parametrize(
    "query",
    ['foo"bar', "AND (", "(", '"', "*", "NEAR(a b)", "user_text:x", "-x", "^x", "OR", "a AND", "'", "\x00", "",
     "   ", "{a b}: c", "x*y", '""""', "\ud800", "🦀", "a" * 2000],
)
def test_nasty_queries_do_not_raise(store: Store, query: str) -> None:
    session = Session()
    finished_turn(session, 'foo"bar AND ( NEAR x*y 🦀', "", "")
    save_all(store, session)
    assert isinstance(store.search(query), list)


def test_search_quoted_words_are_text(store: Store) -> None:
    session = Session()
    finished_turn(session, 'she said foo"bar and left', "", "")
    save_all(store, session)
    assert len(store.search('foo"bar')) == 1
    assert len(store.search("AND")) == 1  # the word, not the operator


def test_search_cjk_substring(store: Store) -> None:
    session = Session(title="中文")
    finished_turn(session, "请解释一下量子计算的基本原理", "", "")
    save_all(store, session)
    hits = store.search("量子计算")
    assert len(hits) == 1
    start, end = hits[0].highlights[0]
    assert hits[0].snippet[start:end] == "量子计算"


def test_search_finds_text_with_nul_and_surrogates(store: Store) -> None:
    session = Session()
    finished_turn(session, "needle\x00haystack \ud800 end", "", "")
    save_all(store, session)
    assert len(store.search("haystack")) == 1


# -- import -----------------------------------------------------------------------------------


def test_import_new_and_existing(store: Store) -> None:
    session = rich_session()
    first = store.import_session(SessionTree.of(session)).session
    assert first.id == session.id
    second = store.import_session(SessionTree.of(session)).session
    assert second.id != session.id
    assert {t.id for t in second.turns}.isdisjoint(t.id for t in session.turns)
    assert store.load_session(session.id).to_dict() == session.to_dict()  # not overwritten
    copy = store.load_session(second.id)
    assert [t.reasoning for t in copy.turns] == [t.reasoning for t in session.turns]
    assert store.count_sessions() == 2


def test_import_marks_streaming_turns_interrupted(store: Store) -> None:
    session = Session()
    turn = session.new_turn("q")
    turn.apply(ContentDelta("half"))
    stored = store.import_session(SessionTree.of(session)).session
    assert stored.turns[0].status == TurnStatus.INTERRUPTED
    assert reopen(store).load_session(session.id).turns[0].status == TurnStatus.INTERRUPTED


# -- schema and migrations -----------------------------------------------------------------------

# The v1 schema exactly as released: a frozen copy, so that a later change to
# the live schema cannot silently stop old databases from opening.
V1_SCHEMA = [
    """CREATE TABLE sessions (number INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE,
        title BLOB NOT NULL, host BLOB NOT NULL, model BLOB NOT NULL, created_at REAL NOT NULL,
        updated_at REAL NOT NULL, turn_count INTEGER NOT NULL DEFAULT 0, settings BLOB NOT NULL)""",
    "CREATE INDEX sessions_by_update ON sessions(updated_at)",
    """CREATE TABLE turns (num INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,
        session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE, seq INTEGER NOT NULL,
        status TEXT NOT NULL, created_at REAL NOT NULL, user_text BLOB NOT NULL, reasoning BLOB NOT NULL,
        content BLOB NOT NULL, meta BLOB NOT NULL, owner_pid INTEGER, owner_host TEXT, owner_start TEXT,
        UNIQUE (session_id, seq))""",
    "CREATE INDEX turns_streaming ON turns(status) WHERE status = 'streaming'",
    """CREATE TABLE chunks (turn_id TEXT NOT NULL REFERENCES turns(id) ON DELETE CASCADE, n INTEGER NOT NULL,
        kind TEXT NOT NULL, data BLOB NOT NULL, at REAL NOT NULL, PRIMARY KEY (turn_id, n)) WITHOUT ROWID""",
    """CREATE VIRTUAL TABLE turns_fts USING fts5(user_text, content, reasoning,
        tokenize = 'unicode61 remove_diacritics 2')""",
    """CREATE TRIGGER turns_fts_delete AFTER DELETE ON turns BEGIN
        DELETE FROM turns_fts WHERE rowid = old.num; END""",
    "PRAGMA user_version = 1",
]


def make_v1_fixture(path: Path) -> None:
    conn = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        conn.execute(statement)
    conn.execute(
        "INSERT INTO sessions (id, title, host, model, created_at, updated_at, turn_count, settings) "
        "VALUES ('a1', CAST('Old chat' AS BLOB), CAST('zai' AS BLOB), CAST('glm-4.7' AS BLOB), 1.0, 2.0, 1, "
        "CAST('{\"system_prompt\":\"sys\",\"preserve_thinking\":true}' AS BLOB))"
    )
    conn.execute(
        "INSERT INTO turns (id, session_id, seq, status, created_at, user_text, reasoning, content, meta) "
        "VALUES ('t1', 'a1', 1, 'complete', 1.5, CAST('hi' AS BLOB), X'7468696E6B0D0A00', CAST('hello' AS BLOB), "
        "CAST('{\"thinking\":true,\"finish_reason\":\"stop\",\"usage\":{\"prompt_tokens\":3}}' AS BLOB))"
    )
    conn.execute("INSERT INTO turns_fts (rowid, user_text, content, reasoning) VALUES (1, 'hi', 'hello', 'think')")
    conn.commit()
    conn.close()


def test_opens_v1_fixture(glmchat_home: Path) -> None:
    make_v1_fixture(glmchat_home / DB_NAME)
    with Store.open(glmchat_home) as store:
        assert store.warnings == []
        session = store.load_session("1")
        assert session.title == "Old chat" and session.system_prompt == "sys"
        turn = session.turns[0]
        assert turn.reasoning == "think\r\n\x00"
        assert turn.usage.prompt_tokens == 3 and turn.thinking is True
        assert store.search("hello")[0].turn_id == "t1"


def test_migration_to_a_future_version(glmchat_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_v1_fixture(glmchat_home / DB_NAME)
    ran = []

    def v2(conn: sqlite3.Connection) -> None:
        ran.append(True)
        conn.execute("ALTER TABLE sessions ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0")

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, v2])
    with Store.open(glmchat_home) as store:
        assert store.load_session("a1").turns[0].content == "hello"
    with Store.open(glmchat_home):
        pass
    assert ran == [True]  # once
    conn = sqlite3.connect(glmchat_home / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone() == (schema.schema_version(),)
    assert conn.execute("SELECT pinned FROM sessions").fetchall() == [(0,)]
    conn.close()


def test_failed_migration_changes_nothing(glmchat_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_v1_fixture(glmchat_home / DB_NAME)

    def v2(conn: sqlite3.Connection) -> None:
        conn.execute("ALTER TABLE sessions ADD COLUMN pinned INTEGER")
        raise sqlite3.OperationalError("boom")

    monkeypatch.setattr(schema, "MIGRATIONS", [*schema.MIGRATIONS, v2])
    with pytest.raises(StorageError, match="boom"):
        Store.open(glmchat_home)
    conn = sqlite3.connect(glmchat_home / DB_NAME)
    assert conn.execute("PRAGMA user_version").fetchone() == (1,)
    assert "pinned" not in [row[1] for row in conn.execute("PRAGMA table_info(sessions)")]
    conn.close()


def test_new_database_settings(store: Store) -> None:
    conn = store._db._conn
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    assert conn.execute("PRAGMA foreign_keys").fetchone() == (1,)
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    assert conn.execute("PRAGMA user_version").fetchone() == (store_module.schema_version(),)
    assert store.check() == "ok"


def test_closed_store_raises_storage_error(store: Store) -> None:
    store.close()
    with pytest.raises(StorageError, match="closed"):
        store.list_sessions()
