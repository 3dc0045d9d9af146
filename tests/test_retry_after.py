"""Absurd Retry-After values: parsed to a sane wait, said as days (never a clock time), never a crash."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from glmchat.client import GlmClient
from glmchat.errors import RateLimitError
from glmchat.protocol.classify import MAX_RETRY_AFTER, format_seconds, parse_retry_after
from tests.glm_server import GlmServer, Reply
from tests.test_cli import ask
from tests.test_client import request_for, run

CLOCK = re.compile(r"\d{1,2}:\d{2}:\d{2}")


@pytest.mark.parametrize(
    ("value", "expected"),
    [("1e20", MAX_RETRY_AFTER), ("1e400", MAX_RETRY_AFTER), ("-1e400", 0.0), ("inf", MAX_RETRY_AFTER),
     ("99999999999", MAX_RETRY_AFTER), ("9" * 30, MAX_RETRY_AFTER), ("9" * 5000, None), ("nan", None),
     ("Fri, 31 Dec 9999 23:59:59 GMT", MAX_RETRY_AFTER), ("86400", 86400.0), ("0x10", None)],
)
def test_parse_retry_after_is_always_a_sane_number(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, now=2_000_000_000) == expected


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(30, "30 s"), (600, "10 min"), (3 * 3600, "3.0 h"), (3 * 86400, "3 days"), (400 * 86400, "400 days"),
     (MAX_RETRY_AFTER, "more than 10 years"), (float("inf"), "more than 10 years")],
)
def test_format_seconds(seconds: float, text: str) -> None:
    assert format_seconds(seconds) == text


@pytest.mark.parametrize("value", ["1e20", "1e400", "99999999999", "9" * 30, "Fri, 31 Dec 9999 23:59:59 GMT", "259200"])
async def test_a_long_wait_says_how_long_not_a_clock_time(glm_server: GlmServer, value: str) -> None:
    host = glm_server.host("zai")
    glm_server.enqueue(Reply.error(429, headers={"Retry-After": value}))
    async with GlmClient(max_retry_wait=60) as client:
        [event] = await run(client, host, request_for(host))
    error = event.error
    assert isinstance(error, RateLimitError)
    assert "the host asks to wait " in error.message and error.message.endswith("try later")
    assert "days" in error.message or "years" in error.message
    assert not CLOCK.search(error.message), error.message
    assert len(glm_server.chat_requests()) == 1  # not retried


@pytest.mark.parametrize("value", ["1e20", "99999999999"])
def test_ask_reports_an_absurd_retry_after_in_one_line(glm_server: GlmServer, glmchat_home: Path, value: str) -> None:
    glm_server.enqueue(Reply.error(429, headers={"Retry-After": value}))
    proc = ask(glm_server, glmchat_home, "hi")
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.count("\n") == 1 and "unexpected" not in proc.stderr
    assert "the host asks to wait" in proc.stderr and "try later" in proc.stderr
    assert not CLOCK.search(proc.stderr)
