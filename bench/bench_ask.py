"""`glmchat ask` end to end vs a plain httpx client (issue 4, scenario 7, and the floor of scenario 3).

    python bench/bench_ask.py [--runs 3] [--json out.json]

Both are fresh processes reading the same stream from the loopback server
(4,000 reasoning + 4,000 answer tokens, 3-token chunks), answer to stdout and
reasoning to stderr, each delta written and flushed as it arrives; the parent
reads both pipes and notes when the last byte of the answer arrived.

- at host speed (1,000 tokens/s): the last answer byte after the server sent
  the last chunk, and the process's CPU time / the stream's duration;
- unthrottled: tokens/s from the request reaching the server to the last
  byte on stdout, and from spawning the process.

`glmchat ask` does more than the floor on purpose (config, SQLite store with
progress saves, request building with history, typed events, retries); the
ratios say what that costs.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    CONTENT_SEED,
    REASONING_SEED,
    ROOT,
    Report,
    Server,
    child_env,
    corpus_tokens,
    make_home,
    median,
    reply,
)

TOKENS = 4000


def run_streamed(argv: list[str], env: dict[str, str], answer_bytes: int) -> dict[str, float]:
    """Spawn `python argv`; time the arrival of the answer's last byte on stdout; CPU and RSS from wait4."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    seen = {"out": 0, "done": None}
    err: list[bytes] = []

    def read_out() -> None:
        fd = proc.stdout.fileno()  # type: ignore[union-attr]
        while chunk := os.read(fd, 1 << 16):
            seen["out"] += len(chunk)
            if seen["done"] is None and seen["out"] >= answer_bytes:
                seen["done"] = time.monotonic()

    def read_err() -> None:
        fd = proc.stderr.fileno()  # type: ignore[union-attr]
        while chunk := os.read(fd, 1 << 16):
            err.append(chunk)

    threads = [threading.Thread(target=read_out, daemon=True), threading.Thread(target=read_err, daemon=True)]
    for t in threads:
        t.start()
    _, status, usage = os.wait4(proc.pid, 0)
    t_exit = time.monotonic()
    proc.returncode = os.waitstatus_to_exitcode(status)
    for t in threads:
        t.join(10)
    if proc.returncode != 0 or seen["done"] is None:
        raise RuntimeError(f"{argv[:3]}: exit {proc.returncode}, {seen['out']} of {answer_bytes} bytes\n"
                           f"{b''.join(err)[-2000:].decode(errors='replace')}")
    return {"t0": t0, "done": seen["done"], "exit": t_exit, "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_mb": usage.ru_maxrss / 1024}


def one(server: Server, env: dict[str, str], which: str, pace: float | None) -> dict[str, float]:
    reasoning = corpus_tokens(TOKENS, REASONING_SEED)
    content = corpus_tokens(TOKENS, CONTENT_SEED)
    server.reset()
    server.enqueue(reply(reasoning, content, pace=pace, chunk=3))
    if which == "ask":
        argv = ["-m", "glmchat", "ask", "--host", "zai", "--base-url", f"{server.url}/zai", "--think", "bench: stream this"]
    else:
        argv = ["bench/_floor.py", server.url, "--print"]
    r = run_streamed(argv, env, len("".join(content).encode()))
    record = server.last()
    r["request"] = record["arrived_at"]
    r["first_chunk"] = record["chunk_times"][0]
    r["last_chunk"] = record["chunk_times"][-1]
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3, help="runs of the unthrottled case (median)")
    parser.add_argument("--json")
    args = parser.parse_args()
    report = Report("glmchat ask end to end vs plain httpx (issue 4 §7)")
    n = 2 * TOKENS
    with Server() as server:
        env = child_env(make_home(server.url))
        one(server, env, "ask", None)  # warm the file cache and the store

        report.section("at host speed: 8,000 tokens at 1,000 tok/s in 3-token chunks")
        a = one(server, env, "ask", 1000)
        f = one(server, env, "floor", 1000)
        stream = a["last_chunk"] - a["first_chunk"]
        for label, r in (("glmchat ask", a), ("plain httpx", f)):
            dur = r["last_chunk"] - r["first_chunk"]
            report.figure(f"{label}: last chunk sent -> last answer byte on stdout", (r["done"] - r["last_chunk"]) * 1000, "ms")
            report.figure(f"{label}: process CPU (start to exit) / stream duration", 100 * r["cpu"] / dur, "%",
                          f"{r['cpu']:.2f} s over {dur:.1f} s")
            report.figure(f"{label}: peak RSS", r["maxrss_mb"], "MB")
        report.bar("ask: last token on stdout after the server sent it", (a["done"] - a["last_chunk"]) * 1000, 100, "ms",
                   reference=f"floor {(f['done'] - f['last_chunk']) * 1000:.1f} ms")
        report.bar("ask: process CPU / stream duration", 100 * a["cpu"] / stream, 25, "%",
                   reference=f"floor {100 * f['cpu'] / (f['last_chunk'] - f['first_chunk']):.1f} %")

        report.section(f"unthrottled: the same 8,000 tokens as fast as the server sends (median of {args.runs})")
        asks, floors = [], []
        for _ in range(args.runs):
            asks.append(one(server, env, "ask", None))
            floors.append(one(server, env, "floor", None))
        stats = {}
        for label, runs in (("glmchat ask", asks), ("plain httpx", floors)):
            streamed = median(r["done"] - r["request"] for r in runs)
            total = median(r["done"] - r["t0"] for r in runs)
            stats[label] = (streamed, total, median(r["cpu"] for r in runs))
            report.figure(f"{label}: start -> request at the server", median(r["request"] - r["t0"] for r in runs) * 1000, "ms")
            report.figure(f"{label}: request -> last answer byte", streamed * 1000, "ms", f"{n / streamed:,.0f} tok/s")
            report.figure(f"{label}: start -> last answer byte", total * 1000, "ms", f"{n / total:,.0f} tok/s")
            report.figure(f"{label}: last byte -> exit", median(r["exit"] - r["done"] for r in runs) * 1000, "ms")
            report.figure(f"{label}: process CPU", stats[label][2], "s")
        (a_s, a_t, a_c), (f_s, f_t, f_c) = stats["glmchat ask"], stats["plain httpx"]
        report.figure("ask / floor: request -> last byte", a_s / f_s, "x")
        report.figure("ask / floor: start -> last byte", a_t / f_t, "x")
        report.figure("ask / floor: CPU", a_c / f_c, "x")
        report.bar("ask: tokens/s, request -> last byte", n / a_s, 10_000, "tok/s", higher_is_better=True,
                   reference=f"floor {n / f_s:,.0f} tok/s")
    report.save(args.json)


if __name__ == "__main__":
    main()
