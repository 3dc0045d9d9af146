"""Crashes: unexpected errors leave a scrubbed log, a SIGKILL mid-stream loses at most the last moment,
and two processes on one data dir lose nothing."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-crash-test-0011223344556677SECRET"


def run_with_fault(home: Path, fault: str, args: list[str], env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run glmchat's main() in a fresh interpreter after `fault` (Python source) broke something in it."""
    code = f"import sys\n{fault}\nfrom glmchat.cli import main\nsys.exit(main({args!r}))\n"
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full_env.update(GLMCHAT_HOME=str(home), PYTHONPATH=str(ROOT), **(env or {}))
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=full_env, capture_output=True, text=True, timeout=30)


def test_unexpected_error_is_one_line_and_a_scrubbed_log(glmchat_home: Path) -> None:
    env_key = "csk-env-key-aaaabbbbccccdddd9999"
    (glmchat_home / "config.toml").write_text(f'[keys]\nzai = "{KEY}"\n')
    os.chmod(glmchat_home / "config.toml", 0o600)
    fault = (
        "import glmchat.config as c, os\n"
        "def broken(config):\n"
        "    raise RuntimeError('boom with ' + config.keys['zai'] + ' and ' + os.environ['CEREBRAS_API_KEY'])\n"
        "c.config_to_dict = broken\n"
    )
    proc = run_with_fault(glmchat_home, fault, ["config", "show"], env={"CEREBRAS_API_KEY": env_key})
    assert proc.returncode == 1
    log_file = glmchat_home / "glmchat.log"
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("glmchat: unexpected error (RuntimeError: boom with")
    assert str(log_file) in proc.stderr
    assert "Traceback" not in proc.stderr
    log = log_file.read_text()
    assert "Traceback" in log and "RuntimeError: boom with" in log and "broken" in log
    for secret in (KEY, env_key):
        assert secret not in proc.stderr + proc.stdout
        assert secret not in log
        assert secret[-4:] in log  # masked, not dropped: the reader still sees which key it was
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o600


def test_config_error_is_exit_2_without_log(glmchat_home: Path) -> None:
    fault = (
        "import glmchat.config as c\n"
        "from glmchat.errors import ConfigError\n"
        "def broken(*a, **k):\n"
        "    raise ConfigError('config.toml line 7: something specific')\n"
        "c.config_to_dict = broken\n"
    )
    proc = run_with_fault(glmchat_home, fault, ["config", "show"])
    assert proc.returncode == 2
    assert proc.stderr == "glmchat: config.toml line 7: something specific\n"
    assert not (glmchat_home / "glmchat.log").exists()
