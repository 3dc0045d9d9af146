"""Typed failures, each with a one-line message a person can act on.

Every error names the host it came from and, where there is one, what to do.
The classes decide the retry policy: ``retryable`` errors are retried by the
client with backoff (``retry_after`` seconds when the server said so).
"""

from __future__ import annotations


class GlmChatError(Exception):
    """Base of every error glmchat reports to a person."""

    retryable: bool = False
    """Whether sending the same request again later may succeed."""

    def __init__(
        self,
        message: str,
        *,
        host: str = "",
        status: int | None = None,
        code: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        """One line: what happened and what to do."""
        self.host = host
        """Display name of the host, e.g. "Z.ai"."""
        self.status = status
        """HTTP status, if the error came from an HTTP response."""
        self.code = code
        """Business code from the body (Z.ai "1302", Cerebras "request_quota_exceeded")."""
        self.retry_after = retry_after
        """Seconds the server asked us to wait, if it said."""

    def __str__(self) -> str:
        return self.message

    @property
    def kind(self) -> str:
        """Short stable name stored with a turn, e.g. "rate_limit"."""
        return _KIND.get(type(self), "error")


class ConfigError(GlmChatError):
    """A broken config file, an unknown host, a missing key."""


class AuthError(GlmChatError):
    """401/403: the key is wrong, expired or not allowed for this endpoint."""


class RateLimitError(GlmChatError):
    """429 or a transient Z.ai code (1302, 1303, 1305): wait and retry."""

    retryable = True


class QuotaError(GlmChatError):
    """Out of balance or plan quota (1113, 1304, 1308, 1309, 1310, 402): retrying won't help."""


class ContentFilterError(GlmChatError):
    """The input or output was refused by the host's safety filter (1301, `sensitive`)."""


class ContextTooLongError(GlmChatError):
    """The conversation no longer fits the model's context window (1261)."""


class BadRequestError(GlmChatError):
    """400/404/422: the request itself is wrong (model name, parameters)."""


class ServerError(GlmChatError):
    """5xx: the host failed; usually transient."""

    retryable = True


class NetworkError(GlmChatError):
    """Could not connect, or the connection dropped."""

    retryable = True


class TimeoutError_(NetworkError):
    """Connect or read timeout."""


class ConnectionDropped(NetworkError):
    """The connection broke after the answer began; what arrived is kept.

    The message says what the turn had received when it broke. The client only
    knows bytes arrived, so it says "mid-answer"; the turn runner, which knows
    whether only reasoning came, says it again with `describe`.
    """

    @classmethod
    def describe(cls, host: str, *, while_thinking: bool = False, retry: str = "send again to retry") -> ConnectionDropped:
        """The error for a drop, in the one wording glmchat uses for it.

        Args:
            host: the host's display name.
            while_thinking: only reasoning had arrived (no answer text yet).
            retry: how to try again in the front end showing it ("Ctrl+R retries").
        """
        if while_thinking:
            text = f"{host}: the connection dropped while thinking — the reasoning so far is kept; {retry}"
        else:
            text = f"{host}: the connection dropped mid-answer — what arrived is kept; {retry}"
        return cls(text, host=host)


class StreamError(GlmChatError):
    """The stream was malformed, ended early, or carried an error object."""


class StorageError(GlmChatError):
    """The database could not be read or written (disk full, read-only, corrupt)."""


class DamagedStorage(StorageError):
    """The database file is damaged (corrupt pages, rows that do not decode): a full check should set it aside."""


class SessionNotFound(StorageError, KeyError):
    """No session matches the given number, id or id prefix (or the prefix is ambiguous)."""


class TurnNotFound(StorageError, KeyError):
    """The turn is not in the database (never saved, or its session was deleted)."""


_KIND: dict[type, str] = {
    ConfigError: "config",
    AuthError: "auth",
    RateLimitError: "rate_limit",
    QuotaError: "quota",
    ContentFilterError: "content_filter",
    ContextTooLongError: "context_length",
    BadRequestError: "bad_request",
    ServerError: "server",
    NetworkError: "network",
    TimeoutError_: "timeout",
    ConnectionDropped: "network",
    StreamError: "stream",
    StorageError: "storage",
    DamagedStorage: "storage",
    SessionNotFound: "storage",
    TurnNotFound: "storage",
}
