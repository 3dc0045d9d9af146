"""estimate_tokens: the fast count of wide characters agrees with the definition, character by character."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from glmchat.session import Session, Step, Turn
from glmchat.usage import request_estimate as estimate_request_tokens, estimate_tokens


def reference(text: str) -> int:
    if not text:
        return 0
    wide = sum(1 for ch in text if ord(ch) >= 0x2E80)
    return max(1, round((len(text) - wide) / 3.5 + wide))


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=0x10FFFF), max_size=200))
def test_matches_the_per_character_definition(text: str) -> None:
    assert estimate_tokens(text) == reference(text)


def test_edges_of_the_wide_range_and_lone_surrogates() -> None:
    for text in ["\u2e7f", "\u2e80", "\U0010ffff", "\ud800x", "ab\udfffcd", "中文 and English 🚀", "a" * 7]:
        assert estimate_tokens(text) == reference(text)
    assert estimate_tokens("") == 0
    assert estimate_tokens("a") == 1


def test_request_estimate_counts_history_reasoning_only_when_preserved() -> None:
    turn = Turn(user_text="hello", thinking=True, status="complete", finish_reason="stop", steps=[Step(reasoning="思考" * 50, content="answer " * 20)])
    session = Session(turns=[turn], preserve_thinking=True)
    with_reasoning = estimate_request_tokens(session, "next")
    session.preserve_thinking = False
    without = estimate_request_tokens(session, "next")
    assert with_reasoning - without == 100
