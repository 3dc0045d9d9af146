"""Streaming through the real app (issue 4, scenarios 2, 3 and 4).

    python bench/bench_stream.py [--only host,unthrottled,long] [--runs 3] [--json out.json]

2. host speed: 4,000 reasoning + 4,000 answer tokens of mixed Markdown at
   1,000 tokens/s in 3-token chunks. Bars: the last token is on screen
   <= 100 ms after the server sent it; the app's CPU time <= 25% of the
   stream's duration.
3. unthrottled: the same text as fast as the server sends it. Bar:
   >= 10,000 tokens/s from send to the last token on screen; the ratio to a
   plain httpx client reading the same stream (the floor) is reported.
4. long answer: a 40,000-token answer, unthrottled. Bars: >= 5,000 tokens/s;
   time per token over the last tenth <= 1.5x the first tenth; peak RSS <= 150 MB.

Set GLMCHAT_BENCH_PROFILE=DIR to get a pyinstrument report of each measured
turn in DIR (the figures are then slowed by the profiler).

The server is its own process; each app run is a fresh child process running
GlmChatApp headless (120x40) with its config and store in a private
GLMCHAT_HOME, sending through ChatScreen.send (what Enter does). See
bench/_appbench.py for how "on screen" is observed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    CONTENT_SEED,
    REASONING_SEED,
    Report,
    Server,
    ServerControl,
    child_env,
    chunk_char_marks,
    corpus_tokens,
    emit,
    make_home,
    median,
    reply,
    run_child,
)

HERE = "bench/bench_stream.py"
IDLE_BEFORE_SEND = 2.5
"""Seconds between the app's first frame and the send (typing the prompt)."""


# -- child: one turn through the app ---------------------------------------------------------------


def child_app(args: argparse.Namespace) -> None:
    import asyncio

    from bench import _appbench as ab

    reasoning = corpus_tokens(args.reasoning, REASONING_SEED) if args.reasoning else []
    content = corpus_tokens(args.content, CONTENT_SEED) if args.content else []
    marks = chunk_char_marks(reasoning, content, args.chunk)
    server = ServerControl(args.url)
    app = ab.make_app()

    async def drive(app, pilot):
        # A person takes a moment to type the prompt: the app's after-start work (warming
        # imports, settling memory) is done by the time they press Enter.
        await asyncio.sleep(IDLE_BEFORE_SEND)
        server.reset()
        server.enqueue(reply(reasoning, content, pace=args.pace or None, chunk=args.chunk))
        run = await ab.send_turn(app, "bench: stream this", args.thinking, label=args.label)
        return run

    run = ab.run_headless(drive, app)
    record = server.last()
    result = ab.analyse_turn(ab.PROBE, run, record, marks, len(reasoning) + len(content), sum(map(len, reasoning)))
    if args.tenths and content:
        n = len(content)
        tenth = n // 10
        # Text arrives far faster than frames here: each frame's text is spread over the time
        # since the frame before, starting when the server sent the first chunk.
        start = (record["chunk_times"][0], 0)
        shown = ab.token_screen_times(ab.PROBE, run.turn_id, content, [tenth, 2 * tenth, n - tenth, n], start)
        first = shown[0] - start[0] if shown[0] else None
        second = shown[1] - shown[0] if shown[0] and shown[1] else None
        last = shown[3] - shown[2] if shown[2] and shown[3] else None
        result["first_tenth_s"] = first
        result["second_tenth_s"] = second
        result["last_tenth_s"] = last
        result["tenth_tokens"] = tenth
    emit(result)


# -- parent ----------------------------------------------------------------------------------------


def run_app(server: Server, reasoning: int, content: int, pace: float, *, thinking: bool = True, tenths: bool = False,
            label: str = "stream"):
    home = make_home(server.url)
    argv = [HERE, "--child", "app", "--url", server.url, "--reasoning", str(reasoning), "--content", str(content),
            "--pace", str(pace), "--chunk", "3", "--label", label]
    if thinking:
        argv.append("--thinking")
    if tenths:
        argv.append("--tenths")
    return run_child(argv, env=child_env(home))


def run_floor(server: Server, reasoning: int, content: int) -> dict:
    r_tokens = corpus_tokens(reasoning, REASONING_SEED) if reasoning else []
    c_tokens = corpus_tokens(content, CONTENT_SEED) if content else []
    server.reset()
    server.enqueue(reply(r_tokens, c_tokens, chunk=3))
    child = run_child(["bench/_floor.py", server.url])
    result = child.result
    expected = sum(map(len, r_tokens)) + sum(map(len, c_tokens))
    got = result["reasoning_chars"] + result["content_chars"]
    if got != expected:
        raise RuntimeError(f"the floor client got {got} characters, expected {expected}")
    result["seconds"] = result["t_last"] - result["t_request"]
    result["maxrss_mb"] = child.maxrss_mb
    return result


def host_speed(report: Report, server: Server, runs: int) -> None:
    report.section(f"2. host speed: 4,000 reasoning + 4,000 answer tokens at 1,000 tok/s, 3-token chunks (median of {runs})")
    children = [run_app(server, 4000, 4000, 1000, label="host-speed") for _ in range(runs)]
    results = [c.result for c in children]

    def med(key: str) -> float:
        return median(r[key] for r in results)

    report.figure("stream duration at the server (first to last chunk)", med("stream_seconds"), "s")
    report.figure("send -> request at the server", med("send_to_request") * 1000, "ms")
    report.figure("chunk latency, server send -> on screen, p50", med("latency_p50") * 1000, "ms")
    report.figure("chunk latency p95", med("latency_p95") * 1000, "ms")
    report.figure("chunk latency max", med("latency_max") * 1000, "ms")
    report.figure("frames drawn during the turn", med("frames"))
    report.figure("longest gap between frames during the turn", med("max_frame_gap") * 1000, "ms")
    report.figure("longest TurnView.flush", med("max_flush") * 1000, "ms")
    for phase in ("reasoning_phase", "answer_phase"):
        if phase in results[0]:
            frames = median(r[phase][0] for r in results)
            per_frame = median(r[phase][1] for r in results)
            report.figure(f"{phase.replace('_', ' ')}: frames / app CPU per frame", f"{frames:.0f} / {per_frame * 1000:.1f}", "ms")
    report.figure("GC pauses during the turn", med("gc_seconds") * 1000, "ms",
                  f"longest {max(r['gc_max'] for r in results) * 1000:.0f} ms, {max(r['gc_full'] for r in results)} full")
    report.figure("app CPU from send to the last token on screen", med("cpu"), "s")
    report.figure("child peak RSS", max(c.maxrss_mb for c in children), "MB")
    lat = [r["last_latency"] * 1000 for r in results]
    share = [100 * r["cpu"] / r["stream_seconds"] for r in results]
    report.bar("last token on screen after the server sent it", median(lat), 100, "ms",
               reference="runs: " + ", ".join(f"{x:.0f}" for x in lat))
    report.bar("app CPU / stream duration", median(share), 25, "%",
               reference="runs: " + ", ".join(f"{x:.1f}" for x in share))


def unthrottled(report: Report, server: Server, runs: int) -> None:
    report.section(f"3. unthrottled: the same 8,000 tokens as fast as the server sends (median of {runs})")
    apps, floors = [], []
    for _ in range(runs):
        floors.append(run_floor(server, 4000, 4000))
        apps.append(run_app(server, 4000, 4000, 0, label="unthrottled").result)
    app_s = median(r["end_to_end"] for r in apps)
    floor_s = median(f["seconds"] for f in floors)
    report.figure("app: send -> last token on screen", app_s, "s")
    report.figure("app: send -> request at the server", median(r["send_to_request"] for r in apps) * 1000, "ms")
    report.figure("app: server's first -> last chunk", median(r["stream_seconds"] for r in apps) * 1000, "ms")
    report.figure("app: last chunk sent -> last token on screen", median(r["last_latency"] for r in apps) * 1000, "ms")
    report.figure("app: CPU send -> last token on screen", median(r["cpu"] for r in apps), "s")
    report.figure("app: frames drawn", median(r["frames"] for r in apps))
    report.figure("floor (plain httpx, same stream): request -> last delta", floor_s, "s")
    report.figure("floor tokens/s", 8000 / floor_s, "tok/s")
    report.figure("app time / floor time", app_s / floor_s, "x")
    report.bar("tokens/s rendered end to end", 8000 / app_s, 10_000, "tok/s", higher_is_better=True,
               reference=f"floor {8000 / floor_s:,.0f} tok/s, app/floor time {app_s / floor_s:.1f}x")


def long_answer(report: Report, server: Server) -> None:
    report.section("4. long answer: 40,000 answer tokens, unthrottled, thinking off")
    child = run_app(server, 0, 40_000, 0, thinking=False, tenths=True, label="long-answer")
    r = child.result
    floor = run_floor(server, 0, 40_000)
    tenth = r["tenth_tokens"]
    first_pt = r["first_tenth_s"] / tenth if r["first_tenth_s"] else None
    last_pt = r["last_tenth_s"] / tenth if r["last_tenth_s"] else None
    report.figure("send -> last token on screen", r["end_to_end"], "s")
    report.figure("server's first -> last chunk", r["stream_seconds"], "s")
    report.figure("first tenth: first chunk sent -> token 4,000 on screen", r["first_tenth_s"], "s",
                  "times between frames are interpolated")
    report.figure("second tenth: token 4,000 -> token 8,000 on screen", r["second_tenth_s"], "s",
                  "the first tenth also pays the turn's one-off costs")
    report.figure("last tenth: token 36,000 -> token 40,000 on screen", r["last_tenth_s"], "s")
    report.figure("frames drawn", r["frames"])
    report.figure("longest gap between frames", r["max_frame_gap"] * 1000, "ms")
    report.figure("longest TurnView.flush", r["max_flush"] * 1000, "ms")
    report.figure("GC pauses during the turn", r["gc_seconds"] * 1000, "ms",
                  f"{r['gc_count']} collections, {r['gc_full']} full, longest {r['gc_max'] * 1000:.0f} ms")
    report.figure("app CPU send -> last token on screen", r["cpu"], "s")
    report.figure("floor (plain httpx): request -> last delta", floor["seconds"], "s")
    report.bar("tokens/s rendered end to end", 40_000 / r["end_to_end"], 5_000, "tok/s", higher_is_better=True,
               reference=f"floor {40_000 / floor['seconds']:,.0f} tok/s")
    ratio = last_pt / first_pt if first_pt and last_pt else None
    report.bar("time per token, last tenth / first tenth", ratio, 1.5, "x",
               reference=f"{(first_pt or 0) * 1e6:.0f} vs {(last_pt or 0) * 1e6:.0f} µs/token")
    report.bar("peak RSS (whole app process)", child.maxrss_mb, 150, "MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="host,unthrottled,long")
    parser.add_argument("--runs", type=int, default=3, help="runs of the host-speed and unthrottled scenarios (median)")
    parser.add_argument("--json", help="also write the figures here")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--reasoning", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--content", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--pace", type=float, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--chunk", type=int, default=3, help=argparse.SUPPRESS)
    parser.add_argument("--thinking", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--tenths", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--label", default="stream", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "app":
        child_app(args)
        return

    only = set(args.only.split(","))
    report = Report("Streaming through the app (issue 4 §2-4)")
    with Server() as server:
        if "host" in only:
            host_speed(report, server, args.runs)
        if "unthrottled" in only:
            unthrottled(report, server, args.runs)
        if "long" in only:
            long_answer(report, server)
    report.save(args.json)


if __name__ == "__main__":
    main()
