"""Small helpers for the protocol tests: a fake host's wire output, and feeding it in pieces."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from typing import Any

from glmchat.hosts import BUILTIN_HOSTS, Host
from glmchat.protocol import new_parser
from glmchat.protocol.events import Event, Finish, StreamFailed
from glmchat.session import Turn

_LONE = re.compile("[\ud800-\udfff]")


def host(host_id: str) -> Host:
    return BUILTIN_HOSTS[host_id]


def dumps(obj: Any, *, ascii_only: bool = True) -> str:
    """JSON as a host would send it: all-ASCII escapes, or raw UTF-8 with lone surrogates escaped."""
    if ascii_only:
        return json.dumps(obj, separators=(",", ":"))
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    return _LONE.sub(lambda m: "\\u%04x" % ord(m.group()), text)


def sse(*payloads: Any, eol: str = "\n", ascii_only: bool = True) -> bytes:
    """An SSE body: one `data:` event per payload (str payloads are sent as they are)."""
    out = []
    for payload in payloads:
        data = payload if isinstance(payload, str) else dumps(payload, ascii_only=ascii_only)
        out.append(f"data: {data}{eol}{eol}")
    return "".join(out).encode("utf-8")


def ndjson(*payloads: Any, ascii_only: bool = True) -> bytes:
    return "".join(dumps(p, ascii_only=ascii_only) + "\n" for p in payloads).encode("utf-8")


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    """`data` cut at the given byte offsets (any order, duplicates and out-of-range ignored)."""
    points = sorted({c for c in cuts if 0 < c < len(data)})
    pieces, start = [], 0
    for point in points:
        pieces.append(data[start:point])
        start = point
    pieces.append(data[start:])
    return pieces


def parse(h: Host, pieces: Sequence[bytes] | bytes, *, stream: bool = True) -> list[Event]:
    """Every event a fresh parser gives for these pieces, close() included."""
    if isinstance(pieces, bytes):
        pieces = [pieces]
    parser = new_parser(h, stream=stream)
    events: list[Event] = []
    for piece in pieces:
        events.extend(parser.feed(piece))
    events.extend(parser.close())
    return events


def assert_well_ended(events: list[Event]) -> None:
    """Exactly one terminal event, and it is the last."""
    assert events, "no events at all"
    terminal = [i for i, e in enumerate(events) if isinstance(e, (Finish, StreamFailed))]
    assert terminal == [len(events) - 1], events[-3:]
    last = events[-1]
    if isinstance(last, StreamFailed):
        assert last.error.code != "internal", last.error.message


def fold(turn: Turn, events: Iterable[Event]) -> Turn:
    for event in events:
        turn.apply(event)
    turn.finish()
    return turn


def chat_chunk(**delta: Any) -> dict[str, Any]:
    return {"id": "x", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta}]}


def host_stream(h: Host, reasoning: Sequence[str], content: Sequence[str], *, eol: str = "\n", ascii_only: bool = True) -> bytes:
    """What `h` would stream for a reply made of these reasoning and content pieces, ending cleanly."""
    if h.dialect == "ollama":
        lines = [{"message": {"role": "assistant", "content": "", "thinking": r}, "done": False} for r in reasoning]
        lines += [{"message": {"role": "assistant", "content": c}, "done": False} for c in content]
        lines.append({"message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                      "prompt_eval_count": 12, "eval_count": 34})
        return ndjson(*lines, ascii_only=ascii_only)
    if h.dialect == "runware":
        events: list[Any] = [{"data": [{"taskType": "textInference", "delta": {"reasoningContent": r}}]} for r in reasoning]
        events += [{"data": [{"taskType": "textInference", "delta": {"text": c}}]} for c in content]
        events.append({"data": [{"taskType": "textInference", "finishReason": "stop", "usage": {"promptTokens": 5}, "cost": 0.001}]})
        return sse(*events, "[DONE]", eol=eol, ascii_only=ascii_only)
    field = "reasoning_content" if h.replay_field in ("reasoning_content",) else "reasoning"
    chunks: list[Any] = []
    for r in reasoning:
        delta: dict[str, Any] = {"role": "assistant", field: r}
        if h.id == "openrouter":
            delta["content"] = ""
            delta["reasoning_details"] = [{"type": "reasoning.text", "text": r, "format": "unknown", "index": 0}]
        chunks.append(chat_chunk(**delta))
    chunks += [chat_chunk(role="assistant", content=c) for c in content]
    final = chat_chunk(role="assistant", content="")
    final["choices"][0]["finish_reason"] = "stop"
    final["usage"] = {"prompt_tokens": 10, "completion_tokens": 20}
    chunks.append(final)
    return sse(*chunks, "[DONE]", eol=eol, ascii_only=ascii_only)
