"""Function names for MCP tools: namespaced by server, within the 64-character rule.

Chat-completions hosts accept function names of letters, digits, ``_`` and ``-``,
1 to 64 characters (the OpenAI rule, which vLLM, SGLang, OpenRouter and Z.ai
clients follow). Two servers may both have a tool called ``search``, so every
tool is offered as ``SERVER__TOOL``; a name that would be too long or that
collides keeps a readable start and ends in a short hash of the original pair.
"""

from __future__ import annotations

import hashlib
import re

MAX_FUNCTION_NAME = 64
SEPARATOR = "__"
_INVALID = re.compile(r"[^A-Za-z0-9_-]")
_HASH_CHARS = 6


def _clean(text: str) -> str:
    return _INVALID.sub("_", text) or "_"


def _digest(server: str, tool: str) -> str:
    return hashlib.sha256(f"{server}\0{tool}".encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_CHARS]


def function_name(server: str, tool: str, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """The name the model sees for `tool` of `server`: ``server__tool``, valid and not in `taken`.

    Deterministic: the same server, tool and taken set give the same name, so a
    session's tool names stay stable from one run to the next.
    """
    base = f"{_clean(server)}{SEPARATOR}{_clean(tool)}"
    if len(base) <= MAX_FUNCTION_NAME and base not in taken:
        return base
    suffix = "_" + _digest(server, tool)
    n = 1
    while True:
        tail = suffix if n == 1 else f"{suffix}{n}"  # a collision even with the hash: count up
        name = base[: MAX_FUNCTION_NAME - len(tail)] + tail
        if name not in taken:
            return name
        n += 1


def is_valid_function_name(name: str) -> bool:
    return 0 < len(name) <= MAX_FUNCTION_NAME and not _INVALID.search(name)
