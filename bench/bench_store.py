"""The store (issue 4, scenario 6): saves cost O(new text), not O(session).

    python bench/bench_store.py [--json out.json]

For a stored session of 10 turns and one of 1,000 turns (about 5 MB with
reasoning, built through the store API), in one process with nothing else:

- appending a turn: `begin_turn` + `finish_turn` of a 2,000-token turn
  (what every sent turn costs), median of 20;
- `save_progress` during a stream: what `run_turn` does every 0.25 s, i.e.
  250 new tokens per save at 1,000 tokens/s, median over 40 saves;
- `save_progress` early and late in one 40,000-token turn;
- what opening costs the app: `Store.open`, `list_sessions`, `load_session(last=13)`.

Bars (O(new text)): each cost at 1,000 turns <= 1.5x the same at 10 turns;
late saves in a long turn <= 1.5x the early ones.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (  # noqa: E402
    CONTENT_SEED,
    REASONING_SEED,
    Report,
    corpus_tokens,
    median,
    store_session,
    stored_turns,
)

PER_SAVE = 250
"""Tokens arriving between two progress saves at 1,000 tokens/s (run_turn saves every 0.25 s)."""


def ms(seconds: float) -> float:
    return seconds * 1000


def stream_saves(store, session, tokens_r: list[str], tokens_c: list[str]) -> list[float]:
    """Stream one turn into the store as run_turn does; return the seconds of each save_progress."""
    from glmchat.protocol.events import ContentDelta, Finish, ReasoningDelta

    turn = session.new_turn("bench: stream into the store", True)
    store.begin_turn(session, turn)
    times: list[float] = []
    events = [ReasoningDelta(t) for t in tokens_r] + [ContentDelta(t) for t in tokens_c]
    for i, event in enumerate(events, 1):
        turn.apply(event)
        if i % PER_SAVE == 0:
            start = time.perf_counter()
            store.save_progress(turn)
            times.append(time.perf_counter() - start)
    turn.apply(Finish("stop"))
    turn.finish()
    store.finish_turn(turn)
    return times


def measure(n_turns: int) -> dict[str, float]:
    from glmchat.store import Store

    folder = Path(tempfile.mkdtemp(prefix=f"glmchat-bench-store-{n_turns}-"))
    start = time.perf_counter()
    session = store_session(folder, stored_turns(n_turns))
    build = time.perf_counter() - start
    db = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())

    start = time.perf_counter()
    store = Store.open(folder)
    opened = time.perf_counter() - start
    try:
        start = time.perf_counter()
        store.list_sessions()
        listed = time.perf_counter() - start
        start = time.perf_counter()
        store.load_session(session.id, last=13)
        loaded_last = time.perf_counter() - start
        start = time.perf_counter()
        session = store.load_session(session.id)
        loaded_all = time.perf_counter() - start

        r_tokens = corpus_tokens(1000, REASONING_SEED)
        c_tokens = corpus_tokens(1000, CONTENT_SEED)
        begin, finish = [], []
        for _ in range(20):
            turn = session.new_turn("bench: append a turn", True)
            start = time.perf_counter()
            store.begin_turn(session, turn)
            begin.append(time.perf_counter() - start)
            turn.reasoning = "".join(r_tokens)
            turn.content = "".join(c_tokens)
            turn.finish("complete")
            start = time.perf_counter()
            store.finish_turn(turn)
            finish.append(time.perf_counter() - start)

        saves = stream_saves(store, session, corpus_tokens(5000, REASONING_SEED), corpus_tokens(5000, CONTENT_SEED))
        long_saves = stream_saves(store, session, [], corpus_tokens(40_000, CONTENT_SEED))
    finally:
        store.close()
    return {
        "build": build,
        "db_mb": db / 1e6,
        "open": opened,
        "list": listed,
        "load_last": loaded_last,
        "load_all": loaded_all,
        "begin": median(begin),
        "finish": median(finish),
        "append": median(b + f for b, f in zip(begin, finish)),
        "save": median(saves),
        "save_p95": statistics.quantiles(saves, n=20)[-1],
        "long_first": median(long_saves[:10]),
        "long_last": median(long_saves[-10:]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json")
    args = parser.parse_args()
    report = Report("Store (issue 4 §6)")
    small = measure(10)
    big = measure(1000)
    for label, r, n in (("10 turns", small, 10), ("1,000 turns", big, 1000)):
        report.section(f"session of {label}")
        report.figure("database size", r["db_mb"], "MB", f"built through the store API in {r['build']:.1f} s")
        report.figure("Store.open", ms(r["open"]), "ms")
        report.figure("list_sessions", ms(r["list"]), "ms")
        report.figure("load_session(last=13) (what the app loads first)", ms(r["load_last"]), "ms")
        report.figure("load_session (all turns)", ms(r["load_all"]), "ms")
        report.figure("append a turn: begin_turn", ms(r["begin"]), "ms")
        report.figure("append a turn: finish_turn (2,000 tokens)", ms(r["finish"]), "ms")
        report.figure("save_progress, 250 new tokens, median", ms(r["save"]), "ms")
        report.figure("save_progress p95", ms(r["save_p95"]), "ms")
        report.figure("save_progress in a 40k-token turn: first 10 saves", ms(r["long_first"]), "ms")
        report.figure("save_progress in a 40k-token turn: last 10 saves", ms(r["long_last"]), "ms")
    report.section("bars: O(new text), not O(session)")
    report.bar("append a turn, 1,000 turns / 10 turns", big["append"] / small["append"], 1.5, "x",
               reference=f"{ms(small['append']):.2f} vs {ms(big['append']):.2f} ms")
    report.bar("save_progress, 1,000 turns / 10 turns", big["save"] / small["save"], 1.5, "x",
               reference=f"{ms(small['save']):.2f} vs {ms(big['save']):.2f} ms")
    report.bar("save_progress late / early in a 40k-token turn", big["long_last"] / big["long_first"], 1.5, "x",
               reference=f"{ms(big['long_first']):.2f} vs {ms(big['long_last']):.2f} ms")
    report.save(args.json)


if __name__ == "__main__":
    main()
