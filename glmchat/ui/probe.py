"""Find GLM servers running on this machine (Ollama, vLLM, SGLang, llama.cpp) on their usual ports.

The probe is a handful of concurrent GETs to 127.0.0.1 with a short timeout, so
it is quick when nothing listens (a refused connection returns at once) and
bounded when something hangs. Only an answer in the expected JSON shape counts:
a random web server on port 8000 or 8080 is not taken for a model server.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

LOOPBACK = "127.0.0.1"


@dataclass(frozen=True)
class Candidate:
    """A place a local server usually listens."""

    host_id: str
    """The built-in host (hosts.py) that speaks to it."""
    port: int
    kind: str
    """"ollama" (GET /api/tags) or "openai" (GET /v1/models)."""


@dataclass(frozen=True)
class LocalServer:
    """A server that answered."""

    host_id: str
    base_url: str
    """The base URL to give the host (its chat path is appended)."""
    models: tuple[str, ...]
    """Models it serves, as it lists them (may be empty)."""


DEFAULT_CANDIDATES: tuple[Candidate, ...] = (
    Candidate("ollama", 11434, "ollama"),
    Candidate("vllm", 8000, "openai"),
    Candidate("sglang", 30000, "openai"),
    Candidate("llamacpp", 8080, "openai"),
)


def _base_url(candidate: Candidate, address: str) -> str:
    root = f"http://{address}:{candidate.port}"
    return root if candidate.kind == "ollama" else root + "/v1"


def _models(kind: str, data: Any) -> tuple[str, ...] | None:
    """The model names in a listing, or None if the body is not that kind of listing."""
    if not isinstance(data, dict):
        return None
    if kind == "ollama":
        entries, key = data.get("models"), "name"
    else:
        entries, key = data.get("data"), "id"
    if not isinstance(entries, list):
        return None
    names = [entry.get(key) for entry in entries if isinstance(entry, dict)]
    return tuple(name for name in names if isinstance(name, str) and name)


async def _probe_one(client: Any, candidate: Candidate, address: str, deadline: float) -> LocalServer | None:
    import httpx

    base_url = _base_url(candidate, address)
    url = base_url + ("/api/tags" if candidate.kind == "ollama" else "/models")
    try:
        # httpx's timeout is per read: a server that drips bytes is cut off here.
        async with asyncio.timeout(deadline):
            response = await client.get(url)
        if response.status_code != 200:
            return None
        models = _models(candidate.kind, response.json())
    except (httpx.HTTPError, ValueError, OSError, TimeoutError):
        return None
    if models is None:
        return None
    return LocalServer(candidate.host_id, base_url, models)


async def probe_local_servers(
    timeout: float = 0.25,
    *,
    candidates: Iterable[Candidate] = DEFAULT_CANDIDATES,
    address: str = LOOPBACK,
) -> list[LocalServer]:
    """Look for local model servers, all ports at once.

    Never raises: a port with nothing on it, a timeout, or an answer that is not
    a model listing just means "not found there".

    Args:
        timeout: seconds allowed for each connection and answer.
        candidates: where to look (tests point this at their own port).
        address: the loopback address to probe.

    Returns:
        The servers that answered, in the order of `candidates`.
    """
    import httpx

    candidates = tuple(candidates)
    # trust_env=False: a proxy from HTTP_PROXY must not see (or swallow) loopback probes.
    async with httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=False) as client:
        found = await asyncio.gather(*(_probe_one(client, c, address, timeout * 4) for c in candidates))
    return [server for server in found if server is not None]
