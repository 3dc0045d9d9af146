"""Run `glmchat serve` as a real process for the tests, and always stop it.

The process gets its own process group (as a shell job would), so a test can
send Ctrl+C the way a terminal does (to the whole group) and, whatever happens,
kill the server and every app it started in one go.
"""

from __future__ import annotations

import base64
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parent.parent
SERVED_AT = re.compile(r"glmchat is served at (\S+)")


def children_of(pid: int) -> list[int]:
    """The live (not zombie) direct children of a process, read from /proc."""
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            stat = Path(f"/proc/{name}/stat").read_text(errors="replace")
        except OSError:
            continue
        state, ppid = stat.rsplit(")", 1)[1].split()[:2]
        if int(ppid) == pid and state != "Z":
            found.append(int(name))
    return found


def alive(pid: int) -> bool:
    """Whether a process still runs (a zombie waiting to be reaped does not count)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(errors="replace")
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_until(what: str, predicate: Callable[[], bool], timeout: float = 30.0, detail: Callable[[], str] = str) -> None:
    """Poll until `predicate()`; fail naming `what` (and `detail()`) if it never holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}\n{detail()}")
        time.sleep(0.05)


@dataclass
class ServeProcess:
    """A running `glmchat serve` and what it printed."""

    proc: subprocess.Popen[str]
    url: str = ""
    """The URL as printed (with its token, if any)."""
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue[str | None] = field(default_factory=queue.Queue)

    @property
    def port(self) -> int:
        port = urlsplit(self.url).port
        assert port is not None, self.url
        return port

    @property
    def path(self) -> str:
        """The printed URL's path: "/" on loopback, "/TOKEN/" with a token."""
        return urlsplit(self.url).path

    def local(self, path: str | None = None) -> str:
        """The URL through 127.0.0.1 (a wildcard bind prints this machine's name)."""
        return f"http://127.0.0.1:{self.port}{self.path if path is None else path}"

    def output(self) -> str:
        self._drain()
        return "\n".join(self.lines)

    def _drain(self) -> None:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.lines.append(line)

    def apps(self) -> list[int]:
        """The glmchat processes it runs (one per open browser tab)."""
        return children_of(self.proc.pid)

    def interrupt(self, *, whole_group: bool = True) -> None:
        """Ctrl+C: to the whole process group, as a terminal sends it, or to the server alone."""
        if whole_group:
            os.killpg(self.proc.pid, signal.SIGINT)
        else:
            self.proc.send_signal(signal.SIGINT)

    def wait(self, timeout: float = 30.0) -> int:
        code = self.proc.wait(timeout)
        self._drain()
        return code

    def kill(self) -> None:
        """Kill the server and everything in its process group; never fails."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        self._drain()


def start_serve(args: list[str], env: dict[str, str], timeout: float = 60.0) -> ServeProcess:
    """Start `python -m glmchat serve ARGS` and wait for the URL it prints."""
    return start_server_process([sys.executable, "-m", "glmchat", "serve", *args], env, timeout)


def start_server_process(command: list[str], env: dict[str, str], timeout: float = 60.0) -> ServeProcess:
    """Start a command that serves glmchat (prints "glmchat is served at URL") and wait for its URL."""
    proc = subprocess.Popen(
        command,
        cwd=REPO,
        env=dict(env, PYTHONPATH=str(REPO), PYTHONUNBUFFERED="1"),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    serve = ServeProcess(proc)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            serve._queue.put(line.rstrip("\n"))
        serve._queue.put(None)

    threading.Thread(target=read, daemon=True, name="serve-output").start()
    deadline = time.monotonic() + timeout
    try:
        while not serve.url:
            try:
                line = serve._queue.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"glmchat serve printed no URL in {timeout:g} s:\n{serve.output()}") from None
            if line is None:
                raise AssertionError(f"glmchat serve exited ({proc.wait(5)}) before listening:\n{serve.output()}")
            serve.lines.append(line)
            if match := SERVED_AT.search(line):
                serve.url = match.group(1)
    except BaseException:
        serve.kill()
        raise
    return serve


def serve_env(home: Path, **extra: str) -> dict[str, str]:
    """The environment for a serve process: this one, with a private GLMCHAT_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(GLMCHAT_HOME=str(home), TEXTUAL_ANIMATIONS="none", **extra)
    return env


class TabConnection:
    """The websocket of one browser tab, minus the browser: reads what the app draws, answers a close.

    A thread reads the server's frames (unmasked, as servers send them) and keeps the
    text of the data frames; on a close frame it closes the socket, as a browser would.
    """

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.received = bytearray()
        self.closed_by_server = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True, name="tab-connection")
        self._thread.start()

    def _exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _read(self) -> None:
        try:
            self.sock.settimeout(None)
            while True:
                first, second = self._exactly(2)
                size = second & 0x7F
                if size == 126:
                    size = int.from_bytes(self._exactly(2), "big")
                elif size == 127:
                    size = int.from_bytes(self._exactly(8), "big")
                payload = self._exactly(size)
                if first & 0x0F == 0x8:  # close
                    self.closed_by_server.set()
                    break
                self.received += payload
        except (EOFError, OSError):
            pass
        finally:
            self.close()

    def send_text(self, text: str) -> None:
        """Send one text frame, masked as a client must."""
        payload = text.encode()
        assert len(payload) < 126
        mask = os.urandom(4)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(bytes([0x81, 0x80 | len(payload)]) + mask + masked)

    def screen_text(self) -> str:
        return self.received.decode("utf-8", "replace")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def open_tab(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, TabConnection | None]:
    """Open a websocket as a browser tab does: the status, and the connection when it was accepted."""
    status, sock = websocket_handshake(port, path, headers)
    if status != 101:
        sock.close()
        return status, None
    return status, TabConnection(sock)


def websocket_handshake(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, socket.socket]:
    """Open a websocket the way a browser does; returns the HTTP status and the open socket."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    fields = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        **(headers or {}),
    }
    request = f"GET {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items()) + "\r\n"
    sock.sendall(request.encode())
    head = b""
    while not head.endswith(b"\r\n\r\n"):
        byte = sock.recv(1)  # one at a time: the first frame may follow the header at once
        if not byte:
            break
        head += byte
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return status, sock
