"""The chat screen driven like a person would, against the loopback GLM server.

Every test runs the real app (real store in the test's GLMCHAT_HOME, real
GlmClient over HTTP to 127.0.0.1) with `App.run_test`, and checks what was
sent, what was stored and what the screen shows.
"""

from __future__ import annotations

from textual import events

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
    """Type a message and press Enter, then wait for the answer to finish."""
    app = pilot.app
    app.chat.composer.set_text(text)
    await pilot.press("enter")
    await app.workers.wait_for_complete()
    await pilot.pause()


def user_messages(request) -> list[str]:
    return [m["content"] for m in request.json["messages"] if m["role"] == "user"]


# -- thinking switch -------------------------------------------------------------------------


async def test_ctrl_t_turns_thinking_off_for_the_next_request_and_marks_the_turn(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        composer = app.chat.composer
        assert composer.thinking is True
        await pilot.press("ctrl+t")
        assert composer.thinking is False
        assert app.chat.session.thinking_next is False
        await send(pilot, "no thinking please")
        request = glm_server.last
        assert request.thinking is False
        assert request.json["thinking"]["type"] == "disabled"
        turn = app.chat.session.turns[-1]
        assert turn.thinking is False and turn.status == TurnStatus.COMPLETE
        assert "thinking off" in screen_text(app)
        # The switch stays where the user put it, and is saved with the session.
        assert composer.thinking is False
        stored = open_store().load_session(app.chat.session.id)
        assert stored.thinking_next is False and stored.turns[-1].thinking is False

        # A click on the switch turns it back on for the next turn only.
        await pilot.click("#thinking-switch")
        assert composer.thinking is True
        await send(pilot, "now think")
        assert glm_server.last.thinking is True
        assert [t.thinking for t in app.chat.session.turns] == [False, True]


async def test_a_host_that_cannot_switch_thinking_disables_the_switch_and_says_why(glm_server):
    config = make_config(glm_server, zai={"thinking_style": "none"})
    app = make_app(glm_server, config=config)
    async with app.run_test(size=SIZE) as pilot:
        composer = app.chat.composer
        assert composer.switch.disabled
        assert "Thinking: set by Z.ai" in screen_text(app)
        await pilot.press("ctrl+t")
        assert composer.thinking is True
        assert "thinking: set by host" in screen_text(app)
        assert "cannot switch thinking per turn" in "\n".join(str(n.message) for n in app._notifications)


# -- the reasoning pane ----------------------------------------------------------------------


async def test_reasoning_pane_opens_live_then_folds_when_the_answer_starts(glm_server):
    reasoning = "step " * 20
    answer = "The **answer** is forty two, said the model at last."
    # First reply: the stream halts in the middle of the reasoning; second: in the middle of the answer.
    glm_server.enqueue(
        Reply(reasoning=reasoning, content=answer, stall_after=10),
        Reply(reasoning=reasoning, content=answer, stall_after=32),
    )
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        app.chat.composer.set_text("think hard")
        await pilot.press("enter")
        pane = app.chat.log_view.mounted_views[-1].reasoning
        await wait_for(pilot, lambda: pane.display and "tokens" in pane.title)
        assert pane.live and pane.expanded, "the pane is open while the reasoning streams"
        assert pane.title.startswith("Thinking… ") and " s" in pane.title
        assert "▼ Thinking…" in screen_text(app)
        assert "step step" in screen_text(app), "the reasoning shows live"
        await pilot.press("escape")
        await app.workers.wait_for_complete()

        app.chat.composer.set_text("again")
        await pilot.press("enter")
        view = app.chat.log_view.mounted_views[-1]
        pane = view.reasoning
        await wait_for(pilot, lambda: "forty" in view.answer.source)
        assert not pane.live
        assert not pane.expanded, "the pane folds once the answer starts"
        assert pane.title.startswith("Thought for ") and pane.title.endswith(" tokens")
        text = screen_text(app)
        assert "▶ Thought for" in text and "The answer is forty" in text
        assert text.count("step step") == 0
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        assert view.turn.reasoning == reasoning, "the stored reasoning is exactly what arrived"


async def test_unfold_and_fold_a_past_turn_with_mouse_and_keys(glm_server):
    store = open_store()
    stored_session(store, "Past", [stored_turn(1, reasoning="Careful thought about cats. "), stored_turn(2)])
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()  # the turn above the last one is paged in after the first frame
        view = app.chat.log_view.mounted_views[0]
        assert view.turn.id == f"{1:032x}"
        pane = view.reasoning
        assert not pane.expanded and "Careful thought" not in screen_text(app)
        await pilot.click(pane, offset=(3, 0))
        assert pane.expanded
        assert "Careful thought about cats." in screen_text(app)
        assert app.chat.fold_state[view.turn.id] is True
        pane.focus()
        await pilot.press("enter")
        assert not pane.expanded
        assert "Careful thought" not in screen_text(app)
        await pilot.press("space")
        assert pane.expanded


async def test_fold_all_key_unfolds_then_folds_every_turn(glm_server):
    store = open_store()
    stored_session(store, "Three", [stored_turn(1), stored_turn(2), stored_turn(3, thinking=False)])
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        views = app.chat.log_view.mounted_views
        panes = [v.reasoning for v in views if v.reasoning.display]
        assert len(panes) == 2, "a turn sent without thinking has no pane"
        await pilot.press("ctrl+o")
        assert all(p.expanded for p in panes)
        await pilot.press("ctrl+o")
        assert not any(p.expanded for p in panes)


async def test_switching_sessions_keeps_fold_state_and_draft(glm_server):
    store = open_store()
    a = stored_session(store, "Session A", [stored_turn(1)], number_hint=1)
    b = stored_session(store, "Session B", [stored_turn(2)], number_hint=2)
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        assert chat.session.id == b.id, "the most recent session reopens"
        await chat.switch_to(a.id)
        await pilot.pause()
        view = chat.log_view.mounted_views[0]
        await pilot.click(view.reasoning, offset=(3, 0))
        assert view.reasoning.expanded
        chat.composer.prompt.focus()
        await pilot.press(*"half-written")

        await chat.switch_to(b.id)
        await pilot.pause()
        assert chat.composer.text == ""
        assert not chat.log_view.mounted_views[0].reasoning.expanded

        await chat.switch_to(a.id)
        await pilot.pause()
        assert chat.composer.text == "half-written"
        assert chat.log_view.mounted_views[0].reasoning.expanded
        assert "Reasoning for question 1." in screen_text(app)


# -- stopping, retrying, regenerating, editing ------------------------------------------------


async def test_escape_stops_the_stream_and_keeps_what_arrived(glm_server):
    glm_server.enqueue(Reply(reasoning="", content="partial answer " * 50, stall_after=4))
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        app.chat.composer.set_text("go")
        await pilot.press("enter")
        turn = app.chat.session.turns[-1]
        await wait_for(pilot, lambda: "partial answer" in app.chat.log_view.mounted_views[-1].answer.source)
        await pilot.press("escape")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert turn.status == TurnStatus.STOPPED
        assert turn.content.startswith("partial answer")
        assert "■ stopped" in screen_text(app)
        stored = open_store().load_session(app.chat.session.id).turns[-1]
        assert stored.status == TurnStatus.STOPPED and stored.content == turn.content
        assert app.chat.composer.text == ""


async def test_retry_after_a_server_error(glm_server):
    glm_server.enqueue(Reply.error(500))
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        turn = app.chat.session.turns[-1]
        assert turn.status == TurnStatus.ERROR
        text = screen_text(app)
        assert "✖" in text and "retry" in text
        assert turn.error and turn.error.startswith("Z.ai: server error")
        assert "Z.ai: server error" in text
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        session = app.chat.session
        assert len(session.turns) == 1
        assert session.turns[0].status == TurnStatus.COMPLETE and session.turns[0].user_text == "hello"
        assert len(glm_server.chat_requests()) == 2
        assert len(open_store().load_session(session.id).turns) == 1


async def test_retry_countdown_shows_while_rate_limited(glm_server):
    glm_server.enqueue(Reply.error(429, headers={"Retry-After": "2"}))
    app = make_app(glm_server, max_retries=1)
    async with app.run_test(size=SIZE) as pilot:
        app.chat.composer.set_text("hello")
        await pilot.press("enter")
        view = app.chat.log_view.mounted_views[-1]
        await wait_for(pilot, lambda: "retrying in" in str(view.status.content), timeout=5)
        assert "retrying in" in screen_text(app)
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert view.turn.status == TurnStatus.COMPLETE
        assert "retrying" not in screen_text(app)


async def test_regenerate_replaces_the_last_answer(glm_server):
    glm_server.enqueue(Reply(content="first answer"), Reply(content="second answer"))
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "question")
        assert "first answer" in screen_text(app)
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        turns = app.chat.session.turns
        assert [t.content for t in turns] == ["second answer"]
        assert "first answer" not in screen_text(app) and "second answer" in screen_text(app)
        assert user_messages(glm_server.last) == ["question"]


async def test_edit_last_message_and_resend(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first question")
        await send(pilot, "typo questoin")
        await pilot.press("ctrl+g")
        composer = app.chat.composer
        assert composer.text == "typo questoin"
        assert composer.has_class("-editing")
        composer.set_text("fixed question")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        turns = app.chat.session.turns
        assert [t.user_text for t in turns] == ["first question", "fixed question"]
        assert user_messages(glm_server.last) == ["first question", "fixed question"]
        assert not composer.has_class("-editing")


async def test_up_in_an_empty_prompt_edits_and_escape_cancels(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "original")
        await pilot.press("up")
        assert app.chat.composer.text == "original"
        await pilot.press("escape")
        assert app.chat.composer.text == ""
        assert not app.chat.composer.has_class("-editing")


# -- errors and the composer text ---------------------------------------------------------------


async def test_failed_save_gives_the_text_back(glm_server, monkeypatch):
    from glmchat.errors import StorageError

    store = open_store()
    app = make_app(glm_server, store=store)

    def refuse(*args, **kwargs):
        raise StorageError("Could not save the new turn: disk full.")

    async with app.run_test(size=SIZE) as pilot:
        monkeypatch.setattr(store, "begin_turn", refuse)
        app.chat.composer.set_text("precious words")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.chat.composer.text == "precious words"
        assert app.chat.session.turns == []
        assert glm_server.chat_requests() == []
        assert app.chat.log_view.mounted_views == []


async def test_paste_of_a_megabyte_lands_whole_in_the_composer(glm_server):
    app = make_app(glm_server)
    big = ("0123456789abcdef" * 63 + "\n") * 1000  # about 1 MB, 1,000 lines
    async with app.run_test(size=SIZE) as pilot:
        # As a terminal delivers it: to the app, which forwards it to the focused prompt.
        app.post_message(events.Paste(big))
        await pilot.pause()
        await pilot.press("x")
        assert app.chat.composer.text == big + "x"
        assert len(app.chat.composer.text) > 1_000_000


async def test_newline_keys_insert_a_newline_and_enter_sends(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("a", "ctrl+j", "b", "shift+enter", "c", "alt+enter", "d")
        assert app.chat.composer.text == "a\nb\nc\nd"
        # Keys typed right after Enter, before the app handled it, stay for the next message.
        await pilot.press("enter", "e")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert user_messages(glm_server.last) == ["a\nb\nc\nd"]
        assert app.chat.composer.text == "e"


async def test_escape_sequences_from_the_model_are_shown_inert(glm_server):
    evil = "look \x1b]52;c;aGVsbG8=\x07 and \x1b[2J\x1b[31mred\x1b[0m [x](file:///etc/passwd)"
    glm_server.enqueue(Reply(reasoning="", content=evil))
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        turn = app.chat.session.turns[-1]
        assert turn.content == evil, "the stored text stays exact"
        strips = app.screen._compositor.render_strips()
        shown = "\n".join(s.text for s in strips)
        assert "\x1b" not in shown and "\x07" not in shown
        assert "␛]52;c;aGVsbG8=␇" in shown
        assert "␛[31mred" in shown
        # The file: link is shown but carries no click action.
        for strip in strips:
            for segment in strip:
                if segment.style and segment.style.meta:
                    assert "file:" not in str(segment.style.meta.get("@click", ""))


async def test_context_window_warning_asks_before_sending(glm_server):
    from glmchat.ui.screens.confirm import ConfirmScreen

    config = make_config(glm_server, zai={"context_window": 100})
    app = make_app(glm_server, config=config)
    long_text = "word " * 400
    async with app.run_test(size=SIZE) as pilot:
        app.chat.composer.set_text(long_text)
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        assert "context window" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
        assert glm_server.chat_requests() == []
        assert app.chat.composer.text == long_text, "cancelling keeps the text"

        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        app.screen.dismiss(True)
        await pilot.pause()
        await app.workers.wait_for_complete()
        assert len(glm_server.chat_requests()) == 1
        assert app.chat.composer.text == ""


# -- export and copy -------------------------------------------------------------------------------


async def test_export_writes_markdown_and_json_to_the_current_folder(glm_server, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "Export me please")
        await pilot.press("alt+m")
        await pilot.press("alt+j")
        await pilot.pause()
        md = sorted(tmp_path.glob("*.md"))
        js = sorted(tmp_path.glob("*.json"))
        assert len(md) == 1 and len(js) == 1
        assert "Export me please" in md[0].read_text(encoding="utf-8")
        assert app.chat.session.id in js[0].read_text(encoding="utf-8")
        messages = [n.message for n in app._notifications]
        assert any(str(md[0]) in m for m in messages)


async def test_copy_answer_and_code_blocks(glm_server, monkeypatch):
    answer = "Here:\n\n```python\nprint('hi')\n```\n\nand\n\n```\nls -l\n```\n"
    glm_server.enqueue(Reply(content=answer))
    app = make_app(glm_server)
    copied: list[str] = []
    monkeypatch.setattr(app, "copy_to_clipboard", copied.append)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "code please")
        await pilot.press("alt+c")
        await pilot.press("alt+k")
        assert copied == [answer, "print('hi')\n\nls -l\n"]


# -- long sessions -----------------------------------------------------------------------------


async def test_long_session_mounts_a_page_and_loads_older_turns_on_scroll(glm_server):
    from glmchat.ui.widgets.chat_log import FIRST_FRAME, PAGE

    store = open_store()
    turns = [stored_turn(n, thinking=n % 2 == 0) for n in range(1, 61)]
    session = stored_session(store, "Long", turns)
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        log = chat.log_view
        await pilot.pause()
        mounted = len(log.mounted_views)
        assert FIRST_FRAME < mounted <= FIRST_FRAME + PAGE, "only the turns that fill the screen are mounted"
        assert log.has_earlier
        assert len(chat.session.turns) == 60, "the older turns load after the first frame"
        assert f"{60 - mounted} earlier turns" in str(log.query_one("#earlier").content)
        log.scroll_to(y=0, animate=False, immediate=True)
        await wait_for(pilot, lambda: len(log.mounted_views) == mounted + PAGE)
        assert log.mounted_views[0].turn.id == turns[60 - mounted - PAGE].id
        assert log.scroll_y > 0, "the view stays where it was while older turns come in above"
        # Far up in the history, turns at the bottom are unmounted: the log stays bounded.
        from glmchat.ui.widgets.chat_log import MAX_MOUNTED

        for _ in range(6):
            log.scroll_to(y=0, animate=False, immediate=True)
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert len(log.mounted_views) <= MAX_MOUNTED
        assert log.has_later and not log.has_earlier
        assert log.mounted_views[0].turn.id == turns[0].id
        # Scrolling down pages the newer turns back in, and unmounts the oldest.
        for _ in range(6):
            log.scroll_end(animate=False, immediate=True)
            await pilot.pause()
            await app.workers.wait_for_complete()
            await pilot.pause()
        assert not log.has_later and log.mounted_views[-1].turn.id == turns[-1].id
        assert len(log.mounted_views) <= MAX_MOUNTED
        # A new turn replays the whole history, not just what is mounted.
        await send(pilot, "one more")
        assert len(user_messages(glm_server.last)) == 61
        assert len(open_store().load_session(session.id).turns) == 61


async def test_a_session_opens_at_its_last_turn_whole_with_older_turns_above(glm_server):
    from glmchat.ui.widgets.chat_log import FIRST_FRAME

    store = open_store()
    turns = [stored_turn(n, content=f"Answer {n}.\n\n" + "A line.\n\n" * 6) for n in range(1, 31)]
    turns[-1] = stored_turn(30, content="The last answer.")
    stored_session(store, "Long", turns)
    app = make_app(glm_server, store=store)
    async with app.run_test(size=SIZE) as pilot:
        log = app.chat.log_view
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.pause()
        views = log.mounted_views
        assert len(views) > FIRST_FRAME, "the turns above the last one are paged in after the first frame"
        assert log.max_scroll_y > 0, "they fill more than the screen"
        assert log.scroll_y == log.max_scroll_y, "the log still shows the bottom"
        last = views[-1]
        assert last.turn.id == turns[-1].id
        visible = log.content_region
        assert visible.y <= last.region.y and last.region.bottom <= visible.bottom, "the last turn is whole on screen"
        assert "The last answer." in screen_text(app)


async def test_an_error_quoting_the_host_is_shown_inert(glm_server):
    glm_server.enqueue(Reply.error(400, {"error": {"code": "1210", "message": "bad \x1b]0;pwned\x07 param"}}))
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        turn = app.chat.session.turns[-1]
        assert turn.status == TurnStatus.ERROR
        shown = "\n".join(strip.text for strip in app.screen._compositor.render_strips())
        assert "\x1b" not in shown and "\x07" not in shown


def test_live_turn_repr_does_not_carry_the_history():
    """The streaming worker is described by its arguments: that must not cost O(history)."""
    from glmchat.session import Session, TurnStatus
    from glmchat.ui.screens.chat import LiveTurn

    session = Session(turns=[stored_turn(n, content="long answer " * 500) for n in range(1, 4)])
    turn = session.new_turn("question", True)
    text = repr(LiveTurn(session=session, turn=turn, view=None, text="question"))
    assert session.id in text and turn.id in text
    assert len(text) < 200
