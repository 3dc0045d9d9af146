"""Without tmux, the terminal tests are skipped, and the run's summary says so loudly (not just "s")."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_pytest(path_dirs: list[Path], *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST")}
    env["PATH"] = os.pathsep.join(str(d) for d in path_dirs)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_run_without_tmux_says_which_tests_did_not_run(tmp_path):
    # A PATH with no tmux on it (the interpreter is named by its full path).
    empty = tmp_path / "bin"
    empty.mkdir()
    result = run_pytest([empty], "tests/e2e/test_tmux.py", "tests/test_ui_markdown.py::test_blocks_and_their_start_lines")
    out = result.stdout
    assert result.returncode == 0, out
    # (On the suite's workers, as a normal run: the summary comes from the process that reports.)
    assert "SKIPPED [1] tests/e2e/test_tmux.py" in out, "the terminal test was skipped"
    assert "FAILED" not in out and "ERROR" not in out, "and the other one passed"
    assert "tmux missing" in out
    assert "end-to-end test" in out and "did NOT run: tmux is not installed" in out


@pytest.mark.tmux
def test_a_run_with_tmux_says_nothing_about_it():
    result = run_pytest([Path("/usr/bin"), Path("/bin")], "tests/test_ui_markdown.py::test_blocks_and_their_start_lines")
    assert result.returncode == 0, result.stdout
    assert "tmux missing" not in result.stdout
