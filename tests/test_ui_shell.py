"""Behaviour of the components around the chat: session list and the modal screens.

Each component runs in a tiny host app with `run_test`, so every test is fast
and independent of the chat screen.
"""

from __future__ import annotations

from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.message import Message
from textual.widgets import Button, Input

from glmchat.ui.screens.confirm import ConfirmScreen
from glmchat.ui.screens.prompt import PromptScreen
from glmchat.ui.widgets.session_list import SessionList, SessionOptions

try:
    from glmchat.store import SessionSummary
except ImportError:  # the store lands in parallel; same fields as its SessionSummary
    from dataclasses import dataclass

    @dataclass
    class SessionSummary:  # type: ignore[no-redef]
        id: str
        number: int
        title: str
        host: str
        model: str
        created_at: float
        updated_at: float
        turn_count: int


BASE_TIME = 1_700_000_000.0


def summary(number: int, title: str, turns: int = 2) -> SessionSummary:
    return SessionSummary(
        id=f"{number:032x}",
        number=number,
        title=title,
        host="zai",
        model="glm-4.7",
        created_at=BASE_TIME + number,
        updated_at=BASE_TIME + number * 60,
        turn_count=turns,
    )


SUMMARIES = [
    summary(3, "Rust lifetimes explained"),
    summary(2, "Recipe for sourdough bread", turns=1),
    summary(1, "Rust async runtimes compared"),
]


def screen_text(app: App[Any]) -> str:
    """Everything the screen shows, as plain text (what a person would read)."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text for strip in strips)


# -- SessionList ---------------------------------------------------------------------------


class SessionListApp(App[None]):
    def __init__(self, summaries: list[SessionSummary], current_id: str | None) -> None:
        super().__init__()
        self.summaries = summaries
        self.current_id = current_id
        self.messages: list[Message] = []

    def compose(self) -> ComposeResult:
        yield SessionList(self.summaries, self.current_id, clock=lambda: BASE_TIME + 86_400 * 400)

    def on_session_list_selected(self, message: SessionList.Selected) -> None:
        self.messages.append(message)

    def on_session_list_new_requested(self, message: SessionList.NewRequested) -> None:
        self.messages.append(message)

    def on_session_list_rename_requested(self, message: SessionList.RenameRequested) -> None:
        self.messages.append(message)

    def on_session_list_delete_requested(self, message: SessionList.DeleteRequested) -> None:
        self.messages.append(message)

    def on_session_list_search_requested(self, message: SessionList.SearchRequested) -> None:
        self.messages.append(message)


async def test_session_list_highlights_current_session() -> None:
    app = SessionListApp(SUMMARIES, current_id=SUMMARIES[1].id)
    async with app.run_test(size=(60, 20)) as pilot:
        await pilot.pause()
        sessions = app.query_one(SessionList)
        assert sessions.highlighted_id == SUMMARIES[1].id
        assert sessions.visible_ids == [s.id for s in SUMMARIES]
        text = screen_text(app)
        assert "● Recipe for sourdough bread" in text
        assert "#2 · 1 turn ·" in text
        assert "#3 · 2 turns ·" in text


async def test_session_list_keyboard_selection_and_actions() -> None:
    app = SessionListApp(SUMMARIES, current_id=SUMMARIES[0].id)
    async with app.run_test(size=(60, 20)) as pilot:
        app.query_one(SessionOptions).focus()
        await pilot.press("down", "enter")
        await pilot.press("r", "d", "n")
        await pilot.pause()
        kinds = [(type(m).__name__, getattr(m, "session_id", None)) for m in app.messages]
        assert kinds == [
            ("Selected", SUMMARIES[1].id),
            ("RenameRequested", SUMMARIES[1].id),
            ("DeleteRequested", SUMMARIES[1].id),
            ("NewRequested", None),
        ]
        assert all(m.control is app.query_one(SessionList) for m in app.messages)


async def test_session_list_mouse_selection_and_buttons() -> None:
    app = SessionListApp(SUMMARIES, current_id=SUMMARIES[0].id)
    async with app.run_test(size=(60, 20)) as pilot:
        options = app.query_one(SessionOptions)
        # Each session is two lines: the third session starts on line 4 of the list.
        await pilot.click(options, offset=(4, 4))
        await pilot.pause()
        assert [(type(m).__name__, m.session_id) for m in app.messages] == [("Selected", SUMMARIES[2].id)]
        app.messages.clear()
        await pilot.click("#session-new")
        await pilot.click("#session-delete")
        await pilot.pause()
        assert [type(m).__name__ for m in app.messages] == ["NewRequested", "DeleteRequested"]
        assert app.messages[1].session_id == SUMMARIES[2].id


async def test_session_list_filter_is_instant_and_enter_requests_search() -> None:
    app = SessionListApp(SUMMARIES, current_id=None)
    async with app.run_test(size=(60, 20)) as pilot:
        sessions = app.query_one(SessionList)
        sessions.focus_search()
        await pilot.press(*"rust")
        await pilot.pause()
        assert sessions.visible_ids == [SUMMARIES[0].id, SUMMARIES[2].id]
        assert "sourdough" not in screen_text(app)
        await pilot.press(*" async")
        await pilot.pause()
        assert sessions.visible_ids == [SUMMARIES[2].id]
        await pilot.press("enter")
        await pilot.pause()
        assert [(type(m).__name__, m.query) for m in app.messages] == [("SearchRequested", "rust async")]
        # A reload (after a rename, say) keeps the filter.
        sessions.load(SUMMARIES + [summary(9, "more rust async")], current_id=None)
        await pilot.pause()
        assert sessions.visible_ids == [SUMMARIES[2].id, f"{9:032x}"]
        # Escape in the field clears the filter.
        await pilot.press("escape")
        await pilot.pause()
        assert len(sessions.visible_ids) == 4


async def test_session_list_titles_are_inert_and_not_markup() -> None:
    nasty = summary(7, "[bold red]pwn[/] \x1b]52;c;ZXZpbA==\x07 end\nsecond line")
    app = SessionListApp([nasty], current_id=None)
    async with app.run_test(size=(80, 10)) as pilot:
        await pilot.pause()
        text = screen_text(app)
        assert "[bold red]pwn[/]" in text
        assert "\x1b" not in text and "\x07" not in text
        assert "␛]52;c;ZXZpbA==␇ end second line" in text


async def test_session_list_empty_disables_rename_and_delete() -> None:
    app = SessionListApp([], current_id=None)
    async with app.run_test(size=(60, 20)) as pilot:
        assert app.query_one("#session-rename", Button).disabled
        assert app.query_one("#session-delete", Button).disabled
        app.query_one(SessionOptions).focus()
        await pilot.press("d", "r")
        await pilot.pause()
        assert app.messages == []


# -- ConfirmScreen / PromptScreen -----------------------------------------------------------


class ModalHost(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.results: list[Any] = []

    def record(self, value: Any) -> None:
        self.results.append(value)


@pytest.mark.parametrize(
    ("keys", "expected"),
    [(("y",), True), (("escape",), False), (("n",), False), (("enter",), False), (("tab", "enter"), True)],
)
async def test_confirm_screen_dismiss_values(keys: tuple[str, ...], expected: bool) -> None:
    app = ModalHost()
    async with app.run_test(size=(80, 20)) as pilot:
        app.push_screen(ConfirmScreen("Delete “x”?"), app.record)
        await pilot.pause()
        # The focus starts on Cancel: a stray Enter never deletes.
        await pilot.press(*keys)
        await pilot.pause()
        assert app.results == [expected]


async def test_confirm_screen_shows_message_as_plain_text_and_label() -> None:
    app = ModalHost()
    async with app.run_test(size=(80, 20)) as pilot:
        app.push_screen(ConfirmScreen("Delete [b]x[/b]\x1b[2J?", confirm_label="Remove"), app.record)
        await pilot.pause()
        text = screen_text(app)
        assert "Delete [b]x[/b]␛[2J?" in text
        assert "Remove" in text
        await pilot.click("#confirm")
        await pilot.pause()
        assert app.results == [True]


async def test_prompt_screen_returns_stripped_text() -> None:
    app = ModalHost()
    async with app.run_test(size=(80, 20)) as pilot:
        app.push_screen(PromptScreen("Rename session", value="old"), app.record)
        await pilot.pause()
        field = app.screen.query_one(Input)
        assert field.value == "old"
        field.value = ""
        await pilot.press(*"  new title ", "enter")
        await pilot.pause()
        assert app.results == ["new title"]


async def test_prompt_screen_cancel_and_blank_give_none() -> None:
    app = ModalHost()
    async with app.run_test(size=(80, 20)) as pilot:
        app.push_screen(PromptScreen("Rename", value="keep"), app.record)
        await pilot.pause()
        await pilot.press("escape")
        app.push_screen(PromptScreen("Rename", value="   "), app.record)
        await pilot.pause()
        await pilot.click("#ok")
        await pilot.pause()
        assert app.results == [None, None]
