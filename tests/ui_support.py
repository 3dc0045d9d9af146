"""Helpers for the chat UI tests: an app wired to the loopback server, stored sessions, screen text."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Callable

from glmchat.client import GlmClient
from glmchat.config import AppOptions, Config, paths
from glmchat.session import Session, Step, Turn, TurnStatus
from glmchat.usage import Usage
from glmchat.store import Store
from glmchat.ui.app import GlmChatApp

BASE_TIME = 1_700_000_000.0
"""A fixed 'now' for screenshots (Tue 14 Nov 2023)."""

KEY = "test-key-0123456789abcdef"
SIZE = (100, 32)


def make_config(server: Any = None, **overrides: Any) -> Config:
    """A config with a key for Z.ai, pointed at the loopback server when one is given."""
    hosts: dict[str, dict[str, Any]] = {}
    if server is not None:
        hosts["zai"] = {"base_url": server.base_url("zai")}
    for name, value in overrides.pop("zai", {}).items():
        hosts.setdefault("zai", {})[name] = value
    config = Config(keys={"zai": KEY}, hosts=hosts, theme="glm-dark")
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


def make_app(
    server: Any = None,
    *,
    config: Config | None = None,
    store: Store | None = None,
    options: AppOptions | None = None,
    clock: Callable[[], float] | None = None,
    max_retries: int = 0,
    backoff: float = 0.01,
) -> GlmChatApp:
    """The real app, talking to the loopback server through a real GlmClient."""
    client = GlmClient(max_retries=max_retries, backoff=backoff, connect_timeout=2, read_timeout=10)
    kwargs: dict[str, Any] = {}
    if clock is not None:
        kwargs["clock"] = clock
    return GlmChatApp(
        options,
        config=config if config is not None else make_config(server),
        store=store,
        client=client,
        probe=False,
        **kwargs,
    )


def open_store() -> Store:
    """The store in the test's GLMCHAT_HOME (the folder the app would use)."""
    return Store.open(paths().data_dir)


def stored_turn(
    n: int,
    *,
    thinking: bool = True,
    reasoning: str | None = None,
    content: str | None = None,
    user: str | None = None,
) -> Turn:
    """A finished turn with fixed ids and timestamps (deterministic on screen)."""
    created = BASE_TIME + n * 60
    turn = Turn(user_text=user if user is not None else f"Question {n}", thinking=thinking, host="zai", model="glm-4.7", id=f"{n:032x}", status=TurnStatus.COMPLETE, finish_reason="stop", created_at=created, first_reasoning_at=created + 0.5 if thinking else None, first_content_at=created + 3.6, finished_at=created + 5.0, steps=[Step(reasoning=(reasoning if reasoning is not None else f"Reasoning for question {n}. " * 3) if thinking else "", content=content if content is not None else f"Answer **{n}**.", usage=Usage(prompt_tokens=100 * n, completion_tokens=50, cached_tokens=80 * n if n > 1 else 0, reasoning_tokens=20 if thinking else 0))])
    return turn


def stored_session(store: Store, title: str, turns: list[Turn], *, number_hint: int = 1) -> Session:
    """Save a session with the given turns; returns it."""
    session = Session(
        title=title,
        id=f"{number_hint:08x}" + "0" * 24,
        created_at=BASE_TIME + number_hint,
        updated_at=BASE_TIME + number_hint * 600,
        turns=turns,
    )
    store.save_session(session)
    return session


def screen_text(app: GlmChatApp) -> str:
    """What the screen shows, as plain text."""
    strips = app.screen._compositor.render_strips()
    return "\n".join(strip.text.rstrip() for strip in strips)


async def wait_for(pilot: Any, predicate: Callable[[], bool], timeout: float = 5.0, step: float = 0.02) -> None:
    """Let the app run until `predicate()` holds (fails the test on timeout)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out waiting for the app")
        await asyncio.sleep(step)
    await pilot.pause()


def cwd_files(folder: Path, suffix: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix == suffix)
