"""Byte-exact reasoning: host stream -> parser -> Turn -> next request -> wire -> what the host decodes.

Whatever the text (emoji, CJK, `\\r\\n`, trailing spaces, tabs, backticks,
`</think>`, NUL, lone surrogates sent as `\\ud800` escapes) and wherever the
network splits the bytes, the reasoning sent back equals the reasoning the
host produced, in the host's replay field.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmchat.protocol import build_request, encode_body
from glmchat.session import Session, TurnStatus

from tests.wire_helpers import fold, host, host_stream, parse, split_at

SPECIAL = st.sampled_from([
    "\r\n", "\r", "\n", "  ", " \n", "\t", "`", "```", "</think>", "<think>", "\x00", "\x1b[31m", "😀", "中文",
    "\u2028", "\ufeff", "\\", '"', "data: [DONE]\n\n", ": comment\n", "\\ud800",
])
LONE_SURROGATE = st.characters(categories=["Cs"])
PIECE = st.one_of(st.text(max_size=6), SPECIAL, LONE_SURROGATE)


def no_surrogate_pair(text: str) -> bool:
    # A high surrogate followed by a low one is, to any JSON decoder, the character the
    # pair spells: such a str cannot survive JSON unchanged, whoever encodes it.
    return not any("\ud800" <= a <= "\udbff" and "\udc00" <= b <= "\udfff" for a, b in zip(text, text[1:]))


TEXT = st.lists(PIECE, min_size=1, max_size=10).map("".join).filter(no_surrogate_pair)


def cut_text(data: st.DataObject, text: str) -> list[str]:
    """The text as the deltas a host might send (no empty ones)."""
    cuts = data.draw(st.lists(st.integers(1, max(1, len(text) - 1)), max_size=6))
    points = sorted({c for c in cuts if 0 < c < len(text)})
    pieces, start = [], 0
    for point in [*points, len(text)]:
        pieces.append(text[start:point])
        start = point
    return [p for p in pieces if p]


# One host per replay field.
REPLAY_HOSTS = {
    "zai": "reasoning_content",
    "vllm": "reasoning",
    "cerebras": "think_tags",
    "openrouter": "reasoning_details",
    "ollama": "thinking",
}


@pytest.mark.parametrize("host_id", sorted(REPLAY_HOSTS))
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(data=st.data())
def test_reasoning_round_trips_byte_exact(host_id: str, data: st.DataObject) -> None:
    h = host(host_id)
    reasoning = data.draw(TEXT.filter(bool), label="reasoning")
    content = data.draw(TEXT | st.just(""), label="content")
    r_pieces, c_pieces = cut_text(data, reasoning), cut_text(data, content)
    wire = host_stream(
        h, r_pieces, c_pieces,
        eol=data.draw(st.sampled_from(["\n", "\r\n", "\r"]), label="eol"),
        ascii_only=data.draw(st.booleans(), label="ascii_only"),
    )
    if h.dialect == "chat" and data.draw(st.booleans(), label="comment"):
        wire = b": OPENROUTER PROCESSING\n\n" + wire
    cuts = data.draw(st.lists(st.integers(1, len(wire) - 1), max_size=40), label="cuts")

    session = Session(host=host_id, model=h.default_model)
    turn = session.new_turn("first", thinking=True)
    fold(turn, parse(h, split_at(wire, cuts)))
    assert turn.status == TurnStatus.COMPLETE
    assert turn.reasoning == reasoning
    assert turn.content == content

    # Through the session's own JSON form too (what export/import and the store keep).
    session = Session.from_dict(json.loads(encode_body(session.to_dict())))
    nxt = session.new_turn("second", thinking=data.draw(st.booleans(), label="thinking_next"))
    sent = json.loads(encode_body(build_request(h, session, nxt).body))
    assistant = sent["messages"][1]
    assert assistant["role"] == "assistant"
    field = REPLAY_HOSTS[host_id]
    if field == "think_tags":
        assert assistant == {"role": "assistant", "content": "<think>" + reasoning + "</think>" + content}
    elif field == "reasoning_details":
        assert assistant["content"] == content
        assert assistant["reasoning_details"] == [
            {"type": "reasoning.text", "text": piece, "format": "unknown", "index": 0} for piece in r_pieces
        ]
    else:
        assert assistant == {"role": "assistant", "content": content, field: reasoning}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(texts=st.lists(TEXT, min_size=1, max_size=4))
def test_encode_body_round_trips_any_str(texts: list[str]) -> None:
    body = {"messages": [{"role": "assistant", "content": t, "reasoning_content": t[::-1]} for t in texts if no_surrogate_pair(t[::-1])]}
    raw = encode_body(body)
    raw.decode("utf-8")
    assert json.loads(raw) == body
