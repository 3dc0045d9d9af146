"""A 200 that is not a stream (a JSON answer, a JSON error, a web page), and hosts that stall.

Against the loopback server: `Reply(plain_body=True, ...)` answers a streaming request with
one body and status 200; `keepalive_only`, `trickle` and `stall_after` keep a connection
open without ever finishing the answer.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from glmchat.turn_runner import run_turn
from glmchat.client import GlmClient
from glmchat.errors import ContentFilterError, StreamError, TimeoutError_
from glmchat.protocol.events import ContentDelta, Finish, ReasoningDelta, StreamFailed, UsageUpdate
from glmchat.session import Session, TurnStatus
from glmchat.store import Store
from tests.glm_server import GlmServer, Reply
from tests.test_cli import ask, store_turns
from tests.test_client import request_for, run

NGINX = (b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
         b"</center>\r\n<hr><center>nginx/1.25.3</center>\r\n</body>\r\n</html>\r\n")


async def turn_from(server: GlmServer, host_id: str, home: Path, **client_options) -> tuple[Session, object]:
    host = server.host(host_id)
    session = Session(host=host.id, model=host.default_model)
    turn = session.new_turn("hello", thinking=True)
    with Store.open(home) as store:
        async with GlmClient(max_retries=0, **client_options) as client:
            await run_turn(client, host, session, turn, api_key="sk-plain-0123456789", store=store)
        stored = store.load_session(session.id).turns[0]
    return session, stored


@pytest.mark.parametrize("host_id", ["zai", "cerebras", "openrouter", "vllm", "sglang", "llamacpp", "runware"])
async def test_a_json_answer_to_a_streaming_request_is_the_answer(glm_server: GlmServer, glmchat_home: Path,
                                                                    host_id: str) -> None:
    glm_server.enqueue(Reply(plain_body=True, reasoning="Thinking it over.\n", content="The whole answer.\n"))
    _, turn = await turn_from(glm_server, host_id, glmchat_home)
    assert turn.status == TurnStatus.COMPLETE, turn.error
    assert turn.content == "The whole answer.\n"
    if host_id != "openrouter":  # OpenRouter's body carries reasoning_details only when streamed
        assert turn.reasoning == "Thinking it over.\n"
    assert turn.usage.completion_tokens is not None and turn.finish_reason == "stop"


async def test_json_wins_over_a_mislabelled_content_type(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(plain_body=True, content="labelled as a stream", content_type="text/event-stream"))
    host = glm_server.host("zai")
    async with GlmClient(max_retries=0) as client:
        events = await run(client, host, request_for(host))
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)) == "labelled as a stream"
    assert isinstance(events[-1], Finish) and any(isinstance(e, UsageUpdate) for e in events)


async def test_a_zai_json_error_with_status_200_is_classified(glm_server: GlmServer, glmchat_home: Path) -> None:
    body = {"error": {"code": "1301", "message": "System detected potentially unsafe or sensitive content."}}
    glm_server.enqueue(Reply(plain_body=True, body=body))
    _, turn = await turn_from(glm_server, "zai", glmchat_home)
    assert turn.status == TurnStatus.ERROR and turn.error_kind == "content_filter"
    assert "content filter" in turn.error and "ended before" not in turn.error


async def test_a_json_rate_limit_error_with_status_200_is_not_an_early_end(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(plain_body=True, body={"error": {"code": "1302", "message": "High concurrency"}}))
    host = glm_server.host("zai")
    async with GlmClient(max_retries=0) as client:
        [event] = await run(client, host, request_for(host))
    assert isinstance(event, StreamFailed) and event.error.kind == "rate_limit"


@pytest.mark.parametrize("content_type", ["text/html", "text/event-stream", None])
@pytest.mark.parametrize("host_id", ["zai", "ollama", "runware"])
async def test_a_web_page_is_named_as_one(glm_server: GlmServer, host_id: str, content_type: str | None) -> None:
    glm_server.enqueue(Reply(plain_body=True, body=NGINX, content_type=content_type or "text/html; charset=utf-8"))
    host = glm_server.host(host_id)
    async with GlmClient(max_retries=0) as client:
        [event] = await run(client, host, request_for(host))
    assert isinstance(event, StreamFailed) and isinstance(event.error, StreamError)
    assert "the base URL answered with a web page, not the API" in event.error.message
    assert "\n" not in event.error.message and "nginx" not in event.error.message


def test_ask_prints_a_json_answer_and_exits_0(glm_server: GlmServer, glmchat_home: Path) -> None:
    glm_server.enqueue(Reply(plain_body=True, reasoning="r", content="plain JSON answer"))
    proc = ask(glm_server, glmchat_home, "hi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "plain JSON answer"
    [turn] = store_turns(glmchat_home)
    assert turn.status == TurnStatus.COMPLETE and turn.reasoning == "r"


# -- stalls --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("reply", [Reply(keepalive_only=0.05), Reply(trickle=0.05)], ids=["keepalive", "trickle"])
async def test_bytes_without_text_do_not_keep_a_stream_alive(glm_server: GlmServer, reply: Reply) -> None:
    glm_server.enqueue(reply)
    host = glm_server.host("zai")
    started = time.monotonic()
    async with GlmClient(max_retries=0, read_timeout=60, stall_timeout=0.5) as client:
        [event] = await run(client, host, request_for(host))
    assert time.monotonic() - started < 30  # the 60 s read timeout never fired: bytes kept coming
    assert isinstance(event, StreamFailed) and isinstance(event.error, TimeoutError_)
    assert event.error.code == "stalled" and not event.error.retryable
    assert "no text for 0.5 s" in event.error.message and "\n" not in event.error.message
    assert len(glm_server.chat_requests()) == 1  # never re-sent


async def test_a_stall_mid_answer_keeps_what_arrived(glm_server: GlmServer, glmchat_home: Path) -> None:
    glm_server.enqueue(Reply(reasoning="", content=[f"w{i} " for i in range(20)], stall_after=5))
    _, turn = await turn_from(glm_server, "zai", glmchat_home, stall_timeout=0.5)
    assert turn.status == TurnStatus.ERROR and turn.error_kind == "timeout"
    assert turn.content == "w0 w1 w2 w3 w4 "
    assert "the answer stalled" in turn.error


async def test_text_keeps_a_slow_stream_alive(glm_server: GlmServer) -> None:
    # 30 chunks, one every 0.05 s: 1.5 s in all, three times the stall deadline.
    glm_server.enqueue(Reply(reasoning="", content=[f"w{i} " for i in range(30)], pace=20, chunk_tokens=1))
    host = glm_server.host("zai")
    async with GlmClient(max_retries=0, stall_timeout=0.5) as client:
        events = await run(client, host, request_for(host))
    assert isinstance(events[-1], Finish)
    assert "".join(e.text for e in events if isinstance(e, ContentDelta)).startswith("w0 w1 ")


def test_ask_gives_up_on_a_stalled_host_as_configured(glm_server: GlmServer, glmchat_home: Path) -> None:
    (glmchat_home / "config.toml").write_text("stall_timeout = 1\n")
    glm_server.enqueue(Reply(keepalive_only=0.1))
    proc = ask(glm_server, glmchat_home, "hi", timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "no text for 1 s" in proc.stderr
    [turn] = store_turns(glmchat_home)
    assert turn.status == TurnStatus.ERROR and turn.error_kind == "timeout"


def test_a_bad_stall_timeout_setting_is_a_warning(glmchat_home: Path) -> None:
    from glmchat.config import load_config

    (glmchat_home / "config.toml").write_text("stall_timeout = 0\n")
    config = load_config(glmchat_home / "config.toml")
    assert config.stall_timeout == 180.0
    assert any("stall_timeout" in w for w in config.warnings)
