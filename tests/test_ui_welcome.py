"""An empty chat shows a short welcome: the host and model, the keys that matter, how thinking is switched."""

from __future__ import annotations

from tests.ui_support import make_app, make_config, screen_text

# -- the welcome ---------------------------------------------------------------------------


async def test_an_empty_chat_shows_a_welcome_until_the_first_turn(glm_server):
    app = make_app(glm_server)
    async with app.run_test(size=(120, 40)) as pilot:
        log = app.chat.log_view
        text = screen_text(app)
        assert log.welcome_shown
        assert "glmchat · Z.ai · glm-4.7" in text
        for key, what in (("Enter", "send"), ("Ctrl+J", "new line"), ("Ctrl+T", "thinking on/off"),
                          ("Ctrl+B", "sessions"), ("Ctrl+P", "every action"), ("F1", "all keys")):  # fmt: skip
            assert any(key in line and what in line for line in text.splitlines()), key
        assert "click on the switch" in text
        app.chat.composer.set_text("hello")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert not log.welcome_shown and "every action" not in screen_text(app)
        # A new session: welcome again.
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert log.welcome_shown


async def test_the_welcome_says_when_the_host_decides_about_thinking(glm_server):
    config = make_config(glm_server, zai={"thinking_style": "none"})
    app = make_app(glm_server, config=config)
    async with app.run_test(size=(120, 40)):
        assert "Z.ai decides about thinking itself" in screen_text(app)
