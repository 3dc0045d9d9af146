"""The stdio transport: an MCP server as a subprocess, newline-delimited JSON-RPC on its pipes.

The SDK has one (`mcp.client.stdio.stdio_client`), but it re-joins its whole
line buffer for every 64 kB read, so a single large message costs quadratic
time: a 10 MB tool result took about 15 s. This one keeps the pending bytes in
one buffer and only scans what arrived, so a 10 MB result is read in a fraction
of a second. Shutdown follows the MCP spec: close the server's stdin, give it a
moment to exit, then SIGTERM and SIGKILL its whole process group (it runs in a
session of its own, so its children go too), shielded from cancellation so a
cancelled caller cannot leave a server behind.

POSIX only; on Windows the SDK's transport is used instead (see toolbox.py).
"""

from __future__ import annotations

import os
import signal
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from typing import Any, TextIO

import anyio
import anyio.lowlevel

EXIT_GRACE = 2.0
"""Seconds the server gets to exit by itself once its stdin is closed."""
TERM_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL."""
READ_SIZE = 1 << 20


@asynccontextmanager
async def stdio_transport(
    command: Sequence[str],
    env: dict[str, str] | None,
    cwd: str | None,
    errlog: TextIO,
    on_closed: Callable[[], None] | None = None,
) -> AsyncIterator[tuple[Any, Any]]:
    """Start `command` and yield the (read, write) streams the SDK's `Client` takes as a transport.

    `on_closed` is called once the server's output ends (it exited or closed stdout), so an idle
    server that died is noticed before the next call is sent to it.

    Raises:
        OSError: the program could not be started (not found, not executable, bad cwd).
    """
    import mcp_types
    from mcp.client.stdio import get_default_environment
    from mcp.shared.message import SessionMessage

    process = await anyio.open_process(
        list(command),
        env=get_default_environment() | (env or {}),
        stderr=errlog,
        cwd=cwd,
        start_new_session=True,
    )
    # From here on nothing may be awaited before the task group is entered, or a
    # cancellation landing in between would leave the process running.
    read_writer, read_stream = anyio.create_memory_object_stream[Any](0)
    write_stream, write_reader = anyio.create_memory_object_stream[Any](0)

    async def read_messages() -> None:
        assert process.stdout is not None
        buffer = bytearray()
        async with read_writer:
            try:
                while True:
                    try:
                        chunk = await process.stdout.receive(READ_SIZE)
                    except (anyio.EndOfStream, anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
                        if on_closed is not None:
                            on_closed()
                        return
                    scan_from = len(buffer)
                    buffer += chunk
                    start = 0
                    while (end := buffer.find(b"\n", scan_from)) != -1:
                        line = bytes(buffer[start:end])
                        start = scan_from = end + 1
                        if line.strip():
                            await read_writer.send(_parse(line, mcp_types, SessionMessage))
                    if start:
                        del buffer[:start]
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return  # the session is gone

    async def write_messages() -> None:
        assert process.stdin is not None
        try:
            async with write_reader:
                async for message in write_reader:
                    data = message.message.model_dump_json(by_alias=True, exclude_unset=True) + "\n"
                    await process.stdin.send(data.encode("utf-8"))
        except (anyio.ClosedResourceError, anyio.BrokenResourceError, OSError):
            # The server stopped reading: end the session's view of the connection too.
            await read_writer.aclose()

    async with anyio.create_task_group() as tg:
        tg.start_soon(read_messages)
        tg.start_soon(write_messages)
        try:
            yield read_stream, write_stream
        finally:
            with anyio.CancelScope(shield=True):
                await _shut_down(process)
                for stream in (read_stream, write_stream, read_writer, write_reader):
                    await stream.aclose()
            tg.cancel_scope.cancel()


def _parse(line: bytes, mcp_types: Any, session_message: Any) -> Any:
    """One JSON-RPC message, or the error as a value (the SDK's session reports it)."""
    try:
        return session_message(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:
        return exc


async def _shut_down(process: Any) -> None:
    """Close stdin, wait a little, then stop the whole process group; never waits unbounded."""
    with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdin.aclose()
    if await _exited(process, EXIT_GRACE):
        _signal_group(process.pid, signal.SIGKILL)  # children it left behind, if any
        return
    _signal_group(process.pid, signal.SIGTERM)
    if not await _exited(process, TERM_GRACE):
        _signal_group(process.pid, signal.SIGKILL)
        await _exited(process, TERM_GRACE)
    with suppress(OSError, anyio.BrokenResourceError, anyio.ClosedResourceError):
        await process.stdout.aclose()


def _signal_group(pgid: int, sig: int) -> None:
    # The server leads its own session, so its pid is its process group's id.
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


async def _exited(process: Any, timeout: float) -> bool:
    # Polling returncode, not process.wait(): wait() also waits for the pipes to
    # close, which a child that inherited them can hold open after the server died.
    with anyio.move_on_after(timeout):
        while process.returncode is None:
            await anyio.sleep(0.01)
        return True
    return False
