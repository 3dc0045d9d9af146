"""Sessions as trees in the store: forks share turns, branches, switching, deleting what a fork builds on."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from glmchat.errors import SessionNotFound, TurnNotFound
from glmchat.protocol.events import ContentDelta, Finish, ReasoningDelta
from glmchat.session import Branch, Session, Turn
from glmchat.store import Store


@pytest.fixture
def store(glmchat_home: Path) -> Store:
    s = Store.open(glmchat_home)
    yield s
    s.close()


def add(store: Store, session: Session, text: str, *, after: Turn | None = None, reasoning: str = "") -> Turn:
    """A finished turn saved the way a chat saves one (begin, finish), following `after` (default: the head)."""
    turn = session.new_turn(text, thinking=bool(reasoning), after=after)
    store.begin_turn(session, turn)
    if reasoning:
        turn.apply(ReasoningDelta(reasoning))
    turn.apply(ContentDelta(f"answer to {text}"))
    turn.apply(Finish("stop"))
    turn.finish()
    store.finish_turn(turn)
    return turn


def chat(store: Store, n: int, title: str = "source") -> Session:
    session = Session(title=title)
    for i in range(1, n + 1):
        add(store, session, f"q{i}", reasoning=f"r{i}\r\n\t ")
    return session


def ids(session: Session) -> list[str]:
    return [t.id for t in session.turns]


def table_dump(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table (FTS shadow tables included), read on a connection of its own."""
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        return {name: conn.execute(f'SELECT * FROM "{name}"').fetchall() for name in names if name != "sqlite_sequence"}
    finally:
        conn.close()


# -- forks: zero copy ---------------------------------------------------------------------------------


def test_forking_a_1000_turn_session_writes_one_session_row_and_copies_no_turn(store: Store) -> None:
    source = Session(title="long")
    for i in range(1000):
        turn = source.new_turn(f"question {i}", thinking=True)
        turn.apply(ReasoningDelta(f"thought {i}\r\n"))
        turn.apply(ContentDelta(f"answer {i}"))
        turn.finish()
    store.save_session(source)
    before = table_dump(store.path)
    assert len(before["turns"]) == 1000 and len(before["steps"]) == 1000

    forked = store.fork_session(source.id, 700, "half")

    after = table_dump(store.path)
    # Turns, steps, chunks and the search index: not one row added, changed or removed.
    for name in before:
        if name != "sessions":
            assert after[name] == before[name], name
    assert len(after["sessions"]) == len(before["sessions"]) + 1
    # The source's row is untouched too: only the new one was written.
    assert [r for r in after["sessions"] if source.id in r] == [r for r in before["sessions"] if source.id in r]

    loaded = store.load_session(forked)
    assert ids(loaded) == ids(source)[:700]  # the very same turns, shared
    assert loaded.title == "half" and loaded.turns[-1].reasoning == "thought 699\r\n"
    assert store.list_sessions(limit=1)[0].turn_count == 700


def test_a_fork_keeps_the_source_unchanged_and_the_two_grow_apart(store: Store) -> None:
    source = chat(store, 5)
    before = store.load_session(source.id).to_dict()
    forked_id = store.fork_session(str(store.session_number(source.id)), 3)

    forked = store.load_session(forked_id)
    assert ids(forked) == ids(source)[:3]
    assert forked.title == "source (fork)" and forked.id != source.id
    assert forked.to_dict(with_turns=False) | {"id": source.id, "title": "source", "created_at": 0, "updated_at": 0} == \
        source.to_dict(with_turns=False) | {"created_at": 0, "updated_at": 0}  # same settings
    assert store.load_session(source.id).to_dict() == before

    # A turn added to the fork follows the fork's turn 3 and is the fork's alone.
    new = add(store, forked, "only in the fork")
    assert new.parent_id == source.turns[2].id
    assert ids(store.load_session(forked_id)) == [*ids(source)[:3], new.id]
    reloaded = store.load_session(source.id)
    assert reloaded.to_dict() == before
    assert reloaded.branches == {}  # the fork's turn is not a sibling of the source's turn 4
    assert store.siblings(source.id, source.turns[3].id) == [source.turns[3].id]
    assert store.load_session(forked_id).branches == {}
    assert [t.id for t in store.load_tree(source.id).turns] == ids(source)

    # And the source goes on without the fork seeing it.
    more = add(store, reloaded, "only in the source")
    assert more.id not in ids(store.load_session(forked_id))
    assert [t.id for t in store.load_tree(forked_id).turns] == [*ids(source)[:3], new.id]


@pytest.mark.parametrize("at", [0, 1, 4])
def test_fork_at_any_point_from_nothing_to_the_whole_path(store: Store, at: int) -> None:
    source = chat(store, 4)
    forked = store.load_session(store.fork_session(source.id, at))
    assert ids(forked) == ids(source)[:at]
    assert forked.head is (None if at == 0 else forked.turns[-1])
    # A first turn of an empty fork starts a tree of its own.
    turn = add(store, forked, "go")
    assert turn.parent_id == (ids(source)[at - 1] if at else None)
    assert ids(store.load_session(source.id)) == ids(source)


@pytest.mark.parametrize("at", [-1, 5, 1000])
def test_fork_beyond_the_path_is_refused_and_writes_nothing(store: Store, at: int) -> None:
    source = chat(store, 4)
    count = store.count_sessions()
    with pytest.raises(TurnNotFound, match="has 4 turns"):
        store.fork_session(source.id, at)
    assert store.count_sessions() == count
    with pytest.raises(SessionNotFound):
        store.fork_session("9999", 1)


def test_a_fork_follows_the_current_branch_of_the_source(store: Store) -> None:
    source = chat(store, 3)
    first, second, _ = source.turns
    other = add(store, source, "second, again", after=first)  # the current path is now 1, other
    forked = store.load_session(store.fork_session(source.id, 2))
    assert ids(forked) == [first.id, other.id]
    assert second.id not in [t.id for t in store.load_tree(forked.id).turns]


# -- branches -------------------------------------------------------------------------------------------


def test_siblings_branches_and_switching_within_a_session(store: Store) -> None:
    session = chat(store, 3)
    t1, t2, t3 = session.turns
    b = add(store, session, "two b", after=t1)
    b_child = add(store, session, "three after b")
    c = add(store, session, "two c", after=t1)

    assert store.siblings(session.id, t2.id) == [t2.id, b.id, c.id]
    assert store.siblings(session.id, c.id) == [t2.id, b.id, c.id]
    assert store.siblings(session.id, t1.id) == [t1.id]
    loaded = store.load_session(session.id)
    assert ids(loaded) == [t1.id, c.id]
    assert loaded.branches == {c.id: Branch(3, 3)}
    assert store.path_branches(session.id) == loaded.branches

    store.switch_branch(session.id, b.id)  # the newest path through b goes on to its child
    loaded = store.load_session(session.id)
    assert ids(loaded) == [t1.id, b.id, b_child.id]
    assert loaded.branches == {b.id: Branch(2, 3)}
    assert store.path_branches(session.id) == loaded.branches

    store.switch_branch(session.id, t2.id)
    loaded = store.load_session(session.id)
    assert ids(loaded) == [t1.id, t2.id, t3.id]
    assert loaded.branches == {t2.id: Branch(1, 3)}
    assert store.list_sessions()[0].turn_count == 3

    # A deeper sibling: branches at two levels of one path.
    t3b = add(store, loaded, "three, again", after=loaded.turns[1])
    loaded = store.load_session(session.id)
    assert loaded.branches == {t2.id: Branch(1, 3), t3b.id: Branch(2, 2)}
    assert store.path_branches(session.id) == loaded.branches
    # Only the last part of the path: its branches too.
    assert store.load_session(session.id, last=1).branches == {t3b.id: Branch(2, 2)}


def test_switching_picks_the_newest_path_through_a_turn(store: Store) -> None:
    session = chat(store, 2)
    t1, t2 = session.turns
    old = add(store, session, "three")
    add(store, session, "four")
    newer = add(store, session, "three b", after=t2)
    store.switch_branch(session.id, t1.id)
    assert store.load_session(session.id).head.id == newer.id
    store.switch_branch(session.id, old.id)
    assert len(store.load_session(session.id).turns) == 4


def test_first_turns_can_be_siblings(store: Store) -> None:
    session = chat(store, 2)
    # A sibling of the first turn follows nothing: the path is cut to empty first.
    session.turns.clear()
    root_b = add(store, session, "start over")
    assert root_b.parent_id is None
    loaded = store.load_session(session.id)
    assert ids(loaded) == [root_b.id] and loaded.branches == {root_b.id: Branch(2, 2)}
    assert store.siblings(session.id, root_b.id)[1] == root_b.id


# -- branches inside a fork -------------------------------------------------------------------------------


def test_a_branch_inside_a_fork_at_a_shared_turn(store: Store) -> None:
    source = chat(store, 5)
    s = source.turns
    fork_id = store.fork_session(source.id, 4)
    forked = store.load_session(fork_id)
    # Edit the fork's turn 3 (a turn it shares with the source): a sibling that is the fork's own.
    mine = add(store, forked, "three, in the fork", after=forked.turns[1])

    loaded = store.load_session(fork_id)
    assert ids(loaded) == [s[0].id, s[1].id, mine.id]
    assert loaded.branches == {mine.id: Branch(2, 2)}
    assert store.path_branches(fork_id) == loaded.branches
    assert store.siblings(fork_id, mine.id) == [s[2].id, mine.id]
    assert store.siblings(fork_id, s[2].id) == [s[2].id, mine.id]

    # Back to the shared turn: the fork's whole shared path comes back (not the source's turn 5).
    store.switch_branch(fork_id, s[2].id)
    loaded = store.load_session(fork_id)
    assert ids(loaded) == [t.id for t in s[:4]]
    assert loaded.branches == {s[2].id: Branch(1, 2)}
    # The source sees none of it.
    source_now = store.load_session(source.id)
    assert ids(source_now) == [t.id for t in s] and source_now.branches == {}
    assert store.siblings(source.id, s[2].id) == [s[2].id]

    # The whole tree of the fork: its own turn and every turn it shares, on either branch.
    store.switch_branch(fork_id, mine.id)
    assert {t.id for t in store.load_tree(fork_id).turns} == {*(t.id for t in s[:4]), mine.id}
    # With the source gone, the shared branch the fork is not on survives as well.
    store.delete_session(source.id)
    store.switch_branch(fork_id, s[2].id)
    assert ids(store.load_session(fork_id)) == [t.id for t in s[:4]]
    assert store.siblings(fork_id, s[2].id) == [s[2].id, mine.id]


# -- deleting -----------------------------------------------------------------------------------------------


def test_deleting_the_source_keeps_every_fork_whole(store: Store) -> None:
    source = chat(store, 6)
    a_id = store.fork_session(source.id, 4, "a")
    a = store.load_session(a_id)
    a_own = add(store, a, "a's own")
    b_id = store.fork_session(source.id, 2, "b")
    c_id = store.fork_session(a_id, 5, "c")  # a fork of a fork: shares the source's 4 and a's 1
    trees = {sid: store.load_tree(sid) for sid in (a_id, b_id, c_id)}
    wanted = {sid: [t.to_dict() for t in trees[sid].session.turns] for sid in trees}

    store.delete_session(source.id)
    with pytest.raises(SessionNotFound):
        store.load_session(source.id)
    for sid, turns in wanted.items():
        loaded = store.load_session(sid)
        assert [t.to_dict() for t in loaded.turns] == turns, sid
        assert [t.id for t in store.load_tree(sid).turns] == [t.id for t in trees[sid].turns]
    # What no fork builds on is gone; what they do is kept once.
    assert not store.has_turn(source.turns[5].id) and not store.has_turn(source.turns[4].id)
    dump = table_dump(store.path)
    assert len(dump["turns"]) == 5 and len(dump["steps"]) == 5
    assert {h.turn_id for h in store.search("q3")} == {source.turns[2].id}

    # Delete the middle fork too: the fork of the fork still has all five.
    store.delete_session(a_id)
    assert [t.to_dict() for t in store.load_session(c_id).turns] == wanted[c_id]
    assert ids(store.load_session(c_id))[-1] == a_own.id
    assert [t.to_dict() for t in store.load_session(b_id).turns] == wanted[b_id]
    # And a new turn in what is left still works, on its own.
    c = store.load_session(c_id)
    add(store, c, "still going")
    assert len(store.load_session(c_id).turns) == 6


def test_deleting_the_source_does_not_give_a_fork_turns_it_never_had(store: Store) -> None:
    source = chat(store, 6)
    s = source.turns
    b_id = store.fork_session(source.id, 2, "b")
    b_own = add(store, store.load_session(b_id), "b's own")
    c_id = store.fork_session(source.id, 4, "c")
    c = store.load_session(c_id)
    c_own = add(store, c, "c's own", after=c.turns[1])
    views = {}
    for sid in (b_id, c_id):
        loaded = store.load_session(sid)
        views[sid] = (ids(loaded), loaded.branches, sorted(t.id for t in store.load_tree(sid).turns))

    store.delete_session(source.id)
    for sid in (b_id, c_id):
        loaded = store.load_session(sid)
        assert (ids(loaded), loaded.branches, sorted(t.id for t in store.load_tree(sid).turns)) == views[sid], sid
    # b never had the source's turns 3 and 4: switching at its turn 2 stays on its own branch.
    store.switch_branch(b_id, s[1].id)
    assert ids(store.load_session(b_id)) == [s[0].id, s[1].id, b_own.id]
    assert store.siblings(b_id, b_own.id) == [b_own.id]
    # c keeps both of its branches at turn 3.
    assert store.siblings(c_id, c_own.id) == [s[2].id, c_own.id]
    store.switch_branch(c_id, s[2].id)
    assert ids(store.load_session(c_id)) == [t.id for t in s[:4]]


def test_deleting_a_fork_leaves_the_source_alone(store: Store) -> None:
    source = chat(store, 3)
    before = store.load_session(source.id).to_dict()
    fork_id = store.fork_session(source.id, 2)
    add(store, store.load_session(fork_id), "fork turn")
    store.delete_session(fork_id)
    assert store.load_session(source.id).to_dict() == before
    assert len(table_dump(store.path)["turns"]) == 3


def test_forks_made_before_base_was_kept_find_it_on_upgrade(store: Store) -> None:
    source = chat(store, 5)
    s = source.turns
    at_head = store.fork_session(source.id, 3)
    grown = store.fork_session(source.id, 4)
    add(store, store.load_session(grown), "grown's own")
    path = store.path
    store.close()
    conn = sqlite3.connect(path)
    conn.execute("ALTER TABLE sessions DROP COLUMN base")  # what the previous schema had
    conn.execute("PRAGMA user_version = 2")
    conn.commit()
    conn.close()
    with Store(path) as upgraded:
        mine = add(upgraded, (g := upgraded.load_session(grown)), "three, in grown", after=g.turns[1])
        upgraded.switch_branch(grown, s[2].id)
        assert ids(upgraded.load_session(grown))[:4] == [t.id for t in s[:4]]
        assert upgraded.siblings(grown, mine.id) == [s[2].id, mine.id]
        assert ids(upgraded.load_session(at_head)) == [t.id for t in s[:3]]
        assert upgraded.siblings(source.id, s[2].id) == [s[2].id]
