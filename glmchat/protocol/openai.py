"""OpenAI-style chat completions, for every CHAT host, shaped by the Host knobs.

Where the hosts differ (design.md §4, protocol.md §0 and §8):

- `thinking_style`: how this turn's thinking is switched on or off;
- `preserve_style`: where `clear_thinking` goes (sent both ways wherever the
  host has the switch, because the Z.ai Coding Plan defaults to preserved);
- `replay_field`: which field carries earlier reasoning back;
- `max_tokens_field`, `stream_usage`, `extra_body`.

Decision on Cerebras: its `clear_thinking` "requires reasoning enabled", so on
a turn with thinking off (`reasoning_effort: "none"`) the switch is left out
(`Host.preserve_needs_thinking`). Earlier reasoning is still sent in
`<think>` tags; the host's default then drops it for that one request, and the
next turn with thinking on preserves it again.
"""

from __future__ import annotations

from typing import Any

from glmchat import hosts as H
from glmchat.protocol import classify
from glmchat.protocol.common import Request, deep_merge, json_headers
from glmchat.protocol.events import Event, ReasoningDetailsDelta, ToolCallDelta, WebSearchResults
from glmchat.protocol.decoding import SSEEvent
from glmchat.models import ThinkingChoice
from glmchat.protocol.messages import conversation, model_for, sampling, tool_result_text, turn_thinking
from glmchat.protocol.parser import Malformed, SSEParser, as_int, loads, openai_usage, text_deltas, tool_arguments
from glmchat.session import Session, Step, ToolCall, ToolResult, Turn

# -- request ---------------------------------------------------------------------------------


def build_request(
    host: H.Host, session: Session, turn: Turn, *, stream: bool = True, tools: list[dict[str, Any]] | None = None
) -> Request:
    """The chat-completions request for `turn`'s current step: history, tools, thinking switch, sampling, extras."""
    body: dict[str, Any] = {
        "model": model_for(host, session, turn),
        "messages": build_messages(host, session, turn),
        "stream": stream,
    }
    offered = [*(tools or []), *web_search_tool(host, session)]
    if offered:
        body["tools"] = offered
        body["tool_choice"] = "auto"  # GLM accepts only "auto"
    if stream and host.stream_usage:
        body["stream_options"] = {"include_usage": True}
    body.update(sampling(session, "temperature", "top_p", host.max_tokens_field or "max_tokens"))
    choice = turn_thinking(host, session, turn)
    _apply_thinking(body, host, choice)
    _apply_preserve(body, host, session.preserve_thinking, choice.thinking)
    if host.extra_body:
        deep_merge(body, host.extra_body)
    accept = "text/event-stream" if stream else "application/json"
    return Request(url=host.url, body=body, headers=json_headers(accept), stream=stream)


WEB_SEARCH = {"enable": True, "search_engine": "search_pro", "search_result": True}
"""Z.ai's built-in web search as documented; `search_result` asks for the sources to come back."""


def supports_web_search(host: H.Host) -> bool:
    """Z.ai and BigModel run a web search for the model themselves (the `web_search` tool type)."""
    return host.thinking_style == H.ThinkingStyle.ZAI


def web_search_tool(host: H.Host, session: Session) -> list[dict[str, Any]]:
    """The built-in web search entry of `tools`, when the session has it on and the host offers it."""
    if not (session.web_search and supports_web_search(host)):
        return []
    return [{"type": "web_search", "web_search": dict(WEB_SEARCH)}]


def build_messages(host: H.Host, session: Session, turn: Turn) -> list[dict[str, Any]]:
    """System prompt, every replayable earlier turn step by step, this turn's text and its done steps."""
    messages: list[dict[str, Any]] = []
    if session.system_prompt:
        messages.append({"role": "system", "content": session.system_prompt})
    messages.extend(
        conversation(host, session, turn, assistant=lambda step, replay: assistant_message(host, step, replay), tool=tool_message)
    )
    return messages


def assistant_message(host: H.Host, step: Step, replay: bool) -> dict[str, Any]:
    """A step of an earlier reply as the host wants it back; reasoning exactly as stored, when replayed."""
    content = step.content
    message: dict[str, Any] = {"role": "assistant", "content": content}
    if replay:
        field = host.replay_field
        if field == H.ReplayField.REASONING_DETAILS:
            if step.reasoning_details:
                message["reasoning_details"] = step.reasoning_details
        elif step.reasoning:
            if field == H.ReplayField.THINK_TAGS:
                message["content"] = "<think>" + step.reasoning + "</think>" + content
            elif field in (H.ReplayField.REASONING_CONTENT, H.ReplayField.REASONING):
                message[field] = step.reasoning
    if step.tool_calls:
        message["tool_calls"] = [_tool_call(call) for call in step.tool_calls]
    return message


def tool_message(step: Step, result: ToolResult) -> dict[str, Any]:  # noqa: ARG001 - one shape for every dialect
    """The answer to one call, right after the step that made it (one per call, in call order)."""
    message: dict[str, Any] = {"role": "tool", "content": tool_result_text(result)}
    if result.call_id:
        message["tool_call_id"] = result.call_id
    return message


def _tool_call(call: ToolCall) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if call.id:
        out["id"] = call.id
    out["type"] = call.type or "function"
    out["function"] = {"name": call.name, "arguments": call.arguments}
    return out


def _apply_thinking(body: dict[str, Any], host: H.Host, choice: ThinkingChoice) -> None:
    """The turn's thinking switch, and its level where the model has levels (in the host's field for it)."""
    on, level = choice.thinking, choice.level
    style = host.thinking_style
    if style == H.ThinkingStyle.ZAI:
        body["thinking"] = {"type": "enabled" if on else "disabled"}
        if level is not None:
            body[host.level_field] = level
    elif style == H.ThinkingStyle.EFFORT:
        if not on:  # reasoning is on by default where this knob exists
            body["reasoning_effort"] = "none"
        elif level is not None:
            body[host.level_field] = level
    elif style == H.ThinkingStyle.OPENROUTER:
        if not on:
            body["reasoning"] = {"effort": "none"}
        else:
            body["reasoning"] = {"effort": level} if level is not None else {"enabled": True}
    elif style == H.ThinkingStyle.TEMPLATE:
        body.setdefault("chat_template_kwargs", {})["enable_thinking"] = on
        if level is not None:
            body[host.level_field] = level


def _apply_preserve(body: dict[str, Any], host: H.Host, preserve: bool, thinking: bool) -> None:
    if host.preserve_needs_thinking and not thinking:
        return
    style = host.preserve_style
    clear = not preserve
    if style == H.PreserveStyle.ZAI:
        body.setdefault("thinking", {})["clear_thinking"] = clear
    elif style == H.PreserveStyle.TOP:
        body["clear_thinking"] = clear
    elif style == H.PreserveStyle.TEMPLATE:
        body.setdefault("chat_template_kwargs", {})["clear_thinking"] = clear


# -- response --------------------------------------------------------------------------------


class ChatParser(SSEParser):
    """Chat-completion chunks (SSE) or one non-streaming body, into events."""

    def _parse_body(self, raw: bytes, out: list[Event]) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed(raw[:80].decode("utf-8", "replace")) from None
        if not text.strip():
            return  # nothing arrived: the base reports an early end
        self._chunk(loads(text), out)
        if not self._done:
            self._end(out)  # a whole body is a finished answer, finish_reason or not

    def _on_event(self, event: SSEEvent, out: list[Event]) -> None:
        data = event.data
        stripped = data.strip()
        if event.event == "error":
            payload: Any = stripped
            if stripped[:1] in ("{", "["):
                try:
                    payload = loads(stripped)
                except Malformed:
                    pass
            self._fail(classify.classify_payload(self.host, payload), out)
            return
        if stripped == "[DONE]":
            self._end(out)
            return
        if not stripped:
            return
        try:
            payload = loads(data)
        except Malformed:
            if "\n" not in data:
                raise
            # A server that forgot the blank lines between events: one JSON per data line.
            for line in data.split("\n"):
                line = line.strip()
                if line == "[DONE]":
                    self._end(out)
                elif line:
                    self._chunk(loads(line), out)
                if self._done:
                    return
            return
        self._chunk(payload, out)

    def _chunk(self, payload: Any, out: list[Event]) -> None:
        if not isinstance(payload, dict):
            raise Malformed(str(payload)[:80])
        if _is_error(payload):
            self._fail(classify.classify_payload(self.host, payload), out)
            return
        choices = payload.get("choices")
        if isinstance(choices, list):
            for choice in choices:
                if not isinstance(choice, dict) or choice.get("index", 0) not in (0, None):
                    continue  # we never ask for n > 1
                delta = choice.get("delta")
                if not isinstance(delta, dict):
                    delta = choice.get("message")
                if isinstance(delta, dict):
                    self._delta(delta, out)
                self._set_finish(choice.get("finish_reason"))
        sources = payload.get("web_search")
        if isinstance(sources, list):
            items = [item for item in sources if isinstance(item, dict)]
            if items:
                out.append(WebSearchResults(items))
        update = openai_usage(payload.get("usage"), payload.get("timings"))
        if update is not None:
            out.append(update)

    def _delta(self, delta: dict[str, Any], out: list[Event]) -> None:
        # reasoning_content first, else reasoning; never both (vLLM once sent both, same text).
        reasoning = delta.get("reasoning_content")
        if not (isinstance(reasoning, str) and reasoning):
            reasoning = delta.get("reasoning")
        text_deltas(reasoning, delta.get("content"), out)
        details = delta.get("reasoning_details")
        if isinstance(details, list):
            items = [item for item in details if isinstance(item, dict)]
            if items:
                out.append(ReasoningDetailsDelta(items))
        calls = delta.get("tool_calls")
        if isinstance(calls, list):
            for position, call in enumerate(calls):
                if isinstance(call, dict):
                    out.append(_tool_call_delta(call, position))


def _is_error(payload: dict[str, Any]) -> bool:
    if payload.get("error"):
        return True
    if payload.get("object") == "error":
        return True
    # Cerebras' top-level shape {"message","type","code"} (no choices).
    return "choices" not in payload and isinstance(payload.get("message"), str) and ("type" in payload or "code" in payload)


def _tool_call_delta(call: dict[str, Any], position: int) -> ToolCallDelta:
    index = as_int(call.get("index"))
    function = call.get("function")
    if not isinstance(function, dict):
        function = {}
    name = function.get("name")
    call_id = call.get("id")
    return ToolCallDelta(
        index=position if index is None else index,
        id=call_id if isinstance(call_id, str) and call_id else None,
        name=name if isinstance(name, str) and name else None,
        arguments=tool_arguments(function.get("arguments")),
    )


def new_parser(host: H.Host, *, stream: bool = True) -> ChatParser:
    """A parser for one response from `host`."""
    return ChatParser(host, stream=stream)
