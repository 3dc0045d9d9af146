"""run_turn end to end: every host over three turns, preserved thinking proven by the prompt cache,
cancellation, a 10 MB answer, and how the store is fed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from glmchat.turn_runner import run_turn
from glmchat.client import GlmClient
from glmchat.errors import StorageError
from glmchat.protocol.events import ContentDelta
from glmchat.session import Session, TurnStatus
from glmchat.store import Store
from tests.glm_server import HOST_IDS, GlmServer, Reply

KEY = "sk-run-Mf3Ks8Pq1Vd6"

# Reasoning that any strip, newline normalisation or re-encoding would change.
R1 = " First, the plan:\r\n\t1. `code` — 漢字 🚀 naïve\n  trailing spaces   \n\n"
R3 = "\nThird turn: ✓ reuse the earlier thinking. \\n stays literal. "
C1 = "Answer one.\n"


def reasoning_field_value(host_id: str, message: dict[str, Any]) -> str | None:
    """The earlier reasoning as the request carries it, in the host's own field."""
    if host_id in ("zai", "zai-coding", "bigmodel", "sglang", "llamacpp"):
        return message.get("reasoning_content")
    if host_id == "vllm":
        return message.get("reasoning")
    if host_id == "ollama":
        return message.get("thinking")
    if host_id == "openrouter":
        details = message.get("reasoning_details") or []
        return "".join(d["text"] for d in details) if details else None
    if host_id == "cerebras":
        content = message.get("content") or ""
        return content[len("<think>") : content.index("</think>")] if content.startswith("<think>") else None
    return None


def messages_of(record) -> list[dict[str, Any]]:
    body = record.json
    return body[0]["messages"] if isinstance(body, list) else body["messages"]


async def three_turns(server: GlmServer, host_id: str, preserve: bool) -> tuple[Session, list]:
    """Turns with thinking on, off, on; returns the session and the three request records."""
    host = server.host(host_id)
    session = Session(host=host_id, model=host.default_model, preserve_thinking=preserve)
    server.enqueue(Reply(reasoning=R1, content=C1), Reply(content="Two."), Reply(reasoning=R3, content="Three."))
    records = []
    async with GlmClient() as client:
        for text, thinking in (("one?", True), ("two?", False), ("three?", True)):
            turn = session.new_turn(text, thinking=thinking)
            await run_turn(client, host, session, turn, api_key=KEY if host.key_env else None)
            assert turn.status == TurnStatus.COMPLETE, turn.error
            records.append(server.last)
    return session, records


@pytest.mark.parametrize("host_id", HOST_IDS)
async def test_three_turns_with_thinking_toggled_replay_reasoning_byte_exact(glm_server: GlmServer, host_id: str) -> None:
    session, records = await three_turns(glm_server, host_id, preserve=True)
    t1, t2, t3 = session.turns
    host = glm_server.host(host_id)

    # Thinking on, off, on: as each dialect says it, and as the turns record it.
    assert [r.thinking for r in records] == [True, False, True]
    assert (t1.thinking, t2.thinking, t3.thinking) == (True, False, True)
    assert (t1.reasoning, t2.reasoning, t3.reasoning) == (R1, "", R3)
    assert (t1.content, t2.content, t3.content) == (C1, "Two.", "Three.")

    if host_id == "runware":
        # The task API has no field for earlier reasoning: none is sent, and the host says so.
        assert not host.can_preserve_thinking and "cannot carry earlier reasoning" in host.note
        for record in records[1:]:
            assert "First, the plan" not in record.body.decode("utf-8")
        assert [m["content"] for m in messages_of(records[2])] == ["one?", C1, "two?", "Two.", "three?"]
        return

    for record, earlier in ((records[1], 1), (records[2], 2)):
        assistants = [m for m in messages_of(record) if m["role"] == "assistant"]
        assert len(assistants) == earlier
        assert reasoning_field_value(host_id, assistants[0]) == R1  # byte-exact, in this host's field
        if earlier == 2:
            assert not reasoning_field_value(host_id, assistants[1])  # the thinking-off turn has none
    if host_id == "openrouter":
        sent = [m for m in messages_of(records[2]) if m["role"] == "assistant"][0]["reasoning_details"]
        assert sent == t1.step.reasoning_details and all(d["type"] == "reasoning.text" for d in sent)


@pytest.mark.parametrize("host_id", HOST_IDS)
async def test_prompt_cache_rewards_preserved_thinking(glm_server: GlmServer, host_id: str) -> None:
    session_on, on = await three_turns(glm_server, host_id, preserve=True)
    glm_server.reset()  # a cold cache for the second run
    _, off = await three_turns(glm_server, host_id, preserve=False)

    host = glm_server.host(host_id)
    if host.can_replay_reasoning:
        # With the reasoning sent back exactly, the third prompt reuses the whole first turn.
        assert on[2].cached_tokens > off[2].cached_tokens
        assert on[2].preserve is True
        first_turn_end = on[0].prompt + on[0].generation
        assert on[2].prompt.startswith(first_turn_end)
        assert not off[2].prompt.startswith(first_turn_end)
    else:
        assert on[2].cached_tokens == off[2].cached_tokens  # Runware: nothing to preserve, nothing gained
    # Hosts that report cached tokens hand the server's figure to the turn.
    if host_id not in ("ollama", "runware"):
        assert session_on.turns[2].usage.cached_tokens == on[2].cached_tokens


async def test_a_changed_reasoning_loses_the_cache_from_that_byte_on(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    session = Session(host="zai")
    glm_server.enqueue(Reply(reasoning=R1, content=C1))
    async with GlmClient() as client:
        first = session.new_turn("one?")
        await run_turn(client, host, session, first, api_key=KEY)
        exact_end = len(glm_server.last.prompt + glm_server.last.generation) // 4
        first.step.reasoning = R1.strip()  # what a careless client would store
        second = session.new_turn("two?")
        await run_turn(client, host, session, second, api_key=KEY)
    assert second.usage.cached_tokens < exact_end
    assert second.usage.cached_tokens * 4 <= len("[gMASK]<sop><|user|>one?<|assistant|><think>")


# -- cancellation and size ---------------------------------------------------------------------------------


async def test_cancel_stops_the_turn_keeps_what_arrived_and_closes_the_stream(glm_server: GlmServer, tmp_path: Path) -> None:
    host = glm_server.host("cerebras")
    session = Session(host="cerebras", model="zai-glm-4.7")
    glm_server.enqueue(Reply(reasoning="", content=[f"w{i} " for i in range(3000)], pace=300, chunk_tokens=3))
    turn = session.new_turn("long please")
    seen: list[str] = []
    enough = asyncio.Event()

    def on_event(event) -> None:
        if isinstance(event, ContentDelta):
            seen.append(event.text)
            if len(seen) == 5:
                enough.set()

    store = Store.open(tmp_path / "data")
    try:
        async with GlmClient() as client:
            task = asyncio.create_task(run_turn(client, host, session, turn, api_key=KEY, store=store, on_event=on_event))
            await asyncio.wait_for(enough.wait(), 10)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            record = glm_server.last
            assert glm_server.wait_for(lambda s: record.disconnected, timeout=5)
        assert turn.status == TurnStatus.STOPPED and turn.finished_at is not None
        assert turn.content == "".join(seen) and turn.content.startswith("w0 w1 w2 w3 w4 ")
        stored = store.load_session(session.id).turns[-1]
        assert (stored.status, stored.content) == (TurnStatus.STOPPED, turn.content)
        assert len(record.chunk_times) < 1000  # the 10 s reply did not run on
    finally:
        store.close()


async def test_a_10_mb_answer_streams_through_intact(glm_server: GlmServer, tmp_path: Path) -> None:
    block = "".join(f"| row {i} | 漢字 | 🚀 |\n" for i in range(30)) + "```\ncode\n```\n"
    tokens = [f"{n:07d} {block}" for n in range(10 * 1024 * 1024 // len(block.encode()) + 1)]
    expected = "".join(tokens)
    assert len(expected.encode()) >= 10 * 1024 * 1024
    glm_server.enqueue(Reply(reasoning="", content=tokens, chunk_tokens=8))
    host = glm_server.host("zai")
    session = Session(host="zai")
    turn = session.new_turn("big")
    store = Store.open(tmp_path / "data")
    try:
        async with GlmClient() as client:
            await run_turn(client, host, session, turn, api_key=KEY, store=store)
        assert turn.status == TurnStatus.COMPLETE
        assert turn.content == expected
        assert store.load_session(session.id).turns[-1].content == expected
    finally:
        store.close()


# -- the store and the caller --------------------------------------------------------------------------------


class SpyStore:
    """Delegates to a real Store and notes every call."""

    def __init__(self, store: Store, fail: str | None = None) -> None:
        self.store = store
        self.calls: list[str] = []
        self.fail = fail

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.store, name)

        def call(*args: Any) -> Any:
            self.calls.append(name)
            if name == self.fail:
                raise StorageError(f"Could not {name}: disk full")
            return method(*args)

        return call


async def test_progress_is_saved_while_streaming_at_most_every_interval(glm_server: GlmServer, tmp_path: Path) -> None:
    host = glm_server.host("zai")
    session = Session(host="zai")
    glm_server.enqueue(Reply(reasoning=[f"r{i} " for i in range(60)], content=[f"c{i} " for i in range(60)], pace=400))
    turn = session.new_turn("q")
    spy = SpyStore(Store.open(tmp_path / "data"))
    reader = Store.open(tmp_path / "data")
    midway: list[str] = []
    text_events = 0

    def on_event(event) -> None:
        nonlocal text_events
        if isinstance(event, ContentDelta):
            text_events += 1
            if text_events == 40:
                # Another store on the same file sees what was saved so far.
                midway.append(reader.load_session(session.id).turns[-1].content)

    try:
        async with GlmClient() as client:
            await run_turn(client, host, session, turn, api_key=KEY, store=spy, on_event=on_event, save_interval=0.05)
        assert spy.calls[0] == "begin_turn" and spy.calls[-1] == "finish_turn"
        saves = spy.calls.count("save_progress")
        assert 2 <= saves < 120  # a few saves, not one per delta
        assert midway and midway[0].startswith("c0 c1 ") and turn.content.startswith(midway[0])
        assert reader.load_session(session.id).turns[-1].content == turn.content
    finally:
        spy.store.close()
        reader.close()


async def test_a_failing_progress_save_does_not_stop_the_stream(glm_server: GlmServer, tmp_path: Path) -> None:
    host = glm_server.host("zai")
    session = Session(host="zai")
    glm_server.enqueue(Reply(reasoning="", content=[f"c{i} " for i in range(20)], pace=200))
    turn = session.new_turn("q")
    spy = SpyStore(Store.open(tmp_path / "data"), fail="save_progress")
    try:
        async with GlmClient() as client:
            with pytest.raises(StorageError, match="disk full"):
                await run_turn(client, host, session, turn, api_key=KEY, store=spy, save_interval=0.01)
        assert turn.status == TurnStatus.COMPLETE and turn.content == "".join(f"c{i} " for i in range(20))
        assert spy.calls[-1] == "finish_turn"  # the full turn was still written
        assert spy.store.load_session(session.id).turns[-1].content == turn.content
    finally:
        spy.store.close()


async def test_a_store_that_cannot_begin_the_turn_sends_nothing(glm_server: GlmServer, tmp_path: Path) -> None:
    host = glm_server.host("zai")
    session = Session(host="zai")
    turn = session.new_turn("q")
    spy = SpyStore(Store.open(tmp_path / "data"), fail="begin_turn")
    try:
        async with GlmClient() as client:
            with pytest.raises(StorageError):
                await run_turn(client, host, session, turn, api_key=KEY, store=spy)
        assert glm_server.chat_requests() == []
        assert turn.status == TurnStatus.ERROR and turn.error_kind == "storage"
    finally:
        spy.store.close()


async def test_on_event_sees_every_event_after_the_turn_applied_it(glm_server: GlmServer) -> None:
    host = glm_server.host("openrouter")
    session = Session(host="openrouter", model="z-ai/glm-4.7")
    glm_server.enqueue(Reply.error(503), Reply(reasoning="ab", content="cd"))
    turn = session.new_turn("q")
    log: list[tuple[str, int, int]] = []

    def on_event(event) -> None:
        log.append((type(event).__name__, len(turn.step.pending_reasoning), len(turn.step.pending_content)))

    async with GlmClient(backoff=0.01) as client:
        result = await run_turn(client, host, session, turn, api_key=KEY, on_event=on_event)
    assert result is turn and turn.host == "openrouter"
    names = [name for name, _, _ in log]
    assert names[0] == "Retrying" and names[-1] == "Finish"
    first_content = names.index("ContentDelta")
    assert log[first_content][2] == 1  # applied before the callback ran
    assert turn.reasoning == "ab" and turn.content == "cd" and turn.step.reasoning_details


async def test_a_callback_that_raises_leaves_the_turn_settled_and_saved(glm_server: GlmServer, tmp_path: Path) -> None:
    host = glm_server.host("zai")
    session = Session(host="zai")
    turn = session.new_turn("q")

    def on_event(event) -> None:
        if isinstance(event, ContentDelta):
            raise RuntimeError("widget bug")

    store = Store.open(tmp_path / "data")
    try:
        async with GlmClient() as client:
            with pytest.raises(RuntimeError, match="widget bug"):
                await run_turn(client, host, session, turn, api_key=KEY, store=store, on_event=on_event)
        assert turn.status == TurnStatus.ERROR and turn.error == "widget bug"
        assert store.load_session(session.id).turns[-1].status == TurnStatus.ERROR
    finally:
        store.close()
