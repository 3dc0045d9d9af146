"""Keys and focus as terminals really send them: Alt chords, Alt+Enter, typing anywhere, Esc, Ctrl+B.

Pilot's `press("alt+d")` makes a key event with no character, which no text
field would type, so it cannot show the bug a terminal shows. These tests feed
the bytes an xterm-style terminal (and tmux) sends through Textual's own input
parser and post the key events it makes to the app, as the terminal driver does.
"""

from __future__ import annotations

import asyncio

import pytest
from textual import events
from textual._xterm_parser import XTermParser

from glmchat.config import load_config
from glmchat.ui.keys import register_alt_keys
from glmchat.ui.widgets.reasoning import ReasoningPane
from tests.ui_support import SIZE, make_app, make_config, open_store, stored_session, stored_turn, wait_for


def terminal_keys(data: str) -> list[events.Key]:
    """The key events Textual's parser makes of bytes from the terminal (ESC + letter = Alt+letter)."""
    parser = XTermParser(False)
    # Feeding "" is the end of input: a lone ESC prefix is settled at once, not after ESCDELAY.
    return [event for event in [*parser.feed(data), *parser.feed("")] if isinstance(event, events.Key)]


async def type_bytes(pilot, *presses: str) -> None:
    """Deliver terminal bytes to the app the way its driver would, one key press after another.

    (Two ESC-prefixed chords in one read are a different matter: Textual's parser
    reads the second ESC as the end of the first chord. A person presses one at a time.)
    """
    app = pilot.app
    for data in presses:
        for key in terminal_keys(data):
            key.set_sender(app)
            app.post_message(key)
            await pilot.pause()


async def send(pilot, text: str) -> None:
    pilot.app.chat.composer.set_text(text)
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


# -- the parser ----------------------------------------------------------------------------


def test_textual_reads_esc_cr_as_alt_enter_once_registered():
    register_alt_keys()
    assert [k.key for k in terminal_keys("\x1b\r")] == ["alt+enter"]
    assert [(k.key, k.character) for k in terminal_keys("\x1bd")] == [("alt+d", "d")]
    # A plain Enter, and an Escape on its own, are what they were.
    assert [k.key for k in terminal_keys("\r")] == ["enter"]
    assert [k.key for k in terminal_keys("\x1b")] == ["escape"]
    assert [k.key for k in terminal_keys("a\x1b\rb")] == ["a", "alt+enter", "b"]


# -- Alt chords ----------------------------------------------------------------------------


async def test_alt_enter_bytes_insert_a_newline_and_do_not_send(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await type_bytes(pilot, "first\x1b\rsecond")
        assert app.chat.composer.text == "first\nsecond"
        assert not app.chat.session.turns and not glm_server.chat_requests()
        await type_bytes(pilot, "\r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [t.user_text for t in app.chat.session.turns] == ["first\nsecond"]


async def test_alt_letters_act_and_type_nothing_wherever_the_focus_is(glm_server, tmp_path, monkeypatch):
    exports = tmp_path / "exports"
    exports.mkdir()
    monkeypatch.chdir(exports)
    app = make_app(glm_server)
    copied: list[str] = []
    monkeypatch.setattr(app, "copy_to_clipboard", copied.append)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        composer = app.chat.composer
        composer.set_text("draft")
        # Export to Markdown and JSON, copy the answer and its (missing) code blocks.
        await type_bytes(pilot, "\x1bm", "\x1bj", "\x1bc", "\x1bk")
        assert sorted(p.suffix for p in exports.iterdir()) == [".json", ".md"]
        assert copied == [app.chat.session.turns[-1].content]
        assert composer.text == "draft", "no letter of an Alt chord was typed"
        # An Alt chord nothing is bound to types nothing either.
        await type_bytes(pilot, "\x1bx")
        assert composer.text == "draft"
        # From the sidebar's filter field too: the chord is a command there as well.
        app.chat.sidebar.focus_search()
        await pilot.pause()
        await type_bytes(pilot, "\x1bd")
        from glmchat.ui.screens.confirm import ConfirmScreen

        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("escape")
        assert app.chat.sidebar.query_one("#session-search").value == ""
        assert composer.text == "draft"


# -- typing anywhere -----------------------------------------------------------------------


async def test_keys_typed_while_a_reasoning_pane_has_focus_go_to_the_composer(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "think first")
        pane = app.chat.log_view.mounted_views[-1].reasoning
        assert pane.display and not pane.expanded
        await pilot.click(ReasoningPane)  # a click on the title unfolds it and focuses it
        assert pane.has_focus and pane.expanded
        await type_bytes(pilot, "and then?")
        composer = app.chat.composer
        assert composer.text == "and then?"
        assert composer.prompt.has_focus
        assert pane.expanded, "no key reached the pane"
        # Enter now sends what was typed: nothing was lost.
        await type_bytes(pilot, "\r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [t.user_text for t in app.chat.session.turns] == ["think first", "and then?"]


async def test_a_focused_pane_keeps_its_own_keys_and_escape_returns_to_the_composer(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "think first")
        view = app.chat.log_view.mounted_views[-1]
        view.reasoning.focus()
        await pilot.pause()
        await pilot.press("enter")
        assert view.reasoning.expanded, "Enter on a focused pane still unfolds it"
        await pilot.press("escape")
        assert app.chat.composer.prompt.has_focus


async def test_keys_typed_while_the_thinking_switch_has_focus_go_to_the_composer(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        composer = app.chat.composer
        composer.switch.focus()
        await pilot.pause()
        await type_bytes(pilot, "x")
        assert composer.text == "x" and composer.prompt.has_focus
        assert composer.thinking is True


# -- the session list ----------------------------------------------------------------------


async def test_ctrl_b_shows_and_focuses_the_list_and_escape_goes_back(glm_server):
    store = open_store()
    older = stored_session(store, "Older chat", [stored_turn(1)], number_hint=1)
    config = make_config(glm_server, sidebar=False)
    app = make_app(glm_server, config=config, store=store)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        await wait_for(pilot, lambda: bool(chat.query("#sidebar")))
        assert not chat.sidebar_slot.display
        await pilot.press("ctrl+b")
        assert chat.sidebar_slot.display
        assert chat.sidebar.options.has_focus
        # The list's own keys work at once: n is a new session, not a letter in the composer.
        await type_bytes(pilot, "n")
        assert chat.session.id != older.id and not chat.session.turns
        assert chat.composer.text == "" and chat.composer.prompt.has_focus
        chat.sidebar.focus_list()
        await pilot.pause()
        await pilot.press("escape")
        assert chat.composer.prompt.has_focus
        assert chat.sidebar_slot.display, "a list beside the chat stays (Ctrl+B hides it)"
        # A letter the list has no key for is text for the composer.
        chat.sidebar.focus_list()
        await pilot.pause()
        await type_bytes(pilot, "q")
        assert chat.composer.text == "q" and chat.composer.prompt.has_focus
        await pilot.press("ctrl+b")
        assert not chat.sidebar_slot.display and chat.composer.prompt.has_focus


async def test_escape_in_the_filter_clears_it_first(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        await wait_for(pilot, lambda: bool(chat.query("#sidebar")))
        chat.sidebar.focus_search()
        await pilot.press(*"abc")
        search = chat.sidebar.query_one("#session-search")
        assert search.value == "abc"
        await pilot.press("escape")
        assert search.value == "" and search.has_focus
        await pilot.press("escape")
        assert chat.composer.prompt.has_focus


# -- the session to reopen -----------------------------------------------------------------


def _last_session_on_disk() -> str:
    return load_config().last_session


async def test_the_open_session_is_saved_when_opened_and_at_its_first_turn(glm_server):
    store = open_store()
    a = stored_session(store, "A", [stored_turn(1)], number_hint=1)
    b = stored_session(store, "B", [stored_turn(2)], number_hint=2)
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        assert chat.session.id == b.id  # the most recent
        await chat.switch_to(a.id)
        await app.workers.wait_for_complete()
        # On disk while the app runs: a killed process would come back here.
        assert _last_session_on_disk() == a.id
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert _last_session_on_disk() == a.id, "an empty session is not stored: nothing to come back to"
        await send(pilot, "a new one")
        await app.workers.wait_for_complete()
        assert _last_session_on_disk() == chat.session.id != a.id


async def test_remembering_writes_only_when_the_session_changes(glm_server, monkeypatch):
    store = open_store()
    a = stored_session(store, "A", [stored_turn(1)], number_hint=1)
    app = make_app(glm_server, store=store)
    writes: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        original = app._config_writer.write

        def counting(ticket, path, text):
            writes.append(text)
            return original(ticket, path, text)

        monkeypatch.setattr(app._config_writer, "write", counting)
        await send(pilot, "one")
        await send(pilot, "two")
        await pilot.press(*"typing does not write the config")
        await app.workers.wait_for_complete()
        await asyncio.sleep(0.05)
        assert app.chat.session.id == a.id
        assert writes == [], "the session did not change: nothing to write"
    assert load_config().last_session == a.id


@pytest.mark.parametrize("data", ["\x1bd", "\x1bm"])
def test_alt_chords_arrive_with_their_letter(data):
    # Why the composer had to be told: the event carries the letter, and is printable.
    [key] = terminal_keys(data)
    assert key.key.startswith("alt+") and key.is_printable
