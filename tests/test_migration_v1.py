"""A database and a JSON export written by glmchat 0.1.0 open today as trees of single branches, losslessly.

The fixtures in tests/data/v1 were made by the 0.1.0 release itself (see its README). The
database is always copied to a temporary folder first: opening migrates it in place, and the
fixture must stay a schema 1 file.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from glmchat.export import from_json
from glmchat.session import TurnStatus
from glmchat.store import Store, schema_version

DATA = Path(__file__).resolve().parent / "data" / "v1"
DB = DATA / "glmchat-v1.db"
TRICKY = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
RENAMED = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"
CRASHED = "cccccccccccccccccccccccccccccccc"
CRASHED_TURN = "88888888888888888888888888888888"

# Turn fields of 0.1.0 that now belong to the turn's (only) step.
STEP_FIELDS = ("reasoning", "content", "tool_calls", "reasoning_details", "usage")


# Session settings added since 0.1.0, as a session from then reads back.
NEW_SETTINGS: dict[str, Any] = {"thinking_level_next": None, "tool_servers": [], "web_search": False}


def v1_settings(session: dict[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in session.items() if k != "turns"}, **NEW_SETTINGS}


def expected() -> dict[str, Any]:
    return json.loads((DATA / "expected-v1.json").read_text(encoding="utf-8"))


def mapped(v1_turn: dict[str, Any], parent: str | None) -> dict[str, Any]:
    """What a 0.1.0 turn is in today's shape: its text, tool calls and usage in one step, its parent set."""
    turn = {k: v for k, v in v1_turn.items() if k not in STEP_FIELDS}
    step = {k: v1_turn[k] for k in STEP_FIELDS}
    step["tool_results"] = []
    step["finish_reason"] = v1_turn["finish_reason"]
    step["web_search"] = None  # no web search in 0.1.0
    turn["steps"] = [step]
    turn["parent_id"] = parent
    turn["thinking_level"] = None  # no such setting in 0.1.0
    return turn


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    """The 0.1.0 database, copied where opening it may change it."""
    before = digest(DB)
    copy = tmp_path / "glmchat.db"
    shutil.copyfile(DB, copy)
    yield copy
    assert digest(DB) == before, "the fixture must never be modified"
    assert not (DATA / "glmchat-v1.db-wal").exists() and not (DATA / "glmchat-v1.db-shm").exists()


def test_the_fixture_is_a_schema_1_database() -> None:
    # Read-only and immutable: not even a -shm file may appear beside the fixture.
    conn = sqlite3.connect(f"file:{DB}?mode=ro&immutable=1", uri=True)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1
        columns = {row[1] for row in conn.execute("PRAGMA table_info(turns)")}
        assert {"reasoning", "content"} <= columns and "parent_id" not in columns
    finally:
        conn.close()


def test_a_v1_database_opens_as_single_branches_with_every_field_kept(v1_copy: Path) -> None:
    want = expected()
    with Store(v1_copy) as store:
        assert store.warnings == []
        for session_id, old in want.items():
            loaded = store.load_session(session_id)
            assert loaded.to_dict(with_turns=False) == v1_settings(old)
            parents = [None, *(t["id"] for t in old["turns"][:-1])]
            assert [t.to_dict() for t in loaded.turns] == [mapped(t, p) for t, p in zip(old["turns"], parents)]
            assert loaded.branches == {}  # one path, no siblings anywhere

            # The tree holds exactly that path, its head the last turn.
            tree = store.load_tree(session_id)
            assert [t.id for t in tree.turns] == [t["id"] for t in old["turns"]]
            assert tree.head == old["turns"][-1]["id"]
            for turn in tree.turns:
                assert store.siblings(session_id, turn.id) == [turn.id]
        numbers = {s.id: s.number for s in store.list_sessions()}
    # Numbers people know their sessions by are kept.
    assert numbers == {TRICKY: 1, RENAMED: 2, CRASHED: 3}
    conn = sqlite3.connect(v1_copy)
    try:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema_version()
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        # One step per turn, no more: the migration moved text, it did not duplicate it.
        assert conn.execute("SELECT count(*) FROM steps").fetchone()[0] == 8
        assert conn.execute("SELECT count(*) FROM turns").fetchone()[0] == 8
    finally:
        conn.close()


def test_the_byte_exact_texts_survive_the_migration(v1_copy: Path) -> None:
    # The same check as above, spelled out for the texts preserved thinking depends on.
    first = expected()[TRICKY]["turns"][0]
    with Store(v1_copy) as store:
        turn = store.load_session(TRICKY).turns[0]
    assert turn.reasoning == first["reasoning"]
    assert "\r\n" in turn.reasoning and "  \n\t" in turn.reasoning and "\x00" in turn.reasoning
    assert "\ud800" in turn.reasoning and "🧠" in turn.reasoning and turn.reasoning.endswith("`code`\n")
    assert turn.user_text == first["user_text"] and turn.content == first["content"]


def test_a_migrated_session_branches_and_forks_like_a_new_one(v1_copy: Path) -> None:
    with Store(v1_copy) as store:
        session = store.load_session(TRICKY)
        # A sibling of turn 3: the old path stays, the new one is current.
        after = session.turns[1]
        turn = session.new_turn("third, again", thinking=False, after=after)
        store.begin_turn(session, turn)
        store.finish_turn(turn)
        reloaded = store.load_session(TRICKY)
        assert [t.id for t in reloaded.turns[:2]] == [t["id"] for t in expected()[TRICKY]["turns"][:2]]
        assert reloaded.head.id == turn.id and reloaded.branches[turn.id].count == 2
        forked = store.fork_session(RENAMED, 1)
        assert [t.id for t in store.load_session(forked).turns] == ["77777777777777777777777777777777"]
    with Store(v1_copy) as store:
        store.switch_branch(TRICKY, "33333333333333333333333333333333")
        assert [t.id for t in store.load_session(TRICKY).turns] == [t["id"] for t in expected()[TRICKY]["turns"]]


def test_the_turn_a_crashed_0_1_process_left_streaming_is_recovered_as_interrupted(v1_copy: Path) -> None:
    with Store(v1_copy) as store:
        assert store.recovered == [CRASHED_TURN]
        session = store.load_session(CRASHED)
    (turn,) = session.turns
    assert turn.status == TurnStatus.INTERRUPTED
    assert turn.reasoning == "thinking before the crash and more \ud800"
    assert turn.content == "half an answ"
    assert turn.user_text and turn.parent_id is None
    # Recovered once: the next open finds nothing left to recover and the text is the same.
    with Store(v1_copy) as store:
        assert store.recovered == []
        again = store.load_session(CRASHED).turns[0]
    assert (again.status, again.reasoning, again.content) == (turn.status, turn.reasoning, turn.content)


def test_a_v1_json_export_still_imports_and_equals_the_same_session(glmchat_home: Path) -> None:
    want = expected()[TRICKY]
    tree = from_json((DATA / "session-v1.json").read_bytes())
    parents = [None, *(t["id"] for t in want["turns"][:-1])]
    assert [t.to_dict() for t in tree.turns] == [mapped(t, p) for t, p in zip(want["turns"], parents)]
    assert tree.head == want["turns"][-1]["id"]

    with Store.open(glmchat_home) as store:
        stored = store.import_session(tree)
        # Nothing of ours had these ids: they are kept, and the session reads back equal.
        assert stored.session.id == TRICKY
        loaded = store.load_session(TRICKY)
        assert loaded.to_dict(with_turns=False) == v1_settings(want)
        assert [t.to_dict() for t in loaded.turns] == [mapped(t, p) for t, p in zip(want["turns"], parents)]
        # Imported twice: a second, separate copy with new ids, the same texts.
        second = store.import_session(from_json((DATA / "session-v1.json").read_bytes()))
        assert second.session.id != TRICKY
        again = store.load_session(second.session.id)
    assert [t.id for t in again.turns] != [t["id"] for t in want["turns"]]
    strip = lambda t: {k: v for k, v in t.to_dict().items() if k not in ("id", "parent_id")}  # noqa: E731
    assert [strip(t) for t in again.turns] == [strip(t) for t in loaded.turns]


def test_the_v1_export_and_the_v1_database_hold_the_same_session(v1_copy: Path) -> None:
    tree = from_json((DATA / "session-v1.json").read_bytes())
    with Store(v1_copy) as store:
        loaded = store.load_session(TRICKY)
    assert [t.to_dict() for t in tree.turns] == [t.to_dict() for t in loaded.turns]
    assert tree.session.to_dict(with_turns=False) == loaded.to_dict(with_turns=False)
