"""Forks are zero copy (issue 10 §1): forking a 1,000-turn session writes O(1) rows and takes < 50 ms.

    python bench/bench_fork.py [--json out.json] [--runs N]

A session of 1,000 turns (about 5 MB with reasoning, built through the store API)
is forked `--runs` times each at turn 1, 500 and 1,000, in one process with nothing
else; each figure is the median of `Store.fork_session` wall time. Rows written are
counted on a connection of their own: every row of every table before and after.

Then what a fork costs its readers: `load_session(last=13)` (what the app loads
first) and `path_branches` of a fork of 1,000 turns with a branch of its own at
turn 500, beside the same of the source.

Bars: fork at 1,000 turns <= 50 ms; rows written per fork <= 1.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import Report, median, store_session, stored_turns, temp_dir  # noqa: E402

TURNS = 1000


def ms(seconds: float) -> float:
    return seconds * 1000


def all_rows(path: Path) -> dict[str, set[tuple]]:
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {n: set(conn.execute(f'SELECT * FROM "{n}"').fetchall()) for n in names if n != "sqlite_sequence"}
    finally:
        conn.close()


def rows_written(before: dict[str, set[tuple]], after: dict[str, set[tuple]]) -> int:
    """Rows added, removed or changed, over every table (a changed row counts once)."""
    total = 0
    for name in before.keys() | after.keys():
        old, new = before.get(name, set()), after.get(name, set())
        total += max(len(new - old), len(old - new))
    return total


def measure(runs: int) -> dict[str, float]:
    from glmchat.protocol.events import ContentDelta
    from glmchat.store import Store

    data = temp_dir("glmchat-bench-fork-")
    start = time.perf_counter()
    source = store_session(data, stored_turns(TURNS))
    out: dict[str, float] = {"build": time.perf_counter() - start}
    store = Store.open(data)
    try:
        out["db_mb"] = store.path.stat().st_size / 1e6
        before = all_rows(store.path)
        forked = store.fork_session(source.id, TURNS)
        out["rows"] = rows_written(before, all_rows(store.path))
        for at in (1, TURNS // 2, TURNS):
            out[f"fork_{at}"] = median(_timed_fork(store, source.id, at) for _ in range(runs))

        # A fork with a branch of its own at turn 500: what reading it costs beside the source.
        session = store.load_session(forked)
        turn = session.new_turn("a branch of the fork", thinking=False, after=session.turns[TURNS // 2 - 2])
        store.begin_turn(session, turn)
        turn.apply(ContentDelta("ok"))
        turn.finish()
        store.finish_turn(turn)
        store.switch_branch(forked, session.turns[TURNS // 2 - 2].id)
        for name, sid in (("source", source.id), ("fork", forked)):
            out[f"load_{name}"] = median(_timed(lambda sid=sid: store.load_session(sid, last=13)) for _ in range(runs))
            out[f"branches_{name}"] = median(_timed(lambda sid=sid: store.path_branches(sid)) for _ in range(runs))
    finally:
        store.close()
    return out


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _timed_fork(store, source_id: str, at: int) -> float:
    return _timed(lambda: store.fork_session(source_id, at))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json")
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args()
    report = Report("Forks (issue 10 §1)")
    r = measure(args.runs)
    report.section(f"a session of {TURNS:,} turns")
    report.figure("database size", r["db_mb"], "MB", f"built through the store API in {r['build']:.1f} s")
    for at in (1, TURNS // 2, TURNS):
        report.figure(f"fork_session at turn {at:,}, median of {args.runs}", ms(r[f"fork_{at}"]), "ms")
    report.figure("rows written by one fork (all tables)", r["rows"], "rows")
    report.section("reading a fork with a branch of its own at turn 500, beside its source")
    for name in ("source", "fork"):
        report.figure(f"load_session(last=13), {name}", ms(r[f"load_{name}"]), "ms")
        report.figure(f"path_branches, {name}", ms(r[f"branches_{name}"]), "ms")
    report.section("bars")
    report.bar(f"fork a {TURNS:,}-turn session at its last turn", ms(r[f"fork_{TURNS}"]), 50, "ms")
    report.bar("rows written by a fork", r["rows"], 1, "rows")
    report.save(args.json)


if __name__ == "__main__":
    main()
