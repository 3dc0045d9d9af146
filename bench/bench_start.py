"""Start-up (issue 4, scenario 1).

    python bench/bench_start.py [--runs 7] [--json out.json]

- `glmchat` (glmchat.cli.main, the real start path: config, store, session
  list, last session with its last turns) to its first interactive frame,
  against a bare Textual app with one Static, both headless in fresh
  processes, alternated, median of --runs. Bar: <= 1.5x.
- `glmchat --version`: process start to exit (no Textual, no httpx).
- `glmchat ask`: process start to the request arriving at the loopback
  server, against a plain httpx script doing the same; no Textual imported.
- `-X importtime`: the biggest imports of each path.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    ROOT,
    Report,
    Server,
    child_env,
    data_dir_of,
    make_home,
    median,
    store_session,
    stored_turns,
)


def populated_home(url: str | None = None) -> Path:
    """A home as after some use: 40 sessions, the most recent with 30 turns of mixed Markdown."""
    home = make_home(url, prefix="glmchat-bench-start-")
    data = data_dir_of(home)
    for i in range(39):
        store_session(data, stored_turns(4, start=1_600_000_000.0 + i * 3600), title=f"Older session {i + 1}")
    store_session(data, stored_turns(30), title="Recent session")
    return home


def first_frame(mode: str, home: Path | None, extra: list[str] | None = None) -> float:
    """Seconds from spawning the child to its first interactive frame."""
    env = child_env(home)
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, *(extra or []), "bench/_start_child.py", mode],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("FRAME "):
            return float(line.split()[1]) - t0
    raise RuntimeError(f"{mode}: no frame (exit {proc.returncode}):\n{proc.stderr[-3000:]}")


def wall(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return time.monotonic() - t0


def time_to_request(argv: list[str], env: dict[str, str], server: Server) -> float:
    """Seconds from spawning a process to its chat request arriving at the server."""
    server.reset()
    t0 = time.monotonic()
    proc = subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv}: exit {proc.returncode}\n{proc.stderr[-2000:]}")
    return server.last()["arrived_at"] - t0


def import_profile(argv: list[str], env: dict[str, str]) -> tuple[list[tuple[float, str]], set[str]]:
    """(cumulative ms, module) of the top-level imports of a run, and every package imported."""
    proc = subprocess.run([sys.executable, "-X", "importtime", *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    rows: list[tuple[float, str]] = []
    names: set[str] = set()
    for line in proc.stderr.splitlines():
        m = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if not m:
            continue
        names.add(m.group(4).split(".")[0])
        if len(m.group(3)) <= 1:  # imported directly by the program, not by another module
            rows.append((int(m.group(2)) / 1000, m.group(4)))
    rows.sort(reverse=True)
    return rows, names


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--json")
    args = parser.parse_args()
    report = Report("Start-up (issue 4 §1)")

    with Server() as server:
        home = populated_home(server.url)
        empty = make_home(server.url, prefix="glmchat-bench-start-empty-")
        env = child_env(home)

        report.section(f"glmchat to its first interactive frame vs a bare Textual app (headless, median of {args.runs})")
        first_frame("bare", None)  # warm the OS file cache for both
        first_frame("glmchat", home)
        bare, full, fresh = [], [], []
        for _ in range(args.runs):
            bare.append(first_frame("bare", None))
            full.append(first_frame("glmchat", home))
            fresh.append(first_frame("glmchat", empty))
        b, g, e = median(bare), median(full), median(fresh)
        report.figure("bare Textual app, one Static", b * 1000, "ms", f"min {min(bare) * 1000:.0f}")
        report.figure("glmchat, 40 sessions, last one 30 turns", g * 1000, "ms", f"min {min(full) * 1000:.0f}")
        report.figure("glmchat, empty store", e * 1000, "ms", f"min {min(fresh) * 1000:.0f}")
        report.bar("glmchat first frame / bare Textual", g / b, 1.5, "x", reference=f"bare {b * 1000:.0f} ms")

        report.section(f"glmchat --version and glmchat ask (median of {args.runs})")
        python = median(wall(["-c", "pass"], env) for _ in range(args.runs))
        version = median(wall(["-m", "glmchat", "--version"], env) for _ in range(args.runs))
        report.figure("python -c pass", python * 1000, "ms")
        report.figure("glmchat --version, start to exit", version * 1000, "ms")
        ask_argv = ["-m", "glmchat", "ask", "--host", "zai", "--base-url", f"{server.url}/zai", "--no-think", "hi"]
        ask = median(time_to_request(ask_argv, env, server) for _ in range(args.runs))
        floor = median(time_to_request(["bench/_floor.py", server.url], env, server) for _ in range(args.runs))
        report.figure("glmchat ask, start to request at the server", ask * 1000, "ms")
        report.figure("plain httpx script, start to request at the server", floor * 1000, "ms")
        report.figure("ask / plain httpx script", ask / floor, "x")

        report.section("-X importtime: biggest top-level imports (cumulative ms, one run)")
        profiles = {
            "glmchat --version": ["-m", "glmchat", "--version"],
            "glmchat ask": ask_argv,
            "glmchat (TUI)": ["bench/_start_child.py", "glmchat"],
        }
        for label, argv in profiles.items():
            rows, names = import_profile(argv, env)
            heavy = sorted(names & {"textual", "httpx", "rich", "sqlite3", "markdown_it", "pygments", "asyncio"})
            top = ", ".join(f"{name} {ms:.0f}" for ms, name in rows[:8])
            report.figure(f"{label}: heavy packages", " ".join(heavy) or "none")
            print(f"      top: {top}")
        report.save(args.json)


if __name__ == "__main__":
    main()
