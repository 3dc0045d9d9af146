"""Shared pieces of the benchmarks: the loopback server as a process, children, bars, homes.

Every benchmark runs the loopback GLM server (tests/glm_server.py) as its own
process, so the server never shares a GIL or a CPU account with what is
measured, and runs each measured scenario in a fresh child process, so peak
RSS and CPU time belong to that scenario alone. Times are `time.monotonic()`,
one clock for every process on the machine, so the server's chunk times and
the app's frame times can be compared directly.

This module imports only the standard library (and glmchat/tests lazily).
"""

from __future__ import annotations

import atexit
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH = ROOT / "bench"
SERVER_SCRIPT = ROOT / "tests" / "glm_server.py"
KEY = "bench-key-0123456789abcdef"
SIZE = (120, 40)
"""Terminal size of every headless app run."""

RESULT_PREFIX = "RESULT "
PYCACHE = os.path.join(tempfile.gettempdir(), "glmchat-bench-pycache")


# -- the corpus ------------------------------------------------------------------------------------


def corpus_tokens(n: int, seed: int) -> list[str]:
    """`n` tokens of the loopback server's mixed Markdown (lists, tables, code, CJK, emoji)."""
    from tests.glm_server import corpus_tokens as make

    return make(n, seed)


REASONING_SEED = 1
CONTENT_SEED = 2
"""The seeds the server's own --reasoning-tokens/--content-tokens use."""


# -- the loopback server as a process --------------------------------------------------------------


class ServerControl:
    """The control endpoints of a running loopback server (usable from any process)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data, method=method)
        if data is not None:
            request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=60) as response:
            return json.loads(response.read())

    def enqueue(self, *replies: dict[str, Any]) -> None:
        self._call("POST", "/_glm/enqueue", list(replies))

    def requests(self) -> list[dict[str, Any]]:
        """Recorded chat requests, oldest first."""
        return [r for r in self._call("GET", "/_glm/requests") if not r["path"].startswith("/_glm/")]

    def last(self) -> dict[str, Any]:
        return self.requests()[-1]

    def reset(self) -> None:
        self._call("POST", "/_glm/reset", {})


class Server(ServerControl):
    """`python tests/glm_server.py` in its own process, with its control endpoints.

    Args:
        args: Extra command-line arguments (e.g. ["--pace", "1000", "--chunk", "3"]).
    """

    def __init__(self, args: Iterable[str] = ()) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            cwd=ROOT,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline().strip()
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"the loopback server did not start: {line!r}")
        super().__init__(line.split(" ", 1)[1])

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def reply(reasoning: list[str], content: list[str], *, pace: float | None = None, chunk: int = 3) -> dict[str, Any]:
    """A scripted reply for /_glm/enqueue: these exact tokens, paced or as fast as possible."""
    out: dict[str, Any] = {"reasoning": reasoning, "content": content, "chunk_tokens": chunk}
    if pace:
        out["pace"] = pace
    else:
        out["unthrottled"] = True
    return out


def chunk_char_marks(reasoning: list[str], content: list[str], chunk: int) -> list[int]:
    """Cumulative characters (reasoning then answer) at the end of each chunk the server sends."""
    marks: list[int] = []
    total = 0
    for seq in (reasoning, content):
        for i in range(0, len(seq), chunk):
            total += sum(len(t) for t in seq[i : i + chunk])
            marks.append(total)
    return marks


# -- a private glmchat home ------------------------------------------------------------------------


def make_home(server_url: str | None = None, *, prefix: str = "glmchat-bench-") -> Path:
    """A fresh GLMCHAT_HOME with a config that sends to the loopback server as Z.ai."""
    from glmchat.config import Config, save_config

    home = temp_dir(prefix)
    hosts = {"zai": {"base_url": f"{server_url}/zai"}} if server_url else {}
    save_config(Config(keys={"zai": KEY}, hosts=hosts), home / "config.toml")
    return home


def temp_dir(prefix: str) -> Path:
    """A temporary folder removed when this process exits."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    atexit.register(shutil.rmtree, folder, True)
    return folder


def child_env(home: Path | None = None, **extra: str) -> dict[str, str]:
    """Environment of a child: the repo importable, a private home, no animations, no real keys."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env["PYTHONPATH"] = str(ROOT)
    # Run from compiled bytecode, as an installed package does, without writing into the repo.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["PYTHONPYCACHEPREFIX"] = PYCACHE
    env["TEXTUAL_ANIMATIONS"] = "none"
    env.pop("TEXTUAL", None)
    if home is not None:
        env["GLMCHAT_HOME"] = str(home)
    env.update(extra)
    return env


# -- children --------------------------------------------------------------------------------------


@dataclass
class ChildRun:
    """What a child process reported, and what the kernel says it cost."""

    result: dict[str, Any]
    started: float
    """time.monotonic() just before the child was spawned."""
    ended: float
    cpu: float
    """User + system CPU seconds of the child (its threads included)."""
    maxrss_mb: float
    stdout: str = ""
    stderr: str = ""
    returncode: int = 0


def run_child(argv: list[str], *, env: dict[str, str] | None = None, timeout: float = 600, stdin: str | None = None) -> ChildRun:
    """Run `python argv...`; the child prints one `RESULT {json}` line. CPU and peak RSS via wait4."""
    started = time.monotonic()
    proc = subprocess.Popen(
        [sys.executable, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env=env or child_env(),
    )
    out: list[str] = []
    err: list[str] = []
    readers = [
        threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True),  # type: ignore[union-attr]
        threading.Thread(target=lambda: err.append(proc.stderr.read()), daemon=True),  # type: ignore[union-attr]
    ]
    for t in readers:
        t.start()
    if stdin is not None:
        assert proc.stdin is not None
        proc.stdin.write(stdin)
        proc.stdin.close()
    cpu, maxrss, status = _wait4(proc, timeout)
    ended = time.monotonic()
    for t in readers:
        t.join(10)
    stdout, stderr = "".join(out), "".join(err)
    result: dict[str, Any] = {}
    for line in stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX) :])
    if not result:
        raise RuntimeError(f"child {argv[0]} gave no result (exit {status}):\n{stderr[-3000:]}")
    return ChildRun(result, started, ended, cpu, maxrss, stdout, stderr, status)


def _wait4(proc: subprocess.Popen, timeout: float) -> tuple[float, float, int]:
    """Wait for a child and return (cpu seconds, peak RSS MB, exit status) from the kernel."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, proc.returncode
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError(f"child {proc.args} took more than {timeout:g} s")
        time.sleep(0.01)


def emit(result: dict[str, Any]) -> None:
    """In a child: hand the result to the parent (one line on stdout)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result.setdefault("self_maxrss_mb", usage.ru_maxrss / 1024)
    sys.stdout.write(RESULT_PREFIX + json.dumps(result) + "\n")
    sys.stdout.flush()


# -- reporting -------------------------------------------------------------------------------------


@dataclass
class Report:
    """Figures and bars of one benchmark script, printed as they come and saved as JSON."""

    title: str
    figures: list[dict[str, Any]] = field(default_factory=list)
    bars: list[dict[str, Any]] = field(default_factory=list)

    def __post_init__(self) -> None:
        print(f"\n== {self.title}", flush=True)

    def section(self, text: str) -> None:
        print(f"\n-- {text}", flush=True)

    def figure(self, name: str, value: Any, unit: str = "", note: str = "") -> None:
        shown = _fmt(value)
        print(f"   {name:<58} {shown:>12} {unit:<8} {note}".rstrip(), flush=True)
        self.figures.append({"name": name, "value": value, "unit": unit, "note": note})

    def bar(self, name: str, value: float | None, limit: float, unit: str = "", *, higher_is_better: bool = False,
            reference: str = "") -> bool:
        """Check one bar and print it with PASS/FAIL (a missing value fails)."""
        if value is None:
            ok = False
        else:
            ok = value >= limit if higher_is_better else value <= limit
        sign = "≥" if higher_is_better else "≤"
        verdict = "PASS" if ok else "FAIL"
        line = f"   BAR {name:<54} {_fmt(value):>12} {unit:<5} {sign} {_fmt(limit)} {unit}"
        print(f"{line:<100} {verdict}" + (f"   ({reference})" if reference else ""), flush=True)
        self.bars.append({"name": name, "value": value, "limit": limit, "unit": unit,
                          "higher_is_better": higher_is_better, "ok": ok, "reference": reference})
        return ok

    def save(self, path: str | None) -> None:
        if path:
            Path(path).write_text(json.dumps({"title": self.title, "figures": self.figures, "bars": self.bars}, indent=1))


def _fmt(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.3g}" if value else "0"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def median(values: Iterable[float]) -> float:
    return statistics.median(list(values))


def timed(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


# -- stored sessions -------------------------------------------------------------------------------

_TEXTS: dict[tuple[int, int], str] = {}


def _text(tokens: int, seed: int) -> str:
    key = (tokens, seed)
    if key not in _TEXTS:
        _TEXTS[key] = "".join(corpus_tokens(tokens, seed))
    return _TEXTS[key]


def stored_turns(n: int, *, reasoning_tokens: int = 1000, content_tokens: int = 650, variants: int = 40,
                 start: float = 1_700_000_000.0) -> list[Any]:
    """`n` finished turns of mixed Markdown (about 3 KB reasoning + 2 KB answer: 5 KB a turn by default)."""
    from glmchat.session import Step, Turn, TurnStatus
    from glmchat.usage import Usage

    turns = []
    for i in range(n):
        v = i % variants
        created = start + i * 60
        turns.append(
            Turn(user_text=f"Question {i + 1}: tell me about {('streams', 'tables', 'caches', 'layouts')[i % 4]}.", thinking=True, host="zai", model="glm-4.7", status=TurnStatus.COMPLETE, finish_reason="stop", created_at=created, first_reasoning_at=created + 0.4, first_content_at=created + 3.0, finished_at=created + 5.0, steps=[Step(reasoning=_text(reasoning_tokens, 1000 + v), content=_text(content_tokens, 2000 + v), usage=Usage(prompt_tokens=1000 + 1250 * i, completion_tokens=1250, cached_tokens=1250 * i,
                            reasoning_tokens=reasoning_tokens))])
        )
    return turns


def store_session(data_dir: Path, turns: list[Any], *, title: str = "Bench session", when: float | None = None) -> Any:
    """Save a session with these turns through the store API; returns it."""
    from glmchat.session import Session, TurnStatus
    from glmchat.store import Store

    created = turns[0].created_at if turns else time.time()
    session = Session(title=title, created_at=created, updated_at=when or (turns[-1].created_at if turns else created),
                      turns=turns)
    store = Store.open(data_dir)
    try:
        store.save_session(session)
    finally:
        store.close()
    return session


def data_dir_of(home: Path) -> Path:
    """The data folder glmchat uses under a GLMCHAT_HOME."""
    old = os.environ.get("GLMCHAT_HOME")
    os.environ["GLMCHAT_HOME"] = str(home)
    try:
        from glmchat.config import paths

        return paths().data_dir
    finally:
        if old is None:
            os.environ.pop("GLMCHAT_HOME", None)
        else:
            os.environ["GLMCHAT_HOME"] = old
