"""A key echoed back, whole or in pieces, never shows: in errors, stored errors, exports, CLI output, on screen.

The stored reasoning and answer keep it (they are replayed byte-exact for preserved
thinking); only what leaves the store for a person or a file is redacted.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmchat import sanitize
from glmchat.client import GlmClient
from glmchat.protocol.events import StreamFailed
from tests.glm_server import GlmServer, Reply
from tests.test_cli import ask, run, store_turns
from tests.test_client import request_for
from tests.test_client import run as stream

KEY = "sk-zai-loopback-0123456789abcdefKEYEND"  # the key tests.test_cli.ask sends (34+ characters)


def assert_no_fragment(text: str, key: str = KEY, size: int = sanitize.MIN_FRAGMENT) -> None:
    for i in range(len(key) - size + 1):
        assert key[i : i + size] not in text, f"{key[i:i + size]!r} shows in {text[:200]!r}"


# -- the helper -------------------------------------------------------------------------------------------


def test_redact_finds_the_key_whole_split_and_in_fragments() -> None:
    sanitize.remember_secret(KEY)
    for text in (f"key={KEY}!", f"{KEY[:17]} then {KEY[17:]}", f"x{KEY[3:9]}y", KEY[::-1] + KEY[10:30],
                 f"{KEY}{KEY}", f"\n{KEY[:6]}\n{KEY[-6:]}\n"):
        out = sanitize.redact(text)
        assert_no_fragment(out)
        assert "[redacted]" in out
    assert sanitize.redact(f"short {KEY[:5]} ok") == f"short {KEY[:5]} ok"
    assert sanitize.redact("nothing to see") == "nothing to see"
    sanitize.forget_secrets()
    assert sanitize.redact(KEY) == KEY


def test_a_key_fed_one_character_at_a_time_never_shows_six() -> None:
    sanitize.remember_secret(KEY)
    redactor = sanitize.stream_redactor()
    out = "".join(redactor.feed(ch) for ch in f"echo: {KEY} and {KEY[5:25]} end")
    assert_no_fragment(out)
    assert out.startswith("echo: ") and out.endswith(" end") and out.count("[redacted]") == 2
    # Bigger pieces split inside the key, as network reads are.
    redactor = sanitize.stream_redactor()
    assert redactor.feed("a " + KEY[:4]) + redactor.feed(KEY[4:12]) + redactor.feed(KEY[12:] + " b") == \
        "a " + KEY[:4] + "[redacted] b"


def test_the_screen_helper_redacts_and_shows_bidi_controls() -> None:
    sanitize.remember_secret(KEY)
    shown = sanitize.inert(f"the key {KEY}, reversed \u202egpj.exe\u2066x\u2069 \u200f")
    assert_no_fragment(shown)
    assert "⟨U+202E⟩gpj.exe⟨U+2066⟩x⟨U+2069⟩ ⟨U+200F⟩" in shown
    assert not any(ch in shown for ch in "\u202e\u2066\u2069\u200f")


# -- errors -------------------------------------------------------------------------------------------------


async def test_a_key_echoed_in_two_pieces_in_an_error_never_shows(glm_server: GlmServer) -> None:
    body = {"error": {"code": "1002", "message": f"Invalid key {KEY[:17]} (…) {KEY[17:]} for this endpoint"}}
    glm_server.enqueue(Reply.error(401, body=body))
    host = glm_server.host("zai")
    async with GlmClient(max_retries=0) as client:
        [event] = await stream(client, host, request_for(host), key=KEY)
    assert isinstance(event, StreamFailed)
    assert_no_fragment(event.error.message)


async def test_a_key_echoed_in_an_error_inside_the_stream_never_shows(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(reasoning="", content="part", stream_error={"message": f"upstream rejected {KEY[2:30]}"}))
    host = glm_server.host("openrouter")
    async with GlmClient(max_retries=0) as client:
        events = await stream(client, host, request_for(host), key=KEY)
    assert isinstance(events[-1], StreamFailed)
    assert_no_fragment(events[-1].error.message)


# -- model text: stored exact, never shown or exported ---------------------------------------------------------


def test_a_key_echoed_into_reasoning_and_answer(glm_server: GlmServer, glmchat_home: Path, tmp_path: Path) -> None:
    reasoning = f"The user's key is {KEY}. Split: {KEY[:15]} {KEY[15:]}."
    content = f"Your key: {KEY}\nand a piece {KEY[8:20]}\n"
    glm_server.enqueue(Reply(reasoning=reasoning, content=content, chunk_tokens=1, fragment_bytes=3))
    proc = ask(glm_server, glmchat_home, "what is my key?")
    assert proc.returncode == 0, proc.stderr
    assert_no_fragment(proc.stdout)
    assert_no_fragment(proc.stderr)
    assert "[redacted]" in proc.stdout and "Your key: " in proc.stdout
    [turn] = store_turns(glmchat_home)
    assert (turn.reasoning, turn.content) == (reasoning, content)  # stored exact, for replay
    env = {"ZAI_API_KEY": KEY}
    for args in (["sessions", "show", "1"], ["sessions", "show", "1", "--json"], ["sessions", "export", "1"],
                 ["sessions", "export", "1", "--format", "json"], ["sessions", "search", "key"]):
        proc = run(*args, home=glmchat_home, env=env)
        assert proc.returncode == 0, (args, proc.stderr)
        assert_no_fragment(proc.stdout + proc.stderr)
    for name in ("out.md", "out.json"):
        target = tmp_path / name
        assert run("sessions", "export", "1", "-o", str(target), home=glmchat_home, env=env).returncode == 0
        assert_no_fragment(target.read_text())
    exported = json.loads((tmp_path / "out.json").read_text())["session"]["turns"][0]
    assert exported["steps"][0]["content"].startswith("Your key: [redacted]")


def test_a_key_from_the_config_file_is_redacted_too(glm_server: GlmServer, glmchat_home: Path) -> None:
    key = "cfg-key-ABCDEFGHIJKLMNOPQRSTUV-123456"
    (glmchat_home / "config.toml").write_text(f'[keys]\nzai = "{key}"\n')
    (glmchat_home / "config.toml").chmod(0o600)
    glm_server.enqueue(Reply(reasoning="", content=f"echo {key[4:30]} done"))
    proc = run("ask", "--base-url", f"{glm_server.url}/zai", "hi", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    assert_no_fragment(proc.stdout, key)
    # Streamed a token at a time: at most 5 characters show before a piece is recognisable.
    assert proc.stdout.startswith("echo ") and proc.stdout.endswith("[redacted] done")


@pytest.mark.parametrize("where", ["option", "config"])
def test_credentials_in_a_base_url_never_show_and_never_replace_the_key(glm_server: GlmServer, glmchat_home: Path,
                                                                        where: str) -> None:
    url = f"http://alice:s3cr3t-pa55word@127.0.0.1:{glm_server.port}/zai"
    if where == "config":
        (glmchat_home / "config.toml").write_text(f'[hosts.zai]\nbase_url = "{url}"\n')
        proc = run("ask", "hi", home=glmchat_home, env={"ZAI_API_KEY": KEY})
    else:
        proc = run("ask", "--base-url", url, "hi", home=glmchat_home, env={"ZAI_API_KEY": KEY})
    assert proc.returncode == 2, proc.stderr
    assert "s3cr3t" not in proc.stderr and "alice" not in proc.stderr
    assert proc.stderr.count("\n") == 1 and "user name or password" in proc.stderr
    assert glm_server.chat_requests() == []  # nothing was sent, with or without Basic auth


def test_on_a_terminal_keys_are_redacted_and_bidi_controls_shown(glm_server: GlmServer, glmchat_home: Path) -> None:
    import os
    import sys

    from tests.test_cli import ROOT, run_in_pty

    glm_server.enqueue(Reply(reasoning=f"thinking {KEY}", content=f"file\u202etxt.exe key {KEY}\n"))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(GLMCHAT_HOME=str(glmchat_home), PYTHONPATH=str(ROOT), ZAI_API_KEY=KEY)
    rc, out, err = run_in_pty([sys.executable, "-m", "glmchat", "ask", "--base-url", f"{glm_server.url}/zai", "hi"], env)
    assert rc == 0, err
    shown = out.decode()
    assert "file⟨U+202E⟩txt.exe" in shown and "\u202e" not in shown
    assert_no_fragment(shown)
    assert_no_fragment(err.decode())
