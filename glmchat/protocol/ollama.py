"""Ollama's native `/api/chat`: NDJSON, `think: bool`, reasoning in `thinking`.

Ollama renders GLM-4.7 with its own renderer, which always keeps earlier
thinking that is sent (there is no `clear_thinking`): so "preserved thinking
off" simply means not sending it (protocol.md §4.3).
"""

from __future__ import annotations

import json
from typing import Any

from glmchat import hosts as H
from glmchat.protocol import classify
from glmchat.protocol.common import Request, deep_merge, json_headers
from glmchat.protocol.events import Event, ToolCallDelta, UsageUpdate
from glmchat.protocol.decoding import LineDecoder
from glmchat.protocol.messages import conversation, model_for, sampling, tool_result_text, turn_thinking
from glmchat.protocol.parser import BaseParser, Malformed, as_int, loads, text_deltas, tool_arguments
from glmchat.session import Session, Step, ToolCall, ToolResult, Turn
from glmchat.usage import Usage


def build_request(
    host: H.Host, session: Session, turn: Turn, *, stream: bool = True, tools: list[dict[str, Any]] | None = None
) -> Request:
    """The `/api/chat` request for `turn`'s current step (Ollama takes the OpenAI-style `tools` array)."""
    messages: list[dict[str, Any]] = []
    if session.system_prompt:
        messages.append({"role": "system", "content": session.system_prompt})
    messages.extend(conversation(host, session, turn, assistant=lambda step, replay: assistant_message(host, step, replay), tool=tool_message))
    body: dict[str, Any] = {"model": model_for(host, session, turn), "messages": messages, "stream": stream}
    if tools:
        body["tools"] = tools
    if host.thinking_style != H.ThinkingStyle.NONE:
        body["think"] = turn_thinking(host, session, turn).thinking
    options = sampling(session, "temperature", "top_p", "num_predict")
    if options:
        body["options"] = options
    if host.extra_body:
        deep_merge(body, host.extra_body)
    return Request(url=host.url, body=body, headers=json_headers("application/x-ndjson"), stream=stream)


def assistant_message(host: H.Host, step: Step, replay: bool) -> dict[str, Any]:  # noqa: ARG001 - one shape for every dialect
    """A step of an earlier reply as Ollama wants it back: reasoning in `thinking`, call arguments as objects."""
    message: dict[str, Any] = {"role": "assistant", "content": step.content}
    if replay and step.reasoning:
        message["thinking"] = step.reasoning
    if step.tool_calls:
        message["tool_calls"] = [_tool_call(call) for call in step.tool_calls]
    return message


def tool_message(step: Step, result: ToolResult) -> dict[str, Any]:  # noqa: ARG001 - one shape for every dialect
    """The answer to one call: Ollama's calls carry no id, so the result names its tool."""
    # Ollama answers calls by tool name (its calls carry no id).
    return {"role": "tool", "content": tool_result_text(result), "tool_name": result.name}


def _tool_call(call: ToolCall) -> dict[str, Any]:
    # Ollama takes arguments as an object; ours are the JSON string as streamed.
    try:
        arguments = json.loads(call.arguments) if call.arguments else {}
    except ValueError:
        arguments = {}
    return {"function": {"name": call.name, "arguments": arguments if isinstance(arguments, dict) else {}}}


class OllamaParser(BaseParser):
    """NDJSON objects, one per line; a streaming and a non-streaming body parse alike."""

    def __init__(self, host: H.Host, *, stream: bool = True) -> None:
        super().__init__(host)
        self._lines = LineDecoder(host.name)
        self._next_tool_index = 0

    def _feed(self, data: bytes, out: list[Event]) -> None:
        for line in self._lines.feed(data):
            self._line(line, out)
            if self._done:
                return
        if self._lines.failure is not None:
            raise self._lines.failure

    def _close(self, out: list[Event]) -> None:
        for line in self._lines.close():
            self._line(line, out)
            if self._done:
                return
        if self._lines.failure is not None:
            raise self._lines.failure

    def _line(self, line: str, out: list[Event]) -> None:
        if not line.strip():
            return
        payload = loads(line)
        if not isinstance(payload, dict):
            raise Malformed(line[:80])
        if payload.get("error"):
            self._fail(classify.classify_payload(self.host, payload), out)
            return
        message = payload.get("message")
        if isinstance(message, dict):
            text_deltas(message.get("thinking"), message.get("content"), out)
            calls = message.get("tool_calls")
            if isinstance(calls, list):
                for call in calls:
                    if isinstance(call, dict):
                        out.append(self._tool_call_delta(call))
        if payload.get("done") is True:
            usage = Usage(
                prompt_tokens=as_int(payload.get("prompt_eval_count")),
                completion_tokens=as_int(payload.get("eval_count")),
            )
            if usage.prompt_tokens is not None or usage.completion_tokens is not None:
                out.append(UsageUpdate(usage))
            self._set_finish(payload.get("done_reason"))
            self._end(out)

    def _tool_call_delta(self, call: dict[str, Any]) -> ToolCallDelta:
        # Ollama sends each call whole; newer versions number them in function.index.
        function = call.get("function")
        if not isinstance(function, dict):
            function = {}
        index = as_int(function.get("index"))
        if index is None:
            index = self._next_tool_index
        self._next_tool_index = max(self._next_tool_index, index + 1)
        name = function.get("name")
        call_id = call.get("id")
        return ToolCallDelta(
            index=index,
            id=call_id if isinstance(call_id, str) and call_id else None,
            name=name if isinstance(name, str) and name else None,
            arguments=tool_arguments(function.get("arguments")),
        )


def new_parser(host: H.Host, *, stream: bool = True) -> OllamaParser:
    """A parser for one response from `host`."""
    return OllamaParser(host, stream=stream)
