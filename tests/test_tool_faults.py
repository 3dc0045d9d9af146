"""Faults in a tool turn: the tool server crashes, hangs, reports an error, returns 10 MB; the host drops
mid-step. Nothing finished is lost (checked in the store), and the next request is well-formed (the
loopback GLM server's replay check)."""

from __future__ import annotations

from pathlib import Path

from glmchat.client import GlmClient
from glmchat.config import ToolSettings
from glmchat.session import Session, TurnStatus
from glmchat.store import Store
from glmchat.tools.runner import McpToolRunner, allow_all
from glmchat.turn_runner import run_turn
from tests.glm_server import GlmServer, Reply
from tests.mcp_server import big_text
from tests.test_tool_turns import KEY, mcp_box


def call(name: str, arguments: str = "{}") -> dict[str, str]:
    return {"name": f"t__{name}", "arguments": arguments}


async def play(glm_server: GlmServer, tmp_path: Path, replies: list[Reply], settings: ToolSettings | None = None,
               **table) -> tuple[Session, Store]:
    """One tool turn, then a follow-up; returns the session and the (open) store."""
    host = glm_server.host("zai")
    session = Session(host="zai")
    glm_server.enqueue(*replies, Reply(content="follow-up answer"))
    store = Store.open(tmp_path / "data")
    async with mcp_box(tmp_path, settings, **table) as box, GlmClient() as client:
        runner = McpToolRunner(box, approve=allow_all)
        await run_turn(client, host, session, session.new_turn("q"), api_key=KEY, store=store, tools=runner)
        await run_turn(client, host, session, session.new_turn("next"), api_key=KEY, store=store, tools=runner)
    return session, store


def assert_well_formed(glm_server: GlmServer) -> None:
    for record in glm_server.chat_requests():
        assert record.replay_problems == [], record.replay_problems


async def test_a_server_that_crashes_mid_call_is_a_result_and_the_next_call_restarts_it(
    glm_server: GlmServer, tmp_path: Path
) -> None:
    session, store = await play(glm_server, tmp_path, [
        Reply(reasoning="r1 ", content="", tool_calls=[call("crash")]),
        Reply(reasoning="r2 ", content="", tool_calls=[call("add", '{"a": 1, "b": 2}')]),
        Reply(content="done"),
    ])
    try:
        turn = session.turns[0]
        assert turn.status == TurnStatus.COMPLETE and turn.content == "done"
        crashed, added = turn.steps[0].tool_results[0], turn.steps[1].tool_results[0]
        assert crashed.is_error and "stopped during the call" in crashed.content
        assert not added.is_error and added.content == "3.0"
        assert store.load_session(session.id).turns[0].steps[0].tool_results[0].content == crashed.content
        assert_well_formed(glm_server)
    finally:
        store.close()


async def test_a_hanging_call_times_out_into_a_result(glm_server: GlmServer, tmp_path: Path) -> None:
    session, store = await play(glm_server, tmp_path, [
        Reply(content="", tool_calls=[call("hang"), call("echo", '{"text": "still here"}')]),
        Reply(content="ok"),
    ], timeout=0.5)
    try:
        results = session.turns[0].steps[0].tool_results
        assert results[0].is_error and "did not answer within 0.5 seconds" in results[0].content
        assert results[1].content == "still here"  # the server stayed usable, results in call order
        assert_well_formed(glm_server)
    finally:
        store.close()


async def test_a_tool_error_is_read_by_the_model(glm_server: GlmServer, tmp_path: Path) -> None:
    session, store = await play(glm_server, tmp_path, [
        Reply(content="", tool_calls=[call("fail", '{"message": "disk full ✗"}')]),
        Reply(content="sorry"),
    ])
    try:
        result = session.turns[0].steps[0].tool_results[0]
        assert result.is_error and "disk full ✗" in result.content
        sent = [m for m in glm_server.chat_requests()[1].json["messages"] if m["role"] == "tool"]
        assert sent[0]["content"] == result.content
        assert_well_formed(glm_server)
    finally:
        store.close()


async def test_a_10_mb_result_is_stored_whole_and_sent_cut(glm_server: GlmServer, tmp_path: Path) -> None:
    session, store = await play(glm_server, tmp_path, [
        Reply(content="", tool_calls=[call("big", '{"megabytes": 10}')]),
        Reply(content="that was long"),
    ])
    try:
        stored = store.load_session(session.id).turns[0].steps[0].tool_results[0]
        assert stored.content == big_text(10)  # complete, byte for byte
        limit = ToolSettings().max_result_chars
        for record in glm_server.chat_requests()[1:]:
            sent = [m for m in record.json["messages"] if m["role"] == "tool"][0]["content"]
            assert sent.startswith(stored.content[:limit]) and len(sent) < limit + 100
        assert_well_formed(glm_server)
    finally:
        store.close()


async def test_a_host_that_drops_mid_step_keeps_the_finished_steps(glm_server: GlmServer, tmp_path: Path) -> None:
    session, store = await play(glm_server, tmp_path, [
        Reply(reasoning="step one ", content="", tool_calls=[call("add", '{"a": 2, "b": 2}')]),
        Reply(reasoning="step two is long " * 20, content="partial", chunk_tokens=1, drop_after=5),
    ])
    try:
        turn = store.load_session(session.id).turns[0]
        assert turn.status == TurnStatus.ERROR and turn.error_kind == "network"
        assert turn.steps[0].reasoning == "step one " and turn.steps[0].tool_results[0].content == "4.0"
        assert turn.steps[1].reasoning and "step two".startswith(turn.steps[1].reasoning[:8])
        # The failed turn is not replayed unless the user keeps it; the follow-up is well-formed either way.
        follow = glm_server.chat_requests()[-1]
        assert [m["role"] for m in follow.json["messages"]] == ["user"]
        assert_well_formed(glm_server)
    finally:
        store.close()
