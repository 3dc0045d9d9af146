"""The status line's figures: cost, context fullness and what it says about thinking, without a screen."""

from __future__ import annotations

import dataclasses

import pytest

from glmchat.hosts import BUILTIN_HOSTS
from glmchat.session import Session
from glmchat.usage import Usage, request_estimate as estimate_request_tokens
from glmchat.ui.widgets.status import StatusFacts, status_content
from glmchat.usage import compact_count, context_used, session_cost, turn_cost
from tests.ui_support import stored_turn


def test_turn_cost_uses_cached_price_for_cached_tokens():
    host = BUILTIN_HOSTS["zai"]  # glm-4.7: 0.60 in, 0.11 cached, 2.20 out per million
    turn = stored_turn(1)
    turn.step.usage = Usage(prompt_tokens=1_000_000, cached_tokens=400_000, completion_tokens=100_000)
    assert turn_cost(turn, host) == pytest.approx(0.6 * 0.6 + 0.4 * 0.11 + 0.1 * 2.2)


def test_reported_cost_wins_and_unknown_prices_give_none():
    turn = stored_turn(1)
    turn.step.usage = Usage(prompt_tokens=10, completion_tokens=10, cost=0.5)
    assert turn_cost(turn, BUILTIN_HOSTS["vllm"]) == 0.5
    turn.step.usage = Usage(prompt_tokens=10, completion_tokens=10)
    assert turn_cost(turn, BUILTIN_HOSTS["vllm"]) is None
    session = Session(turns=[turn])
    turn.host = "vllm"
    assert session_cost(session) is None


def test_context_used_counts_from_the_last_report_and_estimates_the_rest():
    first, second = stored_turn(1), stored_turn(2)
    second.step.usage = Usage()  # the newest turn reported nothing
    session = Session(turns=[first, second])
    base = first.usage.prompt_tokens + first.usage.completion_tokens
    used = context_used(session, "next question")
    assert used > base
    assert used - base < estimate_request_tokens(session, "next question")
    # Nothing reported at all: the full estimate.
    first.step.usage = Usage()
    assert context_used(session, "x") == estimate_request_tokens(session, "x")


def test_status_says_what_the_host_cannot_do():
    runware = BUILTIN_HOSTS["runware"]
    facts = StatusFacts(host=runware, model="zai-glm-4-7", thinking_next=True, preserve=True, session=Session())
    text = status_content(facts).plain
    assert "preserved thinking: not supported on Runware" in text
    fixed = dataclasses.replace(BUILTIN_HOSTS["zai"], thinking_style="none")
    facts = StatusFacts(host=fixed, model="glm-4.7", thinking_next=False, preserve=False, session=Session())
    text = status_content(facts).plain
    assert "thinking: set by host" in text and "preserved thinking off" in text


def test_status_shows_the_last_turns_tokens_cost_and_context():
    turn = stored_turn(2)
    turn.step.usage = Usage(prompt_tokens=12_000, cached_tokens=9_000, completion_tokens=1_500, reasoning_tokens=500)
    facts = StatusFacts(host=BUILTIN_HOSTS["zai"], model="glm-4.7", thinking_next=False, preserve=True, session=Session(turns=[turn]))
    text = status_content(facts).plain
    assert "next turn: thinking off" in text
    assert "last turn 12,000 in · 9,000 cached (75% hit) · 500 reasoning · 1,000 answer" in text
    assert "session $0.0" in text
    assert "context 7% of 200k" in text


def test_compact_counts():
    assert [compact_count(n) for n in (999, 1_000, 12_345, 131_072, 200_000)] == ["999", "1k", "12.3k", "131k", "200k"]


def test_request_estimate_matches_the_session_estimate_and_follows_changes():
    from glmchat.session import TurnStatus
    from glmchat.usage import request_estimate

    turns = [stored_turn(n, reasoning="思考 " * (10 * n), content="word " * (50 * n)) for n in range(1, 6)]
    turns[1].include_in_context = False
    turns[2].thinking = False
    session = Session(system_prompt="Be brief.", turns=turns)
    assert request_estimate(session, "next") == estimate_request_tokens(session, "next")
    # Counted again once asked again (cached), and after a settled turn's text changes.
    assert request_estimate(session, "next") == estimate_request_tokens(session, "next")
    turns[3].step.content += " more words" * 40
    assert request_estimate(session, "next") == estimate_request_tokens(session, "next")
    session.preserve_thinking = not session.preserve_thinking
    assert request_estimate(session, "next") == estimate_request_tokens(session, "next")
    turns[1].include_in_context = True
    assert request_estimate(session, "next") == estimate_request_tokens(session, "next")
    # A streaming turn is counted as it is now, and again as it grows.
    live = stored_turn(6, content="partial")
    live.status = TurnStatus.STREAMING
    session.turns.append(live)
    assert request_estimate(session) == estimate_request_tokens(session)
    live.step.content += " and more" * 30
    assert request_estimate(session) == estimate_request_tokens(session)
