"""The quick paths stay quick: `--version`/`--help` load neither Textual nor httpx nor SQLite, `ask` no Textual."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY_FOR_VERSION = ("textual", "httpx", "sqlite3", "_sqlite3", "rich", "platformdirs", "asyncio")


def imported_modules(args: list[str], env_extra: dict[str, str] | None = None, stdin: str | None = None) -> tuple[set[str], subprocess.CompletedProcess]:
    """Run `python -X importtime -m glmchat ARGS`; return the top-level names of every module imported."""
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "glmchat", *args],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, input=stdin,
    )
    names = set()
    for line in proc.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            name = line.rsplit("|", 1)[1].strip()
            names.add(name.split(".")[0])
    assert names, proc.stderr[-2000:]
    return names, proc


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["ask", "--help"], ["sessions", "--help"]])
def test_quick_paths_import_nothing_heavy(args: list[str]) -> None:
    names, proc = imported_modules(args)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "glmchat" in names
    assert not names & set(HEAVY_FOR_VERSION), sorted(names & set(HEAVY_FOR_VERSION))


def test_version_prints_the_package_version() -> None:
    from glmchat import __version__

    proc = subprocess.run([sys.executable, "-m", "glmchat", "--version"], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"glmchat {__version__}"


def test_ask_imports_no_textual(glm_server) -> None:
    names, proc = imported_modules(
        ["ask", "--host", "zai", "--base-url", f"{glm_server.url}/zai", "--no-think", "hello"],
        env_extra={"ZAI_API_KEY": "sk-test-0000000000000000"},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "httpx" in names and "glmchat" in names  # it did stream
    assert "textual" not in names


def test_core_modules_do_not_import_textual() -> None:
    code = (
        "import sys, glmchat.cli, glmchat.config, glmchat.turn_runner, glmchat.client, glmchat.store, glmchat.export;"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'textual' or m.startswith('glmchat.ui'));"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


MCP_MODULES = {"mcp", "mcp_types", "httpx2", "pydantic", "starlette", "uvicorn"}


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["config", "show"]])
def test_quick_paths_do_not_import_mcp_even_with_servers_configured(args: list[str], glmchat_home: Path) -> None:
    (glmchat_home / "config.toml").write_text('[mcp.notes]\ncommand = ["notes-server"]\n[tools]\nmax_steps = 5\n')
    names, proc = imported_modules(args, env_extra={"GLMCHAT_HOME": str(glmchat_home)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not names & MCP_MODULES, sorted(names & MCP_MODULES)


def test_ask_without_tools_does_not_import_mcp(glm_server, glmchat_home: Path) -> None:
    (glmchat_home / "config.toml").write_text('[mcp.notes]\ncommand = ["notes-server"]\n')
    names, proc = imported_modules(
        ["ask", "--host", "zai", "--base-url", f"{glm_server.url}/zai", "--no-think", "hello"],
        env_extra={"ZAI_API_KEY": "sk-test-0000000000000000", "GLMCHAT_HOME": str(glmchat_home)},
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "httpx" in names  # it did stream
    assert not names & MCP_MODULES, sorted(names & MCP_MODULES)
    assert not names & {"glmchat.cli_tools", "glmchat.tools.runner", "glmchat.tools.toolbox"}


def test_a_running_tui_with_servers_configured_does_not_import_mcp(glmchat_home: Path) -> None:
    (glmchat_home / "config.toml").write_text('[mcp.notes]\ncommand = ["notes-server"]\n')
    code = (
        "import asyncio, sys\n"
        "from tests.ui_support import make_app, make_config\n"
        "async def main():\n"
        "    config = make_config(mcp={'notes': {'command': ['notes-server']}})\n"
        "    async with make_app(config=config).run_test(size=(100, 32)) as pilot:\n"
        "        await pilot.pause()\n"
        "        await pilot.press('h', 'i')\n"
        "        await pilot.pause()\n"
        f"    print(sorted(m for m in sys.modules if m.split('.')[0] in {sorted(MCP_MODULES)!r}))\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(ROOT), GLMCHAT_HOME=str(glmchat_home)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_tui_start_and_the_tools_package_do_not_import_mcp() -> None:
    # The app module and everything it loads to show its first screen, plus glmchat.tools itself:
    # mcp is imported only when a ToolBox starts a server.
    code = (
        "import sys, glmchat.ui.app, glmchat.tools, glmchat.tools.toolbox, glmchat.tools.results;"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(MCP_MODULES)!r});"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


async def test_starting_a_toolbox_is_what_imports_mcp(tmp_path: Path) -> None:
    command = [sys.executable, str(ROOT / "tests" / "mcp_server.py"), "--stdio"]
    code = (
        "import asyncio, sys\n"
        "from glmchat.config import parse_mcp_servers\n"
        "from glmchat.tools import ToolBox\n"
        f"servers, _ = parse_mcp_servers({{'t': {{'command': {command!r}}}}})\n"
        "box = ToolBox(list(servers.values()))\n"
        "assert 'mcp' not in sys.modules\n"
        "async def main():\n"
        "    async with box:\n"
        "        print(len(box.tools), 'mcp' in sys.modules)\n"
        "asyncio.run(main())\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=90,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.split() == ["12", "True"]
