"""Sessions in the TUI: new, switch (also while streaming), rename, delete, search, first run, export paths.

The dialogs belong to their own tests (test_ui_shell.py); here they are answered
the way a person would, and what the chat screen does with the answer is checked.
"""

from __future__ import annotations

import os
import stat

from glmchat.config import AppOptions, Paths, load_config
from glmchat.session import TurnStatus
from tests.glm_server import Reply
from tests.ui_support import (
    SIZE,
    make_app,
    make_config,
    open_store,
    screen_text,
    stored_session,
    stored_turn,
    wait_for,
)


async def send(pilot, text: str) -> None:
    pilot.app.chat.composer.set_text(text)
    await pilot.press("enter")
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_new_session_is_titled_by_its_first_line_and_listed(glm_server):
    store = open_store()
    old = stored_session(store, "Older chat", [stored_turn(1)])
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        assert chat.session.id == old.id
        await pilot.press("ctrl+n")
        assert chat.session.id != old.id
        assert chat.log_view.mounted_views == []
        await send(pilot, "  Plan a trip to Kyoto\nwith details")
        assert chat.session.title == "Plan a trip to Kyoto"
        titles = [s.title for s in chat.sidebar.summaries]
        assert titles == ["Plan a trip to Kyoto", "Older chat"]
        assert "Plan a trip to Kyoto" in screen_text(app)


async def test_an_unsent_new_session_is_not_saved(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+n")
        await pilot.press("ctrl+n")
    assert open_store().list_sessions() == []


async def test_last_session_reopens_on_launch(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "remember me")
        session_id = app.chat.session.id
    assert load_config().last_session == session_id
    again = make_app(glm_server, config=load_config())
    again.config.hosts = make_config(glm_server).hosts
    async with again.run_test(size=SIZE) as pilot:
        assert again.chat.session.id == session_id
        assert "remember me" in screen_text(again)


async def test_options_open_a_given_session_or_a_new_one(glm_server):
    store = open_store()
    first = stored_session(store, "First", [stored_turn(1)], number_hint=1)
    stored_session(store, "Second", [stored_turn(2)], number_hint=2)
    app = make_app(glm_server, store=store, options=AppOptions(session=first.id[:8]))
    async with app.run_test(size=SIZE):
        assert app.chat.session.id == first.id
    app = make_app(glm_server, store=open_store(), options=AppOptions(new=True))
    async with app.run_test(size=SIZE):
        assert app.chat.session.turns == []


async def test_rename_from_the_keyboard(glm_server):
    from glmchat.ui.screens.prompt import PromptScreen

    store = open_store()
    session = stored_session(store, "Untitled thoughts", [stored_turn(1)])
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f2")
        await pilot.pause()
        assert isinstance(app.screen, PromptScreen)
        app.screen.dismiss("Kyoto itinerary")
        await pilot.pause()
        assert app.chat.session.title == "Kyoto itinerary"
        assert open_store().load_session(session.id).title == "Kyoto itinerary"
        assert "Kyoto itinerary" in screen_text(app)


async def test_delete_asks_then_opens_the_next_session(glm_server):
    from glmchat.ui.screens.confirm import ConfirmScreen

    store = open_store()
    keep = stored_session(store, "Keep me", [stored_turn(1)], number_hint=1)
    doomed = stored_session(store, "Delete me", [stored_turn(2)], number_hint=2)
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        assert app.chat.session.id == doomed.id
        await pilot.press("alt+d")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "Delete me" in screen_text(app)
        app.screen.dismiss(False)
        await pilot.pause()
        assert [s.id for s in open_store().list_sessions()] == [doomed.id, keep.id]

        await pilot.press("alt+d")
        await pilot.pause()
        app.screen.dismiss(True)
        await pilot.pause()
        assert [s.id for s in open_store().list_sessions()] == [keep.id]
        assert app.chat.session.id == keep.id


async def test_search_result_opens_its_session_at_its_turn(glm_server):
    from glmchat.ui.screens.search import SearchScreen, SearchTarget

    store = open_store()
    turns = [stored_turn(n, user=f"Question {n}") for n in range(1, 31)]
    turns[2].step.content = "The answer mentions a zebra."
    target = stored_session(store, "Animals", turns, number_hint=1)
    stored_session(store, "Other", [stored_turn(40)], number_hint=2)
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.screen, SearchScreen)
        hits = store.search("zebra")
        assert hits and hits[0].turn_id == turns[2].id
        app.screen.dismiss(SearchTarget.from_hit(hits[0]))
        await pilot.pause()
        chat = app.chat
        assert chat.session.id == target.id
        view = chat.log_view.view_for(turns[2].id)
        assert view is not None, "the turn was paged in"
        await pilot.pause()
        assert "zebra" in screen_text(app)


async def test_switching_away_from_a_streaming_session_and_back(glm_server):
    store = open_store()
    other = stored_session(store, "Other", [stored_turn(1)], number_hint=1)
    glm_server.enqueue(Reply(reasoning="", content="streaming along " * 40, stall_after=6))
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        await pilot.press("ctrl+n")
        chat.composer.set_text("long one")
        await pilot.press("enter")
        live_session = chat.session
        await wait_for(pilot, lambda: "streaming along" in chat.log_view.mounted_views[-1].answer.source)

        await chat.switch_to(other.id)
        await pilot.pause()
        assert chat.session.id == other.id
        assert chat.live is not None, "the stream goes on in the background"
        assert "streaming along" not in screen_text(app)

        await chat.switch_to(live_session.id)
        await pilot.pause()
        view = chat.log_view.mounted_views[-1]
        assert view.live and view.turn is chat.live.turn
        await wait_for(pilot, lambda: "streaming along" in view.answer.source)
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert live_session.turns[-1].status == TurnStatus.STOPPED
        assert "■ stopped" in screen_text(app)


async def test_first_run_without_a_key_shows_setup_and_saves_the_key(glm_server):
    from glmchat.ui.screens.setup import SetupResult, SetupScreen

    config = make_config(glm_server)
    config.keys = {}
    app = make_app(glm_server, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen)
        app.screen.dismiss(SetupResult("zai", "sk-pasted-key-0123456789"))
        await pilot.pause()
        assert app.config.keys["zai"] == "sk-pasted-key-0123456789"
        path = app.paths.config_file
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert "sk-pasted-key-0123456789" not in screen_text(app)
        await send(pilot, "now it works")
        assert glm_server.last.header("Authorization") == "Bearer sk-pasted-key-0123456789"


async def test_sending_without_a_key_opens_setup_and_keeps_the_text(glm_server):
    from glmchat.ui.screens.setup import SetupScreen

    config = make_config(glm_server)
    config.keys = {}
    app = make_app(glm_server, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        app.screen.dismiss(None)
        await pilot.pause()
        app.chat.composer.set_text("hello?")
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen)
        assert app.chat.composer.text == "hello?"
        assert glm_server.chat_requests() == []


async def test_the_app_starts_when_the_data_folder_is_unusable(glm_server, tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the data folder should be")
    paths = Paths(
        config_file=tmp_path / "config.toml",
        data_dir=blocker / "data",
        themes_dir=tmp_path / "themes",
        log_file=tmp_path / "glmchat.log",
    )
    from glmchat.client import GlmClient
    from glmchat.ui.app import GlmChatApp

    app = GlmChatApp(paths=paths, config=make_config(glm_server), client=GlmClient(max_retries=0), probe=False)
    async with app.run_test(size=SIZE) as pilot:
        assert app.store is None
        assert any("will not be saved" in n.message for n in app._notifications)
        await send(pilot, "still chatting")
        assert app.chat.session.turns[-1].content
        assert len(glm_server.chat_requests()) == 1


async def test_every_action_is_in_the_command_palette(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE):
        titles = {command.title for command in app.get_system_commands(app.screen)}
        for title in (
            "New session",
            "Toggle thinking",
            "Stop",
            "Retry / regenerate",
            "Edit message",
            "Fold / unfold all reasoning",
            "Copy last answer",
            "Copy code blocks",
            "Export to Markdown",
            "Export to JSON",
            "Rename session",
            "Delete session",
            "Search sessions",
            "Toggle sidebar",
            "Settings",
            "Help",
        ):
            assert title in titles
        for binding in [*app.chat.BINDINGS, *app.BINDINGS]:
            assert binding.id and binding.tooltip  # type: ignore[union-attr]


async def test_sidebar_hides_and_the_choice_is_remembered(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        # The list is mounted right after the first frame: wait for it to be laid out.
        await wait_for(pilot, lambda: bool(app.chat.query("#sidebar")) and app.chat.sidebar.region.width > 0)
        assert app.chat.sidebar_slot.display
        await pilot.press("ctrl+b")
        assert not app.chat.sidebar_slot.display
        assert app.chat.sidebar.region.width == 0
        assert app.focused is app.chat.composer.prompt
    assert load_config().sidebar is False


async def test_settings_change_the_session_host_and_the_theme(glm_server):
    from glmchat.ui.screens.settings import SettingsResult, SettingsScreen

    config = make_config(glm_server)
    config.hosts["cerebras"] = {"base_url": glm_server.base_url("cerebras")}
    config.keys["cerebras"] = "csk-test-0123456789abcdef"
    app = make_app(glm_server, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(app.screen, SettingsScreen)
        app.screen.dismiss(
            SettingsResult({"host": "cerebras", "model": "zai-glm-4.7", "preserve_thinking": False, "theme": "glm-light"})
        )
        await pilot.pause()
        session = app.chat.session
        assert (session.host, session.model, session.preserve_thinking) == ("cerebras", "zai-glm-4.7", False)
        assert app.theme == "glm-light" and load_config().theme == "glm-light"
        text = screen_text(app)
        assert "Cerebras · zai-glm-4.7" in text and "preserved thinking off" in text
        await send(pilot, "hello cerebras")
        assert glm_server.last.host_id == "cerebras"


async def test_help_lists_the_chat_keys(glm_server):
    from glmchat.ui.screens.help import HelpScreen

    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for words in ("Thinking on/off for the next turn", "Fold or unfold every turn", "Ctrl+T"):
            assert words in text


# -- drafts across runs and turns streamed by another window ---------------------------------


async def test_a_draft_survives_quitting_and_comes_back_with_its_session(glm_server):
    store = open_store()
    session = stored_session(store, "Kept", [stored_turn(1)])
    store.close()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        assert app.chat.session.id == session.id
        app.chat.composer.prompt.focus()
        await pilot.press(*"half-written thought")
        await pilot.press("ctrl+q")
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        assert app.chat.session.id == session.id
        assert app.chat.composer.text == "half-written thought"


async def test_a_draft_in_a_new_session_reopens_a_new_session_with_it(glm_server):
    store = open_store()
    stored_session(store, "Older", [stored_turn(1)])
    store.close()
    app = make_app(glm_server, options=AppOptions(new=True))
    async with app.run_test(size=SIZE) as pilot:
        app.chat.composer.prompt.focus()
        await pilot.press(*"not sent yet")
        await pilot.press("ctrl+q")
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        assert app.chat.session.turns == []
        assert app.chat.composer.text == "not sent yet"


async def test_a_draft_is_written_a_moment_after_typing_stops_without_quitting(glm_server):
    from glmchat.ui.drafts import drafts_path, load_drafts

    store = open_store()
    session = stored_session(store, "Kept", [stored_turn(1)])
    store.close()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        chat.DRAFT_SAVE_DELAY = 2.0  # longer than typing takes on a busy machine
        path = drafts_path(app.paths.data_dir)
        chat.composer.prompt.focus()
        await pilot.press(*"typed then")
        assert load_drafts(path).get(session.id) is None, "not written on every keystroke"
        await pilot.press(*" killed")
        await wait_for(pilot, lambda: load_drafts(path).get(session.id) == "typed then killed", timeout=15)
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        assert chat.composer.text == "typed then killed", "the composer keeps its text"
        # A big paste is written the same way, and clearing the prompt removes the draft.
        chat.composer.prompt.insert("x" * 1_000_000)
        await wait_for(pilot, lambda: len(load_drafts(path).get(session.id, "")) > 1_000_000, timeout=15)
        chat.composer.clear()
        await wait_for(pilot, lambda: not path.exists(), timeout=15)


def test_drafts_file_round_trip_and_damage(tmp_path):
    from glmchat.ui.drafts import load_drafts, save_drafts

    path = tmp_path / "drafts.json"
    save_drafts(path, {"a": "text \ud800 with a lone surrogate", "b": ""})
    assert load_drafts(path) == {"a": "text \ud800 with a lone surrogate"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    save_drafts(path, {"a": ""})
    assert not path.exists(), "no drafts, no file"
    path.write_text("{not json", encoding="utf-8")
    assert load_drafts(path) == {}
    path.write_text('["a list"]', encoding="utf-8")
    assert load_drafts(path) == {}


async def test_a_turn_streaming_in_another_window_is_shown_so_and_not_replaced(glm_server):
    from glmchat.protocol.events import ContentDelta

    other = open_store()  # stands for the other window's process (same pid: alive, same host)
    session = stored_session(other, "Shared", [stored_turn(1)])
    turn = session.new_turn("still going?", False)
    other.begin_turn(session, turn)
    turn.apply(ContentDelta("partial answer so far"))
    other.save_progress(turn)
    app = make_app(glm_server, store=open_store())
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "partial answer so far" in text
        assert "streaming in another window" in text
        assert "interrupted" not in text
        await app.chat.action_retry()
        app.chat.action_edit_last()
        await pilot.pause()
        assert app.chat.session.turns[-1].id == turn.id
        assert app.chat.composer.text == ""
    assert other.load_session(session.id).turns[-1].id == turn.id
    other.close()


async def test_the_highlight_stays_where_the_user_moved_it_when_the_list_reloads(glm_server):
    store = open_store()
    older = stored_session(store, "Older", [stored_turn(1)], number_hint=1)
    newer = stored_session(store, "Newer", [stored_turn(2)], number_hint=2)
    store.close()
    app = make_app(glm_server, options=AppOptions(session=newer.id))
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        await wait_for(pilot, lambda: bool(chat.query("#sidebar")) and chat.sidebar.highlighted_id == newer.id)
        chat.sidebar.focus_list()
        await pilot.press("down")
        assert chat.sidebar.highlighted_id == older.id
        chat.refresh_sidebar()  # as after a change in another window, or a turn's end
        assert chat.sidebar.highlighted_id == older.id
        await pilot.press("enter")
        await wait_for(pilot, lambda: chat.session.id == older.id)
        chat.refresh_sidebar()
        assert chat.sidebar.highlighted_id == older.id, "the open session is highlighted once it changed"


async def test_ctrl_b_before_the_list_is_mounted_still_focuses_it(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        assert not chat.query("#sidebar"), "the list comes after the first frame"
        chat.action_toggle_sidebar()  # hide
        chat.action_toggle_sidebar()  # and show again, all before the list is there
        await wait_for(pilot, lambda: bool(chat.query("#sidebar")))
        await pilot.pause()
        assert chat.sidebar.options.has_focus
