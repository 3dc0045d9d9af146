"""The database, its -wal/-shm files and exports are private (0600), whatever the umask or folder mode."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.glm_server import Reply
from tests.test_cli import ROOT, ZAI_KEY


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def run_open(*args: str, home: Path) -> subprocess.CompletedProcess:
    """`python -m glmchat ARGS` under umask 000 (every file would be world-writable by default)."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(GLMCHAT_HOME=str(home), PYTHONPATH=str(ROOT), ZAI_API_KEY=ZAI_KEY)
    return subprocess.run([sys.executable, "-m", "glmchat", *args], cwd=ROOT, env=env, capture_output=True,
                          timeout=60, preexec_fn=lambda: os.umask(0))  # noqa: PLW1509 - test only


def test_database_side_files_and_exports_are_0600_under_umask_000(glm_server, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o755)
    os.chmod(home, 0o755)  # an existing, open data folder
    glm_server.enqueue(Reply(reasoning="r", content="private answer"))
    proc = run_open("ask", "--base-url", f"{glm_server.url}/zai", "hi", home=home)
    assert proc.returncode == 0, proc.stderr
    db = home / "glmchat.db"
    assert mode(db) == 0o600
    # Open it again from another process while this one holds it: WAL and shm files exist now.
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        conn.execute("SELECT count(*) FROM sessions").fetchone()
        for side in ("glmchat.db-wal", "glmchat.db-shm"):
            if (home / side).exists():
                assert mode(home / side) == 0o600, side
        for name, fmt in (("chat.md", "md"), ("chat.json", "json")):
            target = tmp_path / name
            proc = run_open("sessions", "export", "1", "--format", fmt, "-o", str(target), home=home)
            assert proc.returncode == 0, proc.stderr
            assert mode(target) == 0o600, name
        out_dir = tmp_path / "exports"
        out_dir.mkdir()
        assert run_open("sessions", "export", "1", "-o", str(out_dir), home=home).returncode == 0
        [written] = out_dir.iterdir()
        assert mode(written) == 0o600
    finally:
        conn.close()


def test_an_open_database_left_by_an_older_version_is_made_private(tmp_path: Path) -> None:
    from glmchat.store import Store

    home = tmp_path / "home"
    with Store.open(home):
        pass
    for path in home.glob("glmchat.db*"):
        if not path.name.endswith(".lock"):
            os.chmod(path, 0o644)
    proc = run_open("sessions", "list", home=home)
    assert proc.returncode == 0, proc.stderr
    for path in home.glob("glmchat.db*"):
        assert mode(path) == 0o600, path.name
