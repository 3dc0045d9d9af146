"""Long history (issue 4, scenario 5).

    python bench/bench_history.py [--only live,open,scroll] [--turns 20] [--runs 5] [--json out.json]

- live: 20 turns in one app session (each 2,000 reasoning + 2,000 answer
  tokens, unthrottled, full history replayed, 2.5 s idle before each send). Bar: turn 20 costs <= 1.1x
  turn 1, in app CPU and in wall time from send to the last token on screen.
  Single turns are noisy on a shared machine, so the bar compares the median of
  turns 16-20 with the median of turns 1-5 (and turns 2-6, without the first
  turn's one-off costs).
- open: a stored 1,000-turn session (about 5 MB with reasoning, built through
  the store API) opened by `glmchat` (fresh process, headless) to its first
  frame, vs an empty session; median of --runs. Bars: <= 2x the time;
  peak RSS <= 2x the empty session's + 100 MB (the whole session loaded).
- scroll: from the bottom of that session, scroll to the top again and again
  until its first turn is on screen (the log pages older turns in as the top is
  reached): time per page, total, and a key press -> frame at the end.
"""

from __future__ import annotations

import argparse
import sys
import time
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
    data_dir_of,
    emit,
    make_home,
    median,
    reply,
    run_child,
    store_session,
    stored_turns,
)

HERE = "bench/bench_history.py"
WINDOW = 5
"""Turns per median at each end of the live session (single turns are noisy on a shared machine)."""
THINK_TIME = 2.5
"""Seconds the app is idle before each send of the live session (reading, typing)."""
LIVE_TOKENS = 2000


# -- children --------------------------------------------------------------------------------------


def child_live(args: argparse.Namespace) -> None:
    import asyncio

    from bench import _appbench as ab

    reasoning = corpus_tokens(LIVE_TOKENS, REASONING_SEED)
    content = corpus_tokens(LIVE_TOKENS, CONTENT_SEED)
    marks = chunk_char_marks(reasoning, content, 3)
    server = ServerControl(args.url)
    app = ab.make_app()
    turns: list[dict] = []

    async def drive(app, pilot):
        for i in range(args.turns):
            server.reset()
            server.enqueue(reply(reasoning, content, chunk=3))
            # A person reads the answer and types the next prompt: the app is idle meanwhile.
            await asyncio.sleep(THINK_TIME)
            run = await ab.send_turn(app, f"bench: turn {i + 1}", True, label="live")
            result = ab.analyse_turn(ab.PROBE, run, server.last(), marks, len(reasoning) + len(content))
            result["mounted"] = len(app.chat.log_view.mounted_views)
            result["widgets"] = len(list(app.screen.walk_children()))
            turns.append(result)

    ab.run_headless(drive, app)
    emit({"turns": turns})


def child_scroll(args: argparse.Namespace) -> None:
    import asyncio

    from bench import _appbench as ab
    from glmchat.config import AppOptions

    probe = ab.PROBE
    app = ab.make_app(options=AppOptions())
    pages: list[float] = []
    out: dict = {}

    async def frame_after(t: float, timeout: float = 10.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            k = probe.frame_after(t)
            if k is not None:
                return probe.frames[k]
            if time.monotonic() > deadline:
                raise TimeoutError("no frame")
            await asyncio.sleep(0.005)

    async def drive(app, pilot):
        chat = app.chat
        log = chat.log_view
        await ab.wait_until(lambda: not chat._partial, 60, 0.01)
        await asyncio.sleep(0.3)
        out["turns"] = len(chat.session.turns)
        out["mounted_start"] = len(log.mounted_views)
        start = time.monotonic()
        while log.has_earlier and time.monotonic() - start < args.cap:
            t0 = time.monotonic()
            log.scroll_home(animate=False, immediate=True)
            if not await ab.wait_until(lambda: log._loading, 0.5, 0.002):
                # Already at the top (nothing moved): what a click on the "earlier turns" line does.
                log.load_earlier()
            await ab.wait_until(lambda: not log._loading, 60, 0.002)
            shown = await frame_after(time.monotonic())
            pages.append(shown - t0)
        out["total"] = time.monotonic() - start
        out["reached_top"] = not log.has_earlier
        out["mounted_end"] = len(log.mounted_views)
        out["widgets_end"] = len(list(app.screen.walk_children()))
        await asyncio.sleep(0.3)
        keys = []
        for key in ("shift+pagedown", "shift+pagedown", "shift+pageup"):
            t0 = time.monotonic()
            await pilot.press(key)
            keys.append(await frame_after(t0) - t0)
        out["key_to_frame"] = keys

    ab.run_headless(drive, app)
    out["pages"] = pages
    emit(out)


# -- parent ----------------------------------------------------------------------------------------


def live(report: Report, server: Server, n: int) -> None:
    report.section(f"live session: {n} turns of {LIVE_TOKENS:,} + {LIVE_TOKENS:,} tokens, unthrottled")
    home = make_home(server.url)
    argv = [HERE, "--child", "live", "--url", server.url, "--turns", str(n)]
    child = run_child(argv, env=child_env(home))
    turns = child.result["turns"]
    for i in sorted({0, 1, 2, 4, 9, 14, n - 3, n - 2, n - 1}):
        if 0 <= i < n:
            t = turns[i]
            report.figure(f"turn {i + 1}: wall send -> last token on screen / app CPU", f"{t['end_to_end'] * 1000:.0f} / {t['cpu'] * 1000:.0f}",
                          "ms", f"send->request {t['send_to_request'] * 1000:.0f} ms, {t['widgets']} widgets, "
                          f"GC {t['gc_seconds'] * 1000:.0f} ms ({t['gc_full']} full)")
    report.figure("child peak RSS after all turns", child.maxrss_mb, "MB")

    def ratio(key: str, first: slice, last: slice) -> float:
        return median(t[key] for t in turns[last]) / median(t[key] for t in turns[first])

    k = WINDOW
    head, warm, tail = slice(0, k), slice(1, k + 1), slice(n - k, n)
    for t in turns:
        t["cpu_no_gc"] = t["cpu"] - t["gc_seconds"]
    report.figure(f"longest GC pause, turns 1-{k}", max(t["gc_max"] for t in turns[head]) * 1000, "ms")
    report.figure(f"longest GC pause, turns {n - k + 1}-{n}", max(t["gc_max"] for t in turns[tail]) * 1000, "ms")
    report.figure(f"turn {n} / turn 1, app CPU without GC (medians of {k})", ratio("cpu_no_gc", head, tail), "x")
    report.bar(f"turn {n} / turn 1, app CPU (medians of {k})", ratio("cpu", head, tail), 1.1, "x")
    report.bar(f"turn {n} / turn 1, wall time (medians of {k})", ratio("end_to_end", head, tail), 1.1, "x")
    report.bar(f"turn {n} / turn 2, app CPU (medians of {k})", ratio("cpu", warm, tail), 1.1, "x",
               reference="without the first turn's one-off costs")
    report.bar(f"turn {n} / turn 2, wall time (medians of {k})", ratio("end_to_end", warm, tail), 1.1, "x")


def big_home(url: str) -> Path:
    home = make_home(url, prefix="glmchat-bench-history-")
    start = time.perf_counter()
    store_session(data_dir_of(home), stored_turns(1000), title="A thousand turns")
    print(f"   (built the 1,000-turn session in {time.perf_counter() - start:.1f} s)")
    return home


def open_once(home: Path) -> tuple[float, float, float]:
    """`glmchat` in a fresh process: seconds to its first frame and to the whole session loaded, peak RSS MB."""
    child = run_child(["bench/_start_child.py", "glmchat", "--settle"], env=child_env(home))
    r = child.result
    return r["frame"] - child.started, r["settled"] - child.started, child.maxrss_mb


def open_big(report: Report, server: Server, runs: int, home: Path) -> None:
    report.section(f"open a stored 1,000-turn session vs an empty one (fresh glmchat process each, median of {runs})")
    empty = make_home(server.url, prefix="glmchat-bench-history-empty-")
    open_once(empty)
    open_once(home)
    e_first, e_rss, b_first, b_loaded, b_rss = [], [], [], [], []
    for _ in range(runs):
        first, _, rss = open_once(empty)
        e_first.append(first)
        e_rss.append(rss)
        first, loaded, rss = open_once(home)
        b_first.append(first)
        b_loaded.append(loaded)
        b_rss.append(rss)
    e, b = median(e_first), median(b_first)
    report.figure("empty session: start -> first frame", e * 1000, "ms")
    report.figure("1,000 turns: start -> first frame", b * 1000, "ms")
    report.figure("1,000 turns: start -> whole session loaded", median(b_loaded) * 1000, "ms")
    rss_empty, rss_big = max(e_rss), max(b_rss)
    report.figure("peak RSS, empty session", rss_empty, "MB")
    report.figure("peak RSS, 1,000 turns (whole session loaded)", rss_big, "MB")
    report.bar("first frame, 1,000 turns / empty", b / e, 2.0, "x", reference=f"empty {e * 1000:.0f} ms")
    report.bar("peak RSS, 1,000 turns", rss_big, 2 * rss_empty + 100, "MB",
               reference=f"limit = 2 x {rss_empty:.0f} + 100 MB")


def scroll(report: Report, home: Path, cap: float) -> None:
    report.section("scroll to the top of the 1,000-turn session (paging older turns in)")
    child = run_child([HERE, "--child", "scroll", "--cap", str(cap)], env=child_env(home))
    r = child.result
    pages = r["pages"]
    report.figure("pages scrolled in", len(pages), "", f"reached the first turn: {'yes' if r['reached_top'] else 'NO'}")
    report.figure("time to the top (all pages)", r["total"], "s", f"cap {cap:g} s")
    if pages:
        report.figure("first page: scroll to top -> page on screen", pages[0] * 1000, "ms")
        report.figure("median page", median(pages) * 1000, "ms")
        report.figure("last page", pages[-1] * 1000, "ms")
    report.figure("turn views mounted at the end", r["mounted_end"], "", f"{r['widgets_end']:,} widgets")
    report.figure("key press -> frame at the top (scroll a page)", max(r["key_to_frame"]) * 1000, "ms")
    report.figure("child peak RSS", child.maxrss_mb, "MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default="live,open,scroll")
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--cap", type=float, default=180.0, help="give up scrolling up after this many seconds")
    parser.add_argument("--json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "live":
        child_live(args)
        return
    if args.child == "scroll":
        child_scroll(args)
        return

    only = set(args.only.split(","))
    report = Report("Long history (issue 4 §5)")
    with Server() as server:
        if "live" in only:
            live(report, server, args.turns)
        if only & {"open", "scroll"}:
            home = big_home(server.url)
            if "open" in only:
                open_big(report, server, args.runs, home)
            if "scroll" in only:
                scroll(report, home, args.cap)
    report.save(args.json)


if __name__ == "__main__":
    main()
