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
    # The server never runs ahead of the pace: chunk i leaves no earlier than i * 3/600 s after the first.
    gaps = [t - record.chunk_times[0] for t in record.chunk_times]
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
