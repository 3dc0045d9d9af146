"""Fuzzing the parsers: whatever bytes arrive, split however, they never raise, never hang,
and always end with exactly one Finish or StreamFailed (after close() at the latest)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmchat.protocol import new_parser
from glmchat.protocol.events import Finish, StreamFailed

from tests.wire_helpers import assert_well_ended, host, host_stream, split_at

# (host id, streaming): every parser class in both modes.
TARGETS = [("zai", True), ("openrouter", True), ("cerebras", False), ("ollama", True), ("ollama", False),
           ("runware", True), ("runware", False)]
IDS = [f"{h}-{'stream' if s else 'body'}" for h, s in TARGETS]

# Pieces that steer random input into the parsers' deeper paths.
SOUP = st.sampled_from([
    b"data: ", b"data:", b"event: error\n", b": c\n", b"\n", b"\r", b"\r\n", b"\n\n", b"{", b"}", b"[", b"]", b",", b":",
    b"[DONE]", b'"choices"', b'"delta"', b'"message"', b'"content"', b'"reasoning_content"', b'"reasoning"',
    b'"reasoning_details"', b'"tool_calls"', b'"function"', b'"arguments"', b'"index"', b'"finish_reason"', b'"stop"',
    b'"usage"', b'"prompt_tokens"', b'"error"', b'"errors"', b'"code"', b'"status_code"', b'"done"', b'"done_reason"',
    b'"thinking"', b'"data"', b'"delta"', b'"text"', b'"reasoningContent"', b'"x"', b'"\\ud800"', b'"\\u00e9"',
    b"null", b"true", b"false", b"0", b"-1", b"1e999", b"429", b"\xff", b"\xe4\xb8", b"\xad", b"\x00", b"\xef\xbb\xbf",
])


def run(host_id: str, stream: bool, data: bytes, cuts: list[int]) -> list:
    parser = new_parser(host(host_id), stream=stream)
    events = []
    for piece in split_at(data, cuts):
        events += parser.feed(piece)
        if parser.done:
            assert parser.feed(b"data: more\n\n") == []
    events += parser.close()
    assert parser.close() == [] and parser.feed(b"x") == []
    return events


@pytest.mark.parametrize(("host_id", "stream"), TARGETS, ids=IDS)
@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=20))
def test_random_bytes(host_id: str, stream: bool, data: bytes, cuts: list[int]) -> None:
    assert_well_ended(run(host_id, stream, data, cuts))


@pytest.mark.parametrize(("host_id", "stream"), TARGETS, ids=IDS)
@settings(max_examples=80, deadline=None)
@given(pieces=st.lists(SOUP, max_size=60), cuts=st.lists(st.integers(0, 600), max_size=20))
def test_structured_soup(host_id: str, stream: bool, pieces: list[bytes], cuts: list[int]) -> None:
    assert_well_ended(run(host_id, stream, b"".join(pieces), cuts))


MUTATIONS = st.lists(
    st.tuples(st.sampled_from(["delete", "insert", "flip", "truncate"]), st.integers(0, 10_000), st.integers(1, 12), SOUP),
    min_size=1, max_size=4,
)


def mutate(data: bytes, mutations: list[tuple[str, int, int, bytes]]) -> bytes:
    buf = bytearray(data)
    for kind, position, length, piece in mutations:
        if not buf:
            break
        at = position % len(buf)
        if kind == "delete":
            del buf[at:at + length]
        elif kind == "insert":
            buf[at:at] = piece
        elif kind == "flip":
            buf[at] ^= 1 << (length % 8)
        else:
            del buf[at:]
    return bytes(buf)


@pytest.mark.parametrize("host_id", ["zai", "openrouter", "ollama", "runware"])
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutations=MUTATIONS, cuts=st.lists(st.integers(0, 2000), max_size=25))
def test_mutated_real_streams(host_id: str, mutations: list, cuts: list[int]) -> None:
    wire = host_stream(host(host_id), ["Let me ", "think 中文 😀", "\r\n"], ["Answer ", "`code`"], ascii_only=False)
    assert_well_ended(run(host_id, True, mutate(wire, mutations), cuts))


@pytest.mark.parametrize("host_id", ["zai", "openrouter", "ollama", "runware"])
@settings(max_examples=30, deadline=None)
@given(cuts=st.lists(st.integers(0, 2000), max_size=40))
def test_unmutated_streams_end_with_finish_whatever_the_split(host_id: str, cuts: list[int]) -> None:
    wire = host_stream(host(host_id), ["R1", "R2"], ["C"], ascii_only=False)
    events = run(host_id, True, wire, cuts)
    assert_well_ended(events)
    assert events[-1] == Finish("stop")


def test_absurd_nesting_is_a_malformed_chunk_not_a_crash() -> None:
    for host_id, stream in TARGETS:
        deep = b"[" * 200_000 + b"]" * 200_000
        data = deep if not stream or host_id == "ollama" else b"data: " + deep + b"\n\n"
        events = run(host_id, stream, data, [])
        assert_well_ended(events)
        assert isinstance(events[-1], StreamFailed), host_id


# -- well-formed JSON, wrong types: each field usually right, sometimes anything ---------------

import json  # noqa: E402

ANY_KEY = st.sampled_from(["content", "text", "code", "message", "type", "index", "error", "data", "usage", "x"])
LEAF = st.one_of(st.none(), st.booleans(), st.integers(-3, 600), st.floats(allow_nan=False), st.text(max_size=4),
                 st.sampled_from(["stop", "length", "1302", "429", "textInference", '{"error":{"code":"1305"}}']))
ANYTHING = st.recursive(LEAF, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(ANY_KEY, inner, max_size=3), max_leaves=8)
TEXT = st.text(max_size=4)


def maybe(strategy: st.SearchStrategy) -> st.SearchStrategy:
    return st.one_of(strategy, strategy, strategy, ANYTHING)


def some(**fields: st.SearchStrategy) -> st.SearchStrategy:
    return st.fixed_dictionaries({}, optional={k: maybe(v) for k, v in fields.items()})


USAGE = some(prompt_tokens=st.integers(0, 9), completion_tokens=st.integers(0, 9), cost=st.floats(0, 1),
             prompt_tokens_details=some(cached_tokens=st.integers(0, 9)),
             completion_tokens_details=some(reasoning_tokens=st.integers(0, 9)), reasoning_tokens=st.integers(0, 9))
ERROR = st.one_of(st.none(), some(code=st.sampled_from(["1302", 429, 502, "server_error"]), message=TEXT, type=TEXT), TEXT)
DELTA = some(role=st.just("assistant"), content=TEXT, reasoning_content=TEXT | st.none(), reasoning=TEXT,
             reasoning_details=st.lists(some(type=st.just("reasoning.text"), text=TEXT), max_size=2),
             tool_calls=st.lists(some(index=st.integers(0, 2), id=TEXT, function=some(name=TEXT, arguments=TEXT | some(a=TEXT))), max_size=2))
CHAT = some(choices=st.lists(some(index=st.just(0), delta=DELTA, message=DELTA, finish_reason=st.sampled_from(["stop", "length", None])), max_size=2),
            usage=USAGE, timings=some(cache_n=st.integers(0, 9)), error=ERROR, status_code=st.sampled_from([429, 500]),
            object=st.sampled_from(["chat.completion.chunk", "error"]), message=TEXT, type=TEXT)
OLLAMA = some(message=some(role=st.just("assistant"), content=TEXT, thinking=TEXT,
                           tool_calls=st.lists(some(function=some(index=st.integers(0, 2), name=TEXT, arguments=some(a=TEXT))), max_size=2)),
              done=st.booleans(), done_reason=st.sampled_from(["stop", "length"]), prompt_eval_count=st.integers(0, 9),
              eval_count=st.integers(0, 9), error=ERROR)
RESULT = some(taskType=st.just("textInference"), delta=some(text=TEXT, reasoningContent=TEXT, reasoning_content=TEXT),
              text=TEXT, finishReason=st.sampled_from(["stop", "length"]), cost=st.floats(0, 1),
              usage=some(promptTokens=st.integers(0, 9), completionTokensDetails=some(reasoningTokens=st.integers(0, 9))),
              errors=st.lists(some(code=TEXT, message=TEXT), max_size=1))
RUNWARE = st.one_of(some(data=st.lists(RESULT, max_size=2)), RESULT)
GRAMMAR = {"zai": CHAT, "openrouter": CHAT, "ollama": OLLAMA, "runware": RUNWARE}


@pytest.mark.parametrize("host_id", sorted(GRAMMAR))
# Generating nested chunks is the slow part; a long run (4,000 examples) found nothing more.
@settings(max_examples=35, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), done=st.booleans(), stream=st.booleans(), cuts=st.lists(st.integers(0, 3000), max_size=10))
def test_typed_chunks(host_id: str, data: st.DataObject, done: bool, stream: bool, cuts: list[int]) -> None:
    chunks = data.draw(st.lists(GRAMMAR[host_id], min_size=1, max_size=5))
    encoded = [json.dumps(c, ensure_ascii=data.draw(st.booleans())).encode() for c in chunks]
    if host_id == "ollama":
        wire = b"".join(e + b"\n" for e in encoded)
    elif stream:
        wire = b"".join(b"data: " + e + b"\n\n" for e in encoded) + (b"data: [DONE]\n\n" if done else b"")
    else:
        wire = encoded[0]
    assert_well_ended(run(host_id, stream, wire, cuts))
