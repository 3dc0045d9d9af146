"""Branches in the TUI: edit or regenerate any turn as a sibling, switch with ‹ › and ←/→, fork from a turn.

What is checked each time: the screen (the `‹ n/m ›` line, which answers show),
the request (the path replayed, reasoning byte-exact) and the store (the old
path kept, the head where the window says it is).
"""

from __future__ import annotations

from glmchat.ui.widgets.turn import TurnView
from tests.glm_server import Reply
from tests.ui_support import SIZE, make_app, open_store, screen_text, stored_session, stored_turn, wait_for

ODD = "Reasoning kept\r\n exactly  \t→ "


def three_turns():
    store = open_store()
    turns = [stored_turn(1, reasoning=ODD), stored_turn(2), stored_turn(3)]
    session = stored_session(store, "Branchy", turns)
    store.close()
    return session


def user_messages(request) -> list[str]:
    return [m["content"] for m in request.json["messages"] if m["role"] == "user"]


def view_of(app, n: int) -> TurnView:
    return app.chat.log_view.mounted_views[n]


async def act(pilot, view: TurnView, action: str) -> None:
    """What a click on one of the footer's actions does."""
    view.status.action_turn(action)
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def test_editing_an_earlier_message_adds_a_branch_and_keeps_the_old_path(glm_server):
    session = three_turns()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        assert "‹" not in screen_text(app), "no branches yet"
        await act(pilot, view_of(app, 1), "edit")
        assert chat.composer.text == "Question 2" and chat.composer.prompt.has_focus
        chat.composer.set_text("Question 2, put better")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()

        request = glm_server.last
        assert user_messages(request) == ["Question 1", "Question 2, put better"]
        replayed = [m for m in request.json["messages"] if m["role"] == "assistant"]
        assert [m["reasoning_content"] for m in replayed] == [ODD], "the shared prefix, byte for byte"
        assert [t.user_text for t in chat.session.turns] == ["Question 1", "Question 2, put better"]
        assert [v.turn.user_text for v in chat.log_view.mounted_views] == ["Question 1", "Question 2, put better"]
        text = screen_text(app)
        assert "‹ 2/2 ›" in text and "Answer **3**" not in text and "Answer 3" not in text

        # The old path is there: ‹ goes back to it, with its third turn.
        await act(pilot, view_of(app, 1), "branch_previous")
        assert [t.user_text for t in chat.session.turns] == ["Question 1", "Question 2", "Question 3"]
        text = screen_text(app)
        assert "‹ 1/2 ›" in text and "Answer 3" in text
        assert app.focused is view_of(app, 1).status, "the footer keeps the focus: ← and → go on"

        # → (the key, on the focused footer) comes back to the edit.
        await pilot.press("right")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert [t.user_text for t in chat.session.turns] == ["Question 1", "Question 2, put better"]
    # The store keeps both paths and the one shown last.
    stored = open_store().load_session(session.id)
    assert [t.user_text for t in stored.turns] == ["Question 1", "Question 2, put better"]
    tree = open_store().load_tree(session.id)
    assert sorted(t.user_text for t in tree.turns) == ["Question 1", "Question 2", "Question 2, put better", "Question 3"]


async def test_regenerating_an_earlier_turn_replays_only_what_came_before_it(glm_server):
    three_turns()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        chat.composer.set_text("a draft that stays")
        glm_server.enqueue(Reply(content="A second answer to question 2."))
        await act(pilot, view_of(app, 1), "regenerate")
        request = glm_server.last
        assert user_messages(request) == ["Question 1", "Question 2"]
        assert [m["reasoning_content"] for m in request.json["messages"] if m["role"] == "assistant"] == [ODD]
        assert [t.content for t in chat.session.turns] == ["Answer **1**.", "A second answer to question 2."]
        assert chat.session.branches[chat.session.turns[1].id].position == 2
        assert chat.composer.text == "a draft that stays"
        assert "‹ 2/2 ›" in screen_text(app)


async def test_a_branch_of_the_first_turn_starts_the_path_afresh(glm_server):
    three_turns()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        await act(pilot, view_of(app, 0), "edit")
        chat.composer.set_text("A new start")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert user_messages(glm_server.last) == ["A new start"]
        assert [t.user_text for t in chat.session.turns] == ["A new start"]
        assert chat.session.turns[0].parent_id is None
        assert "‹ 2/2 ›" in screen_text(app)


async def test_fork_from_a_turn_opens_a_new_session_and_leaves_the_source(glm_server):
    source = three_turns()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        await act(pilot, view_of(app, 1), "fork")
        await wait_for(pilot, lambda: chat.session.id != source.id)
        assert [t.user_text for t in chat.session.turns] == ["Question 1", "Question 2"]
        assert any("Forked" in n.message for n in app._notifications)
        chat.composer.set_text("Onwards")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        assert user_messages(glm_server.last) == ["Question 1", "Question 2", "Onwards"]
    assert [t.user_text for t in open_store().load_session(source.id).turns] == ["Question 1", "Question 2", "Question 3"]


async def test_the_palette_switches_the_newest_branched_turn(glm_server):
    three_turns()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        await act(pilot, view_of(app, 2), "regenerate")
        assert chat.session.branches[chat.session.turns[2].id].position == 2
        chat.composer.focus_prompt()
        await chat.action_branch(-1)
        await pilot.pause()
        assert chat.session.turns[2].content == "Answer **3**."
        assert "‹ 1/2 ›" in screen_text(app)
        await chat.action_branch(-1)  # already the first: nothing happens
        assert chat.session.turns[2].content == "Answer **3**."
        titles = [c.title for c in app.get_system_commands(chat)]
        assert {"Previous branch", "Next branch", "Fork from here"} <= set(titles)


async def test_a_search_hit_on_another_branch_shows_that_branch(glm_server):
    from glmchat.ui.screens.search import SearchScreen, SearchTarget

    session = three_turns()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        glm_server.enqueue(Reply(content="A flamingo this time."))
        await act(pilot, view_of(app, 1), "regenerate")
        await chat.switch_branch(chat.session.turns[1], -1)  # back to the first path
        assert chat.session.turns[1].content == "Answer **2**."
        [hit] = open_store().search("flamingo")
        assert hit.branch == "branch 2/2 at turn 2"
        await pilot.press("ctrl+f")
        await pilot.pause()
        assert isinstance(app.screen, SearchScreen)
        app.screen.dismiss(SearchTarget.from_hit(hit))
        await wait_for(pilot, lambda: "A flamingo this time." in screen_text(app))
        assert [t.content for t in chat.session.turns] == ["Answer **1**.", "A flamingo this time."]
        assert "‹ 2/2 ›" in screen_text(app)
    assert open_store().load_session(session.id).turns[-1].content == "A flamingo this time."
