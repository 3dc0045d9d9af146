"""Property: any text streamed into a turn, saved in pieces and reloaded, is identical, and goes back
to the host in the next request exactly as the host produced it."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmchat.hosts import BUILTIN_HOSTS
from glmchat.protocol import build_request, encode_body
from glmchat.protocol.events import ContentDelta, Finish, ReasoningDelta, ToolCallDelta
from glmchat.session import Session
from glmchat.store import Store

# Pieces that break naive storage: line ends, trailing blanks, NUL, lone and
# split surrogate halves, markup that means something to the template or Markdown.
NASTY = ["\r\n", "\r", "\n", "  ", " \n", "\t", "```", "`", "</think>", "<think>", "\x00", "\ud800", "\udfff",
         "\ud83d", "\ude00", "😀", "中文字", "\u200b", "\ufeff", "\\", '"', "\x1b[31m"]

any_char = st.characters(exclude_categories=())  # every code point, surrogates included
surrogate = st.characters(categories=["Cs"])  # rare in any_char: drawn on purpose
text = st.lists(
    st.one_of(st.text(any_char, max_size=8), st.sampled_from(NASTY), surrogate), max_size=12
).map("".join)


@st.composite
def stream(draw: st.DrawFn) -> tuple[list[tuple[str, str]], list[int], list[int]]:
    """Deltas of (kind, text) plus the indexes after which to save progress and to sync."""
    reasoning = draw(text)
    content = draw(text)
    pieces: list[tuple[str, str]] = []
    for kind, full in (("r", reasoning), ("c", content)):
        cuts = sorted(draw(st.lists(st.integers(0, len(full)), max_size=6)))
        bounds = [0, *cuts, len(full)]
        pieces += [(kind, full[a:b]) for a, b in zip(bounds, bounds[1:]) if b > a]
    args = draw(text)
    if args:
        cut = draw(st.integers(0, len(args)))
        pieces += [("t", args[:cut]), ("t", args[cut:])]
    saves = draw(st.lists(st.integers(0, max(0, len(pieces) - 1)), max_size=6))
    syncs = draw(st.lists(st.integers(0, max(0, len(pieces) - 1)), max_size=3))
    return pieces, saves, syncs


def play(store: Store, session: Session, user_text: str, deltas: tuple) -> tuple:
    pieces, saves, syncs = deltas
    turn = session.new_turn(user_text, thinking=True)
    store.begin_turn(session, turn)
    for i, (kind, piece) in enumerate(pieces):
        if kind == "r":
            turn.apply(ReasoningDelta(piece))
        elif kind == "c":
            turn.apply(ContentDelta(piece))
        else:
            turn.apply(ToolCallDelta(0, "call_0", "tool", piece))
        if i in syncs:
            turn.sync()
        if i in saves:
            store.save_progress(turn)
    return turn


def joined(pieces: list[tuple[str, str]], kind: str) -> str:
    return "".join(p for k, p in pieces if k == kind)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user_text=text, deltas=stream())
def test_text_survives_streaming_saves(user_text: str, deltas: tuple) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(Path(folder), verify=False)
        session = Session(system_prompt=user_text)
        turn = play(store, session, user_text, deltas)
        store.save_progress(turn)

        # While it streams: another store sees exactly what was saved (the same
        # path rebuilds a crashed turn).
        with Store.open(Path(folder), verify=False) as other:
            seen = other.load_session(session.id).turns[0]
        pieces = deltas[0]
        assert seen.reasoning == joined(pieces, "r")
        assert seen.content == joined(pieces, "c")
        assert (seen.step.tool_calls[0].arguments if seen.step.tool_calls else "") == joined(pieces, "t")

        turn.apply(Finish("stop"))
        turn.finish()
        store.finish_turn(turn)
        store.close()
        with Store.open(Path(folder), verify=False) as fresh:
            loaded = fresh.load_session(session.id)
        assert loaded.to_dict() == session.to_dict()
        assert loaded.turns[0].user_text == user_text
        assert loaded.turns[0].reasoning == joined(pieces, "r")
        assert loaded.turns[0].content == joined(pieces, "c")


def as_host_reads_it(value: str) -> str:
    """What a JSON decoder on the host makes of a str we send: a split surrogate pair is one character."""
    return value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")


@settings(max_examples=40, deadline=None)
@given(deltas=stream(), next_text=text)
def test_reloaded_reasoning_goes_back_exactly(deltas: tuple, next_text: str) -> None:
    host = BUILTIN_HOSTS["zai"]
    with tempfile.TemporaryDirectory() as folder:
        with Store.open(Path(folder), verify=False) as store:
            session = Session(host="zai", preserve_thinking=True)
            turn = play(store, session, "first question", deltas)
            turn.apply(Finish("stop"))
            turn.finish()
            store.finish_turn(turn)
        with Store.open(Path(folder), verify=False) as store:
            loaded = store.load_session(session.id)
    follow_up = loaded.new_turn(next_text, thinking=True)
    body = json.loads(encode_body(build_request(host, loaded, follow_up).body))
    [assistant] = [m for m in body["messages"] if m["role"] == "assistant"]
    pieces = deltas[0]
    reasoning = joined(pieces, "r")
    if reasoning:
        assert assistant["reasoning_content"] == as_host_reads_it(reasoning)
    else:
        assert "reasoning_content" not in assistant
    assert assistant["content"] == as_host_reads_it(joined(pieces, "c"))
    assert body["messages"][-1]["content"] == as_host_reads_it(next_text)
