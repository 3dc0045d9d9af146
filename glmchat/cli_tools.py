"""Tool calls in `glmchat ask`: who approves them, and the one line each call leaves on stderr.

Kept out of cli.py so that `ask` without `--mcp` never loads it.

Approval: `--yes` runs every call; on a terminal (stdin and stderr both) each
call of a tool that is not trusted is asked about on stderr; with no terminal
to ask on, such calls are declined (the model reads that the user declined)
and a warning says so once.
"""

from __future__ import annotations

import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

from glmchat.tools.results import CallStatus, format_size, one_line
from glmchat.tools.runner import Approval, Approver, CallEvent, allow_all, deny_all

if TYPE_CHECKING:
    from glmchat.session import ToolCall
    from glmchat.tools.toolbox import ToolSpec

ARGUMENTS_SHOWN = 160
"""Characters of a call's arguments shown in its line (the stored call is complete)."""

RESULT_SHOWN = 80

_ANSWERS = {"y": Approval.ONCE, "yes": Approval.ONCE, "a": Approval.ALWAYS, "always": Approval.ALWAYS}


def approver(yes: bool, printer: Any, ctx: Any) -> Approver:
    """The approver for this run of `ask` (see the module's note)."""
    if yes:
        return allow_all
    if not (_isatty(sys.stdin) and _isatty(sys.stderr)):
        ctx.err("warning: no terminal to ask on: tool calls are declined unless trusted (use --yes to allow them)")
        return deny_all

    async def ask(call: ToolCall, spec: ToolSpec | None) -> Approval:  # noqa: ARG001 - the Approver shape
        printer.line(f"tool call: {describe(call)}")
        _prompt("allow it? [y]es / [a]lways for this tool / [N]o: ")
        line = await _read_line(sys.stdin.fileno())
        return _ANSWERS.get(line.strip().lower(), Approval.DENY)

    return ask


def describe(call: ToolCall) -> str:
    """The call in one line: its name and its arguments (shortened), safe to print on a terminal."""
    from glmchat.sanitize import inert

    return inert(one_line(f"{call.name} {call.arguments or '{}'}", ARGUMENTS_SHOWN))


def call_line(event: CallEvent) -> str:
    """The line a finished call leaves: what was called, how it ended, what came back."""
    result = event.result
    assert result is not None
    from glmchat.sanitize import inert

    head = f"tool {describe(event.call)}"
    if result.status is CallStatus.DENIED:
        return f"{head} → declined"
    if result.status is CallStatus.OK:
        size = format_size(len(result.text.encode("utf-8")))
        return f"{head} → {inert(one_line(result.text, RESULT_SHOWN))} ({size}, {result.duration:.1f} s)"
    return f"{head} → {inert(one_line(result.text, RESULT_SHOWN))}"


def _prompt(text: str) -> None:
    try:
        sys.stderr.write("glmchat: " + text)
        sys.stderr.flush()
    except (OSError, ValueError):
        pass


async def _read_line(fd: int) -> str:
    """One line from a terminal without blocking the loop (Ctrl+C and signals still stop the turn)."""
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[str] = loop.create_future()

    def ready() -> None:
        if answer.done():
            return
        try:
            data = os.read(fd, 4096)
        except OSError:
            data = b""
        answer.set_result(data.decode("utf-8", "replace"))  # b"" (end of input) declines

    loop.add_reader(fd, ready)
    try:
        return await answer
    finally:
        loop.remove_reader(fd)


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
