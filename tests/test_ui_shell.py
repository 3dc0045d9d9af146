"""Behaviour of the components around the chat: session list, the modal screens, the local probe.

Each component runs in a tiny host app with `run_test`, so every test is fast
and independent of the chat screen.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Input, OptionList, Select, Static, Switch, TextArea

from glmchat.config import Config
from glmchat.hosts import BUILTIN_HOSTS
from glmchat.session import Session
from glmchat.store import SearchHit, SessionSummary, Store
from glmchat.ui.probe import Candidate, LocalServer, probe_local_servers
from glmchat.ui.screens.confirm import ConfirmScreen
from glmchat.ui.screens.help import HelpScreen, collect_help, format_key, nodes_of
from glmchat.ui.screens.prompt import PromptScreen
from glmchat.ui.screens.search import SearchScreen, hit_prompt
from glmchat.ui.screens.settings import SettingsResult, SettingsScreen
from glmchat.ui.screens.setup import SetupResult, SetupScreen
from glmchat.ui.themes import THEME_VARIABLE_DEFAULTS, load_themes, register_themes
from glmchat.ui.widgets.session_list import SessionList, SessionOptions

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


# -- probe -----------------------------------------------------------------------------------


MODEL_ROUTES: dict[str, Any] = {
    "/api/tags": {"models": [{"name": "llama3:8b"}, {"name": "glm-4.7:latest"}]},
    "/v1/models": {"object": "list", "data": [{"id": "zai-org/GLM-4.7-FP8", "object": "model"}]},
}


def _handler(routes: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server's name
            body = routes.get(self.path, routes.get("*"))
            if body is None:
                self.send_response(404)
                self.end_headers()
                return
            data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler


@contextmanager
def serve(routes: dict[str, Any]) -> Iterator[int]:
    """An HTTP server on a free loopback port answering GETs from `routes`; yields the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(routes))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture
def model_server() -> Iterator[int]:
    """A fake local model server (Ollama and vLLM listings); yields its port."""
    with serve(MODEL_ROUTES) as port:
        yield port


def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_probe_finds_ollama_and_openai_style_servers(model_server: int) -> None:
    found = await probe_local_servers(
        1.0,
        candidates=[
            Candidate("ollama", model_server, "ollama"),
            Candidate("vllm", free_port(), "openai"),
            Candidate("llamacpp", model_server, "openai"),
        ],
    )
    assert found == [
        LocalServer("ollama", f"http://127.0.0.1:{model_server}", ("llama3:8b", "glm-4.7:latest")),
        LocalServer("llamacpp", f"http://127.0.0.1:{model_server}/v1", ("zai-org/GLM-4.7-FP8",)),
    ]


async def test_probe_with_nothing_listening_finds_nothing() -> None:
    assert await probe_local_servers(0.5, candidates=[Candidate("ollama", free_port(), "ollama")]) == []


@pytest.mark.parametrize(
    "routes",
    [
        {"*": "<html>a web app</html>"},  # some other server on the port
        {"*": {"models": "not a list", "data": {}}},  # JSON, but no listing
        {},  # 404 everywhere
    ],
)
async def test_probe_ignores_servers_that_are_not_model_servers(routes: dict[str, Any]) -> None:
    with serve(routes) as port:
        found = await probe_local_servers(
            1.0, candidates=[Candidate("ollama", port, "ollama"), Candidate("vllm", port, "openai")]
        )
    assert found == []


# -- SetupScreen -----------------------------------------------------------------------------

SECRET = "sk-test-very-secret-key-0123456789abcdef"


def setup_screen(probe: bool = False, candidates: list[Candidate] | None = None, **config: Any) -> SetupScreen:
    return SetupScreen(
        Config(**config),
        BUILTIN_HOSTS,
        probe=probe,
        probe_candidates=candidates or [],
        probe_timeout=1.0,
    )


async def test_setup_lists_every_host_with_its_key_variable() -> None:
    app = ModalHost()
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(setup_screen(), app.record)
        await pilot.pause()
        text = screen_text(app)
        for host in BUILTIN_HOSTS.values():
            assert host.name in text
        assert "reads $ZAI_API_KEY (not set)" in text
        assert "reads $CEREBRAS_API_KEY" in text
        assert "http://127.0.0.1:11434 · no key" in text
        assert "Looking for local servers" not in text  # probe off


async def test_setup_pasted_key_is_masked_and_returned(monkeypatch: pytest.MonkeyPatch) -> None:
    app = ModalHost()
    async with app.run_test(size=(100, 40)) as pilot:
        screen = setup_screen()
        app.push_screen(screen, app.record)
        await pilot.pause()
        assert app.focused is screen.query_one("#key", Input)
        await pilot.press(*SECRET)
        await pilot.pause()
        text = screen_text(app)
        assert SECRET not in text
        assert SECRET[-6:] not in text
        assert "•" * 10 in text
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [SetupResult("zai", SECRET, None)]
    assert SECRET not in repr(app.results[0])


async def test_setup_needs_a_key_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    app = ModalHost()
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(setup_screen(), app.record)
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.results == []
        assert "Paste your Z.ai API key, or use $ZAI_API_KEY." in screen_text(app)
        # Choosing the environment variable when it is not set says so.
        await pilot.click("#use-env")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "$ZAI_API_KEY is not set here" in screen_text(app)
        # A paste with a space in it is refused.
        app.screen.query_one("#key", Input).value = "abc def"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert "spaces or odd characters" in screen_text(app)
        assert app.results == []


async def test_setup_uses_the_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CEREBRAS_API_KEY", SECRET)
    app = ModalHost()
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(setup_screen(host="cerebras"), app.record)
        await pilot.pause()
        text = screen_text(app)
        assert "reads $CEREBRAS_API_KEY (set)" in text
        assert "$CEREBRAS_API_KEY is set in this environment" in text
        assert SECRET not in text
        assert app.screen.query_one("#use-env").value is True
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert app.results == [SetupResult("cerebras", None, None)]


async def test_setup_local_host_needs_no_key() -> None:
    app = ModalHost()
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(setup_screen(host="vllm"), app.record)
        await pilot.pause()
        assert not app.screen.query_one("#key-section").display or app.screen.query_one(
            "#key-section"
        ).has_class("-hidden")
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [SetupResult("vllm")]


async def test_setup_offers_a_local_server_it_finds(model_server: int) -> None:
    app = ModalHost()
    candidates = [Candidate("ollama", model_server, "ollama"), Candidate("vllm", free_port(), "openai")]
    async with app.run_test(size=(100, 40)) as pilot:
        screen = setup_screen(probe=True, candidates=candidates)
        app.push_screen(screen, app.record)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = screen_text(app)
        assert "Found on this machine: Ollama." in text
        assert f"Ollama (found)  running at http://127.0.0.1:{model_server} · 2 models" in text
        options = screen.query_one("#hosts", OptionList)
        assert options.get_option_at_index(0).id == "local:ollama"
        options.focus()
        await pilot.press("home", "enter")
        await pilot.pause()
    assert app.results == [SetupResult("ollama", None, f"http://127.0.0.1:{model_server}", "glm-4.7:latest")]


async def test_setup_says_when_no_local_server_is_found() -> None:
    app = ModalHost()
    async with app.run_test(size=(100, 40)) as pilot:
        screen = setup_screen(probe=True, candidates=[Candidate("ollama", free_port(), "ollama")])
        app.push_screen(screen, app.record)
        await pilot.pause()
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert "No local servers found" in screen_text(app)
        await pilot.press("escape")
        await pilot.pause()
    assert app.results == [None]


# -- SettingsScreen --------------------------------------------------------------------------


class ThemedHost(ModalHost):
    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(THEME_VARIABLE_DEFAULTS)

    def on_mount(self) -> None:
        self.theme_result = load_themes(None)
        register_themes(self, self.theme_result)
        self.theme = "glm-dark"


def settings_screen(app: ThemedHost, session: Session | None = None, **config: Any) -> SettingsScreen:
    return SettingsScreen(
        session if session is not None else Session(), Config(**config), BUILTIN_HOSTS, app.theme_result.names
    )


async def test_settings_unchanged_gives_no_changes() -> None:
    app = ThemedHost()
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(settings_screen(app), app.record)
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert app.results == [SettingsResult({})]


async def test_settings_returns_only_what_changed() -> None:
    app = ThemedHost()
    session = Session(temperature=1.0, top_p=0.95, max_tokens=None, system_prompt="")
    async with app.run_test(size=(100, 40)) as pilot:
        screen = settings_screen(app, session)
        app.push_screen(screen, app.record)
        await pilot.pause()
        screen.query_one("#temperature", Input).value = "0.6"
        screen.query_one("#max_tokens", Input).value = "4,096"
        screen.query_one("#top_p", Input).value = ""
        screen.query_one("#system_prompt", TextArea).text = "Be brief.\n"
        await pilot.pause()
        await pilot.click("#save")
        await pilot.pause()
    [result] = app.results
    assert result.changes == {"temperature": 0.6, "max_tokens": 4096, "top_p": None, "system_prompt": "Be brief.\n"}
    result.apply_to_session(session)
    assert (session.temperature, session.top_p, session.max_tokens) == (0.6, None, 4096)
    config = Config()
    result.apply_to_config(config, as_defaults=True)
    assert (config.temperature, config.top_p, config.max_tokens) == (0.6, 0.95, 4096)


async def test_settings_invalid_values_are_explained_inline() -> None:
    app = ThemedHost()
    async with app.run_test(size=(100, 60)) as pilot:
        screen = settings_screen(app)
        app.push_screen(screen, app.record)
        await pilot.pause()
        screen.query_one("#temperature", Input).value = "hot"
        screen.query_one("#top_p", Input).value = "0"
        screen.query_one("#max_tokens", Input).value = "999999999"
        screen.query_one("#model", Input).value = "glm 4.7"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.results == []
        errors = {
            name: str(screen.query_one(f"#{name}-error", Static).render())
            for name in ("model", "temperature", "top_p", "max_tokens")
        }
        assert errors == {
            "model": "A model name has no spaces or control characters.",
            "temperature": "Temperature must be a number (or empty for the host's default).",
            "top_p": "Top p must be more than 0 and at most 1.",
            "max_tokens": "Max tokens must be from 1 to 131,072 on Z.ai.",
        }
        assert app.focused is screen.query_one("#model")
        # Fixing a field clears its error.
        screen.query_one("#temperature", Input).value = "0.7"
        await pilot.pause()
        assert not screen.query_one("#temperature-error").display


async def test_settings_host_without_preserved_thinking_disables_the_switch() -> None:
    app = ThemedHost()
    async with app.run_test(size=(100, 40)) as pilot:
        screen = settings_screen(app)
        app.push_screen(screen, app.record)
        await pilot.pause()
        switch = screen.query_one("#preserve_thinking", Switch)
        assert switch.value and not switch.disabled
        screen.query_one("#host", Select).value = "runware"
        await pilot.pause()
        assert switch.disabled and not switch.value
        assert "Runware's task API cannot carry earlier reasoning" in str(
            screen.query_one("#preserve-hint", Static).render()
        )
        assert screen.query_one("#model", Input).value == "zai-glm-4-7"
        # Back to a host that can: the switch comes back on.
        screen.query_one("#host", Select).value = "zai"
        await pilot.pause()
        assert switch.value and not switch.disabled
        screen.query_one("#host", Select).value = "runware"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
    assert app.results == [
        SettingsResult({"host": "runware", "model": "zai-glm-4-7", "preserve_thinking": False})
    ]


async def test_settings_theme_previews_live_and_cancel_restores_it() -> None:
    app = ThemedHost()
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(settings_screen(app), app.record)
        await pilot.pause()
        app.screen.query_one("#theme", Select).value = "glm-light"
        await pilot.pause()
        assert app.theme == "glm-light"
        await pilot.press("escape")
        await pilot.pause()
        assert app.theme == "glm-dark"
        assert app.results == [None]

        app.push_screen(settings_screen(app), app.record)
        await pilot.pause()
        app.screen.query_one("#theme", Select).value = "glm-ember"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.theme == "glm-ember"
    assert app.results[1] == SettingsResult({"theme": "glm-ember"})
    assert app.results[1].theme == "glm-ember"


# -- SearchScreen ----------------------------------------------------------------------------


def filled_store(folder: Path) -> tuple[Store, dict[str, str]]:
    """A store with two sessions; returns it and the ids of the interesting turns."""
    store = Store.open(folder)
    ids: dict[str, str] = {}
    bread = Session(title="Baking")
    turn = bread.new_turn("How long should sourdough proof?", thinking=True)
    turn.step.reasoning, turn.step.content = "Consider the kitchen temperature.", "About 4 hours at room temperature."
    turn.finish()
    ids["bread"] = turn.id
    rust = Session(title="Rust \x1b[31mred\x1b[0m title")
    turn = rust.new_turn("Explain lifetimes", thinking=False)
    turn.step.content = "Lifetimes tell the borrow checker how long references live."
    turn.finish()
    ids["rust"] = turn.id
    ids["rust_session"], ids["bread_session"] = rust.id, bread.id
    store.save_session(bread)
    store.save_session(rust)
    return store, ids


async def test_search_screen_finds_turns_and_opens_one(tmp_path: Path) -> None:
    store, ids = filled_store(tmp_path)
    app = ModalHost()
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            app.push_screen(SearchScreen(store, "temperature"), app.record)
            await app.workers.wait_for_complete()
            await pilot.pause()
            screen = app.screen
            assert isinstance(screen, SearchScreen)
            assert [h.turn_id for h in screen.hits] == [ids["bread"]]
            text = screen_text(app)
            assert "1 match" in text
            assert "Baking" in text
            await pilot.press("down", "enter")
            await pilot.pause()
    finally:
        store.close()
    assert [(r.session_id, r.turn_id) for r in app.results] == [(ids["bread_session"], ids["bread"])]


async def test_search_screen_typing_searches_again_and_reports_no_match(tmp_path: Path) -> None:
    store, ids = filled_store(tmp_path)
    app = ModalHost()
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            app.push_screen(SearchScreen(store, ""), app.record)
            await pilot.pause()
            assert "Type to search every session" in screen_text(app)
            await pilot.press(*"borrow")
            await pilot.pause(0.4)
            await app.workers.wait_for_complete()
            await pilot.pause()
            screen = app.screen
            assert [h.turn_id for h in screen.hits] == [ids["rust"]]
            text = screen_text(app)
            # The title's escape sequence is shown inert, never sent to the terminal.
            assert "Rust ␛[31mred␛[0m title" in text
            assert "[answer]" in text
            # Enter in the field opens the top hit once its results are shown.
            await pilot.press("ctrl+u", *"zebra", "enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            assert screen.hits == []
            assert "No matches for 'zebra'." in screen_text(app)
            await pilot.press("ctrl+u", *"lifetimes", "enter")
            await app.workers.wait_for_complete()
            await pilot.pause()
            await pilot.press("enter")
            await pilot.pause()
    finally:
        store.close()
    assert [(r.session_id, r.turn_id) for r in app.results] == [(ids["rust_session"], ids["rust"])]


def test_hit_prompt_marks_matches_and_keeps_offsets_with_control_characters() -> None:
    snippet = "a\x1b[2Jb needle c\nd NEEDLE"
    first = snippet.index("needle")
    second = snippet.index("NEEDLE")
    hit = SearchHit(
        session_id="s",
        turn_id="t",
        title="T",
        snippet=snippet,
        field="reasoning",
        session_number=4,
        highlights=((first, first + 6), (second, second + 6)),
    )
    content = hit_prompt(hit)
    assert content.plain == "T #4  [reasoning]\n  a␛[2Jb needle c d NEEDLE"
    marked = [content.plain[span.start : span.end] for span in content.spans if "underline" in str(span.style)]
    assert marked == ["needle", "NEEDLE"]


# -- HelpScreen ------------------------------------------------------------------------------


class BoundScreen(Screen[None]):
    BINDINGS = [
        Binding("escape", "stop", "Stop", tooltip="Stop generating."),
        Binding("ctrl+o", "fold_all", "Fold all", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Input(id="plain-input")
        yield SessionList(SUMMARIES, None)

    def action_stop(self) -> None:
        pass

    def action_fold_all(self) -> None:
        pass


class BoundApp(ModalHost):
    BINDINGS = [
        Binding("ctrl+t", "toggle_thinking", "Thinking", tooltip="Toggle thinking for the next turn."),
        Binding("f1,question_mark", "help", "Help"),
    ]

    def on_mount(self) -> None:
        self.push_screen(BoundScreen())

    def action_toggle_thinking(self) -> None:
        pass

    def action_help(self) -> None:
        self.push_screen(HelpScreen())  # the app and screen below are read when it is created


def test_format_key() -> None:
    assert format_key("ctrl+t") == "Ctrl+T"
    assert format_key("escape") == "Esc"
    assert format_key("slash") == "/"
    assert format_key("f2") == "F2"
    assert format_key("shift+enter") == "Shift+Enter"
    assert format_key("d") == "d"


async def test_help_lists_every_binding_of_app_screen_and_widgets() -> None:
    app = BoundApp()
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.pause()
        entries = {(e.group, " / ".join(e.keys), e.description) for e in collect_help(nodes_of(app))}
        assert ("Everywhere", "Ctrl+T", "Toggle thinking for the next turn") in entries
        assert ("Everywhere", "F1 / ?", "Help") in entries
        assert ("Everywhere", "Ctrl+Q", "Quit the app and return to the command prompt") in entries
        assert ("Everywhere", "Ctrl+P", "Open the command palette") in entries
        assert ("Bound", "Esc", "Stop generating") in entries
        assert ("Bound", "Ctrl+O", "Fold all") in entries
        assert ("Sessions", "r / F2", "Rename the highlighted session") in entries
        assert ("Sessions", "d / Del", "Delete the highlighted session") in entries
        # The keys of Textual's own widgets (Input's cursor moves, OptionList's Page Up) are not news.
        descriptions = {description for _, _, description in entries}
        assert not any("cursor" in d.lower() for d in descriptions)
        assert "Page Up" not in descriptions

        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        text = screen_text(app)
        for line in ("Ctrl+T", "Toggle thinking for the next turn", "Rename the highlighted session", "Fold all"):
            assert line in text
        notes = [e for e in app.screen.entries if e.description == "New line in the composer (Enter sends)"]
        assert [e.keys[0].split(" / ")[:2] for e in notes] == [["Shift+Enter", "Ctrl+J"]]
        await pilot.press("escape")
        await pilot.pause()
        assert isinstance(app.screen, BoundScreen)


async def test_help_lists_every_key_of_the_real_app_bindings() -> None:
    """Every binding the app class declares shows up (no hand-written list can drift)."""
    app = BoundApp()
    async with app.run_test(size=(100, 50)) as pilot:
        await pilot.pause()
        help_screen = HelpScreen(app)
        listed = {description for e in help_screen.entries for description in [e.description]}
        for binding in BoundApp.BINDINGS:
            assert (binding.tooltip.rstrip(".") if binding.tooltip else binding.description) in listed


# -- README screenshots ----------------------------------------------------------------------


def test_screenshot_script_draws_folded_and_unfolded_reasoning(tmp_path: Path) -> None:
    """docs/make_screenshots.py keeps working: it draws the three README pictures."""
    repo = Path(__file__).resolve().parents[1]
    run = subprocess.run(
        [sys.executable, str(repo / "docs" / "make_screenshots.py"), "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    svgs = {p.stem: p.read_text(encoding="utf-8") for p in tmp_path.glob("*.svg")}
    assert set(svgs) == {"screenshot-folded", "screenshot-unfolded", "screenshot-light"}
    # Folded: the pane's title only; unfolded: its text too (SVG text uses &#160; for spaces).
    plan = "Plan:&#160;keep&#160;only&#160;alphanumeric"
    assert "Thought&#160;for&#160;4.2&#160;s" in svgs["screenshot-folded"]
    assert plan not in svgs["screenshot-folded"]
    assert plan in svgs["screenshot-unfolded"] and plan in svgs["screenshot-light"]
    assert "demo-key" not in "".join(svgs.values())


# -- the shell inside the real app ----------------------------------------------------------


async def test_first_run_setup_in_the_app_saves_the_key_privately(glmchat_home: Path) -> None:
    """No key anywhere: the app opens the setup screen; the pasted key lands in a 0600 config, never on screen."""
    import stat

    from glmchat.config import load_config, paths
    from glmchat.ui.app import GlmChatApp

    app = GlmChatApp(probe=False)
    async with app.run_test(size=(110, 40)) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen)
        await pilot.press(*SECRET)
        await pilot.pause()
        assert SECRET not in screen_text(app)
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, SetupScreen)
        assert SECRET not in screen_text(app)
    config_file = paths().config_file
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert load_config(paths()).keys == {"zai": SECRET}


async def test_help_key_in_the_app_lists_the_chat_keys() -> None:
    from glmchat.config import Config
    from glmchat.ui.app import GlmChatApp

    app = GlmChatApp(config=Config(keys={"zai": SECRET}), probe=False)
    async with app.run_test(size=(110, 60)) as pilot:
        await pilot.pause()
        await pilot.press("f1")
        await pilot.pause()
        assert isinstance(app.screen, HelpScreen)
        descriptions = {e.description for e in app.screen.entries}
        for binding in app.chat.BINDINGS + GlmChatApp.BINDINGS:
            assert (binding.tooltip.rstrip(".") if binding.tooltip else binding.description) in descriptions
        assert "New line in the composer (Enter sends)" in descriptions
        await pilot.press("escape")
        await pilot.pause()
        assert app.screen is app.chat


# -- start-up: the database check after the first frame -----------------------------------


def _damage(db: Path) -> None:
    """Overwrite the middle of the database with garbage (the header stays valid)."""
    size = db.stat().st_size
    with db.open("r+b") as handle:
        handle.seek(size // 2)
        handle.write(b"\xde\xad\xbe\xef" * 1024)


def _filled_store_path() -> Path:
    from glmchat.config import paths
    from tests.ui_support import stored_session, stored_turn

    store = Store.open(paths().data_dir)
    stored_session(store, "Big", [stored_turn(n, content="word " * 800) for n in range(1, 30)])
    path = store.path
    store._db._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    return path


def test_quick_check_finds_a_damaged_database() -> None:
    from glmchat.store.files import quick_check

    path = _filled_store_path()
    assert quick_check(path) is None
    _damage(path)
    assert quick_check(path)


async def test_damage_found_after_start_is_reported_and_checked_fully_next_time() -> None:
    from glmchat.config import paths
    from glmchat.ui.app import CHECK_MARKER
    from tests.ui_support import make_app

    path = _filled_store_path()
    _damage(path)
    marker = paths().data_dir / CHECK_MARKER
    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert any("looks damaged" in n.message for n in app._notifications)
    assert marker.exists()

    app = make_app()
    async with app.run_test(size=(100, 30)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        # The full check on open set the file aside and started a new one.
        assert any("moved to" in n.message for n in app._notifications)
        assert app.chat.session.turns == []
    assert not marker.exists()


async def test_collector_paused_for_start_up_is_back_on_after_the_first_frame() -> None:
    import gc

    from tests.ui_support import make_app

    app = make_app()
    app.resume_gc = True
    gc.disable()
    try:
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            await app.workers.wait_for_complete()
            assert gc.isenabled()
            assert not app.resume_gc
    finally:
        gc.enable()
