"""Shared fixtures. Every test runs with its own GLMCHAT_HOME and no API keys from the environment."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

KEY_VARIABLES = ("ZAI_API_KEY", "CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "RUNWARE_API_KEY")


@pytest.fixture(autouse=True)
def glmchat_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private config+data folder for each test, so no test sees another's sessions or the user's."""
    home = tmp_path / "glmchat-home"
    home.mkdir()
    monkeypatch.setenv("GLMCHAT_HOME", str(home))
    for name in KEY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TEXTUAL_ANIMATIONS", "none")
    from glmchat.sanitize import forget_secrets

    forget_secrets()  # keys another test loaded must not redact this test's text
    return home


@pytest.fixture
def glm_server():
    """The loopback GLM server (tests/glm_server.py), started for one test and always stopped."""
    from tests.glm_server import GlmServer

    server = GlmServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def mcp_http_server(tmp_path: Path):
    """The loopback MCP server (tests/mcp_server.py) over streamable HTTP, in its own process, always stopped."""
    from tests.mcp_server import http_server

    with http_server(tmp_path) as server:
        yield server


@pytest.fixture
def mcp_stdio(tmp_path: Path):
    """How to run the loopback MCP server over stdio: its command line and its call log.

    The process itself is started (and stopped) by whoever runs the command.
    """
    from tests.mcp_server import StdioMcpServer

    return StdioMcpServer(call_log=tmp_path / "mcp-stdio-calls.jsonl")


# -- tests that need tmux ----------------------------------------------------------------------

TMUX_REASON = "tmux is not installed: these tests drive glmchat in a real terminal"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tests marked `tmux` when there is no tmux (the summary counts them)."""
    import shutil

    if shutil.which("tmux") is not None:
        return
    skip = pytest.mark.skip(reason=TMUX_REASON)
    for item in items:
        if item.get_closest_marker("tmux") is not None:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:  # noqa: ARG001
    """Say loudly that the terminal tests did not run: a green run without them proves less.

    Counted from the skip reports, which every worker sends to the process that reports.
    """
    count = sum(TMUX_REASON in str(report.longrepr) for report in terminalreporter.stats.get("skipped", []))
    if not count:
        return
    terminalreporter.section("tmux missing", sep="!", red=True, bold=True)
    terminalreporter.write_line(
        f"{count} end-to-end test{'s' if count != 1 else ''} did NOT run: tmux is not installed "
        "(Debian/Ubuntu: apt install tmux). Keys, focus, resizing and signals are unchecked in a real terminal.",
        red=True,
        bold=True,
    )
