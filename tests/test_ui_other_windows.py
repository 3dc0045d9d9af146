"""A second writer on the open session: the window takes its turns in before it sends, and shows them while idle.

The second writer is another `Store` on the same file (another connection, as
another process is) or the real `glmchat ask -c` in a subprocess.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from glmchat.session import Session, Turn, TurnStatus
from glmchat.store import Store
from glmchat.ui.screens.chat import ChatScreen
from tests.glm_server import default_reasoning
from tests.ui_support import KEY, SIZE, make_app, open_store, screen_text, stored_session, stored_turn, wait_for

REPO = Path(__file__).resolve().parents[1]

ODD = "Their reasoning\r\n  kept exactly:  trailing spaces  \n\ttabs → arrows\n"


def assistant_messages(request) -> list[dict]:
    return [m for m in request.json["messages"] if m["role"] == "assistant"]


def user_messages(request) -> list[str]:
    return [m["content"] for m in request.json["messages"] if m["role"] == "user"]


def their_turn(n: int, **kwargs) -> Turn:
    turn = stored_turn(n, **kwargs)
    turn.id = f"{n:032x}".replace("0", "e", 4)  # not an id stored_turn would give
    return turn


def add_elsewhere(session_id: str, turn: Turn, *, after: int | None = None) -> None:
    """Another writer adds a finished turn, the way `glmchat ask -c` does (begin, then finish).

    `after`: the number of path turns it follows (a sibling of the next one: an edit); all of them by default.
    """
    other = open_store()
    try:
        session = other.load_session(session_id)
        del session.turns[len(session.turns) if after is None else after :]
        turn.parent_id = session.turns[-1].id if session.turns else None
        session.turns.append(turn)
        other.begin_turn(session, turn)
        other.finish_turn(turn)
    finally:
        other.close()


def two_turn_session() -> Session:
    store = open_store()
    session = stored_session(store, "Shared", [stored_turn(1), stored_turn(2)])
    store.close()
    return session


async def test_a_send_first_takes_in_the_turn_another_writer_added(glm_server, monkeypatch):
    # No idle checks: the send itself must notice.
    monkeypatch.setattr(ChatScreen, "IDLE_SYNC_INTERVAL", 3600.0)
    session = two_turn_session()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        assert [t.user_text for t in chat.session.turns] == ["Question 1", "Question 2"]
        third = their_turn(3, reasoning=ODD, user="Asked in another window", content="Answered there.")
        add_elsewhere(session.id, third)

        chat.composer.set_text("Question 4")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()

        request = glm_server.last
        assert user_messages(request) == ["Question 1", "Question 2", "Asked in another window", "Question 4"]
        replayed = assistant_messages(request)
        assert [m["reasoning_content"] for m in replayed] == [
            stored_turn(1).reasoning, stored_turn(2).reasoning, ODD
        ], "the other writer's reasoning, byte for byte"
        assert [t.user_text for t in chat.session.turns][-2:] == ["Asked in another window", "Question 4"]
        assert "Asked in another window" in screen_text(app)
        # The store and the window agree on the order.
        stored = [t.user_text for t in open_store().load_session(session.id).turns]
        assert stored == ["Question 1", "Question 2", "Asked in another window", "Question 4"]


async def test_an_idle_window_shows_the_other_writers_turn(glm_server, monkeypatch):
    monkeypatch.setattr(ChatScreen, "IDLE_SYNC_INTERVAL", 0.1)
    session = two_turn_session()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        add_elsewhere(session.id, their_turn(3, user="Hello from elsewhere", content="Shown **here** too."))
        await wait_for(pilot, lambda: "Hello from elsewhere" in screen_text(app))
        assert "Shown here too." in screen_text(app)
        views = app.chat.log_view.mounted_views
        assert [v.turn.user_text for v in views][-1] == "Hello from elsewhere"
        assert views[-1].last and not views[-2].last, "only the newest turn offers regenerate and edit"
        assert any("changed in another window" in n.message for n in app._notifications)
        assert glm_server.chat_requests() == [], "seeing it sends nothing"


async def test_our_own_turns_are_not_taken_for_another_writers(glm_server, monkeypatch):
    monkeypatch.setattr(ChatScreen, "IDLE_SYNC_INTERVAL", 0.05)
    two_turn_session()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        chat.composer.set_text("mine")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        view = chat.log_view.mounted_views[-1]
        # Someone writes elsewhere (another session), so the window has to look.
        other = open_store()
        stored_session(other, "Unrelated", [stored_turn(9)], number_hint=7)
        other.close()
        await pilot.pause(0.3)
        assert chat.log_view.mounted_views[-1] is view, "our own turn is not drawn again"
        assert not any("another window" in n.message for n in app._notifications)


async def test_the_last_turn_edited_elsewhere_is_what_is_shown_and_sent(glm_server, monkeypatch):
    monkeypatch.setattr(ChatScreen, "IDLE_SYNC_INTERVAL", 3600.0)
    session = two_turn_session()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        # The other window edits the last message and resends it: a sibling of turn 2 takes its place on the path.
        add_elsewhere(session.id, their_turn(5, user="Question 2, edited", reasoning="edited reasoning  \n"), after=1)
        await chat.sync_with_store()
        await pilot.pause()
        text = screen_text(app)
        assert "Question 2, edited" in text
        assert [t.user_text for t in chat.session.turns] == ["Question 1", "Question 2, edited"]
        assert [v.turn.user_text for v in chat.log_view.mounted_views] == ["Question 1", "Question 2, edited"]

        chat.composer.set_text("next")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        request = glm_server.last
        assert user_messages(request) == ["Question 1", "Question 2, edited", "next"]
        assert assistant_messages(request)[-1]["reasoning_content"] == "edited reasoning  \n"


async def test_an_answer_rewritten_in_place_elsewhere_replaces_its_view(glm_server, monkeypatch):
    monkeypatch.setattr(ChatScreen, "IDLE_SYNC_INTERVAL", 3600.0)
    session = two_turn_session()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        other = open_store()
        last = other.load_session(session.id).turns[-1]
        last.step.content = "A corrected answer."
        other.update_turn(last)
        other.close()
        await chat.sync_with_store()
        await pilot.pause()
        assert chat.session.turns[-1].content == "A corrected answer."
        assert "A corrected answer." in screen_text(app)
        assert chat.log_view.mounted_views[-1].turn is chat.session.turns[-1]


async def test_the_session_deleted_elsewhere_keeps_the_text_and_sends_nothing(glm_server, monkeypatch):
    monkeypatch.setattr(ChatScreen, "IDLE_SYNC_INTERVAL", 3600.0)
    session = two_turn_session()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        other = open_store()
        other.delete_session(session.id)
        other.close()
        chat.composer.set_text("a message for a session that is gone")
        await pilot.press("enter")
        await pilot.pause()
        assert glm_server.chat_requests() == []
        assert chat.session.id != session.id and chat.session.turns == []
        assert chat.composer.text == "a message for a session that is gone"
        assert any("deleted in another window" in n.message for n in app._notifications)
        assert "Question 1" not in screen_text(app)
        # The next Enter sends it, in the new session.
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        assert user_messages(glm_server.last) == ["a message for a session that is gone"]


async def test_a_long_session_partly_loaded_puts_the_new_turn_after_all_the_others(glm_server, monkeypatch):
    from glmchat.ui.widgets.chat_log import PAGE

    monkeypatch.setattr(ChatScreen, "IDLE_SYNC_INTERVAL", 3600.0)
    store = open_store()
    count = PAGE * 3
    session = stored_session(store, "Long", [stored_turn(i) for i in range(1, count + 1)])
    store.close()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        add_elsewhere(session.id, their_turn(count + 1, user="From elsewhere"))
        chat.composer.set_text("after it")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        sent = user_messages(glm_server.last)
        assert sent == [f"Question {i}" for i in range(1, count + 1)] + ["From elsewhere", "after it"]


def test_a_real_glmchat_ask_c_in_another_process(glm_server, glmchat_home):
    """The window is open; `glmchat ask -c` adds a turn; the window's next request replays it."""
    import asyncio

    session = two_turn_session()
    app = make_app(glm_server)

    async def scenario() -> None:
        async with app.run_test(size=SIZE) as pilot:
            result = await asyncio.to_thread(
                subprocess.run,
                [sys.executable, "-m", "glmchat", "ask", "-c", "--base-url", glm_server.base_url("zai"),
                 "from the terminal"],
                cwd=REPO, capture_output=True, text=True, timeout=60,
                env={**os.environ, "PYTHONPATH": str(REPO), "ZAI_API_KEY": KEY, "GLMCHAT_HOME": str(glmchat_home)},
            )  # fmt: skip
            assert result.returncode == 0, result.stderr
            app.chat.composer.set_text("and from the window")
            await pilot.press("enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert "from the terminal" in screen_text(app)

    asyncio.run(scenario())
    first, second = glm_server.chat_requests()
    assert user_messages(first) == ["Question 1", "Question 2", "from the terminal"]
    assert user_messages(second) == ["Question 1", "Question 2", "from the terminal", "and from the window"]
    assert assistant_messages(second)[-1]["reasoning_content"] == default_reasoning("from the terminal")
    with Store.open(glmchat_home) as store:
        turns = store.load_session(session.id).turns
    assert [t.user_text for t in turns] == ["Question 1", "Question 2", "from the terminal", "and from the window"]
    assert all(t.status == TurnStatus.COMPLETE for t in turns)


async def test_deleted_elsewhere_while_editing_keeps_the_edit_and_the_draft_before_it(glm_server, monkeypatch):
    monkeypatch.setattr(ChatScreen, "IDLE_SYNC_INTERVAL", 3600.0)
    session = two_turn_session()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        chat.composer.set_text("typed before the edit")
        chat.action_edit_last()
        chat.composer.set_text("Question 2, being edited")
        other = open_store()
        other.delete_session(session.id)
        other.close()
        await chat.sync_with_store()
        await pilot.pause()
        assert chat.session.id != session.id
        assert chat.composer.text == "Question 2, being edited\n\ntyped before the edit"
        assert glm_server.chat_requests() == []
