"""The model table and per-turn thinking levels: the table's facts, config overrides, and what goes on the
wire for a model with levels (GLM-5.2) and one that always thinks (GLM-5.3), against the loopback server,
which refuses what a strict host would refuse."""

from __future__ import annotations

import asyncio

import pytest

from glmchat.client import GlmClient
from glmchat.config import Config, resolve_host
from glmchat.hosts import BUILTIN_HOSTS
from glmchat.models import (
    ThinkingChoice,
    ThinkingMode,
    choice_from_label,
    model_info,
    next_choice,
    resolve_thinking,
)
from glmchat.session import Session, TurnStatus
from glmchat.store import Store
from glmchat.turn_runner import run_turn
from glmchat.usage import usage_cost, Usage

KEY = "sk-models-Qw8Rt5Yu2Io4"


def test_table_facts_and_choices() -> None:
    zai = BUILTIN_HOSTS["zai"]
    g52 = model_info(zai, "glm-5.2")
    assert g52.context_window == 1_000_000
    assert g52.choices() == ("off", "high", "xhigh")
    g53 = model_info(zai, "glm-5.3")
    assert g53.thinking == ThinkingMode.ALWAYS and not g53.can_disable
    assert g53.choices() == ("low", "high", "max") and g53.default_level == "max"
    assert model_info(zai, "glm-4.7").choices() == ("off", "on")
    # OpenRouter's spelling finds the same entry.
    assert model_info(BUILTIN_HOSTS["openrouter"], "z-ai/glm-5.2").levels == ("high", "xhigh")
    # A model the table does not know takes the host's figures.
    cerebras = BUILTIN_HOSTS["cerebras"]
    unknown = model_info(cerebras, "zai-glm-4.7")
    assert not unknown.known and unknown.context_window == cerebras.context_window


def test_off_on_an_always_thinking_model_is_its_lowest_level_and_says_so() -> None:
    g53 = model_info(BUILTIN_HOSTS["zai"], "glm-5.3")
    choice = resolve_thinking(g53, False)
    assert choice == ThinkingChoice(True, "low", choice.note) and "always thinks" in choice.note
    assert resolve_thinking(g53, True).level == "max"  # no level asked: the default
    assert resolve_thinking(g53, True, "xhigh").level == "max"  # not one of its levels
    g52 = model_info(BUILTIN_HOSTS["zai"], "glm-5.2")
    assert resolve_thinking(g52, False) == ThinkingChoice(False)
    # Ctrl+T's cycle: off -> high -> xhigh -> off on GLM-5.2; low -> high -> max -> low on GLM-5.3.
    labels = []
    choice = choice_from_label(g52, "off")
    for _ in range(3):
        choice = next_choice(g52, choice)
        labels.append(choice.label)
    assert labels == ["high", "xhigh", "off"]
    assert next_choice(g53, choice_from_label(g53, "max")).label == "low"


def test_config_overrides_a_model_per_host(tmp_path) -> None:
    config = Config(hosts={"zai": {"model_table": {"glm-5.3": {
        "levels": ["low", "medium", "high", "max"], "default_level": "high",
        "price": {"input": 2.0, "cached_input": 0.5, "output": 6.0},
    }}}})
    host = resolve_host(config, "zai")
    info = model_info(host, "glm-5.3")
    assert info.levels == ("low", "medium", "high", "max") and info.default_level == "high"
    assert info.price is not None and info.price.cached_input == 0.5
    # Another host keeps the table's facts.
    assert model_info(resolve_host(config, "bigmodel"), "glm-5.3").levels == ("low", "high", "max")
    with pytest.raises(ValueError, match="unknown model setting"):
        model_info(resolve_host(Config(hosts={"zai": {"model_table": {"glm-5": {"levles": []}}}}), "zai"), "glm-5")


def test_cost_uses_the_cached_input_price() -> None:
    usage = Usage(prompt_tokens=1_000_000, cached_tokens=800_000, completion_tokens=100_000)
    cost = usage_cost(usage, BUILTIN_HOSTS["zai"], "glm-5.2")
    assert cost == pytest.approx(0.2 * 1.40 + 0.8 * 0.26 + 0.1 * 4.40)


async def _send(server, store: Store, session: Session, text: str, thinking: bool, level: str | None = None):
    host = server.host("zai")
    session.thinking_level_next = level
    turn = session.new_turn(text, thinking)
    async with GlmClient(max_retries=0) as client:
        await run_turn(client, host, session, turn, api_key=KEY, store=store)
    return turn


@pytest.mark.parametrize(
    ("model", "asked", "sent"),
    [
        # (thinking, level) asked -> (thinking.type, reasoning_effort) sent
        ("glm-5.2", [(True, "xhigh"), (False, None), (True, None)], [("enabled", "xhigh"), ("disabled", None), ("enabled", "high")]),
        ("glm-5.3", [(True, "low"), (False, None), (True, None)], [("enabled", "low"), ("enabled", "low"), ("enabled", "max")]),
        ("glm-4.7", [(True, "max"), (False, None)], [("enabled", None), ("disabled", None)]),
    ],
    ids=["levels", "always-on", "on-off"],
)
def test_levels_on_the_wire_per_turn(glm_server, tmp_path, model, asked, sent) -> None:
    store = Store(tmp_path / "s.db")
    try:
        session = Session(host="zai", model=model)
        turns = [asyncio.run(_send(glm_server, store, session, f"q{i}", t, lv)) for i, (t, lv) in enumerate(asked)]
        requests = glm_server.chat_requests()
        assert [(r.json["thinking"]["type"], r.json.get("reasoning_effort")) for r in requests] == sent
        # The server would have refused anything else: every turn completed.
        assert [t.status for t in turns] == [TurnStatus.COMPLETE] * len(turns)
        # Each turn records what its request carried, and the store keeps it.
        stored = store.load_session(session.id).turns
        assert [(t.thinking, t.thinking_level) for t in stored] == [(ty == "enabled", lv) for ty, lv in sent]
    finally:
        store.close()


def test_the_loopback_server_refuses_what_a_strict_host_would(glm_server, tmp_path) -> None:
    """The guard the tests above rely on: a request built by hand that turns GLM-5.3's thinking off fails."""
    from glmchat.protocol import build_request
    from glmchat.session import Turn

    host = glm_server.host("zai")
    session = Session(host="zai", model="glm-5.3")
    turn = Turn(user_text="x", thinking=True, model="glm-5.3", thinking_level="low")
    session.turns.append(turn)
    request = build_request(host, session, turn)
    request.body["thinking"]["type"] = "disabled"

    async def go():
        async with GlmClient(max_retries=0) as client:
            return [e async for e in client.stream(host, request, KEY)]

    events = asyncio.run(go())
    assert glm_server.last.status == 400
    assert "cannot be disabled" in str(events[-1].error)
