"""A connection that drops says what the turn had received: reasoning only ("while thinking") or answer text.

The client only knows that bytes arrived; the turn runner knows what they
were, and words the message (`ConnectionDropped.describe`, the one place).
"""

from __future__ import annotations

import pytest

from glmchat.turn_runner import run_turn
from glmchat.client import GlmClient
from glmchat.errors import ConnectionDropped
from glmchat.session import Session, TurnStatus
from glmchat.store import Store
from tests.glm_server import Reply
from tests.ui_support import make_app, screen_text

REASONING = ["Let ", "me ", "think ", "about ", "this ", "for ", "a ", "while"]


async def _run(glm_server, tmp_path, reply: Reply, **kwargs):
    glm_server.enqueue(reply)
    host = glm_server.host("zai")
    session = Session(host="zai", model=host.default_model)
    turn = session.new_turn("q")
    events: list = []
    store = Store.open(tmp_path / "data")
    try:
        async with GlmClient(backoff=0.01) as client:
            await run_turn(client, host, session, turn, api_key="k", store=store, on_event=events.append, **kwargs)
        stored = store.load_session(session.id).turns[-1]
    finally:
        store.close()
    return turn, events, stored


async def test_a_drop_during_reasoning_says_while_thinking(glm_server, tmp_path):
    turn, events, stored = await _run(glm_server, tmp_path, Reply(reasoning=REASONING, content="Never sent", drop_after=3))
    assert turn.status == TurnStatus.ERROR and turn.error_kind == "network"
    assert turn.reasoning == "Let me think " and turn.content == ""
    assert turn.error == "Z.ai: the connection dropped while thinking — the reasoning so far is kept; send again to retry"
    assert stored.error == turn.error, "the stored message is the same"
    # The caller heard the same words as the turn keeps.
    [failed] = [e for e in events if type(e).__name__ == "StreamFailed"]
    assert isinstance(failed.error, ConnectionDropped) and str(failed.error) == turn.error


async def test_a_drop_after_answer_text_says_mid_answer(glm_server, tmp_path):
    reply = Reply(reasoning=["Short ", "think"], content=["Partial ", "answer ", "here ", "and ", "more"], drop_after=4)
    turn, _, _ = await _run(glm_server, tmp_path, reply, retry_hint="Ctrl+R retries")
    assert turn.content == "Partial answer "
    assert turn.error == "Z.ai: the connection dropped mid-answer — what arrived is kept; Ctrl+R retries"


def test_the_wording_lives_in_one_place():
    thinking = ConnectionDropped.describe("Z.ai", while_thinking=True, retry="Ctrl+R retries")
    answer = ConnectionDropped.describe("Z.ai")
    assert str(thinking) == "Z.ai: the connection dropped while thinking — the reasoning so far is kept; Ctrl+R retries"
    assert str(answer) == "Z.ai: the connection dropped mid-answer — what arrived is kept; send again to retry"
    assert thinking.kind == answer.kind == "network" and thinking.host == "Z.ai"


async def test_the_tui_says_dropped_while_thinking_and_ctrl_r_retries(glm_server):
    glm_server.enqueue(Reply(reasoning=REASONING, content="Never sent", drop_after=3))
    app = make_app(glm_server)
    async with app.run_test(size=(170, 32)) as pilot:
        app.chat.composer.set_text("think for me")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        text = screen_text(app)
        assert "✖ Z.ai: the connection dropped while thinking — the reasoning so far is kept; Ctrl+R retries" in text
        assert "mid-answer" not in text and "send again" not in text
        await pilot.press("ctrl+r")
        await app.workers.wait_for_complete()
        await pilot.pause()
        [turn] = app.chat.session.turns
        assert turn.status == TurnStatus.COMPLETE and turn.user_text == "think for me"


@pytest.mark.parametrize("while_thinking", [True, False])
def test_describe_is_one_line_naming_the_host(while_thinking):
    error = ConnectionDropped.describe("Ollama", while_thinking=while_thinking)
    assert str(error).startswith("Ollama: ") and "\n" not in str(error) and " — " in str(error)
