"""Tool wire shapes per dialect, checked by the loopback server's replay check."""

from __future__ import annotations

import pytest

from glmchat.hosts import BUILTIN_HOSTS
from glmchat.protocol.tool_messages import supports_tools, tool_result_message, tools_fields
from tests.glm_server import GlmServer
from tests.test_glm_server import parse_step, post, replay, request, three_steps

TOOL = {"type": "function", "function": {"name": "notes__read", "description": "d", "parameters": {"type": "object", "properties": {}}}}


def test_which_hosts_take_tools() -> None:
    assert [h for h in BUILTIN_HOSTS if not supports_tools(BUILTIN_HOSTS[h])] == ["runware"]
    assert tools_fields(BUILTIN_HOSTS["zai"], [TOOL]) == {"tools": [TOOL]}
    assert tools_fields(BUILTIN_HOSTS["ollama"], [TOOL]) == {"tools": [TOOL]}
    assert tools_fields(BUILTIN_HOSTS["zai"], []) == {} and tools_fields(BUILTIN_HOSTS["runware"], [TOOL]) == {}


@pytest.mark.parametrize("host_id", ["zai", "cerebras", "openrouter", "vllm", "ollama"])
def test_results_built_here_pass_the_servers_replay_check(glm_server: GlmServer, host_id: str) -> None:
    host = BUILTIN_HOSTS[host_id]
    glm_server.enqueue(*three_steps()[:1])
    messages = [{"role": "user", "content": "Weather and my todo?"}]
    step = parse_step(host_id, post(glm_server, host_id, request(host_id, messages, **tools_fields(host, [TOOL]))).content)
    assert glm_server.last.json["tools"] == [TOOL]
    messages.append(replay(host_id, step))
    messages += [tool_result_message(host, call_id=c.get("id"), name=c["name"], content=f"r{i}") for i, c in enumerate(step["calls"])]
    post(glm_server, host_id, request(host_id, messages))
    assert glm_server.last.replayed_steps == 1 and glm_server.last.replay_problems == []
