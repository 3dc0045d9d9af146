"""The steps of a tool turn, one collapsible row each: the step's reasoning, its calls and their results.

A row exists for every step that made tool calls (a plain reply has none, and
the view stays hidden). Its title says what was called and how each call
ended; unfolded, it shows that step's reasoning, each call with its arguments
and each result. Long texts are cut on screen (the store keeps them whole).

The view is told to `sync` when a step's calls are complete and when a call
ends; it reads everything from the turn itself, so a view made for a stored
turn and one that followed the stream show the same thing.
"""

from __future__ import annotations

import json

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import Collapsible, Static

from glmchat.sanitize import inert
from glmchat.session import Step, ToolCall, ToolResult, Turn

REASONING_SHOWN = 4_000
ARGUMENTS_SHOWN = 2_000
RESULT_SHOWN = 2_000
TITLE_ARGUMENTS = 40


def shorten(text: str, limit: int) -> str:
    """`text` cut to `limit` characters, saying how much more there is."""
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n… {len(text) - limit:,} more characters (complete in the store)"


def pretty_arguments(arguments: str) -> str:
    """A call's arguments indented when they are a JSON object, else as sent."""
    try:
        value = json.loads(arguments) if arguments.strip() else {}
    except ValueError:
        return arguments
    return json.dumps(value, ensure_ascii=False, indent=2)


def call_mark(result: ToolResult | None, running: bool) -> str:
    if result is None:
        return "…" if running else "stopped"
    return "✗" if result.is_error else "✓"


def step_title(number: int, step: Step, running: bool) -> Content:
    """One line: the step's number and each call with how it ended."""
    parts = []
    for i, call in enumerate(step.tool_calls):
        result = step.tool_results[i] if i < len(step.tool_results) else None
        arguments = " ".join(call.arguments.split())
        if len(arguments) > TITLE_ARGUMENTS:
            arguments = arguments[: TITLE_ARGUMENTS - 1] + "…"
        parts.append(f"{call.name} {arguments} {call_mark(result, running)}")
    if step.web_search:
        parts.append(f"web search: {len(step.web_search)} source{'s' if len(step.web_search) != 1 else ''}")
    # Content, not a string: a string title would be read as markup ("[" in arguments is common).
    return Content(inert(f"Step {number} · " + " · ".join(parts)))


def step_body(step: Step) -> Content:
    """The step unfolded: its reasoning, then each call and its result."""
    reasoning = step.reasoning + "".join(step.pending_reasoning)
    out = Content()
    if reasoning:
        out += Content.styled("Thinking\n", "bold $text-muted")
        out += Content(inert(shorten(reasoning, REASONING_SHOWN)).rstrip("\n") + "\n")
    for i, call in enumerate(step.tool_calls):
        out += _call_content(call, step.tool_results[i] if i < len(step.tool_results) else None)
    if step.web_search:
        out += Content.styled("Sources\n", "bold $accent")
        for item in step.web_search:
            title = str(item.get("title") or item.get("media") or "untitled")
            out += Content(inert(f"• {' '.join(title.split())} — {item.get('link') or ''}".rstrip(" —")) + "\n")
    return out


def _call_content(call: ToolCall, result: ToolResult | None) -> Content:
    out = Content.styled(f"→ {inert(call.name)}\n", "bold $accent")
    out += Content(inert(shorten(pretty_arguments(call.arguments), ARGUMENTS_SHOWN)) + "\n")
    if result is None:
        return out + Content.styled("(no result)\n", "italic $text-muted")
    style = "bold $error" if result.is_error else "bold $success"
    out += Content.styled("← error\n" if result.is_error else "← result\n", style)
    return out + Content(inert(shorten(result.content, RESULT_SHOWN)).rstrip("\n") + "\n")


def shows(step: Step) -> bool:
    """Whether a step gets a row: it called tools, or the host searched the web for it."""
    return bool(step.tool_calls or step.web_search)


class StepRow(Collapsible):
    """One step of a tool turn (folded by default)."""

    def __init__(self, number: int, step: Step, running: bool) -> None:
        self.number = number
        self.body = Static(step_body(step), classes="step-body", markup=False)
        super().__init__(self.body, title=step_title(number, step, running), collapsed=True, classes="step")  # type: ignore[arg-type]

    def show(self, step: Step, running: bool) -> None:
        self.title = step_title(self.number, step, running)  # type: ignore[assignment]
        self.body.update(step_body(step))


class StepsView(Vertical):
    """The rows of a turn's tool-calling steps, under its reasoning."""

    DEFAULT_CSS = """
    StepsView {
        height: auto;
        margin: 0 0 1 0;
    }
    StepsView > StepRow {
        border: none;
        padding: 0;
        margin: 0;
        background: transparent;
    }
    StepsView > StepRow > Contents {
        padding: 0 0 0 3;
    }
    StepsView .step-body {
        color: $text;
    }
    """

    def __init__(self, turn: Turn, *, live: bool = False) -> None:
        super().__init__(classes="steps")
        self.turn = turn
        self.live = live
        self.display = self._count() > 0

    def _count(self) -> int:
        return sum(1 for step in self.turn.steps if shows(step))

    def compose(self) -> ComposeResult:
        for number, step in enumerate(self.turn.steps, start=1):
            if shows(step):
                yield StepRow(number, step, self.live and len(step.tool_results) < len(step.tool_calls))

    def sync(self, *, live: bool | None = None) -> None:
        """Show the turn's steps as they are now (new rows mounted, the others updated)."""
        if live is not None:
            self.live = live
        rows = list(self.query_children(StepRow))
        shown = 0
        for number, step in enumerate(self.turn.steps, start=1):
            if not shows(step):
                continue
            running = self.live and len(step.tool_results) < len(step.tool_calls)
            if shown < len(rows):
                rows[shown].show(step, running)
            elif self.is_attached:
                self.mount(StepRow(number, step, running))
            shown += 1
        self.display = shown > 0
