"""Make the README's screenshots: glmchat with its reasoning folded and unfolded, in SVG.

    python docs/make_screenshots.py            # writes docs/*.svg
    python docs/make_screenshots.py --out DIR  # somewhere else

The pictures come from the real app (GlmChatApp) showing a store filled with a
scripted conversation with fixed timestamps, in a throwaway GLMCHAT_HOME, so
they are the same on every run and every machine (the clock and the time zone
are pinned too). Nothing is sent over the network.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs"
SIZE = (120, 40)
NOW = 1_750_000_000.0
"""A fixed "now" for every date and duration on screen."""

DEMO_KEY = "demo-key-not-a-real-key-000000"

REASONING_1 = """The user wants a palindrome check that ignores punctuation and case.
Plan: keep only alphanumeric characters, lower-case them, compare with the reverse.
str.isalnum() covers letters and digits in every script, so "Ésope reste ici" works too.
Mention the O(n) cost."""

ANSWER_1 = """Keep the letters and digits, fold the case, and compare with the reverse:

```python
def is_palindrome(text: str) -> bool:
    \"\"\"Same both ways, ignoring case and punctuation.\"\"\"
    chars = [c.casefold() for c in text if c.isalnum()]
    return chars == chars[::-1]
```

- `isalnum()` keeps letters and digits in any script.
- `casefold()` is a stronger `lower()` (it maps `ß` to `ss`)."""

ANSWER_2 = """```python
is_pal = lambda s: (t := [c.casefold() for c in s if c.isalnum()]) == t[::-1]
```"""


def build_store(data_dir: Path) -> str:
    """Fill a store with the demo sessions; returns the id of the one to show."""
    from glmchat.session import Session, Step, Turn, TurnStatus
    from glmchat.usage import Usage
    from glmchat.store import Store

    def turn(n: int, user: str, content: str, reasoning: str = "", *, think_seconds: float = 4.2) -> Turn:
        created = NOW - 3000 + n * 90
        thinking = bool(reasoning)
        return Turn(user_text=user, thinking=thinking, host="zai", model="glm-4.7", id=f"{n:032x}", status=TurnStatus.COMPLETE, finish_reason="stop", created_at=created, first_reasoning_at=created + 0.4 if thinking else None, first_content_at=created + 0.4 + (think_seconds if thinking else 0.0), finished_at=created + 9.0, steps=[Step(reasoning=reasoning, content=content, usage=Usage(
                prompt_tokens=180 * n,
                completion_tokens=260,
                cached_tokens=150 * (n - 1),
                reasoning_tokens=96 if thinking else 0,
            ))])

    store = Store.open(data_dir)
    try:
        others = [
            ("Sourdough starter schedule", NOW - 86_400 * 3),
            ("Explain Rust lifetimes", NOW - 86_400),
            ("SQL window functions", NOW - 7_200),
        ]
        for index, (title, when) in enumerate(others, start=1):
            session = Session(title=title, id=f"{index:08x}" + "0" * 24, created_at=when, updated_at=when)
            session.turns.append(turn(index + 10, title, "…", "…"))
            store.save_session(session)
        shown = Session(
            title="Palindromes in Python",
            id="f" * 32,
            created_at=NOW - 3000,
            updated_at=NOW - 2500,
            turns=[
                turn(1, "Write a Python function that checks for a palindrome, ignoring punctuation.", ANSWER_1, REASONING_1),
                turn(2, "Now as a one-liner, please.", ANSWER_2),
            ],
        )
        store.save_session(shown)
        return shown.id
    finally:
        store.close()


async def shoot(out: Path, session_id: str, theme: str, shots: dict[str, Any]) -> None:
    """Open the app on the demo session and save one SVG per entry of `shots` (name -> action)."""
    from glmchat.config import AppOptions, Config
    from glmchat.ui.app import GlmChatApp

    config = Config(theme=theme, keys={"zai": DEMO_KEY})
    app = GlmChatApp(AppOptions(session=session_id), config=config, clock=lambda: NOW, probe=False)
    async with app.run_test(size=SIZE) as pilot:
        for name, action in shots.items():
            await pilot.pause()
            if action is not None:
                await action(pilot)
            await pilot.app.workers.wait_for_complete()
            for screen in app.screen_stack:
                for widget in screen.query("Input, TextArea"):
                    widget.cursor_blink = False
            await pilot.pause()
            await pilot.wait_for_scheduled_animations()
            svg = app.export_screenshot(title="glmchat")
            path = out / f"{name}.svg"
            path.write_text(svg, encoding="utf-8")
            print(f"wrote {path}")


async def unfold_all(pilot: Any) -> None:
    await pilot.press("ctrl+o")


async def main_async(out: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="glmchat-shots-") as tmp:
        home = Path(tmp)
        os.environ["GLMCHAT_HOME"] = str(home)
        for name in ("ZAI_API_KEY", "CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "RUNWARE_API_KEY"):
            os.environ.pop(name, None)
        os.environ["TEXTUAL_ANIMATIONS"] = "none"
        os.environ["TZ"] = "UTC"
        time.tzset()
        session_id = build_store(home)
        await shoot(out, session_id, "glm-dark", {"screenshot-folded": None, "screenshot-unfolded": unfold_all})
        await shoot(out, session_id, "glm-light", {"screenshot-light": unfold_all})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DOCS, help="folder for the SVG files (default: docs/)")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(REPO))
    args.out.mkdir(parents=True, exist_ok=True)
    asyncio.run(main_async(args.out.resolve()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
