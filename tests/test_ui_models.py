"""The TUI's thinking levels, model switching, usage summary and the demo host, driven like a person would."""

from __future__ import annotations

from glmchat.config import AppOptions, Config
from glmchat.session import TurnStatus
from tests.test_ui_chat import send
from tests.ui_support import SIZE, make_app, make_config, open_store, screen_text, wait_for


def switch_text(app) -> str:
    return app.chat.composer.switch.label().plain


async def test_ctrl_t_cycles_glm_5_2_levels_and_each_turn_sends_its_own(glm_server):
    app = make_app(glm_server, options=AppOptions(model="glm-5.2"))
    async with app.run_test(size=SIZE) as pilot:
        assert "Thinking: high" in switch_text(app)  # the model's default level
        await pilot.press("ctrl+t")
        assert "Thinking: xhigh" in switch_text(app)
        assert "next turn: thinking xhigh" in screen_text(app)
        await send(pilot, "deep one")
        assert glm_server.last.level == "xhigh" and glm_server.last.thinking is True
        await pilot.press("ctrl+t")  # xhigh -> off
        assert app.chat.composer.thinking is False
        await send(pilot, "quick one")
        assert glm_server.last.json["thinking"]["type"] == "disabled" and glm_server.last.level is None
        turns = app.chat.session.turns
        assert [(t.thinking, t.thinking_level) for t in turns] == [(True, "xhigh"), (False, None)]
        stored = open_store().load_session(app.chat.session.id)
        assert [(t.thinking, t.thinking_level) for t in stored.turns] == [(True, "xhigh"), (False, None)]


async def test_an_always_thinking_model_shows_its_lowest_level_for_off(glm_server):
    config = make_config(glm_server)
    config.thinking = False
    app = make_app(glm_server, config=config, options=AppOptions(model="glm-5.3", new=True))
    async with app.run_test(size=SIZE) as pilot:
        app.chat.session.thinking_next = False
        app.chat._sync_thinking_switch()
        await pilot.pause()
        text = switch_text(app)
        assert "Thinking: low" in text and "always on" in text
        await send(pilot, "hello")
        request = glm_server.last
        assert request.status == 200 and request.json["thinking"]["type"] == "enabled" and request.level == "low"
        # A click on the switch does not turn it off either: it stays on, at the lowest level.
        await pilot.click("#thinking-switch")
        await pilot.pause()
        assert app.chat.composer.thinking is True and "Thinking: low" in switch_text(app)
        # Ctrl+T cycles the levels only.
        await pilot.press("ctrl+t")
        assert "Thinking: high" in switch_text(app)
        await pilot.press("ctrl+t")
        assert "Thinking: max" in switch_text(app)


async def test_palette_switches_the_model_and_each_turn_keeps_its_own(glm_server):
    from glmchat.ui.model_commands import commands, switch_model

    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in commands(app.chat)]
        assert "Model: glm-5.3" in titles and "Model: glm-4.7 (current)" in titles and "Usage" in titles
        facts = {c.title: c.help for c in commands(app.chat)}
        assert "1M context" in facts["Model: glm-5.2"] and "$1.40 in / $0.26 cached" in facts["Model: glm-5.2"]
        await send(pilot, "on 4.7")
        switch_model(app.chat, "glm-5.2")
        await pilot.pause()
        assert "Thinking: high" in switch_text(app)
        assert [c.title for c in commands(app.chat) if c.title.startswith("Thinking:")] == [
            "Thinking: off", "Thinking: high", "Thinking: xhigh"]
        await send(pilot, "on 5.2")
        models = [r.json["model"] for r in glm_server.chat_requests()]
        assert models == ["glm-4.7", "glm-5.2"]
        # The earlier turn's reasoning went back exactly, though another model wrote it.
        assert glm_server.last.replay_problems == []
        assert [t.model for t in app.chat.session.turns] == ["glm-4.7", "glm-5.2"]
        assert app.chat.current_host().context_window == 1_000_000  # the context share is of GLM-5.2's window


async def test_usage_summary_and_turn_footer_show_the_cache(glm_server):
    from glmchat.ui.model_commands import UsageScreen, show_usage

    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first")
        await send(pilot, "second")
        last = app.chat.session.turns[-1]
        assert last.usage.cached_tokens and last.usage.cached_tokens == glm_server.last.cached_tokens
        hit = f"{last.usage.cached_tokens / last.usage.prompt_tokens:.0%} hit"
        assert hit in screen_text(app)
        show_usage(app.chat)
        await wait_for(pilot, lambda: isinstance(app.screen, UsageScreen))
        body = str(app.screen.query_one("#usage-body").render())
        assert "cache hit over the session" in body and "saved by caching: $" in body
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, UsageScreen))


async def test_the_demo_host_needs_no_key_and_is_labelled(tmp_path):
    app = make_app(config=Config(host="demo", theme="glm-dark"), options=AppOptions(host="demo", new=True))
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "show me")
        turn = app.chat.session.turns[-1]
        assert turn.status == TurnStatus.COMPLETE and turn.host == "demo"
        text = screen_text(app)
        assert "Demo (offline)" in text and "│ cache hit" in text  # the label, and the answer's table
        assert turn.content.startswith("## Demo answer 1")


async def test_first_run_setup_offers_the_demo_and_it_needs_no_key():
    from glmchat.ui.screens.setup import SetupResult
    from tests.test_ui_shell import ModalHost, setup_screen

    app = ModalHost()
    async with app.run_test(size=(100, 40)) as pilot:
        app.push_screen(setup_screen(host="demo"), app.record)
        await pilot.pause()
        text = screen_text(app)
        assert "Choose Demo (offline) to try glmchat" in text
        assert "try glmchat offline: built-in demo answers" in text
        assert not app.screen.query_one("#key-section").display or app.screen.query_one("#key-section").has_class("-hidden")
        await pilot.press("enter")
        await pilot.pause()
    assert app.results == [SetupResult("demo")]


async def test_model_picker_lists_the_hosts_models_with_facts_and_caches_the_list(glm_server):
    from glmchat.ui.model_commands import ModelPicker, pick_model

    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        pick_model(app.chat)
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker))
        text = screen_text(app)
        assert "glm-5.3" in text and "thinking always on: low, high, max" in text
        assert "$1.40 in / $0.26 cached / $4.40 out" in text
        assert glm_server.models_requests == 1
        await pilot.press("down", "down")
        chosen = app.screen.query_one("#models").highlighted_option.id
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ModelPicker))
        assert app.chat.session.model == chosen != "glm-4.7"
        # The list is cached: asking again does not ask the host.
        pick_model(app.chat)
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker))
        assert glm_server.models_requests == 1
        await pilot.press("escape")
        await wait_for(pilot, lambda: not isinstance(app.screen, ModelPicker))
        assert app.chat.session.model == chosen
        await send(pilot, "on the chosen model")
        assert glm_server.last.json["model"] == chosen and app.chat.session.turns[-1].model == chosen


async def test_model_picker_falls_back_to_the_built_in_list_and_says_why(glm_server):
    from glmchat.ui.model_commands import ModelPicker, pick_model

    app = make_app(glm_server, config=make_config(glm_server, zai={"base_url": glm_server.base_url("ollama")}))
    async with app.run_test(size=SIZE) as pilot:
        pick_model(app.chat)
        await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker))
        assert "glm-4.5-air" in screen_text(app)  # from glmchat's own list for Z.ai


async def test_settings_show_the_facts_of_the_model_being_typed():
    from textual.widgets import Input, Static

    from tests.test_ui_settings_polish import SettingsHost, _settings

    app = SettingsHost()
    async with app.run_test(size=(100, 40)) as pilot:
        screen = _settings(app)
        app.push_screen(screen, app.record)
        await pilot.pause()
        hint = screen.query_one("#model-hint", Static)
        assert "glm-4.7: 200k context" in str(hint.render())
        screen.query_one("#model", Input).value = "glm-5.3"
        await pilot.pause()
        assert "glm-5.3: 1M context" in str(hint.render()) and "thinking always on: low, high, max" in str(hint.render())


async def test_a_broken_replay_is_shown_once_as_a_warning(glm_server):
    from glmchat.ui.model_commands import usage_text

    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "first")
        await send(pilot, "second")
        step = app.chat.session.turns[0].steps[0]
        step.reasoning = step.reasoning[:3] + "#" + step.reasoning[4:]  # what a broken replay would send
        await send(pilot, "third")
        messages = [n.message for n in app._notifications]
        assert sum("cache broken at turn 1 reasoning, offset 3" in m for m in messages) == 1
        await send(pilot, "fourth")
        # Once: the fourth request extends the third (a notification may have timed out meanwhile, the record not).
        assert len(app.controller.cache_watch.breaks) == 1
        assert sum("cache broken" in n.message for n in app._notifications) <= 1
        assert "prompt cache broken: cache broken at turn 1 reasoning, offset 3" in usage_text(app.chat)
