"""The bridge between a turn's step loop and the MCP tool box: approval, then the call, then the stored result.

`McpToolRunner` is the `ToolRunner` that `run_turn` takes. For each call of a
step, in call order, it asks the front end for approval (unless the tool is
trusted or was allowed "always" earlier in this run), runs the call on the
`ToolBox`, tells the front end what happened, and gives back the result to
store with the step: the complete text, and how much of it the model is sent
(`sent_limit`), so that a replay sends exactly the same bytes even after the
limit changed in the config.

Calls of one step run one after the other: approval is asked one call at a
time, and the results stay in call order (the wire wants them so).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

from glmchat.session import Step, ToolCall
from glmchat.session import ToolResult as StoredResult
from glmchat.tools.results import CallStatus
from glmchat.tools.results import ToolResult as CallResult

if TYPE_CHECKING:
    from glmchat.tools.toolbox import ToolBox, ToolSpec


class Approval(StrEnum):
    """The user's answer to "run this call?"."""

    ONCE = "once"
    """Run this call."""
    ALWAYS = "always"
    """Run this call and every later call of the same tool in this run, without asking."""
    DENY = "deny"
    """Do not run it; the model is told the user declined."""


Approver = Callable[["ToolCall", "ToolSpec | None"], Awaitable[Approval]]
"""Asks the user about one call (the spec is None for a tool no server offers)."""


@dataclass(frozen=True)
class CallEvent:
    """A call about to run (`result` None) or done (`result` set), for the front end to show."""

    step: Step
    """The step that made the call."""
    call: ToolCall
    result: CallResult | None = None


CallListener = Callable[[CallEvent], None]


def deny_all(call: ToolCall, spec: ToolSpec | None) -> Awaitable[Approval]:  # noqa: ARG001 - the Approver shape
    """The approver of a run that cannot ask anybody (no terminal): every untrusted call is declined."""

    async def no() -> Approval:
        return Approval.DENY

    return no()


def allow_all(call: ToolCall, spec: ToolSpec | None) -> Awaitable[Approval]:  # noqa: ARG001 - the Approver shape
    """The approver of `--yes`: every call runs."""

    async def yes() -> Approval:
        return Approval.ONCE

    return yes()


@dataclass
class McpToolRunner:
    """Answers a step's tool calls with the tools of a started `ToolBox` (a `turn_runner.ToolRunner`).

    Args:
        box: The started tool box.
        approve: Asked before each call of a tool that is not trusted.
        on_call: Told when a call starts and when it ended (its result and notice).
        max_steps: Steps a turn may take; default the box's ``[tools] max_steps``.
    """

    box: ToolBox
    approve: Approver = deny_all
    on_call: CallListener | None = None
    max_steps: int = 0
    always: set[str] = field(default_factory=set)
    """Tools the user allowed "always" during this run (by the function name the model uses)."""

    def __post_init__(self) -> None:
        if self.max_steps <= 0:
            self.max_steps = self.box.settings.max_steps

    @property
    def specs(self) -> list[dict[str, object]]:
        return self.box.chat_tools()  # type: ignore[return-value]

    async def run(self, step: Step) -> list[StoredResult]:
        """One stored result per call of `step`, in call order (a failed or denied call is a result too)."""
        results: list[StoredResult] = []
        for call in step.tool_calls:
            outcome = await self._one(step, call)
            results.append(
                StoredResult(
                    call_id=call.id,
                    name=call.name,
                    content=outcome.text,
                    is_error=outcome.status is not CallStatus.OK,
                    sent_limit=self.box.settings.max_result_chars,
                )
            )
        return results

    async def _one(self, step: Step, call: ToolCall) -> CallResult:
        if self.on_call is not None:
            self.on_call(CallEvent(step, call))
        spec = self.box.spec(call.name)
        if spec is not None and self.box.needs_approval(call.name) and call.name not in self.always:
            answer = await self.approve(call, spec)
            if answer is Approval.ALWAYS:
                self.always.add(call.name)
            elif answer is not Approval.ONCE:
                result = CallResult.denied(call.name, spec.server, spec.tool)
                self._done(step, call, result)
                return result
        # An unknown tool never reaches a server: the box answers it with an error the model can read.
        result = await self.box.call(call.name, call.arguments)
        self._done(step, call, result)
        return result

    def _done(self, step: Step, call: ToolCall, result: CallResult) -> None:
        if self.on_call is not None:
            self.on_call(CallEvent(step, call, result))
