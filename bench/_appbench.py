"""Measuring the real GlmChatApp headless, without changing it.

Used inside a benchmark's child process. It adds two observation points:

- `BenchApp`, a subclass of `GlmChatApp` whose `_display` records the
  monotonic time and the process CPU time of every frame that was really
  displayed (not the no-op calls made during a batch update). Headless Textual
  skips turning the frame into escape sequences; `BenchApp` does that work
  (`render_segments`) and throws the result away, so the CPU figures include
  what a real terminal frame costs the app.
- `install_flush_probe`, a wrapper around `TurnView.flush` (the 30 Hz timer
  that moves streamed text onto the screen) that records, after each flush,
  how many characters of the turn (reasoning + answer, as received) have been
  handed to the widgets.

"Text on screen" is then: the first displayed frame after the flush that drew
it. Everything else is the app's own code path: `ChatScreen.send` (what Enter
in the composer calls), `run_turn`, `GlmClient`, the store in GLMCHAT_HOME.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench._common import SIZE


@dataclass
class Probe:
    frames: list[float] = field(default_factory=list)
    """Monotonic time of each displayed frame."""
    frame_cpu: list[float] = field(default_factory=list)
    """Process CPU time at each displayed frame."""
    flushes: list[tuple[float, str, int]] = field(default_factory=list)
    """(time after the flush, turn id, characters of that turn drawn so far)."""
    flush_seconds: list[float] = field(default_factory=list)
    drawn: dict[str, int] = field(default_factory=dict)
    gc_pauses: list[tuple[float, float, int]] = field(default_factory=list)
    """(monotonic start, seconds, generation) of each garbage collection."""

    def gc_between(self, start: float, end: float) -> tuple[float, float, int]:
        """Total and longest GC pause between two times, and how many were of generation 2."""
        pauses = [(d, g) for t, d, g in self.gc_pauses if start <= t <= end]
        return sum(d for d, _ in pauses), max((d for d, _ in pauses), default=0.0), sum(1 for _, g in pauses if g == 2)

    def frame_after(self, t: float) -> int | None:
        """Index of the first frame displayed after time t."""
        i = bisect.bisect_right(self.frames, t)
        return i if i < len(self.frames) else None

    def screen_times(self, turn_id: str, marks: list[int]) -> list[float | None]:
        """For each character mark (ascending), when the text up to it was first on screen."""
        flushes = [(t, n) for t, tid, n in self.flushes if tid == turn_id]
        out: list[float | None] = []
        j = 0
        for mark in marks:
            while j < len(flushes) and flushes[j][1] < mark:
                j += 1
            if j == len(flushes):
                out.append(None)
                continue
            k = self.frame_after(flushes[j][0])
            out.append(self.frames[k] if k is not None else None)
        return out

    def screen_curve(self, turn_id: str) -> list[tuple[float, int]]:
        """(frame time, characters of the turn on screen) at each frame that showed new text."""
        flushes = [(t, n) for t, tid, n in self.flushes if tid == turn_id]
        curve: list[tuple[float, int]] = []
        for t, n in flushes:
            k = self.frame_after(t)
            if k is None:
                break
            if curve and curve[-1][0] == self.frames[k]:
                curve[-1] = (self.frames[k], n)
            else:
                curve.append((self.frames[k], n))
        return curve

    def interpolated_times(self, turn_id: str, marks: list[int], start: tuple[float, int]) -> list[float | None]:
        """When each character mark reached the screen, spreading each frame's text evenly since the one before.

        With text arriving faster than frames, many marks land in one frame; this
        gives the rate at which text got onto the screen, frame to frame.
        """
        curve = [start, *self.screen_curve(turn_id)]
        out: list[float | None] = []
        j = 1
        for mark in marks:
            while j < len(curve) and curve[j][1] < mark:
                j += 1
            if j == len(curve):
                out.append(None)
                continue
            (t0, c0), (t1, c1) = curve[j - 1], curve[j]
            out.append(t1 if c1 == c0 else t0 + (t1 - t0) * (mark - c0) / (c1 - c0))
        return out

    def cpu_at(self, t: float) -> float:
        """Process CPU time at the frame displayed at time t."""
        i = bisect.bisect_left(self.frames, t)
        return self.frame_cpu[min(i, len(self.frame_cpu) - 1)]


PROBE = Probe()


def install_gc_probe(probe: Probe = PROBE) -> None:
    """Time every garbage collection (they stop the event loop)."""
    import gc

    started: list[float] = [0.0]

    def callback(phase: str, info: dict) -> None:
        if phase == "start":
            started[0] = time.monotonic()
        else:
            probe.gc_pauses.append((started[0], time.monotonic() - started[0], info.get("generation", -1)))

    gc.callbacks.append(callback)


def install_flush_probe(probe: Probe = PROBE) -> None:
    from glmchat.ui.widgets.turn import TurnView

    original = TurnView.flush
    if getattr(original, "_bench_probe", False):
        return

    def pending(view: TurnView) -> int:
        return sum(map(len, view._pending_reasoning)) + sum(map(len, view._pending_answer))

    def flush(self: TurnView, *args: Any, **kwargs: Any) -> None:
        before = pending(self)
        start = time.perf_counter()
        original(self, *args, **kwargs)
        n = before - pending(self)  # a flush may leave part of the text for the next one
        if n:
            probe.flush_seconds.append(time.perf_counter() - start)
            total = probe.drawn.get(self.turn.id, 0) + n
            probe.drawn[self.turn.id] = total
            probe.flushes.append((time.monotonic(), self.turn.id, total))

    flush._bench_probe = True  # type: ignore[attr-defined]
    TurnView.flush = flush  # type: ignore[method-assign]


def bench_app_class(probe: Probe = PROBE, *, emulate_terminal: bool = True) -> type:
    """GlmChatApp with frame recording (and the terminal encoding work headless mode skips)."""
    from glmchat.ui.app import GlmChatApp

    import glmchat.ui.app as app_module

    folder = Path(app_module.__file__).parent

    class BenchApp(GlmChatApp):
        # Relative CSS paths resolve next to the class's own file: point them back at the app's.
        CSS_PATH = [str(folder / path) for path in GlmChatApp.CSS_PATH]

        def _display(self, screen: Any, renderable: Any) -> None:
            real = renderable is not None and not self._batch_count
            if real and emulate_terminal:
                renderable.render_segments(self.console)
            super()._display(screen, renderable)
            if real:
                probe.frames.append(time.monotonic())
                probe.frame_cpu.append(time.process_time())

    return BenchApp


def make_app(probe: Probe = PROBE, **kwargs: Any) -> Any:
    """The real app (config and store from GLMCHAT_HOME), instrumented."""
    from glmchat.config import AppOptions

    install_flush_probe(probe)
    install_gc_probe(probe)
    options = kwargs.pop("options", None) or AppOptions(new=True)
    return bench_app_class(probe)(options, probe=False, **kwargs)


async def wait_until(predicate: Any, timeout: float = 300.0, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(step)
    return True


@dataclass
class TurnRun:
    """One turn sent through the app, and what the probe saw."""

    turn_id: str
    t_send: float
    cpu_send: float
    status: str


PROFILE_ENV = "GLMCHAT_BENCH_PROFILE"
"""Set to a folder to profile each measured turn with pyinstrument (one text report per turn)."""


class _TurnProfiler:
    """pyinstrument over one turn, when GLMCHAT_BENCH_PROFILE names a folder (else does nothing)."""

    count = 0

    def __init__(self, label: str) -> None:
        import os

        folder = os.environ.get(PROFILE_ENV)
        self.profiler = None
        if folder:
            from pyinstrument import Profiler

            _TurnProfiler.count += 1
            self.path = Path(folder) / f"{label}-turn{_TurnProfiler.count:02d}.txt"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.profiler = Profiler(interval=0.001, async_mode="disabled")
            self.profiler.start()

    def stop(self) -> None:
        if self.profiler is not None:
            self.profiler.stop()
            self.path.write_text(self.profiler.output_text(unicode=True, color=False, show_all=False))
            # The whole session too, to look again with other options: pyinstrument --load FILE --show-all
            self.profiler.last_session.save(str(self.path.with_suffix(".pyisession")))


async def send_turn(app: Any, prompt: str, thinking: bool, *, timeout: float = 600.0, settle: float = 0.25,
                    label: str = "turn") -> TurnRun:
    """Send a prompt the way Enter does (ChatScreen.send) and wait for the turn to finish on screen."""
    chat = app.chat
    profiler = _TurnProfiler(label)
    t_send = time.monotonic()
    cpu_send = time.process_time()
    started = await chat.send(prompt, thinking)
    if not started:
        raise RuntimeError("the app did not start the turn")
    turn = chat.session.turns[-1]
    if not await wait_until(lambda: chat.live is None, timeout):
        raise TimeoutError("the turn did not finish")
    # Let the frame that shows the end be drawn.
    await asyncio.sleep(settle)
    profiler.stop()
    return TurnRun(turn.id, t_send, cpu_send, turn.status)


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    if not values:
        return float("nan")
    i = min(len(values) - 1, max(0, int(round(q * (len(values) - 1)))))
    return values[i]


def phase_cost(probe: Probe, start: float, end: float) -> tuple[int, float]:
    """Frames displayed in (start, end] and the process CPU seconds per frame over them."""
    i = bisect.bisect_right(probe.frames, start)
    j = bisect.bisect_right(probe.frames, end)
    if j - i < 2:
        return j - i, float("nan")
    return j - i, (probe.frame_cpu[j - 1] - probe.frame_cpu[i]) / (j - 1 - i)


def analyse_turn(probe: Probe, run: TurnRun, record: dict[str, Any], marks: list[int], ntokens: int,
                 reasoning_chars: int = 0) -> dict[str, Any]:
    """Latency of every chunk (server send -> first frame showing it), CPU and rates of one turn."""
    chunk_times = record["chunk_times"]
    if len(chunk_times) != len(marks):
        raise RuntimeError(f"{len(chunk_times)} chunks recorded, {len(marks)} expected")
    shown = probe.screen_times(run.turn_id, marks)
    if shown[-1] is None:
        raise RuntimeError(
            f"the last text never reached the screen: drew {probe.drawn.get(run.turn_id)} of {marks[-1]} characters"
        )
    lat = [s - c for s, c in zip(shown, chunk_times) if s is not None]
    t_last = shown[-1]
    cpu = probe.cpu_at(t_last) - run.cpu_send
    first_chunk, last_chunk = chunk_times[0], chunk_times[-1]
    in_turn = [t for t in probe.frames if run.t_send <= t <= t_last]
    gc_total, gc_max, gc_full = probe.gc_between(run.t_send, t_last)
    gaps = [b - a for a, b in zip(in_turn, in_turn[1:])]
    phases = {}
    if reasoning_chars and reasoning_chars < marks[-1]:
        k = next(i for i, m in enumerate(marks) if m > reasoning_chars)
        split = shown[k - 1] if k > 0 and shown[k - 1] is not None else chunk_times[k]
        phases = {"reasoning_phase": phase_cost(probe, chunk_times[0], split),
                  "answer_phase": phase_cost(probe, split, t_last)}
    else:
        phases = {"answer_phase": phase_cost(probe, chunk_times[0], t_last)}
    return {
        **phases,
        "status": run.status,
        "tokens": ntokens,
        "chars": marks[-1],
        "t_send": run.t_send,
        "request_at": record["arrived_at"],
        "first_chunk": first_chunk,
        "last_chunk": last_chunk,
        "last_on_screen": t_last,
        "last_latency": t_last - last_chunk,
        "latency_p50": pct(lat, 0.5),
        "latency_p95": pct(lat, 0.95),
        "latency_max": max(lat),
        "stream_seconds": last_chunk - first_chunk,
        "end_to_end": t_last - run.t_send,
        "send_to_request": record["arrived_at"] - run.t_send,
        "cpu": cpu,
        "frames": len(in_turn),
        "max_frame_gap": max(gaps) if gaps else 0.0,
        "flushes": sum(1 for _, tid, _ in probe.flushes if tid == run.turn_id),
        "max_flush": max(probe.flush_seconds) if probe.flush_seconds else 0.0,
        "gc_seconds": gc_total,
        "gc_max": gc_max,
        "gc_full": gc_full,
        "gc_count": sum(1 for t, _, _ in probe.gc_pauses if run.t_send <= t <= t_last),
    }


def token_screen_times(probe: Probe, turn_id: str, tokens: list[str], points: list[int],
                       start: tuple[float, int] | None = None) -> list[float | None]:
    """When the first `k` tokens (for each k in points) were on screen (interpolated between frames with `start`)."""
    cum = [0]
    for t in tokens:
        cum.append(cum[-1] + len(t))
    marks = [cum[k] for k in points]
    if start is not None:
        return probe.interpolated_times(turn_id, marks, start)
    return probe.screen_times(turn_id, marks)


def run_headless(coro_fn: Any, app: Any) -> Any:
    """Run `coro_fn(app, pilot)` inside `app.run_test` at the benchmark size."""

    async def main() -> Any:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause()
            return await coro_fn(app, pilot)

    return asyncio.run(main())
