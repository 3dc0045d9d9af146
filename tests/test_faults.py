"""Error classification: every fault in issue 5 that is a status or a body gets its class and one clear line."""

from __future__ import annotations

import json
from email.utils import formatdate

import pytest

from glmchat.errors import (
    AuthError,
    BadRequestError,
    ContentFilterError,
    ContextTooLongError,
    GlmChatError,
    QuotaError,
    RateLimitError,
    ServerError,
    StreamError,
    TimeoutError_,
)
from glmchat.protocol import classify_http_error, classify_payload, describe_finish, parse_retry_after
from glmchat.protocol.events import StreamFailed

from tests.wire_helpers import host, parse, sse

KEY = "0123456789abcdef0123456789abcdef.AbCdEfGhIjKlMnOp"


def body(obj: object) -> bytes:
    return json.dumps(obj, ensure_ascii=False).encode()


def zai(code: int | str, message: str) -> bytes:
    return body({"error": {"code": code, "message": message}})


def check(error: GlmChatError, cls: type, host_name: str, *needles: str) -> None:
    """Right class, retry flag from the class, one line naming the host, the fix words present, no key."""
    assert type(error) is cls, (type(error), error.message)
    assert error.retryable is cls.retryable
    text = str(error)
    assert text.startswith(f"{host_name}: ") and " — " in text
    assert "\n" not in text and "\r" not in text and "\x1b" not in text
    assert KEY not in text and "Bearer" not in text
    assert len(text) < 400
    for needle in needles:
        assert needle in text, (needle, text)


# -- Z.ai business codes ------------------------------------------------------------------------

ZAI_CASES = [
    # code, status, message, class, words the line must hold
    (1002, 401, "Authorization Token is invalid, please check the token.", AuthError, ("ZAI_API_KEY", "glmchat config set-key zai")),
    (1113, 429, "Your account is in arrears, please recharge and try again", QuotaError, ("balance", "top up")),
    (1261, 400, "Prompt exceeds max length", ContextTooLongError, ("new session", "shorten")),
    (1301, 400, "System detected potentially unsafe or sensitive content in input or generation.", ContentFilterError, ("rephrase",)),
    (1302, 429, "High concurrency usage of this API, please reduce concurrency", RateLimitError, ("wait",)),
    (1303, 429, "High frequency usage of this API", RateLimitError, ("wait",)),
    (1304, 429, "The daily call limit for this API has been reached.", QuotaError, ("daily", "tomorrow")),
    (1305, 429, "The service may be temporarily overloaded, please try again later", RateLimitError, ("wait",)),
    (1305, 503, "该模型当前访问量过大，请您稍后再试", RateLimitError, ("wait", "该模型")),
    (1308, 429, "Usage limit reached for 5 hour. Your limit will reset at 2026-01-08 17:06:43", QuotaError, ("resets at 2026-01-08 17:06:43",)),
    (1309, 429, "Your GLM Coding Plan package has expired, and the service is unavailable.", QuotaError, ("expired", "renew")),
    (1310, 429, "Weekly/Monthly Limit Exhausted. Your limit will reset at 2026-01-12 00:00:00", QuotaError, ("resets at 2026-01-12 00:00:00",)),
    (1210, 400, "max_tokens参数非法：限制数值范围[1,98304]", BadRequestError, ("max tokens", "98304")),
    (1211, 400, "Model does not exist", BadRequestError, ("--model",)),
    (1214, 400, "Input cannot be empty", BadRequestError, ("Input cannot be empty",)),
]


@pytest.mark.parametrize(("code", "status", "message", "cls", "needles"), ZAI_CASES, ids=[f"{c[0]}-{c[1]}" for c in ZAI_CASES])
@pytest.mark.parametrize("as_number", [False, True], ids=["str", "int"])
def test_zai_business_codes(code, status, message, cls, needles, as_number: bool) -> None:
    h = host("zai-coding")
    error = classify_http_error(h, status, zai(code if as_number else str(code), message), {})
    check(error, cls, "Z.ai Coding Plan", *needles)
    assert error.code == str(code) and error.status == status


def test_zai_top_level_code_shape() -> None:
    # Seen in the wild: {"code":"1210","message":...} without the "error" wrapper.
    error = classify_http_error(host("bigmodel"), 400, body({"code": "1210", "message": "max_tokens参数非法"}), {})
    check(error, BadRequestError, "BigModel", "max_tokens")


def test_rate_limit_keeps_retry_after_seconds_and_http_date() -> None:
    h = host("zai")
    error = classify_http_error(h, 429, zai("1302", "High concurrency"), {"Retry-After": "7"})
    check(error, RateLimitError, "Z.ai", "wait 7 s")
    assert error.retry_after == 7
    now = 1_800_000_000.0
    date = formatdate(now + 120, usegmt=True)
    error = classify_http_error(h, 429, b"", {"retry-after": date}, now=now)
    check(error, RateLimitError, "Z.ai", "HTTP 429", "wait 2 min")
    assert error.retry_after == pytest.approx(120)


@pytest.mark.parametrize(("value", "expected"), [("3", 3.0), (" 1.5 ", 1.5), ("-4", 0.0), ("soon", None), ("", None), ("nan", None),
                                                  ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)])
def test_parse_retry_after(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, now=2_000_000_000) == expected


def test_429_that_says_quota_is_not_retried() -> None:
    h = host("openrouter")
    error = classify_http_error(h, 429, body({"error": {"code": 429, "message": "Rate limit exceeded: free-models-per-day"}}), {"Retry-After": "30"})
    check(error, QuotaError, "OpenRouter", "free-models-per-day")
    assert error.retry_after is None
    error = classify_http_error(h, 429, body({"error": {"code": 429, "message": "Rate limit exceeded"}}), {"Retry-After": "30"})
    check(error, RateLimitError, "OpenRouter", "wait 30 s")


@pytest.mark.parametrize("status", [401, 403])
@pytest.mark.parametrize("host_id", ["zai", "cerebras", "openrouter", "runware", "vllm"])
def test_auth_failures_name_the_key_variable_and_the_command(status: int, host_id: str) -> None:
    h = host(host_id)
    error = classify_http_error(h, status, body({"error": {"message": f"Invalid API key {KEY}"}}), {})
    needles = [f"glmchat config set-key {host_id}"]
    if h.key_env:
        needles.append(h.key_env)
    check(error, AuthError, h.name, *needles)
    assert error.status == status


def test_key_like_text_is_redacted_even_when_not_passed() -> None:
    sneaky = "sk-or-v1-" + "a1" * 30
    error = classify_http_error(host("openrouter"), 401, body({"error": {"code": 401, "message": f"No auth credentials found for {sneaky} Bearer {sneaky}"}}), {})
    assert sneaky not in str(error) and "[redacted]" in str(error)
    error = classify_http_error(host("zai"), 401, body({"error": {"code": "1001", "message": f"bad key short-{KEY[:8]}"}}), {}, redact=[KEY[:8]])
    assert KEY[:8] not in str(error)


def test_cerebras_top_level_error_object() -> None:
    h = host("cerebras")
    rpm = body({"message": "Requests per minute limit exceeded - too many requests sent.", "type": "too_many_requests_error",
                "param": "quota", "code": "request_quota_exceeded"})
    error = classify_http_error(h, 429, rpm, {"x-ratelimit-reset-requests-day": "30000"})
    check(error, RateLimitError, "Cerebras", "Requests per minute", "request_quota_exceeded")
    assert error.retry_after is None  # the daily reset is no wait for a per-minute limit
    tpm = body({"message": "Tokens per minute limit exceeded - too many tokens processed.", "type": "too_many_requests_error",
                "param": "quota", "code": "token_quota_exceeded"})
    error = classify_http_error(h, 429, tpm, {"x-ratelimit-reset-tokens-minute": "12.5"})
    check(error, RateLimitError, "Cerebras", "wait 13 s")
    assert error.retry_after == 12.5
    daily = body({"message": "Tokens per day limit exceeded - too many tokens processed.", "type": "too_many_requests_error",
                  "param": "quota", "code": "token_quota_exceeded"})
    check(classify_http_error(h, 429, daily, {}), QuotaError, "Cerebras", "per day")
    ctx = body({"message": "Please reduce the length of the messages or completion. Current length is 140000 while limit is 131072",
                "type": "invalid_request_error", "param": "messages", "code": "context_length_exceeded"})
    check(classify_http_error(h, 400, ctx, {}), ContextTooLongError, "Cerebras", "new session")
    check(classify_http_error(h, 402, body({"message": "Payment required", "type": "payment_required_error"}), {}), QuotaError, "Cerebras", "top up")
    check(classify_http_error(h, 422, body({"message": "Unprocessable", "type": "invalid_request_error", "code": "bad"}), {}), BadRequestError, "Cerebras")


def test_openrouter_shapes() -> None:
    h = host("openrouter")
    check(classify_http_error(h, 402, body({"error": {"code": 402, "message": "Insufficient credits"}}), {}), QuotaError, "OpenRouter", "Insufficient credits")
    flagged = body({"error": {"code": 403, "message": "Your chosen model requires moderation and your input was flagged",
                              "metadata": {"reasons": ["x"]}}})
    check(classify_http_error(h, 403, flagged, {}), ContentFilterError, "OpenRouter", "rephrase")
    check(classify_http_error(h, 408, body({"error": {"code": 408, "message": "Timed out"}}), {}), TimeoutError_, "OpenRouter")
    wrapped = body({"error": {"code": 429, "message": "Provider returned error",
                              "metadata": {"provider_name": "Z.AI", "raw": json.dumps({"error": {"code": "1305", "message": "overloaded"}})}}})
    error = classify_http_error(h, 429, wrapped, {"Retry-After": "2"})
    check(error, RateLimitError, "OpenRouter", "via Z.AI", "overloaded")
    assert error.code == "1305" and error.retry_after == 2


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retryable(status: int) -> None:
    error = classify_http_error(host("zai"), status, zai(str(status), "Internal error"), {"Retry-After": "1"})
    check(error, ServerError, "Z.ai", f"HTTP {status}", "retry")
    assert error.retry_after == 1


def test_non_json_bodies() -> None:
    html = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>"
    error = classify_http_error(host("zai"), 502, html, {"content-type": "text/html"})
    check(error, ServerError, "Z.ai", "HTML", "proxy")
    assert "nginx" not in str(error) and "<" not in str(error)
    check(classify_http_error(host("vllm"), 500, b"", {}), ServerError, "vLLM", "HTTP 500")
    error = classify_http_error(host("llamacpp"), 400, b"bad \x1b]52;c;AAAA\x07 request\n\nline two\xff", {})
    check(error, BadRequestError, "llama.cpp", "line two")
    check(classify_http_error(host("sglang"), 404, b"Not Found", {}), BadRequestError, "SGLang", "model name")


def test_server_text_is_capped() -> None:
    error = classify_http_error(host("zai"), 400, zai("1214", "word " * 500), {})
    check(error, BadRequestError, "Z.ai", "…")


def test_vllm_ollama_and_runware_shapes() -> None:
    vllm = body({"object": "error", "message": "This model's maximum context length is 202752 tokens.", "type": "BadRequestError", "param": None, "code": 400})
    check(classify_http_error(host("vllm"), 400, vllm, {}), ContextTooLongError, "vLLM")
    check(classify_http_error(host("ollama"), 404, body({"error": "model 'glm-4.7' not found"}), {}), BadRequestError, "Ollama", "not found")
    runware = body({"errors": [{"code": "insufficientCredits", "message": "Insufficient credits", "taskUUID": "u"}]})
    check(classify_http_error(host("runware"), 402, runware, {}), QuotaError, "Runware", "top up")


# -- errors inside streams ----------------------------------------------------------------------


def test_in_stream_payloads() -> None:
    check(classify_payload(host("openrouter"), {"error": {"code": "server_error", "message": "Provider disconnected"}}), ServerError, "OpenRouter")
    check(classify_payload(host("openrouter"), {"error": {"code": 429, "message": "Rate limit exceeded"}}), RateLimitError, "OpenRouter")
    check(classify_payload(host("cerebras"), {"error": {"message": "x", "type": "t"}, "status_code": 503}), ServerError, "Cerebras")
    check(classify_payload(host("zai"), {"error": {"code": "1301", "message": "unsafe"}}), ContentFilterError, "Z.ai")
    check(classify_payload(host("ollama"), {"error": "something odd happened"}), StreamError, "Ollama", "retry")


@pytest.mark.parametrize("host_id", ["openrouter", "cerebras", "vllm"])
def test_in_stream_errors_through_the_parser(host_id: str) -> None:
    chunk = {"error": {"code": 502, "message": "upstream gone"}, "status_code": 502}
    events = parse(host(host_id), sse({"choices": [{"index": 0, "delta": {"content": "a"}}]}, chunk, "[DONE]"))
    assert isinstance(events[-1], StreamFailed)
    check(events[-1].error, ServerError, host(host_id).name, "upstream gone")


def test_parser_failures_read_as_one_line() -> None:
    events = parse(host("zai"), b'data: {"choices":\n\n')
    check(events[-1].error, StreamError, "Z.ai", "malformed", "retry")
    events = parse(host("zai"), b'data: {"choices":[]}\n\n')
    check(events[-1].error, StreamError, "Z.ai", "ended before", "retry")


# -- finish reasons -----------------------------------------------------------------------------


@pytest.mark.parametrize(("reason", "needle"), [("length", "max tokens"), ("sensitive", "content filter"), ("network_error", "retry"),
                                                ("model_context_window_exceeded", "new session"), ("content_filter", "rephrase"),
                                                ("error", "retry"), ("weird\x1b[2J", "weird")])
def test_describe_finish_for_unclean_reasons(reason: str, needle: str) -> None:
    text = describe_finish(host("zai"), reason)
    assert text is not None and text.startswith("Z.ai: ") and " — " in text and needle in text
    assert "\x1b" not in text and "\n" not in text


@pytest.mark.parametrize("reason", [None, "stop", "tool_calls", "end_turn"])
def test_describe_finish_is_silent_for_clean_ends(reason: str | None) -> None:
    assert describe_finish(host("cerebras"), reason) is None
