"""Property: a tool turn's steps (reasoning, call arguments, results of any text), saved step by step and
reloaded, go back in the next request exactly as the host produced them, in order, on every dialect."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from glmchat.hosts import BUILTIN_HOSTS
from glmchat.protocol import build_request, encode_body
from glmchat.protocol.events import Finish, ReasoningDelta, ToolCallDelta
from glmchat.session import Session, ToolResult, TurnStatus
from glmchat.store import Store
from tests.test_byte_exact_store import text

HOSTS = ("zai", "vllm", "cerebras", "openrouter", "ollama")
TOOLS = [{"type": "function", "function": {"name": "kit__x", "description": "", "parameters": {"type": "object"}}}]

step = st.tuples(text, st.lists(st.tuples(text, text), min_size=1, max_size=2))
"""(reasoning, [(arguments, result)…]) of one calling step."""


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=st.lists(step, min_size=1, max_size=3), answer_reasoning=text)
def test_every_step_goes_back_exact_in_order_before_and_after_a_reload(steps, answer_reasoning) -> None:
    with tempfile.TemporaryDirectory() as folder:
        store = Store.open(Path(folder))
        try:
            session = Session(host="zai", preserve_thinking=True)
            turn = session.new_turn("q", thinking=True)
            store.begin_turn(session, turn)
            for n, (reasoning, calls) in enumerate(steps):
                turn.apply(ReasoningDelta(reasoning))
                for i, (arguments, _) in enumerate(calls):
                    turn.apply(ToolCallDelta(i, f"call_{n}_{i}", "kit__x", arguments))
                turn.apply(Finish("tool_calls"))
                turn.step.tool_results = [ToolResult(f"call_{n}_{i}", "kit__x", result, sent_limit=20_000)
                                          for i, (_, result) in enumerate(calls)]
                turn.begin_step()
                store.save_progress(turn)
            turn.apply(ReasoningDelta(answer_reasoning))
            turn.apply(Finish("stop"))
            turn.finish()
            store.finish_turn(turn)
            reloaded = store.load_session(session.id)
        finally:
            store.close()
    assert reloaded.turns[0].status == TurnStatus.COMPLETE
    assert [s.to_dict() for s in reloaded.turns[0].steps] == [s.to_dict() for s in turn.steps]
    for host_id in HOSTS:
        host = BUILTIN_HOSTS[host_id]
        bodies = []
        for source in (session, reloaded):
            follow = source.new_turn("next", thinking=True)
            request = build_request(host, source, follow, tools=TOOLS)
            bodies.append(encode_body(request.body))
            source.turns.remove(follow)
            messages = request.body["messages"]
            assistants = [m for m in messages if m["role"] == "assistant"]
            tools = [m for m in messages if m["role"] == "tool"]
            assert len(assistants) == len(steps) + 1
            assert [m["content"] for m in tools] == [r for _, calls in steps for _, r in calls]
            if host_id == "ollama":
                assert [m["thinking"] for m in assistants if "thinking" in m] == [
                    r for r, _ in steps if r] + ([answer_reasoning] if answer_reasoning else [])
                continue
            sent_args = [c["function"]["arguments"] for m in assistants for c in m.get("tool_calls", [])]
            assert sent_args == [a for _, calls in steps for a, _ in calls]  # the strings, byte for byte
            if host_id == "zai":
                assert [m.get("reasoning_content", "") for m in assistants] == [r for r, _ in steps] + [answer_reasoning]
        assert bodies[0] == bodies[1], host_id
