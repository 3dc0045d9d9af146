"""Every network fault of issue 5, end to end through run_turn against the loopback server.

For each: the right error class and retry decision, one line naming the host and
the fix, the partial turn kept (in memory and in the store) and marked, and the
next request from the same session still correct: a broken turn is not replayed
unless the user asks for it (include_in_context=True).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from glmchat.turn_runner import run_turn
from glmchat.client import GlmClient
from glmchat.session import Session, Turn, TurnStatus
from glmchat.store import Store
from tests.glm_server import GlmServer, Reply

KEY = "sk-faults-Hn4Wq9Xe2Lp7"


@dataclass
class Fault:
    host_id: str
    replies: list[Reply]
    status: str
    kind: str | None = None
    retried: bool = False
    says: tuple[str, ...] = ()
    """Pieces the one-line message must contain (besides the host name)."""
    partial: str = ""
    """Answer text the turn keeps (TurnStatus.COMPLETE turns: the whole default answer)."""
    client: dict = field(default_factory=dict)


PARTIAL = Reply(reasoning="", content=["Partial ", "answer ", "here ", "that ", "goes on"], drop_after=2)

FAULTS = {
    "401": Fault("zai", [Reply.error(401)], TurnStatus.ERROR, "auth", says=("API key was rejected", "ZAI_API_KEY")),
    "403": Fault("zai", [Reply.error(403)], TurnStatus.ERROR, "auth", says=("access denied",)),
    "429-retry-after": Fault(
        "zai", [Reply.error(429, headers={"Retry-After": "1"})], TurnStatus.COMPLETE, retried=True, partial="You said: q2\n"
    ),
    "zai-1113": Fault("zai", [Reply.zai_error(1113)], TurnStatus.ERROR, "quota", says=("balance", "top up")),
    "zai-1301": Fault("zai", [Reply.zai_error(1301)], TurnStatus.ERROR, "content_filter", says=("content filter", "rephrase")),
    "zai-1302": Fault("zai", [Reply.zai_error(1302)], TurnStatus.COMPLETE, retried=True, partial="You said: q2\n"),
    "zai-1305": Fault("zai", [Reply.zai_error(1305)], TurnStatus.COMPLETE, retried=True, partial="You said: q2\n"),
    "zai-1308": Fault("zai-coding", [Reply.zai_error(1308)], TurnStatus.ERROR, "quota", says=("usage limit", "2026-01-08 17:06:43")),
    "zai-1309": Fault("zai-coding", [Reply.zai_error(1309)], TurnStatus.ERROR, "quota", says=("expired", "renew")),
    "zai-1310": Fault("zai-coding", [Reply.zai_error(1310)], TurnStatus.ERROR, "quota", says=("usage limit", "2026-01-12")),
    "zai-1261": Fault("bigmodel", [Reply.zai_error(1261)], TurnStatus.ERROR, "context_length", says=("context window", "new session")),
    "cerebras-429": Fault("cerebras", [Reply.cerebras_error()], TurnStatus.COMPLETE, retried=True, partial="You said: q2\n"),
    "cerebras-400": Fault(
        "cerebras",
        [Reply.cerebras_error(400, "Invalid temperature", "invalid_request_error", "wrong_api_format", "temperature")],
        TurnStatus.ERROR,
        "bad_request",
        says=("Invalid temperature", "settings"),
    ),
    "openrouter-in-stream": Fault(
        "openrouter",
        [Reply(reasoning="", content="Half of it", stream_error={"code": 502, "message": "Provider disconnected"})],
        TurnStatus.ERROR,
        "server",
        says=("Provider disconnected", "retry"),
        partial="Half of it",
    ),
    "500": Fault("sglang", [Reply.error(500)], TurnStatus.COMPLETE, retried=True, partial="You said: q2\n"),
    "503": Fault("vllm", [Reply.error(503, headers={"Retry-After": "0"})], TurnStatus.COMPLETE, retried=True, partial="You said: q2\n"),
    "read-timeout": Fault(
        "zai",
        [Reply(reasoning="", content=["Stalls ", "after ", "this"], stall_after=2)],
        TurnStatus.ERROR,
        "timeout",
        says=("stalled for 0.3 s", "what arrived is kept"),
        partial="Stalls after ",
        client={"read_timeout": 0.3},
    ),
    "drop": Fault("zai", [PARTIAL], TurnStatus.ERROR, "network", says=("dropped mid-answer", "what arrived is kept"), partial="Partial answer "),
    "malformed": Fault(
        "llamacpp",
        [Reply(reasoning="", content=["Good ", "start ", "then"], malformed_after=2)],
        TurnStatus.ERROR,
        "stream",
        says=("malformed chunk", "retry"),
        partial="Good start ",
    ),
    "sensitive": Fault(
        "zai", [Reply(reasoning="", content="Cut by filter", finish_reason="sensitive")], TurnStatus.TRUNCATED, "content_filter",
        says=("content filter", "rephrase"), partial="Cut by filter",
    ),
    "network_error": Fault(
        "zai", [Reply(reasoning="", content="Cut by network", finish_reason="network_error")], TurnStatus.TRUNCATED, "network",
        says=("network error", "retry"), partial="Cut by network",
    ),
    "length": Fault(
        "cerebras", [Reply(reasoning="Thinking that never ends", content="", finish_reason="length")], TurnStatus.TRUNCATED, "length",
        says=("max-tokens", "raise max tokens"),
    ),
    "no-done": Fault(
        "zai", [Reply(reasoning="", content="Ends without marker", done=False, finish=False)], TurnStatus.ERROR, "stream",
        says=("ended before the answer was complete",), partial="Ends without marker",
    ),
    "ollama-no-done": Fault(
        "ollama", [Reply(reasoning="", content="Ends without done", done=False)], TurnStatus.ERROR, "stream",
        says=("ended before the answer was complete",), partial="Ends without done",
    ),
}


async def send(client: GlmClient, host, session: Session, text: str, store: Store, thinking: bool = True) -> tuple[Turn, list]:
    events: list = []
    turn = session.new_turn(text, thinking=thinking)
    await run_turn(client, host, session, turn, api_key=KEY, store=store, on_event=events.append)
    return turn, events


def user_texts(record) -> list[str]:
    body = record.json
    if isinstance(body, list):  # Runware
        body = body[0]
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


def assistant_contents(record) -> list[str]:
    return [m.get("content") for m in record.json["messages"] if m["role"] == "assistant"]


@pytest.mark.parametrize("name", list(FAULTS))
async def test_fault(glm_server: GlmServer, tmp_path: Path, name: str) -> None:
    fault = FAULTS[name]
    host = glm_server.host(fault.host_id)
    session = Session(host=host.id, model=host.default_model)
    store = Store.open(tmp_path / "data")
    try:
        async with GlmClient(backoff=0.01, **fault.client) as client:
            first, _ = await send(client, host, session, "q1", store)
            assert first.status == TurnStatus.COMPLETE

            glm_server.enqueue(*fault.replies)
            before = len(glm_server.chat_requests())
            turn, events = await send(client, host, session, "q2", store)
            sent = len(glm_server.chat_requests()) - before

            # Right class and retry decision.
            retries = [e for e in events if type(e).__name__ == "Retrying"]
            assert bool(retries) == fault.retried
            assert sent == (1 + len(retries))
            assert turn.status == fault.status
            assert turn.content == fault.partial  # exactly what arrived, nothing lost, nothing invented
            if fault.status == TurnStatus.COMPLETE:
                assert turn.content == fault.partial and turn.error is None
                assert retries[0].error.retryable and retries[0].delay >= 0
            else:
                # One line naming the host and what to do.
                assert turn.error_kind == fault.kind
                assert turn.error.startswith(f"{host.name}: ") and " — " in turn.error and "\n" not in turn.error
                for piece in fault.says:
                    assert piece in turn.error, (piece, turn.error)
                assert KEY not in turn.error
                failed = [e for e in events if type(e).__name__ == "StreamFailed"]
                assert len(failed) == (1 if turn.status == TurnStatus.ERROR else 0)
            if name == "length":
                assert turn.reasoning == "Thinking that never ends" and turn.content == ""

            # The partial turn is kept, marked, in the store too.
            stored = store.load_session(session.id).turns[-1]
            assert (stored.id, stored.status, stored.content, stored.error) == (turn.id, turn.status, turn.content, turn.error)

            # The next request from the same session is still correct.
            nxt, _ = await send(client, host, session, "q3", store)
            assert nxt.status == TurnStatus.COMPLETE
            expected = ["q1", "q2", "q3"] if fault.status == TurnStatus.COMPLETE else ["q1", "q3"]
            assert user_texts(glm_server.last) == expected
            if fault.status != TurnStatus.COMPLETE and fault.partial:
                assert fault.partial not in assistant_contents(glm_server.last)

            # ... and the user can choose to include the broken turn after all.
            if fault.status != TurnStatus.COMPLETE:
                turn.include_in_context = True
                await send(client, host, session, "q4", store)
                assert user_texts(glm_server.last) == ["q1", "q2", "q3", "q4"]
                if fault.partial:
                    assert fault.partial in assistant_contents(glm_server.last)
    finally:
        store.close()


async def test_stream_with_a_finish_reason_but_no_done_marker_is_complete(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    session = Session(host="zai")
    glm_server.enqueue(Reply(reasoning="r", content="whole answer", done=False))
    turn = session.new_turn("q")
    async with GlmClient() as client:
        await run_turn(client, host, session, turn, api_key=KEY)
    assert turn.status == TurnStatus.COMPLETE and turn.content == "whole answer" and turn.finish_reason == "stop"


async def test_connect_timeout_is_retried_then_reported(tmp_path: Path) -> None:
    # The one fault faked below the socket: a connect that never completes is slow to stage for real.
    attempts: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        raise httpx.ConnectTimeout("timed out", request=request)

    from glmchat.hosts import BUILTIN_HOSTS

    host = BUILTIN_HOSTS["zai"]
    session = Session(host="zai")
    turn = session.new_turn("hello")
    events: list = []
    store = Store.open(tmp_path / "data")
    try:
        async with GlmClient(connect_timeout=2, max_retries=2, backoff=0.01, transport=httpx.MockTransport(handler)) as client:
            await run_turn(client, host, session, turn, api_key=KEY, store=store, on_event=events.append)
        assert [type(e).__name__ for e in events] == ["Retrying", "Retrying", "StreamFailed"]
        assert len(attempts) == 3
        assert turn.status == TurnStatus.ERROR and turn.error_kind == "timeout"
        assert turn.error == "Z.ai: could not connect to api.z.ai within 2 s — check your network and the host's base URL"
        assert all(r.headers["authorization"] == f"Bearer {KEY}" for r in attempts)
        assert store.load_session(session.id).turns[-1].status == TurnStatus.ERROR
        assert session.history() == []  # the failed turn is not replayed
    finally:
        store.close()
