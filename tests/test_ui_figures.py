"""Token figures: the host's counts where it gave them, estimates marked "≈", reasoning counted as reasoning."""

from __future__ import annotations


import pytest

from glmchat.hosts import BUILTIN_HOSTS
from glmchat.session import Session, TurnStatus
from glmchat.ui.widgets.status import StatusFacts, status_content
from glmchat.usage import TokenCount, TokenSplit, Usage, estimate_tokens, token_split, turn_figures
from glmchat.ui.widgets.turn import reasoning_title, settled_reasoning_tokens
from tests.glm_server import Reply
from tests.ui_support import SIZE, make_app, screen_text, stored_turn, wait_for


def test_token_count_marks_estimates():
    assert str(TokenCount(1234)) == "1,234"
    assert str(TokenCount(1234, estimated=True)) == "≈1,234"


def test_reasoning_reported_gives_both_figures_exactly():
    # Z.ai, OpenRouter: reasoning inside the completion tokens.
    usage = Usage(completion_tokens=500, reasoning_tokens=300)
    assert token_split(usage, 250, 180) == TokenSplit(TokenCount(300), TokenCount(200))


def test_only_completion_reported_splits_it_by_the_estimates_and_says_so():
    # vLLM, SGLang, llama.cpp, Ollama: one total for reasoning and answer together.
    usage = Usage(completion_tokens=500)
    split = token_split(usage, reasoning_estimate=300, answer_estimate=200)
    assert split == TokenSplit(TokenCount(300, estimated=True), TokenCount(200, estimated=True))
    # The shares add up to the host's own total, whatever the estimates.
    split = token_split(usage, reasoning_estimate=70, answer_estimate=30)
    assert split.reasoning.value + split.answer.value == 500
    assert (split.reasoning.value, split.answer.value) == (350, 150)


def test_only_completion_reported_without_reasoning_is_all_answer_exactly():
    assert token_split(Usage(completion_tokens=42), 0, 40) == TokenSplit(None, TokenCount(42))


def test_nothing_reported_gives_estimates():
    # A stopped turn: the host never sent its usage.
    assert token_split(Usage(), 100, 0) == TokenSplit(TokenCount(100, estimated=True), None)
    assert token_split(Usage(), 0, 0) == TokenSplit(None, None)


def test_a_reported_zero_for_a_turn_that_reasoned_is_not_believed():
    split = token_split(Usage(completion_tokens=400, reasoning_tokens=0), 100, 100)
    assert split == TokenSplit(TokenCount(200, estimated=True), TokenCount(200, estimated=True))
    # ...but for a turn that did not reason, 0 is right.
    assert token_split(Usage(completion_tokens=400, reasoning_tokens=0), 0, 100) == TokenSplit(None, TokenCount(400))


def test_reasoning_reported_without_completion_estimates_the_answer_only():
    assert token_split(Usage(reasoning_tokens=30), 25, 12) == TokenSplit(TokenCount(30), TokenCount(12, estimated=True))


def test_reasoning_title_marks_an_estimate():
    turn = stored_turn(1, reasoning="word " * 140)
    turn.step.usage = Usage()
    turn.status = TurnStatus.STOPPED
    tokens = settled_reasoning_tokens(turn, estimate_tokens(turn.reasoning), 0)
    assert tokens == TokenCount(estimate_tokens(turn.reasoning), estimated=True)
    assert reasoning_title(turn, live=False, tokens=tokens) == f"Thought for 3.1 s · ≈{tokens.value:,} tokens"
    turn.step.usage = Usage(completion_tokens=300, reasoning_tokens=120)
    tokens = settled_reasoning_tokens(turn, estimate_tokens(turn.reasoning), 10)
    assert reasoning_title(turn, live=False, tokens=tokens) == "Thought for 3.1 s · 120 tokens"


@pytest.mark.parametrize(
    ("usage", "expected"),
    [
        (Usage(prompt_tokens=12_000, cached_tokens=9_000, completion_tokens=1_500, reasoning_tokens=500),
         "12,000 in · 9,000 cached (75% hit) · 500 reasoning · 1,000 answer"),
        (Usage(prompt_tokens=900, completion_tokens=500), "900 in · ≈300 reasoning · ≈200 answer"),
        (Usage(), "≈300 reasoning · ≈200 answer"),
    ],
)
def test_turn_figures_in_words(usage, expected):
    turn = stored_turn(1, reasoning="abcdefg" * 150, content="abcdefg" * 100)  # estimated 300 and 200 tokens
    turn.step.usage = usage
    assert turn_figures(turn) == expected


def test_the_status_line_gives_the_last_turns_figures_even_when_none_were_reported():
    reported = stored_turn(1)
    stopped = stored_turn(2, reasoning="abcdefg" * 50, content="")
    stopped.step.usage = Usage()
    stopped.status = TurnStatus.STOPPED
    facts = StatusFacts(
        host=BUILTIN_HOSTS["vllm"], model="m", thinking_next=True, preserve=True, session=Session(turns=[reported, stopped])
    )
    text = status_content(facts).plain
    assert "last turn ≈100 reasoning" in text, "the stopped turn's own figure, not the turn before it"
    assert "answer" not in text.split("│")[3]


async def test_a_stopped_turn_shows_its_reasoning_count_as_an_estimate(glm_server):
    glm_server.enqueue(Reply(reasoning="thinking hard " * 400, content="never reached", pace=400, chunk_tokens=2))
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        app.chat.composer.set_text("a long think")
        await pilot.press("enter")
        view = None

        def thinking() -> bool:
            nonlocal view
            views = app.chat.log_view.mounted_views
            view = views[-1] if views else None
            return view is not None and view.reasoning.display and "Thinking…" in view.reasoning.title

        await wait_for(pilot, thinking)
        assert "≈" in view.reasoning.title, "a live count is an estimate"
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        turn = app.chat.session.turns[-1]
        assert turn.status == TurnStatus.STOPPED and turn.usage.reasoning_tokens is None
        assert view.reasoning.title.endswith(f"≈{estimate_tokens(turn.reasoning):,} tokens")
        assert f"last turn ≈{estimate_tokens(turn.reasoning):,} reasoning" in screen_text(app)


async def test_a_host_that_reports_only_completion_tokens_gets_marked_shares(glm_server):
    # What vLLM sends: completion tokens for reasoning and answer together.
    glm_server.enqueue(
        Reply(reasoning="r" * 1400, content="a" * 700, usage={"prompt_tokens": 50, "completion_tokens": 600, "total_tokens": 650})
    )
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        app.chat.composer.set_text("hi")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        turn = app.chat.session.turns[-1]
        assert turn.usage.completion_tokens == 600 and turn.usage.reasoning_tokens is None
        text = screen_text(app)
        assert "last turn 50 in · ≈400 reasoning · ≈200 answer" in text
        assert "Thought for" in text and "≈400 tokens" in text
        assert "600 answer" not in text


def test_the_old_figures_are_kept_for_a_fully_reported_turn():
    turn = stored_turn(2)
    turn.step.usage = Usage(prompt_tokens=10, completion_tokens=50, reasoning_tokens=20)
    assert turn_figures(turn) == "10 in · 20 reasoning · 30 answer"
