"""A loopback GLM-4.7 server that speaks every host's dialect, for tests and benchmarks.

A real HTTP/1.1 server on 127.0.0.1 (threaded, chunked transfer encoding). The
first path segment picks the host whose dialect is spoken:

    /{zai,zai-coding,bigmodel,cerebras,openrouter,vllm,sglang,llamacpp}/chat/completions
    /ollama/api/chat       (NDJSON)
    /runware/v1            (task API, SSE)

so a host profile only needs ``base_url = f"{server.url}/{host_id}"``.

What it does:

- records every request (path, headers, raw body, parsed JSON, arrival time)
  and, for each reply, when every chunk left the server;
- answers from a queue of scripted :class:`Reply` objects (faults included),
  or with a default reply derived from the last user message;
- simulates the prompt cache the way the GLM-4.7 chat template renders a
  conversation (protocol.md §5): each request's messages become a prompt
  string, and ``cached_tokens`` is the common prefix with any earlier
  prompt + generation. Nothing is stripped, so a replay that changes one byte
  of an earlier reasoning loses the cache from there on. Tool calls render as
  ``<tool_call>`` blocks (arguments from the parsed JSON, as the template does:
  whitespace between JSON tokens does not reach the model), tool results as
  ``<|observation|><tool_response>…``, and reasoning after the last user message
  (the current tool loop) is always kept;
- plays multi-step tool turns: a scripted Reply with `tool_calls` sends
  reasoning, content, then the calls the way its host streams them (Z.ai and
  BigModel whole, or in fragments with ``tool_stream: true``; vLLM, SGLang,
  OpenRouter and llama.cpp in fragments; Cerebras whole; Ollama whole with
  object arguments and no id; Runware refuses tools) and ends with
  ``finish_reason: "tool_calls"``; the next request gets the next Reply;
- checks replays: it remembers every step it produced and compares each
  assistant message of a later request with it, byte for byte, in the host's
  replay field (`check_replay`), followed by one tool result per call. What
  differs is listed in ``request.replay_problems`` (``server.replay_problems``
  for all of them).

In tests (the `glm_server` fixture gives a started one)::

    server.enqueue(Reply.zai_error(1302), Reply(reasoning="R", content="C", pace=1000, chunk_tokens=3))
    host = server.host("zai")            # BUILTIN_HOSTS["zai"] with base_url = server.url + "/zai"
    ...                                  # send with glmchat
    server.last.json, server.last.cached_tokens, server.last.chunk_times

Standalone (benchmarks, tmux tests)::

    python tests/glm_server.py --port 0 --pace 1000 --chunk 3 \
        --reasoning-tokens 4000 --content-tokens 4000

prints ``READY http://127.0.0.1:PORT`` and serves until killed. Control
endpoints for another process: ``GET /_glm/requests`` (the recorded requests
as JSON, with chunk send times and replay problems), ``GET /_glm/steps`` (the
produced steps), ``GET /_glm/replay_problems``, ``POST /_glm/enqueue`` (a Reply
as a JSON object, or a list of them), ``POST /_glm/reset``. All recorded times are
``time.monotonic()`` seconds, one clock for every process on the machine.

This file imports nothing from glmchat at module level, so it runs standalone.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import re
import signal
import socket
import ssl
import struct
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

CHAT_HOSTS = ("zai", "zai-coding", "bigmodel", "cerebras", "openrouter", "vllm", "sglang", "llamacpp")
HOST_IDS = CHAT_HOSTS + ("ollama", "runware")
ZAI_FAMILY = ("zai", "zai-coding", "bigmodel")
TEMPLATE_HOSTS = ("vllm", "sglang", "llamacpp")

MODELS = {
    "zai": "glm-4.7",
    "zai-coding": "glm-4.7",
    "bigmodel": "glm-4.7",
    "cerebras": "zai-glm-4.7",
    "openrouter": "z-ai/glm-4.7",
    "vllm": "zai-org/GLM-4.7-FP8",
    "sglang": "zai-org/GLM-4.7-FP8",
    "llamacpp": "GLM-4.7-Flash",
    "ollama": "glm-4.7",
    "runware": "zai-glm-4-7",
}

CHARS_PER_TOKEN = 4
"""The cache simulation counts tokens as this many characters."""

MODEL_THINKING: dict[str, tuple[bool, tuple[str, ...]]] = {
    "glm-5.2": (True, ("high", "xhigh")),
    "glm-5.3": (False, ("low", "high", "max")),
}
"""Z.ai-family models with thinking levels: (can thinking be off, the levels), as the model table assumes.

A request for such a model that turns thinking off where it cannot be, or names
a level it does not have, is refused with 400 as a strict host would; so is a
`reasoning_effort` sent to a model without levels."""

UNTHROTTLED_FLUSH_BYTES = 16 * 1024
"""Unthrottled replies are written in batches of about this size (one syscall each)."""

# -- tokens and the benchmark corpus -------------------------------------------------------

# A "token": a short run of non-space characters (with its leading whitespace), or
# one wide character (CJK, emoji), or trailing whitespace. The pieces concatenate
# back to the exact input.
_TOKEN_RE = re.compile(r"\s*(?:[\u2e80-\U0010ffff]|[^\s\u2e80-\U0010ffff]{1,4})|\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into token-sized pieces whose concatenation is exactly `text`."""
    return _TOKEN_RE.findall(text)


_WORDS = (
    "stream render token latency buffer frame widget terminal reasoning answer cache prompt "
    "context session turn model host server client parser event chunk delta markdown table "
    "list heading code fence layout scroll viewport batch refresh measure profile"
).split()
_CJK = (
    "这是一个用于测试宽字符渲染的句子。",
    "模型先思考，然后给出答案。",
    "日本語のテキストも少し含みます。",
    "한국어 문장도 섞여 있습니다.",
)
_EMOJI = ("🚀", "✨", "🧪", "👍🏽", "📦", "🔥", "✅", "🧠", "⚡", "🌍")


def _corpus_block(rng: random.Random, i: int) -> str:
    def sentence(n: int) -> str:
        words = [rng.choice(_WORDS) for _ in range(n)]
        words[0] = words[0].capitalize()
        return " ".join(words) + "."

    kind = i % 8
    if kind == 0:
        return f"## Section {i // 8 + 1}: {rng.choice(_WORDS)} {rng.choice(_WORDS)}\n\n"
    if kind == 1:
        return (
            f"{sentence(12)} It uses **{rng.choice(_WORDS)}**, `{rng.choice(_WORDS)}_{i}()` and "
            f"[a link](https://example.com/{i}). {sentence(9)}\n\n"
        )
    if kind == 2:
        items = "".join(f"- {sentence(rng.randint(3, 7))}\n" for _ in range(3))
        return items + f"  - nested {rng.choice(_WORDS)} {rng.choice(_EMOJI)}\n\n"
    if kind == 3:
        rows = "".join(
            f"| {rng.choice(_WORDS)} | {rng.randint(1, 9999)} | {rng.choice(_CJK)[:6]} |\n" for _ in range(3)
        )
        return "| name | value | note |\n|---|---:|---|\n" + rows + "\n"
    if kind == 4:
        return (
            f"```python\ndef {rng.choice(_WORDS)}_{i}(items):\n"
            f"    total = sum(x * {rng.randint(2, 9)} for x in items)\n"
            f"    return total  # {rng.choice(_WORDS)}\n```\n\n"
        )
    if kind == 5:
        return f"{rng.choice(_CJK)}{rng.choice(_CJK)} {rng.choice(_EMOJI)}{rng.choice(_EMOJI)}\n\n"
    if kind == 6:
        return "".join(f"{n}. {sentence(rng.randint(4, 8))}\n" for n in range(1, 4)) + "\n"
    return f"> {sentence(10)} {rng.choice(_EMOJI)}\n\n"


def corpus_tokens(n: int, seed: int = 0) -> list[str]:
    """Exactly `n` tokens of mixed Markdown (headings, lists, tables, code, CJK, emoji), deterministic."""
    rng = random.Random(seed)
    tokens: list[str] = []
    i = 0
    while len(tokens) < n:
        tokens.extend(split_tokens(_corpus_block(rng, i)))
        i += 1
    del tokens[n:]
    return tokens


def corpus(n: int, seed: int = 0) -> str:
    """`n` tokens of mixed Markdown as one string."""
    return "".join(corpus_tokens(n, seed))


# -- scripted replies -------------------------------------------------------------------------

ZAI_ERRORS: dict[int, tuple[int, str]] = {
    # code: (HTTP status, message) as protocol.md §1.5 quotes them (or closely, where it paraphrases).
    1002: (401, "Authorization Token is invalid, please check the token."),
    1113: (429, "Your account is in arrears, please recharge and try again"),
    1261: (400, "Prompt exceeds max length"),
    1301: (400, "System detected potentially unsafe or sensitive content in input or generation."),
    1302: (429, "High concurrency usage of this API, please reduce concurrency or contact customer service to increase limits"),
    1303: (429, "High frequency usage of this API, please reduce frequency or contact customer service to increase limits"),
    1304: (429, "The daily call limit for this API has been reached."),
    1305: (429, "The service may be temporarily overloaded, please try again later"),
    1308: (429, "Usage limit reached for 5 hour. Your limit will reset at 2026-01-08 17:06:43"),
    1309: (429, "Your GLM Coding Plan package has expired, and the service is unavailable."),
    1310: (429, "Weekly/Monthly Limit Exhausted. Your limit will reset at 2026-01-12 00:00:00"),
}


@dataclass
class Reply:
    """One scripted response. Every field has a default, so `Reply()` is the default reply.

    Text fields take a string (split into tokens) or a sequence of ready-made tokens.
    Chunk counters (`drop_after`, `malformed_after`, `stall_after`) count the data
    chunks that carry text or tool calls.
    """

    reasoning: str | Sequence[str] | None = None
    """None: derived from the request (none when the request turned thinking off)."""
    content: str | Sequence[str] | None = None
    """None: derived from the request's last user message."""
    tool_calls: list[dict[str, Any]] | None = None
    """Each {"name", "arguments", "id"}: arguments a JSON string (sent byte for byte) or an object
    (dumped); id optional (one is made in the host's style). Sent after the content, each the way
    its host streams calls (see `Dialect.tool_call_frames`), and the reply ends with "tool_calls"."""
    chunk_tokens: int | None = None
    """Tokens per chunk (None: the server's default)."""
    pace: float | None = None
    """Tokens per second (None: the server's default, itself unthrottled unless set)."""
    unthrottled: bool = False
    """Ignore any pace: send as fast as possible."""
    initial_delay: float = 0.0
    """Seconds to wait before answering at all."""
    finish_reason: str | None = None
    """None: "stop" (or "tool_calls" when there are tool calls)."""
    status: int = 200
    """HTTP status; anything but 200 answers with `body` instead of a stream."""
    body: Any = None
    """Error body: dict/list (sent as JSON), str or bytes; None: the dialect's usual error shape."""
    headers: dict[str, str] = field(default_factory=dict)
    """Extra response headers (e.g. Retry-After)."""
    stream_error: dict[str, Any] | None = None
    """An error object sent inside the stream after the text (OpenRouter, Cerebras)."""
    drop_after: int | None = None
    """Close the connection abruptly after this many chunks."""
    malformed_after: int | None = None
    """Send one chunk of broken JSON after this many chunks (then carry on)."""
    stall_after: int | None = None
    """After this many chunks send nothing more, holding the connection open until the server stops."""
    hangup: bool = False
    """Close the connection without answering at all (a reset before the first byte)."""
    done: bool = True
    """Send the end marker (`data: [DONE]`, Ollama's `done: true`)."""
    finish: bool = True
    """Send the finishing chunk (finish reason and usage); False with done=False: the text just stops."""
    usage: dict[str, Any] | bool | None = None
    """None: computed; False: no usage; a dict: sent as is."""
    fragment_bytes: int | None = None
    """Write each chunk in pieces of this many bytes (splits UTF-8 sequences and JSON across reads)."""
    tool_fragments: bool | None = None
    """Stream tool-call arguments in pieces (True) or each call whole (False); None: as the host does."""
    tool_ids_every_fragment: bool = False
    """Repeat id, type and name on every argument fragment (whether Z.ai's `tool_stream` does is UNCONFIRMED)."""
    plain_body: bool = False
    """Answer even a streaming request with one body and status 200: `body` when given (dict/list as
    JSON, str or bytes as is), else the dialect's non-streaming completion. See `content_type`."""
    content_type: str | None = None
    """Content-Type of the response (None: the dialect's own, or application/json for a plain body)."""
    trickle: float | None = None
    """Seconds between bytes: the reply is written one byte at a time (a stalled host that keeps reads alive)."""
    keepalive_only: float | None = None
    """Send only SSE comments (`: keep-alive`) at this interval, never data, until the server stops."""
    web_search: list[dict[str, Any]] | None = None
    """Z.ai family: sources of its built-in web search, sent as a top-level `web_search` array — in the
    body of a non-streamed reply (documented) and on the finishing chunk of a stream (UNCONFIRMED:
    the SDK's streamed example shows none); only when the request offered the `web_search` tool."""

    # -- factories ----------------------------------------------------------------------------

    @classmethod
    def error(cls, status: int, body: Any = None, headers: dict[str, str] | None = None) -> Reply:
        """An HTTP error response."""
        return cls(status=status, body=body, headers=dict(headers or {}))

    @classmethod
    def zai_error(cls, code: int, *, status: int | None = None, headers: dict[str, str] | None = None) -> Reply:
        """A Z.ai business error (`{"error": {"code": "1302", "message": ...}}`) with its usual status."""
        default_status, message = ZAI_ERRORS[code]
        body = {"error": {"code": str(code), "message": message}}
        return cls.error(status or default_status, body, headers)

    @classmethod
    def cerebras_error(
        cls,
        status: int = 429,
        message: str = "Requests per minute limit exceeded - too many requests sent.",
        type: str = "too_many_requests_error",
        code: str = "request_quota_exceeded",
        param: str = "quota",
        headers: dict[str, str] | None = None,
    ) -> Reply:
        """Cerebras' top-level error object (not nested under "error")."""
        return cls.error(status, {"message": message, "type": type, "param": param, "code": code}, headers)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        for key in ("reasoning", "content"):
            if out[key] is not None and not isinstance(out[key], str):
                out[key] = list(out[key])
        if isinstance(out["body"], bytes):
            out["body"] = out["body"].decode("utf-8", "replace")
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Reply:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown Reply field(s): {', '.join(sorted(unknown))}")
        return cls(**data)


# -- recorded requests --------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the server saw it, and what it did with it."""

    method: str
    path: str
    host_id: str | None
    headers: dict[str, str]
    body: bytes
    json: Any
    arrived_at: float
    """time.monotonic() when the request was read."""
    reply: Reply | None = None
    status: int | None = None
    thinking: bool | None = None
    """Whether the request asked for thinking, read the way its dialect says it."""
    preserve: bool | None = None
    """Whether earlier reasoning counts in the prompt (clear_thinking=false or equivalent)."""
    prompt: str | None = None
    """The request rendered like the GLM-4.7 template (no stripping)."""
    generation: str | None = None
    """What the reply generated, as the template would see it (`R</think>C`)."""
    prompt_tokens: int = 0
    cached_tokens: int = 0
    chunk_times: list[float] = field(default_factory=list)
    """time.monotonic() when each chunk had been handed to the socket."""
    paced_from: float | None = None
    """time.monotonic() the pace counts from: chunk i is sent no earlier than i chunk intervals after it."""
    chunk_tokens: list[int] = field(default_factory=list)
    """How many tokens each chunk carried (same order as chunk_times)."""
    finished_at: float | None = None
    """When the reply was fully written (None: dropped, stalled or still running)."""
    disconnected: bool = False
    """The client went away while the reply was being written."""
    replay_problems: list[str] = field(default_factory=list)
    """Where this request replayed an earlier step of this server differently from how it was produced
    (one line each; see `check_replay`). Empty for an exact replay."""
    replayed_steps: int = 0
    """How many assistant messages of this request were steps this server produced (and were checked)."""
    level: str | None = None
    """The `reasoning_effort` the request named (Z.ai family), if any."""

    def header(self, name: str) -> str | None:
        """A request header, case-insensitive."""
        lname = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lname:
                return value
        return None

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "path": self.path,
            "host_id": self.host_id,
            "headers": self.headers,
            "body": self.body.decode("utf-8", "replace"),
            "arrived_at": self.arrived_at,
            "status": self.status,
            "thinking": self.thinking,
            "preserve": self.preserve,
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "chunk_times": self.chunk_times,
            "chunk_tokens": self.chunk_tokens,
            "finished_at": self.finished_at,
            "disconnected": self.disconnected,
            "replay_problems": self.replay_problems,
            "replayed_steps": self.replayed_steps,
            "level": self.level,
        }


# -- the GLM-4.7 template, as far as the cache cares -----------------------------------------------


def _offers_web_search(body: Any) -> bool:
    tools = body.get("tools") if isinstance(body, dict) else None
    return isinstance(tools, list) and any(isinstance(t, dict) and t.get("type") == "web_search" for t in tools)


def _get(obj: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(obj, dict):
            return None
        obj = obj.get(key)
    return obj


def _text_of(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return str(content)


def request_thinking(host_id: str, body: Any) -> bool:
    """Whether this request asks for thinking, in its dialect's terms."""
    if host_id == "runware":
        task = _runware_task(body)
        level = _get(task, "settings", "thinkingLevel")
        return level not in (None, "none", False)
    if not isinstance(body, dict):
        return True
    if host_id in ZAI_FAMILY:
        return _get(body, "thinking", "type") != "disabled"
    if host_id == "cerebras":
        return body.get("reasoning_effort") != "none" and not body.get("disable_reasoning")
    if host_id == "openrouter":
        reasoning = body.get("reasoning")
        if isinstance(reasoning, dict) and (reasoning.get("effort") == "none" or reasoning.get("enabled") is False):
            return False
        return body.get("include_reasoning") is not False
    if host_id in TEMPLATE_HOSTS:
        if _get(body, "chat_template_kwargs", "enable_thinking") is False:
            return False
        return not (host_id == "sglang" and body.get("reasoning_effort") == "none")
    if host_id == "ollama":
        return body.get("think") is not False
    return True


def thinking_refusal(host_id: str, body: Any) -> str | None:
    """Why a Z.ai-family host would refuse the request's thinking settings for its model (None: it would not)."""
    if host_id not in ZAI_FAMILY or not isinstance(body, dict):
        return None
    model = str(body.get("model", "")).lower()
    level = body.get("reasoning_effort")
    can_disable, levels = MODEL_THINKING.get(model, (True, ()))
    if not can_disable and _get(body, "thinking", "type") == "disabled":
        return f"thinking cannot be disabled for model {model}"
    if level is not None and level not in levels:
        return f"reasoning_effort {level!r} is not supported by model {model}"
    return None


def request_preserve(host_id: str, body: Any) -> bool:
    """Whether earlier reasoning is kept in the prompt (clear_thinking=false, per dialect)."""
    if not isinstance(body, dict):
        return False
    if host_id == "zai-coding":
        return _get(body, "thinking", "clear_thinking") is not True  # preserved by default there
    if host_id in ZAI_FAMILY:
        return _get(body, "thinking", "clear_thinking") is False
    if host_id == "cerebras":
        return body.get("clear_thinking") is False
    if host_id == "openrouter":
        return True  # whatever reasoning_details come back are passed on
    if host_id in TEMPLATE_HOSTS:
        return _get(body, "chat_template_kwargs", "clear_thinking") is False
    if host_id == "ollama":
        return True  # Ollama's GLM-4.7 renderer always keeps prior thinking
    return False


def _runware_task(body: Any) -> dict[str, Any]:
    if isinstance(body, list):
        for task in body:
            if isinstance(task, dict) and task.get("taskType") == "textInference":
                return task
    return body if isinstance(body, dict) else {}


def _assistant_reasoning(host_id: str, message: dict[str, Any]) -> tuple[str, str]:
    """(reasoning, content) of a replayed assistant message, read from the host's field."""
    content = _text_of(message.get("content"))
    reasoning: Any = None
    if host_id in ZAI_FAMILY or host_id in ("sglang", "llamacpp"):
        reasoning = message.get("reasoning_content")
    elif host_id == "vllm":
        reasoning = message.get("reasoning")  # vLLM drops reasoning_content on input
    elif host_id == "ollama":
        reasoning = message.get("thinking")
    elif host_id == "openrouter":
        details = message.get("reasoning_details")
        if isinstance(details, list):
            reasoning = "".join(
                d.get("text") or "" for d in details if isinstance(d, dict) and d.get("type") == "reasoning.text"
            )
    if isinstance(reasoning, str):
        return reasoning, content
    if "</think>" in content:
        # The template's own split (without its strip): before </think> (after <think>) and after it.
        before, _, _ = content.partition("</think>")
        return before.split("<think>")[-1], content.split("</think>")[-1]
    return "", content


def _render_tool_calls(calls: Iterable[Any]) -> str:
    out = []
    for call in calls:
        fn = call.get("function", call) if isinstance(call, dict) else {}
        name = fn.get("name", "") if isinstance(fn, dict) else ""
        args: Any = fn.get("arguments", {}) if isinstance(fn, dict) else {}
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except ValueError:
                out.append(f"<tool_call>{name}{args}</tool_call>")
                continue
        parts = [f"<tool_call>{name}"]
        if isinstance(args, dict):
            for key, value in args.items():
                shown = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
                parts.append(f"<arg_key>{key}</arg_key><arg_value>{shown}</arg_value>")
        parts.append("</tool_call>")
        out.append("".join(parts))
    return "".join(out)


def render_prompt(host_id: str, body: Any) -> str:
    """The request as the GLM-4.7 template would render it, byte for byte (no stripping).

    An earlier assistant turn shows `<think>R</think>C` only when the request keeps
    reasoning (see request_preserve) or the turn is inside the current tool loop,
    otherwise `</think>C`; the prompt ends with `<|assistant|><think>`, or
    `<|assistant|></think>` when thinking is off.
    """
    thinking = request_thinking(host_id, body)
    preserve = request_preserve(host_id, body)
    if host_id == "runware":
        task = _runware_task(body)
        messages = list(task.get("messages") or [])
        system = _get(task, "settings", "systemPrompt")
        if system:
            messages.insert(0, {"role": "system", "content": system})
    else:
        messages = list(body.get("messages") or []) if isinstance(body, dict) else []
    last_user = max((i for i, m in enumerate(messages) if isinstance(m, dict) and m.get("role") == "user"), default=-1)
    out = ["[gMASK]<sop>"]
    in_observation = False
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role != "tool":
            in_observation = False
        if role == "system":
            out.append("<|system|>" + _text_of(message.get("content")))
        elif role == "user":
            out.append("<|user|>" + _text_of(message.get("content")))
        elif role == "assistant":
            reasoning, content = _assistant_reasoning(host_id, message)
            if reasoning and (preserve or i > last_user):
                out.append(f"<|assistant|><think>{reasoning}</think>{content}")
            else:
                out.append(f"<|assistant|></think>{content}")
            out.append(_render_tool_calls(message.get("tool_calls") or []))
        elif role == "tool":
            if not in_observation:
                out.append("<|observation|>")
                in_observation = True
            out.append(f"<tool_response>{_text_of(message.get('content'))}</tool_response>")
    out.append("<|assistant|><think>" if thinking else "<|assistant|></think>")
    return "".join(out)


def common_prefix_len(a: str, b: str) -> int:
    """Length of the common prefix of two strings (block compares, so long strings stay cheap)."""
    n = min(len(a), len(b))
    if a[:n] == b[:n]:
        return n
    lo, hi = 0, n  # a[:lo] == b[:lo] and a[:hi] != b[:hi]
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if a[lo:mid] == b[lo:mid]:
            lo = mid
        else:
            hi = mid
    return lo


class PromptCache:
    """Remembers prompt + generation of each reply, per host; reports how much of a new prompt was seen."""

    def __init__(self, size: int = 256) -> None:
        self._entries: deque[tuple[str, str]] = deque(maxlen=size)
        self._lock = threading.Lock()

    def lookup(self, key: str, prompt: str) -> int:
        """Characters of `prompt` that match the start of something `key` (a host id) saw before."""
        with self._lock:
            entries = [text for k, text in self._entries if k == key]
        best = 0
        for entry in entries:
            best = max(best, common_prefix_len(prompt, entry))
            if best == len(prompt):
                break
        return best

    def add(self, key: str, text: str) -> None:
        with self._lock:
            self._entries.append((key, text))

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


# -- replay checking: was each earlier step sent back exactly as it was produced? -----------------

REASONING_FIELDS = ("reasoning_content", "reasoning", "thinking", "reasoning_details")

REPLAY_FIELD = {
    **{h: "reasoning_content" for h in ZAI_FAMILY},
    "sglang": "reasoning_content",
    "llamacpp": "reasoning_content",
    "vllm": "reasoning",
    "openrouter": "reasoning_details",
    "ollama": "thinking",
    "cerebras": "<think> in content",
}
"""Where each host reads earlier reasoning from (protocol.md §0, §8); Runware has no such field."""


@dataclass
class ProducedStep:
    """One reply this server sent: what a later request must send back, byte for byte."""

    serial: int
    host_id: str
    context: tuple[tuple[str, ...], ...]
    """The skeleton of the messages it answered (see `_skeleton`)."""
    reasoning: str
    content: str
    tool_calls: list[dict[str, str]]
    """{"id", "name", "arguments"} as sent (arguments: the exact JSON string)."""
    reasoning_details: list[dict[str, Any]]
    """OpenRouter: the `reasoning_details` items as streamed."""
    record: RecordedRequest

    @property
    def finished(self) -> bool:
        """The whole reply reached the client (else a replay may hold a prefix of it)."""
        return self.record.finished_at is not None and not self.record.disconnected

    def to_dict(self) -> dict[str, Any]:
        return {
            "serial": self.serial,
            "host_id": self.host_id,
            "reasoning": self.reasoning,
            "content": self.content,
            "tool_calls": self.tool_calls,
            "finished": self.finished,
        }


def _skeleton(messages: Sequence[Any]) -> list[tuple[str, ...]]:
    """Each message reduced to what places a step in its conversation: the role, and the text of
    system and user messages. Assistant and tool messages count by role only, so one wrong earlier
    step does not hide the later ones from the check."""
    out: list[tuple[str, ...]] = []
    for message in messages:
        if not isinstance(message, dict):
            out.append(("?",))
            continue
        role = str(message.get("role"))
        if role in ("system", "user"):
            out.append((role, _text_of(message.get("content"))))
        else:
            out.append((role,))
    return out


def _excerpt(text: str, at: int) -> str:
    return repr(text[max(0, at - 10) : at + 20])


def _differs(label: str, sent: str, got: str) -> str:
    at = common_prefix_len(sent, got)
    return (
        f"{label} differs from what was sent at character {at} "
        f"(sent {len(sent)} characters, got {len(got)}): sent …{_excerpt(sent, at)}, got …{_excerpt(got, at)}"
    )


def _merged_details(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Streamed `reasoning.text` items merged per index (how some clients keep them)."""
    merged: dict[Any, dict[str, Any]] = {}
    for item in items:
        key = item.get("index")
        if key in merged and item.get("type") == merged[key].get("type") == "reasoning.text":
            merged[key] = {**merged[key], "text": (merged[key].get("text") or "") + (item.get("text") or "")}
        else:
            merged[key] = dict(item)
    return list(merged.values())


def _replayed_reasoning(host_id: str, message: dict[str, Any], step: ProducedStep) -> tuple[str | None, str, list[str]]:
    """(reasoning as replayed or None when absent, content without any think block, problems)."""
    problems: list[str] = []
    content_value = message.get("content")
    content = content_value if isinstance(content_value, str) else ""
    if content_value is not None and not isinstance(content_value, str):
        problems.append(f"content is a {type(content_value).__name__}, not the string that was sent")
    field_name = REPLAY_FIELD.get(host_id)
    for other in REASONING_FIELDS:
        if other != field_name and message.get(other) not in (None, "", []):
            problems.append(f"reasoning sent as {other}, which {host_id} does not read (it reads {field_name})")
    reasoning: str | None = None
    if host_id == "cerebras":
        if content.startswith("<think>") and "</think>" in content:
            expected_head = "<think>" + step.reasoning + "</think>"
            if content.startswith(expected_head):
                reasoning, content = step.reasoning, content[len(expected_head) :]
            else:
                reasoning, _, content = content[len("<think>") :].partition("</think>")
    elif field_name == "reasoning_details":
        details = message.get("reasoning_details")
        if isinstance(details, list) and details:
            if details == step.reasoning_details or details == _merged_details(step.reasoning_details):
                reasoning = step.reasoning
            else:
                reasoning = "".join(
                    d.get("text") or "" for d in details if isinstance(d, dict) and d.get("type") == "reasoning.text"
                )
                if reasoning == step.reasoning:
                    problems.append("reasoning_details carry the right text but not the items as streamed")
    elif field_name is not None:
        value = message.get(field_name)
        if isinstance(value, str):
            reasoning = value
        elif value is not None:
            problems.append(f"{field_name} is a {type(value).__name__}, not a string")
    return reasoning, content, problems


def _check_step(
    host_id: str, message: dict[str, Any], step: ProducedStep, *, must_keep_reasoning: bool
) -> list[str]:
    """Problems with one replayed assistant message against the step it replays ([] when exact)."""
    reasoning, content, problems = _replayed_reasoning(host_id, message, step)
    exact = step.finished

    def same(sent: str, got: str) -> bool:
        return got == sent if exact else sent.startswith(got)

    if reasoning in (None, ""):
        if step.reasoning and must_keep_reasoning:
            problems.append(f"reasoning missing (the step had {len(step.reasoning)} characters of it; "
                            f"expected in {REPLAY_FIELD.get(host_id)})")
    elif not step.reasoning:
        problems.append("reasoning sent, but the step produced none")
    elif not same(step.reasoning, reasoning):
        problems.append(_differs("reasoning", step.reasoning, reasoning))
    if not same(step.content, content):
        problems.append(_differs("content", step.content, content))

    calls = message.get("tool_calls")
    calls = calls if isinstance(calls, list) else [] if calls is None else None
    if calls is None:
        problems.append("tool_calls is not a list")
        return problems
    if exact and len(calls) != len(step.tool_calls):
        problems.append(f"{len(calls)} tool call(s) replayed, {len(step.tool_calls)} produced")
    for j, (call, sent) in enumerate(zip(calls, step.tool_calls)):
        where = f"tool_calls[{j}]"
        if not isinstance(call, dict):
            problems.append(f"{where} is not an object")
            continue
        function = call.get("function") if isinstance(call.get("function"), dict) else {}
        if function.get("name") != sent["name"]:
            problems.append(f"{where} names {function.get('name')!r}, produced {sent['name']!r}")
        arguments = function.get("arguments")
        if host_id == "ollama":
            try:
                wanted: Any = json.loads(sent["arguments"])
            except ValueError:
                wanted = sent["arguments"]
            if arguments != wanted:
                problems.append(f"{where} arguments {arguments!r} are not the object produced ({wanted!r})")
            continue
        if call.get("id") != sent["id"]:
            problems.append(f"{where} id {call.get('id')!r} is not the id produced ({sent['id']!r})")
        if call.get("type", "function") != "function":
            problems.append(f"{where} type {call.get('type')!r} is not 'function'")
        if not isinstance(arguments, str):
            problems.append(f"{where} arguments are a {type(arguments).__name__}, not the JSON string produced")
        elif arguments != sent["arguments"]:
            problems.append(_differs(f"{where} arguments", sent["arguments"], arguments))
    return problems


def _check_results(host_id: str, messages: Sequence[Any], after: int, step: ProducedStep) -> tuple[list[str], int]:
    """Problems with the tool results that must follow a step's calls, and how many messages they take."""
    problems: list[str] = []
    n = 0
    while after + 1 + n < len(messages):
        message = messages[after + 1 + n]
        if not (isinstance(message, dict) and message.get("role") == "tool"):
            break
        n += 1
    wanted = len(step.tool_calls) if step.finished else n
    if n != wanted:
        problems.append(f"{n} tool result(s) follow the step, {wanted} expected (one per call, in call order)")
    for j, (message, call) in enumerate(zip(messages[after + 1 : after + 1 + n], step.tool_calls)):
        where = f"tool result {j + 1}"
        if host_id == "ollama":
            if message.get("tool_name") != call["name"]:
                problems.append(f"{where} has tool_name {message.get('tool_name')!r}, expected {call['name']!r}")
        elif message.get("tool_call_id") != call["id"]:
            problems.append(f"{where} has tool_call_id {message.get('tool_call_id')!r}, expected {call['id']!r}")
        if not isinstance(message.get("content"), str):
            problems.append(f"{where} content is not a string")
    return problems, n


def check_replay(host_id: str, body: Any, steps: Sequence[ProducedStep], preserve: bool) -> tuple[list[str], int]:
    """Compare every assistant message of a request with the step this server produced at that point.

    A step is found by its place in the conversation (the skeleton of the messages before it); when
    several steps fit (a retry, a regenerated answer), the replay may match any of them. Reasoning may
    be left out only where the host would drop it anyway: before the last user message, when the
    request does not preserve thinking (OpenRouter and Ollama have no switch: there the client keeps
    thinking by sending it, so only the current tool loop must have it). Returns (problems, assistant
    messages checked).
    """
    if host_id == "runware" or not isinstance(body, dict) or not isinstance(body.get("messages"), list):
        return [], 0
    messages = body["messages"]
    skeleton = _skeleton(messages)
    by_context: dict[tuple[tuple[str, ...], ...], list[ProducedStep]] = {}
    for step in steps:
        by_context.setdefault(step.context, []).append(step)
    last_user = max((i for i, entry in enumerate(skeleton) if entry[0] == "user"), default=-1)
    problems: list[str] = []
    checked = 0
    answered_until = -1  # tool messages up to here belong to a step already checked
    for i, message in enumerate(messages):
        role = message.get("role") if isinstance(message, dict) else None
        if role == "tool":
            if i > answered_until:
                problems.append(f"message {i} (tool): no step with tool calls comes right before it")
            continue
        if role != "assistant":
            continue
        candidates = by_context.get(tuple(skeleton[:i]), [])
        if not candidates:
            problems.append(f"message {i} (assistant): this server produced no reply at this point of the conversation")
            continue
        checked += 1
        must_keep = i > last_user or (preserve and host_id not in ("openrouter", "ollama"))
        results = []
        for step in candidates:
            found = _check_step(host_id, message, step, must_keep_reasoning=must_keep)
            follow, n = _check_results(host_id, messages, i, step)
            results.append((found + follow, n, step))
        best = next((r for r in results if not r[0]), None)
        if best is None:
            ids = {c.get("id") for c in message.get("tool_calls") or [] if isinstance(c, dict)}
            best = next((r for r in reversed(results) if ids & {c["id"] for c in r[2].tool_calls}), results[-1])
            problems.extend(f"message {i} (assistant, step #{best[2].serial}): {p}" for p in best[0])
        answered_until = i + best[1]
    return problems, checked


# -- dialects: turning a reply into wire chunks ----------------------------------------------------


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))


def _encode(text: str) -> bytes:
    # A lone surrogate can only sit inside a JSON string here, and backslashreplace
    # writes it as "\udXXX", which is exactly its JSON escape.
    return text.encode("utf-8", "backslashreplace")


def _arguments_object(arguments: str) -> Any:
    try:
        return json.loads(arguments or "{}")
    except ValueError:
        return {}


def reasoning_details_items(pieces: Iterable[str]) -> list[dict[str, Any]]:
    """OpenRouter's `reasoning_details` for reasoning sent in these pieces (one item per chunk)."""
    return [{"type": "reasoning.text", "text": piece, "format": "unknown", "index": 0} for piece in pieces]


TOOL_ID_STYLE = {
    # How each host names tool calls. Z.ai's and Cerebras' are observed (protocol.md §7.1, §2);
    # vLLM's follows its source; the others use Z.ai's shape, which clients must not depend on anyway.
    "cerebras": lambda: uuid.uuid4().hex[:9],
    "vllm": lambda: "chatcmpl-tool-" + uuid.uuid4().hex,
}


def new_tool_call_id(host_id: str) -> str:
    make = TOOL_ID_STYLE.get(host_id)
    return make() if make else "call_" + uuid.uuid4().hex[:24]


@dataclass
class Plan:
    """What one reply will send: tokens, tool calls and the numbers for usage."""

    host_id: str
    model: str
    reasoning: list[str]
    content: list[str]
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    prompt_tokens: int
    cached_tokens: int
    include_usage: bool
    usage_override: dict[str, Any] | bool | None
    tool_stream: bool = False
    """Stream tool-call arguments in fragments (else each call whole in one chunk)."""
    tool_ids_every_fragment: bool = False
    web_search: list[dict[str, Any]] | None = None

    def usage_numbers(self) -> dict[str, int]:
        completion = len(self.reasoning) + len(self.content) + 8 * len(self.tool_calls)
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": completion,
            "total_tokens": self.prompt_tokens + completion,
            "cached_tokens": self.cached_tokens,
            "reasoning_tokens": len(self.reasoning),
        }


class Dialect:
    """OpenAI-style chat completions over SSE; subclasses change the field names and extras."""

    content_type = "text/event-stream; charset=utf-8"
    reasoning_field = "reasoning_content"
    done_marker = b"data: [DONE]\n\n"

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.id = "chatcmpl-" + uuid.uuid4().hex[:24]
        self.created = int(time.time())

    # Subclasses build the JSON around the text with string templates: one json.dumps
    # of the text per chunk keeps an unthrottled 40,000-token reply cheap to produce.
    def envelope(self, choice: str, extra: str = "") -> str:
        return (
            f'{{"id":"{self.id}","object":"chat.completion.chunk","created":{self.created},'
            f'"model":{_dumps(self.plan.model)},"choices":[{choice}]{extra}}}'
        )

    def frame(self, payload: str) -> bytes:
        return b"data: " + _encode(payload) + b"\n\n"

    def preamble(self) -> list[bytes]:
        return []

    def reasoning_chunk(self, text: str) -> bytes:
        return self.frame(
            self.envelope(f'{{"index":0,"delta":{{"role":"assistant","{self.reasoning_field}":{_dumps(text)}}}}}')
        )

    def content_chunk(self, text: str) -> bytes:
        return self.frame(self.envelope(f'{{"index":0,"delta":{{"role":"assistant","content":{_dumps(text)}}}}}'))

    def delta_frame(self, delta: dict[str, Any]) -> bytes:
        """A chunk carrying one delta (tool calls), in this dialect's envelope."""
        return self.frame(self.envelope(f'{{"index":0,"delta":{_dumps({"role": "assistant", **delta})}}}'))

    def tool_call_chunk(self, index: int, call: dict[str, Any]) -> bytes:
        """One call whole: id, index, type, name and the complete arguments string (Z.ai, Cerebras)."""
        tc = {
            "id": call["id"],
            "index": index,
            "type": "function",
            "function": {"name": call["name"], "arguments": call["arguments"]},
        }
        return self.delta_frame({"tool_calls": [tc]})

    def tool_call_frames(self, index: int, call: dict[str, Any], chunk_tokens: int) -> list[tuple[bytes, int]]:
        """The chunks for one call, with the tokens each carries.

        Whole, or (`plan.tool_stream`) the OpenAI way: a first fragment with id, type and name and
        empty arguments, then the arguments in pieces that concatenate, per index, to the exact string.
        """
        if not self.plan.tool_stream:
            return [(self.tool_call_chunk(index, call), 8)]
        head = {"index": index, "id": call["id"], "type": "function", "function": {"name": call["name"], "arguments": ""}}
        frames = [(self.delta_frame({"tool_calls": [head]}), 1)]
        pieces = split_tokens(call["arguments"])
        for i in range(0, len(pieces), chunk_tokens):
            group = pieces[i : i + chunk_tokens]
            fragment: dict[str, Any] = {"index": index, "function": {"arguments": "".join(group)}}
            if self.plan.tool_ids_every_fragment:
                fragment = {"index": index, "id": call["id"], "type": "function",
                            "function": {"name": call["name"], "arguments": "".join(group)}}
            frames.append((self.delta_frame({"tool_calls": [fragment]}), len(group)))
        return frames

    def usage(self) -> dict[str, Any] | None:
        if self.plan.usage_override is False or not self.plan.include_usage:
            return None
        if isinstance(self.plan.usage_override, dict):
            return self.plan.usage_override
        n = self.plan.usage_numbers()
        return {
            "prompt_tokens": n["prompt_tokens"],
            "completion_tokens": n["completion_tokens"],
            "total_tokens": n["total_tokens"],
            "prompt_tokens_details": {"cached_tokens": n["cached_tokens"]},
            "completion_tokens_details": {"reasoning_tokens": n["reasoning_tokens"]},
        }

    def final_chunks(self) -> list[bytes]:
        usage = self.usage()
        extra = f',"usage":{_dumps(usage)}' if usage is not None else ""
        if self.plan.web_search is not None:
            extra += f',"web_search":{_dumps(self.plan.web_search)}'
        choice = f'{{"index":0,"finish_reason":{_dumps(self.plan.finish_reason)},"delta":{{"role":"assistant","content":""}}}}'
        return [self.frame(self.envelope(choice, extra))]

    def malformed_chunk(self) -> bytes:
        return b'data: {"id":"' + self.id.encode() + b'","choices":[{"index":0,"delta":{"content":"oops\n\n'

    def stream_error_chunks(self, error: dict[str, Any]) -> list[bytes]:
        return [self.frame(_dumps({"error": error}))]

    def end(self) -> list[bytes]:
        return [self.done_marker]

    def error_body(self, status: int) -> Any:
        return {"error": {"message": _REASONS.get(status, "error"), "type": "error", "code": status}}

    def non_stream_body(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.plan.content)}
        if self.plan.reasoning:
            message[self.reasoning_field] = "".join(self.plan.reasoning)
        if self.plan.tool_calls:
            message["tool_calls"] = [
                {"id": c["id"], "index": i, "type": "function", "function": {"name": c["name"], "arguments": c["arguments"]}}
                for i, c in enumerate(self.plan.tool_calls)
            ]
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.plan.model,
            "choices": [{"index": 0, "finish_reason": self.plan.finish_reason, "message": message}],
        }
        usage = self.usage()
        if usage is not None:
            body["usage"] = usage
        if self.plan.web_search is not None:
            body["web_search"] = self.plan.web_search
        return body


_REASONS = {
    400: "Bad request",
    401: "Unauthorized",
    402: "Payment required",
    403: "Forbidden",
    404: "Not found",
    429: "Too many requests",
    500: "Internal server error",
    502: "Bad gateway",
    503: "Service unavailable",
}


class ZaiDialect(Dialect):
    """Z.ai / BigModel: `reasoning_content`, usage on the finish chunk (protocol.md §7.1)."""

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan)
        self.id = time.strftime("%Y%m%d%H%M%S") + uuid.uuid4().hex[:16]

    def error_body(self, status: int) -> Any:
        if status == 401:
            return {"error": {"code": "1002", "message": ZAI_ERRORS[1002][1]}}
        return {"error": {"code": str(status), "message": _REASONS.get(status, "error")}}


class CerebrasDialect(Dialect):
    """Cerebras: `reasoning`, `time_info`, top-level error objects."""

    reasoning_field = "reasoning"

    def envelope(self, choice: str, extra: str = "") -> str:
        return (
            f'{{"id":"{self.id}","choices":[{choice}],"created":{self.created},"model":{_dumps(self.plan.model)},'
            f'"system_fingerprint":"fp_loopback","object":"chat.completion.chunk"{extra}}}'
        )

    def usage(self) -> dict[str, Any] | None:
        usage = super().usage()
        if usage is not None and self.plan.usage_override is None:
            usage["completion_tokens_details"].update(accepted_prediction_tokens=0, rejected_prediction_tokens=0)
        return usage

    def final_chunks(self) -> list[bytes]:
        usage = self.usage()
        extra = ""
        if usage is not None:
            extra = f',"usage":{_dumps(usage)},"time_info":{{"queue_time":0.0001,"prompt_time":0.001,"completion_time":0.5,"total_time":0.51,"created":{self.created}}}'
        choice = f'{{"delta":{{}},"finish_reason":{_dumps(self.plan.finish_reason)},"index":0}}'
        return [self.frame(self.envelope(choice, extra))]

    def stream_error_chunks(self, error: dict[str, Any]) -> list[bytes]:
        return [self.frame(_dumps({"error": error, "status_code": error.get("status_code", 500)}))]

    def error_body(self, status: int) -> Any:
        return {"message": _REASONS.get(status, "error"), "type": "error", "param": "", "code": str(status)}


class OpenRouterDialect(Dialect):
    """OpenRouter: `reasoning` + `reasoning_details`, processing comments, cost in usage."""

    reasoning_field = "reasoning"

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan)
        self.id = f"gen-{self.created}-{uuid.uuid4().hex[:20]}"

    def envelope(self, choice: str, extra: str = "") -> str:
        return (
            f'{{"id":"{self.id}","provider":"Z.AI","model":{_dumps(self.plan.model)},'
            f'"object":"chat.completion.chunk","created":{self.created},"choices":[{choice}]{extra}}}'
        )

    def preamble(self) -> list[bytes]:
        return [b": OPENROUTER PROCESSING\n\n", b": OPENROUTER PROCESSING\n\n"]

    def reasoning_chunk(self, text: str) -> bytes:
        t = _dumps(text)
        delta = (
            f'{{"role":"assistant","content":"","reasoning":{t},'
            f'"reasoning_details":[{{"type":"reasoning.text","text":{t},"format":"unknown","index":0}}]}}'
        )
        return self.frame(
            self.envelope(f'{{"index":0,"delta":{delta},"finish_reason":null,"native_finish_reason":null,"logprobs":null}}')
        )

    def content_chunk(self, text: str) -> bytes:
        delta = f'{{"role":"assistant","content":{_dumps(text)},"reasoning":null}}'
        return self.frame(
            self.envelope(f'{{"index":0,"delta":{delta},"finish_reason":null,"native_finish_reason":null,"logprobs":null}}')
        )

    def delta_frame(self, delta: dict[str, Any]) -> bytes:
        payload = _dumps({"role": "assistant", "content": "", **delta})
        return self.frame(
            self.envelope(f'{{"index":0,"delta":{payload},"finish_reason":null,"native_finish_reason":null,"logprobs":null}}')
        )

    def non_stream_body(self) -> dict[str, Any]:
        body = super().non_stream_body()
        if self.plan.reasoning:
            body["choices"][0]["message"]["reasoning_details"] = reasoning_details_items(["".join(self.plan.reasoning)])
        return body

    def usage(self) -> dict[str, Any] | None:
        usage = super().usage()
        if usage is not None and self.plan.usage_override is None:
            usage["prompt_tokens_details"]["cache_write_tokens"] = 0
            usage["cost"] = round(usage["total_tokens"] * 2e-6, 8)
            usage["is_byok"] = False
        return usage

    def final_chunks(self) -> list[bytes]:
        fr = _dumps(self.plan.finish_reason)
        out = [
            self.frame(
                self.envelope(
                    f'{{"index":0,"delta":{{"role":"assistant","content":""}},"finish_reason":{fr},"native_finish_reason":{fr},"logprobs":null}}'
                )
            )
        ]
        usage = self.usage()
        if usage is not None:
            out.append(
                self.frame(
                    self.envelope(
                        '{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null,"native_finish_reason":null,"logprobs":null}',
                        f',"usage":{_dumps(usage)}',
                    )
                )
            )
        return out

    def stream_error_chunks(self, error: dict[str, Any]) -> list[bytes]:
        # OpenRouter's documented mid-stream error: an `error` next to a choice finishing with "error".
        return [
            self.frame(
                self.envelope(
                    '{"index":0,"delta":{"content":""},"finish_reason":"error"}', f',"error":{_dumps(error)}'
                )
            )
        ]

    def error_body(self, status: int) -> Any:
        return {"error": {"code": status, "message": _REASONS.get(status, "error")}}


class VllmDialect(Dialect):
    """vLLM ≥ 0.14: `reasoning` only; usage in a separate chunk with empty choices, if asked."""

    reasoning_field = "reasoning"

    def preamble(self) -> list[bytes]:
        return [
            self.frame(
                self.envelope('{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}')
            )
        ]

    def reasoning_chunk(self, text: str) -> bytes:
        return self.frame(
            self.envelope(f'{{"index":0,"delta":{{"{self.reasoning_field}":{_dumps(text)}}},"logprobs":null,"finish_reason":null}}')
        )

    def content_chunk(self, text: str) -> bytes:
        return self.frame(
            self.envelope(f'{{"index":0,"delta":{{"content":{_dumps(text)}}},"logprobs":null,"finish_reason":null}}')
        )

    def delta_frame(self, delta: dict[str, Any]) -> bytes:
        return self.frame(self.envelope(f'{{"index":0,"delta":{_dumps(delta)},"logprobs":null,"finish_reason":null}}'))

    def final_chunks(self) -> list[bytes]:
        out = [
            self.frame(
                self.envelope(
                    f'{{"index":0,"delta":{{"content":""}},"logprobs":null,"finish_reason":{_dumps(self.plan.finish_reason)},"stop_reason":null}}'
                )
            )
        ]
        usage = self.usage()
        if usage is not None:
            out.append(self.frame(self.envelope("", f',"usage":{_dumps(usage)}')))
        return out

    def error_body(self, status: int) -> Any:
        return {"object": "error", "message": _REASONS.get(status, "error"), "type": "BadRequestError", "param": None, "code": status}


class SglangDialect(VllmDialect):
    """SGLang: `reasoning_content`, usage (with cached and reasoning tokens) in a last chunk."""

    reasoning_field = "reasoning_content"

    def usage(self) -> dict[str, Any] | None:
        usage = super().usage()
        if usage is not None and self.plan.usage_override is None:
            usage["reasoning_tokens"] = usage.pop("completion_tokens_details")["reasoning_tokens"]
        return usage


class LlamaCppDialect(Dialect):
    """llama.cpp server: `reasoning_content`, usage and `timings` on the last chunk."""

    def envelope(self, choice: str, extra: str = "") -> str:
        return (
            f'{{"choices":[{choice}],"created":{self.created},"id":"{self.id}",'
            f'"model":{_dumps(self.plan.model)},"system_fingerprint":"b7000-loopback","object":"chat.completion.chunk"{extra}}}'
        )

    def reasoning_chunk(self, text: str) -> bytes:
        return self.frame(self.envelope(f'{{"finish_reason":null,"index":0,"delta":{{"reasoning_content":{_dumps(text)}}}}}'))

    def content_chunk(self, text: str) -> bytes:
        return self.frame(self.envelope(f'{{"finish_reason":null,"index":0,"delta":{{"content":{_dumps(text)}}}}}'))

    def delta_frame(self, delta: dict[str, Any]) -> bytes:
        return self.frame(self.envelope(f'{{"finish_reason":null,"index":0,"delta":{_dumps(delta)}}}'))

    def final_chunks(self) -> list[bytes]:
        usage = self.usage()
        n = self.plan.usage_numbers()
        extra = f',"usage":{_dumps(usage)}' if usage is not None else ""
        extra += (
            f',"timings":{{"cache_n":{n["cached_tokens"]},"prompt_n":{n["prompt_tokens"] - n["cached_tokens"]},'
            f'"prompt_ms":1.0,"predicted_n":{n["completion_tokens"]},"predicted_ms":100.0}}'
        )
        choice = f'{{"finish_reason":{_dumps(self.plan.finish_reason)},"index":0,"delta":{{}}}}'
        return [self.frame(self.envelope(choice, extra))]

    def error_body(self, status: int) -> Any:
        return {"error": {"code": status, "message": _REASONS.get(status, "error"), "type": "invalid_request_error"}}


class OllamaDialect(Dialect):
    """Ollama native /api/chat: NDJSON lines with `message.thinking` / `message.content`."""

    content_type = "application/x-ndjson"

    def __init__(self, plan: Plan) -> None:
        super().__init__(plan)
        self.created_at = time.strftime("%Y-%m-%dT%H:%M:%S.000000000Z", time.gmtime())
        self.head = f'{{"model":{_dumps(plan.model)},"created_at":"{self.created_at}","message":{{"role":"assistant","content":'

    def line(self, payload: str) -> bytes:
        return _encode(payload) + b"\n"

    def reasoning_chunk(self, text: str) -> bytes:
        return self.line(f'{self.head}"","thinking":{_dumps(text)}}},"done":false}}')

    def content_chunk(self, text: str) -> bytes:
        return self.line(f"{self.head}{_dumps(text)}}},\"done\":false}}")

    def tool_call_chunk(self, index: int, call: dict[str, Any]) -> bytes:
        # Ollama sends each call whole, arguments as an object, and no id.
        tc = {"function": {"index": index, "name": call["name"], "arguments": _arguments_object(call["arguments"])}}
        return self.line(f'{self.head}"","tool_calls":[{_dumps(tc)}]}},"done":false}}')

    def final_chunks(self) -> list[bytes]:
        return []

    def end(self) -> list[bytes]:
        n = self.plan.usage_numbers()
        reason = "stop" if self.plan.finish_reason in ("stop", "tool_calls") else self.plan.finish_reason
        # Ollama counts only the prompt tokens it had to evaluate: a cache hit lowers prompt_eval_count.
        return [
            self.line(
                f'{self.head}""}},"done":true,"done_reason":{_dumps(reason)},"total_duration":100000000,'
                f'"load_duration":1000000,"prompt_eval_count":{n["prompt_tokens"] - n["cached_tokens"]},'
                f'"prompt_eval_duration":1000000,"eval_count":{n["completion_tokens"]},"eval_duration":90000000}}'
            )
        ]

    def malformed_chunk(self) -> bytes:
        return self.head.encode() + b'"oops\n'

    def stream_error_chunks(self, error: dict[str, Any]) -> list[bytes]:
        return [self.line(_dumps({"error": error.get("message", "error")}))]

    def error_body(self, status: int) -> Any:
        return {"error": _REASONS.get(status, "error").lower()}

    def non_stream_body(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": "".join(self.plan.content)}
        if self.plan.reasoning:
            message["thinking"] = "".join(self.plan.reasoning)
        if self.plan.tool_calls:
            message["tool_calls"] = [
                {"function": {"index": i, "name": c["name"], "arguments": _arguments_object(c["arguments"])}}
                for i, c in enumerate(self.plan.tool_calls)
            ]
        n = self.plan.usage_numbers()
        return {
            "model": self.plan.model,
            "created_at": self.created_at,
            "message": message,
            "done": True,
            "done_reason": "stop" if self.plan.finish_reason in ("stop", "tool_calls") else self.plan.finish_reason,
            "prompt_eval_count": n["prompt_tokens"] - n["cached_tokens"],
            "eval_count": n["completion_tokens"],
        }


class RunwareDialect(Dialect):
    """Runware `textInference` with deliveryMethod "stream": SSE objects with a `delta` (protocol.md §6)."""

    def __init__(self, plan: Plan, task_uuid: str = "") -> None:
        super().__init__(plan)
        self.task_uuid = task_uuid or str(uuid.uuid4())
        self.head = f'{{"taskType":"textInference","taskUUID":{_dumps(self.task_uuid)}'

    def reasoning_chunk(self, text: str) -> bytes:
        return self.frame(f'{self.head},"delta":{{"reasoningContent":{_dumps(text)}}}}}')

    def content_chunk(self, text: str) -> bytes:
        return self.frame(f'{self.head},"delta":{{"text":{_dumps(text)}}}}}')

    def tool_call_frames(self, index: int, call: dict[str, Any], chunk_tokens: int) -> list[tuple[bytes, int]]:
        return []  # the task API has no tool calls (a request with tools is refused before this)

    def usage(self) -> dict[str, Any] | None:
        if self.plan.usage_override is False or not self.plan.include_usage:
            return None
        if isinstance(self.plan.usage_override, dict):
            return self.plan.usage_override
        n = self.plan.usage_numbers()
        return {
            "promptTokens": n["prompt_tokens"],
            "completionTokens": n["completion_tokens"],
            "totalTokens": n["total_tokens"],
            "reasoningTokens": n["reasoning_tokens"],
        }

    def final_chunks(self) -> list[bytes]:
        usage = self.usage()
        extra = f',"usage":{_dumps(usage)},"cost":0.0001' if usage is not None else ""
        return [self.frame(f'{self.head},"finishReason":{_dumps(self.plan.finish_reason)}{extra}}}')]

    def stream_error_chunks(self, error: dict[str, Any]) -> list[bytes]:
        return [self.frame(_dumps({"errors": [{"taskUUID": self.task_uuid, **error}]}))]

    def error_body(self, status: int) -> Any:
        code = "invalidApiKey" if status == 401 else f"http{status}"
        return {"errors": [{"code": code, "message": _REASONS.get(status, "error"), "taskUUID": self.task_uuid}]}

    def non_stream_body(self) -> dict[str, Any]:
        result: dict[str, Any] = {
            "taskType": "textInference",
            "taskUUID": self.task_uuid,
            "text": "".join(self.plan.content),
            "finishReason": self.plan.finish_reason,
        }
        if self.plan.reasoning:
            result["reasoningContent"] = "".join(self.plan.reasoning)
        usage = self.usage()
        if usage is not None:
            result["usage"] = usage
        return {"data": [result]}


DIALECTS: dict[str, type[Dialect]] = {
    "zai": ZaiDialect,
    "zai-coding": ZaiDialect,
    "bigmodel": ZaiDialect,
    "cerebras": CerebrasDialect,
    "openrouter": OpenRouterDialect,
    "vllm": VllmDialect,
    "sglang": SglangDialect,
    "llamacpp": LlamaCppDialect,
    "ollama": OllamaDialect,
    "runware": RunwareDialect,
}

CHAT_PATHS = {h: "/chat/completions" for h in CHAT_HOSTS} | {"ollama": "/api/chat", "runware": "/v1"}


# -- the server --------------------------------------------------------------------------------------


class _Dropped(Exception):
    """The reply is over on purpose (dropped or stalled) or because the client left."""


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _HTTPServer
    _reply: Reply | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's name
        pass  # quiet: tests and benchmarks read the records instead

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.glm._track(self.connection, True)

    def finish(self) -> None:
        self.server.glm._track(self.connection, False)
        try:
            super().finish()
        except OSError:
            pass

    # -- request plumbing ---------------------------------------------------------------------------

    def _read_body(self) -> bytes:
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            parts = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send_json(
        self, status: int, body: Any, headers: dict[str, str] | None = None, content_type: str | None = None
    ) -> None:
        if isinstance(body, bytes):
            data = body
        elif isinstance(body, str):
            data = body.encode("utf-8")
        else:
            data = _dumps(body).encode("utf-8", "backslashreplace")
        self.send_response(status)
        self.send_header("Content-Type", content_type or "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        glm = self.server.glm
        if self.path == "/_glm/requests":
            with glm._lock:
                records = list(glm.requests)
            self._send_json(200, [r.to_dict() for r in records])
        elif self.path == "/_glm/steps":
            self._send_json(200, [step.to_dict() for step in glm.produced_steps()])
        elif self.path == "/_glm/replay_problems":
            self._send_json(200, glm.replay_problems)
        elif self.path == "/_glm/health":
            self._send_json(200, {"ok": True})
        elif self.path.endswith("/models") and self.path.split("/")[1] in CHAT_HOSTS:
            # The OpenAI-style model list (Z.ai's /models): the host's model and the GLM-5 family.
            with glm._lock:
                glm.models_requests += 1
            host_id = self.path.split("/")[1]
            names = dict.fromkeys((MODELS[host_id], *MODEL_THINKING, "glm-5"))
            self._send_json(200, {"object": "list", "data": [{"id": n, "object": "model", "owned_by": "z-ai"} for n in names]})
        else:
            self._send_json(404, {"error": {"message": f"no such path: {self.path}"}})

    def do_POST(self) -> None:
        glm = self.server.glm
        raw = self._read_body()
        if self.path.startswith("/_glm/"):
            self._control(raw)
            return
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        parts = self.path.split("?", 1)[0].split("/", 2)
        host_id = parts[1] if len(parts) > 1 else None
        rest = "/" + parts[2] if len(parts) > 2 else ""
        record = RecordedRequest(
            method="POST",
            path=self.path,
            host_id=host_id if host_id in HOST_IDS else None,
            headers=dict(self.headers.items()),
            body=raw,
            json=parsed,
            arrived_at=time.monotonic(),
        )
        glm._record(record)
        if host_id not in HOST_IDS or rest != CHAT_PATHS[host_id]:
            record.status = 404
            self._send_json(404, {"error": {"message": f"unknown path {self.path}"}})
            return
        self._serve(record, host_id, parsed)

    def _control(self, raw: bytes) -> None:
        glm = self.server.glm
        if self.path == "/_glm/enqueue":
            data = json.loads(raw or b"{}")
            for item in data if isinstance(data, list) else [data]:
                glm.enqueue(Reply.from_dict(item))
            self._send_json(200, {"queued": glm.queued})
        elif self.path == "/_glm/reset":
            glm.reset()
            self._send_json(200, {"ok": True})
        else:
            self._send_json(404, {"error": {"message": f"no such path: {self.path}"}})

    # -- one reply ------------------------------------------------------------------------------------

    def _serve(self, record: RecordedRequest, host_id: str, body: Any) -> None:
        glm = self.server.glm
        reply = glm._next_reply()
        self._reply = reply
        record.reply = reply
        record.thinking = request_thinking(host_id, body)
        record.preserve = request_preserve(host_id, body)
        if host_id in ZAI_FAMILY and isinstance(body, dict) and isinstance(body.get("reasoning_effort"), str):
            record.level = body["reasoning_effort"]
        record.replay_problems, record.replayed_steps = check_replay(host_id, body, glm.produced_steps(), record.preserve)
        prompt = render_prompt(host_id, body)
        record.prompt = prompt
        record.prompt_tokens = -(-len(prompt) // CHARS_PER_TOKEN)
        record.cached_tokens = min(glm.cache.lookup(host_id, prompt), len(prompt)) // CHARS_PER_TOKEN

        if reply.initial_delay and glm._stop.wait(reply.initial_delay):
            self.close_connection = True
            return
        if reply.hangup:
            self.close_connection = True
            try:
                # Linger 0: the close sends a reset, as a crashed proxy or server would.
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            except OSError:
                pass
            return

        plan = self._plan(host_id, body, reply, record)
        task_uuid = str(_runware_task(body).get("taskUUID") or "") if host_id == "runware" else ""
        dialect = RunwareDialect(plan, task_uuid) if host_id == "runware" else DIALECTS[host_id](plan)

        refusal = thinking_refusal(host_id, body) if reply.status == 200 else None
        if refusal is not None:
            record.status = 400
            self._send_json(400, {"error": {"code": "1210", "message": refusal}})
            record.finished_at = time.monotonic()
            return

        if host_id == "runware" and reply.status == 200 and _runware_tools(body):
            # The task API has no tools; refuse the way it refuses any parameter it does not know.
            record.status = 400
            self._send_json(400, runware_unsupported("tools", task_uuid))
            record.finished_at = time.monotonic()
            return

        if reply.status != 200:
            record.status = reply.status
            error_body = reply.body if reply.body is not None else dialect.error_body(reply.status)
            self._send_json(reply.status, error_body, reply.headers)
            record.finished_at = time.monotonic()
            return

        record.status = 200
        generation = self._generation(plan, record.thinking)
        record.generation = generation
        glm.cache.add(host_id, prompt + generation)
        streamed = _wants_stream(host_id, body)
        glm._add_step(host_id, body, plan, record, chunk_tokens=max(1, reply.chunk_tokens or glm.chunk_tokens) if streamed else None)

        if reply.plain_body or not streamed:
            plain = reply.body if reply.body is not None else dialect.non_stream_body()
            self._send_json(200, plain, reply.headers, content_type=reply.content_type)
            record.finished_at = time.monotonic()
            return

        self.send_response(200)
        self.send_header("Content-Type", reply.content_type or dialect.content_type)
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        try:
            self._stream(record, reply, dialect, plan)
        except _Dropped:
            self.close_connection = True
        except OSError:
            record.disconnected = True
            self.close_connection = True

    def _plan(self, host_id: str, body: Any, reply: Reply, record: RecordedRequest) -> Plan:
        glm = self.server.glm
        default = glm.default
        user_text = _last_user_text(host_id, body)

        def tokens(value: str | Sequence[str] | None) -> list[str]:
            if value is None:
                return []
            return split_tokens(value) if isinstance(value, str) else list(value)

        reasoning_src = reply.reasoning if reply.reasoning is not None else default.reasoning
        content_src = reply.content if reply.content is not None else default.content
        if reasoning_src is None:
            reasoning_src = default_reasoning(user_text) if record.thinking else ""
        elif not record.thinking and reply.reasoning is None:
            reasoning_src = ""  # the server-wide default text only applies to thinking requests
        if content_src is None:
            content_src = default_content(user_text)
        tool_calls = [_resolve_tool_call(host_id, call) for call in reply.tool_calls or []]
        finish = reply.finish_reason or ("tool_calls" if tool_calls else "stop")
        if reply.tool_fragments is not None:
            tool_stream = reply.tool_fragments
        elif host_id in ZAI_FAMILY:
            tool_stream = isinstance(body, dict) and body.get("tool_stream") is True and _wants_stream(host_id, body)
        else:
            tool_stream = host_id in ("openrouter", "vllm", "sglang", "llamacpp")  # Cerebras, Ollama: whole calls
        include_usage = True
        if host_id in ("vllm", "sglang") and isinstance(body, dict):
            include_usage = bool(_get(body, "stream_options", "include_usage"))
        if host_id == "runware":
            include_usage = bool(_runware_task(body).get("includeUsage", True))
        return Plan(
            host_id=host_id,
            model=(body.get("model") if isinstance(body, dict) else None) or _runware_task(body).get("model") or MODELS[host_id],
            reasoning=tokens(reasoning_src),
            content=tokens(content_src),
            tool_calls=tool_calls,
            finish_reason=finish,
            prompt_tokens=record.prompt_tokens,
            cached_tokens=record.cached_tokens,
            include_usage=include_usage,
            usage_override=reply.usage,
            tool_stream=tool_stream,
            tool_ids_every_fragment=reply.tool_ids_every_fragment,
            web_search=reply.web_search if host_id in ZAI_FAMILY and _offers_web_search(body) else None,
        )

    @staticmethod
    def _generation(plan: Plan, thinking: bool | None) -> str:
        text = "".join(plan.content) + _render_tool_calls(plan.tool_calls)
        if plan.tool_calls:
            text += "<|observation|>"  # the model ends a tool-call step with this token
        if thinking:
            return "".join(plan.reasoning) + "</think>" + text
        return text

    def _stream(self, record: RecordedRequest, reply: Reply, dialect: Dialect, plan: Plan) -> None:
        glm = self.server.glm
        chunk_tokens = max(1, reply.chunk_tokens or glm.chunk_tokens)
        pace = None if reply.unthrottled else (reply.pace if reply.pace is not None else glm.pace)
        interval = chunk_tokens / pace if pace else 0.0
        flush_at = 0 if pace else UNTHROTTLED_FLUSH_BYTES
        pending: list[bytes] = []
        pending_tokens: list[int] = []
        pending_size = 0
        sent = 0  # data chunks carrying text or tool calls
        start = record.paced_from = time.monotonic()

        def flush() -> None:
            nonlocal pending_size
            if not pending:
                return
            data = b"".join(pending)
            self._write_chunked(data, reply.fragment_bytes)
            now = time.monotonic()
            for n in pending_tokens:
                record.chunk_times.append(now)
                record.chunk_tokens.append(n)
            pending.clear()
            pending_tokens.clear()
            pending_size = 0

        def put(frame: bytes, ntokens: int | None = None) -> None:
            nonlocal pending_size
            pending.append(frame)
            pending_size += len(frame)
            if ntokens is not None:
                pending_tokens.append(ntokens)
            if pending_size >= flush_at:
                flush()

        def chunk_frames() -> Iterable[tuple[bytes, int]]:
            for seq, make in ((plan.reasoning, dialect.reasoning_chunk), (plan.content, dialect.content_chunk)):
                for i in range(0, len(seq), chunk_tokens):
                    piece = seq[i : i + chunk_tokens]
                    yield make("".join(piece)), len(piece)
            for index, call in enumerate(plan.tool_calls):
                yield from dialect.tool_call_frames(index, call, chunk_tokens)

        if reply.keepalive_only is not None:
            # Comments only: the connection looks alive byte-wise, yet nothing is ever said.
            while not glm._stop.is_set():
                self._write_chunked(b": keep-alive\n\n", None)
                if glm._stop.wait(reply.keepalive_only):
                    break
            raise _Dropped
        for frame in dialect.preamble():
            put(frame)
        flush()
        for frame, ntokens in chunk_frames():
            if reply.malformed_after is not None and sent == reply.malformed_after:
                put(dialect.malformed_chunk())
                flush()
            if reply.drop_after is not None and sent >= reply.drop_after:
                flush()
                self._drop()
            if reply.stall_after is not None and sent >= reply.stall_after:
                flush()
                glm._stop.wait()
                raise _Dropped
            if interval:
                delay = start + sent * interval - time.monotonic()
                if delay > 0 and glm._stop.wait(delay):
                    raise _Dropped
            elif glm._stop.is_set():
                raise _Dropped
            put(frame, ntokens)
            sent += 1
        if reply.malformed_after is not None and sent == reply.malformed_after:
            put(dialect.malformed_chunk())
        if reply.drop_after is not None and sent >= reply.drop_after:
            flush()
            self._drop()
        if reply.stall_after is not None and sent >= reply.stall_after:
            flush()
            glm._stop.wait()
            raise _Dropped
        if reply.stream_error is not None:
            for frame in dialect.stream_error_chunks(reply.stream_error):
                put(frame)
        else:
            if reply.finish:
                for frame in dialect.final_chunks():
                    put(frame)
            if reply.done:
                for frame in dialect.end():
                    put(frame)
        flush()
        self.connection.sendall(b"0\r\n\r\n")
        record.finished_at = time.monotonic()

    def _write_chunked(self, data: bytes, fragment: int | None) -> None:
        trickle = self._reply.trickle if self._reply is not None else None
        if trickle:
            for i in range(len(data)):
                self.connection.sendall(b"1\r\n%s\r\n" % data[i : i + 1])
                if self.server.glm._stop.wait(trickle):
                    raise _Dropped
            return
        if fragment:
            for i in range(0, len(data), fragment):
                piece = data[i : i + fragment]
                self.connection.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
        else:
            self.connection.sendall(b"%x\r\n%s\r\n" % (len(data), data))

    def _drop(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise _Dropped


def _resolve_tool_call(host_id: str, call: dict[str, Any]) -> dict[str, str]:
    """A scripted call with everything the wire needs: an id in the host's style, arguments as a string."""
    arguments = call.get("arguments", "{}")
    if not isinstance(arguments, str):
        arguments = json.dumps(arguments, ensure_ascii=False)
    return {"id": str(call.get("id") or new_tool_call_id(host_id)), "name": str(call.get("name", "")), "arguments": arguments}


def _runware_tools(body: Any) -> bool:
    task = _runware_task(body)
    return bool(task.get("tools") or (isinstance(body, dict) and body.get("tools")))


def runware_unsupported(parameter: str, task_uuid: str) -> dict[str, Any]:
    """Runware's error body for a parameter the task does not take (the exact code is UNCONFIRMED)."""
    return {
        "errors": [
            {
                "code": "unsupportedParameter",
                "message": f"Unsupported parameter '{parameter}' for taskType 'textInference'.",
                "parameter": parameter,
                "taskType": "textInference",
                "taskUUID": task_uuid,
            }
        ]
    }


def _wants_stream(host_id: str, body: Any) -> bool:
    if host_id == "runware":
        return _runware_task(body).get("deliveryMethod", "stream") == "stream"
    if not isinstance(body, dict):
        return True
    if host_id == "ollama":
        return body.get("stream", True) is not False
    return bool(body.get("stream", False))


def _last_user_text(host_id: str, body: Any) -> str:
    messages = _runware_task(body).get("messages") if host_id == "runware" else _get(body, "messages")
    for message in reversed(messages or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _text_of(message.get("content"))
    return ""


def default_reasoning(user_text: str) -> str:
    """The default reply's reasoning: deterministic, and with edge whitespace a strip would lose."""
    return f"The user wrote: {user_text}\n  I should answer in one line → briefly.  \n"


def default_content(user_text: str) -> str:
    """The default reply's answer."""
    return f"You said: {user_text}\n"


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    glm: GlmServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (cancel, timeout, keep-alive close) is business as usual here.
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handle_error(request, client_address)


class GlmServer:
    """The loopback server. Use as a context manager, or `.start()` / `.stop()`.

    Args:
        port: TCP port on 127.0.0.1 (0: any free port).
        pace: default tokens per second (None: unthrottled).
        chunk_tokens: default tokens per chunk.
        default: the reply used when the queue is empty (its None fields mean "derived").
        tls: a PEM file holding a certificate and its key: serve https:// instead.
    """

    def __init__(
        self,
        *,
        port: int = 0,
        pace: float | None = None,
        chunk_tokens: int = 1,
        default: Reply | None = None,
        tls: str | None = None,
    ) -> None:
        self.port = port
        self.tls = tls
        self.pace = pace
        self.chunk_tokens = chunk_tokens
        self.default = default or Reply()
        self.cache = PromptCache()
        self.models_requests = 0
        """How many times a `/models` list was asked for."""
        self.requests: list[RecordedRequest] = []
        """Every request received, in arrival order."""
        self.steps: list[ProducedStep] = []
        """Every reply produced (reasoning, content, tool calls), in order: what replays are checked against."""
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._connections: set[socket.socket] = set()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle ------------------------------------------------------------------------------------

    def start(self) -> GlmServer:
        httpd = _HTTPServer(("127.0.0.1", self.port), _Handler)
        httpd.glm = self
        if self.tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.tls)
            # Handshake in the handler thread, so a client that rejects the certificate can't block accept().
            httpd.socket = context.wrap_socket(httpd.socket, server_side=True, do_handshake_on_connect=False)
        self._httpd = httpd
        self.port = httpd.server_address[1]
        self._stop.clear()
        self._thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True, name="glm-server")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, end stalled replies and close every open connection."""
        self._stop.set()
        httpd, self._httpd = self._httpd, None
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> GlmServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- API for tests ----------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """Base URL, e.g. http://127.0.0.1:40123 (append /{host_id})."""
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def base_url(self, host_id: str) -> str:
        """The base_url a host profile needs to talk to this server in its dialect."""
        return f"{self.url}/{host_id}"

    def host(self, host_id: str, **overrides: Any) -> Any:
        """The built-in glmchat host `host_id`, pointed at this server (needs glmchat importable)."""
        from glmchat.hosts import BUILTIN_HOSTS

        return BUILTIN_HOSTS[host_id].with_overrides({"base_url": self.base_url(host_id), **overrides})

    def enqueue(self, *replies: Reply) -> None:
        """Script the next responses, in order; the default reply answers once the queue is empty."""
        with self._lock:
            self._queue.extend(replies)

    @property
    def queued(self) -> int:
        with self._lock:
            return len(self._queue)

    def reset(self) -> None:
        """Forget requests, scripted replies and the prompt cache."""
        with self._lock:
            self._queue.clear()
            self.requests.clear()
            self.steps.clear()
        self.cache.clear()

    @property
    def last(self) -> RecordedRequest:
        """The most recent chat request."""
        return self.chat_requests()[-1]

    def chat_requests(self) -> list[RecordedRequest]:
        """Requests to a host endpoint (not the control endpoints), oldest first."""
        with self._lock:
            return [r for r in self.requests if r.host_id is not None]

    def produced_steps(self) -> list[ProducedStep]:
        with self._lock:
            return list(self.steps)

    @property
    def replay_problems(self) -> list[str]:
        """Every replay problem of every request so far, each prefixed with its request's number."""
        return [f"request {i}: {p}" for i, r in enumerate(self.chat_requests()) for p in r.replay_problems]

    def wait_for(self, predicate: Any, timeout: float = 5.0) -> bool:
        """Wait until predicate(server) is true; False on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if predicate(self):
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    # -- internals ----------------------------------------------------------------------------------------

    def _record(self, record: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(record)
            self._arrived.notify_all()

    def _add_step(self, host_id: str, body: Any, plan: Plan, record: RecordedRequest, chunk_tokens: int | None) -> None:
        messages = body.get("messages") if isinstance(body, dict) else None
        reasoning = "".join(plan.reasoning)
        details: list[dict[str, Any]] = []
        if host_id == "openrouter" and plan.reasoning:
            size = chunk_tokens or len(plan.reasoning)
            details = reasoning_details_items(
                "".join(plan.reasoning[i : i + size]) for i in range(0, len(plan.reasoning), size)
            )
        with self._lock:
            self.steps.append(
                ProducedStep(
                    serial=len(self.steps),
                    host_id=host_id,
                    context=tuple(_skeleton(messages if isinstance(messages, list) else [])),
                    reasoning=reasoning,
                    content="".join(plan.content),
                    tool_calls=[dict(c) for c in plan.tool_calls],
                    reasoning_details=details,
                    record=record,
                )
            )

    def _next_reply(self) -> Reply:
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            if add:
                self._connections.add(conn)
            else:
                self._connections.discard(conn)


# -- standalone --------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Loopback GLM-4.7 server speaking every host dialect.")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--pace", type=float, default=None, help="tokens per second (default: unthrottled)")
    parser.add_argument("--chunk", type=int, default=1, help="tokens per chunk")
    parser.add_argument("--reasoning-tokens", type=int, default=None, help="default reply: this many corpus tokens of reasoning")
    parser.add_argument("--content-tokens", type=int, default=None, help="default reply: this many corpus tokens of answer")
    args = parser.parse_args(argv)

    default = Reply()
    if args.reasoning_tokens is not None:
        default.reasoning = corpus_tokens(args.reasoning_tokens, seed=1)
    if args.content_tokens is not None:
        default.content = corpus_tokens(args.content_tokens, seed=2)
    server = GlmServer(port=args.port, pace=args.pace, chunk_tokens=args.chunk, default=default)
    server.start()
    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"READY {server.url}", flush=True)
    try:
        done.wait()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
