"""Parsing: captured host streams, the SSE/NDJSON decoders, errors inside streams, early ends."""

from __future__ import annotations

import pytest

from glmchat.errors import AuthError, RateLimitError, ServerError, StreamError
from glmchat.protocol import new_parser
from glmchat.protocol.events import (
    ContentDelta,
    Finish,
    ReasoningDelta,
    ReasoningDetailsDelta,
    StreamFailed,
    UsageUpdate,
)
from glmchat.protocol.decoding import LineDecoder, SSEDecoder, SSEEvent
from glmchat.session import Turn, TurnStatus

from tests.wire_helpers import assert_well_ended, chat_chunk, fold, host, parse, split_at, sse

# -- captured streams (protocol.md §7), as literals ------------------------------------------

# §7.1 Z.ai Coding Plan, glm-4.7-flash, 2026-03-13: reasoning, content, a whole tool call, usage.
ZAI_47_STREAM = (
    b'data: {"id":"202603130505331e1698c2b13a4e98","created":1773349533,"object":"chat.completion.chunk","model":"glm-4.7-flash","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"The"}}]}\n\n'
    b'data: {"id":"202603130505331e1698c2b13a4e98","created":1773349533,"object":"chat.completion.chunk","model":"glm-4.7-flash","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":" user"}}]}\n\n'
    b'data: {"id":"202603130505331e1698c2b13a4e98","created":1773349533,"object":"chat.completion.chunk","model":"glm-4.7-flash","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":" is asking about the weather in Florence, Italy."}}]}\n\n'
    b'data: {"id":"202603130505331e1698c2b13a4e98","created":1773349533,"object":"chat.completion.chunk","model":"glm-4.7-flash","choices":[{"index":0,"delta":{"role":"assistant","content":"I"}}]}\n\n'
    b'data: {"id":"202603130505331e1698c2b13a4e98","created":1773349533,"object":"chat.completion.chunk","model":"glm-4.7-flash","choices":[{"index":0,"delta":{"role":"assistant","content":"\'ll check the weather in Florence, Italy for you."}}]}\n\n'
    b'data: {"id":"202603130505331e1698c2b13a4e98","created":1773349533,"object":"chat.completion.chunk","model":"glm-4.7-flash","choices":[{"index":0,"delta":{"tool_calls":[{"id":"call_330c741a86144cb7a385bc6d","index":0,"type":"function","function":{"name":"weather","arguments":"{\\"location\\":\\"Florence\\"}"}}]}}]}\n\n'
    b'data: {"id":"202603130505331e1698c2b13a4e98","created":1773349533,"object":"chat.completion.chunk","model":"glm-4.7-flash","choices":[{"index":0,"finish_reason":"tool_calls","delta":{"role":"assistant","content":""}}],"usage":{"prompt_tokens":173,"completion_tokens":87,"total_tokens":260,"prompt_tokens_details":{"cached_tokens":172},"completion_tokens_details":{"reasoning_tokens":63}}}\n\n'
    b"data: [DONE]\n\n"
)

# §7.2 Z.ai Coding Plan, glm-4.5, 2025-09: no "object", finish_reason also on the tool-call chunk.
ZAI_45_LINES = [
    b'data: {"id":"2025092619065217d08d861c2248cd","created":1758884812,"model":"glm-4.5","choices":[{"index":0,"delta":{"role":"assistant","content":"\\n"}}]}',
    b'data: {"id":"2025092619065217d08d861c2248cd","created":1758884812,"model":"glm-4.5","choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"The"}}]}',
    b'data: {"id":"2025092619065217d08d861c2248cd","created":1758884812,"model":"glm-4.5","choices":[{"index":0,"finish_reason":"tool_calls","delta":{"tool_calls":[{"id":"call_e6e3edb2371843ad9503e65b","index":0,"type":"function","function":{"name":"weather","arguments":"{\\"location\\": \\"Florence, Italy\\"}"}}]}}]}',
    b'data: {"id":"2025092619065217d08d861c2248cd","created":1758884812,"model":"glm-4.5","choices":[{"index":0,"finish_reason":"tool_calls","delta":{"role":"assistant","content":""}}],"usage":{"prompt_tokens":179,"completion_tokens":72,"total_tokens":251,"prompt_tokens_details":{"cached_tokens":43}}}',
    b"data: [DONE]",
]

# §7.3 OpenRouter -> Z.AI, glm-4.5: reasoning + reasoning_details, with the processing comment.
OPENROUTER_STREAM = (
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"id":"gen-1761054186-i7sVLSLSYe9xbfqthPh4","provider":"Z.AI","model":"z-ai/glm-4.5","object":"chat.completion.chunk","created":1761054186,"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"\\n","reasoning_details":[{"type":"reasoning.text","text":"\\n","format":"unknown","index":0}]},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n'
    b": OPENROUTER PROCESSING\n\n"
    b'data: {"id":"gen-1761054186-i7sVLSLSYe9xbfqthPh4","provider":"Z.AI","model":"z-ai/glm-4.5","object":"chat.completion.chunk","created":1761054186,"choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning":"The","reasoning_details":[{"type":"reasoning.text","text":"The","format":"unknown","index":0}]},"finish_reason":null,"native_finish_reason":null,"logprobs":null}]}\n\n'
    b'data: {"id":"gen-1761054186-i7sVLSLSYe9xbfqthPh4","provider":"Z.AI","model":"z-ai/glm-4.5","object":"chat.completion.chunk","created":1761054186,"choices":[{"index":0,"delta":{"role":"assistant","content":"Hi"},"finish_reason":"stop","native_finish_reason":"stop","logprobs":null}]}\n\n'
    b'data: {"id":"gen-1761054186-i7sVLSLSYe9xbfqthPh4","provider":"Z.AI","model":"z-ai/glm-4.5","object":"chat.completion.chunk","created":1761054186,"choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"native_finish_reason":null,"logprobs":null}],"usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"cost":0.000123,"is_byok":false,"prompt_tokens_details":{"cached_tokens":4,"cache_write_tokens":0},"completion_tokens_details":{"reasoning_tokens":3}}}\n\n'
    b"data: [DONE]\n\n"
)

# §7.4 Cerebras zai-glm-4.7, non-streaming (cassette as JSON).
CEREBRAS_BODY = (
    b'{"choices":[{"finish_reason":"stop","index":0,"message":{"content":"25 * 4 = 100.","reasoning":"The user wants me to solve the multiplication problem: \\"25 * 4\\".\\n\\n1.  **Analyze the request:** ...","role":"assistant"}}],"created":1781208276,"id":"chatcmpl-7a8879bf-5eca-4694-8673-441d7b669f8c","model":"zai-glm-4.7","object":"chat.completion","system_fingerprint":"fp_ba34ecf90156e4888692","time_info":{"completion_time":0.80132127,"created":1781208276.514359,"prompt_time":0.004226939,"queue_time":0.000162202,"total_time":0.8083178997039795},"usage":{"completion_tokens":415,"completion_tokens_details":{"accepted_prediction_tokens":0,"reasoning_tokens":406,"rejected_prediction_tokens":0},"prompt_tokens":17,"prompt_tokens_details":{"cached_tokens":0},"total_tokens":432}}'
)

# §7.1 non-streaming twin.
ZAI_BODY = (
    b'{"choices":[{"finish_reason":"tool_calls","index":0,"message":{"content":"I\'ll get the current weather information for Florence, Italy for you.","reasoning_content":"The user is asking...","role":"assistant","tool_calls":[{"function":{"arguments":"{\\"location\\":\\"Florence, Italy\\"}","name":"weather"},"id":"call_-7807252050131023498","index":0,"type":"function"}]}}],"created":1773349530,"id":"20260313050528067228b617b540a4","model":"glm-4.7-flash","object":"chat.completion","request_id":"20260313050528067228b617b540a4","usage":{"completion_tokens":89,"completion_tokens_details":{"reasoning_tokens":61},"prompt_tokens":173,"prompt_tokens_details":{"cached_tokens":169},"total_tokens":262}}'
)

# §7.5 vLLM GLM-4.7-FP8: reasoning_content null, empty content.
VLLM_CHUNK = b'data: {"id":"chatcmpl-ac04f51656ba6a63","object":"chat.completion.chunk","created":1766651440,"model":"GLM-4.7-FP8","choices":[{"index":0,"delta":{"role":"assistant","content":"","reasoning_content":null},"logprobs":null,"finish_reason":null}],"prompt_token_ids":null}\n\n'


def every_split(data: bytes, step: int = 1) -> list[list[bytes]]:
    return [split_at(data, range(offset, len(data), 97)) for offset in range(1, 97, step)]


def test_zai_47_capture() -> None:
    events = parse(host("zai-coding"), ZAI_47_STREAM)
    assert_well_ended(events)
    turn = fold(Turn("weather in Florence?", thinking=True), events)
    assert turn.reasoning == "The user is asking about the weather in Florence, Italy."
    assert turn.content == "I'll check the weather in Florence, Italy for you."
    assert [(c.index, c.id, c.name, c.arguments) for c in turn.step.tool_calls] == [
        (0, "call_330c741a86144cb7a385bc6d", "weather", '{"location":"Florence"}')
    ]
    assert turn.usage.to_dict() == {"prompt_tokens": 173, "completion_tokens": 87, "cached_tokens": 172, "reasoning_tokens": 63, "cost": None}
    assert turn.finish_reason == "tool_calls" and turn.status == TurnStatus.COMPLETE
    assert events[-1] == Finish("tool_calls")
    # Reasoning deltas come as they were sent, one event each, in order.
    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == ["The", " user", " is asking about the weather in Florence, Italy."]


@pytest.mark.parametrize("offset", [1, 2, 7, 13, 50, 96])
def test_zai_47_capture_split_anywhere_gives_the_same_turn(offset: int) -> None:
    whole = fold(Turn("q", thinking=True), parse(host("zai"), ZAI_47_STREAM))
    pieces = split_at(ZAI_47_STREAM, range(offset, len(ZAI_47_STREAM), 97))
    split = fold(Turn("q", thinking=True), parse(host("zai"), pieces))
    assert (split.reasoning, split.content, split.step.tool_calls, split.usage, split.status) == (
        whole.reasoning, whole.content, whole.step.tool_calls, whole.usage, whole.status)


@pytest.mark.parametrize("eol", ["\n\n", "\r\n\r\n", "\r\r"])
def test_zai_45_capture_older_shape(eol: str) -> None:
    data = eol.encode().join(ZAI_45_LINES) + eol.encode()
    events = parse(host("zai-coding"), split_at(data, range(3, len(data), 11)))
    assert_well_ended(events)
    turn = fold(Turn("q", thinking=True), events)
    assert (turn.content, turn.reasoning) == ("\n", "The")
    assert turn.step.tool_calls[0].arguments == '{"location": "Florence, Italy"}'
    assert turn.usage.cached_tokens == 43 and turn.usage.reasoning_tokens is None
    assert turn.finish_reason == "tool_calls" and turn.status == TurnStatus.COMPLETE
    assert sum(isinstance(e, Finish) for e in events) == 1


def test_zai_45_capture_without_blank_lines_is_still_read() -> None:
    # protocol.md prints §7.2 without the blank lines; a server that forgets them must not break us.
    data = b"\n".join(ZAI_45_LINES) + b"\n"
    turn = fold(Turn("q", thinking=True), parse(host("zai"), data))
    assert (turn.content, turn.reasoning, turn.status) == ("\n", "The", TurnStatus.COMPLETE)
    assert turn.usage.prompt_tokens == 179


def test_openrouter_capture() -> None:
    events = parse(host("openrouter"), every_split(OPENROUTER_STREAM, 31)[1])
    assert_well_ended(events)
    details = [e for e in events if isinstance(e, ReasoningDetailsDelta)]
    assert [d.items for d in details] == [
        [{"type": "reasoning.text", "text": "\n", "format": "unknown", "index": 0}],
        [{"type": "reasoning.text", "text": "The", "format": "unknown", "index": 0}],
    ]
    turn = fold(Turn("q", thinking=True), events)
    assert (turn.reasoning, turn.content) == ("\nThe", "Hi")
    assert turn.step.reasoning_details == [d.items[0] for d in details]
    assert turn.usage.to_dict() == {"prompt_tokens": 10, "completion_tokens": 5, "cached_tokens": 4, "reasoning_tokens": 3, "cost": 0.000123}
    assert turn.status == TurnStatus.COMPLETE and events[-1] == Finish("stop")


def test_cerebras_non_streaming_capture() -> None:
    events = parse(host("cerebras"), split_at(CEREBRAS_BODY, [5, 300]), stream=False)
    assert_well_ended(events)
    turn = fold(Turn("25*4", thinking=True), events)
    assert turn.content == "25 * 4 = 100."
    assert turn.reasoning.startswith('The user wants me to solve the multiplication problem: "25 * 4".\n\n1.  **Analyze')
    assert turn.usage.to_dict() == {"prompt_tokens": 17, "completion_tokens": 415, "cached_tokens": 0, "reasoning_tokens": 406, "cost": None}
    assert turn.finish_reason == "stop" and turn.status == TurnStatus.COMPLETE


def test_zai_non_streaming_capture() -> None:
    turn = fold(Turn("q", thinking=True), parse(host("zai"), ZAI_BODY, stream=False))
    assert turn.reasoning == "The user is asking..."
    assert turn.step.tool_calls[0].id == "call_-7807252050131023498"
    assert turn.step.tool_calls[0].arguments == '{"location":"Florence, Italy"}'
    assert (turn.usage.cached_tokens, turn.usage.reasoning_tokens, turn.finish_reason) == (169, 61, "tool_calls")


def test_vllm_capture_null_reasoning_is_nothing() -> None:
    data = VLLM_CHUNK + sse(chat_chunk(reasoning="R"), chat_chunk(content="C"),
                            {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]},
                            {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": 2}}, "[DONE]")
    events = parse(host("vllm"), data)
    assert [type(e).__name__ for e in events] == ["ReasoningDelta", "ContentDelta", "UsageUpdate", "Finish"]
    assert events[-1] == Finish("stop")


# -- chat parser details ---------------------------------------------------------------------


def test_reasoning_content_wins_over_reasoning_never_both() -> None:
    data = sse(chat_chunk(reasoning_content="same", reasoning="same"), chat_chunk(reasoning_content="", reasoning="only"),
               chat_chunk(reasoning_content=None, reasoning="x"), "[DONE]")
    events = parse(host("vllm"), data)
    assert [e.text for e in events if isinstance(e, ReasoningDelta)] == ["same", "only", "x"]


def test_tool_call_fragments_join_by_index() -> None:
    data = sse(
        chat_chunk(tool_calls=[{"index": 0, "id": "a", "type": "function", "function": {"name": "f", "arguments": ""}}]),
        chat_chunk(tool_calls=[{"index": 0, "function": {"arguments": '{"x":'}}]),
        chat_chunk(tool_calls=[{"index": 1, "id": "b", "function": {"name": "g", "arguments": "{}"}}]),
        chat_chunk(tool_calls=[{"index": 0, "function": {"arguments": " 1}"}}]),
        {"choices": [{"index": 0, "delta": {}, "finish_reason": "tool_calls"}]},
        "[DONE]",
    )
    turn = fold(Turn("q", thinking=False), parse(host("zai"), data))
    assert [(c.index, c.id, c.name, c.arguments) for c in turn.step.tool_calls] == [(0, "a", "f", '{"x": 1}'), (1, "b", "g", "{}")]


def test_usage_from_llamacpp_timings_when_no_cached_tokens() -> None:
    final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 50, "completion_tokens": 9}, "timings": {"cache_n": 41, "prompt_n": 9}}
    events = parse(host("llamacpp"), sse(final, "[DONE]"))
    (usage,) = [e.usage for e in events if isinstance(e, UsageUpdate)]
    assert (usage.prompt_tokens, usage.cached_tokens) == (50, 41)


def test_sglang_top_level_reasoning_tokens() -> None:
    final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}], "usage": {"prompt_tokens": 5, "reasoning_tokens": 7}}
    events = parse(host("sglang"), sse(final, "[DONE]"))
    assert [e.usage.reasoning_tokens for e in events if isinstance(e, UsageUpdate)] == [7]


@pytest.mark.parametrize("reason", ["length", "sensitive", "network_error", "model_context_window_exceeded"])
def test_unclean_finish_is_a_finish_and_marks_the_turn_truncated(reason: str) -> None:
    data = sse(chat_chunk(reasoning_content="R"), chat_chunk(content="partial"),
               {"choices": [{"index": 0, "delta": {}, "finish_reason": reason}]}, "[DONE]")
    events = parse(host("zai"), data)
    assert events[-1] == Finish(reason)
    turn = fold(Turn("q", thinking=True), events)
    assert (turn.status, turn.content, turn.reasoning) == (TurnStatus.TRUNCATED, "partial", "R")


def test_done_without_finish_reason_is_a_clean_end_and_later_bytes_are_ignored() -> None:
    parser = new_parser(host("zai"))
    events = parser.feed(sse(chat_chunk(content="A"), "[DONE]"))
    assert events == [ContentDelta("A"), Finish(None)]
    assert parser.done
    assert parser.feed(b"data: {broken\n\n") == [] and parser.close() == []


def test_done_without_trailing_newline() -> None:
    events = parse(host("zai"), sse(chat_chunk(content="A")) + b"data: [DONE]")
    assert events == [ContentDelta("A"), Finish(None)]


def test_finish_reason_but_no_done_is_fine() -> None:
    data = sse(chat_chunk(content="A"), {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    events = parse(host("cerebras"), data)
    assert events == [ContentDelta("A"), Finish("stop")]


@pytest.mark.parametrize("cut", [0, 10, 30])
def test_stream_that_ends_early_fails_and_keeps_what_arrived(cut: int) -> None:
    data = sse(chat_chunk(reasoning_content="thinking..."), chat_chunk(content="half an ans"))
    data = data[: len(data) - cut] if cut else data
    events = parse(host("zai"), data)
    assert_well_ended(events)
    failure = events[-1]
    assert isinstance(failure, StreamFailed) and isinstance(failure.error, StreamError)
    assert failure.error.code in ("ended_early", "malformed_chunk")
    assert str(failure.error).startswith("Z.ai: ") and "retry" in str(failure.error)
    turn = fold(Turn("q", thinking=True), events)
    assert turn.status == TurnStatus.ERROR and turn.reasoning == "thinking..."


def test_malformed_chunk_fails_after_the_good_ones() -> None:
    events = parse(host("zai"), sse(chat_chunk(content="good")) + b"data: {\"choices\": [\n\n" + sse(chat_chunk(content="never")))
    assert events[0] == ContentDelta("good")
    assert isinstance(events[-1], StreamFailed) and events[-1].error.code == "malformed_chunk"
    assert len(events) == 2
    assert "\n" not in events[-1].error.message


def test_json_that_is_not_an_object_is_malformed() -> None:
    events = parse(host("zai"), b"data: [1, 2]\n\ndata: [DONE]\n\n")
    assert isinstance(events[-1], StreamFailed) and events[-1].error.code == "malformed_chunk"


def test_openrouter_error_inside_the_stream() -> None:
    error_chunk = {"id": "gen-1", "object": "chat.completion.chunk", "provider": "Z.AI",
                   "error": {"code": 502, "message": "Provider disconnected"},
                   "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}]}
    events = parse(host("openrouter"), sse(chat_chunk(content="Hel"), error_chunk, "[DONE]"))
    assert events[0] == ContentDelta("Hel") and len(events) == 2
    error = events[-1].error
    assert isinstance(error, ServerError) and error.status == 502
    assert str(error).startswith("OpenRouter: ") and "Provider disconnected" in str(error)
    rate = parse(host("openrouter"), sse({"error": {"code": 429, "message": "Rate limit exceeded"}}))
    assert isinstance(rate[-1].error, RateLimitError)


def test_cerebras_error_chunk_inside_the_stream() -> None:
    chunk = {"error": {"id": "e1", "code": "request_quota_exceeded", "message": "Requests per minute limit exceeded - too many requests sent.",
                       "param": "quota", "type": "too_many_requests_error"}, "status_code": 429}
    events = parse(host("cerebras"), sse(chat_chunk(reasoning="r"), chunk))
    assert isinstance(events[-1], StreamFailed) and isinstance(events[-1].error, RateLimitError)
    top_level = {"message": "Invalid API key", "type": "invalid_request_error", "code": "wrong_api_key"}
    events = parse(host("cerebras"), sse(top_level))
    assert isinstance(events[-1].error, AuthError) and "CEREBRAS_API_KEY" in str(events[-1].error)


def test_sse_error_event_type() -> None:
    data = b'event: error\ndata: {"message": "upstream timed out"}\n\n'
    events = parse(host("vllm"), data)
    assert isinstance(events[-1], StreamFailed) and events[-1].error.kind == "timeout"


def test_invalid_utf8_is_a_stream_error_not_a_replacement_char() -> None:
    good = sse(chat_chunk(content="ok é"))
    events = parse(host("zai"), good + b'data: {"choices":[{"index":0,"delta":{"content":"\xff"}}]}\n\n')
    assert events[0] == ContentDelta("ok é")
    assert isinstance(events[-1], StreamFailed) and events[-1].error.code == "invalid_utf8"
    assert "\ufffd" not in repr(events)
    # A multi-byte character cut off by the end of the stream is also invalid.
    events = parse(host("zai"), good + 'data: {"x": "中'.encode()[:-1])
    assert events[-1].error.code == "invalid_utf8"


def test_multibyte_characters_split_across_reads() -> None:
    text = "中文😀é\u2028x"
    data = sse(chat_chunk(content=text), "[DONE]", ascii_only=False)
    for cut in range(1, len(data)):
        events = parse(host("zai"), [data[:cut], data[cut:]])
        assert events == [ContentDelta(text), Finish(None)], cut


def test_non_streaming_error_body_and_empty_body() -> None:
    events = parse(host("zai"), b'{"error":{"code":"1302","message":"High concurrency"}}', stream=False)
    assert isinstance(events[-1].error, RateLimitError)
    events = parse(host("zai"), b"", stream=False)
    assert events[-1].error.code == "ended_early"


# -- SSE and line decoders -------------------------------------------------------------------


def test_sse_decoder_rules() -> None:
    data = (b"\xef\xbb\xbf: comment\r\n"
            b"data: a\r\ndata:b\r\ndata\r\n\r\n"
            b"event: ping\nid: 7\nretry: 10\nunknown: x\ndata: c\n\n"
            b"data: tail-without-blank")
    decoder = SSEDecoder()
    events = []
    for i in range(len(data)):
        events += decoder.feed(data[i:i + 1])
    events += decoder.close()
    assert events == [SSEEvent("a\nb\n"), SSEEvent("c", "ping"), SSEEvent("tail-without-blank")]


def test_crlf_split_between_reads_is_one_line_end() -> None:
    decoder = LineDecoder()
    assert decoder.feed(b"one\r") == ["one"]
    assert decoder.feed(b"\ntwo\r") == ["two"]
    assert decoder.feed(b"\r") == [""]
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"three") == []
    assert decoder.close() == ["three"]


def test_line_decoder_keeps_unicode_line_separators_inside_lines() -> None:
    decoder = LineDecoder()
    assert decoder.feed("a\u2028b\x1cc\x85d\x0be\n".encode()) == ["a\u2028b\x1cc\x85d\x0be"]


def test_line_too_long_is_a_stream_error() -> None:
    decoder = LineDecoder("X", max_line=10)
    with pytest.raises(StreamError):
        decoder.feed(b"0123456789abc")


@pytest.mark.timeout(60)
def test_one_huge_line_in_tiny_pieces_is_linear() -> None:
    # A quadratic decoder (re-joining or re-scanning the buffer per read) takes
    # hours here; a linear one takes about a second. Not a timing assertion:
    # the test timeout only guards against a hang.
    text = "x" * 1_000_000
    data = sse(chat_chunk(content=text), "[DONE]")
    parser = new_parser(host("zai"))
    events = []
    for i in range(0, len(data), 3):
        events += parser.feed(data[i:i + 3])
    events += parser.close()
    assert events == [ContentDelta(text), Finish(None)]


# -- Ollama ----------------------------------------------------------------------------------

OLLAMA_STREAM = (
    b'{"model":"glm-4.7","created_at":"2026-01-20T10:00:00Z","message":{"role":"assistant","content":"","thinking":"Let me"},"done":false}\n'
    b'{"model":"glm-4.7","created_at":"2026-01-20T10:00:00Z","message":{"role":"assistant","content":"","thinking":" think \\r\\n"},"done":false}\n'
    b'{"model":"glm-4.7","created_at":"2026-01-20T10:00:00Z","message":{"role":"assistant","content":"Hello"},"done":false}\n'
    b'{"model":"glm-4.7","created_at":"2026-01-20T10:00:00Z","message":{"role":"assistant","content":" \\u4e16"},"done":false}\n'
    b'{"model":"glm-4.7","created_at":"2026-01-20T10:00:01Z","message":{"role":"assistant","content":""},"done":true,"done_reason":"stop","total_duration":123,"prompt_eval_count":26,"eval_count":290}\n'
)


@pytest.mark.parametrize("step", [1, 4, 1000])
def test_ollama_ndjson(step: int) -> None:
    events = parse(host("ollama"), split_at(OLLAMA_STREAM, range(step, len(OLLAMA_STREAM), step)))
    assert_well_ended(events)
    turn = fold(Turn("hi", thinking=True), events)
    assert (turn.reasoning, turn.content) == ("Let me think \r\n", "Hello 世")
    assert (turn.usage.prompt_tokens, turn.usage.completion_tokens) == (26, 290)
    assert turn.finish_reason == "stop" and turn.status == TurnStatus.COMPLETE


def test_ollama_crlf_error_line_length_and_early_end() -> None:
    h = host("ollama")
    events = parse(h, OLLAMA_STREAM.replace(b"\n", b"\r\n"))
    assert events[-1] == Finish("stop")
    events = parse(h, OLLAMA_STREAM.splitlines(keepends=True)[2] + b'{"error":"model runner has unexpectedly stopped"}\n')
    assert events[0] == ContentDelta("Hello")
    assert isinstance(events[-1], StreamFailed) and str(events[-1].error).startswith("Ollama: ")
    events = parse(h, b'{"message":{"role":"assistant","content":"x"},"done":true,"done_reason":"length"}')
    assert events[-1] == Finish("length")
    events = parse(h, OLLAMA_STREAM.splitlines(keepends=True)[0])
    assert events[-1].error.code == "ended_early"


def test_ollama_tool_calls_and_non_streaming_body() -> None:
    body = (b'{"model":"glm-4.7","message":{"role":"assistant","content":"","thinking":"T",'
            b'"tool_calls":[{"function":{"name":"weather","arguments":{"city":"Roma"}}},{"function":{"name":"time","arguments":{}}}]},'
            b'"done":true,"done_reason":"stop","prompt_eval_count":3,"eval_count":4}')
    turn = fold(Turn("q", thinking=True), parse(host("ollama"), body, stream=False))
    assert turn.reasoning == "T"
    assert [(c.index, c.name, c.arguments) for c in turn.step.tool_calls] == [(0, "weather", '{"city":"Roma"}'), (1, "time", "{}")]


# -- Runware ---------------------------------------------------------------------------------


def test_runware_envelope_and_bare_objects() -> None:
    data = sse(
        {"data": [{"taskType": "textInference", "taskUUID": "u", "delta": {"reasoningContent": "Think"}}]},
        {"taskType": "textInference", "taskUUID": "u", "delta": {"reasoning_content": "ing"}},
        {"data": [{"taskType": "textInference", "taskUUID": "u", "delta": {"text": "Answer"}}]},
        {"data": [{"taskType": "textInference", "taskUUID": "u", "finishReason": "stop", "cost": 0.0021,
                   "usage": {"promptTokens": 11, "completionTokens": 22, "completionTokensDetails": {"reasoningTokens": 5}}}]},
        "[DONE]",
    )
    events = parse(host("runware"), split_at(data, range(2, len(data), 9)))
    assert_well_ended(events)
    turn = fold(Turn("q", thinking=True), events)
    assert (turn.reasoning, turn.content) == ("Thinking", "Answer")
    assert turn.usage.to_dict() == {"prompt_tokens": 11, "completion_tokens": 22, "cached_tokens": None, "reasoning_tokens": 5, "cost": 0.0021}
    assert turn.status == TurnStatus.COMPLETE and events[-1] == Finish("stop")


def test_runware_errors_and_sync_body() -> None:
    h = host("runware")
    events = parse(h, sse({"errors": [{"code": "invalidApiKey", "message": "Invalid API key", "taskUUID": "u"}]}))
    assert isinstance(events[-1].error, AuthError) and "RUNWARE_API_KEY" in str(events[-1].error)
    body = b'{"data":[{"taskType":"textInference","taskUUID":"u","text":"Hi","reasoningContent":"R","finishReason":"stop","cost":0.5}]}'
    turn = fold(Turn("q", thinking=True), parse(h, body, stream=False))
    assert (turn.content, turn.reasoning, turn.usage.cost, turn.status) == ("Hi", "R", 0.5, TurnStatus.COMPLETE)
