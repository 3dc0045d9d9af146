"""Tool turns end to end: run_turn with the MCP tool runner, the loopback GLM server and the real MCP server.

Every host that takes tools plays a 3-step turn (parallel calls in step 1, one
call in step 2, the answer in step 3) and then a follow-up turn. The GLM
server checks every replayed step byte for byte (reasoning in the host's
field, the calls exactly as it sent them, one result per call in call order);
the follow-up is sent again from a session reloaded from the store and must
be the very same request.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from glmchat.client import GlmClient
from glmchat.config import ToolSettings, parse_mcp_servers
from glmchat.protocol import build_request, supports_tools
from glmchat.protocol.messages import STOPPED_CALL
from glmchat.session import Session, ToolCall, TurnStatus
from glmchat.store import Store
from glmchat.tools import ToolBox
from glmchat.tools.runner import Approval, CallEvent, McpToolRunner, allow_all
from glmchat.turn_runner import run_turn
from tests.glm_server import CHAT_HOSTS, GlmServer, Reply
from tests.mcp_server import StdioMcpServer, read_call_log

KEY = "sk-tools-Qm4Rt8Zx2Lp6"
TOOL_HOSTS = CHAT_HOSTS + ("ollama",)

# Reasoning and arguments that any strip, re-encoding or JSON round trip would change.
R1 = " Plan:\r\n\t1. echo — 漢字 🚀\n  trailing  \n"
R2 = "\nThe sum is in; now the note. \\n stays literal. "
R3 = "Both known. "
ECHO_ARGS = '{"text":  "naïve\\u00e9 — 🚀  ",\n "extra": null}'
ADD_ARGS = '{"a": 2, "b": 0.5}'
NOTE_ARGS = '{"name":"todo"}'


def tool_turn() -> list[Reply]:
    return [
        Reply(reasoning=R1, content="", chunk_tokens=2, tool_calls=[
            {"name": "t__echo", "arguments": ECHO_ARGS},
            {"name": "t__add", "arguments": ADD_ARGS},
        ]),
        Reply(reasoning=R2, content="Reading.", chunk_tokens=3, tool_calls=[{"name": "t__read_note", "arguments": NOTE_ARGS}]),
        Reply(reasoning=R3, content="2.5, and water the plants."),
    ]


@asynccontextmanager
async def mcp_box(tmp_path: Path, settings: ToolSettings | None = None, **table: Any) -> AsyncIterator[ToolBox]:
    server = StdioMcpServer(call_log=tmp_path / "calls.jsonl")
    parsed, warnings = parse_mcp_servers({"t": {"command": server.command, **table}})
    assert warnings == []
    box = ToolBox(list(parsed.values()), settings or ToolSettings())
    try:
        notices = await box.start()
        assert notices == []
        yield box
    finally:
        await box.close()


def messages_of(record: Any) -> list[dict[str, Any]]:
    return record.json["messages"]


@pytest.mark.parametrize("host_id", TOOL_HOSTS)
async def test_a_three_step_tool_turn_and_a_follow_up_replay_every_step_exactly(
    glm_server: GlmServer, tmp_path: Path, host_id: str
) -> None:
    host = glm_server.host(host_id)
    key = KEY if host.key_env else None
    session = Session(host=host_id, model=host.default_model, preserve_thinking=True)
    events: list[CallEvent] = []
    store = Store.open(tmp_path / "data")
    try:
        async with mcp_box(tmp_path) as box, GlmClient() as client:
            runner = McpToolRunner(box, approve=allow_all, on_call=events.append)
            glm_server.enqueue(*tool_turn(), Reply(reasoning="Again. ", content="Still 2.5."))
            turn = session.new_turn("Sum and my todo?", thinking=True)
            await run_turn(client, host, session, turn, api_key=key, store=store, tools=runner)
            assert turn.status == TurnStatus.COMPLETE, turn.error
            loop_requests = glm_server.chat_requests()
            follow = session.new_turn("And again?", thinking=True)
            await run_turn(client, host, session, follow, api_key=key, store=store, tools=runner)
            assert follow.status == TurnStatus.COMPLETE, follow.error
        requests = glm_server.chat_requests()
        assert len(requests) == 4 and requests[:3] == loop_requests

        # What was kept: each step's reasoning exact, the calls as sent, the results complete and in order.
        assert [s.reasoning for s in turn.steps] == [R1, R2, R3]
        assert [[c.name for c in s.tool_calls] for s in turn.steps] == [["t__echo", "t__add"], ["t__read_note"], []]
        if host_id != "ollama":  # Ollama sends arguments as an object: its string is ours
            assert [c.arguments for c in turn.steps[0].tool_calls] == [ECHO_ARGS, ADD_ARGS]
        assert json.loads(turn.steps[0].tool_calls[0].arguments) == json.loads(ECHO_ARGS)
        contents = [[r.content for r in s.tool_results] for s in turn.steps]
        assert contents[0][0] == "naïve\u00e9 — 🚀  " and contents[0][1] == "2.5"
        assert contents[1] == ["water the plants\nreply to Ana"] and contents[2] == []
        assert [r.call_id for r in turn.steps[0].tool_results] == [c.id for c in turn.steps[0].tool_calls]
        assert [(e.call.name, e.result is not None) for e in events] == [
            ("t__echo", False), ("t__echo", True), ("t__add", False), ("t__add", True),
            ("t__read_note", False), ("t__read_note", True),
        ]

        # Every request: no replay problem, and one more replayed step each time.
        for record in requests:
            assert record.replay_problems == [], record.replay_problems
        assert [r.replayed_steps for r in requests] == [0, 1, 2, 3]
        # The tool array is the same in every request of the loop (it keeps the prompt cache warm).
        assert all(r.json["tools"] == requests[0].json["tools"] for r in requests)
        # The follow-up reuses the whole earlier prefix: the last loop request and what it generated.
        assert requests[3].prompt.startswith(requests[2].prompt + requests[2].generation)

        # After a restart: the same follow-up built from the store is the very same request.
        reloaded = store.load_session(session.id)
        assert [s.to_dict() for s in reloaded.turns[0].steps] == [s.to_dict() for s in turn.steps]
        del reloaded.turns[-1]
        again = reloaded.new_turn("And again?", thinking=True)
        rebuilt = build_request(host, reloaded, again, tools=box.chat_tools())
        assert rebuilt.body["messages"] == messages_of(requests[3])
    finally:
        store.close()


@pytest.mark.parametrize("host_id", ["zai", "vllm"])
async def test_arguments_streamed_in_pieces_are_kept_whole_and_replayed_exact(
    glm_server: GlmServer, tmp_path: Path, host_id: str
) -> None:
    """Z.ai sends each call whole unless asked to stream; OpenAI-style servers send pieces. Both end up the same."""
    host = glm_server.host(host_id)
    session = Session(host=host_id, model=host.default_model)
    steps = tool_turn()
    for reply in steps[:2]:
        reply.tool_fragments = True
    glm_server.enqueue(*steps)
    async with mcp_box(tmp_path) as box, GlmClient() as client:
        turn = session.new_turn("q", thinking=True)
        await run_turn(client, host, session, turn, api_key=KEY, tools=McpToolRunner(box, approve=allow_all))
    assert turn.status == TurnStatus.COMPLETE, turn.error
    assert [c.arguments for c in turn.steps[0].tool_calls] == [ECHO_ARGS, ADD_ARGS]
    assert all(r.replay_problems == [] for r in glm_server.chat_requests())


async def test_denied_and_unknown_calls_never_reach_the_server_and_the_model_is_told(
    glm_server: GlmServer, tmp_path: Path
) -> None:
    host = glm_server.host("zai")
    session = Session(host="zai")
    asked: list[str] = []

    async def approve(call: ToolCall, spec: Any) -> Approval:
        asked.append(call.name)
        return Approval.DENY if call.name == "t__echo" else Approval.ALWAYS

    glm_server.enqueue(
        Reply(reasoning="r1", tool_calls=[{"name": "t__echo", "arguments": '{"text":"x"}'}, {"name": "nope", "arguments": "{}"},
                                          {"name": "t__add", "arguments": ADD_ARGS}]),
        Reply(reasoning="r2", tool_calls=[{"name": "t__add", "arguments": '{"a": 1, "b": 1}'}]),
        Reply(content="ok"),
    )
    async with mcp_box(tmp_path) as box, GlmClient() as client:
        turn = session.new_turn("q")
        await run_turn(client, host, session, turn, api_key=KEY, tools=McpToolRunner(box, approve=approve))
    assert turn.status == TurnStatus.COMPLETE
    # Asked once for echo (denied) and once for add ("always": not asked again in step 2); never for an unknown tool.
    assert asked == ["t__echo", "t__add"]
    first = turn.steps[0].tool_results
    assert [r.is_error for r in first] == [True, True, False]
    assert "declined" in first[0].content and "no tool named 'nope'" in first[1].content
    assert [c["tool"] for c in read_call_log(tmp_path / "calls.jsonl")] == ["add", "add"]
    sent = [m for m in messages_of(glm_server.chat_requests()[1]) if m["role"] == "tool"]
    assert [m["content"] for m in sent] == [r.content for r in first]
    assert all(r.replay_problems == [] for r in glm_server.chat_requests())


async def test_steps_per_turn_are_capped_and_the_last_step_is_offered_no_tools(glm_server: GlmServer, tmp_path: Path) -> None:
    host = glm_server.host("zai")
    session = Session(host="zai")
    loop = [Reply(tool_calls=[{"name": "t__add", "arguments": ADD_ARGS}]) for _ in range(2)]
    glm_server.enqueue(*loop, Reply(content="giving up"))
    async with mcp_box(tmp_path, ToolSettings(max_steps=3)) as box, GlmClient() as client:
        runner = McpToolRunner(box, approve=allow_all)
        assert runner.max_steps == 3
        turn = session.new_turn("q")
        await run_turn(client, host, session, turn, api_key=KEY, tools=runner)
    requests = glm_server.chat_requests()
    assert len(requests) == 3 and turn.status == TurnStatus.COMPLETE
    assert ["tools" in r.json for r in requests] == [True, True, False]


async def test_a_big_result_is_stored_whole_and_sent_cut_the_same_way_on_every_replay(
    glm_server: GlmServer, tmp_path: Path
) -> None:
    host = glm_server.host("zai")
    session = Session(host="zai")
    glm_server.enqueue(Reply(tool_calls=[{"name": "t__big", "arguments": '{"megabytes": 2}'}]), Reply(content="long"),
                       Reply(content="next"))
    async with mcp_box(tmp_path, ToolSettings(max_result_chars=1000)) as box, GlmClient() as client:
        runner = McpToolRunner(box, approve=allow_all)
        turn = session.new_turn("q")
        await run_turn(client, host, session, turn, api_key=KEY, tools=runner)
        follow = session.new_turn("q2")
        await run_turn(client, host, session, follow, api_key=KEY, tools=runner)
    result = turn.steps[0].tool_results[0]
    assert len(result.content) == 2_000_000 and result.sent_limit == 1000
    sent = [[m["content"] for m in messages_of(r) if m["role"] == "tool"] for r in glm_server.chat_requests()[1:]]
    assert sent[0] == sent[1] and sent[0][0].startswith(result.content[:1000])
    assert len(sent[0][0]) < 1100 and "1,999,000 more characters" in sent[0][0]


def test_runware_takes_no_tools_and_every_other_host_does() -> None:
    from glmchat.hosts import BUILTIN_HOSTS

    assert [h for h, host in BUILTIN_HOSTS.items() if not supports_tools(host)] == ["runware"]


async def test_esc_while_a_tool_runs_keeps_the_finished_steps_and_the_next_request_is_well_formed(
    glm_server: GlmServer, tmp_path: Path
) -> None:
    host = glm_server.host("zai")
    session = Session(host="zai")
    glm_server.enqueue(
        Reply(reasoning="first ", tool_calls=[{"name": "t__add", "arguments": ADD_ARGS}]),
        Reply(reasoning="second ", content="waiting", tool_calls=[{"name": "t__hang", "arguments": "{}"}]),
        Reply(content="after"),
    )
    store = Store.open(tmp_path / "data")
    try:
        async with mcp_box(tmp_path) as box, GlmClient() as client:
            hanging = asyncio.Event()

            def on_call(event: CallEvent) -> None:
                if event.call.name == "t__hang" and event.result is None:
                    hanging.set()

            turn = session.new_turn("q")
            task = asyncio.create_task(run_turn(client, host, session, turn, api_key=KEY, store=store,
                                                tools=McpToolRunner(box, approve=allow_all, on_call=on_call)))
            await asyncio.wait_for(hanging.wait(), 30)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert turn.status == TurnStatus.STOPPED
            stored = store.load_session(session.id).turns[-1]
            assert [s.reasoning for s in stored.steps] == ["first ", "second "]
            assert [r.content for r in stored.steps[0].tool_results] == ["2.5"]
            assert stored.steps[1].tool_calls and not stored.steps[1].tool_results
            # The user keeps the stopped turn in the context: its unanswered call goes back, said to be stopped.
            turn.include_in_context = True
            follow = session.new_turn("go on")
            await run_turn(client, host, session, follow, api_key=KEY, store=store, tools=McpToolRunner(box, approve=allow_all))
        assert follow.status == TurnStatus.COMPLETE
        record = glm_server.chat_requests()[-1]
        assert record.replay_problems == []
        roles = [(m["role"], bool(m.get("tool_calls"))) for m in messages_of(record)]
        assert roles == [("user", False), ("assistant", True), ("tool", False), ("assistant", True), ("tool", False),
                         ("user", False)]
        assert messages_of(record)[4]["content"] == STOPPED_CALL
    finally:
        store.close()


def test_the_controller_checks_tool_servers_and_says_which_cannot_be_used(tmp_path: Path) -> None:
    from glmchat.config import Config, Paths
    from glmchat.controller import Controller
    from glmchat.errors import ConfigError
    from glmchat.hosts import BUILTIN_HOSTS

    config = Config(mcp={"kit": {"command": ["x"]}, "off": {"command": ["y"], "enabled": False}})
    controller = Controller(config, Paths(tmp_path / "config.toml", tmp_path, tmp_path, tmp_path / "log"))
    zai, runware = BUILTIN_HOSTS["zai"], BUILTIN_HOSTS["runware"]
    assert controller.check_tools(zai, ["kit", "kit"]) == ["kit"]
    with pytest.raises(ConfigError, match="no MCP server 'nope' in the config"):
        controller.check_tools(zai, ["nope"])
    with pytest.raises(ConfigError, match="disabled"):
        controller.check_tools(zai, ["off"])
    with pytest.raises(ConfigError, match="takes no tools"):
        controller.check_tools(runware, ["kit"])
    assert controller.check_tools(runware, []) == []
    # The TUI's lenient form: what can be used, and one line about the rest.
    assert controller.usable_tools(zai, ["kit", "gone"]) == (["kit"], "MCP server(s) not in the config or disabled, not used: gone")
    names, problem = controller.usable_tools(runware, ["kit"])
    assert names == [] and problem is not None and "takes no tools" in problem


async def test_a_tool_turn_with_a_streamable_http_server(glm_server: GlmServer, tmp_path: Path) -> None:
    from tests.mcp_server import http_server

    host = glm_server.host("zai")
    session = Session(host="zai")
    glm_server.enqueue(*tool_turn())
    with http_server(tmp_path) as mcp:
        parsed, _ = parse_mcp_servers({"t": {"url": mcp.url}})
        async with ToolBox(list(parsed.values())) as box, GlmClient() as client:
            turn = session.new_turn("q", thinking=True)
            await run_turn(client, host, session, turn, api_key=KEY, tools=McpToolRunner(box, approve=allow_all))
        assert [c["tool"] for c in mcp.calls()] == ["echo", "add", "read_note"]
    assert turn.status == TurnStatus.COMPLETE
    assert [r.content for r in turn.steps[1].tool_results] == ["water the plants\nreply to Ana"]
    assert all(r.replay_problems == [] for r in glm_server.chat_requests())
