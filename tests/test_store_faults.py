"""The store under faults: bad files set aside, full and read-only disks, crashes, several processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from glmchat.store import database
from glmchat.errors import StorageError
from glmchat.protocol.events import ContentDelta, ReasoningDelta
from glmchat.session import Session, TurnStatus
from glmchat.store import DB_NAME, Store

REPO = Path(__file__).resolve().parent.parent


def saved_session(store: Store, texts: tuple[str, ...] = ("one", "two")) -> Session:
    session = Session(title="kept")
    for text in texts:
        turn = session.new_turn(text)
        turn.apply(ReasoningDelta(f"thinking about {text}"))
        turn.apply(ContentDelta(f"answer to {text}"))
        turn.finish()
        store.begin_turn(session, turn)
        store.finish_turn(turn)
    return session


def set_aside_files(home: Path, kind: str) -> list[Path]:
    return sorted(
        p for p in home.iterdir()
        if p.name.startswith(f"{DB_NAME}.{kind}-") and not p.name.endswith(("-wal", "-shm"))
    )


# -- bad files ---------------------------------------------------------------------------------


def test_garbage_file_is_set_aside(glmchat_home: Path) -> None:
    db = glmchat_home / DB_NAME
    garbage = b"this is not a database\n" * 100
    db.write_bytes(garbage)
    (glmchat_home / f"{DB_NAME}-wal").write_bytes(b"old wal")
    with Store.open(glmchat_home) as store:
        [moved] = set_aside_files(glmchat_home, "corrupt")
        assert moved.read_bytes() == garbage
        assert Path(f"{moved}-wal").read_bytes() == b"old wal"  # kept with its main file
        [warning] = store.warnings
        assert str(moved) in warning and "\n" not in warning
        session = saved_session(store)  # the fresh store works
    with Store.open(glmchat_home) as store:
        assert store.warnings == []
        assert store.load_session(session.id).title == "kept"


def test_truncated_file_is_set_aside(glmchat_home: Path) -> None:
    with Store.open(glmchat_home) as store:
        saved_session(store, tuple(f"turn {i} " * 200 for i in range(30)))
    db = glmchat_home / DB_NAME
    assert not (glmchat_home / f"{DB_NAME}-wal").exists()  # checkpointed on close
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2])
    with Store.open(glmchat_home, verify=False) as store:  # found by the cheap header check alone
        [moved] = set_aside_files(glmchat_home, "corrupt")
        assert "truncated" in store.warnings[0] and str(moved) in store.warnings[0]
        assert moved.stat().st_size == len(data) // 2
        assert store.list_sessions() == []


def test_damaged_page_is_found_by_quick_check(glmchat_home: Path) -> None:
    with Store.open(glmchat_home) as store:
        saved_session(store, tuple(f"turn {i} " * 200 for i in range(30)))
    db = glmchat_home / DB_NAME
    data = bytearray(db.read_bytes())
    page = len(data) // 4096 // 2
    data[page * 4096 : page * 4096 + 200] = b"\xff" * 200
    db.write_bytes(bytes(data))
    with Store.open(glmchat_home) as store:
        assert len(set_aside_files(glmchat_home, "corrupt")) == 1
        assert "malformed" in store.warnings[0] or "integrity check failed" in store.warnings[0]


def test_empty_file_is_a_new_database(glmchat_home: Path) -> None:
    (glmchat_home / DB_NAME).write_bytes(b"")
    with Store.open(glmchat_home) as store:
        assert store.warnings == []
        saved_session(store)


def test_newer_schema_is_set_aside(glmchat_home: Path) -> None:
    with Store.open(glmchat_home) as store:
        saved_session(store)
    conn = sqlite3.connect(glmchat_home / DB_NAME)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with Store.open(glmchat_home) as store:
        [moved] = set_aside_files(glmchat_home, "newer")
        assert "newer glmchat" in store.warnings[0] and str(moved) in store.warnings[0]
        assert store.list_sessions() == []
    conn = sqlite3.connect(moved)  # the data is still there for the newer glmchat
    assert conn.execute("SELECT count(*) FROM turns").fetchone() == (2,)
    conn.close()


def test_foreign_database_is_set_aside(glmchat_home: Path) -> None:
    conn = sqlite3.connect(glmchat_home / DB_NAME)
    conn.execute("CREATE TABLE sessions (whatever TEXT)")
    conn.commit()
    conn.close()
    with Store.open(glmchat_home) as store:
        assert "not a glmchat database" in store.warnings[0]
        saved_session(store)


def test_set_aside_twice_in_a_second_keeps_both(glmchat_home: Path) -> None:
    for content in (b"garbage one" * 20, b"garbage two" * 20):
        (glmchat_home / DB_NAME).write_bytes(content)
        Store.open(glmchat_home).close()
    kept = {p.read_bytes()[:11] for p in set_aside_files(glmchat_home, "corrupt")}
    assert kept == {b"garbage one", b"garbage two"}


def test_unusable_data_dir_raises_storage_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(StorageError, match="data folder"):
        Store.open(blocker / "data")


def test_database_path_that_is_a_folder_raises_storage_error(glmchat_home: Path) -> None:
    (glmchat_home / DB_NAME).mkdir()
    with pytest.raises(StorageError, match="Cannot read the database"):
        Store.open(glmchat_home)
    assert (glmchat_home / DB_NAME).is_dir()  # left as it was


def test_integrity_check(glmchat_home: Path) -> None:
    with Store.open(glmchat_home) as store:
        saved_session(store)
        assert store.check() == "ok"


# -- full and read-only disks -----------------------------------------------------------------------


def test_disk_full_raises_and_keeps_data(glmchat_home: Path) -> None:
    store = Store.open(glmchat_home)
    session = saved_session(store)
    before = session.to_dict()
    pages = store._db._conn.execute("PRAGMA page_count").fetchone()[0]
    store._db._conn.execute(f"PRAGMA max_page_count = {pages}")

    big = session.new_turn("x" * 200_000)
    with pytest.raises(StorageError, match="full"):
        store.begin_turn(session, big)
    session.turns.remove(big)
    with pytest.raises(StorageError, match="full"):
        store.save_session(Session(title="y" * 200_000))

    with Store.open(glmchat_home) as other:  # nothing half-written
        assert other.load_session(session.id).to_dict() == before
        assert other.count_sessions() == 1
    store.close()


def test_disk_full_during_stream_loses_nothing_once_space_returns(glmchat_home: Path) -> None:
    store = Store.open(glmchat_home)
    session = Session()
    turn = session.new_turn("q")
    store.begin_turn(session, turn)
    turn.apply(ReasoningDelta("small "))
    store.save_progress(turn)
    pages = store._db._conn.execute("PRAGMA page_count").fetchone()[0]
    store._db._conn.execute(f"PRAGMA max_page_count = {pages}")
    turn.apply(ReasoningDelta("big " * 100_000))
    with pytest.raises(StorageError, match="full"):
        store.save_progress(turn)
    store._db._conn.execute("PRAGMA max_page_count = 1073741823")
    turn.apply(ReasoningDelta("end"))
    store.save_progress(turn)  # writes what the failed save could not
    with Store.open(glmchat_home) as other:
        assert other.load_session(session.id).turns[0].reasoning == "small " + "big " * 100_000 + "end"
    store.close()


def test_read_only_raises_and_keeps_data(glmchat_home: Path) -> None:
    store = Store.open(glmchat_home)
    session = saved_session(store)
    before = session.to_dict()
    store._db._conn.execute("PRAGMA query_only = 1")
    turn = session.new_turn("three")
    with pytest.raises(StorageError, match="read-only") as info:
        store.begin_turn(session, turn)
    assert str(store.path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(StorageError, match="read-only"):
        store.rename_session(session.id, "new")
    assert store.load_session(session.id).title == "kept"  # reading still works
    store.close()
    with Store.open(glmchat_home) as other:
        assert other.load_session(session.id).to_dict() == before


def test_read_only_connection(glmchat_home: Path) -> None:
    store = Store.open(glmchat_home)
    session = saved_session(store)
    store._db._conn.close()
    store._db._conn = sqlite3.connect(f"file:{store.path}?mode=ro", uri=True, isolation_level=None,
                                  check_same_thread=False)
    with pytest.raises(StorageError, match="read-only"):
        store.delete_session(session.id)
    assert len(store.load_session(session.id).turns) == 2
    store.close()


# -- locking -------------------------------------------------------------------------------------


def test_waits_for_another_writer(glmchat_home: Path) -> None:
    store = Store.open(glmchat_home)
    other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")
    releaser = threading.Timer(0.3, lambda: other.execute("COMMIT"))
    releaser.start()
    saved_session(store)  # blocks until the other writer commits
    releaser.join()
    other.close()
    assert store.list_sessions()[0].turn_count == 2
    store.close()


def test_lock_held_too_long_is_a_storage_error(glmchat_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(database, "BUSY_TIMEOUT_MS", 50)
    monkeypatch.setattr(database, "BUSY_RETRIES", 1)
    store = Store.open(glmchat_home)
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(StorageError, match="locked"):
            saved_session(store)
    finally:
        other.execute("ROLLBACK")
        other.close()
    saved_session(store)
    store.close()


# -- crashes and other processes ---------------------------------------------------------------------

CHILD = r"""
import os, signal, sys
from glmchat.store import Store
from glmchat.session import Session, TurnStatus
from glmchat.protocol.events import ReasoningDelta, ContentDelta

mode, db, session_id = sys.argv[1:4]
store = Store(db)
session = Session(id=session_id, title="crash")
done = session.new_turn("finished turn")
done.apply(ContentDelta("complete answer"))
done.finish()
store.begin_turn(session, done)
store.finish_turn(done)

turn = session.new_turn("streaming turn")
store.begin_turn(session, turn)
turn.apply(ReasoningDelta("reasoning \r\n saved "))
store.save_progress(turn)
turn.apply(ContentDelta("answer\x00 saved"))
turn.apply(ReasoningDelta("more"))
store.save_progress(turn)
turn.apply(ContentDelta(" never saved"))
print("READY", turn.id, flush=True)
if mode == "kill-self":
    os.kill(os.getpid(), signal.SIGKILL)
elif mode == "exit":
    os._exit(3)
sys.stdin.readline()  # "wait": stay alive until told (or killed)
"""


def start_child(mode: str, db: Path, session_id: str) -> tuple[subprocess.Popen[str], str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, mode, str(db), session_id],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )
    line = proc.stdout.readline().split()
    assert line and line[0] == "READY", line
    return proc, line[1]


def check_recovered(store: Store, session_id: str, turn_id: str) -> None:
    assert turn_id in store.recovered
    session = store.load_session(session_id)
    done, turn = session.turns
    assert done.status == TurnStatus.COMPLETE and done.content == "complete answer"
    assert turn.id == turn_id and turn.status == TurnStatus.INTERRUPTED
    assert turn.reasoning == "reasoning \r\n saved more"
    assert turn.content == "answer\x00 saved"
    assert turn.finished_at is not None and turn.first_content_at is not None
    assert store._db._conn.execute("SELECT count(*) FROM chunks").fetchone() == (0,)
    assert store.check() == "ok"


@pytest.mark.parametrize("mode", ["kill-self", "exit"])
def test_crash_mid_stream_is_recovered(glmchat_home: Path, mode: str) -> None:
    session_id = "c" * 32
    proc, turn_id = start_child(mode, glmchat_home / DB_NAME, session_id)
    proc.wait(timeout=10)
    with Store.open(glmchat_home) as store:
        assert store.recovered == [turn_id]
        check_recovered(store, session_id, turn_id)
    with Store.open(glmchat_home) as store:
        assert store.recovered == []  # once


def test_turn_streaming_in_a_live_process_is_left_alone(glmchat_home: Path) -> None:
    session_id = "d" * 32
    proc, turn_id = start_child("wait", glmchat_home / DB_NAME, session_id)
    try:
        with Store.open(glmchat_home) as store:
            assert store.recovered == []
            turn = store.load_session(session_id).turns[1]
            assert turn.status == TurnStatus.STREAMING and turn.content == "answer\x00 saved"
            proc.send_signal(signal.SIGKILL)
            # Not yet reaped: a zombie counts as gone.
            deadline = time.monotonic() + 10
            while turn_id not in store.recover():
                assert time.monotonic() < deadline
                time.sleep(0.02)
            check_recovered(store, session_id, turn_id)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_turn_of_another_machine_is_left_alone(glmchat_home: Path) -> None:
    store = Store.open(glmchat_home)
    session = Session()
    turn = session.new_turn("q")
    store.begin_turn(session, turn)
    store._db._conn.execute("UPDATE turns SET owner_host = 'elsewhere', owner_pid = 999999999")
    store.close()
    with Store.open(glmchat_home) as other:
        assert other.recovered == []
        assert other.load_session(session.id).turns[0].status == TurnStatus.STREAMING


def test_dead_owner_with_reused_pid_is_recovered(glmchat_home: Path) -> None:
    store = Store.open(glmchat_home)
    session = Session()
    turn = session.new_turn("q")
    store.begin_turn(session, turn)
    turn.apply(ContentDelta("saved"))
    store.save_progress(turn)
    # Our own pid, but a different start time: the pid was reused by a new process.
    store._db._conn.execute("UPDATE turns SET owner_start = '1'")
    if database.Owner.current().start is None:
        pytest.skip("process start times are not available here")
    store.close()
    with Store.open(glmchat_home) as other:
        assert other.recovered == [turn.id]
        assert other.load_session(session.id).turns[0].content == "saved"


WRITER = r"""
import sys
from glmchat.store import Store
from glmchat.session import Session, TurnStatus
from glmchat.protocol.events import ReasoningDelta, ContentDelta

db, shared_id, own_id, name, count = sys.argv[1:6]
store = Store(db)
shared = Session(id=shared_id, title="shared")
own = Session(id=own_id, title=name)
print("READY", flush=True)
sys.stdin.readline()
for i in range(int(count)):
    for session in (shared, own):
        turn = session.new_turn(f"{name} {i}")
        store.begin_turn(session, turn)
        turn.apply(ReasoningDelta(f"{name} thinks {i}"))
        store.save_progress(turn)
        turn.apply(ContentDelta(f"{name} answers {i}"))
        store.save_progress(turn)
        turn.finish()
        store.finish_turn(turn)
store.close()
print("DONE", flush=True)
"""


def test_two_processes_lose_no_turn(glmchat_home: Path) -> None:
    db = glmchat_home / DB_NAME
    Store(db).close()
    shared_id = "e" * 32
    count = 12
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = []
    for name, own_id in (("alpha", "a" * 32), ("beta", "b" * 32)):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), shared_id, own_id, name, str(count)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )
        assert proc.stdout.readline().strip() == "READY"
        procs.append(proc)
    for proc in procs:  # start together
        proc.stdin.write("go\n")
        proc.stdin.flush()
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0 and out.strip() == "DONE"

    with Store(db) as store:
        # Each process went on from its own last turn: two branches of one session, every turn kept.
        shared = store.load_tree(shared_id)
        assert len(shared.turns) == 2 * count
        for name in ("alpha", "beta"):
            last = [t for t in shared.turns if t.user_text == f"{name} {count - 1}"][0]
            mine = shared.path_to(last.id)
            assert [t.user_text for t in mine] == [f"{name} {i}" for i in range(count)]  # order kept
            assert all(t.status == TurnStatus.COMPLETE for t in mine)
            assert [t.content for t in mine] == [f"{name} answers {i}" for i in range(count)]
            own = store.load_session(name[0] * 32)
            assert [t.reasoning for t in own.turns] == [f"{name} thinks {i}" for i in range(count)]
        seqs = [row[0] for row in store._db._conn.execute("SELECT seq FROM turns WHERE session_id = ?", (shared_id,))]
        assert len(set(seqs)) == 2 * count
        # The shared session's current path is one process's branch.
        assert {s.id: s.turn_count for s in store.list_sessions()} == {
            shared_id: count, "a" * 32: count, "b" * 32: count
        }
        assert store.check() == "ok"
