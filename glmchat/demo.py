"""The demo host: answers written by glmchat itself, in GLM's stream shape, with no key and no network.

`glmchat --host demo` on a fresh machine shows every part of the app: a turn's
reasoning streaming and folding, a Markdown answer with a code block and a
table, thinking levels, preserved thinking and what it does to the prompt cache.

It is a host like the others. The request is built by the same code, goes
through the same HTTP client and the same parser, and the turn is stored the
same way; only the transport differs: an in-process httpx transport answers
the POST with Server-Sent Events shaped like Z.ai's (`reasoning_content`
deltas, then `content` deltas, then a usage chunk with
`prompt_tokens_details.cached_tokens` and `completion_tokens_details.reasoning_tokens`).

The cached tokens are worked out honestly, the way a prompt cache works: the
request is rendered to one prompt string (each message's role, earlier
reasoning where it is sent back, and text), and the cached part is its longest
common prefix with an earlier prompt and what was generated after it. So a
session that replays its reasoning byte for byte sees nearly all of its prompt
cached, and one that drops it (preserved thinking off) loses the cache from
the previous answer on (that answer is read again without its reasoning).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from glmchat.client import GlmClient

CHARS_PER_TOKEN = 4
"""The demo counts a token as this many characters (a real tokenizer is not at hand)."""

_MAX_REMEMBERED = 64
"""Earlier prompts kept for the cache (the oldest is forgotten first)."""


def render_prompt(messages: list[dict[str, Any]], thinking: bool) -> str:
    """The messages as one prompt string, in the order a chat template lays them out."""
    out: list[str] = []
    for message in messages:
        role = str(message.get("role", ""))
        out.append(f"<|{role}|>")
        if role == "assistant":
            reasoning = message.get("reasoning_content")
            out.append(f"<think>{reasoning}</think>" if isinstance(reasoning, str) and reasoning else "</think>")
        content = message.get("content")
        out.append(content if isinstance(content, str) else json.dumps(content, ensure_ascii=False))
    out.append("<|assistant|>" + ("<think>" if thinking else "</think>"))
    return "".join(out)


def _common_prefix(a: str, b: str) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for message in reversed(messages):
        if message.get("role") == "user" and isinstance(message.get("content"), str):
            return message["content"]
    return ""


def reasoning_for(question: str, level: str | None, turn_number: int) -> str:
    """The demo's reasoning: a few lines about the question (longer at a higher level)."""
    topic = " ".join(question.split())[:80] or "an empty message"
    lines = [
        f"The user wrote: \"{topic}\". This is message {turn_number} of the session.",
        "This is glmchat's demo host, so no model is thinking here: these lines stream in the reasoning pane "
        "the way a GLM model's reasoning_content would, and fold when the answer starts.",
        "I will answer with a short Markdown document: a heading, a list, a code block and a table.",
    ]
    if level:
        lines.append(f"The turn asked for thinking level {level!r}; the request carried it, as a real host would get it.")
    if level in ("xhigh", "max"):
        lines.append("A higher level means a longer think: here, one more line, and more reasoning tokens in the usage.")
    return "\n".join(lines) + "\n"


def answer_for(question: str, turn_number: int, prompt_tokens: int, cached_tokens: int) -> str:
    """The demo's Markdown answer (it differs from turn to turn, so the cache figures change)."""
    topic = " ".join(question.split())[:60] or "(empty)"
    share = f"{cached_tokens / prompt_tokens:.0%}" if prompt_tokens else "–"
    return (
        f"## Demo answer {turn_number}\n\n"
        f"You asked: *{topic}*. This answer comes from glmchat's built-in **demo host**: offline, no key, "
        "no model. It shows what a GLM answer looks like here.\n\n"
        "- **Thinking**: Ctrl+T switches it, or cycles the model's levels (try model `glm-5.3`).\n"
        "- **Preserved thinking**: earlier reasoning goes back byte for byte, so the prompt cache hits.\n"
        "- **Cache cockpit**: each turn's footer shows prompt, cached, reasoning and answer tokens.\n\n"
        "```python\n"
        "def cache_hit(prompt: int, cached: int) -> float:\n"
        '    """The share of the prompt read from the cache."""\n'
        "    return cached / prompt if prompt else 0.0\n"
        "```\n\n"
        "| this request | tokens |\n"
        "|---|---:|\n"
        f"| prompt | {prompt_tokens:,} |\n"
        f"| cached | {cached_tokens:,} |\n"
        f"| cache hit | {share} |\n"
    )


def _pieces(text: str, size: int = 12) -> list[str]:
    """The text in small pieces, as a stream delivers it (the pieces join back to the exact text)."""
    return [text[i : i + size] for i in range(0, len(text), size)]


class DemoTransport(httpx.AsyncBaseTransport):
    """An httpx transport that answers chat-completion requests with the demo's stream.

    Args:
        delay: Seconds between two chunks (0: as fast as possible; tests use 0).
    """

    def __init__(self, delay: float = 0.012) -> None:
        self.delay = delay
        self._seen: list[str] = []
        self.requests: list[dict[str, Any]] = []
        """Every request body received, in order (what the demo was asked)."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.endswith("/models"):
            data = [{"id": name, "object": "model", "owned_by": "glmchat-demo"} for name in _demo_models()]
            return httpx.Response(200, json={"object": "list", "data": data})
        if request.method != "POST" or not request.url.path.endswith("/chat/completions"):
            return httpx.Response(404, json={"error": {"code": "404", "message": "the demo host answers chat completions only"}})
        raw = await request.aread()
        try:
            body = json.loads(raw)
        except ValueError:
            return httpx.Response(400, json={"error": {"code": "1210", "message": "the request body is not JSON"}})
        self.requests.append(body)
        messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
        thinking_field = body.get("thinking")
        thinking = not (isinstance(thinking_field, dict) and thinking_field.get("type") == "disabled")
        level = body.get("reasoning_effort") if isinstance(body.get("reasoning_effort"), str) else None

        prompt = render_prompt(messages, thinking)
        cached_chars = max((_common_prefix(prompt, seen) for seen in self._seen), default=0)
        prompt_tokens = -(-len(prompt) // CHARS_PER_TOKEN)
        cached_tokens = min(cached_chars // CHARS_PER_TOKEN, prompt_tokens)
        turn_number = sum(1 for m in messages if m.get("role") == "user")
        question = _last_user_text(messages)
        reasoning = reasoning_for(question, level, turn_number) if thinking else ""
        content = answer_for(question, turn_number, prompt_tokens, cached_tokens)
        generation = (reasoning + "</think>" if thinking else "") + content
        self._seen.append(prompt + generation)
        del self._seen[:-_MAX_REMEMBERED]

        reasoning_tokens = -(-len(reasoning) // CHARS_PER_TOKEN)
        completion_tokens = reasoning_tokens + -(-len(content) // CHARS_PER_TOKEN)
        usage = {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
            "prompt_tokens_details": {"cached_tokens": cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": reasoning_tokens},
        }
        model = str(body.get("model") or "glm-4.7")
        stream = _DemoStream(model, reasoning, content, usage, self.delay)
        return httpx.Response(200, headers={"content-type": "text/event-stream"}, stream=stream)


class _DemoStream(httpx.AsyncByteStream):
    def __init__(self, model: str, reasoning: str, content: str, usage: dict[str, Any], delay: float) -> None:
        self.model = model
        self.reasoning = reasoning
        self.content = content
        self.usage = usage
        self.delay = delay

    def _frame(self, delta: dict[str, Any] | None, **extra: Any) -> bytes:
        choice: dict[str, Any] = {"index": 0, "delta": delta or {}}
        if "finish_reason" in extra:
            choice["finish_reason"] = extra.pop("finish_reason")
        payload = {"id": "demo", "created": 0, "model": self.model, "choices": [choice], **extra}
        return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in _pieces(self.reasoning):
            yield self._frame({"role": "assistant", "reasoning_content": piece})
            await asyncio.sleep(self.delay)
        for piece in _pieces(self.content):
            yield self._frame({"role": "assistant", "content": piece})
            await asyncio.sleep(self.delay)
        yield self._frame({}, finish_reason="stop", usage=self.usage)
        yield b"data: [DONE]\n\n"


def demo_client(**options: Any) -> GlmClient:
    """A client whose requests the demo answers (one per process: its prompt cache lives in it)."""
    from glmchat.client import GlmClient

    options.setdefault("max_retries", 0)
    return GlmClient(transport=DemoTransport(), **options)


def _demo_models() -> list[str]:
    from glmchat.models import MODELS

    return list(MODELS)
