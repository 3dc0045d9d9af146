"""Crashes: unexpected errors leave a scrubbed log, a SIGKILL mid-stream loses at most the last moment,
and two processes on one data dir lose nothing."""

from __future__ import annotations

import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.glm_server import Reply

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-crash-test-0011223344556677SECRET"


def run_with_fault(home: Path, fault: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run glmchat's main() in a fresh interpreter after `fault` (Python source) broke something in it."""
    code = f"import sys\n{fault}\nfrom glmchat.cli import main\nsys.exit(main({args!r}))\n"
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full_env.update(GLMCHAT_HOME=str(home), PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=30)


def test_unexpected_error_is_one_line_and_a_scrubbed_log(glmchat_home: Path) -> None:
    env_key = "csk-env-key-aaaabbbbccccdddd9999"
    (glmchat_home / "config.toml").write_text(f'[keys]\nzai = "{KEY}"\n')
    os.chmod(glmchat_home / "config.toml", 0o600)
    fault = (
        "import glmchat.config as c, os\n"
        "def broken(config):\n"
        "    raise RuntimeError('boom with ' + config.keys['zai'] + ' and ' + os.environ['CEREBRAS_API_KEY'])\n"
        "c.config_to_dict = broken\n"
    )
    proc = run_with_fault(glmchat_home, fault, ["config", "show"], env={"CEREBRAS_API_KEY": env_key})
    assert proc.returncode == 1
    log_file = glmchat_home / "glmchat.log"
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("glmchat: unexpected error (RuntimeError: boom with")
    assert str(log_file) in proc.stderr
    assert "Traceback" not in proc.stderr
    log = log_file.read_text()
    assert "Traceback" in log and "RuntimeError: boom with" in log and "broken" in log
    for secret in (KEY, env_key):
        assert secret not in proc.stderr + proc.stdout
        assert secret not in log
        assert secret[-4:] in log  # masked, not dropped: the reader still sees which key it was
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


def test_config_error_is_exit_2_without_log(glmchat_home: Path) -> None:
    fault = (
        "import glmchat.config as c\n"
        "from glmchat.errors import ConfigError\n"
        "def broken(*a, **k):\n"
        "    raise ConfigError('config.toml line 7: something specific')\n"
        "c.config_to_dict = broken\n"
    )
    proc = run_with_fault(glmchat_home, fault, ["config", "show"])
    assert proc.returncode == 2
    assert proc.stderr == "glmchat: config.toml line 7: something specific\n"
    assert not (glmchat_home / "glmchat.log").exists()


# -- SIGKILL mid-stream and two writers (real processes against the loopback server) ----------------

ZAI_KEY = "sk-zai-crash-0123456789abcdefKEYEND"


def ask_process(server, home: Path, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(GLMCHAT_HOME=str(home), PYTHONPATH=str(ROOT), ZAI_API_KEY=ZAI_KEY)
    return subprocess.Popen(
        [sys.executable, "-m", "glmchat", "ask", "--base-url", f"{server.url}/zai", *args],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )


@pytest.fixture
def reaper():
    """Processes started by a test; killed and reaped whatever happens."""
    procs: list[subprocess.Popen] = []
    yield procs
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)


def finished_session(home: Path) -> tuple[str, list[dict]]:
    """A session with two finished turns, written in-process; returns its id and the turns as dicts."""
    from glmchat.protocol.events import ContentDelta, ReasoningDelta
    from glmchat.session import Session
    from glmchat.store import Store

    session = Session(host="zai", model="glm-4.7")
    with Store.open(home) as store:
        for n in (1, 2):
            turn = session.new_turn(f"question {n}", True)
            store.begin_turn(session, turn)
            turn.apply(ReasoningDelta(f"reasoning {n}\r\n  kept exactly  "))
            turn.apply(ContentDelta(f"answer {n}\n"))
            turn.finish()
            store.finish_turn(turn)
    return session.id, [t.to_dict() for t in session.turns]


def test_sigkill_mid_stream_loses_at_most_half_a_second(glm_server, glmchat_home: Path, reaper) -> None:
    from glmchat.store import DB_NAME, Store

    session_id, before = finished_session(glmchat_home)
    reasoning = [f"r{i:03d} " for i in range(40)]
    content = [f"c{i:04d} " for i in range(3000)]
    pace = 200.0
    glm_server.enqueue(Reply(reasoning=reasoning, content=content, pace=pace, chunk_tokens=1))
    proc = ask_process(glm_server, glmchat_home, "--session", "1", "a long answer please")
    reaper.append(proc)

    # Wait until the store holds a good part of the answer: the stream is under way and saving.
    deadline = time.monotonic() + 20
    with Store(glmchat_home / DB_NAME, verify=False) as watcher:
        while True:
            assert proc.poll() is None, proc.communicate()[1]
            turns = watcher.load_session(session_id).turns
            if len(turns) == 3 and len(turns[2].content) >= 200 * len(content[0]):
                break
            assert time.monotonic() < deadline, "the streaming turn never showed progress in the store"
            time.sleep(0.05)
    killed_at = time.monotonic()
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert proc.returncode == -signal.SIGKILL

    record = glm_server.last
    sent_tokens = (reasoning + content)[: len(record.chunk_times)]
    must_have = sum(1 for t in record.chunk_times if t <= killed_at - 0.5)

    with Store.open(glmchat_home) as store:  # a new start: recovery runs here
        session = store.load_session(session_id)
    assert [t.to_dict() for t in session.turns[:2]] == before  # finished turns untouched
    turn = session.turns[2]
    assert turn.status == "interrupted"
    assert turn.reasoning == "".join(reasoning)
    sent_content = "".join(sent_tokens[len(reasoning):])
    assert sent_content.startswith(turn.content)  # a prefix of what was sent: nothing invented
    kept_tokens = len(reasoning) + len(turn.content) // len(content[0])
    assert kept_tokens >= must_have, (
        f"kept {kept_tokens} tokens; the server had sent {must_have} more than 0.5 s before the kill"
    )
    with sqlite3.connect(glmchat_home / DB_NAME) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_processes_at_once_lose_no_turn(glm_server, glmchat_home: Path, reaper) -> None:
    from glmchat.store import Store

    session_id, _ = finished_session(glmchat_home)
    # Slow enough that all four streams overlap.
    glm_server.default = Reply(pace=100.0, chunk_tokens=2)
    procs = [
        ask_process(glm_server, glmchat_home, "new session A"),
        ask_process(glm_server, glmchat_home, "new session B"),
        ask_process(glm_server, glmchat_home, "--session", "1", "same session X"),
        ask_process(glm_server, glmchat_home, "--session", session_id[:8], "same session Y"),
    ]
    reaper.extend(procs)
    for proc in procs:
        out, err = proc.communicate(timeout=30)
        assert proc.returncode == 0, err.decode()
        assert out.decode().startswith("You said: ")
    assert len(glm_server.chat_requests()) == 4
    with Store.open(glmchat_home) as store:
        summaries = store.list_sessions()
        assert sorted(s.title for s in summaries) == ["new session A", "new session B", "question 1"]
        assert sorted(s.number for s in summaries) == [1, 2, 3]
        # Neither turn is lost. Streams that overlapped both went on from the same turn (two
        # branches); one that started after the other had finished followed it.
        shared = store.load_tree(session_id)
        first, second = shared.turns[:2]
        assert [first.user_text, second.user_text] == ["question 1", "question 2"]
        x, y = sorted(shared.turns[2:], key=lambda t: t.user_text)
        assert [x.user_text, y.user_text] == ["same session X", "same session Y"]
        assert (x.parent_id, y.parent_id) in {(second.id, second.id), (second.id, x.id), (y.id, second.id)}
        for summary in summaries:
            for turn in store.load_session(summary.id).turns:
                assert turn.status == "complete"
                assert turn.content.startswith((f"You said: {turn.user_text}", "answer "))
