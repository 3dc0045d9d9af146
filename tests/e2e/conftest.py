"""Fixtures of the end-to-end tests: the loopback GLM server as a process, and a tmux terminal."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.terminal import GlmServerProcess, Terminal


@pytest.fixture(scope="module")
def server() -> Iterator[GlmServerProcess]:
    """One loopback server per test module, in its own process (stopped whatever happens)."""
    server = GlmServerProcess()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    """A tmux terminal on a private tmux server (killed whatever happens)."""
    term = Terminal()
    try:
        yield term
    finally:
        term.close()
