"""A turn sent with thinking off that still returns reasoning (some hosts and newer models do).

The reasoning is stored byte-exact and replayed like any other, in each host's field.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from glmchat.turn_runner import run_turn
from glmchat.client import GlmClient
from glmchat.session import Session, TurnStatus
from glmchat.usage import request_estimate as estimate_request_tokens
from glmchat.store import Store
from tests.glm_server import GlmServer, Reply

REASONING = "  Thinking anyway, though asked not to.\r\n\tKeep\u2028every byte.  \n\n"
CONTENT = "Answer one.\n"


def replayed(host_id: str, message: dict) -> str | None:
    """The reasoning an assistant message carries back, read from the host's field."""
    if host_id in ("zai", "zai-coding", "bigmodel", "sglang", "llamacpp"):
        return message.get("reasoning_content")
    if host_id == "vllm":
        return message.get("reasoning")
    if host_id == "ollama":
        return message.get("thinking")
    if host_id == "cerebras":
        content = message["content"]
        assert content.startswith("<think>") and content.endswith("</think>" + CONTENT)
        return content[len("<think>") : -len("</think>" + CONTENT)]
    if host_id == "openrouter":
        details = message.get("reasoning_details") or []
        return "".join(d.get("text", "") for d in details if d.get("type") == "reasoning.text")
    raise AssertionError(host_id)


@pytest.mark.parametrize(
    "host_id", ["zai", "zai-coding", "bigmodel", "cerebras", "openrouter", "vllm", "sglang", "llamacpp", "ollama"]
)
async def test_reasoning_of_a_thinking_off_turn_is_stored_and_replayed_exactly(
    glm_server: GlmServer, glmchat_home: Path, host_id: str
) -> None:
    host = glm_server.host(host_id)
    session = Session(host=host.id, model=host.default_model)
    glm_server.enqueue(Reply(reasoning=REASONING, content=CONTENT, chunk_tokens=2, fragment_bytes=7),
                       Reply(reasoning="", content="Answer two."))
    with Store.open(glmchat_home) as store:
        async with GlmClient(max_retries=0) as client:
            first = session.new_turn("first, no thinking", thinking=False)
            await run_turn(client, host, session, first, api_key="sk-off-0123456789", store=store)
            assert glm_server.last.thinking is False  # the request did turn thinking off
            assert first.status == TurnStatus.COMPLETE and first.reasoning == REASONING
            # Replay from what was stored, not from memory.
            session = store.load_session(session.id)
            assert session.turns[0].reasoning == REASONING and session.turns[0].thinking is False
            second = session.new_turn("second", thinking=True)
            await run_turn(client, host, session, second, api_key="sk-off-0123456789", store=store)
    messages = glm_server.last.json["messages"]
    [assistant] = [m for m in messages if m["role"] == "assistant"]
    assert replayed(host_id, assistant) == REASONING


async def test_runware_cannot_replay_and_sends_no_reasoning(glm_server: GlmServer, glmchat_home: Path) -> None:
    host = glm_server.host("runware")
    session = Session(host=host.id, model=host.default_model)
    glm_server.enqueue(Reply(reasoning=REASONING, content=CONTENT), Reply(reasoning="", content="two"))
    async with GlmClient(max_retries=0) as client:
        first = session.new_turn("first", thinking=False)
        await run_turn(client, host, session, first, api_key="sk-off-0123456789")
        assert first.reasoning == REASONING
        await run_turn(client, host, session, session.new_turn("second", thinking=False), api_key="sk-off-0123456789")
    assert REASONING.strip() not in glm_server.last.body.decode()


def test_the_estimate_counts_replayed_reasoning_of_thinking_off_turns() -> None:
    session = Session()
    turn = session.new_turn("q", thinking=False)
    turn.step.reasoning = "word " * 4000
    turn.step.content = "a"
    turn.finish()
    with_reasoning = estimate_request_tokens(session, "next")
    turn.step.reasoning = ""
    assert with_reasoning >= estimate_request_tokens(session, "next") + 5000
    session.preserve_thinking = False  # not replayed: not counted
    turn.step.reasoning = "word " * 4000
    assert estimate_request_tokens(session, "next") < 100
