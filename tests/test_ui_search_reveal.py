"""A search hit inside a turn's reasoning opens that turn with the pane unfolded and the matching line in view."""

from __future__ import annotations

from glmchat.ui.screens.search import SearchScreen, SearchTarget
from glmchat.ui.widgets.reasoning import match_offset, wrapped_line_of
from tests.ui_support import SIZE, make_app, open_store, screen_text, stored_session, stored_turn, wait_for

# -- a search hit inside reasoning ---------------------------------------------------------


def test_match_offset_finds_the_occurrence_inside_the_context():
    text = "Pelican first. " + "filler words " * 20 + "then the second pelican, the one we want."
    context = "then the second pelican, the one"
    assert match_offset(text, "pelican", context) == text.index("pelican, the one")
    assert match_offset(text, "PELICAN") == 0, "without context: the first, ignoring case"
    assert match_offset(text, "pelican", "not in the text at all") == 0
    assert match_offset(text, "albatross") is None


def test_wrapped_line_of_agrees_with_the_wrapping_of_the_whole_text():
    from textual.content import Content

    text = ("alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu " * 12).strip()
    lines = Content(text).wrap(23)
    for word in ("gamma", "kappa", "mu"):
        for start in [i for i in range(len(text)) if text.startswith(word, i)][:3]:
            line = wrapped_line_of(text, start, 23)
            assert word in lines[line].plain


async def test_a_hit_in_reasoning_opens_the_pane_with_the_line_in_view(glm_server):
    store = open_store()
    body = "\n".join(f"Step {n}: weigh the options once more." for n in range(1, 120))
    reasoning = body.replace("Step 90:", "Step 90: the pelican appears here.")
    turns = [stored_turn(n) for n in range(1, 13)]
    turns[3].step.reasoning = reasoning
    target = stored_session(store, "Birds", turns, number_hint=1)
    stored_session(store, "Other", [stored_turn(40)], number_hint=2)
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        [hit] = store.search("pelican")
        assert hit.field == "reasoning"
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.screen, SearchScreen)
        app.screen.dismiss(SearchTarget.from_hit(hit))
        chat = app.chat
        await wait_for(pilot, lambda: chat.session.id == target.id and chat.log_view.view_for(turns[3].id) is not None)
        view = chat.log_view.view_for(turns[3].id)
        assert view.reasoning.expanded
        await wait_for(pilot, lambda: "the pelican appears here" in screen_text(app))
        # The turn's top is far above: it is the matching line that was scrolled to.
        assert "Step 1: weigh" not in screen_text(app)
        assert chat.fold_state[turns[3].id] is True


async def test_a_hit_in_an_answer_scrolls_to_the_turn_and_leaves_the_reasoning_folded(glm_server):
    store = open_store()
    turns = [stored_turn(n) for n in range(1, 13)]
    turns[2].step.content = "The answer mentions a zebra."
    stored_session(store, "Animals", turns)
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        [hit] = store.search("zebra")
        await pilot.press("ctrl+f")
        await pilot.pause()
        app.screen.dismiss(SearchTarget.from_hit(hit))
        await wait_for(pilot, lambda: "zebra" in screen_text(app))
        assert not app.chat.log_view.view_for(turns[2].id).reasoning.expanded
