"""End to end: the installed glmchat in tmux runs a tool turn with the loopback MCP server, asking first.

The session (stored beforehand with the "kit" server chosen) sends a message;
the model calls a tool; the approval dialog appears; "y" allows it; the
answer and the step's row show; the MCP server's call log proves the call ran.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmchat.session import Session
from glmchat.store import Store
from tests.e2e.terminal import GlmServerProcess, Terminal, app_env, glmchat_command
from tests.glm_server import Reply
from tests.mcp_server import read_call_log, stdio_command

pytestmark = [pytest.mark.slow, pytest.mark.tmux]


def test_a_tool_call_is_approved_in_the_dialog_and_its_step_is_shown(
    server: GlmServerProcess, terminal: Terminal, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    log = tmp_path / "calls.jsonl"
    (home / "config.toml").write_text(f"[mcp.kit]\ncommand = {json.dumps(stdio_command(log))}\n", encoding="utf-8")
    with Store.open(home) as store:
        session = Session(title="tools", host="zai", tool_servers=["kit"])
        store.save_session(session, turns=False)
    server.enqueue(
        Reply(reasoning="Adding. ", content="", tool_calls=[{"name": "kit__add", "arguments": '{"a": 40, "b": 2}'}]).to_dict(),
        Reply(reasoning="Got it. ", content="The sum is 42.").to_dict(),
    )
    terminal.start([*glmchat_command(), "--host", "zai", "--base-url", f"{server.url}/zai", "--session", session.id],
                   app_env(home))
    terminal.wait_for("the first frame", lambda s: "Message GLM" in s or "Thinking:" in s, timeout=30)
    terminal.type("What is 40 + 2?")
    terminal.press("Enter")
    screen = terminal.wait_for("the approval dialog", lambda s: "wants to call kit__add" in s, timeout=60)
    assert '"a": 40' in screen and "Allow once" in screen
    assert read_call_log(log) == []  # nothing runs before the user says so
    terminal.press("y")
    screen = terminal.wait_for("the answer", lambda s: "The sum is 42." in s, timeout=60)
    assert "Step 1 · kit__add" in screen and "✓" in screen
    assert [c["arguments"] for c in read_call_log(log)] == [{"a": 40, "b": 2}]
    requests = server.requests()
    assert len(requests) == 2 and requests[1]["replay_problems"] == [] and requests[1]["replayed_steps"] == 1
    tool_messages = [m for m in json.loads(requests[1]["body"])["messages"] if m["role"] == "tool"]
    assert [m["content"] for m in tool_messages] == ["42.0"]  # the server adds floats
    terminal.press("C-q")
    terminal.wait_for("glmchat to exit", lambda s: terminal.dead(), timeout=30)
