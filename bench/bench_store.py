"""Store benchmark: prints how listing, loading and streaming saves scale. Not a test.

    python bench/bench_store.py [--sessions 2000] [--turns 1000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from glmchat.protocol.events import ContentDelta, ReasoningDelta  # noqa: E402
from glmchat.session import Session  # noqa: E402
from glmchat.store import Store  # noqa: E402

REASONING = "Let me think about this step by step, weighing each option. " * 50  # ~3 KB
ANSWER = "Here is the answer, with `code` and a list:\n\n- one\n- two\n" * 30  # ~1.7 KB


def timed(fn, repeat: int = 5) -> float:
    """Median seconds of `repeat` calls."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def stream_saves(store: Store, session: Session, saves: int = 50) -> float:
    """Median seconds per save_progress while one turn streams 20 deltas between saves."""
    turn = session.new_turn("next question")
    store.begin_turn(session, turn)
    times = []
    for _ in range(saves):
        for _ in range(20):
            turn.apply(ReasoningDelta("tok "))
        start = time.perf_counter()
        store.save_progress(turn)
        times.append(time.perf_counter() - start)
    turn.finish()
    store.finish_turn(turn)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=2000)
    parser.add_argument("--turns", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(Path(folder))
        start = time.perf_counter()
        for i in range(args.sessions):
            session = Session(title=f"session {i}")
            turn = session.new_turn(f"question {i}")
            turn.apply(ContentDelta("short answer"))
            turn.finish()
            store.save_session(session)
        print(f"created {args.sessions} sessions in {time.perf_counter() - start:.2f} s")

        empty = Session(title="empty")
        store.save_session(empty)
        big = Session(title="big")
        store.save_session(big)
        first_save = stream_saves(store, big)
        start = time.perf_counter()
        for i in range(args.turns):
            turn = big.new_turn(f"question {i}")
            turn.apply(ReasoningDelta(REASONING))
            turn.apply(ContentDelta(ANSWER))
            turn.finish()
            store.begin_turn(big, turn)
            store.finish_turn(turn)
        print(f"wrote {args.turns} turns in {time.perf_counter() - start:.2f} s "
              f"({Path(store.path).stat().st_size / 1e6:.1f} MB file)")
        last_save = stream_saves(store, big)
        print(f"save_progress: {first_save * 1e3:.3f} ms at turn 1, {last_save * 1e3:.3f} ms at turn "
              f"{args.turns + 2} (ratio {last_save / first_save:.2f})")

        print(f"list_sessions(200) of {args.sessions + 2}: {timed(lambda: store.list_sessions()) * 1e3:.2f} ms")
        t_empty = timed(lambda: store.load_session(empty.id))
        t_big = timed(lambda: store.load_session(big.id))
        t_page = timed(lambda: store.load_turns(big.id, limit=50))
        print(f"load_session: empty {t_empty * 1e3:.2f} ms, {args.turns + 2} turns {t_big * 1e3:.1f} ms; "
              f"last 50 turns {t_page * 1e3:.2f} ms")
        print(f"search('step'): {timed(lambda: store.search('step')) * 1e3:.1f} ms")
        store.close()
        print(f"open with quick_check: {timed(lambda: Store.open(Path(folder)).close()) * 1e3:.1f} ms, "
              f"without: {timed(lambda: Store.open(Path(folder), verify=False).close()) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
