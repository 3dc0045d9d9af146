"""What a person sees, measured in a real terminal: the installed glmchat in tmux.

    python bench/bench_terminal.py [--runs 5] [--json out.json]

The screen is read with `tmux capture-pane`, polled every few milliseconds; the
loopback server runs as its own process and records when each chunk left it,
on the same monotonic clock.

- Start-up: launching `glmchat` (a home with 40 sessions, the latest with 30
  turns) to the first frame that shows the composer, against a bare Textual
  app showing one Static, launched and read the same way; alternated, median
  of --runs. Bar: <= 1.5x.
- Fast host: a turn of 2,000 reasoning + 2,000 answer tokens at 1,000 tokens/s,
  from Enter to the answer's last line on screen, against a plain httpx client
  reading the same stream from request to last byte (bench/_floor.py). Bar: <= 1.03x.
- Long answers: 20,000 and 100,000 tokens unthrottled: from the last byte
  leaving the server to the last line on screen (bars: 1 s and 3 s), and the
  peak RSS of the glmchat process (bar: 150 MB).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Report, Server, make_home, median  # noqa: E402
from bench.bench_start import populated_home  # noqa: E402
from tests.e2e.terminal import Terminal, app_env, finished_turns, glmchat_command, peak_rss_mb  # noqa: E402
from tests.glm_server import corpus  # noqa: E402

SIZE = (120, 40)
POLL = 0.005
BARE_TEXT = "Hello from a bare Textual app."
BARE_APP = (
    "from textual.app import App\n"
    "from textual.widgets import Static\n"
    "class Bare(App):\n"
    "    def compose(self):\n"
    f"        yield Static({BARE_TEXT!r})\n"
    "Bare().run()\n"
)


def time_until(terminal: Terminal, shown: str, timeout: float = 60.0) -> float:
    """Monotonic time at which `shown` is first on the screen."""
    deadline = time.monotonic() + timeout
    while True:
        if shown in terminal.screen():
            return time.monotonic()
        if time.monotonic() > deadline:
            raise RuntimeError(f"{shown!r} never showed; the screen was:\n{terminal.screen()}")
        time.sleep(POLL)


def launch_time(terminal: Terminal, command: list[str], env: dict[str, str], shown: str) -> float:
    """Seconds from launching `command` in the pane to `shown` on screen."""
    terminal.tmux("respawn-pane", "-k", "-t", terminal.name, *(a for k, v in env.items() for a in ("-e", f"{k}={v}")),
                  " ".join(command))
    t0 = time.monotonic()
    return time_until(terminal, shown) - t0


def start_up(report: Report, runs: int) -> None:
    report.section("start-up to the first frame, in tmux")
    home = populated_home()
    bare_script = home / "bare_app.py"
    bare_script.write_text(BARE_APP)
    bare = [sys.executable, str(bare_script)]
    terminal = Terminal()
    try:
        terminal.start(["sleep", "60"], {}, size=SIZE)
        ours: list[float] = []
        theirs: list[float] = []
        for run in range(runs + 1):
            glm = launch_time(terminal, glmchat_command(), app_env(home), "Message GLM")
            ref = launch_time(terminal, bare, {"TERM": "xterm-256color"}, BARE_TEXT)
            if run:  # the first of each warms the disk cache and the bytecode
                ours.append(glm)
                theirs.append(ref)
    finally:
        terminal.close()
    report.figure("glmchat (40 sessions, the last with 30 turns)", median(ours) * 1000, "ms")
    report.figure("bare Textual app, one Static", median(theirs) * 1000, "ms")
    report.bar("start-up, glmchat / bare Textual app", median(ours) / median(theirs), 1.5, "x")


def _reply(reasoning: int, content: int, pace: float | None, marker: str) -> dict:
    reply: dict = {
        "reasoning": corpus(reasoning, seed=1) if reasoning else None,
        "content": corpus(content, seed=2) + f"\n\n{marker}\n",
        "chunk_tokens": 3,
    }
    if pace:
        reply["pace"] = pace
    else:
        reply["unthrottled"] = True
    return reply


def floor_turn(server: Server, reasoning: int, content: int, pace: float) -> float:
    """A plain httpx client reading the same stream: request to last byte, in seconds."""
    server.enqueue(_reply(reasoning, content, pace, "END"))
    out = subprocess.run([sys.executable, "bench/_floor.py", server.url], cwd=ROOT, capture_output=True, text=True,
                         timeout=300).stdout
    result = json.loads(out.rsplit("RESULT ", 1)[1])
    return result["t_last"] - result["t_request"]


class Session:
    """glmchat running in tmux on a fresh home, sending turns to the loopback server."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.home = make_home(prefix="glmchat-bench-terminal-")
        self.terminal = Terminal()
        self.terminal.start([*glmchat_command(), "--new", "--host", "zai", "--base-url", f"{server.url}/zai"],
                            app_env(self.home), size=SIZE)
        self.terminal.wait_for("the first frame", lambda s: "Message GLM" in s)
        self.sent = 0

    def turn(self, reasoning: int, content: int, pace: float | None) -> tuple[float, float, float]:
        """Send one turn; seconds from Enter to the last line on screen, from Enter to the request
        arriving at the server, and from the last byte sent to the last line on screen."""
        marker = f"ZZEND{self.sent:03d}"
        self.server.enqueue(_reply(reasoning, content, pace, marker))
        self.terminal.type(f"question {self.sent}")
        # Let the composer draw the text first: Enter is what is timed.
        self.terminal.wait_for("the prompt", lambda s: f"question {self.sent}" in s)
        t0 = time.monotonic()
        self.terminal.press("Enter")
        shown = time_until(self.terminal, marker, timeout=600)
        self.sent += 1
        request = self.server.last()
        while finished_turns(self.home) < self.sent:
            time.sleep(0.01)
        return shown - t0, request["arrived_at"] - t0, shown - request["chunk_times"][-1]

    def rss_mb(self) -> float | None:
        return peak_rss_mb(self.terminal.pane_pid())

    def close(self) -> None:
        self.terminal.press("C-q")
        try:
            self.terminal.wait_for("exit", lambda s: self.terminal.dead(), timeout=20)
        finally:
            self.terminal.close()


def fast_host(report: Report, server: Server, runs: int) -> None:
    report.section("2,000 + 2,000 tokens at 1,000 tokens/s: Enter to the last line on screen, in tmux")
    session = Session(server)
    try:
        ours, sends, lags, theirs = [], [], [], []
        for _ in range(runs):
            turn, send, lag = session.turn(2000, 2000, 1000)
            ours.append(turn)
            sends.append(send)
            lags.append(lag)
            theirs.append(floor_turn(server, 2000, 2000, 1000))
    finally:
        session.close()
    report.figure("glmchat: Enter to the last line on screen", median(ours), "s")
    report.figure("glmchat: Enter to the request at the server", median(sends) * 1000, "ms")
    report.figure("glmchat: last byte sent to the last line on screen", median(lags) * 1000, "ms")
    report.figure("plain httpx client: request to last byte", median(theirs), "s")
    report.bar("whole turn, glmchat / plain httpx client", median(ours) / median(theirs), 1.03, "x")


def long_answers(report: Report, server: Server) -> None:
    for tokens, limit in ((20_000, 1.0), (100_000, 3.0)):
        report.section(f"a {tokens:,}-token answer unthrottled, in tmux")
        session = Session(server)
        try:
            turn, _, lag = session.turn(0, tokens, None)
            rss = session.rss_mb()
        finally:
            session.close()
        report.figure("Enter to the last line on screen", turn, "s")
        report.bar(f"{tokens:,} tokens: last byte sent to last line on screen", lag, limit, "s")
        report.bar(f"{tokens:,} tokens: peak RSS of glmchat", rss, 150, "MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--only", default="start,host,long")
    parser.add_argument("--json")
    args = parser.parse_args()
    only = set(args.only.split(","))
    report = Report("What the terminal shows (tmux)")
    if "start" in only:
        start_up(report, args.runs)
    with Server() as server:
        if "host" in only:
            fast_host(report, server, max(1, args.runs // 2))
        if "long" in only:
            long_answers(report, server)
    report.save(args.json)


if __name__ == "__main__":
    main()
