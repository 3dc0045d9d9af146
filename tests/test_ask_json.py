"""`glmchat ask --json`: one machine-readable object with text, reasoning, usage, cache hit and cost."""

from __future__ import annotations

import json

import pytest

from tests.test_cli import run

KEY = "sk-askjson-Hy6Tr4Ew2Qa9"


def ask_json(server, home, *args: str) -> dict:
    result = run("ask", "--json", "--base-url", server.base_url("zai"), *args, home=home, env={"ZAI_API_KEY": KEY})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_ask_json_reports_usage_cache_hit_and_cost(glm_server, tmp_path) -> None:
    home = tmp_path / "home"
    first = ask_json(glm_server, home, "--model", "glm-5.2", "--level", "xhigh", "first question")
    assert first["status"] == "complete" and first["model"] == "glm-5.2"
    assert (first["thinking"], first["thinking_level"]) == (True, "xhigh")
    assert glm_server.last.level == "xhigh"
    assert first["text"] and first["reasoning"]
    assert first["usage"]["prompt_tokens"] == glm_server.last.prompt_tokens
    second = ask_json(glm_server, home, "-c", "second question")
    usage = second["usage"]
    assert usage["cached_tokens"] == glm_server.last.cached_tokens > 0
    assert usage["cache_hit"] == pytest.approx(usage["cached_tokens"] / usage["prompt_tokens"])
    # GLM-5.2's prices: $1.40 input, $0.26 cached input, $4.40 output per million tokens.
    fresh = usage["prompt_tokens"] - usage["cached_tokens"]
    output = usage["reasoning_tokens"] + usage["answer_tokens"]
    assert second["cost_usd"] == pytest.approx((fresh * 1.40 + usage["cached_tokens"] * 0.26 + output * 4.40) / 1e6)
    assert usage["saved_by_cache_usd"] == pytest.approx(usage["cached_tokens"] * (1.40 - 0.26) / 1e6)
    assert KEY not in json.dumps(second)


def test_ask_level_errors_and_the_always_thinking_note(glm_server, tmp_path) -> None:
    home = tmp_path / "home"
    bad = run("ask", "--base-url", glm_server.base_url("zai"), "--model", "glm-4.7", "--level", "max", "x",
              home=home, env={"ZAI_API_KEY": KEY})
    assert bad.returncode == 2 and "has no thinking levels" in bad.stderr
    bad = run("ask", "--base-url", glm_server.base_url("zai"), "--model", "glm-5.3", "--level", "xhigh", "x",
              home=home, env={"ZAI_API_KEY": KEY})
    assert bad.returncode == 2 and "low, high, max" in bad.stderr
    assert glm_server.chat_requests() == []  # nothing was sent
    ok = run("ask", "--json", "--no-think", "--base-url", glm_server.base_url("zai"), "--model", "glm-5.3", "x",
             home=home, env={"ZAI_API_KEY": KEY})
    assert ok.returncode == 0, ok.stderr
    assert "always thinks" in ok.stderr
    assert json.loads(ok.stdout)["thinking_level"] == "low"
    assert glm_server.last.json["thinking"]["type"] == "enabled" and glm_server.last.level == "low"


def test_ask_json_on_the_demo_host(tmp_path) -> None:
    result = run("ask", "--json", "--host", "demo", "hello", home=tmp_path / "home")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["demo"] is True and data["host"] == "demo"
    assert "## Demo answer 1" in data["text"] and "hello" in data["reasoning"]
    assert data["usage"]["prompt_tokens"] > 0 and data["cost_usd"] is not None
