"""The cache-break detector, against the loopback server: an altered replay is found (turn, field,
offset), and what starts from an earlier point on purpose (an edit, a retry, a branch switch, a
changed setting) is not reported."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from glmchat.cache_break import CacheBreak, first_difference
from glmchat.config import AppOptions, Config, Paths
from glmchat.controller import Controller
from glmchat.session import Session, TurnStatus
from glmchat.store import Store

KEY = "sk-cache-Lp3Zx7Vb1Nm5"


def test_first_difference_names_turn_field_and_offset() -> None:
    old = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "one"},
        {"role": "assistant", "content": "A1", "reasoning_content": "thinking hard"},
        {"role": "user", "content": "two"},
    ]
    assert first_difference(old, old + [{"role": "assistant", "content": "A2"}]) is None
    altered = [dict(m) for m in old]
    altered[2]["reasoning_content"] = "thinking HARD"
    assert first_difference(old, altered) == CacheBreak(1, "reasoning", 9)
    altered = [dict(m) for m in old]
    altered[3]["content"] = "tw0"
    assert first_difference(old, altered) == CacheBreak(2, "message", 2)
    altered = [dict(m) for m in old]
    altered[0]["content"] = "S2"
    assert first_difference(old, altered) == CacheBreak(0, "system prompt", 1)
    assert CacheBreak(3, "reasoning", 1204).message() == "cache broken at turn 3 reasoning, offset 1,204"


@pytest.fixture
def setup(glm_server, tmp_path: Path):
    store = Store(tmp_path / "s.db")
    paths = Paths(config_file=tmp_path / "config.toml", data_dir=tmp_path, themes_dir=tmp_path / "t", log_file=tmp_path / "log")
    config = Config(host="zai", keys={"zai": KEY}, hosts={"zai": {"base_url": glm_server.base_url("zai")}})
    controller = Controller(config, paths, options=AppOptions(), store=store)
    yield controller, store, glm_server
    store.close()


def run(controller: Controller, session: Session, turn, found: list[CacheBreak]) -> None:
    async def go() -> None:
        try:
            await controller.run(session, turn, on_cache_break=found.append)
        finally:
            await controller.close()  # its connections belong to this event loop

    asyncio.run(go())


def send(controller: Controller, session: Session, text: str, **kw) -> tuple[list[CacheBreak], object]:
    found: list[CacheBreak] = []
    turn = controller.start_turn(session, text, True, **kw)
    run(controller, session, turn, found)
    assert turn.status == TurnStatus.COMPLETE
    return found, turn


def test_an_altered_replay_is_reported_once_and_logged(setup, caplog) -> None:
    controller, _, server = setup
    session = controller.new_session()
    assert send(controller, session, "first")[0] == []
    assert send(controller, session, "second")[0] == []
    assert server.last.replay_problems == []
    # A replay that changes one character of the first turn's reasoning at offset 7.
    step = session.turns[0].steps[0]
    step.reasoning = step.reasoning[:7] + "#" + step.reasoning[8:]
    with caplog.at_level(logging.WARNING, logger="glmchat.cache"):
        found, _ = send(controller, session, "third")
    assert found == [CacheBreak(1, "reasoning", 7)]
    assert "cache broken at turn 1 reasoning, offset 7" in caplog.text
    # The server agrees: the replay differs from what it produced, and its cache stopped there.
    assert server.last.replay_problems
    assert server.last.cached_tokens < server.chat_requests()[-2].prompt_tokens
    # Reported once: the next request extends the altered one.
    assert send(controller, session, "fourth")[0] == []


def test_edit_retry_and_branch_switch_are_not_breaks(setup) -> None:
    controller, store, server = setup
    session = controller.new_session()
    for text in ("one", "two", "three"):
        assert send(controller, session, text)[0] == []
    # Edit the last message: a sibling of turn 3, after turn 2.
    found, edited = send(controller, session, "three, edited", replacing=session.turns[-1])
    assert found == []
    # Regenerate it (another sibling).
    assert send(controller, session, "three, edited", replacing=edited)[0] == []
    # Switch back to the first branch of turn 3 and continue there.
    switched = controller.switch_branch(session, session.turns[-1], -2)
    assert switched is not None
    reloaded, _ = switched
    assert reloaded.turns[-1].user_text == "three"
    assert send(controller, reloaded, "four")[0] == []
    # Preserved thinking switched off: the prompt changes on purpose.
    reloaded.preserve_thinking = False
    assert send(controller, reloaded, "five")[0] == []
    assert server.replay_problems == []
    assert controller.cache_watch.breaks == []


def test_a_failed_previous_turn_is_not_expected_in_the_next_request(setup) -> None:
    from tests.glm_server import Reply

    controller, _, server = setup
    session = controller.new_session()
    send(controller, session, "one")
    server.enqueue(Reply.error(400))  # not retried
    turn = controller.start_turn(session, "two", True)
    found: list[CacheBreak] = []
    run(controller, session, turn, found)
    assert turn.status == TurnStatus.ERROR
    assert send(controller, session, "three")[0] == [] and found == []
