"""A loopback MCP server for tests, built with the official `mcp` Python SDK.

One server definition, two transports:

    python tests/mcp_server.py --stdio                   # MCP over stdin/stdout
    python tests/mcp_server.py --http --port 0           # streamable HTTP on 127.0.0.1
                                                         # prints "READY http://127.0.0.1:PORT/mcp"

Tools (each with a JSON-schema for its parameters, derived from the signature):

- ``add(a, b)``: the sum of two numbers;
- ``echo(text)``: exactly `text`, any Unicode;
- ``read_note(name)``: a note from a small in-memory dict (an unknown name is a tool error);
- ``slow(seconds)``: sleeps, then says so;
- ``fail(message)``: a tool error result (``isError``) carrying `message`;
- ``crash()``: the server process exits in the middle of the call;
- ``hang()``: never returns;
- ``big(megabytes)``: a text result of that many megabytes (1,000,000 characters each),
  made of numbered lines so a test can tell a complete copy from a cut one (see `big_text`);
- ``getenv(name)``: an environment variable of the server process ("" when unset);
- ``cwd()``: the server process's working directory;
- ``noise(kilobytes)``: writes that much to stderr, then answers;
- ``header(name)``: a header of the HTTP request that carried the call ("" over stdio).

Counting calls: with ``--call-log FILE`` (or ``MCP_TEST_CALL_LOG``) every call
appends one JSON line ``{"tool": ..., "arguments": {...}, "pid": ...}`` to FILE
before the tool runs, so a test can prove a call did (or never did) reach the
server, even one that crashed or hung it.

With ``--token T`` the HTTP transport answers 401 unless the request carries
``Authorization: Bearer T``.

The pytest fixtures `mcp_http_server` and `mcp_stdio` (see
tests/conftest.py) start the server and always stop it.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

HERE = Path(__file__).resolve()

NOTES: dict[str, str] = {
    "groceries": "eggs, rice, 2 lemons",
    "todo": "water the plants\nreply to Ana",
    "unicode": "naïve café 漢字 🚀 \u200b end",
}

CALL_LOG_ENV = "MCP_TEST_CALL_LOG"
CHARS_PER_MEGABYTE = 1_000_000


def big_text(megabytes: float) -> str:
    """The exact text `big(megabytes)` returns: numbered 100-character lines, cut to the size."""
    size = int(megabytes * CHARS_PER_MEGABYTE)
    line_count = size // 100 + 1
    body = "".join(f"{i:09d} " + "x" * 89 + "\n" for i in range(line_count))
    return body[:size]


def build_server(call_log: str | None = None) -> MCPServer:
    """The MCPServer with every test tool registered."""
    server = MCPServer("glmchat-test", instructions="Tools for glmchat's tests.", log_level="ERROR")

    def record(tool: str, arguments: dict[str, Any]) -> None:
        if not call_log:
            return
        line = json.dumps({"tool": tool, "arguments": arguments, "pid": os.getpid()}, ensure_ascii=False)
        with open(call_log, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()

    @server.tool()
    def add(a: float, b: float) -> float:
        """Add two numbers."""
        record("add", {"a": a, "b": b})
        return a + b

    @server.tool()
    def echo(text: str) -> str:
        """Return the text exactly as given."""
        record("echo", {"text": text})
        return text

    @server.tool()
    def read_note(name: str) -> str:
        """Read a note by name (groceries, todo, unicode)."""
        record("read_note", {"name": name})
        if name not in NOTES:
            raise ToolError(f"no note named {name!r}; notes: {', '.join(sorted(NOTES))}")
        return NOTES[name]

    @server.tool()
    async def slow(seconds: float) -> str:
        """Wait this many seconds, then answer."""
        record("slow", {"seconds": seconds})
        await anyio.sleep(seconds)
        return f"waited {seconds} s"

    @server.tool()
    def fail(message: str) -> str:
        """Always fails with the given message (a tool error the model can read)."""
        record("fail", {"message": message})
        raise ToolError(message)

    @server.tool()
    def crash() -> str:
        """The server process exits in the middle of this call."""
        record("crash", {})
        sys.stderr.flush()
        os._exit(3)

    @server.tool()
    async def hang() -> str:
        """Never returns."""
        record("hang", {})
        await anyio.sleep_forever()
        return "unreachable"

    @server.tool()
    def big(megabytes: float) -> str:
        """A large text result of this many megabytes."""
        record("big", {"megabytes": megabytes})
        return big_text(megabytes)

    @server.tool()
    def getenv(name: str) -> str:
        """An environment variable of the server process ("" when unset)."""
        record("getenv", {"name": name})
        return os.environ.get(name, "")

    @server.tool()
    def noise(kilobytes: int) -> str:
        """Write this many kilobytes to stderr (a chatty server), then answer."""
        record("noise", {"kilobytes": kilobytes})
        for _ in range(kilobytes):
            sys.stderr.write("n" * 1023 + "\n")
        sys.stderr.flush()
        return "done"

    @server.tool()
    def cwd() -> str:
        """The server process's working directory."""
        record("cwd", {})
        return os.getcwd()

    @server.tool()
    def header(name: str, ctx: Context) -> str:
        """A header of the HTTP request carrying this call ("" over stdio)."""
        record("header", {"name": name})
        request = ctx.request_context.request
        headers = getattr(request, "headers", None)
        return headers.get(name, "") if headers is not None else ""

    return server


# -- running ---------------------------------------------------------------------------------------


def run_stdio(call_log: str | None) -> None:
    build_server(call_log).run("stdio")


def run_http(port: int, call_log: str | None, token: str | None) -> None:
    import uvicorn

    app = build_server(call_log).streamable_http_app(host="127.0.0.1")
    if token:
        app = _require_token(app, token)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(app, log_level="error", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: server.serve(sockets=[sock]))
            while not server.started:
                if server.should_exit:
                    return
                await anyio.sleep(0.01)
            print(f"READY http://127.0.0.1:{sock.getsockname()[1]}/mcp", flush=True)

    anyio.run(main)


def _require_token(app: Any, token: str) -> Any:
    """Wrap an ASGI app: 401 unless the request says `Authorization: Bearer <token>`."""
    expected = f"Bearer {token}".encode()

    async def guarded(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and dict(scope["headers"]).get(b"authorization") != expected:
            body = b'{"error":"unauthorized"}'
            await send({"type": "http.response.start", "status": 401,
                        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return guarded


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Loopback MCP server with tools for glmchat's tests.")
    how = parser.add_mutually_exclusive_group(required=True)
    how.add_argument("--stdio", action="store_true", help="serve over stdin/stdout")
    how.add_argument("--http", action="store_true", help="serve streamable HTTP on 127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="HTTP port (0: any free port)")
    parser.add_argument("--call-log", default=os.environ.get(CALL_LOG_ENV), help="append one JSON line per call here")
    parser.add_argument("--token", default=None, help="HTTP: require this bearer token")
    args = parser.parse_args(argv)
    if args.stdio:
        run_stdio(args.call_log)
    else:
        run_http(args.port, args.call_log, args.token)
    return 0


# -- for tests ---------------------------------------------------------------------------------------


def read_call_log(path: Path) -> list[dict[str, Any]]:
    """The calls recorded in a call log, oldest first ([] when there were none)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def stdio_command(call_log: Path | None = None) -> list[str]:
    """The argv that runs this server over stdio with the current interpreter."""
    command = [sys.executable, str(HERE), "--stdio"]
    if call_log is not None:
        command += ["--call-log", str(call_log)]
    return command


@dataclass
class StdioMcpServer:
    """How to run the server over stdio (the client under test starts and stops the process)."""

    call_log: Path

    @property
    def command(self) -> list[str]:
        return stdio_command(self.call_log)

    def calls(self) -> list[dict[str, Any]]:
        return read_call_log(self.call_log)


@dataclass
class HttpMcpServer:
    """A started `--http` server process: its URL, its call log and the process itself."""

    url: str
    call_log: Path
    process: subprocess.Popen[str]
    token: str | None = None
    stderr_path: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def calls(self) -> list[dict[str, Any]]:
        return read_call_log(self.call_log)


@contextmanager
def http_server(tmp: Path, *, token: str | None = None, timeout: float = 30.0) -> Iterator[HttpMcpServer]:
    """Start `--http --port 0` in a child process; kill it (and wait for it) on exit, whatever happened."""
    call_log = tmp / f"mcp-calls-{time.monotonic_ns()}.jsonl"
    stderr_path = call_log.with_suffix(".stderr")
    command = [sys.executable, str(HERE), "--http", "--port", "0", "--call-log", str(call_log)]
    if token:
        command += ["--token", token]
    with open(stderr_path, "w", encoding="utf-8") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=stderr, text=True, start_new_session=True)
    try:
        url = _await_ready(process, timeout, stderr_path)
        yield HttpMcpServer(url=url, call_log=call_log, process=process, token=token, stderr_path=stderr_path)
    finally:
        stop_process(process)


def _await_ready(process: subprocess.Popen[str], timeout: float, stderr_path: Path) -> str:
    import selectors

    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                break
            line = process.stdout.readline()
            if not line:
                break
            if line.startswith("READY "):
                return line.split()[1]
    finally:
        selector.close()
    raise RuntimeError(f"the MCP test server did not start: {stderr_path.read_text(errors='replace')[-2000:]}")


def stop_process(process: subprocess.Popen[Any]) -> None:
    """Terminate, then kill, a child process (and its process group) and reap it."""
    import signal

    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                process.kill()
            process.wait(timeout=5)
    for stream in (process.stdout, process.stderr, process.stdin):
        if stream is not None:
            stream.close()


if __name__ == "__main__":
    sys.exit(main())
