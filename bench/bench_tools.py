"""Tool turns (issue 11): client overhead per step of a tool loop, and what MCP costs `ask` at start.

    python bench/bench_tools.py [--runs 5] [--steps 10] [--json out.json]

1. A turn of `--steps` steps (each but the last calls the loopback MCP server's
   instant `add` tool; the last answers), in this process, through `run_turn`,
   the `McpToolRunner` and a real store, against the loopback GLM server in its
   own process. Per step: wall time of the turn minus the time the server spent
   answering (request read -> last chunk handed to the socket; one monotonic
   clock for both processes), split into the MCP round trip of the call and the
   rest (request building with the whole history replayed, parsing, store
   writes, the event loop). The tool server is started before the clock runs.
2. `glmchat ask` end to end (a fresh process per run, median of `--runs`) with
   `--mcp kit --yes` against the same ask without it, the reply a plain answer:
   the difference is importing the `mcp` SDK, starting the stdio server and
   listing its tools, and stopping it at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import ROOT, Report, Server, child_env, make_home, median  # noqa: E402


def add_call(i: int) -> dict[str, str]:
    return {"name": "kit__add", "arguments": json.dumps({"a": i, "b": 1})}


async def loop_once(server: Server, steps: int, home: Path) -> dict[str, float]:
    from glmchat.client import GlmClient
    from glmchat.config import ToolSettings, parse_mcp_servers
    from glmchat.hosts import BUILTIN_HOSTS
    from glmchat.session import Session, TurnStatus
    from glmchat.store import Store
    from glmchat.tools import ToolBox
    from glmchat.tools.runner import CallEvent, McpToolRunner, allow_all
    from glmchat.turn_runner import run_turn
    from tests.mcp_server import stdio_command
    import dataclasses

    host = dataclasses.replace(BUILTIN_HOSTS["zai"], base_url=f"{server.url}/zai")
    server.reset()
    replies = [{"reasoning": f"Step {i}: add one more. ", "content": "", "tool_calls": [add_call(i)], "unthrottled": True}
               for i in range(steps - 1)]
    replies.append({"reasoning": "Done. ", "content": "All added.", "unthrottled": True})
    server.enqueue(*replies)
    servers, _ = parse_mcp_servers({"kit": {"command": stdio_command(), "trusted": True}})
    call_time = 0.0

    def on_call(event: CallEvent) -> None:
        nonlocal call_time
        if event.result is not None:
            call_time += event.result.duration

    store = Store.open(home / "data")
    try:
        async with ToolBox(list(servers.values()), ToolSettings(max_steps=steps + 1)) as box, GlmClient() as client:
            session = Session(host="zai")
            turn = session.new_turn("bench: add ten times", thinking=True)
            runner = McpToolRunner(box, approve=allow_all, on_call=on_call)
            t0 = time.monotonic()
            await run_turn(client, host, session, turn, api_key="sk-bench-000000000000", store=store, tools=runner)
            wall = time.monotonic() - t0
    finally:
        store.close()
    assert turn.status == TurnStatus.COMPLETE and len(turn.steps) == steps, (turn.status, turn.error, len(turn.steps))
    records = server.requests()
    assert len(records) == steps and all(r["replay_problems"] == [] for r in records)
    server_time = sum(r["finished_at"] - r["arrived_at"] for r in records)
    overhead = wall - server_time
    return {
        "wall_ms": wall * 1000,
        "server_ms": server_time * 1000,
        "overhead_per_step_ms": overhead / steps * 1000,
        "mcp_call_ms": call_time / (steps - 1) * 1000,
        "rest_per_step_ms": (overhead - call_time) / steps * 1000,
    }


def ask_wall(server: Server, env: dict[str, str], *extra: str) -> float:
    server.enqueue({"reasoning": "", "content": "ok", "unthrottled": True})
    argv = [sys.executable, "-m", "glmchat", "ask", "--host", "zai", "--base-url", f"{server.url}/zai", "--no-think",
            *extra, "hello"]
    t0 = time.monotonic()
    proc = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, stdin=subprocess.DEVNULL, timeout=120)
    wall = time.monotonic() - t0
    if proc.returncode != 0 or proc.stdout != b"ok":
        raise RuntimeError(f"ask {' '.join(extra)}: exit {proc.returncode}: {proc.stderr[-1500:].decode(errors='replace')}")
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5, help="runs of each measurement (median)")
    parser.add_argument("--steps", type=int, default=10, help="steps of the tool loop")
    parser.add_argument("--json")
    args = parser.parse_args()
    report = Report("tool turns: client overhead per step, MCP start-up in ask (issue 11)")
    with Server() as server:
        home = make_home(server.url)
        asyncio.run(loop_once(server, args.steps, home))  # warm up: imports, the file cache
        runs = [asyncio.run(loop_once(server, args.steps, home)) for _ in range(args.runs)]
        report.section(f"a {args.steps}-step tool loop, instant tools (median of {args.runs})")
        for key, label in (
            ("wall_ms", "turn wall time"),
            ("server_ms", "server time (request read -> last chunk sent), all steps"),
            ("overhead_per_step_ms", "client overhead per step (wall - server) / steps"),
            ("mcp_call_ms", "  of which: one MCP call (stdio round trip)"),
            ("rest_per_step_ms", "  of which: the rest (request, parse, store, loop)"),
        ):
            report.figure(label, median(r[key] for r in runs), "ms")

        (home / "config.toml").write_text(
            (home / "config.toml").read_text() + f"\n[mcp.kit]\ncommand = {json.dumps(_stdio())}\ntrusted = true\n"
        )
        env = child_env(home)
        ask_wall(server, env)
        ask_wall(server, env, "--mcp", "kit", "--yes")  # warm up both
        plain, tools = [], []
        for _ in range(args.runs):
            plain.append(ask_wall(server, env))
            tools.append(ask_wall(server, env, "--mcp", "kit", "--yes"))
        report.section(f"glmchat ask, a fresh process per run (median of {args.runs})")
        report.figure("ask", median(plain) * 1000, "ms")
        report.figure("ask --mcp kit --yes (one stdio server)", median(tools) * 1000, "ms")
        report.figure("cost of MCP at start (import, start, list tools, stop)", (median(tools) - median(plain)) * 1000, "ms")
        imports = [_import_mcp(env) for _ in range(args.runs)]
        report.figure("  of which: glmchat importing the mcp SDK (a fresh process)", median(imports) * 1000, "ms")
    report.save(args.json)


def _import_mcp(env: dict[str, str]) -> float:
    """Seconds a fresh process takes to import what a ToolBox start imports."""
    code = (
        "import time; t = time.perf_counter(); "
        "from mcp import Client, Implementation; import glmchat.tools.toolbox, glmchat.tools.stdio; "
        "print(time.perf_counter() - t)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    return float(proc.stdout.strip())


def _stdio() -> list[str]:
    from tests.mcp_server import stdio_command

    return stdio_command()


if __name__ == "__main__":
    main()
