"""Child of bench_start.py: start an app headless and report the time of its first interactive frame.

    python bench/_start_child.py bare      # a bare Textual app showing one Static
    python bench/_start_child.py glmchat   # `glmchat` itself: glmchat.cli.main([]) with GLMCHAT_HOME
    python bench/_start_child.py glmchat --settle   # ... and wait until the whole session is loaded

Both run `App.run(headless=True, size=(120, 40))`. Textual is patched only to
(1) force headless mode, (2) do the escape-sequence encoding of each frame that
headless mode skips (what a terminal run pays), and (3) print the monotonic
time of the first frame that shows the app ready, then exit. For glmchat,
"ready" means the chat screen is up with the session shown and the prompt
focused: config loaded, store opened, session list and last session shown.
"""

from __future__ import annotations

import json
import sys
import time

SIZE = (120, 40)
STATE: dict = {"done": False}


def patch_textual(ready, settled=None) -> None:
    """Make every App headless; print FRAME at the first ready frame (and SETTLED once `settled` holds)."""
    from textual.app import App

    original_run = App.run
    original_display = App._display
    state = STATE
    state["settled"] = settled is None

    def run(self, *args, **kwargs):
        kwargs["headless"] = True
        kwargs["size"] = SIZE
        return original_run(self, *args, **kwargs)

    def _display(self, screen, renderable):
        real = renderable is not None and not self._batch_count
        if real:
            renderable.render_segments(self.console)
        original_display(self, screen, renderable)
        if not real:
            return
        if not state["done"] and ready(self):
            state["done"] = True
            state["frame"] = time.monotonic()
            sys.stdout.write(f"FRAME {state['frame']!r}\n")
            sys.stdout.flush()
            if settled is not None:
                # Keep frames coming while the rest loads, to see when it is done.
                self.set_interval(0.02, self.refresh)
        elif state["done"] and not state["settled"] and settled(self):
            state["settled"] = True
            state["settled_at"] = time.monotonic()
            sys.stdout.write(f"SETTLED {state['settled_at']!r}\n")
            sys.stdout.flush()
        if state["done"] and state["settled"]:
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


def glmchat_settled(app) -> bool:
    """The whole session is loaded (the app loads the older turns after its first frame)."""
    return not app.chat._partial


def glmchat(settle: bool = False) -> int:
    patch_textual(glmchat_ready, glmchat_settled if settle else None)
    from glmchat.cli import main

    return main([])


if __name__ == "__main__":
    mode = sys.argv[1]
    code = bare() if mode == "bare" else glmchat("--settle" in sys.argv)
    result = {"frame": STATE.get("frame"), "settled": STATE.get("settled_at", STATE.get("frame"))}
    sys.stdout.write("RESULT " + json.dumps(result) + "\n")
    sys.exit(code)
