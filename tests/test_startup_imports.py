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
