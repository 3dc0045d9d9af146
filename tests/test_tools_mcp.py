"""The ToolBox against the loopback MCP server (tests/mcp_server.py), over stdio and streamable HTTP.

Every test stops what it started: the box closes its servers, the HTTP server
fixture kills its process; `assert_gone` checks that no server process outlives
its test.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from glmchat.config import McpServerConfig, ToolSettings, parse_mcp_servers
from glmchat.tools import CallStatus, ServerState, ToolBox
from tests.mcp_server import HttpMcpServer, StdioMcpServer, big_text, http_server, read_call_log

TOKEN = "mcp-secret-5d1c8e0f2a7b4c93a6e1f0d2c4b6a8e0"
UNICODE = "naïve café — 漢字かな 🚀👍🏽 \u200b\u202e rtl \t tab\r\nline\\ \"quote\" end"


def servers(tables: dict[str, dict[str, Any]]) -> list[McpServerConfig]:
    parsed, warnings = parse_mcp_servers(tables)
    assert warnings == []
    return list(parsed.values())


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def assert_gone(pid: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while alive(pid):
        assert time.monotonic() < deadline, f"server process {pid} is still running"
        time.sleep(0.05)


async def wait_for_calls(log: Path, tool: str, count: int = 1, timeout: float = 30.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        calls = [c for c in read_call_log(log) if c["tool"] == tool]
        if len(calls) >= count:
            return calls
        assert time.monotonic() < deadline, f"{tool} never reached the server"
        await asyncio.sleep(0.02)


@pytest.fixture(params=["stdio", "http"])
def transport(request: pytest.FixtureRequest, tmp_path: Path):
    """One test per transport: the [mcp] table for the server and the log its calls go to."""
    if request.param == "stdio":
        server = StdioMcpServer(call_log=tmp_path / "calls.jsonl")
        yield {"command": server.command}, server.call_log
    else:
        with http_server(tmp_path) as http:
            yield {"url": http.url}, http.call_log


@asynccontextmanager
async def box_for(table: dict[str, Any], settings: ToolSettings | None = None, name: str = "t") -> AsyncIterator[ToolBox]:
    notices: list[str] = []
    box = ToolBox(servers({name: table}), settings or ToolSettings(), on_notice=notices.append)
    try:
        await box.start()
        yield box
    finally:
        await box.close()
    assert box.notices == notices  # every notice reached the handler, once


# -- tools ------------------------------------------------------------------------------------------------


async def test_tools_are_namespaced_and_offered_as_chat_functions(transport) -> None:
    table, _ = transport
    async with box_for({**table, "trusted": ["echo", "add"]}, name="kit") as box:
        assert box.status() == {"kit": ServerState.READY}
        names = [t.name for t in box.tools]
        assert names[:3] == ["kit__add", "kit__echo", "kit__read_note"]
        assert {"kit__crash", "kit__hang", "kit__big", "kit__fail", "kit__slow"} <= set(names)
        add = next(t for t in box.chat_tools() if t["function"]["name"] == "kit__add")
        assert add["type"] == "function"
        assert add["function"]["description"] == "Add two numbers."
        params = add["function"]["parameters"]
        assert params["type"] == "object" and params["required"] == ["a", "b"]
        assert params["properties"]["a"]["type"] == "number"
        assert not box.needs_approval("kit__echo") and box.needs_approval("kit__read_note")
        assert box.needs_approval("kit__nothing")  # unknown names never run unasked


async def test_results_come_back_exact(transport) -> None:
    table, log = transport
    async with box_for(table) as box:
        echo = await box.call("t__echo", {"text": UNICODE})
        assert echo.status is CallStatus.OK and echo.text == UNICODE and echo.for_model == UNICODE
        assert echo.notice is None and not echo.is_error and echo.server == "t" and echo.tool == "echo"
        add = await box.call("t__add", '{"a": 2, "b": 0.5}')
        assert add.text == "2.5"
        note = await box.call("t__read_note", '{"name": "unicode"}')
        assert note.text == "naïve café 漢字 🚀 \u200b end"
        no_args = await box.call("t__cwd", "")  # an argument-less call often comes as ""
        assert no_args.status is CallStatus.OK and no_args.text
        results = await asyncio.gather(*(box.call("t__echo", {"text": str(i)}) for i in range(5)))  # parallel calls
        assert [r.text for r in results] == ["0", "1", "2", "3", "4"]
    assert [c["tool"] for c in read_call_log(log)][:4] == ["echo", "add", "read_note", "cwd"]


async def test_a_tool_error_is_a_result_and_a_notice(transport) -> None:
    table, _ = transport
    async with box_for(table) as box:
        result = await box.call("t__fail", {"message": "disk full\nsecond line"})
        assert result.status is CallStatus.TOOL_ERROR and result.is_error
        assert "disk full" in result.for_model
        assert result.notice is not None and "\n" not in result.notice and "disk full second line" in result.notice
        assert box.notices == [result.notice]
        assert (await box.call("t__echo", {"text": "still fine"})).text == "still fine"


async def test_bad_arguments_and_unknown_tools_never_reach_the_server(transport) -> None:
    table, log = transport
    async with box_for(table) as box:
        broken = await box.call("t__echo", '{"text": "unterminated')
        assert broken.status is CallStatus.FAILED and "not valid JSON" in broken.for_model
        listed = await box.call("t__echo", '["text"]')
        assert listed.status is CallStatus.FAILED and "JSON object" in listed.for_model
        unknown = await box.call("t__nope", "{}")
        assert unknown.status is CallStatus.FAILED and "no tool named 't__nope'" in unknown.for_model
        invalid = await box.call("t__add", {"a": "two", "b": 1})  # the server's schema check refuses it
        assert invalid.is_error and invalid.for_model
    assert [c["tool"] for c in read_call_log(log)] == []


async def test_a_hanging_call_times_out_and_the_server_stays_usable(transport) -> None:
    table, log = transport
    async with box_for({**table, "timeout": 1}) as box:
        started = time.monotonic()
        result = await box.call("t__hang", {})
        assert result.status is CallStatus.TIMEOUT and "did not answer within 1 seconds" in result.for_model
        assert result.notice and "hang did not answer within 1 s" in result.notice
        assert time.monotonic() - started < 30
        after = await box.call("t__echo", {"text": "after"})
        assert after.text == "after"
        assert box.status() == {"t": ServerState.READY}
    pids = {c["pid"] for c in read_call_log(log)}
    assert len(pids) == 1  # the same server answered: it was not restarted


async def test_the_global_call_timeout_applies_without_a_server_timeout(tmp_path: Path) -> None:
    table = {"command": StdioMcpServer(tmp_path / "c.jsonl").command}
    async with box_for(table, ToolSettings(call_timeout=0.5)) as box:
        result = await box.call("t__slow", {"seconds": 5})
        assert result.status is CallStatus.TIMEOUT and "0.5 s" in (result.notice or "")


async def test_cancelling_a_call_abandons_it_and_the_server_stays_usable(transport) -> None:
    table, log = transport
    async with box_for(table) as box:
        task = asyncio.create_task(box.call("t__hang", {}))
        await wait_for_calls(log, "hang")
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        after = await box.call("t__echo", {"text": "after cancel"})
        assert after.text == "after cancel" and box.notices == []
    assert len({c["pid"] for c in read_call_log(log)}) == 1


async def test_a_stdio_server_that_crashes_mid_call_is_restarted_for_the_next_call(tmp_path: Path) -> None:
    server = StdioMcpServer(tmp_path / "calls.jsonl")
    async with box_for({"command": server.command}) as box:
        crashed = await box.call("t__crash", {})
        assert crashed.status is CallStatus.FAILED and "stopped during the call" in crashed.for_model
        assert crashed.notice and "started again" in crashed.notice
        [first_pid] = {c["pid"] for c in server.calls()}
        assert_gone(first_pid)
        after = await box.call("t__echo", {"text": "back"})
        assert after.status is CallStatus.OK and after.text == "back"
        second_pid = server.calls()[-1]["pid"]
        assert second_pid != first_pid and box.status() == {"t": ServerState.READY}
    assert_gone(second_pid)


async def test_a_server_that_keeps_crashing_is_left_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from glmchat.tools import toolbox

    monkeypatch.setattr(toolbox, "MAX_RESTARTS", 1)
    server = StdioMcpServer(tmp_path / "calls.jsonl")
    async with box_for({"command": server.command}) as box:
        assert (await box.call("t__crash", {})).status is CallStatus.FAILED
        assert (await box.call("t__crash", {})).status is CallStatus.FAILED  # restarted once, crashed again
        gave_up = await box.call("t__echo", {"text": "x"})
        assert gave_up.status is CallStatus.FAILED and "not running" in (gave_up.notice or "")
    assert [c["tool"] for c in server.calls()] == ["crash", "crash"]


async def test_an_http_server_that_dies_mid_call_gives_a_result_not_an_exception(tmp_path: Path) -> None:
    with http_server(tmp_path) as http:
        async with box_for({"url": http.url}) as box:
            crashed = await box.call("t__crash", {})
            assert crashed.status is CallStatus.FAILED and crashed.notice
            http.process.wait(timeout=10)
            after = await box.call("t__echo", {"text": "x"})  # nobody restarts a remote server: a clear failure
            assert after.status is CallStatus.FAILED and "not running" in after.for_model
            assert after.notice and "cannot connect to 127.0.0.1" in after.notice


async def test_a_10_mb_result_is_complete_for_storage_and_cut_for_the_model(transport) -> None:
    table, _ = transport
    async with box_for({**table, "timeout": 110}, ToolSettings(max_result_chars=20_000)) as box:
        result = await box.call("t__big", {"megabytes": 10})
        assert result.status is CallStatus.OK
        assert len(result.text) == 10_000_000 and result.text == big_text(10)
        assert len(result.for_model) <= 20_000 and result.truncated
        assert result.text.startswith(result.for_model.split("\n[… result truncated")[0])
        assert "10,000,000 characters in all" in result.for_model


# -- starting --------------------------------------------------------------------------------------------------


async def test_a_server_that_cannot_start_is_a_notice_and_the_others_still_work(tmp_path: Path) -> None:
    good = StdioMcpServer(tmp_path / "calls.jsonl")
    tables = {
        "missing": {"command": [str(tmp_path / "no-such-program"), "--flag"]},
        "quitter": {
            "command": [sys.executable, "-c", "import os, sys; sys.stderr.write('bad config: ' + os.environ['T'] + '\\n'); sys.exit(2)"],
            "env": {"T": TOKEN},
        },
        "good": {"command": good.command},
    }
    notices: list[str] = []
    box = ToolBox(servers(tables), on_notice=notices.append)
    try:
        started = await box.start()
        assert box.status() == {"missing": ServerState.FAILED, "quitter": ServerState.FAILED, "good": ServerState.READY}
        assert started == notices and len(notices) == 2
        missing, quitter = notices
        assert missing.startswith("MCP server missing: cannot start") and "no such program" in missing
        assert quitter.startswith("MCP server quitter: the server exited while starting") and "bad config:" in quitter
        assert TOKEN not in quitter and TOKEN[:8] not in quitter and TOKEN[-8:] not in quitter
        assert all(t.server == "good" for t in box.tools)
        assert (await box.call("good__echo", {"text": "ok"})).text == "ok"
    finally:
        await box.close()


async def test_a_slow_start_gives_up_after_start_timeout(tmp_path: Path) -> None:
    sleeper = {"command": [sys.executable, "-c", "import time; time.sleep(60)"], "start_timeout": 0.5}
    box = ToolBox(servers({"sleepy": sleeper}))
    try:
        started = time.monotonic()
        [notice] = await box.start()
        assert "did not start within 0.5 s" in notice and time.monotonic() - started < 20
        assert box.tools == [] and box.status() == {"sleepy": ServerState.FAILED}
    finally:
        await box.close()


async def test_env_and_cwd_reach_a_stdio_server_and_secrets_never_come_back(tmp_path: Path) -> None:
    server = StdioMcpServer(tmp_path / "calls.jsonl")
    work = tmp_path / "work dir"
    work.mkdir()
    table = {"command": server.command, "env": {"SHORT": "abc", "API_TOKEN": TOKEN}, "cwd": str(work)}
    async with box_for(table) as box:
        assert (await box.call("t__getenv", {"name": "SHORT"})).text == "abc"
        assert (await box.call("t__cwd", {})).text == str(work)
        secret = await box.call("t__getenv", {"name": "API_TOKEN"})
        assert secret.status is CallStatus.OK and secret.text == "…"  # the server had it; the model never sees it
        echoed = await box.call("t__echo", {"text": f"leak {TOKEN[3:20]} here"})
        assert TOKEN[3:20] not in echoed.text and echoed.text.startswith("leak ")
        assert (await box.call("t__getenv", {"name": "ZAI_API_KEY"})).text == ""  # the parent's keys are not inherited


async def test_http_headers_are_sent_and_a_wrong_token_is_a_notice_without_the_token(tmp_path: Path) -> None:
    with http_server(tmp_path, token=TOKEN) as http:
        wrong = f"Bearer wrong-{TOKEN[::-1]}"
        box = ToolBox(servers({"remote": {"url": http.url, "headers": {"Authorization": wrong}}}))
        try:
            [notice] = await box.start()
        finally:
            await box.close()
        assert "HTTP 401" in notice and "check headers" in notice
        assert TOKEN[::-1][:8] not in notice and "wrong-" not in notice

        async with box_for({"url": http.url, "headers": {"Authorization": f"Bearer {TOKEN}", "X-Trace": "t1"}}) as box:
            assert (await box.call("t__header", {"name": "x-trace"})).text == "t1"
            auth = await box.call("t__header", {"name": "authorization"})
            assert auth.status is CallStatus.OK and TOKEN not in auth.text and TOKEN[:8] not in auth.text
        assert len(http.calls()) == 2


async def test_cannot_connect_to_an_http_server_that_is_not_there() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    box = ToolBox(servers({"gone": {"url": f"http://127.0.0.1:{port}/mcp"}}))
    try:
        assert await box.start() == ["MCP server gone: cannot connect to 127.0.0.1"]
    finally:
        await box.close()


# -- stopping ------------------------------------------------------------------------------------------------------


async def test_close_stops_the_subprocess_even_when_the_task_is_cancelled_mid_call(tmp_path: Path) -> None:
    server = StdioMcpServer(tmp_path / "calls.jsonl")

    async def session() -> None:
        async with box_for({"command": server.command}) as box:
            await box.call("t__hang", {})

    task = asyncio.create_task(session())
    [call] = await wait_for_calls(server.call_log, "hang")
    assert alive(call["pid"])
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_gone(call["pid"])


async def test_a_disabled_server_is_not_started(tmp_path: Path) -> None:
    server = StdioMcpServer(tmp_path / "calls.jsonl")
    box = ToolBox(servers({"off": {"command": server.command, "enabled": False}}))
    assert await box.start() == [] and box.tools == [] and box.status() == {}
    await box.close()


def test_from_config_takes_the_enabled_servers_and_the_limits(tmp_path: Path) -> None:
    from glmchat.config import Config

    config = Config(
        mcp={"a": {"command": ["x"]}, "b": {"command": ["y"], "enabled": False}, "c": {"url": "https://h/mcp"}},
        tools={"max_result_chars": 500},
    )
    box = ToolBox.from_config(config)
    assert [s.name for s in box.servers] == ["a", "c"] and box.settings.max_result_chars == 500
    assert [s.name for s in ToolBox.from_config(config, names=["c", "b", "zzz"]).servers] == ["c"]


async def test_a_stdio_server_that_dies_between_calls_is_started_again_for_the_next(tmp_path: Path) -> None:
    import signal

    server = StdioMcpServer(tmp_path / "calls.jsonl")
    async with box_for({"command": server.command}) as box:
        assert (await box.call("t__echo", {"text": "one"})).text == "one"
        [first] = {c["pid"] for c in server.calls()}
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while box.status()["t"] is not ServerState.CRASHED:
            assert time.monotonic() < deadline, box.status()
            await asyncio.sleep(0.02)
        again = await box.call("t__echo", {"text": "two"})
        assert again.status is CallStatus.OK and again.text == "two" and box.notices == []
        assert server.calls()[-1]["pid"] != first


async def test_cancelling_a_start_stops_the_half_started_server(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    box = ToolBox(servers({"slow": {"command": [sys.executable, "-c", script], "start_timeout": 60}}))
    task = asyncio.create_task(box.start())
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert_gone(int(pid_file.read_text()))
    await box.close()


async def test_closing_during_a_restart_is_quick_and_quiet(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    script = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)"
    box = ToolBox(servers({"slow": {"command": [sys.executable, "-c", script], "start_timeout": 60}}))
    start = asyncio.create_task(box.start())
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    began = time.monotonic()
    await box.close()
    assert await start == [] and box.notices == []  # closing is not a failure to report
    assert time.monotonic() - began < 15
    assert_gone(int(pid_file.read_text()))
    after = await box.call("slow__anything", {})
    assert after.status is CallStatus.FAILED


def test_nothing_from_servers_or_the_sdk_reaches_the_terminal(tmp_path: Path) -> None:
    """The TUI draws on stdout/stderr: server stderr and SDK log lines must go elsewhere, even on crashes."""
    import subprocess

    root = Path(__file__).resolve().parent.parent
    noisy = ["sh", "-c", f"echo server-noise >&2; exec {sys.executable} {root / 'tests' / 'mcp_server.py'} --stdio"]
    code = (
        "import asyncio\n"
        "from glmchat.config import parse_mcp_servers\n"
        "from glmchat.tools import ToolBox\n"
        f"servers, _ = parse_mcp_servers({{'t': {{'command': {noisy!r}}}, 'bad': {{'command': ['/no/such/prog']}}}})\n"
        "async def main():\n"
        "    async with ToolBox(list(servers.values())) as box:\n"
        "        results = [await box.call('t__crash', {}), await box.call('t__echo', {'text': 'x'}), await box.call('t__add', '{')]\n"
        "    return [r.status.value for r in results], len(box.notices)\n"
        "statuses, notices = asyncio.run(main())\n"
        "open('result', 'w').write(repr((statuses, notices)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=str(root)))
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "result").read_text() == "(['failed', 'ok', 'failed'], 2)"
    assert proc.stdout == "" and proc.stderr == ""


async def test_a_chatty_servers_stderr_file_stays_bounded(tmp_path: Path) -> None:
    from glmchat.tools.toolbox import STDERR_KEEP

    server = StdioMcpServer(tmp_path / "calls.jsonl")
    async with box_for({"command": server.command}) as box:
        errlog = box._connections["t"]._errlog  # the file the server's stderr goes to
        assert errlog is not None
        for _ in range(4):
            assert (await box.call("t__noise", {"kilobytes": 700})).text == "done"
            assert os.fstat(errlog.fileno()).st_size <= STDERR_KEEP + 700 * 1024
        assert (await box.call("t__echo", {"text": "still talking"})).text == "still talking"


async def test_a_bare_tool_name_is_understood_when_only_one_server_has_it(tmp_path: Path) -> None:
    one, two = StdioMcpServer(tmp_path / "one.jsonl"), StdioMcpServer(tmp_path / "two.jsonl")
    async with box_for({"command": one.command, "trusted": ["echo"]}, name="a") as box:
        assert not box.needs_approval("echo")
        result = await box.call("echo", {"text": "bare"})
        assert result.text == "bare" and result.name == "echo" and result.server == "a"
    box = ToolBox(servers({"a": {"command": one.command, "trusted": ["echo"]}, "b": {"command": two.command}}))
    try:
        await box.start()
        assert box.spec("echo") is None and box.needs_approval("echo")  # two servers have echo: never guessed
        assert (await box.call("echo", {"text": "x"})).status is CallStatus.FAILED
    finally:
        await box.close()
    assert [c["tool"] for c in one.calls()] == ["echo"] and two.calls() == []
