"""Settings (base URLs, theme order, dropdowns and the Save button), help in sentence case, toasts, H1 headings."""

from __future__ import annotations

import pytest
from textual.app import App
from textual.widgets import Button, Input, Select, Static

from glmchat.config import Config, load_config
from glmchat.hosts import BUILTIN_HOSTS
from glmchat.ui.markdown_render import parse_blocks
from glmchat.ui.screens.help import HelpScreen, sentence_case
from glmchat.ui.screens.settings import SettingsResult, SettingsScreen, check_base_url
from glmchat.ui.themes import load_themes, register_themes
from glmchat.ui.widgets.status import StatusLine
from tests.ui_support import SIZE, make_app, make_config, screen_text, wait_for

# -- settings ------------------------------------------------------------------------------


class SettingsHost(App[None]):
    def __init__(self) -> None:
        super().__init__()
        self.results: list[SettingsResult | None] = []

    def on_mount(self) -> None:
        self.theme_result = load_themes(None)
        register_themes(self, self.theme_result)
        self.theme = "glm-dark"

    def record(self, result: SettingsResult | None) -> None:
        self.results.append(result)


def _settings(app: SettingsHost, config: Config | None = None) -> SettingsScreen:
    from glmchat.session import Session

    themes = [*app.theme_result.names, "textual-dark", "nord"]
    return SettingsScreen(Session(), config or Config(), BUILTIN_HOSTS, themes)


def test_check_base_url_says_what_the_loader_would_say():
    config = Config()
    check_base_url(config, "zai", "https://proxy.example/api/paas/v4")
    check_base_url(config, "vllm", "http://127.0.0.1:9000/v1")
    check_base_url(config, "zai", None)  # back to the built-in URL
    cases = {
        "http://proxy.example/v4": "refusing unencrypted http://",
        "ftp://proxy.example/v4": "must start with https://",
        "https:///v4": "names no host",
    }
    for url, says in cases.items():
        with pytest.raises(Exception) as caught:
            check_base_url(config, "zai", url)
        assert says in str(caught.value) and "\n" not in str(caught.value)
    assert config.hosts == {}, "checking changes nothing"


async def test_settings_base_url_per_host_saved_and_validated():
    app = SettingsHost()
    config = Config(hosts={"vllm": {"base_url": "http://127.0.0.1:8001/v1"}})
    async with app.run_test(size=(100, 40)) as pilot:
        screen = _settings(app, config)
        app.push_screen(screen, app.record)
        await pilot.pause()
        field = screen.query_one("#base_url", Input)
        assert field.value == BUILTIN_HOSTS["zai"].base_url
        field.value = "http://proxy.example/api/paas/v4"
        await pilot.pause()
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert app.results == []
        error = str(screen.query_one("#base_url-error", Static).render())
        assert "refusing unencrypted http://" in error and "\n" not in error
        # Another host keeps its own URL; the one typed for Z.ai stays with Z.ai.
        field.value = "https://proxy.example/api/paas/v4"
        screen.query_one("#host", Select).value = "vllm"
        await pilot.pause()
        assert field.value == "http://127.0.0.1:8001/v1"
        field.value = "http://127.0.0.1:8002/v1"
        screen.query_one("#host", Select).value = "zai"
        await pilot.pause()
        assert field.value == "https://proxy.example/api/paas/v4"
        await pilot.press("ctrl+s")
        await pilot.pause()
    [result] = app.results
    assert result.base_urls == {"zai": "https://proxy.example/api/paas/v4", "vllm": "http://127.0.0.1:8002/v1"}
    result.apply_to_config(config)
    assert config.hosts == {
        "vllm": {"base_url": "http://127.0.0.1:8002/v1"},
        "zai": {"base_url": "https://proxy.example/api/paas/v4"},
    }


async def test_base_url_from_settings_is_saved_and_used_for_the_next_request(glm_server):
    from glmchat.ui.screens.settings import SettingsScreen as Screen

    # Start pointed at a path the server does not serve; fix it in the settings.
    config = make_config(glm_server)
    config.hosts["zai"]["base_url"] = f"{glm_server.url}/nowhere"
    app = make_app(glm_server, config=config)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        assert isinstance(app.screen, Screen)
        app.screen.query_one("#base_url", Input).value = glm_server.base_url("zai")
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert load_config().hosts["zai"]["base_url"] == glm_server.base_url("zai")
        app.chat.composer.set_text("does it reach?")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.chat.session.turns[-1].status == "complete"
        assert glm_server.last.path == "/zai/chat/completions"


async def test_settings_list_glmchats_own_themes_first():
    app = SettingsHost()
    async with app.run_test(size=(100, 40)) as pilot:
        screen = _settings(app)
        app.push_screen(screen, app.record)
        await pilot.pause()
        names = [value for _, value in screen.query_one("#theme", Select)._options if isinstance(value, str)]
        own = app.theme_result.names
        assert names[: len(own)] == own and set(names[len(own):]) == {"textual-dark", "nord"}


async def test_the_app_offers_its_own_themes_before_textuals(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f4")
        await pilot.pause()
        names = list(app.screen.theme_names)
        assert names[:4] == ["glm-dark", "glm-light", "glm-high-contrast", "glm-ember"] or set(names[:4]) == {
            "glm-dark", "glm-light", "glm-high-contrast", "glm-ember"
        }  # fmt: skip
        rest = names[4:]
        assert rest == sorted(rest) and "textual-dark" in rest


@pytest.mark.parametrize("size", [(120, 40), (100, 30), (60, 15)])
@pytest.mark.parametrize("select_id", ["host", "theme"])
async def test_an_open_dropdown_never_covers_the_save_button(size, select_id):
    app = SettingsHost()
    async with app.run_test(size=size) as pilot:
        screen = _settings(app)
        app.push_screen(screen, app.record)
        await pilot.pause()
        select = screen.query_one(f"#{select_id}", Select)
        select.focus()
        select.scroll_visible(animate=False, immediate=True)
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        assert select.expanded
        from textual.widgets._select import SelectOverlay

        overlay = select.query_one(SelectOverlay)
        save = screen.query_one("#save", Button)
        assert overlay.region.height > 0 and save.region.height > 0
        assert not overlay.region.overlaps(save.region), (overlay.region, save.region)
        await pilot.press("escape")


# -- help ----------------------------------------------------------------------------------


def test_sentence_case():
    assert sentence_case("Focus Next") == "Focus next"
    assert sentence_case("Toggle Dark Mode") == "Toggle dark mode"
    assert sentence_case("Export this session to Markdown") == "Export this session to Markdown"
    assert sentence_case("Export To JSON") == "Export to JSON"
    assert sentence_case("Quit") == "Quit"


async def test_help_titles_and_entries_are_in_sentence_case(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=(100, 60)) as pilot:
        await pilot.press("f1")
        await pilot.pause()
        screen = app.screen
        assert isinstance(screen, HelpScreen)
        for entry in screen.entries:
            assert sentence_case(entry.description) == entry.description, entry.description
            assert sentence_case(entry.group) == entry.group, entry.group
        text = screen_text(app)
        assert "Focus next" in text and "Focus Next" not in text
        [newline] = [e for e in screen.entries if e.description.startswith("New line")]
        assert newline.keys[0].split(" / ") == ["Shift+Enter", "Ctrl+J", "Alt+Enter", "Ctrl+Enter"]


# -- toasts and headings -------------------------------------------------------------------


@pytest.mark.parametrize("size", [(120, 40), (60, 15)])
async def test_toasts_stand_above_the_status_lines(glm_server, size):
    app = make_app(glm_server)
    async with app.run_test(size=size, notifications=True) as pilot:
        app.chat.notify("A notification with a few words in it", timeout=30)
        await pilot.pause()
        from textual.widgets._toast import Toast

        await wait_for(pilot, lambda: bool(app.chat.query(Toast)))
        toast = app.chat.query_one(Toast)
        status = app.chat.query_one(StatusLine)
        assert toast.region.height > 0
        assert toast.region.bottom <= status.region.y, (toast.region, status.region)


def test_an_h1_starts_at_the_left_like_the_other_headings():
    blocks = parse_blocks("# Title one\n\n## Title two\n\ntext\n")
    h1, h2 = blocks[0].lines(60), blocks[1].lines(60)
    assert h1[0].plain == "Title one"
    assert h2[0].plain == "Title two"
