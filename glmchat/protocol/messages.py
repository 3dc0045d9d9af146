"""What every dialect's request is made of: the turns and steps to replay, the sampling settings.

A request replays, in order, each replayable earlier turn of the session's path
(its user message, then every step: the assistant's message and one message per
tool result), then the new turn's user message and the steps of the new turn
that are already done (the earlier requests of a tool loop). Each dialect only
decides how one assistant step and one tool result are written.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from glmchat.models import ThinkingChoice

if TYPE_CHECKING:
    from glmchat.hosts import Host
    from glmchat.session import Session, Step, ToolResult, Turn

TRUNCATION_NOTE = "\n[… {omitted:,} more characters of this result were not sent]"
"""Appended to a tool result cut to its `sent_limit` (deterministic: a replay sends the same text)."""


def tool_result_text(result: ToolResult) -> str:
    """The text of a tool result as the model is sent it (the stored result is complete)."""
    limit = result.sent_limit
    if limit is None or len(result.content) <= limit:
        return result.content
    return result.content[:limit] + TRUNCATION_NOTE.format(omitted=len(result.content) - limit)


def history_for(session: Session, turn: Turn) -> list[Turn]:
    """The earlier turns the request for `turn` replays (all replayable ones if `turn` is not on the path)."""
    if any(t is turn for t in session.turns):
        return session.history(before=turn)
    return [t for t in session.turns if t.replayable]


def conversation(
    host: Host,
    session: Session,
    turn: Turn,
    *,
    assistant: Callable[[Step, bool], dict[str, Any]],
    tool: Callable[[Step, ToolResult], dict[str, Any]],
) -> list[dict[str, Any]]:
    """The messages after the system prompt: replayed turns, the new user message, its done steps.

    Args:
        host: Where the request goes (whether it can carry reasoning back at all).
        session: The session whose path is replayed (and its preserved-thinking switch).
        turn: The turn being requested (its last step is the one asked for).
        assistant: Writes one step as an assistant message; its flag says whether
            the step's reasoning goes with it.
        tool: Writes one tool result as a message.
    """
    messages: list[dict[str, Any]] = []

    def steps(steps: list[Step], reasoning: bool) -> None:
        for step in steps:
            step.sync()
            step = answered(step)
            if step is None:
                continue
            messages.append(assistant(step, reasoning))
            messages.extend(tool(step, result) for result in step.tool_results)

    replay = replays_reasoning(host, session)
    for past in history_for(session, turn):
        messages.append({"role": "user", "content": past.user_text})
        steps(past.steps, replay)
    messages.append({"role": "user", "content": turn.user_text})
    # The steps of this turn's tool loop go back with their reasoning whatever the
    # session's setting: the model reasons across the calls of one turn.
    steps(turn.steps[:-1], host.can_replay_reasoning)
    return messages


STOPPED_CALL = "Error: the user stopped the turn before this call finished; it has no result."
"""What the model reads for a call of a stopped turn that never got its result."""


def answered(step: Step) -> Step | None:
    """The step as it can go back: with a result after every call, or None when it holds nothing.

    A turn stopped while its tools ran (Esc, a signal) keeps the calls of its last
    step without (all) results. The calls go back exactly as received (the host
    compares them with what it produced) and the wire wants one result after each,
    so a missing one is said to have been stopped (the same words every time: a
    replay stays the same). A step with nothing at all that the host never
    finished (the turn was stopped before a byte of it came) is left out.
    """
    if step.finish_reason is None and not (step.reasoning or step.content or step.tool_calls or step.reasoning_details):
        return None  # never produced (an empty answer the host did finish still goes back)
    if len(step.tool_results) < len(step.tool_calls):
        from dataclasses import replace

        from glmchat.session import ToolResult

        missing = [
            ToolResult(call_id=call.id, name=call.name, content=STOPPED_CALL, is_error=True)
            for call in step.tool_calls[len(step.tool_results) :]
        ]
        step = replace(step, tool_results=[*step.tool_results, *missing])
    return step


def sampling(session: Session, temperature: str, top_p: str, max_tokens: str) -> dict[str, Any]:
    """The session's sampling settings that are set, under the dialect's names for them."""
    values = {temperature: session.temperature, top_p: session.top_p, max_tokens: session.max_tokens}
    return {name: value for name, value in values.items() if value is not None}


def model_for(host: Host, session: Session, turn: Turn) -> str:
    return turn.model or session.model or host.default_model


def turn_thinking(host: Host, session: Session, turn: Turn) -> ThinkingChoice:
    """The thinking a turn's request carries: its own switch and level, made valid for its model.

    The controller settles this when the turn starts (and stores it); doing it again
    here means a turn made any other way still never asks the model for what it
    refuses (thinking off on a model that always thinks, a level it does not have).
    """
    from glmchat.models import model_info, resolve_thinking

    try:
        info = model_info(host, model_for(host, session, turn))
    except ValueError:
        return ThinkingChoice(turn.thinking, turn.thinking_level)
    return resolve_thinking(info, turn.thinking, turn.thinking_level)


def replays_reasoning(host: Host, session: Session) -> bool:
    """Whether earlier turns' reasoning goes back to this host at all."""
    return session.preserve_thinking and host.can_replay_reasoning
