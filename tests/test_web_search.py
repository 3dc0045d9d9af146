"""Z.ai's built-in web search: offered per session, its sources kept with the step, stored, never replayed."""

from __future__ import annotations

import json
from pathlib import Path

from glmchat.client import GlmClient
from glmchat.hosts import BUILTIN_HOSTS
from glmchat.protocol import build_request, new_parser
from glmchat.protocol.events import WebSearchResults
from glmchat.session import Session, TurnStatus
from glmchat.store import Store
from glmchat.turn_runner import run_turn
from tests.glm_server import GlmServer, Reply

KEY = "sk-search-Jk3Lm9Np2Qr5"
SOURCES = [
    {"icon": "", "title": "Zürich weather — 漢字", "link": "https://example.org/a", "media": "Example",
     "publish_date": "2025-01-02", "content": "Cold, 2 °C.\n", "refer": "ref_1"},
    {"title": "Second", "link": "https://example.org/b", "content": "", "refer": "ref_2"},
]


async def test_a_search_turn_offers_the_tool_keeps_the_sources_and_does_not_replay_them(
    glm_server: GlmServer, tmp_path: Path
) -> None:
    host = glm_server.host("zai")
    session = Session(host="zai", web_search=True)
    glm_server.enqueue(Reply(reasoning="Search first. ", content="It is cold [ref_1].", web_search=SOURCES),
                       Reply(content="ok"))
    store = Store.open(tmp_path / "data")
    try:
        async with GlmClient() as client:
            turn = session.new_turn("weather in Zürich?", thinking=True)
            await run_turn(client, host, session, turn, api_key=KEY, store=store)
            assert turn.status == TurnStatus.COMPLETE
            follow = session.new_turn("thanks", thinking=True)
            await run_turn(client, host, session, follow, api_key=KEY, store=store)
        first, second = glm_server.chat_requests()
        assert first.json["tools"] == [{"type": "web_search", "web_search": {
            "enable": True, "search_engine": "search_pro", "search_result": True}}]
        assert first.json["tool_choice"] == "auto"
        assert turn.steps[0].web_search == SOURCES
        assert store.load_session(session.id).turns[0].steps[0].web_search == SOURCES
        assert "ref_1" not in json.dumps(second.json["messages"][1]).replace("[ref_1]", "")  # sources are not sent back
        assert second.replay_problems == [] and follow.steps[0].web_search is None
    finally:
        store.close()


def test_only_the_zai_family_gets_the_search_tool_and_only_when_the_session_has_it_on() -> None:
    for host_id, offered in (("zai", True), ("bigmodel", True), ("zai-coding", True), ("vllm", False),
                             ("cerebras", False), ("ollama", False)):
        host = BUILTIN_HOSTS[host_id]
        for on in (True, False):
            session = Session(host=host_id, web_search=on)
            body = build_request(host, session, session.new_turn("q")).body
            assert ("tools" in body) == (on and offered), (host_id, on)


def test_search_and_mcp_tools_are_offered_together() -> None:
    session = Session(host="zai", web_search=True)
    tool = {"type": "function", "function": {"name": "kit__add", "parameters": {"type": "object"}}}
    body = build_request(BUILTIN_HOSTS["zai"], session, session.new_turn("q"), tools=[tool]).body
    assert [t["type"] for t in body["tools"]] == ["function", "web_search"]


def test_a_non_streamed_reply_carries_the_sources() -> None:
    body = {"choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": "x"}}],
            "web_search": SOURCES}
    parser = new_parser(BUILTIN_HOSTS["zai"], stream=False)
    events = parser.feed(json.dumps(body).encode()) + parser.close()
    assert [e.items for e in events if isinstance(e, WebSearchResults)] == [SOURCES]
