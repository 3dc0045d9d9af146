"""Tool turns in the TUI (App.run_test, the loopback GLM server, the loopback MCP server over stdio):
the session's servers from settings, the approval dialog, the step rows, Esc between steps."""

from __future__ import annotations

from pathlib import Path

from textual.widgets import SelectionList

from glmchat.session import TurnStatus
from glmchat.ui.screens.tool_approval import ToolApprovalScreen
from glmchat.ui.widgets.steps import StepRow
from tests.glm_server import GlmServer, Reply
from tests.mcp_server import read_call_log, stdio_command
from tests.test_tools_mcp import assert_gone
from tests.ui_support import SIZE, make_app, make_config, open_store, screen_text, wait_for

R1 = "I should add them first. "
R2 = "Now the note. "


def tool_config(server: GlmServer, log: Path, trusted: list[str] | None = None):
    table = {"command": stdio_command(log)}
    if trusted is not None:
        table["trusted"] = trusted
    return make_config(server, mcp={"kit": table})


def three_steps() -> list[Reply]:
    return [
        Reply(reasoning=R1, content="", tool_calls=[{"name": "kit__add", "arguments": '{"a": 2, "b": 0.5}'}]),
        Reply(reasoning=R2, content="", tool_calls=[{"name": "kit__read_note", "arguments": '{"name": "todo"}'}]),
        Reply(reasoning="Done. ", content="It is 2.5; water the plants."),
    ]


async def choose_servers(pilot, names: list[str]) -> None:
    app = pilot.app
    app.action_settings()
    await wait_for(pilot, lambda: bool(app.screen.query("#tool_servers")))
    selection = app.screen.query_one("#tool_servers", SelectionList)
    for name in names:
        selection.select(name)
    await pilot.press("ctrl+s")
    await wait_for(pilot, lambda: app.screen is app.chat)


async def test_a_tool_turn_asks_shows_each_step_and_keeps_the_choice(glm_server: GlmServer, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    app = make_app(glm_server, config=tool_config(glm_server, log))
    glm_server.enqueue(*three_steps())
    async with app.run_test(size=SIZE) as pilot:
        await choose_servers(pilot, ["kit"])
        assert app.chat.session.tool_servers == ["kit"]
        app.chat.composer.set_text("Sum and my todo?")
        await pilot.press("enter")
        # The first call: the dialog; "a" allows add for the rest of the session.
        await wait_for(pilot, lambda: isinstance(app.screen, ToolApprovalScreen), timeout=30)
        assert "kit__add" in screen_text(app) and '"a": 2' in screen_text(app)
        await pilot.press("a")
        # The second: another tool, asked again; allowed once.
        await wait_for(pilot, lambda: isinstance(app.screen, ToolApprovalScreen) and app.screen.call_name == "kit__read_note",
                       timeout=30)
        await pilot.press("y")
        await app.workers.wait_for_complete()
        await pilot.pause()
        turn = app.chat.session.turns[-1]
        assert turn.status == TurnStatus.COMPLETE, turn.error
        assert [c["tool"] for c in read_call_log(log)] == ["add", "read_note"]
        rows = list(app.chat.query(StepRow))
        assert len(rows) == 2
        text = screen_text(app)
        assert "Step 1 · kit__add" in text and "✓" in text and "Step 2 · kit__read_note" in text
        assert "It is 2.5; water the plants." in text
        # Unfolded, a row shows that step's reasoning, the call and its result.
        rows[1].collapsed = False
        await pilot.pause()
        text = screen_text(app)
        assert R2.strip() in text and '"name": "todo"' in text and "water the plants" in text and "reply to Ana" in text
        # The session remembers its servers; the steps are stored whole.
        stored = open_store().load_session(app.chat.session.id)
        assert stored.tool_servers == ["kit"]
        assert [len(s.tool_calls) for s in stored.turns[-1].steps] == [1, 1, 0]

        # Next turn: add is allowed "always" by now, so no dialog.
        glm_server.enqueue(Reply(content="", tool_calls=[{"name": "kit__add", "arguments": '{"a": 1, "b": 1}'}]),
                           Reply(content="two"))
        app.chat.composer.set_text("1+1?")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.chat.session.turns[-1].content == "two"
        assert len(read_call_log(log)) == 3
        assert all(r.replay_problems == [] for r in glm_server.chat_requests())
        # The server was started once and kept for the next turn; the app's exit stops it.
        pids = {c["pid"] for c in read_call_log(log)}
        assert len(pids) == 1
    assert_gone(pids.pop())


async def test_a_denied_call_is_told_to_the_model_and_esc_in_the_dialog_stops_the_turn(
    glm_server: GlmServer, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    app = make_app(glm_server, config=tool_config(glm_server, log))
    glm_server.enqueue(
        Reply(reasoning=R1, content="", tool_calls=[{"name": "kit__echo", "arguments": '{"text": "x"}'}]),
        Reply(reasoning=R2, content="", tool_calls=[{"name": "kit__add", "arguments": '{"a": 1, "b": 2}'}]),
        Reply(content="after"),
    )
    async with app.run_test(size=SIZE) as pilot:
        await choose_servers(pilot, ["kit"])
        app.chat.composer.set_text("q")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolApprovalScreen), timeout=30)
        await pilot.press("n")
        await wait_for(pilot, lambda: isinstance(app.screen, ToolApprovalScreen) and app.screen.call_name == "kit__add",
                       timeout=30)
        await pilot.press("escape")
        turn = app.chat.session.turns[-1]
        await wait_for(pilot, lambda: turn.status != TurnStatus.STREAMING and not app.chat.streaming, timeout=30)
        await pilot.pause()
        assert turn.status == TurnStatus.STOPPED
        assert read_call_log(log) == []  # nothing ran
        assert "declined" in turn.steps[0].tool_results[0].content
        stored = open_store().load_session(app.chat.session.id).turns[-1]
        assert [s.reasoning for s in stored.steps] == [R1, R2] and stored.status == TurnStatus.STOPPED
        assert "kit__add" in screen_text(app) and "stopped" in screen_text(app)


async def test_trusted_tools_run_without_a_dialog(glm_server: GlmServer, tmp_path: Path) -> None:
    log = tmp_path / "calls.jsonl"
    app = make_app(glm_server, config=tool_config(glm_server, log, trusted=["add"]))
    glm_server.enqueue(Reply(content="", tool_calls=[{"name": "kit__add", "arguments": '{"a": 2, "b": 2}'}]), Reply(content="4"))
    async with app.run_test(size=SIZE) as pilot:
        await choose_servers(pilot, ["kit"])
        app.chat.composer.set_text("2+2")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert app.chat.session.turns[-1].content == "4"
        assert [c["tool"] for c in read_call_log(log)] == ["add"]


async def test_a_stored_tool_turn_shows_its_steps_when_the_session_opens(glm_server: GlmServer) -> None:
    from glmchat.session import Step, ToolCall
    from glmchat.session import ToolResult as StoredResult
    from tests.ui_support import stored_session, stored_turn

    turn = stored_turn(1, content="Final [b]answer[/b].")
    big = "line\n" * 2000
    turn.steps = [
        Step(reasoning="Look it up [red]first[/red]. ", tool_calls=[ToolCall(0, "c1", "kit__read_note", '{"name": "[x]"}')],
             tool_results=[StoredResult("c1", "kit__read_note", big)], finish_reason="tool_calls"),
        Step(reasoning="", tool_calls=[ToolCall(0, "c2", "kit__fail", "{}")],
             tool_results=[StoredResult("c2", "kit__fail", "Error: no", is_error=True)], finish_reason="tool_calls"),
        Step(reasoning="Answer now. ", content="Final [b]answer[/b].", finish_reason="stop"),
    ]
    with open_store() as store:
        stored_session(store, "tools", [turn])
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.chat.query(StepRow)) == 2)
        rows = list(app.chat.query(StepRow))
        text = screen_text(app)
        # Titles are plain text: brackets in arguments are not read as markup.
        assert 'Step 1 · kit__read_note {"name": "[x]"} ✓' in text and "Step 2 · kit__fail {} ✗" in text
        rows[0].collapsed = False
        await pilot.pause()
        body = rows[0].body.render().plain
        assert body.startswith("Thinking\nLook it up [red]first[/red].")  # as written, not markup
        assert '"name": "[x]"' in body and "more characters (complete in the store)" in body


async def test_esc_while_a_trusted_tool_runs_stops_the_turn_and_the_server_serves_the_next(
    glm_server: GlmServer, tmp_path: Path
) -> None:
    log = tmp_path / "calls.jsonl"
    app = make_app(glm_server, config=tool_config(glm_server, log, trusted=["hang", "add"]))
    glm_server.enqueue(
        Reply(reasoning=R1, content="", tool_calls=[{"name": "kit__add", "arguments": '{"a": 1, "b": 1}'}]),
        Reply(reasoning=R2, content="", tool_calls=[{"name": "kit__hang", "arguments": "{}"}]),
    )
    async with app.run_test(size=SIZE) as pilot:
        await choose_servers(pilot, ["kit"])
        app.chat.composer.set_text("q")
        await pilot.press("enter")
        await wait_for(pilot, lambda: [c["tool"] for c in read_call_log(log)] == ["add", "hang"], timeout=30)
        await pilot.press("escape")
        turn = app.chat.session.turns[-1]
        await wait_for(pilot, lambda: turn.status != TurnStatus.STREAMING and not app.chat.streaming, timeout=30)
        assert turn.status == TurnStatus.STOPPED
        stored = open_store().load_session(app.chat.session.id).turns[-1]
        assert [s.reasoning for s in stored.steps] == [R1, R2]
        assert stored.steps[0].tool_results[0].content == "2.0" and not stored.steps[1].tool_results
        # The next turn (the stopped one kept in the context by the user) is well-formed, and the
        # server that was kept running answers its call.
        turn.include_in_context = True
        glm_server.enqueue(Reply(content="", tool_calls=[{"name": "kit__add", "arguments": '{"a": 2, "b": 2}'}]),
                           Reply(content="four"))
        app.chat.composer.set_text("again")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat.session.turns[-1].status == TurnStatus.COMPLETE, timeout=30)
        assert app.chat.session.turns[-1].steps[0].tool_results[0].content == "4.0"
        assert all(r.replay_problems == [] for r in glm_server.chat_requests())


async def test_a_turn_with_web_search_sources_shows_them_in_a_row(glm_server: GlmServer) -> None:
    from tests.ui_support import stored_session, stored_turn

    turn = stored_turn(1)
    turn.steps[0].web_search = [{"title": "Page [one]", "link": "https://example.org/1"}, {"link": "https://example.org/2"}]
    with open_store() as store:
        stored_session(store, "search", [turn])
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.chat.query(StepRow)) == 1)
        row = app.chat.query_one(StepRow)
        assert "Step 1 · web search: 2 sources" in screen_text(app)
        body = row.body.render().plain
        assert "• Page [one] — https://example.org/1" in body and "• untitled — https://example.org/2" in body


async def test_web_search_is_switched_on_in_the_session_settings(glm_server: GlmServer) -> None:
    from textual.widgets import Switch

    app = make_app(glm_server)
    glm_server.enqueue(Reply(content="searched", web_search=[{"title": "T", "link": "https://example.org"}]))
    async with app.run_test(size=SIZE) as pilot:
        app.action_settings()
        await wait_for(pilot, lambda: bool(app.screen.query("#web_search")))
        app.screen.query_one("#web_search", Switch).value = True
        await pilot.press("ctrl+s")
        await wait_for(pilot, lambda: app.screen is app.chat)
        assert app.chat.session.web_search is True
        app.chat.composer.set_text("find it")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        assert glm_server.last.json["tools"][0]["type"] == "web_search"
        assert app.chat.session.turns[-1].steps[0].web_search == [{"title": "T", "link": "https://example.org"}]
        assert "web search: 1 source" in screen_text(app)
        assert open_store().load_session(app.chat.session.id).web_search is True
