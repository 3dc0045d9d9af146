"""Send a turn's request over HTTP and stream back typed events.

One `httpx.AsyncClient` per `GlmClient`, made on first use (httpx is imported
here only, so `glmchat --version` never pays for it). The policy:

- TLS verification is always on; plain http:// only where `check_transport`
  allows it (loopback, a local server, or an explicit host setting).
- Transient failures before the first byte of the answer are retried with
  exponential backoff and jitter: 429 (honouring Retry-After up to a cap),
  Z.ai 1302/1303/1305, 5xx, connect errors and connections reset before the
  answer began. Each retry is announced with a `Retrying` event before the
  wait, so a UI can count down.
- Never retried: auth, quota, bad requests, read timeouts (the host has the
  request), and anything after the first byte arrived: a stream that breaks
  midway ends with `StreamFailed` and the caller keeps what arrived.
- Failures never raise: they are the final `StreamFailed(error)` event, with a
  one-line message naming the host and what to do. The API key is never part
  of any message: it is redacted wherever a server might echo it.
- Cancelling the consuming task closes the HTTP stream at once.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from glmchat import __version__
from glmchat.errors import (
    ConfigError,
    ConnectionDropped,
    GlmChatError,
    NetworkError,
    TimeoutError_,
)
from glmchat.hosts import Dialect, check_transport, display_url, is_local_url
from glmchat.protocol.events import ContentDelta, Event, Finish, ReasoningDelta, Retrying, StreamFailed, ToolCallDelta

if TYPE_CHECKING:
    import httpx

    from glmchat.hosts import Host
    from glmchat.protocol import Request

if "httpx" not in sys.modules:
    # httpx imports its command-line tool (click, pygments, rich: about 50 ms) whenever
    # those are installed; a None entry makes that import fail, and httpx then goes
    # without its CLI, which glmchat never uses. Only done before httpx is loaded.
    sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

USER_AGENT = f"glmchat/{__version__}"
_DATA_EVENTS = (ReasoningDelta, ContentDelta, ToolCallDelta, Finish)
"""Events that show the host is answering; only these move the stall deadline."""
MAX_ERROR_BODY = 256 * 1024
"""Bytes of an error response we read to classify it (the rest is dropped)."""


class GlmClient:
    """Streams requests to GLM hosts. Use as an async context manager, or call `aclose()`.

    Args:
        connect_timeout: Seconds to establish a connection (and to wait for a pooled one).
        read_timeout: Seconds without a byte from the host before giving up on a read.
        max_retries: Retries after the first attempt, for transient failures only.
        backoff: Base delay in seconds; attempt n waits about backoff * 2**(n-1), with jitter.
        max_backoff: Longest computed wait between attempts.
        max_retry_wait: Longest Retry-After we honour; a host asking for more gets no
            automatic retry, and the message says how long it asked for.
        stall_timeout: Seconds a stream may go without a data event (text, a tool call,
            a finish) before it fails as stalled; None: never. Unlike the read timeout,
            keep-alive comments and a trickle of bytes do not reset it.
        transport: An httpx transport to use instead of the network (tests only).
    """

    def __init__(
        self,
        *,
        connect_timeout: float = 10.0,
        read_timeout: float = 120.0,
        max_retries: int = 3,
        backoff: float = 1.0,
        max_backoff: float = 30.0,
        max_retry_wait: float = 60.0,
        stall_timeout: float | None = 180.0,
        transport: Any = None,
    ) -> None:
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.max_retries = max(0, max_retries)
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_wait = max_retry_wait
        self.stall_timeout = stall_timeout
        self._transport = transport
        self._http: httpx.AsyncClient | None = None
        self._pool_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"GlmClient(connect_timeout={self.connect_timeout}, read_timeout={self.read_timeout}, "
            f"max_retries={self.max_retries})"
        )

    async def __aenter__(self) -> GlmClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (safe to call twice)."""
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()

    def prepare(self) -> None:
        """Build the connection pool now (safe from a thread): the first request then goes out at once."""
        self._client()

    def _client(self) -> httpx.AsyncClient:
        with self._pool_lock:  # `prepare` may run in a thread while the first request starts
            return self._pool()

    def _pool(self) -> httpx.AsyncClient:
        if self._http is None:
            import httpx

            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(
                    connect=self.connect_timeout,
                    read=self.read_timeout,
                    write=self.read_timeout,
                    pool=self.connect_timeout,
                ),
                # Verification stays on: there is deliberately no way to pass verify=False.
                verify=True,
                follow_redirects=False,
                transport=self._transport,
            )
        return self._http

    # -- streaming ---------------------------------------------------------------------------

    async def stream(self, host: Host, request: Request, api_key: str | None) -> AsyncIterator[Event]:
        """Send `request` to `host` and yield the events of the answer.

        The last event is a `Finish` for a clean end or a `StreamFailed`; `Retrying`
        events may come first. Nothing is raised for HTTP or network faults.
        """
        from glmchat.protocol import classify_http_error, encode_body, new_parser

        key = (api_key or "").strip() or None
        try:
            check_transport(host)
            if key is not None:
                _check_key(host, key)
            body = encode_body(request.body)
        except GlmChatError as exc:
            yield StreamFailed(_redacted(exc, key))
            return
        except ValueError as exc:
            yield StreamFailed(ConfigError(f"{host.name}: the request could not be encoded ({exc}) — this is a bug", host=host.name))
            return

        headers = self._headers(host, request, key)
        attempt = 0
        while True:
            error: GlmChatError | None = None
            progress = _Progress()
            try:
                async with self._client().stream("POST", request.url, content=body, headers=headers) as response:
                    if response.status_code >= 300:
                        raw = await _read_capped(response)
                        error = classify_http_error(
                            host, response.status_code, raw, response.headers, redact=[key] if key else []
                        )
                    else:
                        async for event in self._answer(host, request, response, key, progress):
                            yield event
                        return
            except TimeoutError:
                # Only the stall deadline raises this (httpx has its own timeout classes).
                yield StreamFailed(_redacted(self._stall_error(host, progress.got_bytes), key))
                return
            except Exception as exc:  # noqa: BLE001 - every transport failure becomes an event
                if not _is_httpx_error(exc):
                    raise
                error = self._network_error(host, request.url, exc, midstream=progress.got_bytes)
                if progress.got_bytes:
                    # Never retry once the answer began: the caller keeps the partial turn.
                    yield StreamFailed(_redacted(error, key))
                    return

            assert error is not None
            error = _redacted(error, key)
            if not error.retryable or attempt >= self.max_retries:
                yield StreamFailed(error)
                return
            delay, error = self._retry_delay(error, attempt + 1)
            if delay is None:
                yield StreamFailed(error)
                return
            attempt += 1
            yield Retrying(attempt=attempt, delay=delay, error=error)
            await asyncio.sleep(delay)

    async def _answer(
        self, host: Host, request: Request, response: httpx.Response, key: str | None, progress: _Progress
    ) -> AsyncIterator[Event]:
        """The events of a 2xx response: a stream, or (whatever was asked for) one JSON body or a web page.

        Some hosts and proxies answer a streaming request with a whole JSON body: a
        chat completion, or an error such as Z.ai's `{"error":{"code":"1301",...}}`;
        a misdirected base URL answers with an HTML page. The Content-Type and the
        first bytes tell which; a JSON body is read like a non-streaming answer.
        """
        from glmchat.protocol import new_parser
        from glmchat.protocol.parser import BodyKind, sniff_body

        chunks = response.aiter_bytes()
        # The stall deadline: moved on by every data event, not by bytes.
        async with asyncio.timeout_at(self._stall_deadline()) as deadline:
            head = b""
            async for data in chunks:
                progress.got_bytes = True
                head += data
                if head.strip() or len(head) >= 4096:
                    break
            kind = sniff_body(response.headers.get("content-type", ""), head, host.dialect, stream=request.stream)
            if kind == BodyKind.HTML:
                from glmchat.protocol.classify import web_page

                yield StreamFailed(web_page(host))
                return
            parser = new_parser(host, stream=request.stream and kind == BodyKind.STREAM)
            pending = [head] if head else []
            async for data in _chained(pending, chunks):
                events = parser.feed(data)
                for event in events:
                    if isinstance(event, StreamFailed):
                        yield StreamFailed(_redacted(event.error, key))
                        return
                    if isinstance(event, _DATA_EVENTS):
                        deadline.reschedule(self._stall_deadline())
                    yield event
                if parser.done:
                    break
        for event in parser.close():
            if isinstance(event, StreamFailed):
                event = StreamFailed(_redacted(event.error, key))
            yield event

    def _stall_deadline(self) -> float | None:
        if self.stall_timeout is None:
            return None
        return asyncio.get_running_loop().time() + self.stall_timeout

    def _stall_error(self, host: Host, midstream: bool) -> GlmChatError:
        what = "the answer stalled" if midstream else "no answer came"
        error = TimeoutError_(
            f"{host.name}: {what}: no text for {self.stall_timeout:g} s though the connection stayed open — "
            "what arrived is kept; retry later (stall_timeout in config.toml sets the wait)",
            host=host.name,
            code="stalled",
        )
        error.retryable = False  # the host has the request; sending it again could bill twice
        return error

    async def list_models(self, host: Host, api_key: str | None) -> list[str]:
        """The model ids the host's OpenAI-style `/models` endpoint lists (its base URL + "/models").

        Raises:
            GlmChatError: one line naming the host, for a refused or unreadable list or a network failure.
        """
        import json

        from glmchat.protocol import classify_http_error

        key = (api_key or "").strip() or None
        check_transport(host)
        url = host.base_url.rstrip("/") + "/models"
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if key is not None:
            _check_key(host, key)
            headers["Authorization"] = f"Bearer {key}"
        try:
            response = await self._client().get(url, headers=headers)
            raw = response.content[:4_000_000]
        except Exception as exc:  # noqa: BLE001 - a transport failure becomes one line
            if not _is_httpx_error(exc):
                raise
            raise _redacted(self._network_error(host, url, exc, midstream=False), key) from None
        if response.status_code >= 300:
            raise _redacted(classify_http_error(host, response.status_code, raw, response.headers, redact=[key] if key else []), key)
        try:
            data = json.loads(raw).get("data")
            names = [item["id"] for item in data if isinstance(item, dict) and isinstance(item.get("id"), str)]
        except (ValueError, AttributeError, TypeError, KeyError):
            raise GlmChatError(f"{host.name}: the model list could not be read") from None
        return names

    def _headers(self, host: Host, request: Request, key: str | None) -> dict[str, str]:
        streaming = request.stream
        accept = "application/json"
        if streaming:
            accept = "application/x-ndjson" if host.dialect == Dialect.OLLAMA else "text/event-stream"
        headers = {"Accept": accept, "Content-Type": "application/json"}
        if streaming:
            # A compressed stream may be held back by proxies until a block fills.
            headers["Accept-Encoding"] = "identity"
        headers.update(request.headers or {})
        headers = {k: v for k, v in headers.items() if k.lower() != "authorization"}
        headers["User-Agent"] = USER_AGENT
        if key is not None:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def _retry_delay(self, error: GlmChatError, attempt: int) -> tuple[float | None, GlmChatError]:
        """Seconds before retry `attempt`, or None (with a reworded error) when the host asks too much."""
        if error.retry_after is not None:
            from glmchat.protocol.classify import format_seconds, sane_wait

            wait = sane_wait(error.retry_after) or 0.0
            if wait > self.max_retry_wait:
                # No clock time: "after 17:56:45" is meaningless for a wait of days (or years).
                what = error.message.split(" — ", 1)[0]
                message = f"{what} — the host asks to wait {format_seconds(wait)}: try later"
                return None, _same_kind(error, message)
            return wait, error
        base = min(self.max_backoff, self.backoff * (2 ** (attempt - 1)))
        # "Full jitter" on the upper half: spreads clients that failed together.
        return base * random.uniform(0.5, 1.0), error

    def _network_error(self, host: Host, url: str, exc: BaseException, *, midstream: bool) -> GlmChatError:
        """One line for a transport failure: which host, what happened, what to do."""
        import httpx

        where = urlsplit(url).netloc or url
        name = host.name
        local = host.local or is_local_url(host.base_url)
        fix_conn = "is the server running?" if local else "check your network and the host's base URL"
        if isinstance(exc, httpx.ConnectTimeout):
            return TimeoutError_(
                f"{name}: could not connect to {where} within {self.connect_timeout:g} s — {fix_conn}", host=name
            )
        if isinstance(exc, httpx.PoolTimeout):
            return TimeoutError_(f"{name}: no free connection to {where} within {self.connect_timeout:g} s — retry", host=name)
        if isinstance(exc, httpx.ReadTimeout):
            what = "the answer stalled" if midstream else "no answer"
            error = TimeoutError_(
                f"{name}: {what} for {self.read_timeout:g} s — the host may be overloaded; what arrived is kept, retry later",
                host=name,
            )
            error.retryable = False  # the host has the request; sending it again could bill twice
            return error
        if isinstance(exc, httpx.WriteTimeout):
            return TimeoutError_(f"{name}: sending the request to {where} timed out — check your network and retry", host=name)
        if isinstance(exc, (httpx.UnsupportedProtocol, httpx.InvalidURL)):
            return ConfigError(
                f"{name}: the base URL {display_url(host.base_url)!r} is not usable ({type(exc).__name__}) — fix it in config.toml",
                host=name,
            )
        if isinstance(exc, httpx.ConnectError):
            text = str(exc)
            if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text.lower():
                error = NetworkError(
                    f"{name}: TLS certificate of {where} could not be verified — check the base URL, or your "
                    "proxy's CA (SSL_CERT_FILE); verification cannot be turned off",
                    host=name,
                )
                error.retryable = False
                return error
            reason = _short_reason(text)
            return NetworkError(f"{name}: cannot connect to {where}{reason} — {fix_conn}", host=name)
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError)):
            if midstream:
                return ConnectionDropped.describe(name)
            return NetworkError(f"{name}: the connection to {where} closed before the answer began — retrying may help", host=name)
        if isinstance(exc, httpx.LocalProtocolError):
            error = ConfigError(f"{name}: the request could not be sent ({type(exc).__name__}) — check the host settings", host=name)
            return error
        return NetworkError(f"{name}: network error ({type(exc).__name__}) — check your network and retry", host=name)


# -- helpers ---------------------------------------------------------------------------------


class _Progress:
    """What one attempt got so far (an async generator cannot hand back a flag otherwise)."""

    __slots__ = ("got_bytes",)

    def __init__(self) -> None:
        self.got_bytes = False


async def _chained(first: list[bytes], rest: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    for data in first:
        yield data
    async for data in rest:
        yield data


def _is_httpx_error(exc: BaseException) -> bool:
    import httpx

    return isinstance(exc, (httpx.HTTPError, httpx.StreamError))


async def _read_capped(response: httpx.Response) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for data in response.aiter_bytes():
        parts.append(data)
        size += len(data)
        if size >= MAX_ERROR_BODY:
            break
    return b"".join(parts)[:MAX_ERROR_BODY]


def _check_key(host: Host, key: str) -> None:
    """Refuse a key that cannot go in a header, without ever quoting it."""
    if not all(33 <= ord(ch) < 127 for ch in key):
        raise ConfigError(
            f"{host.name}: the API key contains spaces, line breaks or non-ASCII characters — "
            f"paste it again (`glmchat config set-key {host.id}`)",
            host=host.name,
        )


def _same_kind(error: GlmChatError, message: str) -> GlmChatError:
    """A copy of `error` with a new message (same class, status, code, retry_after)."""
    new = type(error)(message, host=error.host, status=error.status, code=error.code, retry_after=error.retry_after)
    if "retryable" in vars(error):
        new.retryable = error.retryable
    return new


def _redacted(error: GlmChatError, key: str | None) -> GlmChatError:
    """The error with the key, and any piece of it of 6 characters or more, blanked out (servers echo keys)."""
    from glmchat.sanitize import redact

    message = redact(error.message, [key] if key else [])
    if message != error.message:
        error.message = message
        error.args = (message,)
    # Nothing chained: a traceback of this error must not drag in an httpx request.
    error.__cause__ = None
    error.__context__ = None
    error.__suppress_context__ = True
    return error


def _short_reason(text: str) -> str:
    """A short cause from an OS error text ("[Errno 111] Connection refused" -> " (connection refused)")."""
    text = " ".join(text.split())
    if "]" in text and text.startswith("[Errno"):
        text = text.split("]", 1)[1].strip()
    if not text or len(text) > 80:
        return ""
    return f" ({text[0].lower() + text[1:]})"
