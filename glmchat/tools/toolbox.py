"""The ToolBox: the MCP servers one session uses, their tools, and calls to them.

Everything here is asyncio; the `mcp` SDK (anyio underneath) is imported on
the first start of a server, never before.

Each server runs in a task of its own that enters the SDK's client (and, for
stdio, the subprocess) and leaves it again when told to stop. That task is the
only one that opens or closes the connection, so any task may call tools and
the box may be closed from any task, also from one being cancelled: the
subprocesses are always stopped.

Failure is data, not an exception: a server that does not start, a call that
times out, a server that crashes mid-call, a tool that reports an error, all
end as a `ToolResult` the model can read plus a one-line notice for the user.
Only cancellation propagates (Esc): the call is abandoned, the SDK tells the
server, and the server stays up for the next call.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import TYPE_CHECKING, Any, TextIO

from glmchat.config import McpServerConfig, McpTransport, ToolSettings
from glmchat.tools.names import function_name
from glmchat.tools.results import CallStatus, ToolResult, content_text, for_model, one_line, scrub

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from glmchat.config import Config

MAX_RESTARTS = 3
"""Restarts after crashes, per server and box: a server that keeps crashing is left stopped."""

MAX_SSE_EVENT_BYTES = 256 * 1024 * 1024
"""The largest single streamed HTTP message accepted (the SDK's default of 1 MB would refuse big results)."""

STOP_TIMEOUT = 10.0
"""Seconds a server's task may take to shut down (the SDK itself escalates to SIGKILL within about 6)."""

HTTP_CONNECT_TIMEOUT = 30.0

STDERR_KEEP = 1 << 20
"""A server's stderr is kept in a file for the notice when it fails; past this size the file starts over."""

NoticeHandler = Callable[[str], None]


class ServerState(StrEnum):
    """Where one server's connection stands."""

    STOPPED = "stopped"
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    """It never started; it is not tried again in this box."""
    CRASHED = "crashed"
    """It was ready and went away; the next call starts it again (up to MAX_RESTARTS)."""


@dataclass(frozen=True)
class ToolSpec:
    """One tool as offered to the model."""

    name: str
    """The function name the model sees (``server__tool``, see names.py)."""
    server: str
    tool: str
    """The tool's own name on its server."""
    description: str
    parameters: dict[str, Any]
    """JSON schema of the arguments (always an object schema)."""
    trusted: bool
    """Runs without asking the user (the server's ``trusted`` setting)."""

    def to_chat_tool(self) -> dict[str, Any]:
        """The chat-completions ``tools`` entry."""
        return {
            "type": "function",
            "function": {"name": self.name, "description": self.description, "parameters": self.parameters},
        }


def _silence_sdk_logging() -> None:
    # glmchat configures no logging, so Python's last-resort handler would print the
    # SDK's warnings (and any URL in them) straight onto the terminal the TUI draws on.
    for name in ("mcp", "httpx2", "httpcore2", "uvicorn"):
        logger = logging.getLogger(name)
        if not logger.handlers:
            logger.addHandler(logging.NullHandler())
        logger.propagate = False


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside (nested) exception groups, or `exc` itself."""
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for inner in exc.exceptions:
            out.extend(_leaves(inner))
        return out
    return [exc]


# -- one server ----------------------------------------------------------------------------------


class _Connection:
    """One MCP server: its task, its SDK client, its tools."""

    def __init__(self, config: McpServerConfig) -> None:
        self.config = config
        self.state = ServerState.STOPPED
        self.tools: list[Any] = []
        """The SDK's Tool objects, as listed at the first successful start."""
        self.restarts = 0
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._error: BaseException | None = None
        self._errlog: TextIO | None = None
        self._http_status: int | None = None
        """The last HTTP error status the server answered (the SDK reports only "an error response")."""
        self._lock = asyncio.Lock()
        self._closed = False

    @property
    def name(self) -> str:
        return self.config.name

    # -- life cycle -----------------------------------------------------------------------------------

    async def start(self) -> str | None:
        """Start the server and list its tools; the notice when it failed (then state is FAILED)."""
        async with self._lock:
            return await self._start_locked(first=True)

    async def _start_locked(self, *, first: bool) -> str | None:
        if self._closed:
            return self._notice("is not running (its tool box was closed)")
        await self._stop_task()
        self.state = ServerState.STARTING
        self._stop = asyncio.Event()
        self._ready = asyncio.Event()
        self._error = None
        self._http_status = None
        self._errlog = tempfile.TemporaryFile("w+", encoding="utf-8", errors="replace")  # noqa: SIM115 - lives with the task
        self._task = asyncio.create_task(self._run(first), name=f"mcp server {self.name}")
        try:
            async with asyncio.timeout(self.config.start_timeout):
                await asyncio.shield(self._ready.wait())
        except TimeoutError:
            await self._stop_task()
            self.state = ServerState.FAILED
            return self._notice(f"did not start within {self.config.start_timeout:g} s")
        except asyncio.CancelledError:
            await asyncio.shield(self._stop_task())
            self.state = ServerState.STOPPED
            raise
        if self._closed:  # closed while starting: nothing to report
            await self._stop_task()
            self.state = ServerState.STOPPED
            return None
        if self._client is None:
            failure = self._start_failure()  # before stopping: it reads the server's stderr
            await self._stop_task()
            self.state = ServerState.FAILED
            return self._notice(failure)
        self.state = ServerState.READY
        return None

    async def _run(self, first: bool) -> None:
        try:
            async with self._open() as client:
                tools = await _list_tools(client)
                if first:
                    self.tools = tools
                self._client = client
                self._ready.set()
                await self._stop.wait()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - any failure of the connection is reported, never raised here
            self._error = exc
        finally:
            self._client = None
            self._ready.set()
            if self.state is ServerState.READY:
                # The connection ended without being asked to (the server went away).
                self.state = ServerState.CRASHED

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Any]:
        from mcp import Client, Implementation

        from glmchat import __version__

        info = Implementation(name="glmchat", version=__version__)
        async with AsyncExitStack() as stack:
            if self.config.transport is McpTransport.STDIO:
                # The server's stderr goes to a file, never onto the terminal the TUI draws on.
                assert self._errlog is not None
                if sys.platform == "win32":  # pragma: no cover - glmchat's own transport is POSIX-only
                    from mcp.client.stdio import StdioServerParameters, stdio_client

                    program, *args = self.config.command
                    params = StdioServerParameters(command=program, args=args, env=self.config.env or None, cwd=self.config.cwd)
                    transport = stdio_client(params, errlog=self._errlog)
                else:
                    from glmchat.tools.stdio import stdio_transport

                    # A server that exits between calls ends this connection at once (see _run), so
                    # the next call starts it again instead of failing first.
                    transport = stdio_transport(
                        self.config.command, self.config.env, self.config.cwd, self._errlog, on_closed=self._stop.set
                    )
            else:
                import httpx2
                from mcp.client.streamable_http import streamable_http_client

                http = await stack.enter_async_context(
                    httpx2.AsyncClient(
                        headers=self.config.headers,
                        timeout=httpx2.Timeout(HTTP_CONNECT_TIMEOUT, read=None),
                        follow_redirects=False,
                        event_hooks={"response": [self._on_response]},
                    )
                )
                transport = streamable_http_client(self.config.url, http_client=http, max_sse_event_size=MAX_SSE_EVENT_BYTES)
            client = await stack.enter_async_context(Client(transport, client_info=info))
            yield client

    async def _on_response(self, response: Any) -> None:
        if response.status_code >= 400:
            self._http_status = response.status_code

    def take_http_status(self) -> int | None:
        """The HTTP error status seen since the last time this was asked (None: none)."""
        status, self._http_status = self._http_status, None
        return status

    async def stop(self) -> None:
        """Stop for good; not behind the lock, so a start or restart in progress is cut short."""
        self._closed = True
        await self._stop_task()
        self.state = ServerState.STOPPED

    async def _stop_task(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            self._stop.set()
            # A connection still starting is not waiting for the stop event: cancel it right away.
            done, _ = await asyncio.wait({task}, timeout=STOP_TIMEOUT if self._client is not None else 0)
            if not done:
                task.cancel()
                with suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait({task}, timeout=STOP_TIMEOUT)
        if self._errlog is not None:
            with suppress(OSError):
                self._errlog.close()
            self._errlog = None

    async def ensure_running(self) -> str | None:
        """Restart a crashed server (the notice when that failed or is no longer allowed)."""
        async with self._lock:
            if self.state is ServerState.READY and self._client is not None:
                return None
            if self.state is ServerState.FAILED:
                return self._notice("is not running (it failed to start)")
            if self.restarts >= MAX_RESTARTS:
                return self._notice(f"is not running (it stopped {self.restarts + 1} times)")
            self.restarts += 1
            notice = await self._start_locked(first=False)
            if notice is not None:
                self.state = ServerState.CRASHED
            return notice

    async def crashed(self) -> None:
        """The connection is gone (seen by a call): shut its task down so the next call restarts it."""
        async with self._lock:
            await self._stop_task()
            self.state = ServerState.CRASHED

    # -- calls ------------------------------------------------------------------------------------------

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> Any:
        """The SDK's CallToolResult. Raises TimeoutError, the SDK's errors, CancelledError."""
        client = self._client
        if client is None:
            from mcp.shared.exceptions import MCPError
            from mcp_types import CONNECTION_CLOSED

            raise MCPError(code=CONNECTION_CLOSED, message="Connection closed")
        async with asyncio.timeout(timeout):
            return await client.call_tool(tool, arguments)

    # -- messages ---------------------------------------------------------------------------------------

    def _notice(self, what: str) -> str:
        """The one-line notice about this server (the box passes it on)."""
        return one_line(scrub(f"MCP server {self.name}: {what}", self.config.secrets()))

    def _start_failure(self) -> str:
        from mcp.shared.exceptions import MCPError

        leaves = _leaves(self._error) if self._error is not None else []
        status = self.take_http_status()
        if status is not None:
            return _http_status_message(status, self.config)
        for exc in leaves:
            if isinstance(exc, FileNotFoundError) and self.config.transport is McpTransport.STDIO:
                return f"cannot start {self.config.command[0]!r}: no such program (check command)"
            if isinstance(exc, PermissionError) and self.config.transport is McpTransport.STDIO:
                return f"cannot start {self.config.command[0]!r}: not allowed to run it"
        for exc in leaves:
            if isinstance(exc, MCPError):
                last = self._stderr_tail()
                said = f" (its last words: {last})" if last else ""
                if self.config.transport is McpTransport.STDIO:
                    return f"the server exited while starting{said}"
                return f"the connection closed while starting ({exc.error.message})"
        http = _http_failure(leaves, self.config)
        if http is not None:
            return http
        if leaves:
            exc = leaves[0]
            return f"could not start ({type(exc).__name__}: {exc})"
        return "could not start"

    def trim_stderr(self) -> None:
        """Start the stderr file over once it is large: only its last lines are ever read."""
        if self._errlog is None:
            return
        with suppress(OSError, ValueError):
            if os.fstat(self._errlog.fileno()).st_size > STDERR_KEEP:
                # The server writes through the same open file, so it carries on at the new start.
                self._errlog.seek(0)
                self._errlog.truncate(0)

    def _stderr_tail(self) -> str:
        if self._errlog is None:
            return ""
        try:
            self._errlog.flush()
            self._errlog.seek(0)
            lines = [line.strip() for line in self._errlog.read()[-4000:].splitlines() if line.strip()]
        except (OSError, ValueError):
            return ""
        return lines[-1] if lines else ""


def _http_status_message(status: int, config: McpServerConfig) -> str:
    from urllib.parse import urlsplit

    hint = " (check headers in its [mcp] table)" if status in (401, 403) else ""
    return f"{urlsplit(config.url).hostname or 'the server'} answered HTTP {status}{hint}"


def _http_failure(leaves: list[BaseException], config: McpServerConfig) -> str | None:
    """A message for the HTTP client's own errors (connect refused, a status like 401), else None."""
    try:
        import httpx2
    except ImportError:  # pragma: no cover - comes with mcp
        return None
    from urllib.parse import urlsplit

    where = urlsplit(config.url).hostname or "the server"
    for exc in leaves:
        if isinstance(exc, httpx2.HTTPStatusError):
            return _http_status_message(exc.response.status_code, config)
        if isinstance(exc, httpx2.ConnectError):
            return f"cannot connect to {where}"
        if isinstance(exc, httpx2.TimeoutException):
            return f"{where} did not answer in time"
        if isinstance(exc, httpx2.HTTPError):
            return f"cannot talk to {where} ({type(exc).__name__})"
    return None


async def _list_tools(client: Any) -> list[Any]:
    tools: list[Any] = []
    cursor = None
    for _ in range(100):  # a server whose pages never end cannot hang the start
        result = await client.list_tools(cursor=cursor)
        tools.extend(result.tools)
        cursor = result.next_cursor
        if not cursor:
            break
    return tools


# -- the box ---------------------------------------------------------------------------------------


@dataclass
class ToolBox:
    """The MCP servers a session uses and the tools they offer, namespaced ``server__tool``.

    Use as ``async with ToolBox(servers, settings) as box:`` (or `start` / `close`).
    The tool list is fixed when the box starts, so every request of a session sends
    the same ``tools`` array (which keeps the host's prompt cache warm).
    """

    servers: list[McpServerConfig]
    settings: ToolSettings = field(default_factory=ToolSettings)
    on_notice: NoticeHandler | None = None
    """Called with each one-line notice as it happens (also kept in `notices`)."""

    notices: list[str] = field(default_factory=list, init=False)
    _connections: dict[str, _Connection] = field(default_factory=dict, init=False, repr=False)
    _specs: dict[str, ToolSpec] = field(default_factory=dict, init=False, repr=False)
    _started: bool = field(default=False, init=False, repr=False)

    @classmethod
    def from_config(cls, config: Config, names: Iterable[str] | None = None, **kwargs: Any) -> ToolBox:
        """A box for the config's enabled [mcp] servers (only `names`, when given)."""
        servers = config.mcp_servers()
        wanted = list(servers) if names is None else [n for n in names if n in servers]
        return cls([servers[n] for n in wanted if servers[n].enabled], config.tool_settings(), **kwargs)

    # -- life cycle ---------------------------------------------------------------------------------------

    async def __aenter__(self) -> ToolBox:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> list[str]:
        """Start every enabled server at once and list their tools; returns this start's notices."""
        if self._started:
            return []
        self._started = True
        enabled = [s for s in self.servers if s.enabled]
        if not enabled:
            return []
        _silence_sdk_logging()
        for server in enabled:
            self._connections[server.name] = _Connection(server)
        results = await asyncio.gather(*(c.start() for c in self._connections.values()))
        notices = [self._notify(n) for n in results if n is not None]
        taken: set[str] = set()
        for connection in self._connections.values():
            for tool in connection.tools:
                name = function_name(connection.name, tool.name, taken)
                taken.add(name)
                self._specs[name] = ToolSpec(
                    name=name,
                    server=connection.name,
                    tool=tool.name,
                    description=tool.description or tool.title or "",
                    parameters=_object_schema(tool.input_schema),
                    trusted=connection.config.trusts(tool.name),
                )
        return notices

    async def close(self) -> None:
        """Stop every server (subprocesses included), even when the calling task is being cancelled."""
        connections = list(self._connections.values())
        if not connections:
            return
        stopping = asyncio.ensure_future(asyncio.gather(*(c.stop() for c in connections), return_exceptions=True))
        try:
            await asyncio.shield(stopping)
        except asyncio.CancelledError:
            # Cancelled again while closing: the shielded stop carries on by itself; wait for it once more.
            with suppress(asyncio.CancelledError):
                await asyncio.wait({stopping}, timeout=STOP_TIMEOUT * 2)
            raise

    # -- tools ------------------------------------------------------------------------------------------------

    @property
    def tools(self) -> list[ToolSpec]:
        return list(self._specs.values())

    def chat_tools(self) -> list[dict[str, Any]]:
        """The chat-completions ``tools`` array ([] when no server offers any)."""
        return [spec.to_chat_tool() for spec in self._specs.values()]

    def spec(self, name: str) -> ToolSpec | None:
        """The tool a call names: its function name, or its bare name on a server when only one server has it
        (models now and then drop the ``server__`` part)."""
        spec = self._specs.get(name)
        if spec is None:
            bare = [s for s in self._specs.values() if s.tool == name]
            spec = bare[0] if len(bare) == 1 else None
        return spec

    def needs_approval(self, name: str) -> bool:
        """Whether the user must allow a call of `name` first (unknown names too: they never run)."""
        spec = self.spec(name)
        return spec is None or not spec.trusted

    def status(self) -> dict[str, ServerState]:
        return {name: c.state for name, c in self._connections.items()}

    # -- calls ------------------------------------------------------------------------------------------------

    async def call(self, name: str, arguments: str | Mapping[str, Any] | None) -> ToolResult:
        """Run one tool call; always a result (never an exception), except for cancellation.

        Args:
            name: the function name the model used.
            arguments: the arguments as the model sent them (a JSON object string), or already parsed.
        """
        started = time.monotonic()
        spec = self.spec(name)
        if spec is None:
            return self._failed(name, None, None, f"there is no tool named {name!r}", started, notice=False)
        parsed = _parse_arguments(arguments)
        if isinstance(parsed, str):
            return self._failed(name, spec.server, spec.tool, parsed, started, notice=False)
        spec = replace(spec, name=name)  # results carry the name the model used (Ollama replays it)
        connection = self._connections[spec.server]
        secrets = connection.config.secrets()
        notice = await connection.ensure_running()
        if notice is not None:
            return self._failed(name, spec.server, spec.tool, "the tool server is not running", started, notice=notice)
        timeout = connection.config.timeout or self.settings.call_timeout
        connection.trim_stderr()
        try:
            result = await connection.call(spec.tool, parsed, timeout)
        except TimeoutError:
            line = self._notify(f"MCP server {spec.server}: {spec.tool} did not answer within {timeout:g} s; call abandoned", secrets)
            text = f"Error: the tool did not answer within {timeout:g} seconds; the call was abandoned."
            return ToolResult(name, CallStatus.TIMEOUT, text, text, spec.server, spec.tool, line, time.monotonic() - started)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure becomes a result the model can read
            return await self._call_failure(spec, connection, exc, started)
        return self._result(spec, result, secrets, started)

    def _result(self, spec: ToolSpec, result: Any, secrets: list[str], started: float) -> ToolResult:
        text = scrub(content_text(result.content or [], result.structured_content), secrets)
        status = CallStatus.TOOL_ERROR if result.is_error else CallStatus.OK
        notice = None
        if result.is_error:
            notice = self._notify(f"MCP server {spec.server}: {spec.tool} reported an error: {text}", secrets)
        return ToolResult(
            name=spec.name,
            status=status,
            text=text,
            for_model=for_model(text, self.settings.max_result_chars),
            server=spec.server,
            tool=spec.tool,
            notice=notice,
            duration=time.monotonic() - started,
        )

    async def _call_failure(self, spec: ToolSpec, connection: _Connection, exc: BaseException, started: float) -> ToolResult:
        from mcp.shared.exceptions import MCPError
        from mcp_types import CONNECTION_CLOSED

        leaves = _leaves(exc)
        status = connection.take_http_status()
        if status is not None:
            why = _http_status_message(status, connection.config)
            return self._failed(spec.name, spec.server, spec.tool, f"the tool server {why}", started,
                                notice=f"MCP server {spec.server}: {spec.tool} failed: {why}",
                                secrets=connection.config.secrets())
        mcp_errors = [e for e in leaves if isinstance(e, MCPError)]
        closed = any(e.code == CONNECTION_CLOSED for e in mcp_errors) or _http_failure(leaves, connection.config) is not None
        if closed:
            await connection.crashed()
            what = f"the server stopped during the call to {spec.tool}; it will be started again for the next call"
            return self._failed(spec.name, spec.server, spec.tool, "the tool server stopped during the call", started,
                                notice=f"MCP server {spec.server}: {what}", secrets=connection.config.secrets())
        if mcp_errors:
            # The server refused the call (unknown tool, invalid arguments...): its words, for the model and the user.
            message = mcp_errors[0].error.message
            return self._failed(spec.name, spec.server, spec.tool, message, started,
                                notice=f"MCP server {spec.server}: {spec.tool} failed: {message}",
                                secrets=connection.config.secrets())
        first = leaves[0]
        message = f"{type(first).__name__}: {first}"
        return self._failed(spec.name, spec.server, spec.tool, message, started,
                            notice=f"MCP server {spec.server}: {spec.tool} failed ({message})",
                            secrets=connection.config.secrets())

    def _failed(
        self,
        name: str,
        server: str | None,
        tool: str | None,
        why: str,
        started: float,
        *,
        notice: str | bool | None = None,
        secrets: list[str] | None = None,
    ) -> ToolResult:
        secrets = secrets or []
        text = scrub(f"Error: {why}", secrets)
        line: str | None = None
        if isinstance(notice, str):
            line = self._notify(notice, secrets)
        return ToolResult(name, CallStatus.FAILED, text, for_model(text, self.settings.max_result_chars), server, tool,
                          line, time.monotonic() - started)

    def _notify(self, line: str, secrets: list[str] | None = None) -> str:
        line = one_line(scrub(line, secrets or []))
        self.notices.append(line)
        if self.on_notice is not None:
            self.on_notice(line)
        return line


def _object_schema(schema: Any) -> dict[str, Any]:
    """The tool's input schema, as an object schema even when the server gave none."""
    if isinstance(schema, dict) and schema.get("type") == "object":
        return schema
    if isinstance(schema, dict) and "properties" in schema:
        return {"type": "object", **schema}
    return {"type": "object", "properties": {}}


def _parse_arguments(arguments: str | Mapping[str, Any] | None) -> dict[str, Any] | str:
    """The arguments as a dict, or the reason they cannot be used (told to the model so it can retry)."""
    if arguments is None:
        return {}
    if isinstance(arguments, Mapping):
        return dict(arguments)
    if not arguments.strip():
        return {}  # models call argument-less tools with "" as often as with "{}"
    try:
        value = json.loads(arguments)
    except ValueError as exc:
        return f"the arguments are not valid JSON ({exc.msg} at character {exc.pos}); send a JSON object"
    if not isinstance(value, dict):
        return f"the arguments must be a JSON object, not {type(value).__name__}"
    return value
