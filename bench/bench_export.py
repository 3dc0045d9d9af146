"""Peak memory of `glmchat sessions export` for a very long session (Markdown, to a file).

    python bench/bench_export.py [--turns 100000] [--repo PATH]

Builds one session of N short turns (user text, reasoning, answer, usage) in a
fresh GLMCHAT_HOME through the store API, then runs `python -m glmchat sessions
export 1 -o out.md` in a child process and reports its peak RSS (ru_maxrss) and
wall time (the database is built in another child, so the peak is the export's
alone: Linux hands a parent's peak RSS on to a child it starts). `--repo` runs the export with another checkout's glmchat (to compare
with an older version on the same database).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import Report, temp_dir  # noqa: E402


def build(home: Path, turns: int) -> None:
    from glmchat.session import Session, Step, Turn, TurnStatus
    from glmchat.usage import Usage
    from glmchat.store import Store

    session = Session(title="a very long session")
    for n in range(turns):
        session.turns.append(Turn(user_text=f"Question {n}: how does part {n} work?", thinking=True, host="zai", model="glm-4.7", status=TurnStatus.COMPLETE, created_at=1_700_000_000 + n, steps=[Step(reasoning=f"The user asks about part {n}. " * 6, content=f"Part {n} works like **this**, see `x{n}`.\n" * 3, usage=Usage(100 + n, 80, 50, 40))]))
    with Store.open(home) as store:
        store.save_session(session)


def export_child(home: Path, repo: Path, out: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one export in a fresh child process."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(GLMCHAT_HOME=str(home), PYTHONPATH=str(repo))
    code = (
        "import resource, sys, time\n"
        "from glmchat.cli import main\n"
        "t = time.perf_counter()\n"
        f"rc = main(['sessions', 'export', '1', '-o', {str(out)!r}])\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, time.perf_counter() - t, rc)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, env=env, capture_output=True, text=True, timeout=3600)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    rss, seconds, rc = proc.stdout.split()[-3:]
    if rc != "0":
        raise SystemExit(f"export failed: {proc.stderr}")
    return float(rss), float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=100_000)
    parser.add_argument("--repo", default=str(ROOT), help="checkout whose glmchat runs the export")
    parser.add_argument("--json")
    args = parser.parse_args()
    home = temp_dir("glmchat-export-bench-")
    started = time.perf_counter()
    # In a child of its own: Linux carries a parent's peak RSS into a child it starts,
    # so the process that starts the export must stay small.
    subprocess.run(
        [sys.executable, "-c", f"from bench.bench_export import build; from pathlib import Path; "
                               f"build(Path({str(home)!r}), {args.turns})"],
        cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)), check=True, timeout=3600,
    )
    built = time.perf_counter() - started
    out = home / "out.md"
    rss, seconds = export_child(home, Path(args.repo), out)
    report = Report("Markdown export of a long session")
    report.figure("turns", args.turns, "", f"database {(home / 'glmchat.db').stat().st_size / 1e6:.0f} MB, built in {built:.0f} s")
    report.figure("export peak RSS", rss, "MB", f"with {args.repo}")
    report.figure("export time", seconds, "s", f"file {out.stat().st_size / 1e6:.0f} MB")
    report.save(args.json)


if __name__ == "__main__":
    main()
