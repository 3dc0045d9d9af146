"""`glmchat ask --mcp`: a real subprocess, the loopback GLM server and the loopback MCP server over stdio."""

from __future__ import annotations

import json
from pathlib import Path

from glmchat.protocol.messages import STOPPED_CALL  # noqa: F401 - the words a stopped call replays with
from tests.glm_server import GlmServer, Reply
from tests.mcp_server import read_call_log, stdio_command
from tests.test_cli import ZAI_KEY, ask, store_turns

R1 = " I need the sum:\r\n\t漢字 🚀 "
R2 = "Now the note. "


def configure(home: Path, *, trusted: str = "[]") -> Path:
    log = home / "calls.jsonl"
    command = json.dumps(stdio_command(log))
    (home / "config.toml").write_text(f"[mcp.kit]\ncommand = {command}\ntrusted = {trusted}\n", encoding="utf-8")
    return log


def three_steps() -> list[Reply]:
    return [
        Reply(reasoning=R1, content="", tool_calls=[{"name": "kit__add", "arguments": '{"a": 2, "b": 0.5}'}]),
        Reply(reasoning=R2, content="Reading. ", tool_calls=[{"name": "kit__read_note", "arguments": '{"name":"todo"}'}]),
        Reply(reasoning="Done. ", content="2.5; water the plants."),
    ]


def test_ask_with_yes_runs_the_loop_answer_on_stdout_calls_on_stderr(glm_server: GlmServer, glmchat_home: Path) -> None:
    log = configure(glmchat_home)
    glm_server.enqueue(*three_steps())
    proc = ask(glm_server, glmchat_home, "--mcp", "kit", "--yes", "Sum and todo?", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Reading. 2.5; water the plants."  # piped: exactly what the model wrote
    lines = [line for line in proc.stderr.splitlines() if line.startswith("glmchat: tool ")]
    assert len(lines) == 2
    assert lines[0].startswith('glmchat: tool kit__add {"a": 2, "b": 0.5} → 2.5 (')
    assert lines[1].startswith('glmchat: tool kit__read_note {"name":"todo"} → water the plants reply to Ana')
    assert "I need the sum:" in proc.stderr and "Now the note." in proc.stderr  # reasoning on stderr
    assert [c["tool"] for c in read_call_log(log)] == ["add", "read_note"]
    assert all(r.replay_problems == [] for r in glm_server.chat_requests())
    assert ZAI_KEY not in proc.stderr + proc.stdout

    # -c continues with the whole tool history, every step exact.
    glm_server.enqueue(Reply(content="again"))
    proc = ask(glm_server, glmchat_home, "-c", "--mcp", "kit", "--yes", "and?", timeout=60)
    assert proc.returncode == 0, proc.stderr
    record = glm_server.last
    assert record.replay_problems == [] and record.replayed_steps == 3
    roles = [m["role"] for m in record.json["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "assistant", "user"]
    assert record.json["messages"][1]["reasoning_content"] == R1
    turns = store_turns(glmchat_home)
    assert [len(t.steps) for t in turns] == [3, 1]
    assert turns[0].steps[1].tool_results[0].content == "water the plants\nreply to Ana"


def test_without_a_terminal_untrusted_calls_are_declined_and_the_model_is_told(
    glm_server: GlmServer, glmchat_home: Path
) -> None:
    log = configure(glmchat_home, trusted='["read_note"]')
    glm_server.enqueue(*three_steps())
    proc = ask(glm_server, glmchat_home, "--mcp", "kit", "q", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "warning: no terminal to ask on" in proc.stderr
    assert "glmchat: tool kit__add" in proc.stderr and "→ declined" in proc.stderr
    assert [c["tool"] for c in read_call_log(log)] == ["read_note"]  # the trusted one ran, the other never reached the server
    tool_messages = [m for m in glm_server.chat_requests()[1].json["messages"] if m["role"] == "tool"]
    assert "declined" in tool_messages[0]["content"]


def test_unknown_server_and_a_host_without_tools_are_one_line_usage_errors(glm_server: GlmServer, glmchat_home: Path) -> None:
    configure(glmchat_home)
    proc = ask(glm_server, glmchat_home, "--mcp", "nope", "q")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["glmchat: no MCP server 'nope' in the config (configured: kit)"]
    assert glm_server.chat_requests() == []


def test_a_server_that_cannot_start_is_a_warning_and_the_turn_still_answers(glm_server: GlmServer, glmchat_home: Path) -> None:
    (glmchat_home / "config.toml").write_text('[mcp.gone]\ncommand = ["/nonexistent/mcp-server"]\n', encoding="utf-8")
    glm_server.enqueue(Reply(content="no tools then"))
    proc = ask(glm_server, glmchat_home, "--mcp", "gone", "--yes", "q", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "no tools then"
    assert "warning: MCP server gone: cannot start '/nonexistent/mcp-server'" in proc.stderr
    assert "tools" not in glm_server.last.json  # no tool offered at all


def test_on_a_terminal_each_call_is_asked_on_stderr(glm_server: GlmServer, glmchat_home: Path) -> None:
    """stdin and stderr on a pseudo-terminal: the first call is allowed "always", so the second
    call of the same tool is not asked again; a different tool is asked and declined."""
    import os
    import pty
    import select
    import subprocess
    import sys
    import time

    from tests.test_cli import ROOT

    log = configure(glmchat_home)
    glm_server.enqueue(
        Reply(reasoning="r", content="", tool_calls=[{"name": "kit__add", "arguments": '{"a": 1, "b": 2}'}]),
        Reply(content="", tool_calls=[{"name": "kit__add", "arguments": '{"a": 3, "b": 4}'},
                                      {"name": "kit__echo", "arguments": '{"text": "hi"}'}]),
        Reply(content="done"),
    )
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(GLMCHAT_HOME=str(glmchat_home), PYTHONPATH=str(ROOT), ZAI_API_KEY=ZAI_KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "glmchat", "ask", "--base-url", f"{glm_server.url}/zai", "--mcp", "kit", "q"],
        cwd=ROOT, env=env, stdin=slave, stderr=slave, stdout=subprocess.PIPE,
    )
    os.close(slave)
    seen = b""

    def read_until(marker: bytes, count: int) -> None:
        nonlocal seen
        deadline = time.monotonic() + 60
        while seen.count(marker) < count:
            assert time.monotonic() < deadline, seen.decode("utf-8", "replace")
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    seen += os.read(master, 4096)
                except OSError:
                    break

    try:
        read_until(b"allow it?", 1)
        os.write(master, b"a\n")
        read_until(b"allow it?", 2)
        assert seen.count(b"tool call: kit__") == 2 and b"tool call: kit__echo" in seen
        os.write(master, b"n\n")
        out, _ = proc.communicate(timeout=60)
        read_until(b"declined", 1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
    assert proc.returncode == 0 and out == b"done"
    assert [c["arguments"] for c in read_call_log(log)] == [{"a": 1, "b": 2}, {"a": 3, "b": 4}]


def test_ask_web_search_offers_the_search_prints_the_sources_and_keeps_the_switch(
    glm_server: GlmServer, glmchat_home: Path
) -> None:
    sources = [{"title": "A  page", "link": "https://example.org/a", "content": "x", "refer": "ref_1"}]
    glm_server.enqueue(Reply(content="found it", web_search=sources))
    proc = ask(glm_server, glmchat_home, "--web-search", "look it up", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "found it"
    assert "glmchat: source: A page <https://example.org/a>" in proc.stderr
    assert glm_server.last.json["tools"][0]["type"] == "web_search"
    assert store_turns(glmchat_home)[0].steps[0].web_search == sources
    glm_server.enqueue(Reply(content="again"))
    assert ask(glm_server, glmchat_home, "-c", "more").returncode == 0
    assert glm_server.last.json["tools"][0]["type"] == "web_search"  # remembered by the session
