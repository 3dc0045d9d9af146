"""`glmchat` as a real subprocess: ask, sessions, config (against the loopback GLM server)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-cli-test-9f8e7d6c5b4a39281706SECRET"


def run(*args: str, home: Path, stdin: str | bytes | None = None, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """Run `python -m glmchat ARGS` with its own GLMCHAT_HOME; stdout/stderr as text (exact bytes in .stdout_bytes)."""
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full_env.update(GLMCHAT_HOME=str(home), PYTHONPATH=str(ROOT), **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "glmchat", *args],
        cwd=ROOT, env=full_env, capture_output=True, timeout=timeout,
        input=stdin.encode() if isinstance(stdin, str) else stdin,
    )
    proc.stdout_bytes = proc.stdout  # type: ignore[attr-defined]
    proc.stdout = proc.stdout.decode("utf-8", "replace")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


# -- config -------------------------------------------------------------------------------------


def test_set_key_from_stdin_creates_a_0600_file_and_never_echoes(glmchat_home: Path) -> None:
    proc = run("config", "set-key", "zai", home=glmchat_home, stdin=KEY + "\n")
    assert proc.returncode == 0, proc.stderr
    config_file = glmchat_home / "config.toml"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert KEY in config_file.read_text()
    assert KEY not in proc.stdout + proc.stderr
    assert "…" + KEY[-4:] in proc.stderr


def test_set_key_refuses_unknown_host_and_empty_key(glmchat_home: Path) -> None:
    proc = run("config", "set-key", "nowhere", home=glmchat_home, stdin=KEY)
    assert proc.returncode == 2
    assert "unknown host 'nowhere'" in proc.stderr and "zai" in proc.stderr
    proc = run("config", "set-key", "zai", home=glmchat_home, stdin="\n")
    assert proc.returncode == 2
    assert not (glmchat_home / "config.toml").exists()


def test_config_show_masks_every_key(glmchat_home: Path) -> None:
    other = "csk-0000111122223333444455556666"
    run("config", "set-key", "zai", KEY, home=glmchat_home)
    run("config", "set-key", "cerebras", home=glmchat_home, stdin=other)
    env_key = "sk-or-v1-env-777788889999aaaabbbb"
    proc = run("config", "show", home=glmchat_home, env={"OPENROUTER_API_KEY": env_key})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    for key in (KEY, other, env_key):
        assert key not in out
        assert key[-4:] in out  # the masked form is shown
        assert key[-8:] not in out
    assert "$OPENROUTER_API_KEY" in out


def test_config_path(glmchat_home: Path) -> None:
    proc = run("config", "path", home=glmchat_home)
    assert proc.returncode == 0
    assert str(glmchat_home / "config.toml") in proc.stdout


def test_broken_config_names_file_and_line_and_cli_still_works(glmchat_home: Path) -> None:
    config_file = glmchat_home / "config.toml"
    config_file.write_text('host = "zai"\n\ntheme = [unclosed\n')
    proc = run("config", "show", home=glmchat_home)
    assert proc.returncode == 0
    assert f"{config_file} line 3:" in proc.stderr
    assert proc.stderr.count("line 3:") == 1  # warned once
    assert 'host = "zai"' in proc.stdout  # defaults used
    assert not config_file.exists()
    assert len(list(glmchat_home.glob("config.toml.broken-*"))) == 1
    # The next run is clean.
    proc = run("config", "show", home=glmchat_home)
    assert proc.returncode == 0 and "warning" not in proc.stderr


def test_group_readable_config_with_key_warns(glmchat_home: Path) -> None:
    run("config", "set-key", "zai", KEY, home=glmchat_home)
    os.chmod(glmchat_home / "config.toml", 0o644)
    proc = run("config", "path", home=glmchat_home)
    assert proc.returncode == 0
    assert "chmod 600" in proc.stderr
    assert KEY not in proc.stderr


def test_usage_errors_exit_2_with_one_line(glmchat_home: Path) -> None:
    for args in (["ask", "--bogus", "x"], ["sessions"], ["ask", "--session", "1", "--new", "x"]):
        proc = run(*args, home=glmchat_home)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("glmchat: ")
        assert proc.stderr.count("\n") == 1
        assert "Traceback" not in proc.stderr


def test_ask_without_key_says_how_to_set_one(glmchat_home: Path) -> None:
    proc = run("ask", "hello", home=glmchat_home)
    assert proc.returncode == 2
    assert "ZAI_API_KEY" in proc.stderr and "glmchat config set-key zai" in proc.stderr
    assert proc.stdout == ""
