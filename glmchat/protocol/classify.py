"""Turn what a host says went wrong into a typed error with one line a person can act on.

Sources (protocol.md §1.5, §2, §3): Z.ai/BigModel business codes in
`{"error":{"code":"1302","message":…}}` (the code is a string, sometimes a
number, sometimes at the top level); Cerebras' top-level
`{"message","type","param","code"}`; OpenRouter's `{"error":{"code":429,
"message","metadata"}}`; vLLM's `{"object":"error",…}`; Ollama's
`{"error":"…"}`; Runware's `{"errors":[{"code","message"}]}`; and bodies that
are not JSON at all (an HTML page from a proxy).

Every message has the form "<host>: <what happened> — <what to do>", on one
line. Server text is quoted only after it is cleaned: whitespace collapsed,
control characters made inert, anything that looks like a key redacted, and
the length capped.
"""

from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

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
from glmchat.sanitize import inert

if TYPE_CHECKING:
    from glmchat.hosts import Host

DETAIL_LIMIT = 160
"""Longest piece of server text quoted in a message."""

# Z.ai / BigModel business codes (https://docs.z.ai/api-reference/api-code and what was seen in the wild).
ZAI_AUTH_CODES = frozenset(range(1000, 1005))
ZAI_ACCOUNT_CODES = frozenset(range(1110, 1122)) - {1113}
ZAI_QUOTA_CODES = frozenset({1113, 1304, 1308, 1309, 1310, 1313})
ZAI_RATE_CODES = frozenset({1302, 1303, 1305})
ZAI_FILTER_CODES = frozenset({1301})
ZAI_CONTEXT_CODES = frozenset({1261})
ZAI_SERVER_CODES = frozenset({1234})  # "network error" on their side

_QUOTA_WORDS = re.compile(
    r"quota|balance|credit|arrears|recharge|billing|payment|insufficient|"
    r"per[ _-]?day|daily|weekly|monthly|plan (?:has )?expired",
    re.IGNORECASE,
)
_RATE_WORDS = re.compile(r"rate.?limit|too many requests|too_many|concurren|frequen|per minute|per second|overload", re.IGNORECASE)
_AUTH_WORDS = re.compile(r"api.?key|unauthori[sz]ed|authenticat|invalid token|token is invalid|forbidden|permission", re.IGNORECASE)
_CONTEXT_WORDS = re.compile(
    r"context.?(?:length|window)|maximum context|max(?:imum)?[ _]length|prompt is too long|too long|"
    r"exceeds? (?:the )?(?:model|max)|context_length_exceeded|prompt exceeds",
    re.IGNORECASE,
)
_FILTER_WORDS = re.compile(r"moderation|flagged|unsafe|sensitive|content.?(?:filter|policy)|safety", re.IGNORECASE)
_TIMEOUT_WORDS = re.compile(r"timed? ?out|timeout", re.IGNORECASE)
_SERVER_WORDS = re.compile(r"internal|server|unavailable|overloaded|disconnect|upstream|provider returned error", re.IGNORECASE)
_RESET = re.compile(r"reset(?:s)?\s+(?:at|on|in)\s+(.{1,40}?)(?:[.;,)]\s|[.;,)]?$)", re.IGNORECASE)
_HTML = re.compile(rb"^\s*(?:<!doctype|<html|<head|<body|<\?xml|<h1|<center)", re.IGNORECASE)

# What could be a credential in server text: bearer tokens, sk-… keys, and any long
# run of key-like characters (Z.ai keys are "<32 hex>.<16 alnum>").
_SECRETISH = re.compile(r"(?i:bearer)\s+\S+|\bsk-[\w-]{6,}|[A-Za-z0-9._-]{32,}")


@dataclass
class ErrorInfo:
    """What an error body says, whatever its shape."""

    code: str | None = None
    message: str = ""
    type: str = ""
    status: int | None = None
    """A status found inside the body (Cerebras `status_code`, OpenRouter's numeric code)."""
    provider: str = ""
    """OpenRouter's upstream provider name, when it says."""


# -- reading bodies ------------------------------------------------------------------------


def _str(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, (int, float)):
        return str(value)
    return ""


def _code(value: Any) -> str | None:
    text = _str(value).strip()
    return text or None


def _as_status(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and 100 <= value <= 599:
        return value
    if isinstance(value, str) and value.isdigit() and len(value) == 3:
        return int(value)
    return None


def error_info(payload: Any) -> ErrorInfo:
    """Read code, message, type and any status from an error payload of any known shape."""
    info = ErrorInfo()
    if isinstance(payload, str):
        info.message = payload
        return info
    if isinstance(payload, list):
        payload = next((item for item in payload if isinstance(item, dict)), {})
    if not isinstance(payload, dict):
        return info
    info.status = _as_status(payload.get("status_code")) or _as_status(payload.get("status"))
    err = payload.get("error")
    errors = payload.get("errors")
    if isinstance(err, dict):
        source = err
    elif isinstance(errors, list) and errors:
        source = next((item for item in errors if isinstance(item, dict)), {})
        if not source:
            info.message = _str(errors[0])
    elif isinstance(err, str):
        info.message = err
        source = payload
    else:
        source = payload
    code = source.get("code")
    info.status = info.status or _as_status(code)
    info.code = _code(code) if info.code is None else info.code
    info.message = info.message or _str(source.get("message")) or _str(source.get("msg")) or _str(source.get("detail"))
    info.type = _str(source.get("type"))
    metadata = source.get("metadata")
    if isinstance(metadata, dict):
        # OpenRouter wraps the upstream error: prefer its words, and its Z.ai code if any.
        info.provider = _str(metadata.get("provider_name"))
        raw = metadata.get("raw")
        if isinstance(raw, str) and raw.strip():
            try:
                inner = json.loads(raw)
            except (ValueError, RecursionError):
                inner = None
            if inner is not None and not isinstance(inner, (int, float, bool)):
                nested = error_info(inner)
                if nested.code and _zai_code(nested.code) is not None:
                    info.code = nested.code
                info.message = nested.message or info.message
            else:
                info.message = raw
    return info


def _zai_code(code: str | None) -> int | None:
    if code and code.isdigit() and 1000 <= int(code) < 2000:
        return int(code)
    return None


def _decode_body(body: bytes) -> tuple[Any, str]:
    """The body as JSON (or None) and as text."""
    text = body.decode("utf-8", errors="replace")
    if not text.strip():
        return None, ""
    try:
        return json.loads(text), text
    except (ValueError, RecursionError):
        return None, text


# -- message pieces ------------------------------------------------------------------------


def clean(text: str, *, redact: Iterable[str] = (), limit: int = DETAIL_LIMIT) -> str:
    """Server text made safe to show on one line: no control characters, no key-like strings, capped."""
    from glmchat.sanitize import redact as redact_secrets

    text = redact_secrets(text, [secret for secret in redact if secret])
    text = " ".join(text.split())
    text = _SECRETISH.sub("[redacted]", text)
    text = inert(text)
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return text


def _line(host: Host, what: str, fix: str) -> str:
    return f"{host.name}: {what} — {fix}"


def _key_fix(host: Host) -> str:
    if host.key_env:
        return f"check {host.key_env} or run `glmchat config set-key {host.id}`"
    return f"if this server needs a key, run `glmchat config set-key {host.id}`"


MAX_RETRY_AFTER = 10 * 365 * 86400.0
"""Longest wait a Retry-After is read as (ten years): anything longer is the same "try much later"."""


def format_seconds(value: float) -> str:
    """A wait as a person reads it: "12 s", "3 min", "5.5 h", "3 days"."""
    if not math.isfinite(value) or value >= MAX_RETRY_AFTER:
        return "more than 10 years"
    if value < 90:
        return f"{max(1, math.ceil(value))} s"
    if value < 5400:
        return f"{math.ceil(value / 60)} min"
    if value < 2 * 86400:
        return f"{value / 3600:.1f} h"
    days = math.ceil(value / 86400)
    return f"{days:,} days"


def sane_wait(value: float) -> float | None:
    """A wait in seconds made sane: finite, at least 0, at most MAX_RETRY_AFTER (None for NaN)."""
    try:
        value = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    if math.isnan(value):
        return None
    return min(max(0.0, value), MAX_RETRY_AFTER)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value: delta-seconds or an HTTP date (None if neither).

    Whatever the host sends, the result is a finite number from 0 to MAX_RETRY_AFTER
    (`1e20`, `1e400`, a 30-digit number or a date in the year 9999 all read as the cap),
    so no caller can overflow a clock with it.
    """
    if not value:
        return None
    value = value.strip()
    if len(value) > 64:
        return None  # neither a number of seconds nor an HTTP date is this long
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return sane_wait(seconds)
    from email.utils import parsedate_to_datetime  # only for the rare HTTP-date form

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    if when.tzinfo is None:
        from datetime import timezone

        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    try:
        return sane_wait(when.timestamp() - current)
    except (OverflowError, ValueError, OSError):
        return MAX_RETRY_AFTER


def _retry_after(headers: Mapping[str, str], message: str, now: float | None) -> float | None:
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    seconds = parse_retry_after(lowered.get("retry-after"), now=now)
    if seconds is not None:
        return seconds
    # Cerebras sends its limiter's reset times on every response (seconds, float); only the
    # per-minute token window is a sensible wait (the daily one is a quota).
    if "token" in message.lower():
        try:
            seconds = float(lowered.get("x-ratelimit-reset-tokens-minute", "")[:64])
        except ValueError:
            return None
        if seconds >= 0:
            return sane_wait(seconds)
    return None


def _reset_hint(message: str) -> str | None:
    match = _RESET.search(message)
    return match.group(1).strip() if match else None


# -- classification ------------------------------------------------------------------------


def classify_http_error(
    host: Host,
    status: int,
    body: bytes,
    headers: Mapping[str, str] | None = None,
    *,
    now: float | None = None,
    redact: Iterable[str] = (),
) -> GlmChatError:
    """The typed error for a non-2xx response (or a 200 whose body is an error).

    Args:
        host: The host that answered.
        status: The HTTP status.
        body: The response body (any bytes; only a short, cleaned part is quoted).
        headers: The response headers (`Retry-After`, Cerebras' reset headers).
        now: Current time for an HTTP-date `Retry-After` (tests); default the clock.
        redact: Strings to blank out wherever they appear (pass the API key).
    """
    payload, text = _decode_body(body)
    if payload is None:
        info = ErrorInfo(message=text)
        html = bool(_HTML.match(body[:512]))
    else:
        info = error_info(payload)
        html = False
    retry_after = _retry_after(headers or {}, info.message, now)
    return _classify(host, status, info, retry_after=retry_after, redact=tuple(redact), html=html)


def classify_payload(host: Host, payload: Any, *, status: int | None = None, redact: Iterable[str] = ()) -> GlmChatError:
    """The typed error for an error object that arrived inside a stream (HTTP status was 200).

    A status inside the object (Cerebras `status_code`, OpenRouter's numeric
    `code`) decides like an HTTP status would; with none, the words decide, and
    failing those it is a StreamError.
    """
    info = error_info(payload)
    return _classify(host, status or info.status, info, retry_after=None, redact=tuple(redact), html=False, in_stream=True)


def _classify(
    host: Host,
    status: int | None,
    info: ErrorInfo,
    *,
    retry_after: float | None,
    redact: tuple[str, ...],
    html: bool,
    in_stream: bool = False,
) -> GlmChatError:
    detail = clean(info.message, redact=redact) if info.message else ""
    if html:
        detail = ""
    code = info.code
    zcode = _zai_code(code)
    if status in (None, 0, 200) and info.status:
        status = info.status
    kw = {"host": host.name, "status": status if status not in (0, 200) else None, "code": code}

    def said(base: str) -> str:
        """`base` plus what the server said (status, code, text) in parentheses."""
        bits = []
        if status and status != 200:
            bits.append(f"HTTP {status}")
        if code and _as_status(code) != status:
            bits.append(f"code {clean(code, limit=40)}")
        head = ", ".join(bits)
        if detail:
            head = f"{head}: {detail}" if head else detail
        if info.provider:
            head = f"{head} via {clean(info.provider, limit=40)}" if head else f"via {clean(info.provider, limit=40)}"
        return f"{base} ({head})" if head else base

    words = " ".join(filter(None, (code or "", info.type, info.message)))

    # 1. Z.ai / BigModel business codes decide, whatever the HTTP status (1305 came as 503 too).
    if zcode is not None:
        error = _classify_zai(host, zcode, said, info.message, retry_after, kw)
        if error is not None:
            return error

    # 2. The HTTP status (or one found inside the body).
    if html and status:
        what = f"HTTP {status} with an HTML page instead of an API response (a proxy or gateway answered)"
        fix = "check the base URL and any proxy; retry later"
        cls = ServerError if status >= 500 or status == 429 else BadRequestError
        if status in (401, 403, 407):
            cls, fix = AuthError, f"check the base URL and proxy, then {_key_fix(host)}"
        return cls(_line(host, what, fix), retry_after=retry_after if cls is ServerError else None, **kw)
    if status == 401:
        return AuthError(_line(host, said("the API key was rejected"), _key_fix(host)), **kw)
    if status == 403:
        if _FILTER_WORDS.search(words):
            return ContentFilterError(_line(host, said("the content filter refused the request"), "rephrase the message"), **kw)
        return AuthError(
            _line(host, said("access denied"), f"{_key_fix(host)}; the key may not be allowed on this endpoint"), **kw
        )
    if status == 402:
        return QuotaError(_line(host, said("out of credits or balance"), "top up the account, or switch host with --host"), **kw)
    if status == 408:
        return TimeoutError_(_line(host, said("the request timed out on the host"), "retry"), retry_after=retry_after, **kw)
    if status == 413:
        return ContextTooLongError(_line(host, said("the request is too large"), _CONTEXT_FIX), **kw)
    if status == 429:
        if _QUOTA_WORDS.search(info.message) or _QUOTA_WORDS.search(info.type):
            return _quota(host, said("usage quota reached"), info.message, retry_after, kw)
        return _rate(host, said("rate limited"), retry_after, kw)
    if status is not None and 400 <= status < 500:
        if _CONTEXT_WORDS.search(words):
            return ContextTooLongError(_line(host, said("the conversation is longer than the model's context window"), _CONTEXT_FIX), **kw)
        if _FILTER_WORDS.search(words) and status == 400:
            return ContentFilterError(_line(host, said("the content filter refused the request"), "rephrase the message"), **kw)
        if status == 404:
            return BadRequestError(
                _line(host, said("model or endpoint not found"), "check the model name (--model) and the host's base URL"), **kw
            )
        return BadRequestError(_line(host, said("the request was rejected"), _BAD_FIX), **kw)
    if status is not None and status >= 500:
        what = "the host is overloaded" if status in (502, 503, 529) else "server error"
        return ServerError(
            _line(host, said(what), "retry in a moment; if it persists, check " + ("the server's log" if host.local else "the host's status page")),
            retry_after=retry_after,
            **kw,
        )

    # 3. No status to go by (errors inside a stream): the words decide.
    if _AUTH_WORDS.search(words):
        return AuthError(_line(host, said("the API key was rejected"), _key_fix(host)), **kw)
    if _QUOTA_WORDS.search(info.message) or _QUOTA_WORDS.search(info.type):
        return _quota(host, said("usage quota reached"), info.message, retry_after, kw)
    if _RATE_WORDS.search(words):
        return _rate(host, said("rate limited"), retry_after, kw)
    if _CONTEXT_WORDS.search(words):
        return ContextTooLongError(_line(host, said("the conversation is longer than the model's context window"), _CONTEXT_FIX), **kw)
    if _FILTER_WORDS.search(words):
        return ContentFilterError(_line(host, said("the content filter stopped the answer"), "rephrase the message"), **kw)
    if _TIMEOUT_WORDS.search(words):
        return TimeoutError_(_line(host, said("the host timed out"), "retry"), **kw)
    if _SERVER_WORDS.search(words):
        return ServerError(_line(host, said("server error"), "retry in a moment"), **kw)
    if in_stream:
        return StreamError(_line(host, said("the stream carried an error"), "what arrived is kept; retry"), **kw)
    return GlmChatError(_line(host, said("unexpected response"), "retry; if it persists, check the host's base URL"), **kw)


_CONTEXT_FIX = "start a new session, or shorten the message or the history"
_BAD_FIX = "check the model, temperature, top_p and max tokens in the session settings"


def _rate(host: Host, what: str, retry_after: float | None, kw: dict[str, Any]) -> RateLimitError:
    fix = f"wait {format_seconds(retry_after)} and retry" if retry_after else "wait a moment and retry"
    return RateLimitError(_line(host, what, fix), retry_after=retry_after, **kw)


def _quota(host: Host, what: str, message: str, retry_after: float | None, kw: dict[str, Any]) -> QuotaError:
    reset = _reset_hint(message)
    if reset:
        fix = f"it resets at {clean(reset, limit=40)}; wait, top up, or switch host with --host"
    elif retry_after:
        fix = f"it resets in about {format_seconds(retry_after)}; wait, top up, or switch host with --host"
    else:
        fix = "wait for the limit to reset, top up, or switch host with --host"
    return QuotaError(_line(host, what, fix), **kw)


def _classify_zai(
    host: Host,
    zcode: int,
    said: Callable[[str], str],
    message: str,
    retry_after: float | None,
    kw: dict[str, Any],
) -> GlmChatError | None:
    """The error for a Z.ai/BigModel business code; None for a code we don't know (the status decides)."""
    if zcode in ZAI_AUTH_CODES:
        return AuthError(_line(host, said("the API key was rejected"), _key_fix(host)), **kw)
    if zcode in ZAI_ACCOUNT_CODES:
        return AuthError(_line(host, said("the account cannot be used"), "check the account on the host's website"), **kw)
    if zcode == 1309:
        return QuotaError(
            _line(host, said("your GLM Coding Plan has expired"), "renew the plan, or switch to the pay-as-you-go host `zai`"), **kw
        )
    if zcode == 1113:
        return QuotaError(_line(host, said("the account balance is exhausted"), "top up the account, then retry"), **kw)
    if zcode == 1304:
        return QuotaError(_line(host, said("the daily call limit is reached"), "try again tomorrow, or switch host with --host"), **kw)
    if zcode == 1313:
        return QuotaError(
            _line(host, said("the Coding Plan's fair-use limit was hit"), "use the plan from a supported coding tool, or the host `zai`"),
            **kw,
        )
    if zcode in ZAI_QUOTA_CODES:  # 1308, 1310: plan usage windows
        return _quota(host, said("the plan's usage limit is reached"), message, retry_after, kw)
    if zcode in ZAI_RATE_CODES:
        return _rate(host, said("rate limited"), retry_after, kw)
    if zcode in ZAI_FILTER_CODES:
        return ContentFilterError(
            _line(host, said("the content filter refused the request"), "rephrase the message (or start a new session if an earlier turn triggers it)"),
            **kw,
        )
    if zcode in ZAI_CONTEXT_CODES:
        return ContextTooLongError(_line(host, said("the conversation is longer than the model's context window"), _CONTEXT_FIX), **kw)
    if zcode in ZAI_SERVER_CODES:
        return ServerError(_line(host, said("the host reported a network error"), "retry in a moment"), retry_after=retry_after, **kw)
    if zcode == 1211:
        return BadRequestError(_line(host, said("the model does not exist"), "choose a model this host serves (--model)"), **kw)
    if 1200 <= zcode < 1300:
        return BadRequestError(_line(host, said("the request was rejected"), _BAD_FIX), **kw)
    return None


# -- stream failures the parsers report ----------------------------------------------------


def ended_early(host: Host) -> StreamError:
    return StreamError(
        _line(host, "the stream ended before the answer was complete", "what arrived is kept; retry for the full answer"),
        host=host.name,
        code="ended_early",
    )


def web_page(host: Host) -> StreamError:
    """A 2xx answer that is an HTML page: the base URL does not point at the API."""
    return StreamError(
        _line(
            host,
            "the base URL answered with a web page, not the API",
            "check the base URL (and any proxy or captive portal); it should end where the API's paths begin",
        ),
        host=host.name,
        code="web_page",
    )


def malformed_chunk(host: Host, sample: str) -> StreamError:
    return StreamError(
        _line(
            host,
            f"the stream sent a malformed chunk ({clean(sample, limit=60)})",
            f"retry; if it persists, check that the base URL serves the {host.dialect} API",
        ),
        host=host.name,
        code="malformed_chunk",
    )


def internal_error(host: Host, exc: BaseException) -> StreamError:
    """A parser bug must not crash the app: it ends the stream with this instead."""
    return StreamError(
        _line(host, f"glmchat could not read the stream ({type(exc).__name__})", "what arrived is kept; retry"),
        host=host.name,
        code="internal",
    )


# -- finish reasons ------------------------------------------------------------------------

_FINISH_TEXT = {
    "length": ("the answer hit the max-tokens limit and was cut off", "raise max tokens in the session settings, or ask it to continue"),
    "sensitive": ("the host's content filter stopped the answer", "rephrase the message"),
    "content_filter": ("the host's content filter stopped the answer", "rephrase the message"),
    "network_error": ("the host reported a network error mid-answer", "what arrived is kept; retry"),
    "model_context_window_exceeded": ("the conversation filled the model's context window", _CONTEXT_FIX),
    "error": ("the host reported an error mid-answer", "what arrived is kept; retry"),
    "load": ("the model was loaded but gave no answer", "retry"),
    "unload": ("the model was unloaded mid-answer", "retry"),
}


def describe_finish(host: Host, reason: str | None) -> str | None:
    """One line for a finish reason that is not a clean end (None for `stop`, `tool_calls`, ...)."""
    from glmchat.session import CLEAN_FINISH_REASONS

    if reason is None or reason in CLEAN_FINISH_REASONS:
        return None
    what, fix = _FINISH_TEXT.get(reason, (f"the answer ended early ({clean(reason, limit=40)})", "what arrived is kept; retry"))
    return _line(host, what, fix)
