"""This process never drops the locks SQLite holds on the database.

Closing any descriptor of a file drops every POSIX lock the process holds on it,
SQLite's included. If that happens, another process that closes its connection
takes itself for the last one: it checkpoints and deletes the WAL under the
writer's feet, and the writer's next commits can be lost (this was seen: four
`glmchat ask` at once, a finished turn read back as interrupted).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from glmchat.session import Session
from glmchat.store import Store


def close_a_connection_elsewhere(path: Path) -> None:
    """Another process opens the database and closes it again (as a short `glmchat ask` does)."""
    script = "import sqlite3, sys; c = sqlite3.connect(sys.argv[1]); c.execute('SELECT count(*) FROM sessions'); c.close()"
    subprocess.run([sys.executable, "-c", script, str(path)], check=True, timeout=60)


def test_opening_the_file_again_in_this_process_keeps_the_wal_in_use(glmchat_home: Path) -> None:
    with Store.open(glmchat_home) as store:
        store.save_session(Session(title="first"))
        wal = store.path.with_name(store.path.name + "-wal")
        assert wal.exists()
        # What used to open and close the file by hand: a second store on it, and its checks.
        Store.open(glmchat_home).close()
        close_a_connection_elsewhere(store.path)
        assert wal.exists(), "the other process took itself for the last connection and removed the WAL"
        store.save_session(Session(title="second"))
    with Store.open(glmchat_home) as again:
        assert sorted(s.title for s in again.list_sessions()) == ["first", "second"]
