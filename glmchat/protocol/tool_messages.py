"""Wire shapes around tool calls that differ by dialect: offering tools, sending results back.

Pure functions, no I/O. What they encode (protocol.md §1.2, §4.3):

- chat completions (Z.ai, Cerebras, OpenRouter, vLLM, SGLang, llama.cpp) take the
  OpenAI ``tools`` array and a result as ``{"role": "tool", "tool_call_id", "content"}``;
- Ollama's native ``/api/chat`` takes the same ``tools`` array, but its calls carry
  no id, so a result names its tool: ``{"role": "tool", "content", "tool_name"}``;
- Runware's task API has no tools at all.
"""

from __future__ import annotations

from typing import Any

from glmchat import hosts as H


def supports_tools(host: H.Host) -> bool:
    """Whether requests to `host` can offer tools."""
    return host.dialect in (H.Dialect.CHAT, H.Dialect.OLLAMA)


def tools_fields(host: H.Host, tools: list[dict[str, Any]]) -> dict[str, Any]:
    """The request fields that offer `tools` (chat-completions entries) to `host`; {} when there are none."""
    if not tools or not supports_tools(host):
        return {}
    return {"tools": tools}


def tool_result_message(host: H.Host, *, call_id: str | None, name: str, content: str) -> dict[str, Any]:
    """The message that answers one tool call, after the assistant message that made it (one per call, in order)."""
    if host.dialect == H.Dialect.OLLAMA:
        return {"role": "tool", "content": content, "tool_name": name}
    return {"role": "tool", "tool_call_id": call_id or "", "content": content}
