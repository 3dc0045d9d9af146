"""What the screen shows of a finished answer: all of it, at its current height, its last line in view.

The first test pins the mechanism (a stream-layout container must re-measure a
child whose content grew even when a sibling asked for a layout first); the
rest drive the real app against the loopback server and check the invariant
after every way a turn can end, over many chunkings and speeds.
"""

from __future__ import annotations

import asyncio
import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from textual.app import App, ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Static

from glmchat.session import TurnStatus
from glmchat.ui.stream_layout import ExactLayoutScreen
from glmchat.ui.widgets.answer import MarkdownView
from tests.glm_server import Reply, corpus, split_tokens
from tests.ui_support import SIZE, make_app, screen_text, wait_for
from tests.ui_invariants import assert_answer_settled


class _Nested(App[None]):
    """A log, a turn and an answer, each `layout: stream`, like the chat log."""

    # One rule per level, as the chat log's widgets have: a stream layout keeps its last
    # placements per rule, so containers sharing one rule would never reuse them.
    CSS = """
    #log { layout: stream; height: 1fr; }
    #turn { layout: stream; height: auto; }
    #answer { layout: stream; height: auto; }
    """

    def get_default_screen(self) -> ExactLayoutScreen:
        return _NestedScreen()


class _NestedScreen(ExactLayoutScreen):
    def compose(self) -> ComposeResult:
        with VerticalScroll(id="log"):
            with Vertical(id="turn"):
                with Vertical(id="answer"):
                    yield MarkdownView("one line", id="text")
                yield Static("status", id="status")


async def test_a_child_that_grew_is_measured_again_when_a_sibling_asked_first():
    app = _Nested()
    async with app.run_test(size=(40, 30)) as pilot:
        screen = app.screen
        text, status = screen.query_one("#text", MarkdownView), screen.query_one("#status", Static)
        await pilot.pause()
        assert status.region.y == text.region.bottom
        passes: list[tuple[int, int, int]] = []
        screen.screen_layout_refresh_signal.subscribe(
            screen, lambda _: passes.append((text.region.height, text.region.bottom, status.region.y)), immediate=True
        )
        # The status line's request reaches the screen first, then the grown text's, in one
        # frame: what happens when a turn ends (its status line and its answer both change).
        status.update("status, now longer")
        text.set_source("\n\n".join(f"paragraph {n}" for n in range(6)))
        await pilot.pause()
        await pilot.pause()
        assert text.region.height == 11
        assert passes, "a layout ran"
        # Every frame drawn since: the status line below the whole text, never over it.
        assert all(status_y == bottom for _, bottom, status_y in passes), passes


# -- the invariant in the real app -------------------------------------------------------------


def _markdown_answer(rng: random.Random, ending: str) -> str:
    """A Markdown answer of mixed blocks that ends in plain text, inside code, or inside a table."""
    body = corpus(rng.randint(40, 700), seed=rng.randint(0, 10_000))
    if ending == "code":
        return body + "\n\n```python\ndef last():\n    return 'inside the fence'"
    if ending == "table":
        return body + "\n\n| a | b |\n|---|---|\n| 1 | 2 |\n| last | row"
    return body + "\n\nThe very last line."


def _pieces(text: str, rng: random.Random, chunking: str) -> list[str]:
    tokens = split_tokens(text)
    if chunking == "huge-final":
        cut = max(1, len(tokens) // 5)
        return tokens[:cut] + ["".join(tokens[cut:])]
    if chunking == "one":
        return ["".join(tokens)]
    out: list[str] = []
    while tokens:
        n = rng.randint(1, 40)
        out.append("".join(tokens[:n]))
        del tokens[:n]
    return out


@settings(max_examples=14, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 2**32 - 1),
    ending=st.sampled_from(["text", "code", "table"]),
    chunking=st.sampled_from(["random", "huge-final", "one"]),
    pace=st.sampled_from([None, 20_000, 2_000]),
    thinking=st.booleans(),
)
def test_a_finished_answer_is_drawn_whole_at_its_current_height(glm_server, seed, ending, chunking, pace, thinking):
    rng = random.Random(seed)
    answer = _markdown_answer(rng, ending)
    reasoning = corpus(rng.randint(5, 300), seed=seed % 997) if thinking else None
    reply = Reply(
        reasoning=_pieces(reasoning, rng, "random") if reasoning else None,
        content=_pieces(answer, rng, chunking),
        chunk_tokens=1,
        pace=pace,
        unthrottled=pace is None,
    )
    glm_server.enqueue(reply)

    async def scenario() -> None:
        app = make_app(glm_server)
        async with app.run_test(size=SIZE) as pilot:
            app.chat.composer.set_text("write it all")
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            turn = app.chat.session.turns[-1]
            assert turn.status == TurnStatus.COMPLETE and turn.content == answer
            await assert_answer_settled(pilot, turn)

    asyncio.run(scenario())


# -- every other way a turn ends ---------------------------------------------------------------

LONG = corpus(900, seed=3) + "\n\nThe very last line."


async def test_a_stopped_answer_shows_what_arrived_to_its_last_line(glm_server):
    glm_server.enqueue(Reply(content=LONG, stall_after=300, chunk_tokens=2))
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        app.chat.composer.set_text("go")
        await pilot.press("enter")
        view = app.chat.log_view.mounted_views[-1]
        await wait_for(pilot, lambda: len(view.answer.source) > 500)
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        turn = app.chat.session.turns[-1]
        assert turn.status == TurnStatus.STOPPED and turn.content
        await assert_answer_settled(pilot, turn)


async def test_a_failed_answer_shows_what_arrived_to_its_last_line(glm_server):
    glm_server.enqueue(Reply(content=LONG, drop_after=200, chunk_tokens=2))
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        app.chat.composer.set_text("go")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        turn = app.chat.session.turns[-1]
        assert turn.status == TurnStatus.ERROR and turn.content
        await assert_answer_settled(pilot, turn)
        assert "dropped" in screen_text(app)


async def test_retried_regenerated_and_edited_answers_show_to_their_last_line(glm_server):
    glm_server.enqueue(
        Reply(content=LONG, drop_after=100, chunk_tokens=3),  # fails
        Reply(content=LONG, chunk_tokens=3),  # Ctrl+R retries it
        Reply(content=corpus(700, seed=9) + "\n\nRegenerated last line.", chunk_tokens=5),  # Ctrl+R regenerates
        Reply(content=corpus(500, seed=11) + "\n\nEdited last line.", chunk_tokens=7),  # Ctrl+G, Enter
    )
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        app.chat.composer.set_text("go")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        assert app.chat.session.turns[-1].status == TurnStatus.ERROR
        for key in ("ctrl+r", "ctrl+r"):
            await pilot.press(key)
            await app.workers.wait_for_complete()
            await pilot.pause()
            turn = app.chat.session.turns[-1]
            assert turn.status == TurnStatus.COMPLETE
            await assert_answer_settled(pilot, turn)
        assert turn.content.endswith("Regenerated last line.")
        await pilot.press("ctrl+g")
        await pilot.press("end", "!", "enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        turn = app.chat.session.turns[-1]
        assert turn.user_text == "go!" and turn.content.endswith("Edited last line.")
        await assert_answer_settled(pilot, turn)
