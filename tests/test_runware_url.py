"""Runware's base URL is its documented endpoint, /v1 included; the form without /v1 works too.

Against the loopback server, which serves Runware's task API at /runware/v1
(and answers 404 anywhere else, as the real host does for /v1/v1).
"""

from __future__ import annotations

import pytest

from glmchat.turn_runner import run_turn
from glmchat.client import GlmClient
from glmchat.config import Config, resolve_host
from glmchat.hosts import BUILTIN_HOSTS
from glmchat.session import Session, TurnStatus


def test_the_builtin_base_url_is_the_documented_endpoint():
    runware = BUILTIN_HOSTS["runware"]
    assert runware.base_url == "https://api.runware.ai/v1"
    assert runware.url == "https://api.runware.ai/v1"


@pytest.mark.parametrize(
    "base_url",
    ["https://api.runware.ai/v1", "https://api.runware.ai/v1/", "https://api.runware.ai", "https://api.runware.ai/"],
)
def test_both_forms_give_one_v1(base_url):
    host = resolve_host(Config(hosts={"runware": {"base_url": base_url}}), "runware")
    assert host.url == "https://api.runware.ai/v1"


def test_other_hosts_are_unchanged():
    assert BUILTIN_HOSTS["zai"].url == "https://api.z.ai/api/paas/v4/chat/completions"
    assert BUILTIN_HOSTS["vllm"].url == "http://127.0.0.1:8000/v1/chat/completions"
    assert BUILTIN_HOSTS["ollama"].url == "http://127.0.0.1:11434/api/chat"
    # A chat host given its full endpoint is not doubled either.
    vllm = BUILTIN_HOSTS["vllm"].with_overrides({"base_url": "http://127.0.0.1:8000/v1/chat/completions"})
    assert vllm.url == "http://127.0.0.1:8000/v1/chat/completions"


@pytest.mark.parametrize("suffix", ["/runware", "/runware/v1", "/runware/v1/"])
async def test_a_turn_reaches_runware_with_either_form(glm_server, suffix):
    host = glm_server.host("runware", base_url=glm_server.url + suffix)
    session = Session(host="runware", model=host.default_model)
    turn = session.new_turn("hello runware")
    async with GlmClient(max_retries=0) as client:
        await run_turn(client, host, session, turn, api_key="rw-key")
    assert turn.status == TurnStatus.COMPLETE, turn.error
    assert turn.content == "You said: hello runware\n"
    assert glm_server.last.path == "/runware/v1"

