"""Run every benchmark of issue 4 once and print a summary of the bars.

    python bench/run_all.py [--quick] [--out DIR]

Runs, one after the other (never in parallel: they measure CPU and latency):

    python bench/bench_start.py      # 1. start-up, --version, ask start
    python bench/bench_stream.py     # 2-4. host speed, unthrottled, long answer
    python bench/bench_history.py    # 5. long history: live turns, open 1,000 turns, scroll up
    python bench/bench_store.py      # 6. store saves at 10 and 1,000 turns
    python bench/bench_ask.py        # 7. glmchat ask vs plain httpx
    python bench/bench_huge.py       # 8. a turn with 1 / 10 / 100 MB of reasoning, answer, message
    python bench/bench_tools.py      # tool turns: overhead per step, MCP's cost at ask start

Each script prints its figures and bars as it goes; the JSON of each lands in
--out (default: a temporary folder). --quick runs fewer repetitions.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

SCRIPTS = [
    ("bench_start.py", ["--runs", "7"], ["--runs", "3"]),
    ("bench_stream.py", [], ["--runs", "1"]),
    ("bench_history.py", [], ["--runs", "2", "--turns", "10", "--cap", "30"]),
    ("bench_store.py", [], []),
    ("bench_ask.py", [], ["--runs", "1"]),
    ("bench_huge.py", [], ["--sizes", "1,10"]),
    ("bench_tools.py", [], ["--runs", "2"]),
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="glmchat-bench-"))
    out.mkdir(parents=True, exist_ok=True)
    failed_scripts = []
    start = time.monotonic()
    for script, full, quick in SCRIPTS:
        extra = quick if args.quick else full
        target = out / script.replace(".py", ".json")
        code = subprocess.call([sys.executable, str(ROOT / "bench" / script), *extra, "--json", str(target)], cwd=ROOT)
        if code != 0:
            failed_scripts.append(script)

    print(f"\n== Summary ({time.monotonic() - start:.0f} s; JSON in {out})")
    passed = total = 0
    for script, _, _ in SCRIPTS:
        target = out / script.replace(".py", ".json")
        if not target.exists():
            continue
        data = json.loads(target.read_text())
        for bar in data["bars"]:
            total += 1
            passed += bar["ok"]
            sign = "≥" if bar["higher_is_better"] else "≤"
            value = "n/a" if bar["value"] is None else f"{bar['value']:,.3g}"
            print(f"   {'PASS' if bar['ok'] else 'FAIL'}  {bar['name']:<58} {value:>10} {bar['unit']:<5} "
                  f"{sign} {bar['limit']:g}")
    print(f"   {passed} of {total} bars met")
    if failed_scripts:
        print(f"   scripts that failed to run: {', '.join(failed_scripts)}")
    return 1 if failed_scripts else 0


if __name__ == "__main__":
    sys.exit(main())
