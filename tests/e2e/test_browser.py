"""End to end in a real browser: `glmchat serve`, headless Chromium, the loopback GLM server.

The page is driven like a person would: open the URL, wait for glmchat's screen,
click into the message box, type, press Enter, read the streamed answer, click the
reasoning open. The screen is read from the page's terminal (xterm.js) buffer: a
script added before the page loads keeps a reference to the terminal textual-serve
creates, so the test reads exactly the cells the browser draws.

The picture in the README comes from here:

    GLMCHAT_UPDATE_SCREENSHOT=1 python -m pytest tests/e2e/test_browser.py -k chat

writes docs/screenshot-browser.png (every run writes one into the test's tmp dir).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.glm_server import Reply
from tests.serve_support import REPO, ServeProcess, alive, serve_env, start_serve, wait_until

pytestmark = pytest.mark.slow

KEY = "browser-secret-key-0123456789abcdef"
VIEWPORT = {"width": 1200, "height": 760}
# The flags that work for Debian's Chromium here, as root, with nothing reaching out to the network.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

QUESTION = "Why send the reasoning of earlier turns back?"
REASONING = (
    "The user asks about preserved thinking.\n"
    "GLM-4.7 reads its earlier reasoning when each turn's reasoning_content comes back unchanged.\n"
    "Two gains: it keeps its train of thought, and the prompt cache hits on the identical prefix.\n"
)
ANSWER = (
    "With **preserved thinking** the model sees how it reached its earlier answers:\n\n"
    "- it builds on that work instead of starting over each turn;\n"
    "- the request begins with exactly the text the host saw before, so the prompt cache hits.\n\n"
    "glmchat keeps every reasoning byte for byte to make that work.\n"
)

# Keeps the xterm.js Terminal that textual-serve's script creates (`this.terminal = new
# Terminal(...)`) as window.glmchatTerminal. The property is caught once, then becomes a plain one.
CATCH_TERMINAL = """
Object.defineProperty(Object.prototype, "terminal", {
  configurable: true,
  set(value) {
    Object.defineProperty(this, "terminal", { value, writable: true, configurable: true, enumerable: true });
    if (value && value.buffer && value.buffer.active && typeof value.buffer.active.getLine === "function") {
      window.glmchatTerminal = value;
    }
  },
});
"""
READ_SCREEN = """() => {
  const term = window.glmchatTerminal;
  if (!term) return null;
  const buffer = term.buffer.active;
  const rows = [];
  for (let y = 0; y < term.rows; y++) {
    const line = buffer.getLine(buffer.viewportY + y);
    rows.push(line ? line.translateToString(true) : "");
  }
  return rows.join("\\n");
}"""


def chromium_path() -> str | None:
    for candidate in ("/usr/bin/chromium", shutil.which("chromium"), shutil.which("chromium-browser")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    """A headless Chromium with a fresh profile; closed (with every page) whatever the test did."""
    path = chromium_path()
    if path is None:
        pytest.skip("Chromium is not installed (apt-get install chromium): the browser tests did not run")
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install -e '.[test]'): the browser tests did not run"
    )
    with sync_api.sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            user_data_dir=str(tmp_path / "chromium-profile"),
            executable_path=path,
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport=VIEWPORT,
        )
        try:
            yield context
        finally:
            context.close()


class Tab:
    """One browser tab showing glmchat."""

    def __init__(self, browser: Any) -> None:
        self.page = browser.new_page()
        self.page.add_init_script(CATCH_TERMINAL)
        self.errors: list[str] = []
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, url: str) -> int:
        response = self.page.goto(url)
        assert response is not None
        return response.status

    def screen(self) -> str:
        return self.page.evaluate(READ_SCREEN) or ""

    def wait_for(self, what: str, predicate: Callable[[str], bool], timeout: float = 60.0) -> str:
        """Poll the terminal until `predicate(screen)`; fail with the screen shown if it never holds."""
        deadline = time.monotonic() + timeout
        while True:
            screen = self.screen()
            if predicate(screen):
                return screen
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; page errors {self.errors}; the screen was:\n{screen}")
            time.sleep(0.05)

    def click_text(self, text: str) -> None:
        """Click the first cell of `text` on the terminal, as a person would."""
        rows = self.screen().splitlines()
        row = next(i for i, line in enumerate(rows) if text in line)
        column = rows[row].index(text)
        box = self.page.locator("#terminal .xterm-screen").bounding_box()
        assert box is not None
        columns, lines = self.page.evaluate("() => [window.glmchatTerminal.cols, window.glmchatTerminal.rows]")
        self.page.mouse.click(box["x"] + (column + 0.5) * box["width"] / columns, box["y"] + (row + 0.5) * box["height"] / lines)


def first_screen(screen: str) -> bool:
    return "Message GLM" in screen and "next turn: thinking on" in screen


@pytest.fixture
def serving() -> Iterator[list[ServeProcess]]:
    """Serve processes started by a test; each is killed with its process group at the end."""
    started: list[ServeProcess] = []
    try:
        yield started
    finally:
        for serve in started:
            serve.kill()


def test_chat_in_the_browser(glm_server, browser, serving, glmchat_home: Path, tmp_path: Path) -> None:
    glm_server.enqueue(Reply(reasoning=REASONING, content=ANSWER, pace=400))
    serve = start_serve(
        ["--port", "0", "--host", "zai", "--base-url", f"{glm_server.url}/zai", "--new"],
        serve_env(glmchat_home, ZAI_API_KEY=KEY),
    )
    serving.append(serve)

    tab = Tab(browser)
    assert tab.open(serve.url) == 200
    tab.wait_for("glmchat's first screen", first_screen)
    assert KEY not in tab.page.content()

    tab.click_text("Message GLM")
    tab.page.keyboard.type(QUESTION)
    tab.wait_for("the typed message", lambda s: QUESTION in s)
    tab.page.keyboard.press("Enter")
    # Finished when the turn's actions show: the layout is still until the next turn.
    screen = tab.wait_for(
        "the streamed answer",
        lambda s: "the model sees how it reached its earlier answers:" in s and "regenerate" in s,
    )
    assert "glmchat keeps every reasoning byte for byte" in screen
    assert "Thought for" in screen and "You  ·  thinking on" in screen
    # It came as a stream: the server sent the answer in many chunks, with the key only the server knows.
    request = glm_server.last
    assert len(request.chunk_times) > 20
    assert request.headers.get("Authorization", request.headers.get("authorization")) == f"Bearer {KEY}"

    # Unfold the reasoning with a click. A click that reaches the page before the app takes mouse
    # events (the browser is busy on a loaded machine) is lost: click again while the pane is folded.
    unfolded = lambda s: "The user asks about preserved thinking." in s  # noqa: E731
    for _ in range(3):
        tab.click_text("▶ Thought for")
        try:
            screen = tab.wait_for("the reasoning unfolded", unfolded, timeout=10)
            break
        except AssertionError:
            if "▶ Thought for" not in tab.screen():
                break  # it is unfolding after all: wait for it below
    screen = tab.wait_for("the reasoning unfolded", unfolded)
    assert KEY not in screen and not tab.errors

    picture = tmp_path / "glmchat-browser.png"
    tab.page.screenshot(path=str(picture))
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and picture.stat().st_size > 20_000
    if os.environ.get("GLMCHAT_UPDATE_SCREENSHOT"):
        shutil.copyfile(picture, REPO / "docs" / "screenshot-browser.png")

    # A second tab is a second glmchat on the same store: it lists the first tab's session.
    second = Tab(browser)
    assert second.open(serve.url) == 200
    second.wait_for("the second tab's session list", lambda s: first_screen(s) and QUESTION[:20] in s)
    apps = serve.apps()
    assert len(apps) == 2

    # Ctrl+C, as a terminal sends it: the server and both apps stop; the tabs say so.
    serve.interrupt()
    assert serve.wait(30) == 0, serve.output()
    assert not [pid for pid in apps if alive(pid)], serve.output()
    for each in (tab, second):
        each.page.locator(".ended").wait_for(state="visible", timeout=15_000)
    assert "has ended in this tab" in tab.page.inner_text(".ended")

    from glmchat.store import Store

    store = Store.open(glmchat_home)
    try:
        sessions = store.list_sessions()
        [turn] = [t for s in sessions for t in store.load_session(s.id).turns]
    finally:
        store.close()
    assert (turn.user_text, turn.status, turn.thinking) == (QUESTION, "complete", True)
    assert turn.reasoning == REASONING  # stored byte for byte, from a browser tab as from a terminal
    assert turn.content == ANSWER


def test_off_loopback_the_browser_needs_the_token(glm_server, browser, serving, glmchat_home: Path) -> None:
    serve = start_serve(
        ["--port", "0", "--bind", "0.0.0.0", "--host", "zai", "--base-url", f"{glm_server.url}/zai"],
        serve_env(glmchat_home, ZAI_API_KEY=KEY),
    )
    serving.append(serve)
    token = serve.path.strip("/")
    assert len(token) >= 32

    tab = Tab(browser)
    assert tab.open(serve.local("/")) == 403
    assert "secret token" in tab.page.inner_text("body")
    assert tab.open(serve.local(f"/{token[:-1]}/")) == 403
    assert serve.apps() == [], "a page without the token started an app"

    assert tab.open(serve.local()) == 200
    tab.wait_for("glmchat's first screen", first_screen)
    wait_until("one glmchat", lambda: len(serve.apps()) == 1, detail=serve.output)
    assert KEY not in tab.page.content()
