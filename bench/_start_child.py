"""Child of bench_start.py: start an app headless and report the time of its first interactive frame.

    python bench/_start_child.py bare      # a bare Textual app showing one Static
    python bench/_start_child.py glmchat   # `glmchat` itself: glmchat.cli.main([]) with GLMCHAT_HOME

Both run `App.run(headless=True, size=(120, 40))`. Textual is patched only to
(1) force headless mode, (2) do the escape-sequence encoding of each frame that
headless mode skips (what a terminal run pays), and (3) print the monotonic
time of the first frame that shows the app ready, then exit. For glmchat,
"ready" means the chat screen is up with the session shown and the prompt
focused: config loaded, store opened, session list and last session shown.
"""

from __future__ import annotations

import sys
import time

SIZE = (120, 40)


def patch_textual(ready) -> None:
    from textual.app import App

    original_run = App.run
    original_display = App._display
    state = {"done": False}

    def run(self, *args, **kwargs):
        kwargs["headless"] = True
        kwargs["size"] = SIZE
        return original_run(self, *args, **kwargs)

    def _display(self, screen, renderable):
        real = renderable is not None and not self._batch_count
        if real:
            renderable.render_segments(self.console)
        original_display(self, screen, renderable)
        if real and not state["done"] and ready(self):
            state["done"] = True
            t = time.monotonic()
            sys.stdout.write(f"FRAME {t!r}\n")
            sys.stdout.flush()
            self.exit(0)

    App.run = run
    App._display = _display


def bare() -> int:
    patch_textual(lambda app: True)
    from textual.app import App, ComposeResult
    from textual.widgets import Static

    class Bare(App):
        def compose(self) -> ComposeResult:
            yield Static("Hello from a bare Textual app.")

    Bare().run()
    return 0


def glmchat_ready(app) -> bool:
    chat = getattr(app, "chat", None)
    if chat is None or app.screen is not chat or not chat.is_mounted:
        return False
    try:
        log = chat.log_view
    except Exception:  # noqa: BLE001 - not composed yet
        return False
    focused = app.focused
    return log.session is not None and focused is not None and focused.id == "prompt"


def glmchat() -> int:
    patch_textual(glmchat_ready)
    from glmchat.cli import main

    return main([])


if __name__ == "__main__":
    mode = sys.argv[1]
    sys.exit(bare() if mode == "bare" else glmchat())
