"""The store (issue 4, scenario 6): saves cost O(new text), not O(session).

    python bench/bench_store.py [--json out.json]

For a stored session of 10 turns and one of 1,000 turns (about 5 MB with
reasoning, built through the store API), in one process with nothing else:

- appending a turn: `begin_turn` + `finish_turn` of a 2,000-token turn
  (what every sent turn costs), median of 60;
- `save_progress` during a stream: what `run_turn` does every 0.25 s, i.e.
  250 new tokens per save at 1,000 tokens/s, median over 80 saves;

the two sessions are measured turn about, so noise from the machine falls on both;
- `save_progress` early and late in one 40,000-token turn;
- what opening costs the app: `Store.open`, `list_sessions`, `load_session(last=13)`.

Bars (O(new text)): each cost at 1,000 turns <= 1.5x the same at 10 turns;
late saves in a long turn <= 1.5x the early ones.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass, field
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
    temp_dir,
)

ROUNDS = 60
"""Turns appended to each session (alternately), for the median."""
STREAMS = 4
"""5,000-token streams saved into each session (alternately), 20 saves each."""

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


@dataclass
class Subject:
    """One stored session and its open store."""

    n_turns: int
    store: object
    session: object
    figures: dict[str, float] = field(default_factory=dict)
    begin: list[float] = field(default_factory=list)
    finish: list[float] = field(default_factory=list)
    saves: list[float] = field(default_factory=list)
    long_saves: list[float] = field(default_factory=list)


def open_subject(n_turns: int) -> Subject:
    from glmchat.store import Store

    folder = temp_dir(f"glmchat-bench-store-{n_turns}-")
    start = time.perf_counter()
    session = store_session(folder, stored_turns(n_turns))
    build = time.perf_counter() - start
    db = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    start = time.perf_counter()
    store = Store.open(folder)
    opened = time.perf_counter() - start
    start = time.perf_counter()
    store.list_sessions()
    listed = time.perf_counter() - start
    start = time.perf_counter()
    store.load_session(session.id, last=13)
    loaded_last = time.perf_counter() - start
    start = time.perf_counter()
    session = store.load_session(session.id)
    loaded_all = time.perf_counter() - start
    figures = {"build": build, "db_mb": db / 1e6, "open": opened, "list": listed, "load_last": loaded_last,
               "load_all": loaded_all}
    return Subject(n_turns, store, session, figures)


def append_one(subject: Subject, reasoning: str, content: str) -> None:
    """Append a finished 2,000-token turn as a send does: begin_turn, then finish_turn."""
    store, session = subject.store, subject.session
    turn = session.new_turn("bench: append a turn", True)
    start = time.perf_counter()
    store.begin_turn(session, turn)
    subject.begin.append(time.perf_counter() - start)
    turn.step.reasoning = reasoning
    turn.step.content = content
    turn.finish("complete")
    start = time.perf_counter()
    store.finish_turn(turn)
    subject.finish.append(time.perf_counter() - start)


def measure() -> tuple[dict[str, float], dict[str, float]]:
    """Both sessions measured turn about, so machine noise falls on both alike."""
    small, big = open_subject(10), open_subject(1000)
    reasoning = "".join(corpus_tokens(1000, REASONING_SEED))
    content = "".join(corpus_tokens(1000, CONTENT_SEED))
    r_tokens = corpus_tokens(2500, REASONING_SEED)
    c_tokens = corpus_tokens(2500, CONTENT_SEED)
    try:
        for subject in (small, big):
            append_one(subject, reasoning, content)  # warm up
            subject.begin.clear()
            subject.finish.clear()
        for _ in range(ROUNDS):
            for subject in (small, big):
                append_one(subject, reasoning, content)
        for _ in range(STREAMS):
            for subject in (small, big):
                subject.saves += stream_saves(subject.store, subject.session, r_tokens, c_tokens)
        big.long_saves = stream_saves(big.store, big.session, [], corpus_tokens(40_000, CONTENT_SEED))
    finally:
        small.store.close()
        big.store.close()
    out = []
    for subject in (small, big):
        f = dict(subject.figures)
        f["begin"] = median(subject.begin)
        f["finish"] = median(subject.finish)
        f["append"] = median(b + e for b, e in zip(subject.begin, subject.finish))
        f["save"] = median(subject.saves)
        f["save_p95"] = statistics.quantiles(subject.saves, n=20)[-1]
        if subject.long_saves:
            f["long_first"] = median(subject.long_saves[:10])
            f["long_last"] = median(subject.long_saves[-10:])
        out.append(f)
    return out[0], out[1]


SEARCH_SIZES_MB = (0.25, 1, 2, 20)
"""Sizes of the one big turn the search timings use."""


def search_timings() -> dict[float, dict[str, float]]:
    """Search time with one turn of N MB of reasoning: a common word (everywhere), a word near the end, none.

    The common word is the worst case of FTS5's snippet() (it re-read the text per
    occurrence: quadratic); the store's own snippets read a text once, up to its first match.
    """
    from glmchat.protocol.events import ContentDelta, ReasoningDelta
    from glmchat.session import Session
    from glmchat.store import Store

    out: dict[float, dict[str, float]] = {}
    for size in SEARCH_SIZES_MB:
        with Store.open(temp_dir("glmchat-search-bench-")) as store:
            words = "stream render token latency buffer frame widget terminal "
            reasoning = words * int(size * 1e6 / len(words)) + " unusualword at the end"
            session = Session(title="search bench")
            turn = session.new_turn("a question", True)
            store.begin_turn(session, turn)
            turn.apply(ReasoningDelta(reasoning))
            turn.apply(ContentDelta("an answer"))
            turn.finish()
            store.finish_turn(turn)
            row: dict[str, float] = {}
            for label, query in (("common", "latency"), ("late", "unusualword"), ("none", "absentword")):
                times = []
                for _ in range(3):
                    started = time.perf_counter()
                    store.search(query)
                    times.append(time.perf_counter() - started)
                row[label] = min(times)
            out[size] = row
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json")
    args = parser.parse_args()
    report = Report("Store (issue 4 §6)")
    small, big = measure()
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
        if "long_first" in r:
            report.figure("save_progress in a 40k-token turn: first 10 saves", ms(r["long_first"]), "ms")
            report.figure("save_progress in a 40k-token turn: last 10 saves", ms(r["long_last"]), "ms")
    report.section("search with one big turn (a word on every line / one word at the very end / no match)")
    for size, row in search_timings().items():
        report.figure(
            f"search, one turn of {size:g} MB", ms(row["common"]), "ms",
            f"late match {ms(row['late']):.1f} ms, no match {ms(row['none']):.1f} ms",
        )
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
