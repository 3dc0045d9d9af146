"""The loopback GLM server itself: dialect shapes, faults, pacing, the prompt-cache simulation, standalone mode."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.glm_server import (
    CHAT_HOSTS,
    GlmServer,
    Reply,
    common_prefix_len,
    corpus,
    corpus_tokens,
    default_content,
    default_reasoning,
    render_prompt,
    split_tokens,
)

ROOT = Path(__file__).resolve().parent.parent

REASONING_FIELD = {
    "zai": "reasoning_content",
    "zai-coding": "reasoning_content",
    "bigmodel": "reasoning_content",
    "cerebras": "reasoning",
    "openrouter": "reasoning",
    "vllm": "reasoning",
    "sglang": "reasoning_content",
    "llamacpp": "reasoning_content",
}

THINKING_OFF = {
    "zai": {"thinking": {"type": "disabled"}},
    "zai-coding": {"thinking": {"type": "disabled"}},
    "bigmodel": {"thinking": {"type": "disabled"}},
    "cerebras": {"reasoning_effort": "none"},
    "openrouter": {"reasoning": {"effort": "none"}},
    "vllm": {"chat_template_kwargs": {"enable_thinking": False}},
    "sglang": {"chat_template_kwargs": {"enable_thinking": False}},
    "llamacpp": {"chat_template_kwargs": {"enable_thinking": False}},
}


def post(server: GlmServer, host_id: str, body: dict | list, path: str | None = None, timeout: float = 10) -> httpx.Response:
    path = path or {"ollama": "/api/chat", "runware": "/v1"}.get(host_id, "/chat/completions")
    return httpx.post(f"{server.url}/{host_id}{path}", json=body, timeout=timeout)


def chat_body(text: str = "Hi there", **extra) -> dict:
    return {"model": "glm-4.7", "stream": True, "messages": [{"role": "user", "content": text}], **extra}


def sse_data(raw: bytes) -> list:
    """The data payloads of an SSE body, JSON-decoded ("[DONE]" kept as a string)."""
    out = []
    for block in raw.decode("utf-8").split("\n\n"):
        for line in block.split("\n"):
            if line.startswith("data: "):
                payload = line[6:]
                out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def collect(chunks: list, field: str) -> str:
    return "".join(
        (c["choices"][0]["delta"].get(field) or "") for c in chunks if isinstance(c, dict) and c.get("choices")
    )


# -- dialect shapes ------------------------------------------------------------------------------------


@pytest.mark.parametrize("host_id", CHAT_HOSTS)
def test_chat_dialects_stream_reasoning_then_answer_in_their_field(glm_server: GlmServer, host_id: str) -> None:
    extra = {"stream_options": {"include_usage": True}}
    response = post(glm_server, host_id, chat_body("Hello 世界 🌍", **extra))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    chunks = sse_data(response.content)
    assert chunks[-1] == "[DONE]"
    field = REASONING_FIELD[host_id]
    assert collect(chunks, field) == default_reasoning("Hello 世界 🌍")
    assert collect(chunks, "content") == default_content("Hello 世界 🌍")
    other = "reasoning" if field == "reasoning_content" else "reasoning_content"
    assert collect(chunks, other) == ""  # each host uses one field only
    finishes = [c["choices"][0].get("finish_reason") for c in chunks[:-1] if c.get("choices")]
    assert "stop" in finishes
    usage = next(c["usage"] for c in chunks[:-1] if c.get("usage"))
    assert usage["prompt_tokens"] > 0
    assert usage["completion_tokens"] == len(split_tokens(default_reasoning("Hello 世界 🌍"))) + len(
        split_tokens(default_content("Hello 世界 🌍"))
    )
    assert "cached_tokens" in usage["prompt_tokens_details"]


def test_zai_chunks_match_the_captured_shape(glm_server: GlmServer) -> None:
    chunks = sse_data(post(glm_server, "zai", chat_body()).content)
    first = chunks[0]
    assert set(first) >= {"id", "created", "object", "model", "choices"}
    assert first["object"] == "chat.completion.chunk"
    assert first["choices"][0]["delta"]["role"] == "assistant"
    final = chunks[-2]
    assert final["choices"][0]["finish_reason"] == "stop"
    assert final["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert set(final["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details"}
    assert final["usage"]["completion_tokens_details"]["reasoning_tokens"] == len(split_tokens(default_reasoning("Hi there")))


def test_openrouter_sends_processing_comments_reasoning_details_and_cost(glm_server: GlmServer) -> None:
    raw = post(glm_server, "openrouter", chat_body()).content
    assert raw.startswith(b": OPENROUTER PROCESSING\n\n")
    chunks = sse_data(raw)
    details = [d for c in chunks[:-1] for d in c["choices"][0]["delta"].get("reasoning_details") or []]
    assert "".join(d["text"] for d in details) == default_reasoning("Hi there")
    assert all(d["type"] == "reasoning.text" for d in details)
    usage = next(c["usage"] for c in chunks[:-1] if c.get("usage"))
    assert usage["cost"] > 0 and "cache_write_tokens" in usage["prompt_tokens_details"]
    assert chunks[0]["provider"] == "Z.AI"


def test_cerebras_sends_time_info_and_llamacpp_timings(glm_server: GlmServer) -> None:
    cerebras = sse_data(post(glm_server, "cerebras", chat_body()).content)
    assert "time_info" in cerebras[-2] and cerebras[-2]["choices"][0]["finish_reason"] == "stop"
    llama = sse_data(post(glm_server, "llamacpp", chat_body()).content)
    assert {"cache_n", "prompt_n", "predicted_n"} <= set(llama[-2]["timings"])


def test_vllm_sends_usage_only_when_asked(glm_server: GlmServer) -> None:
    without = sse_data(post(glm_server, "vllm", chat_body()).content)
    assert not any(c.get("usage") for c in without[:-1])
    with_usage = sse_data(post(glm_server, "vllm", chat_body(stream_options={"include_usage": True})).content)
    last = with_usage[-2]
    assert last["choices"] == [] and last["usage"]["total_tokens"] > 0


@pytest.mark.parametrize("host_id", CHAT_HOSTS)
def test_thinking_off_in_each_dialect_gives_no_reasoning(glm_server: GlmServer, host_id: str) -> None:
    chunks = sse_data(post(glm_server, host_id, chat_body(**THINKING_OFF[host_id])).content)
    assert collect(chunks, REASONING_FIELD[host_id]) == ""
    assert collect(chunks, "content") == default_content("Hi there")
    assert glm_server.last.thinking is False


def test_ollama_streams_ndjson_with_thinking_and_counts(glm_server: GlmServer) -> None:
    body = {"model": "glm-4.7", "messages": [{"role": "user", "content": "Hey"}]}
    response = post(glm_server, "ollama", body)
    assert response.headers["content-type"] == "application/x-ndjson"
    lines = [json.loads(line) for line in response.text.splitlines()]
    assert "".join(x["message"].get("thinking", "") for x in lines) == default_reasoning("Hey")
    assert "".join(x["message"]["content"] for x in lines) == default_content("Hey")
    assert [x["done"] for x in lines].count(True) == 1 and lines[-1]["done"] is True
    assert lines[-1]["done_reason"] == "stop" and lines[-1]["eval_count"] > 0
    off = post(glm_server, "ollama", {**body, "think": False})
    assert all("thinking" not in json.loads(line)["message"] for line in off.text.splitlines())


def test_runware_task_stream_and_thinking_level(glm_server: GlmServer) -> None:
    task = {
        "taskType": "textInference",
        "taskUUID": "0b6f6c1e-3b5e-4c4e-9d7e-1f2a3b4c5d6e",
        "model": "zai-glm-4-7",
        "deliveryMethod": "stream",
        "includeUsage": True,
        "messages": [{"role": "user", "content": "Yo"}],
        "settings": {"thinkingLevel": "high", "systemPrompt": "Be brief."},
    }
    chunks = sse_data(post(glm_server, "runware", [task]).content)
    assert chunks[-1] == "[DONE]"
    assert all(c["taskUUID"] == task["taskUUID"] for c in chunks[:-1])
    assert "".join(c.get("delta", {}).get("reasoningContent", "") for c in chunks[:-1]) == default_reasoning("Yo")
    assert "".join(c.get("delta", {}).get("text", "") for c in chunks[:-1]) == default_content("Yo")
    assert chunks[-2]["finishReason"] == "stop" and chunks[-2]["usage"]["completionTokens"] > 0
    assert glm_server.last.prompt.startswith("[gMASK]<sop><|system|>Be brief.<|user|>Yo")
    task["settings"]["thinkingLevel"] = "none"
    chunks = sse_data(post(glm_server, "runware", [task]).content)
    assert not any("reasoningContent" in c.get("delta", {}) for c in chunks[:-1])


def test_non_streaming_request_gets_one_json_body(glm_server: GlmServer) -> None:
    body = chat_body(stream=False)
    data = post(glm_server, "zai", body).json()
    message = data["choices"][0]["message"]
    assert message["reasoning_content"] == default_reasoning("Hi there")
    assert message["content"] == default_content("Hi there")


def test_unknown_paths_are_404_and_recorded(glm_server: GlmServer) -> None:
    assert post(glm_server, "nohost", chat_body(), path="/chat/completions").status_code == 404
    assert post(glm_server, "ollama", chat_body(), path="/chat/completions").status_code == 404
    assert glm_server.requests[-1].status == 404


# -- records -----------------------------------------------------------------------------------------


def test_requests_are_recorded_with_raw_body_headers_and_time(glm_server: GlmServer) -> None:
    raw = json.dumps(chat_body("exact  bytes\r\n"), ensure_ascii=False).encode()
    before = time.monotonic()
    httpx.post(f"{glm_server.url}/zai/chat/completions", content=raw, headers={"Authorization": "Bearer k1", "X-Test": "1"})
    record = glm_server.last
    assert record.body == raw
    assert record.json["messages"][0]["content"] == "exact  bytes\r\n"
    assert record.header("authorization") == "Bearer k1" and record.header("x-test") == "1"
    assert record.path == "/zai/chat/completions" and record.host_id == "zai"
    assert before <= record.arrived_at <= record.finished_at
    assert len(record.chunk_times) == len(record.chunk_tokens) > 0


# -- scripted replies and faults -------------------------------------------------------------------------


def test_scripted_replies_are_used_in_order_then_the_default(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(reasoning="r1", content="c1"), Reply(reasoning=["a", "b"], content="c2"))
    one = sse_data(post(glm_server, "zai", chat_body()).content)
    two = sse_data(post(glm_server, "zai", chat_body()).content)
    three = sse_data(post(glm_server, "zai", chat_body("x")).content)
    assert (collect(one, "reasoning_content"), collect(one, "content")) == ("r1", "c1")
    assert (collect(two, "reasoning_content"), collect(two, "content")) == ("ab", "c2")
    assert collect(three, "content") == default_content("x")


def test_tool_calls_come_whole_with_finish_reason_tool_calls(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(content="Checking.", tool_calls=[{"id": "call_1", "name": "weather", "arguments": '{"city":"Rome"}'}]))
    chunks = sse_data(post(glm_server, "zai", chat_body()).content)
    calls = [tc for c in chunks[:-1] for tc in c["choices"][0]["delta"].get("tool_calls") or []]
    assert calls == [{"id": "call_1", "index": 0, "type": "function", "function": {"name": "weather", "arguments": '{"city":"Rome"}'}}]
    assert chunks[-2]["choices"][0]["finish_reason"] == "tool_calls"


@pytest.mark.parametrize(
    ("code", "status"), [(1113, 429), (1301, 400), (1302, 429), (1305, 429), (1308, 429), (1309, 429), (1310, 429), (1261, 400)]
)
def test_zai_business_errors_have_their_status_and_body(glm_server: GlmServer, code: int, status: int) -> None:
    glm_server.enqueue(Reply.zai_error(code))
    response = post(glm_server, "zai", chat_body())
    assert response.status_code == status
    assert response.json()["error"]["code"] == str(code)
    assert response.json()["error"]["message"]


def test_error_reply_headers_and_dialect_default_bodies(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply.error(429, headers={"Retry-After": "7"}))
    response = post(glm_server, "openrouter", chat_body())
    assert response.status_code == 429 and response.headers["retry-after"] == "7"
    assert response.json() == {"error": {"code": 429, "message": "Too many requests"}}
    glm_server.enqueue(Reply.cerebras_error())
    body = post(glm_server, "cerebras", chat_body()).json()
    assert body["code"] == "request_quota_exceeded" and "error" not in body  # top level, not nested
    glm_server.enqueue(Reply.error(401))
    assert post(glm_server, "zai", chat_body()).json()["error"]["code"] == "1002"
    glm_server.enqueue(Reply.error(404))
    assert post(glm_server, "ollama", {"messages": []}).json() == {"error": "not found"}


def test_openrouter_in_stream_error_ends_the_stream(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(content="partial answer", stream_error={"code": 502, "message": "Provider disconnected"}))
    chunks = sse_data(post(glm_server, "openrouter", chat_body()).content)
    assert chunks[-1]["error"] == {"code": 502, "message": "Provider disconnected"}
    assert chunks[-1]["choices"][0]["finish_reason"] == "error"
    assert "[DONE]" not in chunks


@pytest.mark.parametrize("reason", ["length", "sensitive", "network_error"])
def test_finish_reason_is_scripted(glm_server: GlmServer, reason: str) -> None:
    glm_server.enqueue(Reply(content="cut", finish_reason=reason))
    chunks = sse_data(post(glm_server, "zai", chat_body()).content)
    assert chunks[-2]["choices"][0]["finish_reason"] == reason


def test_drop_after_closes_the_connection_mid_stream(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(reasoning="", content="a b c d e f g h", drop_after=3))
    received = bytearray()
    with pytest.raises(httpx.RemoteProtocolError):
        with httpx.stream("POST", f"{glm_server.url}/zai/chat/completions", json=chat_body()) as response:
            for data in response.iter_raw():
                received += data
    assert collect(sse_data(bytes(received)), "content") == "a b c"
    assert glm_server.last.finished_at is None and len(glm_server.last.chunk_times) == 3


def test_malformed_chunk_and_missing_done(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(reasoning="", content="one two", malformed_after=1))
    raw = post(glm_server, "zai", chat_body()).content
    assert b'"content":"oops\n\n' in raw
    glm_server.enqueue(Reply(content="x", done=False))
    raw = post(glm_server, "zai", chat_body()).content
    assert b"[DONE]" not in raw and b'"finish_reason":"stop"' in raw
    glm_server.enqueue(Reply(content="x", done=False))
    lines = post(glm_server, "ollama", {"messages": [{"role": "user", "content": "q"}]}).text.splitlines()
    assert all(json.loads(line)["done"] is False for line in lines)


def test_stall_holds_the_stream_until_the_client_gives_up_and_stop_ends_it() -> None:
    server = GlmServer().start()
    try:
        server.enqueue(Reply(reasoning="", content="a b c d", stall_after=2))
        with pytest.raises(httpx.ReadTimeout):
            with httpx.stream("POST", f"{server.url}/zai/chat/completions", json=chat_body(), timeout=httpx.Timeout(5, read=0.3)) as r:
                for _ in r.iter_raw():
                    pass
        assert len(server.last.chunk_times) == 2
    finally:
        started = time.monotonic()
        server.stop()
    assert time.monotonic() - started < 5  # a stalled handler does not keep the server alive


def test_initial_delay_and_fragmented_writes(glm_server: GlmServer) -> None:
    text = "naïve 漢字 🚀 " * 20
    glm_server.enqueue(Reply(reasoning="", content=text, initial_delay=0.05, fragment_bytes=3))
    chunks = sse_data(post(glm_server, "zai", chat_body()).content)
    assert collect(chunks, "content") == text
    assert glm_server.last.chunk_times[0] - glm_server.last.arrived_at >= 0.05


def test_lone_surrogates_go_out_as_json_escapes(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(reasoning="", content=["a\ud800", "b"]))
    raw = post(glm_server, "zai", chat_body()).content
    assert b"\\ud800" in raw
    assert collect(sse_data(raw), "content") == "a\ud800b"


# -- pacing --------------------------------------------------------------------------------------------


def test_pace_spaces_chunks_and_records_when_each_left(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(reasoning=corpus_tokens(30, 1), content=corpus_tokens(30, 2), pace=600, chunk_tokens=3))
    chunks = sse_data(post(glm_server, "cerebras", chat_body()).content)
    record = glm_server.last
    assert record.chunk_tokens == [3] * 20
    # The server never runs ahead of the pace: chunk i leaves no earlier than i * 3/600 s after
    # the pace's start (after the first chunk a late start would make it look early).
    assert record.paced_from is not None
    gaps = [t - record.paced_from for t in record.chunk_times]
    assert all(g >= i * 0.005 - 0.0005 for i, g in enumerate(gaps))
    assert collect(chunks, "reasoning") == corpus(30, 1)


def test_unthrottled_reply_batches_writes_but_keeps_every_token(glm_server: GlmServer) -> None:
    tokens = corpus_tokens(5000, 3)
    glm_server.enqueue(Reply(reasoning="", content=tokens, chunk_tokens=1))
    chunks = sse_data(post(glm_server, "zai", chat_body()).content)
    assert collect(chunks, "content") == "".join(tokens)
    record = glm_server.last
    assert len(record.chunk_times) == 5000 and sum(record.chunk_tokens) == 5000
    assert len(set(record.chunk_times)) < 5000  # several chunks per write


# -- corpus and tokens ---------------------------------------------------------------------------------------


def test_corpus_is_mixed_markdown_of_exact_length_and_deterministic() -> None:
    tokens = corpus_tokens(3000, seed=5)
    assert len(tokens) == 3000 and tokens == corpus_tokens(3000, seed=5)
    text = "".join(tokens)
    for marker in ("## ", "\n- ", "\n1. ", "|---|", "```python", "> "):
        assert marker in text
    assert any("\u4e00" <= ch <= "\u9fff" for ch in text)  # CJK
    assert any(ord(ch) >= 0x1F300 for ch in text)  # emoji
    assert corpus(3000, seed=6) != text


@given(st.text())
def test_split_tokens_concatenates_back_exactly(text: str) -> None:
    assert "".join(split_tokens(text)) == text


# -- prompt-cache simulation ----------------------------------------------------------------------------------


def test_render_prompt_follows_the_glm47_template_without_stripping() -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "User greets. Reply briefly."},
        {"role": "user", "content": "Weather in Rome?"},
        {
            "role": "assistant",
            "content": "",
            "reasoning_content": "Need tool.",
            "tool_calls": [{"id": "c", "type": "function", "function": {"name": "weather", "arguments": '{"city": "Rome", "days": 2}'}}],
        },
        {"role": "tool", "tool_call_id": "c", "content": "25C"},
    ]
    tail = (
        "<|user|>Weather in Rome?<|assistant|><think>Need tool.</think><tool_call>weather<arg_key>city</arg_key>"
        "<arg_value>Rome</arg_value><arg_key>days</arg_key><arg_value>2</arg_value></tool_call>"
        "<|observation|><tool_response>25C</tool_response>"
    )
    default = render_prompt("zai", {"messages": messages})
    assert default == "[gMASK]<sop><|system|>You are terse.<|user|>Hi<|assistant|></think>Hello!" + tail + "<|assistant|><think>"
    kept = render_prompt("zai", {"messages": messages, "thinking": {"clear_thinking": False}})
    assert "<|user|>Hi<|assistant|><think>User greets. Reply briefly.</think>Hello!" in kept
    off = render_prompt("zai", {"messages": messages, "thinking": {"type": "disabled"}})
    assert off.endswith("<tool_response>25C</tool_response><|assistant|></think>")
    # No strip: whitespace around reasoning and content stays (unlike the HF template).
    ws = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "  C1 \n", "reasoning_content": "\n R1 \n"}]
    assert "<think>\n R1 \n</think>  C1 \n" in render_prompt("sglang", {"messages": ws, "chat_template_kwargs": {"clear_thinking": False}})


def test_each_host_reads_reasoning_from_its_own_field_only() -> None:
    def turn(**fields):
        return {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "C", **fields}, {"role": "user", "content": "n"}]}

    keep = {"thinking": {"clear_thinking": False}}
    assert "<think>R</think>C" in render_prompt("zai", {**turn(reasoning_content="R"), **keep})
    assert "<think>R</think>C" in render_prompt("zai-coding", turn(reasoning_content="R"))  # preserved by default there
    assert "<think>R</think>" not in render_prompt("zai", turn(reasoning_content="R"))  # cleared by default
    vllm_keep = {"chat_template_kwargs": {"clear_thinking": False}}
    assert "<think>R</think>C" in render_prompt("vllm", {**turn(reasoning="R"), **vllm_keep})
    assert "<think>R</think>" not in render_prompt("vllm", {**turn(reasoning_content="R"), **vllm_keep})  # dropped by vLLM
    assert "<think>R</think>C" in render_prompt("ollama", turn(thinking="R"))  # always preserved
    details = [{"type": "reasoning.text", "text": "R", "format": "unknown", "index": 0}]
    assert "<think>R</think>C" in render_prompt("openrouter", turn(reasoning_details=details))
    cerebras = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "<think>R</think>C"}, {"role": "user", "content": "n"}]}
    assert "<|assistant|><think>R</think>C<|user|>n" in render_prompt("cerebras", {**cerebras, "clear_thinking": False})
    assert "<|assistant|></think>C<|user|>n" in render_prompt("cerebras", cerebras)


def test_common_prefix_len() -> None:
    assert common_prefix_len("abcdef", "abcxef") == 3
    assert common_prefix_len("abc", "abcdef") == 3
    assert common_prefix_len("", "x") == 0
    long = "x" * 100_000
    assert common_prefix_len(long + "a", long + "b") == 100_000


def _second_request(first: dict, reasoning: str, content: str, **extra) -> dict:
    return {
        **extra,
        "stream": True,
        "messages": [
            *first["messages"],
            {"role": "assistant", "content": content, "reasoning_content": reasoning},
            {"role": "user", "content": "And then?"},
        ],
    }


def test_cache_hits_only_when_the_replay_is_exact_and_preserved(glm_server: GlmServer) -> None:
    first = chat_body("Tell me about caches, in some detail please.")
    r1 = post(glm_server, "zai", first)
    chunks = sse_data(r1.content)
    reasoning, content = collect(chunks, "reasoning_content"), collect(chunks, "content")
    first_total = glm_server.last.prompt_tokens + len(glm_server.last.generation) // 4
    keep = {"thinking": {"type": "enabled", "clear_thinking": False}}

    post(glm_server, "zai", _second_request(first, reasoning, content, **keep))
    exact = glm_server.last.cached_tokens
    assert exact >= first_total - 1  # everything the first request produced is reused

    post(glm_server, "zai", _second_request(first, reasoning.strip(), content, **keep))
    stripped = glm_server.last.cached_tokens
    post(glm_server, "zai", _second_request(first, reasoning, content))  # clear_thinking defaults to true
    cleared = glm_server.last.cached_tokens
    assert stripped < exact and cleared < exact
    assert stripped * 4 <= len(glm_server.requests[0].prompt) + len(reasoning)

    usage = next(c["usage"] for c in sse_data(post(glm_server, "zai", _second_request(first, reasoning, content, **keep)).content)[:-1] if c.get("usage"))
    # The same request again also reuses the second request's own prompt: more than before, and reported.
    assert usage["prompt_tokens_details"]["cached_tokens"] == glm_server.last.cached_tokens > exact


def test_cache_is_per_host(glm_server: GlmServer) -> None:
    body = chat_body("same prompt on two hosts, long enough to count")
    post(glm_server, "zai", body)
    post(glm_server, "sglang", body)
    assert glm_server.last.cached_tokens == 0
    post(glm_server, "sglang", body)
    assert glm_server.last.cached_tokens == len(glm_server.last.prompt) // 4


# -- standalone -----------------------------------------------------------------------------------------------


def test_standalone_server_prints_ready_serves_corpus_and_control_endpoints() -> None:
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "glm_server.py"), "--port", "0", "--reasoning-tokens", "40", "--content-tokens", "30", "--chunk", "3"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        url = line.split()[1]
        body = chat_body("anything")
        chunks = sse_data(httpx.post(f"{url}/zai/chat/completions", json=body).content)
        assert collect(chunks, "reasoning_content") == corpus(40, seed=1)
        assert collect(chunks, "content") == corpus(30, seed=2)
        assert httpx.post(f"{url}/_glm/enqueue", json={"content": "scripted", "reasoning": ""}).json() == {"queued": 1}
        chunks = sse_data(httpx.post(f"{url}/zai/chat/completions", json=body).content)
        assert collect(chunks, "content") == "scripted"
        records = httpx.get(f"{url}/_glm/requests").json()
        chat = [r for r in records if r["host_id"] == "zai"]
        assert len(chat) == 2 and len(chat[0]["chunk_times"]) == len(chat[0]["chunk_tokens"]) == 24
        assert json.loads(chat[0]["body"]) == body
        httpx.post(f"{url}/_glm/reset")
        assert httpx.get(f"{url}/_glm/requests").json() == []
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


# -- tool-call steps -----------------------------------------------------------------------------------------

TOOL_HOSTS = CHAT_HOSTS + ("ollama",)
CALLS = [
    {"name": "weather", "arguments": '{"city": "Zürich", "days": 2, "units": "°C 🌡"}'},
    {"name": "read_note", "arguments": '{"name":"todo"}'},
]
STEP_REASONING = " Need two tools:\n weather and the note. \t"
STEP_CONTENT = "Let me check both."


def parse_step(host_id: str, raw: bytes) -> dict:
    """What a careful client keeps of one streamed reply: reasoning, content, calls (fragments joined), extras."""
    if host_id == "ollama":
        lines = [json.loads(line) for line in raw.decode().splitlines()]
        calls = [tc for x in lines for tc in x["message"].get("tool_calls") or []]
        return {
            "reasoning": "".join(x["message"].get("thinking", "") for x in lines),
            "content": "".join(x["message"]["content"] for x in lines),
            "calls": [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]} for c in calls],
            "chunks": lines,
            "finish": lines[-1]["done_reason"],
        }
    chunks = [c for c in sse_data(raw) if isinstance(c, dict) and c.get("choices")]
    calls: dict[int, dict] = {}
    fragments: dict[int, list[dict]] = {}
    details: list[dict] = []
    for chunk in chunks:
        delta = chunk["choices"][0].get("delta") or {}
        details.extend(delta.get("reasoning_details") or [])
        for tc in delta.get("tool_calls") or []:
            fragments.setdefault(tc["index"], []).append(tc)
            call = calls.setdefault(tc["index"], {"id": None, "name": None, "arguments": ""})
            call["id"] = tc.get("id") or call["id"]
            call["name"] = (tc.get("function") or {}).get("name") or call["name"]
            call["arguments"] += (tc.get("function") or {}).get("arguments") or ""
    field = REASONING_FIELD[host_id]
    return {
        "reasoning": collect(chunks, field),
        "content": collect(chunks, "content"),
        "calls": [calls[i] for i in sorted(calls)],
        "fragments": fragments,
        "details": details,
        "finish": [c["choices"][0].get("finish_reason") for c in chunks if c["choices"][0].get("finish_reason")][-1],
        "chunks": chunks,
    }


def replay(host_id: str, step: dict) -> dict:
    """The assistant message that replays a step exactly, in the host's field."""
    message: dict = {"role": "assistant", "content": step["content"]}
    if host_id in ("zai", "zai-coding", "bigmodel", "sglang", "llamacpp"):
        message["reasoning_content"] = step["reasoning"]
    elif host_id == "vllm":
        message["reasoning"] = step["reasoning"]
    elif host_id == "cerebras":
        message["content"] = "<think>" + step["reasoning"] + "</think>" + step["content"]
    elif host_id == "openrouter":
        message["reasoning_details"] = step["details"]
    elif host_id == "ollama":
        message["thinking"] = step["reasoning"]
    if host_id == "ollama":
        message["tool_calls"] = [{"function": {"name": c["name"], "arguments": c["arguments"]}} for c in step["calls"]]
    elif step["calls"]:
        message["tool_calls"] = [
            {"id": c["id"], "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
            for c in step["calls"]
        ]
    return message


def results(host_id: str, step: dict, texts: list[str]) -> list[dict]:
    if host_id == "ollama":
        return [{"role": "tool", "content": t, "tool_name": c["name"]} for c, t in zip(step["calls"], texts)]
    return [{"role": "tool", "tool_call_id": c["id"], "content": t} for c, t in zip(step["calls"], texts)]


KEEP = {
    "zai": {"thinking": {"type": "enabled", "clear_thinking": False}},
    "cerebras": {"clear_thinking": False},
    "vllm": {"chat_template_kwargs": {"clear_thinking": False}},
}


def keep(host_id: str) -> dict:
    if host_id in ZAI_HOSTS:
        return KEEP["zai"]
    if host_id in ("vllm", "sglang", "llamacpp"):
        return KEEP["vllm"]
    return KEEP.get(host_id, {})


ZAI_HOSTS = ("zai", "zai-coding", "bigmodel")


def request(host_id: str, messages: list[dict], **extra) -> dict:
    body = {"model": "glm-4.7", "stream": True, "messages": messages, **keep(host_id), **extra}
    if host_id == "ollama":
        body.pop("stream")
    return body


def run_tool_turn(server: GlmServer, host_id: str, steps: list[Reply], **extra) -> tuple[list[dict], list[dict]]:
    """Play one turn of len(steps) steps, replaying each exactly; returns (steps as parsed, final messages)."""
    server.enqueue(*steps)
    messages = [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "Weather and my todo?"}]
    parsed = []
    for n, _ in enumerate(steps):
        step = parse_step(host_id, post(server, host_id, request(host_id, messages, **extra)).content)
        parsed.append(step)
        messages.append(replay(host_id, step))
        messages += results(host_id, step, [f"result {n}.{i} — ✓" for i in range(len(step["calls"]))])
    return parsed, messages


@pytest.mark.parametrize("host_id", TOOL_HOSTS)
def test_a_tool_step_streams_reasoning_content_then_parallel_calls_the_host_way(glm_server: GlmServer, host_id: str) -> None:
    glm_server.enqueue(Reply(reasoning=STEP_REASONING, content=STEP_CONTENT, tool_calls=CALLS, chunk_tokens=2))
    step = parse_step(host_id, post(glm_server, host_id, request(host_id, [{"role": "user", "content": "q"}])).content)
    assert step["reasoning"] == STEP_REASONING and step["content"] == STEP_CONTENT
    assert [c["name"] for c in step["calls"]] == ["weather", "read_note"]
    if host_id == "ollama":
        # Whole calls, arguments as objects, no ids; the stream still ends with "stop".
        assert [c["arguments"] for c in step["calls"]] == [json.loads(c["arguments"]) for c in CALLS]
        assert all("id" not in tc for x in step["chunks"] for tc in x["message"].get("tool_calls") or [])
        assert step["finish"] == "stop"
        return
    assert step["finish"] == "tool_calls"
    assert [c["arguments"] for c in step["calls"]] == [c["arguments"] for c in CALLS]  # byte for byte
    ids = [c["id"] for c in step["calls"]]
    assert len(set(ids)) == 2 and all(ids)
    # Order: every reasoning chunk before any content chunk, content before the calls.
    kinds = []
    for chunk in step["chunks"]:
        delta = chunk["choices"][0].get("delta") or {}
        kinds += [k for k in ("reasoning", "content", "tool_calls") if delta.get(REASONING_FIELD[host_id] if k == "reasoning" else k)]
    assert kinds == sorted(kinds, key=["reasoning", "content", "tool_calls"].index)
    fragments = step["fragments"]
    if host_id in ZAI_HOSTS or host_id == "cerebras":
        # One chunk per call, complete (protocol.md §7.1; Cerebras does not stream tool calls).
        assert [len(fragments[i]) for i in (0, 1)] == [1, 1]
        assert set(fragments[0][0]) == {"id", "index", "type", "function"}
        if host_id == "cerebras":
            assert all(len(i) == 9 and int(i, 16) >= 0 for i in ids)
    else:
        for index, pieces in fragments.items():
            assert len(pieces) > 2  # arguments in pieces
            assert pieces[0]["id"] == ids[index] and pieces[0]["function"]["name"] == CALLS[index]["name"]
            assert all("id" not in p and "name" not in p["function"] for p in pieces[1:])


def test_zai_streams_arguments_in_fragments_only_with_tool_stream(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(reasoning="r", content="", tool_calls=CALLS, chunk_tokens=1))
    step = parse_step("zai", post(glm_server, "zai", request("zai", [{"role": "user", "content": "q"}], tool_stream=True)).content)
    assert [c["arguments"] for c in step["calls"]] == [c["arguments"] for c in CALLS]
    assert all(len(pieces) > 3 for pieces in step["fragments"].values())
    assert all("id" not in p for pieces in step["fragments"].values() for p in pieces[1:])
    # The UNCONFIRMED variant: id, type and name on every fragment (a parser must not append names).
    glm_server.enqueue(Reply(reasoning="r", content="", tool_calls=CALLS[:1], tool_ids_every_fragment=True))
    step = parse_step("zai", post(glm_server, "zai", request("zai", [{"role": "user", "content": "q"}], tool_stream=True)).content)
    pieces = step["fragments"][0]
    assert len(pieces) > 3 and len({p["id"] for p in pieces}) == 1 and all(p["function"]["name"] == "weather" for p in pieces)
    assert step["calls"][0]["arguments"] == CALLS[0]["arguments"]


def test_scripted_ids_object_arguments_and_forced_fragments(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(content="", tool_calls=[{"id": "call_fixed", "name": "f", "arguments": {"a": [1, "é"]}}], tool_fragments=True))
    step = parse_step("zai", post(glm_server, "zai", chat_body()).content)
    assert step["calls"] == [{"id": "call_fixed", "name": "f", "arguments": '{"a": [1, "é"]}'}]
    assert len(step["fragments"][0]) > 1


def test_non_streaming_tool_steps(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(reasoning="R", content="C", tool_calls=CALLS))
    message = post(glm_server, "zai", chat_body(stream=False)).json()["choices"][0]["message"]
    assert message["reasoning_content"] == "R"
    assert [(c["index"], c["function"]["arguments"]) for c in message["tool_calls"]] == [(0, CALLS[0]["arguments"]), (1, CALLS[1]["arguments"])]
    glm_server.enqueue(Reply(reasoning="R", content="", tool_calls=CALLS))
    body = post(glm_server, "ollama", {"messages": [{"role": "user", "content": "q"}], "stream": False}).json()
    assert body["message"]["tool_calls"][1]["function"]["arguments"] == {"name": "todo"}
    assert body["done_reason"] == "stop"
    glm_server.enqueue(Reply(reasoning="R", content="C"))
    routed = post(glm_server, "openrouter", chat_body(stream=False)).json()["choices"][0]["message"]
    assert routed["reasoning_details"] == [{"type": "reasoning.text", "text": "R", "format": "unknown", "index": 0}]


def test_runware_refuses_tools_as_a_host_would(glm_server: GlmServer) -> None:
    task = {"taskType": "textInference", "taskUUID": "5b1e2c3d-0000-4000-8000-000000000001", "model": "zai-glm-4-7",
            "deliveryMethod": "stream", "messages": [{"role": "user", "content": "q"}],
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    response = post(glm_server, "runware", [task])
    assert response.status_code == 400
    [error] = response.json()["errors"]
    assert error["parameter"] == "tools" and error["taskUUID"] == task["taskUUID"] and error["message"]
    del task["tools"]
    assert post(glm_server, "runware", [task]).status_code == 200


# -- replay checking ------------------------------------------------------------------------------------------


def three_steps() -> list[Reply]:
    return [
        Reply(reasoning=STEP_REASONING, content="", tool_calls=CALLS, chunk_tokens=3),
        Reply(reasoning="Zürich is cold; the note says water plants.\n", content="One more.",
              tool_calls=[{"name": "echo", "arguments": '{"text":"  spaced  \\n"}'}], chunk_tokens=3),
        Reply(reasoning="Done thinking.", content="Cold in Zürich; water the plants."),
    ]


@pytest.mark.parametrize("host_id", TOOL_HOSTS)
def test_an_exact_replay_of_a_three_step_turn_has_no_problems(glm_server: GlmServer, host_id: str) -> None:
    parsed, messages = run_tool_turn(glm_server, host_id, three_steps())
    post(glm_server, host_id, request(host_id, messages + [{"role": "user", "content": "Thanks!"}]))
    records = glm_server.chat_requests()
    assert [r.replayed_steps for r in records] == [0, 1, 2, 3]
    assert glm_server.replay_problems == []
    # The server remembers each step as the client received it.
    assert [s.reasoning for s in glm_server.steps[:3]] == [p["reasoning"] for p in parsed]
    assert [[c["name"] for c in s.tool_calls] for s in glm_server.steps[:3]] == [["weather", "read_note"], ["echo"], []]
    if host_id != "ollama":
        assert [[c["id"] for c in s.tool_calls] for s in glm_server.steps[:3]] == [[c["id"] for c in p["calls"]] for p in parsed]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda m: m[2].update(reasoning_content=m[2]["reasoning_content"][:5] + "X" + m[2]["reasoning_content"][6:]),
         "message 2 (assistant, step #0): reasoning differs from what was sent at character 5"),
        (lambda m: m[2]["tool_calls"][0]["function"].update(arguments='{"city":"Zürich","days":2,"units":"°C 🌡"}'),
         "tool_calls[0] arguments differs from what was sent at character 8"),
        (lambda m: m[2]["tool_calls"][0]["function"].update(arguments=json.loads(m[2]["tool_calls"][0]["function"]["arguments"])),
         "tool_calls[0] arguments are a dict, not the JSON string produced"),
        (lambda m: m[2]["tool_calls"][1].update(id="call_other"), "tool_calls[1] id 'call_other' is not the id produced"),
        (lambda m: m[2]["tool_calls"].reverse(), "tool_calls[0] names 'read_note', produced 'weather'"),
        (lambda m: m[3].update(tool_call_id="call_x"), "tool result 1 has tool_call_id 'call_x'"),
        (lambda m: m.pop(4), "1 tool result(s) follow the step, 2 expected"),
        (lambda m: m[5].update(content="One more!"), "message 5 (assistant, step #1): content differs"),
        (lambda m: m[5].pop("reasoning_content"), "message 5 (assistant, step #1): reasoning missing"),
        (lambda m: m[5].update(reasoning=m[5].pop("reasoning_content")), "reasoning sent as reasoning, which zai does not read"),
        (lambda m: m.insert(2, {"role": "tool", "tool_call_id": "x", "content": "stray"}), "message 2 (tool): no step with tool calls"),
    ],
)
def test_replay_problems_name_what_differs(glm_server: GlmServer, change, expected: str) -> None:
    _, messages = run_tool_turn(glm_server, "zai", three_steps()[:2])
    change(messages)
    post(glm_server, "zai", request("zai", messages))
    problems = glm_server.last.replay_problems
    assert any(expected in p for p in problems), problems
    assert all("\n" not in p for p in problems)


def test_vllm_reasoning_in_reasoning_content_is_a_problem(glm_server: GlmServer) -> None:
    _, messages = run_tool_turn(glm_server, "vllm", three_steps()[:1])
    messages[2]["reasoning_content"] = messages[2].pop("reasoning")
    post(glm_server, "vllm", request("vllm", messages))
    assert any("reasoning sent as reasoning_content, which vllm does not read" in p for p in glm_server.last.replay_problems)
    assert any("reasoning missing" in p for p in glm_server.last.replay_problems)  # inside the tool loop it must be there


def test_earlier_turns_may_drop_reasoning_only_where_the_host_drops_it(glm_server: GlmServer) -> None:
    _, messages = run_tool_turn(glm_server, "zai", three_steps())
    glm_server.enqueue(Reply(reasoning="r", content="c"))
    messages.append({"role": "user", "content": "next"})
    for message in messages:
        message.pop("reasoning_content", None)
    post(glm_server, "zai", request("zai", messages, thinking={"type": "enabled", "clear_thinking": True}))
    assert glm_server.last.replay_problems == [] and glm_server.last.replayed_steps == 3
    post(glm_server, "zai", request("zai", messages))  # preserving: every step's reasoning must come back
    assert sum("reasoning missing" in p for p in glm_server.last.replay_problems) == 3


def test_openrouter_details_as_streamed_or_merged_per_index(glm_server: GlmServer) -> None:
    parsed, messages = run_tool_turn(glm_server, "openrouter", three_steps()[:1])
    assert len(parsed[0]["details"]) > 1
    post(glm_server, "openrouter", request("openrouter", messages))
    assert glm_server.last.replay_problems == []
    merged = [{**parsed[0]["details"][0], "text": parsed[0]["reasoning"]}]
    messages[2]["reasoning_details"] = merged
    post(glm_server, "openrouter", request("openrouter", messages))
    assert glm_server.last.replay_problems == []
    messages[2]["reasoning_details"] = [{"type": "reasoning.text", "text": parsed[0]["reasoning"][:-1]}]
    post(glm_server, "openrouter", request("openrouter", messages))
    assert any("reasoning differs" in p for p in glm_server.last.replay_problems)


def test_a_regenerated_step_may_be_replayed_as_either_version(glm_server: GlmServer) -> None:
    first = [{"role": "user", "content": "pick"}]
    glm_server.enqueue(Reply(reasoning="A", content="one"), Reply(reasoning="B", content="two"))
    post(glm_server, "zai", request("zai", first))
    post(glm_server, "zai", request("zai", first))  # regenerate
    for reasoning, content in (("A", "one"), ("B", "two")):
        post(glm_server, "zai", request("zai", [*first, {"role": "assistant", "content": content, "reasoning_content": reasoning},
                                                {"role": "user", "content": "more"}]))
        assert glm_server.last.replay_problems == [] and glm_server.last.replayed_steps == 1
    post(glm_server, "zai", request("zai", [*first, {"role": "assistant", "content": "one", "reasoning_content": "B"},
                                            {"role": "user", "content": "more"}]))
    assert glm_server.last.replay_problems  # mixing the two versions is not a replay of either


def test_a_cut_off_step_may_be_replayed_as_what_arrived(glm_server: GlmServer) -> None:
    glm_server.enqueue(Reply(reasoning="", content="a b c d e f", drop_after=3))
    with pytest.raises(httpx.RemoteProtocolError):
        post(glm_server, "zai", chat_body("q"))
    history = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a b c"}, {"role": "user", "content": "go on"}]
    post(glm_server, "zai", request("zai", history))
    assert glm_server.last.replay_problems == [] and glm_server.last.replayed_steps == 1
    history[1]["content"] = "a b X"
    post(glm_server, "zai", request("zai", history))
    assert any("content differs" in p for p in glm_server.last.replay_problems)


def test_a_made_up_assistant_message_is_reported(glm_server: GlmServer) -> None:
    post(glm_server, "zai", request("zai", [{"role": "user", "content": "q"}, {"role": "assistant", "content": "never said"},
                                            {"role": "user", "content": "?"}]))
    assert glm_server.last.replay_problems == [
        "message 1 (assistant): this server produced no reply at this point of the conversation"
    ]


# -- the cache across tool steps ---------------------------------------------------------------------------------


def test_a_tool_loop_renders_like_the_template() -> None:
    messages = [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": "", "reasoning_content": "R1",
         "tool_calls": [{"id": "a", "function": {"name": "f", "arguments": '{"x": 1, "s": "v"}'}},
                        {"id": "b", "function": {"name": "g", "arguments": "{}"}}]},
        {"role": "tool", "tool_call_id": "a", "content": "one"},
        {"role": "tool", "tool_call_id": "b", "content": "two"},
    ]
    # Reasoning inside the current tool loop is kept even when earlier turns' is cleared.
    assert render_prompt("zai", {"messages": messages}) == (
        "[gMASK]<sop><|user|>q<|assistant|><think>R1</think><tool_call>f<arg_key>x</arg_key><arg_value>1</arg_value>"
        "<arg_key>s</arg_key><arg_value>v</arg_value></tool_call><tool_call>g</tool_call>"
        "<|observation|><tool_response>one</tool_response><tool_response>two</tool_response><|assistant|><think>"
    )


@pytest.mark.parametrize("host_id", ["zai", "sglang", "ollama", "cerebras", "openrouter"])
def test_an_exact_tool_turn_replay_is_cached_to_the_end(glm_server: GlmServer, host_id: str) -> None:
    _, messages = run_tool_turn(glm_server, host_id, three_steps())
    records = glm_server.chat_requests()
    for before, after in zip(records, records[1:]):
        # Each step's request reuses all of the previous request and what it generated.
        assert after.cached_tokens >= (len(before.prompt) + len(before.generation)) // 4 - 1
    assert glm_server.replay_problems == []


@pytest.mark.parametrize("where", ["reasoning", "arguments"])
def test_one_changed_byte_in_an_earlier_step_breaks_the_cache_from_there(glm_server: GlmServer, where: str) -> None:
    _, messages = run_tool_turn(glm_server, "zai", three_steps())
    final = request("zai", messages + [{"role": "user", "content": "ok"}])
    post(glm_server, "zai", final)
    exact = glm_server.last.cached_tokens
    step_two = render_prompt("zai", request("zai", messages[:5])).rindex("<|assistant|>")  # where step 2 starts
    changed = json.loads(json.dumps(final))
    if where == "reasoning":
        text = changed["messages"][5]["reasoning_content"]
        changed["messages"][5]["reasoning_content"] = text[:3] + "x" + text[4:]
    else:
        call = changed["messages"][5]["tool_calls"][0]["function"]
        call["arguments"] = call["arguments"].replace("spaced", "spacex")
    glm_server.cache.clear()
    post(glm_server, "zai", final)  # the exact request once more, into a fresh cache
    post(glm_server, "zai", changed)
    broken = glm_server.last.cached_tokens
    assert step_two // 4 <= broken < exact
    assert glm_server.last.replay_problems


def test_control_endpoints_report_steps_and_replay_problems(glm_server: GlmServer) -> None:
    _, messages = run_tool_turn(glm_server, "zai", three_steps()[:2])
    messages[2]["reasoning_content"] += " "
    post(glm_server, "zai", request("zai", messages))
    records = httpx.get(f"{glm_server.url}/_glm/requests").json()
    assert [r["replayed_steps"] for r in records] == [0, 1, 2]
    assert records[-1]["replay_problems"] and records[1]["replay_problems"] == []
    steps = httpx.get(f"{glm_server.url}/_glm/steps").json()
    assert [s["reasoning"] for s in steps][:2] == [STEP_REASONING, "Zürich is cold; the note says water plants.\n"]
    assert [c["name"] for c in steps[0]["tool_calls"]] == ["weather", "read_note"] and steps[0]["finished"]
    assert httpx.get(f"{glm_server.url}/_glm/replay_problems").json() == glm_server.replay_problems
    httpx.post(f"{glm_server.url}/_glm/reset")
    assert glm_server.steps == [] and httpx.get(f"{glm_server.url}/_glm/steps").json() == []


def test_ollama_replays_need_object_arguments_and_tool_names(glm_server: GlmServer) -> None:
    _, messages = run_tool_turn(glm_server, "ollama", three_steps()[:1])
    post(glm_server, "ollama", request("ollama", messages))
    assert glm_server.last.replay_problems == []
    messages[2]["tool_calls"][0]["function"]["arguments"] = CALLS[0]["arguments"]  # the string, not the object
    messages[4]["tool_name"] = "weather"
    post(glm_server, "ollama", request("ollama", messages))
    problems = glm_server.last.replay_problems
    assert any("tool_calls[0] arguments" in p and "not the object produced" in p for p in problems), problems
    assert any("tool result 2 has tool_name 'weather', expected 'read_note'" in p for p in problems), problems


def test_tool_steps_can_be_scripted_over_the_control_endpoint(glm_server: GlmServer) -> None:
    reply = Reply(reasoning="R", content="", tool_calls=[{"id": "call_remote", "name": "f", "arguments": '{"a":1}'}],
                  tool_fragments=True)
    assert httpx.post(f"{glm_server.url}/_glm/enqueue", json=[reply.to_dict()]).json() == {"queued": 1}
    step = parse_step("zai", post(glm_server, "zai", chat_body()).content)
    assert step["calls"] == [{"id": "call_remote", "name": "f", "arguments": '{"a":1}'}]
    assert len(step["fragments"][0]) > 1 and step["finish"] == "tool_calls"
