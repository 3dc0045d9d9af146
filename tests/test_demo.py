"""The demo host: no key, no network, GLM's stream shape, through the same request path and store."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from glmchat.config import AppOptions, Config, Paths
from glmchat.controller import Controller, ExportFormat
from glmchat.session import TurnStatus
from glmchat.store import Store
from tests.test_cli import run


def make_controller(tmp_path: Path) -> tuple[Controller, Store]:
    store = Store(tmp_path / "demo.db")
    paths = Paths(config_file=tmp_path / "config.toml", data_dir=tmp_path, themes_dir=tmp_path / "themes", log_file=tmp_path / "log.txt")
    controller = Controller(Config(host="demo"), paths, options=AppOptions(host="demo"), store=store)
    return controller, store


async def _turns(controller: Controller, session, texts: list[str]) -> list:
    out = []
    for text in texts:
        turn = controller.start_turn(session, text, True)
        out.append(await controller.run(session, turn))
    await controller.close()
    return out


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a socket fails the test: the demo must not need one."""

    def refuse(*args, **kwargs):
        raise AssertionError("the demo host opened a network connection")

    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


@pytest.mark.parametrize("preserve", [True, False], ids=["preserved", "cleared"])
def test_demo_streams_reasoning_markdown_and_cached_usage(tmp_path, no_network, preserve) -> None:
    controller, store = make_controller(tmp_path)
    try:
        session = controller.new_session()
        session.preserve_thinking = preserve
        assert session.host == "demo" and not controller.needs_key(controller.host_for(session))
        turns = asyncio.run(_turns(controller, session, ["What is a prompt cache?", "And why keep reasoning?", "Thanks"]))
        assert [t.status for t in turns] == [TurnStatus.COMPLETE] * 3
        first = turns[0]
        assert "What is a prompt cache?" in first.reasoning
        assert "```python" in first.content and "| cache hit |" in first.content
        usage = first.usage
        assert usage.prompt_tokens and usage.reasoning_tokens and usage.completion_tokens > usage.reasoning_tokens
        # Stored like any other host's turn.
        stored = store.load_session(session.id)
        assert [t.content for t in stored.turns] == [t.content for t in turns]
        assert stored.turns[2].reasoning == turns[2].reasoning
        hits = [t.usage.cache_hit for t in turns]
        assert hits[0] == 0
        if preserve:
            # The replayed reasoning is byte for byte what the demo produced: everything before the new message is cached.
            assert hits[1] > 0.9 and hits[2] > 0.9
        else:
            # Without its reasoning the previous answer reads differently from how it was generated:
            # the cache ends where it starts, and all of it is read again.
            third = turns[2].usage
            assert third.cached_tokens > 0
            assert third.prompt_tokens - third.cached_tokens >= len(turns[1].content) // 4
    finally:
        store.close()


def test_demo_levels_follow_the_model(tmp_path, no_network) -> None:
    controller, store = make_controller(tmp_path)
    try:
        session = controller.new_session()
        session.model = "glm-5.3"
        turn = controller.start_turn(session, "hello", False)  # off: the lowest level on GLM-5.3
        asyncio.run(_turns_one(controller, session, turn))
        assert (turn.thinking, turn.thinking_level) == (True, "low")
        assert "thinking level 'low'" in turn.reasoning
    finally:
        store.close()


async def _turns_one(controller, session, turn):
    await controller.run(session, turn)
    await controller.close()


def test_demo_export_says_it_is_a_demo(tmp_path, no_network) -> None:
    controller, store = make_controller(tmp_path)
    try:
        session = controller.new_session()
        asyncio.run(_turns(controller, session, ["hi"]))
        path = controller.export(session, ExportFormat.MARKDOWN, tmp_path / "out.md")
        text = path.read_text()
        assert "**Host:** demo (the built-in demo" in text
    finally:
        store.close()


def test_ask_on_the_demo_host_on_a_fresh_machine(tmp_path) -> None:
    home = tmp_path / "home"
    result = run("ask", "--host", "demo", "hello demo", home=home)
    assert result.returncode == 0, result.stderr
    assert "## Demo answer 1" in result.stdout
    assert "hello demo" in result.stderr  # the reasoning went to stderr
