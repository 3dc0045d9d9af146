"""SIGTERM and SIGHUP during `glmchat ask`: the stream stops, the partial turn is saved as stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.glm_server import Reply
from tests.test_cli import ROOT, ZAI_KEY, store_turns


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)], ids=["TERM", "HUP"])
def test_a_stop_signal_saves_the_partial_turn_and_exits_128_plus_n(glm_server, glmchat_home: Path, sig, code) -> None:
    content = [f"w{i:04d} " for i in range(2000)]
    glm_server.enqueue(Reply(reasoning="", content=content, pace=200.0, chunk_tokens=1))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(GLMCHAT_HOME=str(glmchat_home), PYTHONPATH=str(ROOT), ZAI_API_KEY=ZAI_KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "glmchat", "ask", "--no-think", "--base-url", f"{glm_server.url}/zai", "long please"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert glm_server.wait_for(lambda s: s.chat_requests() and len(s.last.chunk_times) >= 40, timeout=20)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == code, err.decode()
    text = err.decode()
    assert text.count("\n") == 1 and f"stopped by {sig.name}" in text and "session 1" in text
    assert "Traceback" not in text
    [turn] = store_turns(glmchat_home)
    assert turn.status == "stopped" and turn.finished_at is not None
    assert turn.content and turn.content == out.decode()  # what was printed is what was kept
    assert len(turn.content) < len("".join(content))
    # The host saw the connection close: the stream was stopped, not left running.
    assert glm_server.wait_for(lambda s: s.last.disconnected or s.last.finished_at is None, timeout=10)
