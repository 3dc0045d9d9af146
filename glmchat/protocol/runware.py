"""Runware's task API: one `textInference` task in a JSON array, results over SSE.

Runware documents the envelope but not the streamed field names (protocol.md
§6, UNCONFIRMED): every name we read is in `FIELDS` below, in one place, and
each has the spellings seen or likely (camelCase first, snake_case after).
The task has no field for earlier reasoning, so none is ever sent: preserved
thinking is not expressible on this host.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from glmchat import hosts as H
from glmchat.protocol import classify
from glmchat.protocol.common import Request, deep_merge, json_headers
from glmchat.protocol.events import Event, UsageUpdate
from glmchat.protocol.decoding import SSEEvent
from glmchat.protocol.messages import history_for, model_for, sampling, turn_thinking
from glmchat.protocol.parser import Malformed, SSEParser, as_int, as_number, dig, first_str, loads, text_deltas
from glmchat.session import Session, Turn
from glmchat.usage import Usage


@dataclass(frozen=True)
class RunwareFields:
    """Where each piece sits in a streamed (or sync) `textInference` result."""

    envelope: str = "data"
    delta: str = "delta"
    text: tuple[str, ...] = ("text", "content")
    reasoning: tuple[str, ...] = ("reasoningContent", "reasoning_content", "reasoning")
    finish: tuple[str, ...] = ("finishReason", "finish_reason")
    usage: str = "usage"
    cost: str = "cost"
    errors: tuple[str, ...] = ("errors", "error")
    prompt_tokens: tuple[str, ...] = ("promptTokens", "prompt_tokens", "inputTokens", "input_tokens")
    completion_tokens: tuple[str, ...] = ("completionTokens", "completion_tokens", "outputTokens", "output_tokens")
    cached_tokens: tuple[tuple[str, ...], ...] = (
        ("promptTokensDetails", "cachedTokens"),
        ("prompt_tokens_details", "cached_tokens"),
        ("cachedTokens",),
        ("cached_tokens",),
    )
    reasoning_tokens: tuple[tuple[str, ...], ...] = (
        ("completionTokensDetails", "reasoningTokens"),
        ("completion_tokens_details", "reasoning_tokens"),
        ("reasoningTokens",),
        ("reasoning_tokens",),
    )


FIELDS = RunwareFields()

TASK_TYPE = "textInference"


def build_request(
    host: H.Host, session: Session, turn: Turn, *, stream: bool = True, tools: list[dict[str, Any]] | None = None
) -> Request:
    """A one-task array. Messages carry role and content only; reasoning never goes back.

    The task API has no tool messages, so a turn is its whole answer text.

    Raises:
        ConfigError: tools were asked for (the task API has none).
    """
    if tools:
        from glmchat.errors import ConfigError

        raise ConfigError(f"{host.name}: the task API has no tools — turn the session's tools off for this host", host=host.name)
    messages: list[dict[str, Any]] = []
    for past in history_for(session, turn):
        messages.append({"role": "user", "content": past.user_text})
        messages.append({"role": "assistant", "content": past.content})
    messages.append({"role": "user", "content": turn.user_text})
    settings: dict[str, Any] = {}
    if session.system_prompt:
        settings["systemPrompt"] = session.system_prompt
    settings.update(sampling(session, "temperature", "topP", "maxTokens"))
    if host.thinking_style != H.ThinkingStyle.NONE:
        choice = turn_thinking(host, session, turn)
        settings["thinkingLevel"] = (choice.level or host.thinking_level) if choice.thinking else "none"
    task: dict[str, Any] = {
        "taskType": TASK_TYPE,
        "taskUUID": str(uuid.uuid4()),
        "model": model_for(host, session, turn),
        "deliveryMethod": "stream" if stream else "sync",
        "includeUsage": True,
        "includeCost": True,
        "messages": messages,
    }
    if settings:
        task["settings"] = settings
    if host.extra_body:
        deep_merge(task, host.extra_body)
    accept = "text/event-stream" if stream else "application/json"
    return Request(url=host.url, body=[task], headers=json_headers(accept), stream=stream)


class RunwareParser(SSEParser):
    """SSE results (`{"data":[…]}` or bare objects) or one sync body, into events."""

    def _parse_body(self, raw: bytes, out: list[Event]) -> None:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise Malformed(raw[:80].decode("utf-8", "replace")) from None
        if text.strip():
            self._payload(loads(text), out)
            self._end(out)

    def _on_event(self, event: SSEEvent, out: list[Event]) -> None:
        stripped = event.data.strip()
        if stripped == "[DONE]":
            self._end(out)
        elif stripped:
            self._payload(loads(stripped), out)

    def _payload(self, payload: Any, out: list[Event]) -> None:
        if isinstance(payload, list):
            results = payload
        elif isinstance(payload, dict):
            if _has_errors(payload):
                self._fail(classify.classify_payload(self.host, payload), out)
                return
            inner = payload.get(FIELDS.envelope)
            if isinstance(inner, list):
                results = inner
            elif isinstance(inner, dict):
                results = [inner]
            else:
                results = [payload]
        else:
            raise Malformed(str(payload)[:80])
        for result in results:
            if not isinstance(result, dict):
                continue
            if _has_errors(result):
                self._fail(classify.classify_payload(self.host, result), out)
                return
            task_type = result.get("taskType")
            if task_type not in (None, TASK_TYPE):
                continue
            self._result(result, out)

    def _result(self, result: dict[str, Any], out: list[Event]) -> None:
        delta = result.get(FIELDS.delta)
        source = delta if isinstance(delta, dict) else result  # sync results carry the text at the top
        text_deltas(first_str(source, FIELDS.reasoning), first_str(source, FIELDS.text), out)
        for name in FIELDS.finish:
            self._set_finish(result.get(name) or (delta.get(name) if isinstance(delta, dict) else None))
        usage = _usage(result.get(FIELDS.usage), result.get(FIELDS.cost))
        if usage is not None:
            out.append(usage)


def _has_errors(obj: dict[str, Any]) -> bool:
    return any(obj.get(name) for name in FIELDS.errors)


def _first_int(obj: dict[str, Any], names: tuple[str, ...]) -> int | None:
    for name in names:
        value = as_int(obj.get(name))
        if value is not None:
            return value
    return None


def _first_path(obj: dict[str, Any], paths: tuple[tuple[str, ...], ...]) -> int | None:
    for path in paths:
        value = as_int(dig(obj, *path))
        if value is not None:
            return value
    return None


def _usage(usage: Any, cost: Any) -> UsageUpdate | None:
    found = Usage(cost=as_number(cost))
    if isinstance(usage, dict):
        found.prompt_tokens = _first_int(usage, FIELDS.prompt_tokens)
        found.completion_tokens = _first_int(usage, FIELDS.completion_tokens)
        found.cached_tokens = _first_path(usage, FIELDS.cached_tokens)
        found.reasoning_tokens = _first_path(usage, FIELDS.reasoning_tokens)
        if found.cost is None:
            found.cost = as_number(usage.get(FIELDS.cost))
    if all(value is None for value in found.to_dict().values()):
        return None
    return UsageUpdate(found)


def new_parser(host: H.Host, *, stream: bool = True) -> RunwareParser:
    """A parser for one response from `host`."""
    return RunwareParser(host, stream=stream)
