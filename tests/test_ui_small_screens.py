"""Small screens: the session list over the log, a footer and hints that never show half a word, the switch.

The same behaviour is checked in a real terminal in tests/e2e/test_tmux_keys.py.
"""

from __future__ import annotations

import pytest
from textual.widgets._footer import FooterKey

from glmchat.config import load_config
from glmchat.ui.widgets.composer import EDIT_HINTS, SEND_HINTS, FittingHint, pick_fitting
from glmchat.ui.widgets.footer import FittingFooter
from tests.ui_support import make_app, make_config, open_store, screen_text, stored_session, stored_turn, wait_for

NARROW = (60, 15)


async def sidebar_ready(pilot) -> None:
    await wait_for(pilot, lambda: bool(pilot.app.chat.query("#sidebar")))


async def test_a_narrow_screen_hides_the_list_and_ctrl_b_shows_it_over_the_log(glm_server):
    store = open_store()
    stored_session(store, "Kept chat", [stored_turn(1)])
    app = make_app(glm_server, store=store, config=make_config(glm_server, sidebar=True))
    async with app.run_test(size=NARROW) as pilot:
        chat = app.chat
        await sidebar_ready(pilot)
        log = chat.log_view
        assert chat.narrow
        assert not chat.sidebar_slot.display
        assert log.region.x == 0 and log.region.width == NARROW[0]
        await pilot.press("ctrl+b")
        slot = chat.sidebar_slot
        assert slot.display and chat.sidebar.options.has_focus
        # Over the log: the log keeps its whole width, the list lies on top of its left part.
        assert log.region.x == 0 and log.region.width == NARROW[0]
        assert slot.region.x == 0 and slot.region.width > 20
        assert "Kept chat" in screen_text(app)
        await pilot.press("escape")
        assert not slot.display and chat.composer.prompt.has_focus
        # Typing in the list's place goes to the composer and closes the list.
        await pilot.press("ctrl+b")
        await pilot.press("x")
        assert not slot.display and chat.composer.text == "x"
        # Widened: the list is back beside the chat, as the config says; narrowed: gone again.
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert not chat.narrow and slot.display
        assert log.region.x >= slot.region.right
        await pilot.resize_terminal(*NARROW)
        await pilot.pause()
        assert chat.narrow and not slot.display
    assert load_config().sidebar is True, "showing it over the log does not change the choice for wide screens"


async def test_on_a_narrow_screen_opening_a_session_closes_the_list(glm_server):
    store = open_store()
    first = stored_session(store, "First", [stored_turn(1)], number_hint=1)
    stored_session(store, "Second", [stored_turn(2)], number_hint=2)
    app = make_app(glm_server, store=store)
    async with app.run_test(size=NARROW) as pilot:
        chat = app.chat
        await sidebar_ready(pilot)
        await pilot.press("ctrl+b", "down", "enter")
        await pilot.pause()
        assert chat.session.id == first.id
        assert not chat.sidebar_slot.display and chat.composer.prompt.has_focus


def _footer_keys(app) -> tuple[list[FooterKey], FooterKey | None]:
    keys = list(app.chat.query(FooterKey))
    palette = next((k for k in keys if k.has_class("-command-palette")), None)
    return [k for k in keys if k is not palette], palette


@pytest.mark.parametrize("size", [(60, 15), (80, 24), (120, 40)])
async def test_the_footer_shows_whole_keys_only(glm_server, size):
    app = make_app(glm_server)
    async with app.run_test(size=size) as pilot:
        # The footer is built once the bindings are known (right after the first frame).
        await wait_for(pilot, lambda: screen_text(app).splitlines()[-1].rstrip().endswith("^p palette"))
        footer = app.chat.query_one(FittingFooter)
        keys, palette = _footer_keys(app)
        assert palette is not None and palette.region.right <= size[0]
        shown = [k for k in keys if k.styles.visibility != "hidden"]
        hidden = [k for k in keys if k.styles.visibility == "hidden"]
        assert shown, "some keys fit"
        assert keys[: len(shown)] == shown, "keys are left out from the end"
        for key in shown:
            assert key.region.right <= palette.region.x, f"{key.description} is cut"
        if hidden:
            # The first key left out would not have fitted whole: " ^x Description" after the last one shown.
            room = palette.region.x - shown[-1].region.right
            needed = 1 + len(hidden[0].key_display) + 1 + len(hidden[0].description)
            assert needed > room, f"{hidden[0].description} fits but is hidden"
        footer_line = screen_text(app).splitlines()[-1]
        for key in shown:
            assert key.description in footer_line
        for description in footer.hidden_keys():
            assert description not in footer_line.split("▏")[0]
        if size[0] < 100:
            assert footer.compact and footer.hidden_keys()
        else:
            assert not footer.compact


async def test_the_footer_fits_again_after_a_resize(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: len(_footer_keys(app)[0]) > 5)
        footer = app.chat.query_one(FittingFooter)
        assert footer.hidden_keys() == []
        await pilot.resize_terminal(60, 15)
        await pilot.pause()
        assert footer.hidden_keys()
        await pilot.resize_terminal(120, 40)
        await pilot.pause()
        assert footer.hidden_keys() == []


def test_a_hint_is_the_longest_variant_that_fits_or_nothing():
    assert pick_fitting(SEND_HINTS, 200) == SEND_HINTS[0]
    assert pick_fitting(SEND_HINTS, len(SEND_HINTS[1])) == SEND_HINTS[1]
    assert pick_fitting(SEND_HINTS, len(SEND_HINTS[1]) - 1) == SEND_HINTS[2]
    assert pick_fitting(SEND_HINTS, 3) == ""
    # Longest first, so the first that fits is the most the room allows.
    for variants in (SEND_HINTS, EDIT_HINTS):
        assert [len(v) for v in variants] == sorted((len(v) for v in variants), reverse=True)


@pytest.mark.parametrize("width", [60, 80, 100, 140])
async def test_the_composer_hint_is_never_cut(glm_server, width):
    app = make_app(glm_server)
    async with app.run_test(size=(width, 24)) as pilot:
        await pilot.pause()
        hint = app.chat.composer.query_one("#composer-hint", FittingHint)
        shown = hint.fitting(hint.content_size.width)
        assert shown in SEND_HINTS
        line = next(line for line in screen_text(app).splitlines() if "Thinking:" in line)
        assert line.rstrip().endswith(shown)
        # Editing the last message says so, in the words that fit.
        app.chat.composer.set_editing(True)
        await pilot.pause()
        line = next(line for line in screen_text(app).splitlines() if "Thinking:" in line)
        assert any(line.rstrip().endswith(v) for v in EDIT_HINTS)


# -- the thinking switch -------------------------------------------------------------------


async def test_the_thinking_switch_says_its_state_and_key_and_toggles_by_click_and_keys(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=(100, 30)) as pilot:
        composer = app.chat.composer
        switch = composer.switch
        assert "━● Thinking: on ^T" in screen_text(app)
        await pilot.click("#thinking-switch")
        assert composer.thinking is False and app.chat.session.thinking_next is False
        assert "○━ Thinking: off ^T" in screen_text(app)
        assert composer.prompt.has_focus, "back to typing after a click"
        # A Switch for the keyboard too: Space and Enter flip it when it has focus.
        switch.focus()
        await pilot.press("space")
        assert composer.thinking is True
        switch.focus()
        await pilot.press("enter")
        assert composer.thinking is False
        await pilot.press("ctrl+t")
        assert composer.thinking is True
        assert "Thinking: on" in screen_text(app)
        assert switch.region.width == len("━● Thinking: on ^T") + 1
