"""Request bodies: each host's thinking switch, clear_thinking, replay field, sampling and extras."""

from __future__ import annotations

import json
import uuid

import pytest

from glmchat.errors import ConfigError
from glmchat.hosts import BUILTIN_HOSTS
from glmchat.protocol import Request, build_request, encode_body
from glmchat.session import Session, ToolCall, Turn, TurnStatus

from tests.wire_helpers import fold, host, host_stream, parse, split_at

HOST_IDS = sorted(BUILTIN_HOSTS)
R1 = "Think \r\n  step 1\t`x` </think> 中文 😀 \x00 end  "
C1 = "Answer one \r\n```py\nprint(1)\n```  "


def done_turn(session: Session, text: str, *, thinking: bool, reasoning: str = "", content: str = "", status: str = TurnStatus.COMPLETE) -> Turn:
    turn = session.new_turn(text, thinking=thinking)
    turn.step.reasoning = reasoning
    turn.step.content = content
    turn.status = status
    return turn


def body_for(host_id: str, *, thinking: bool, preserve: bool) -> tuple[dict | list, Turn]:
    h = host(host_id)
    session = Session(host=host_id, model=h.default_model, preserve_thinking=preserve)
    done_turn(session, "first", thinking=True, reasoning=R1, content=C1)
    turn = session.new_turn("second", thinking=thinking)
    request = build_request(h, session, turn)
    # What goes on the wire is what the host decodes.
    return json.loads(encode_body(request.body)), turn


# -- the thinking / preserve matrix ----------------------------------------------------------

ZAI_LIKE = ("zai", "zai-coding", "bigmodel", "demo")  # the demo host speaks Z.ai's wire shape
TEMPLATE = ("vllm", "sglang", "llamacpp")


def expected_switches(host_id: str, thinking: bool, preserve: bool) -> dict:
    """The thinking-related top-level fields each host must get (written out by hand from protocol.md)."""
    if host_id in ZAI_LIKE:
        return {"thinking": {"type": "enabled" if thinking else "disabled", "clear_thinking": not preserve}}
    if host_id == "cerebras":
        # clear_thinking "requires reasoning enabled": only sent on thinking turns.
        return {"clear_thinking": not preserve} if thinking else {"reasoning_effort": "none"}
    if host_id == "openrouter":
        return {"reasoning": {"enabled": True} if thinking else {"effort": "none"}}
    if host_id in TEMPLATE:
        return {"chat_template_kwargs": {"enable_thinking": thinking, "clear_thinking": not preserve}}
    if host_id == "ollama":
        return {"think": thinking}
    raise AssertionError(host_id)


SWITCH_KEYS = {"thinking", "clear_thinking", "reasoning_effort", "reasoning", "chat_template_kwargs", "think"}


@pytest.mark.parametrize("preserve", [True, False], ids=["preserve", "clear"])
@pytest.mark.parametrize("thinking", [True, False], ids=["think", "nothink"])
@pytest.mark.parametrize("host_id", HOST_IDS)
def test_thinking_and_preserve_switches(host_id: str, thinking: bool, preserve: bool) -> None:
    body, _ = body_for(host_id, thinking=thinking, preserve=preserve)
    if host_id == "runware":
        (task,) = body
        assert task["settings"]["thinkingLevel"] == ("high" if thinking else "none")
        assert not SWITCH_KEYS & set(task)
        return
    switches = {k: v for k, v in body.items() if k in SWITCH_KEYS}
    assert switches == expected_switches(host_id, thinking, preserve)


def expected_replay(host_id: str, preserve: bool) -> dict:
    """The assistant message for the earlier turn (reasoning R1, answer C1)."""
    base = {"role": "assistant", "content": C1}
    if not preserve or host_id == "runware":
        return base
    if host_id in ("zai", "zai-coding", "bigmodel", "demo", "sglang", "llamacpp"):
        return {**base, "reasoning_content": R1}
    if host_id == "vllm":
        return {**base, "reasoning": R1}
    if host_id == "cerebras":
        return {"role": "assistant", "content": "<think>" + R1 + "</think>" + C1}
    if host_id == "ollama":
        return {**base, "thinking": R1}
    if host_id == "openrouter":
        return base  # replays reasoning_details only, and this turn has none
    raise AssertionError(host_id)


@pytest.mark.parametrize("preserve", [True, False], ids=["preserve", "clear"])
@pytest.mark.parametrize("thinking", [True, False], ids=["think", "nothink"])
@pytest.mark.parametrize("host_id", HOST_IDS)
def test_replay_of_earlier_reasoning(host_id: str, thinking: bool, preserve: bool) -> None:
    body, _ = body_for(host_id, thinking=thinking, preserve=preserve)
    messages = body[0]["messages"] if host_id == "runware" else body["messages"]
    assert messages[0] == {"role": "user", "content": "first"}
    assert messages[1] == expected_replay(host_id, preserve)
    assert messages[2] == {"role": "user", "content": "second"}
    assert len(messages) == 3


@pytest.mark.parametrize("host_id", HOST_IDS)
def test_common_fields(host_id: str) -> None:
    h = host(host_id)
    session = Session(host=host_id, model=h.default_model, system_prompt="Be terse.", temperature=0.7, top_p=0.9, max_tokens=1234)
    request = build_request(h, session, session.new_turn("hi"))
    assert isinstance(request, Request)
    assert request.url == h.url and request.stream is True
    assert not any(k.lower() == "authorization" for k in request.headers)
    assert request.headers["Content-Type"] == "application/json"
    body = request.body
    if host_id == "runware":
        (task,) = body
        assert task["taskType"] == "textInference" and task["deliveryMethod"] == "stream"
        assert uuid.UUID(task["taskUUID"]).version == 4
        assert task["includeUsage"] is True and task["includeCost"] is True
        assert task["model"] == "zai-glm-4-7"
        assert task["messages"] == [{"role": "user", "content": "hi"}]
        settings = task["settings"]
        assert (settings["systemPrompt"], settings["temperature"], settings["topP"], settings["maxTokens"]) == ("Be terse.", 0.7, 0.9, 1234)
        return
    assert body["model"] == h.default_model and body["stream"] is True
    assert body["messages"][0] == {"role": "system", "content": "Be terse."}
    if host_id == "ollama":
        assert body["options"] == {"temperature": 0.7, "top_p": 0.9, "num_predict": 1234}
        assert "stream_options" not in body
        return
    assert (body["temperature"], body["top_p"]) == (0.7, 0.9)
    field = "max_completion_tokens" if host_id == "cerebras" else "max_tokens"
    assert body[field] == 1234
    assert body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("host_id", HOST_IDS)
def test_unset_sampling_is_omitted_and_no_system_message(host_id: str) -> None:
    h = host(host_id)
    session = Session(host=host_id, temperature=None, top_p=None, max_tokens=None)
    body = build_request(h, session, session.new_turn("hi")).body
    text = json.dumps(body)
    for name in ("temperature", "top_p", "topP", "max_tokens", "max_completion_tokens", "maxTokens", "num_predict", "systemPrompt", '"system"'):
        assert name not in text, name


def test_stream_usage_off_and_non_streaming() -> None:
    h = host("vllm").with_overrides({"stream_usage": False})
    session = Session(host="vllm")
    assert "stream_options" not in build_request(h, session, session.new_turn("a")).body
    request = build_request(host("zai"), session, session.turns[-1], stream=False)
    assert request.stream is False and request.body["stream"] is False
    assert "stream_options" not in request.body
    assert request.headers["Accept"] == "application/json"
    runware = build_request(host("runware"), session, session.turns[-1], stream=False)
    assert runware.body[0]["deliveryMethod"] == "sync"


def test_extra_body_merges_recursively_and_reaches_the_runware_task() -> None:
    h = host("sglang").with_overrides({"extra_body": {"chat_template_kwargs": {"x": 1}, "separate_reasoning": True}})
    session = Session(host="sglang")
    body = build_request(h, session, session.new_turn("a", thinking=False)).body
    assert body["chat_template_kwargs"] == {"enable_thinking": False, "clear_thinking": False, "x": 1}
    assert body["separate_reasoning"] is True
    rw = host("runware").with_overrides({"extra_body": {"model": "zai:glm@4.7", "settings": {"topK": 20}}, "thinking_level": "medium"})
    (task,) = build_request(rw, session, session.turns[-1]).body
    assert task["model"] == "zai:glm@4.7"
    assert task["settings"]["topK"] == 20 and task["settings"]["temperature"] == 1.0
    # extra_body is copied, never mutated by later requests
    assert rw.extra_body == {"model": "zai:glm@4.7", "settings": {"topK": 20}}
    (task,) = build_request(rw, session, session.new_turn("b", thinking=True)).body
    assert task["settings"]["thinkingLevel"] == "medium"


def test_cerebras_sends_clear_thinking_on_thinking_off_turns_when_allowed() -> None:
    h = host("cerebras").with_overrides({"preserve_needs_thinking": False})
    session = Session(host="cerebras")
    body = build_request(h, session, session.new_turn("a", thinking=False)).body
    assert body["clear_thinking"] is False and body["reasoning_effort"] == "none"


def test_openrouter_replays_reasoning_details_raw_and_nothing_else() -> None:
    h = host("openrouter")
    session = Session(host="openrouter")
    first = done_turn(session, "q", thinking=True, reasoning="R", content="C")
    details = [{"type": "reasoning.text", "text": "R", "format": "unknown", "index": 0, "signature": None},
               {"type": "reasoning.encrypted", "data": "abc=="}]
    first.step.reasoning_details = details
    body = build_request(h, session, session.new_turn("next")).body
    assert body["messages"][1] == {"role": "assistant", "content": "C", "reasoning_details": details}
    session.preserve_thinking = False
    body = build_request(h, session, session.turns[-1]).body
    assert body["messages"][1] == {"role": "assistant", "content": "C"}


def test_tool_calls_are_replayed_with_the_original_argument_string() -> None:
    session = Session(host="zai")
    first = done_turn(session, "weather?", thinking=True, reasoning="need tool", content="Checking.")
    first.step.tool_calls = [ToolCall(index=0, id="call_1", name="weather", arguments='{"location": "Florence"}')]
    body = build_request(host("zai"), session, session.new_turn("thanks")).body
    assert body["messages"][1]["tool_calls"] == [
        {"id": "call_1", "type": "function", "function": {"name": "weather", "arguments": '{"location": "Florence"}'}}
    ]
    body = build_request(host("ollama"), session, session.turns[-1]).body
    assert body["messages"][1]["tool_calls"] == [{"function": {"name": "weather", "arguments": {"location": "Florence"}}}]


@pytest.mark.parametrize("status", [TurnStatus.ERROR, TurnStatus.STOPPED, TurnStatus.TRUNCATED])
def test_broken_turns_are_not_replayed_unless_included(status: str) -> None:
    session = Session(host="zai")
    done_turn(session, "one", thinking=True, reasoning="R-one", content="C-one")
    done_turn(session, "two", thinking=True, reasoning="R-two", content="C-tw", status=status)
    turn = session.new_turn("three")
    messages = build_request(host("zai"), session, turn).body["messages"]
    assert [m["content"] for m in messages] == ["one", "C-one", "three"]
    session.turns[1].include_in_context = True
    messages = build_request(host("zai"), session, turn).body["messages"]
    assert [m["content"] for m in messages] == ["one", "C-one", "two", "C-tw", "three"]
    assert messages[3]["reasoning_content"] == "R-two"
    session.turns[0].include_in_context = False
    messages = build_request(host("zai"), session, turn).body["messages"]
    assert [m["content"] for m in messages] == ["two", "C-tw", "three"]


def test_request_for_an_earlier_turn_replays_only_what_came_before_it() -> None:
    session = Session(host="zai")
    first = done_turn(session, "one", thinking=True, reasoning="R1", content="C1")
    done_turn(session, "two", thinking=True, reasoning="R2", content="C2")
    messages = build_request(host("zai"), session, first).body["messages"]
    assert messages == [{"role": "user", "content": "one"}]
    # A turn not (yet) in the session sees every replayable turn.
    loose = Turn(user_text="three", thinking=True)
    messages = build_request(host("zai"), session, loose).body["messages"]
    assert [m["content"] for m in messages] == ["one", "C1", "two", "C2", "three"]


def test_an_unknown_dialect_cannot_be_set() -> None:
    with pytest.raises(ValueError) as info:
        host("zai").with_overrides({"dialect": "grpc"})
    assert "grpc" in str(info.value) and "'chat', 'ollama', 'runware'" in str(info.value)


# -- a 3-turn session with thinking toggled per turn, parsed from real-looking streams ----------

PATTERNS = {"on-off-on": (True, False, True), "on-on-off": (True, True, False), "off-on-on": (False, True, True)}


@pytest.mark.parametrize("pattern", sorted(PATTERNS))
@pytest.mark.parametrize("host_id", HOST_IDS)
def test_three_turns_with_thinking_toggled(host_id: str, pattern: str) -> None:
    h = host(host_id)
    session = Session(host=host_id, model=h.default_model)
    replies = {
        0: (["R1 \r\n", "😀 中", "文\x00</think>  "], ["C1 \r\n", "```"]),
        1: (["  R2\t", "\\\"", "\n"], ["C2"]),
    }
    thinking = PATTERNS[pattern]
    bodies = []
    for n in range(3):
        turn = session.new_turn(f"user {n}", thinking=thinking[n])
        bodies.append(json.loads(encode_body(build_request(h, session, turn).body)))
        if n == 2:
            break
        reasoning, content = replies[n]
        if not thinking[n]:
            reasoning = []
        data = host_stream(h, reasoning, content, eol="\r\n" if n else "\n")
        fold(turn, parse(h, split_at(data, range(1, len(data), 5))))
        assert turn.status == TurnStatus.COMPLETE
        assert turn.reasoning == "".join(reasoning) and turn.content == "".join(content)

    third = bodies[2][0] if host_id == "runware" else bodies[2]
    messages = [m for m in third["messages"] if m["role"] != "system"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant", "user"]
    assert messages[-1]["content"] == "user 2"
    for n, message in zip((0, 1), (messages[1], messages[3])):
        reasoning = "".join(replies[n][0]) if thinking[n] else ""
        content = "".join(replies[n][1])
        fields = set(message) - {"role", "content"}
        if not reasoning or host_id == "runware":
            assert fields == set() and message["content"] == content
        elif host_id == "cerebras":
            assert fields == set() and message["content"] == "<think>" + reasoning + "</think>" + content
        elif host_id == "openrouter":
            assert fields == {"reasoning_details"} and message["content"] == content
            assert "".join(item["text"] for item in message["reasoning_details"]) == reasoning
        else:
            (field,) = fields
            assert field == {"vllm": "reasoning", "ollama": "thinking"}.get(host_id, "reasoning_content")
            assert message[field] == reasoning and message["content"] == content
    # The thinking switch follows the third turn's flag only.
    if host_id in ZAI_LIKE:
        assert third["thinking"]["type"] == ("enabled" if thinking[2] else "disabled")
        assert third["thinking"]["clear_thinking"] is False
    elif host_id == "ollama":
        assert third["think"] is thinking[2]


# -- encode_body -------------------------------------------------------------------------------


def test_encode_body_is_compact_utf8_and_exact() -> None:
    body = {"a": "中文 😀 \x00 \r\n \u2028", "b": [1, 2.5, None, True]}
    raw = encode_body(body)
    assert raw == json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    assert "中文".encode() in raw and b": " not in raw
    assert json.loads(raw) == body


def test_encode_body_escapes_lone_surrogates_so_they_decode_identically() -> None:
    text = "a\ud800b\udfffc\udc00"
    raw = encode_body({"reasoning_content": text, "list": ["\ud83d", "😀"]})
    raw.decode("utf-8")  # valid UTF-8
    assert b"\\ud800" in raw and b"\\udfff" in raw
    assert json.loads(raw) == {"reasoning_content": text, "list": ["\ud83d", "😀"]}
    assert json.loads(encode_body([{"k\udc80": "v"}])) == [{"k\udc80": "v"}]


def test_encode_body_refuses_nan() -> None:
    with pytest.raises(ValueError):
        encode_body({"temperature": float("nan")})
