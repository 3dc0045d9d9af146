"""Wire dialects: build the request for a turn, parse the stream into typed events.

Nothing here does I/O or knows about storage or the screen. The dialect
modules (`openai`, `ollama`, `runware`) are imported on first use: `session.py`
imports this package's events, so this file must not import the session.

Public API:
    Request, Parser, build_request, new_parser, encode_body,
    classify_http_error, classify_payload, describe_finish, parse_retry_after.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from glmchat.hosts import Dialect
from glmchat.protocol.common import Parser, Request, encode_body

if TYPE_CHECKING:
    from types import ModuleType

    from glmchat.hosts import Host
    from glmchat.protocol.classify import classify_http_error, classify_payload, describe_finish, parse_retry_after
    from glmchat.session import Session, Turn

# Every `import glmchat.session` runs this file (session imports our events), so
# the error classifier (regexes, email.utils) loads only when first asked for.
_LAZY_FAULTS = frozenset({"classify_http_error", "classify_payload", "describe_finish", "parse_retry_after"})


def __getattr__(name: str) -> object:
    if name in _LAZY_FAULTS:
        from glmchat.protocol import classify

        value = getattr(classify, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

__all__ = [
    "Parser",
    "Request",
    "build_request",
    "supports_tools",
    "classify_http_error",
    "classify_payload",
    "describe_finish",
    "encode_body",
    "new_parser",
    "parse_retry_after",
]


_DIALECTS = {
    Dialect.CHAT: "glmchat.protocol.openai",
    Dialect.OLLAMA: "glmchat.protocol.ollama",
    Dialect.RUNWARE: "glmchat.protocol.runware",
}
"""Dialect -> the module that speaks it (imported on first use)."""


_TOOL_DIALECTS = frozenset({Dialect.CHAT, Dialect.OLLAMA})
"""Dialects whose requests can offer tools (Runware's task API has none)."""


def supports_tools(host: Host) -> bool:
    """Whether requests to `host` can offer tools and carry tool calls and results back."""
    return host.dialect in _TOOL_DIALECTS


def _dialect(host: Host) -> ModuleType:
    import importlib

    return importlib.import_module(_DIALECTS[host.dialect])


def build_request(
    host: Host, session: Session, turn: Turn, *, stream: bool = True, tools: list[dict[str, Any]] | None = None
) -> Request:
    """The request for the current step of `turn` to `host`.

    Messages: the system prompt, each replayable earlier turn of the path step by
    step (`glmchat.protocol.messages`), then `turn.user_text` and the turn's done
    steps. Thinking is switched on or off for this turn only (`turn.thinking`),
    the way the host wants. With `session.preserve_thinking`, earlier reasoning
    goes back exactly as stored, in the host's field, and the host's
    clear_thinking switch (where it has one) says so explicitly.

    Args:
        tools: The chat-completions `tools` array to offer (None: no tools).

    Raises:
        ConfigError: the host cannot carry the request (e.g. tools on Runware).
    """
    return _dialect(host).build_request(host, session, turn, stream=stream, tools=tools)


def new_parser(host: Host, *, stream: bool = True) -> Parser:
    """A fresh parser for one response from `host` (`stream=False` for a whole JSON body).

    """
    return _dialect(host).new_parser(host, stream=stream)
