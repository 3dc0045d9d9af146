"""GlmClient against the loopback server: headers, transport rules, retries, cancellation, secrets."""

from __future__ import annotations

import asyncio
import inspect
import socket
import subprocess
import sys
import traceback
from pathlib import Path

import pytest

from glmchat.client import USER_AGENT, GlmClient
from glmchat.errors import ConfigError, NetworkError, RateLimitError, ServerError
from glmchat.hosts import BUILTIN_HOSTS
from glmchat.protocol import build_request, encode_body
from glmchat.protocol.events import ContentDelta, Finish, Retrying, StreamFailed
from glmchat.session import Session
from tests.glm_server import GlmServer, Reply

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-test-Zq8vLw3Tn5Rk"
TLS_PEM = ROOT / "tests" / "data" / "selfsigned-loopback.pem"  # a throwaway self-signed pair for 127.0.0.1


def request_for(host, text: str = "hello", thinking: bool = True, stream: bool = True):
    session = Session(host=host.id, model=host.default_model)
    turn = session.new_turn(text, thinking=thinking)
    return build_request(host, session, turn, stream=stream)


async def run(client: GlmClient, host, request, key: str | None = KEY) -> list:
    return [event async for event in client.stream(host, request, key)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -- what goes on the wire ---------------------------------------------------------------------------------


async def test_request_carries_key_accept_user_agent_and_the_encoded_body(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    request = request_for(host, "héllo 🚀")
    async with GlmClient() as client:
        events = await run(client, host, request)
    assert isinstance(events[-1], Finish)
    record = glm_server.last
    assert record.header("Authorization") == f"Bearer {KEY}"
    assert record.header("Accept") == "text/event-stream"
    assert record.header("User-Agent") == USER_AGENT and USER_AGENT.startswith("glmchat/")
    assert record.header("Content-Type") == "application/json"
    assert record.body == encode_body(request.body)


async def test_no_authorization_header_without_a_key_and_ndjson_accept_for_ollama(glm_server: GlmServer) -> None:
    host = glm_server.host("ollama")
    async with GlmClient() as client:
        events = await run(client, host, request_for(host), key=None)
    assert isinstance(events[-1], Finish)
    assert glm_server.last.header("Authorization") is None
    assert glm_server.last.header("Accept") == "application/x-ndjson"


async def test_surrounding_whitespace_of_a_key_is_trimmed(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    async with GlmClient() as client:
        await run(client, host, request_for(host), key=f"  {KEY}\n")
    assert glm_server.last.header("Authorization") == f"Bearer {KEY}"


async def test_a_key_that_cannot_go_in_a_header_is_refused_before_sending(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    bad_key = "sk-abc def\u00e9"
    async with GlmClient() as client:
        events = await run(client, host, request_for(host), key=bad_key)
    assert len(events) == 1 and isinstance(events[0].error, ConfigError)
    assert "API key" in events[0].error.message and bad_key not in events[0].error.message
    assert glm_server.chat_requests() == []


async def test_plain_http_to_a_remote_host_is_refused_without_a_request() -> None:
    host = BUILTIN_HOSTS["zai"].with_overrides({"base_url": "http://api.example.com/v4"})
    async with GlmClient() as client:
        events = await run(client, host, request_for(host))
    assert len(events) == 1 and isinstance(events[0].error, ConfigError)
    assert "http://" in events[0].error.message and "allow_insecure_http" in events[0].error.message


async def test_non_streaming_request(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    async with GlmClient() as client:
        events = await run(client, host, request_for(host, "one shot", stream=False))
    assert glm_server.last.header("Accept") == "application/json"
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "You said: one shot\n"
    assert isinstance(events[-1], Finish)


async def test_one_client_serves_many_requests_and_closes_twice_safely(glm_server: GlmServer) -> None:
    client = GlmClient()
    for host_id in ("zai", "cerebras", "ollama"):
        host = glm_server.host(host_id)
        assert isinstance((await run(client, host, request_for(host)))[-1], Finish)
    await client.aclose()
    await client.aclose()


# -- TLS and imports ------------------------------------------------------------------------------------------


async def test_tls_verification_is_always_on_and_cannot_be_turned_off() -> None:
    assert "verify" not in inspect.signature(GlmClient).parameters
    with GlmServer(tls=str(TLS_PEM)) as server:
        host = server.host("zai")
        assert host.base_url.startswith("https://127.0.0.1:")
        async with GlmClient(backoff=0.01) as client:
            events = await run(client, host, request_for(host))
    assert len(events) == 1  # a bad certificate is not retried
    error = events[0].error
    assert isinstance(error, NetworkError) and not error.retryable
    assert error.message.startswith("Z.ai: TLS certificate") and "cannot be turned off" in error.message
    assert server.chat_requests() == []  # nothing was sent over the unverified connection


def test_importing_glmchat_client_and_chat_does_not_import_httpx() -> None:
    code = "import sys, glmchat.client, glmchat.turn_runner; print('httpx' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- retries ----------------------------------------------------------------------------------------------------


def test_backoff_grows_exponentially_with_jitter_and_a_cap() -> None:
    client = GlmClient(backoff=1.0, max_backoff=5.0)
    error = ServerError("x")
    for attempt, (low, high) in {1: (0.5, 1.0), 2: (1.0, 2.0), 3: (2.0, 4.0), 4: (2.5, 5.0), 9: (2.5, 5.0)}.items():
        delays = {client._retry_delay(error, attempt)[0] for _ in range(50)}
        assert all(low <= d <= high for d in delays)
        assert len(delays) > 1  # jittered
    honoured, same = client._retry_delay(RateLimitError("x", retry_after=3.0), 1)
    assert honoured == 3.0 and same.message == "x"


async def test_retries_stop_after_max_retries_and_resend_the_same_bytes(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    glm_server.enqueue(*[Reply.error(500)] * 5)
    async with GlmClient(max_retries=2, backoff=0.01) as client:
        events = await run(client, host, request_for(host))
    assert [type(e) for e in events] == [Retrying, Retrying, StreamFailed]
    assert [e.attempt for e in events[:2]] == [1, 2]
    assert isinstance(events[-1].error, ServerError) and events[-1].error.status == 500
    bodies = {r.body for r in glm_server.chat_requests()}
    assert len(glm_server.chat_requests()) == 3 and len(bodies) == 1


async def test_connection_reset_before_the_first_byte_is_retried(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    glm_server.enqueue(Reply(hangup=True))
    async with GlmClient(backoff=0.01) as client:
        events = await run(client, host, request_for(host))
    retry = events[0]
    assert isinstance(retry, Retrying) and isinstance(retry.error, NetworkError)
    assert "before the answer began" in retry.error.message
    assert isinstance(events[-1], Finish) and len(glm_server.chat_requests()) == 2


async def test_a_stream_that_broke_after_the_first_byte_is_never_retried(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    glm_server.enqueue(Reply(reasoning="", content="one two three four", drop_after=2))
    async with GlmClient(backoff=0.01) as client:
        events = await run(client, host, request_for(host))
    assert not any(isinstance(e, Retrying) for e in events)
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "one two"
    assert isinstance(events[-1].error, NetworkError) and "dropped mid-answer" in events[-1].error.message
    assert len(glm_server.chat_requests()) == 1


async def test_retry_after_beyond_the_cap_fails_with_when_to_retry(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    glm_server.enqueue(Reply.error(429, headers={"Retry-After": "3600"}))
    async with GlmClient(max_retry_wait=60) as client:
        events = await run(client, host, request_for(host))
    assert len(events) == 1
    error = events[0].error
    assert isinstance(error, RateLimitError) and error.retry_after == 3600
    assert error.message.startswith("Z.ai: rate limited") and "the host asks to wait 60 min: try later" in error.message
    assert "\n" not in error.message and len(glm_server.chat_requests()) == 1


async def test_connection_refused_names_host_and_address(glm_server: GlmServer) -> None:
    port = free_port()
    host = glm_server.host("vllm", base_url=f"http://127.0.0.1:{port}/vllm")
    async with GlmClient(max_retries=1, backoff=0.01) as client:
        events = await run(client, host, request_for(host), key=None)
    assert [type(e) for e in events] == [Retrying, StreamFailed]
    message = events[-1].error.message
    assert message.startswith(f"vLLM: cannot connect to 127.0.0.1:{port}") and message.endswith("is the server running?")


# -- cancellation -------------------------------------------------------------------------------------------------


async def test_cancelling_the_consumer_closes_the_http_stream_at_once(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    glm_server.enqueue(Reply(reasoning="", content=["tok "] * 2000, pace=200))
    seen: list = []
    got_two = asyncio.Event()

    async def consume(client: GlmClient) -> None:
        async for event in client.stream(host, request_for(host), KEY):
            seen.append(event)
            if len(seen) == 2:
                got_two.set()

    async with GlmClient() as client:
        task = asyncio.create_task(consume(client))
        await asyncio.wait_for(got_two.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        record = glm_server.last
        # The server notices the closed connection on its next writes, long before the 10 s reply ends.
        assert glm_server.wait_for(lambda s: record.disconnected, timeout=5)
    assert record.finished_at is None and len(record.chunk_times) < 1000


# -- secrets ---------------------------------------------------------------------------------------------------------


def _all_text(error: BaseException) -> str:
    return "\n".join([str(error), repr(error), "".join(traceback.format_exception(error)), repr(error.args)])


async def test_the_key_never_shows_in_errors_for_a_401_that_echoes_it(glm_server: GlmServer) -> None:
    host = glm_server.host("zai")
    glm_server.enqueue(Reply.error(401, {"error": {"code": "1002", "message": f"Invalid token {KEY} for this account"}}))
    async with GlmClient() as client:
        events = await run(client, host, request_for(host))
        assert KEY not in repr(client)
    error = events[-1].error
    assert error.kind == "auth" and "API key was rejected" in error.message
    assert KEY not in _all_text(error) and KEY[:12] not in _all_text(error)


async def test_the_key_never_shows_in_errors_for_a_network_failure() -> None:
    port = free_port()
    host = BUILTIN_HOSTS["zai"].with_overrides({"base_url": f"http://127.0.0.1:{port}/zai"})
    async with GlmClient(max_retries=1, backoff=0.01) as client:
        events = await run(client, host, request_for(host))
    for event in events:
        assert KEY not in _all_text(event.error)
        assert event.error.__cause__ is None and event.error.__context__ is None
