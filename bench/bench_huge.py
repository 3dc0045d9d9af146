"""Huge texts in the TUI: a turn with megabytes of reasoning, of answer, of user message.

    python bench/bench_huge.py [--sizes 1,10,100] [--only unfold,answer,user] [--code PATH] [--json out.json]

- unfold: a stored session whose one turn has N MB of reasoning (the corpus's
  mixed text). The app opens it (headless, 120x40), the reasoning pane gets
  focus, Enter unfolds it: the time from the key to the next frame, then the
  next page and a scroll key (each: key -> next frame), and the child's peak
  RSS (from the kernel) before the key and at the end.
- answer: the same with N MB of answer (Markdown) instead: start -> first frame
  that shows the session, and peak RSS.
- user: the same with an N MB user message.

Each case runs in a fresh child process with a time limit (--limit seconds)
and a cap on its address space (--memory-cap MB); a case over either is
reported as such. `--code PATH` runs the children (and
builds their database) with the glmchat of another checkout, to measure
before and after a change with the same script.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import os  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
MEMORY_CAP_ENV = "GLMCHAT_BENCH_MEMORY_CAP_MB"
CODE_ENV = "GLMCHAT_BENCH_CODE"
"""A checkout whose glmchat the children import instead of this one's (see --code)."""
if os.environ.get(CODE_ENV):
    sys.path.insert(0, os.environ[CODE_ENV])

from bench._common import Report, child_env, data_dir_of, emit, make_home, run_child  # noqa: E402

HERE = "bench/bench_huge.py"
MB = 1_000_000


def text_of(size: int, seed: int) -> str:
    """`size` characters of the corpus (one MB made once, repeated): lists, tables, code, CJK, emoji."""
    from tests.glm_server import corpus

    block = corpus(330_000, seed=seed)[:MB]
    out = block * (size // len(block) + 1)
    return out[:size]


# -- children --------------------------------------------------------------------------------------


def child_build(args: argparse.Namespace) -> None:
    """Store the session (with the glmchat under test: its schema is the one to open)."""
    from glmchat.session import Step, Session, Turn, TurnStatus
    from glmchat.usage import Usage
    from glmchat.store import Store

    size = int(args.mb * MB)
    big = text_of(size, seed=7)
    fields = {"reasoning": "Thinking briefly.", "content": "A short answer.", "user_text": "A question."}
    fields[args.what] = big
    created = 1_700_000_000.0
    usage = Usage(prompt_tokens=10, completion_tokens=size // 4, reasoning_tokens=size // 4)
    step = Step(reasoning=fields["reasoning"], content=fields["content"], usage=usage)
    turn = Turn(user_text=fields["user_text"], thinking=True, host="zai", model="glm-4.7", status=TurnStatus.COMPLETE, finish_reason="stop", created_at=created, first_reasoning_at=created + 0.5, first_content_at=created + 30, finished_at=created + 40, steps=[step])  # fmt: skip
    session = Session(title=f"Huge {args.what}", created_at=created, updated_at=created + 40, turns=[turn])
    store = Store.open(Path(args.data))
    try:
        store.save_session(session)
    finally:
        store.close()
    emit({"chars": size})


def child_run(args: argparse.Namespace) -> None:
    import asyncio
    import resource

    cap = int(os.environ.get(MEMORY_CAP_ENV, "0")) * 1_000_000
    if cap:
        # Address space, not RSS: a little above the peak RSS a run may reach (a run that
        # lays out 100 MB would take the machine's memory from everything else on it).
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    from bench import _appbench as ab
    from glmchat.config import AppOptions

    probe = ab.PROBE
    t_start = time.monotonic()
    app = ab.make_app(options=AppOptions())
    out: dict = {}

    import glmchat

    out["glmchat"] = str(Path(glmchat.__file__).parent.parent)

    def rss_mb() -> float:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    async def frame_after(t: float, timeout: float = 600.0) -> float:
        deadline = time.monotonic() + timeout
        while True:
            k = probe.frame_after(t)
            if k is not None:
                return probe.frames[k]
            if time.monotonic() > deadline:
                raise TimeoutError("no frame")
            await asyncio.sleep(0.002)

    async def key(pilot, name: str) -> float:
        t0 = time.monotonic()
        await pilot.press(name)
        return await frame_after(t0) - t0

    async def drive(app, pilot):
        chat = app.chat
        out["first_frame"] = probe.frames[0] - t_start if probe.frames else None
        await asyncio.sleep(1.0)  # settled: warm-up imports, memory settled
        out["rss_open"] = rss_mb()
        if args.what != "reasoning":
            return
        view = chat.log_view.mounted_views[-1]
        pane = view.reasoning
        pane.focus()
        await pilot.pause()
        await asyncio.sleep(0.3)
        out["rss_before_unfold"] = rss_mb()
        out["unfold"] = await key(pilot, "enter")
        out["expanded"] = pane.expanded
        out["pane_height"] = pane.size.height
        await asyncio.sleep(0.3)
        out["scroll_key"] = await key(pilot, "shift+pageup")
        bar = getattr(view, "reasoning_pages", None)  # (an older glmchat has no pages)
        if bar is not None:
            bar.focus()
            await pilot.pause()
            out["next_page"] = await key(pilot, "n")
            out["last_page"] = await key(pilot, "end")
            pane.focus()
            await pilot.pause()
        out["fold"] = await key(pilot, "enter")
        out["rss_end"] = rss_mb()

    ab.run_headless(drive, app)
    emit(out)


# -- parent ----------------------------------------------------------------------------------------


def run_case(report: Report, what: str, mb: float, code: Path | None, limit: float, memory_cap: int) -> dict | None:
    home = make_home(None, prefix=f"glmchat-bench-huge-{what}-")
    data = data_dir_of(home)
    extra = {CODE_ENV: str(code)} if code else {}
    extra[MEMORY_CAP_ENV] = str(memory_cap)
    env = child_env(home, **extra)
    run_child([HERE, "--child", "build", "--what", what, "--mb", str(mb), "--data", str(data)], env=env, timeout=600)
    label = f"{mb:g} MB {what}"
    try:
        child = run_child([HERE, "--child", "run", "--what", what], env=env, timeout=limit)
    except TimeoutError:
        report.figure(f"{label}: gave up", limit, "s", "the case did not finish in time")
        return None
    except RuntimeError as exc:
        lines = [line for line in str(exc).splitlines() if line.strip()]
        memory = "MemoryError" in str(exc)
        report.figure(f"{label}: failed", memory_cap if memory else "error", "MB" if memory else "",
                      "out of memory under the cap" if memory else lines[-1][:80])
        return None
    r = child.result
    if code is not None and Path(r["glmchat"]) != code:
        raise RuntimeError(f"the child ran the glmchat in {r['glmchat']}, not {code}")
    if what == "reasoning":
        report.figure(f"{label}: Enter on the pane -> next frame (unfold)", r["unfold"] * 1000, "ms",
                      f"pane {r.get('pane_height')} lines high")
        if "next_page" in r:
            report.figure(f"{label}: n on the page bar (next page) -> next frame", r["next_page"] * 1000, "ms")
            report.figure(f"{label}: End on the page bar (last page) -> next frame", r["last_page"] * 1000, "ms")
        report.figure(f"{label}: scroll key after unfolding -> next frame", r["scroll_key"] * 1000, "ms")
        report.figure(f"{label}: Enter again (fold) -> next frame", r["fold"] * 1000, "ms")
        report.figure(f"{label}: peak RSS before unfolding / at the end", f"{r['rss_before_unfold']:.0f} / {r['rss_end']:.0f}", "MB")
    else:
        report.figure(f"{label}: start -> first frame", (r["first_frame"] or 0) * 1000, "ms")
        report.figure(f"{label}: peak RSS", child.maxrss_mb, "MB")
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,100", help="MB, comma-separated")
    parser.add_argument("--only", default="unfold,answer,user")
    parser.add_argument("--code", help="run the children with the glmchat of this checkout")
    parser.add_argument("--limit", type=float, default=300.0, help="seconds a case may take")
    parser.add_argument("--memory-cap", type=int, default=6000, help="MB of address space a case may take")
    parser.add_argument("--json")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--what", default="reasoning", help=argparse.SUPPRESS)
    parser.add_argument("--mb", type=float, default=1.0, help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child == "build":
        child_build(args)
        return
    if args.child == "run":
        child_run(args)
        return

    code = Path(args.code).resolve() if args.code else None
    report = Report("Huge texts in the TUI" + (f" (glmchat from {code})" if code else ""))
    sizes = [float(s) for s in args.sizes.split(",")]
    cases = {"unfold": "reasoning", "answer": "content", "user": "user_text"}
    for name in args.only.split(","):
        report.section(f"{name}: one turn with {cases[name]} of " + ", ".join(f"{s:g}" for s in sizes) + " MB")
        results = {mb: run_case(report, cases[name], mb, code, args.limit, args.memory_cap) for mb in sizes}
        if name == "unfold" and len(sizes) > 1:
            small, large = results[min(sizes)], results[max(sizes)]
            label = f"{max(sizes):g} MB / {min(sizes):g} MB"
            report.bar(f"unfold: key -> frame, {label}", large["unfold"] / small["unfold"] if small and large else None,
                       2.0, "x", reference="the same page is laid out whatever the length")
            growth = None if large is None else large["rss_end"] - large["rss_before_unfold"]
            report.bar(f"unfold {max(sizes):g} MB: peak RSS growth", growth, 20.0, "MB")
    report.save(args.json)


if __name__ == "__main__":
    main()
