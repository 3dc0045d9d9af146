"""Session revisions: a store finds out what other writers did to a session, cheaply.

Two `Store` objects on one file are two connections, as two glmchat processes
are: one plays the open window, the other the second writer.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from glmchat.session import Session, Turn, TurnStatus
from glmchat.store import DB_NAME, NOT_SYNCED, Store
from glmchat.store.rows import put_turn
from tests.test_store import make_v1_fixture

ODD = "line one\r\n  trailing spaces  \n\ttab\x00nul \u2028 sep \ud800 lone"
"""Reasoning a normalisation would change: it must come back to the window byte for byte."""


def finished_turn(text: str, reasoning: str = "", content: str = "") -> Turn:
    turn = Turn(user_text=text, thinking=bool(reasoning), host="zai", model="glm-4.7")
    turn.step.reasoning = reasoning or f"thinking about {text}"
    turn.step.content = content or f"answer to {text}"
    turn.status = TurnStatus.COMPLETE
    turn.finish_reason = "stop"
    return turn


@pytest.fixture
def stores(glmchat_home: Path) -> Iterator[tuple[Store, Store]]:
    window, other = Store.open(glmchat_home), Store.open(glmchat_home)
    try:
        yield window, other
    finally:
        window.close()
        other.close()


def saved_session(store: Store, n: int) -> Session:
    session = Session(title="Shared")
    session.turns = [finished_turn(f"q{i}") for i in range(1, n + 1)]
    store.save_session(session)
    return session


def count_statements(store: Store) -> list[str]:
    statements: list[str] = []
    store._db._conn.set_trace_callback(statements.append)
    return statements


def test_nothing_changed_costs_one_pragma(stores: tuple[Store, Store]) -> None:
    window, other = stores
    session = saved_session(window, 2)
    _, point = window.load_session_synced(session.id)
    statements = count_statements(window)
    changes = window.changes_since(session.id, point)
    assert not changes.changed and changes.point == point
    assert statements == ["PRAGMA data_version"]


def test_a_write_elsewhere_to_another_session_costs_one_more_indexed_read(stores: tuple[Store, Store]) -> None:
    window, other = stores
    session = saved_session(window, 2)
    _, point = window.load_session_synced(session.id)
    saved_session(other, 1)  # someone else's session
    statements = count_statements(window)
    changes = window.changes_since(session.id, point)
    assert not changes.changed
    assert changes.point.revision == point.revision and changes.point.data_version != point.data_version
    reads = [s for s in statements if s.startswith("SELECT")]
    assert len(reads) == 1 and reads[0].startswith("SELECT revision FROM sessions WHERE id =")
    # And from the new point, nothing at all again.
    statements.clear()
    assert not window.changes_since(session.id, changes.point).changed
    assert statements == ["PRAGMA data_version"]


def test_a_turn_added_elsewhere_comes_back_whole_and_exact(stores: tuple[Store, Store]) -> None:
    window, other = stores
    session = saved_session(window, 2)
    shown, point = window.load_session_synced(session.id)

    theirs = other.load_session(session.id)
    third = finished_turn("q3", reasoning=ODD, content="their answer")
    third.parent_id = theirs.turns[-1].id
    theirs.turns.append(third)
    other.begin_turn(theirs, third)
    other.finish_turn(third)

    changes = window.changes_since(session.id, point)
    assert changes.turn_ids == tuple(t.id for t in [*shown.turns, third])
    assert list(changes.turns) == [third.id], "only the turn written elsewhere is read"
    got = changes.turns[third.id]
    assert got.reasoning == ODD and got.content == "their answer" and got.status == TurnStatus.COMPLETE
    assert changes.point.revision > point.revision
    assert not window.changes_since(session.id, changes.point).changed


def test_own_writes_are_not_reported_even_when_others_wrote_too(stores: tuple[Store, Store]) -> None:
    window, other = stores
    session = saved_session(window, 1)
    shown, point = window.load_session_synced(session.id)
    mine = shown.new_turn("mine")
    window.begin_turn(shown, mine)
    mine.step.reasoning, mine.step.content = "r", "c"
    window.finish_turn(mine)
    saved_session(other, 1)  # moves data_version, so the window has to look

    changes = window.changes_since(session.id, point)
    assert changes.turn_ids == tuple(t.id for t in shown.turns)
    assert changes.turns == {}


def test_a_turn_rewritten_elsewhere_is_reported_though_this_store_wrote_it_first(stores: tuple[Store, Store]) -> None:
    window, other = stores
    session = saved_session(window, 2)
    shown, point = window.load_session_synced(session.id)
    last = other.load_session(session.id).turns[-1]
    last.step.content = "edited elsewhere"
    last.include_in_context = False
    other.update_turn(last)

    changes = window.changes_since(session.id, point)
    assert changes.turn_ids == tuple(t.id for t in shown.turns)
    assert changes.turns[last.id].content == "edited elsewhere"
    assert changes.turns[last.id].include_in_context is False


def test_a_branch_chosen_elsewhere_changes_the_path(stores: tuple[Store, Store]) -> None:
    window, other = stores
    session = saved_session(window, 3)
    shown, point = window.load_session_synced(session.id)
    theirs = other.load_session(session.id)
    sibling = theirs.new_turn("another second", after=theirs.turns[0])
    other.begin_turn(theirs, sibling)
    sibling.finish()
    other.finish_turn(sibling)
    changes = window.changes_since(session.id, point)
    assert changes.turn_ids == (shown.turns[0].id, sibling.id)
    assert list(changes.turns) == [sibling.id]
    # Back to the first branch, elsewhere again: the old path, nothing new to read.
    other.switch_branch(session.id, shown.turns[1].id)
    changes = window.changes_since(session.id, changes.point)
    assert changes.turn_ids == tuple(t.id for t in shown.turns)
    assert changes.turns == {}


def test_a_session_deleted_elsewhere(stores: tuple[Store, Store]) -> None:
    window, other = stores
    session = saved_session(window, 1)
    _, point = window.load_session_synced(session.id)
    other.delete_session(session.id)
    changes = window.changes_since(session.id, point)
    assert changes.deleted and changes.changed


def test_a_turn_streaming_elsewhere_moves_the_revision_when_it_starts_and_ends_only(stores: tuple[Store, Store]) -> None:
    from glmchat.protocol.events import ReasoningDelta

    window, other = stores
    session = saved_session(window, 1)
    _, point = window.load_session_synced(session.id)
    theirs = other.load_session(session.id)
    turn = theirs.new_turn("streaming over there")
    other.begin_turn(theirs, turn)
    changes = window.changes_since(session.id, point)
    assert changes.turns[turn.id].status == TurnStatus.STREAMING
    point = changes.point

    for i in range(5):  # progress saves write chunks, not the turn: no revision, no re-read
        turn.apply(ReasoningDelta(text=f"step {i} "))
        other.save_progress(turn)
    changes = window.changes_since(session.id, point)
    assert not changes.changed
    point = changes.point

    turn.finish()
    other.finish_turn(turn)
    changes = window.changes_since(session.id, point)
    assert changes.turns[turn.id].status == TurnStatus.COMPLETE
    assert changes.turns[turn.id].reasoning == "step 0 step 1 step 2 step 3 step 4 "


def test_a_session_never_read_is_told_about_every_turn_but_its_own(stores: tuple[Store, Store]) -> None:
    window, other = stores
    session = Session(title="New here")
    first = session.new_turn("first")
    window.begin_turn(session, first)
    first.finish()
    window.finish_turn(first)
    theirs = other.load_session(session.id)
    second = finished_turn("second")
    second.parent_id = first.id
    theirs.turns.append(second)
    other.begin_turn(theirs, second)
    other.finish_turn(second)
    changes = window.changes_since(session.id, NOT_SYNCED)
    assert changes.turn_ids == (first.id, second.id)
    assert list(changes.turns) == [second.id]


def test_a_failed_write_is_not_taken_for_an_own_write(stores: tuple[Store, Store], monkeypatch) -> None:
    """A write rolled back leaves no record: the same revision, written by another store, is theirs."""
    window, other = stores
    session = saved_session(window, 1)
    shown, point = window.load_session_synced(session.id)
    turn = finished_turn("never stored")
    shown.turns.append(turn)

    def fail(conn: sqlite3.Connection) -> None:
        put_turn(conn, session.id, turn, owner=None)
        raise sqlite3.OperationalError("disk I/O error")

    with pytest.raises(Exception):
        window._write("save", fail)
    shown.turns.pop()
    theirs = other.load_session(session.id)
    second = finished_turn("second")
    second.parent_id = theirs.turns[-1].id
    theirs.turns.append(second)
    other.save_session(theirs)  # gets the revision the failed write had taken
    changes = window.changes_since(session.id, point)
    assert second.id in changes.turns


def test_an_old_database_gets_revisions(glmchat_home: Path) -> None:
    make_v1_fixture(glmchat_home / DB_NAME)
    with Store.open(glmchat_home) as window, Store.open(glmchat_home) as other:
        shown, point = window.load_session_synced("a1")
        assert point.revision == 0 and [t.id for t in shown.turns] == ["t1"]
        theirs = other.load_session("a1")
        added = finished_turn("new")
        added.parent_id = "t1"
        theirs.turns.append(added)
        other.begin_turn(theirs, added)
        other.finish_turn(added)
        changes = window.changes_since("a1", point)
        assert changes.turn_ids == ("t1", added.id)
        assert list(changes.turns) == [added.id]
