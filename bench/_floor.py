"""The floor: a plain httpx client reading the same stream, with no UI, store or retries.

Run as a child by the benchmarks:

    python bench/_floor.py URL [--print] [--after-import]

It sends one streaming chat request to `URL/zai/chat/completions`, splits the
SSE lines, decodes each chunk's JSON and keeps the reasoning and answer deltas
(with `--print`: writes each delta to stderr/stdout and flushes, as `glmchat
ask` does). It prints `RESULT {json}` with monotonic times: `t_import` (httpx
imported), `t_request` (just before the request), `t_last` (last delta taken),
the characters received, and the CPU seconds spent from the request on.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

T_START = time.monotonic()


async def stream(url: str, show: bool) -> dict:
    import httpx

    t_import = time.monotonic()
    body = {"model": "glm-4.7", "messages": [{"role": "user", "content": "bench"}], "stream": True}
    headers = {"Authorization": "Bearer bench-key-0123456789abcdef", "Accept": "text/event-stream"}
    reasoning: list[str] = []
    content: list[str] = []
    out = sys.stdout.buffer
    err = sys.stderr.buffer
    async with httpx.AsyncClient(timeout=120) as client:
        cpu0 = time.process_time()
        t_request = time.monotonic()
        t_last = t_request
        async with client.stream("POST", f"{url}/zai/chat/completions", json=body, headers=headers) as response:
            response.raise_for_status()
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                payload = line[5:].strip()
                if payload == "[DONE]":
                    break
                choices = json.loads(payload).get("choices") or []
                if not choices:
                    continue
                delta = choices[0].get("delta") or {}
                if text := delta.get("reasoning_content"):
                    reasoning.append(text)
                    if show:
                        err.write(text.encode())
                        err.flush()
                    t_last = time.monotonic()
                if text := delta.get("content"):
                    content.append(text)
                    if show:
                        out.write(text.encode())
                        out.flush()
                    t_last = time.monotonic()
        cpu = time.process_time() - cpu0
    return {
        "t_start": T_START,
        "t_import": t_import,
        "t_request": t_request,
        "t_last": t_last,
        "reasoning_chars": sum(map(len, reasoning)),
        "content_chars": sum(map(len, content)),
        "cpu": cpu,
    }


def main() -> None:
    url = sys.argv[1]
    show = "--print" in sys.argv
    result = asyncio.run(stream(url, show))
    # On its own line on stdout; with --print the parent finds it after the streamed text.
    sys.stdout.write("\nRESULT " + json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
