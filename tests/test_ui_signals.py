"""SIGTERM and SIGHUP close the TUI the orderly way: the stream stopped and saved, drafts saved, a known exit code.

The signals here are real: the test process sends them to itself while the app
runs in it (the app's handlers live on the test's event loop). A guard handler
is installed first, so a handler the app failed to install fails the test
instead of killing the test run. The terminal side (alternate screen, mouse
modes, a closed pane) is checked in tmux, in tests/e2e/test_signals.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from glmchat.session import TurnStatus
from glmchat.ui.app import signal_exit_code
from glmchat.ui.drafts import drafts_path, load_drafts
from tests.glm_server import Reply
from tests.ui_support import SIZE, make_app, open_store, stored_session, stored_turn, wait_for

REPO = Path(__file__).resolve().parents[1]

REASONING_PIECES = [f"step {i} of the plan; " for i in range(50)]
ANSWER_PIECES = [f"part {i} of the answer. " for i in range(100)]
REASONING = "".join(REASONING_PIECES)
ANSWER = "".join(ANSWER_PIECES)


class SignalGuard:
    """Stands in for the default action of SIGTERM/SIGHUP while a test sends them to its own process."""

    def __init__(self) -> None:
        self.caught: list[int] = []

    def __call__(self, signum: int, frame: object) -> None:
        self.caught.append(signum)


@pytest.fixture
def guard() -> Iterator[SignalGuard]:
    guard = SignalGuard()
    previous = {signum: signal.signal(signum, guard) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield guard
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stalled_reply() -> Reply:
    """Reasoning, then part of an answer, then nothing more until the server stops: a stream in progress."""
    return Reply(reasoning=REASONING_PIECES, content=ANSWER_PIECES, chunk_tokens=1, stall_after=70)


def answer_so_far(turn) -> str:
    """The answer streamed so far, the deltas not joined yet included."""
    turn.sync()
    return turn.content


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=["SIGTERM", "SIGHUP", "SIGINT"])
async def test_a_signal_mid_stream_saves_the_partial_turn_as_stopped_and_the_draft(glm_server, guard, signum):
    glm_server.enqueue(stalled_reply())
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        chat.composer.set_text("make a plan")
        await pilot.press("enter")
        turn = chat.session.turns[-1]
        await wait_for(pilot, lambda: "part 3 of" in answer_so_far(turn))
        chat.composer.set_text("typed while it streamed")
        session_id = chat.session.id
        os.kill(os.getpid(), signum)
        await wait_for(pilot, lambda: app.return_code is not None)
    assert guard.caught == [], "the app's own handler took the signal"
    assert app.return_code == signal_exit_code(signum) == 128 + signum
    assert app.exit_signal == signum

    stored = open_store().load_session(session_id).turns[-1]
    assert stored.status == TurnStatus.STOPPED
    # What arrived, byte for byte: all the reasoning sent, and the start of the answer.
    assert stored.reasoning == REASONING
    assert stored.content and ANSWER.startswith(stored.content) and stored.content != ANSWER
    assert stored.finished_at is not None
    assert load_drafts(drafts_path(app.paths.data_dir)) == {session_id: "typed while it streamed"}


async def test_a_signal_before_the_worker_ran_still_keeps_the_message(glm_server, guard):
    """The turn is on screen but its stream has not started: it is written, stopped, with the user's text."""
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        chat.composer.set_text("sent just before the signal")
        generate = chat.generate
        scheduled: list[bool] = []

        def generate_then_signal(live, host):
            generate(live, host)
            # The worker is scheduled, not run: nothing is in the store yet when the signal comes.
            scheduled.append(open_store().has_turn(live.turn.id))
            app._exit_on_signal(signal.SIGTERM)

        chat.generate = generate_then_signal
        await chat.send("sent just before the signal", True)
        assert scheduled == [False]
        session_id = chat.session.id
        await wait_for(pilot, lambda: app.return_code is not None)
    assert app.return_code == 143
    stored = open_store().load_session(session_id).turns
    assert [(t.user_text, t.status) for t in stored] == [("sent just before the signal", TurnStatus.STOPPED)]
    assert glm_server.chat_requests() == [], "nothing was sent after the signal"


async def test_a_signal_while_idle_exits_with_its_code_and_keeps_the_draft(glm_server, guard):
    store = open_store()
    session = stored_session(store, "Kept", [stored_turn(1)])
    store.close()
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        app.chat.composer.prompt.focus()
        await pilot.press(*"not sent")
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_for(pilot, lambda: app.return_code is not None)
    assert guard.caught == []
    assert app.return_code == 129
    assert load_drafts(drafts_path(app.paths.data_dir)) == {session.id: "not sent"}
    turns = open_store().load_session(session.id).turns
    assert [t.status for t in turns] == ["complete"], "a finished turn is left as it was"


async def test_a_signal_during_start_up_closes_cleanly_and_loses_no_draft(glm_server, guard):
    """A signal while the first session is being opened: the app closes, the drafts on disk stay whole."""
    store = open_store()
    session = stored_session(store, "Kept", [stored_turn(1)])
    store.close()
    path = drafts_path(open_store().path.parent)
    path.write_text(json.dumps({session.id: "a draft from last time"}), encoding="utf-8")

    app = make_app(glm_server)
    start_chat = app.start_chat

    async def signalled_start() -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        await start_chat()

    app.start_chat = signalled_start  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.return_code is not None)
    assert guard.caught == []
    assert app.return_code == 143
    assert load_drafts(path) == {session.id: "a draft from last time"}


async def test_the_handlers_are_given_back_when_the_app_closes(glm_server, guard):
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("ctrl+q")
    assert app.return_code == 0
    # The app is gone: a signal now takes the default action again (here: the guard's
    # place was given back to SIG_DFL by the loop, so the guard is not called either).
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL


def test_an_ignored_sighup_stays_ignored(glm_server):
    """Started with SIGHUP ignored (nohup): the app leaves it so, and still catches SIGTERM."""
    script = textwrap.dedent(
        """
        import asyncio, signal, sys
        from tests.ui_support import make_app, make_config
        from glmchat.ui.app import GlmChatApp

        signal.signal(signal.SIGHUP, signal.SIG_IGN)
        app = GlmChatApp(config=make_config(), probe=False)

        async def main():
            async with app.run_test() as pilot:
                print(signal.getsignal(signal.SIGHUP) is signal.SIG_IGN,
                      signal.getsignal(signal.SIGTERM) not in (signal.SIG_DFL, signal.SIG_IGN), flush=True)
                await pilot.press("ctrl+q")

        asyncio.run(main())
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["True", "True"]


def test_a_second_signal_ends_the_process_at_once_with_the_turn_already_saved(glm_server, glmchat_home):
    """Two SIGTERMs back to back: the first saves, the second ends the process before the orderly close."""
    glm_server.enqueue(stalled_reply())
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        from tests.ui_support import make_app, make_config

        class Server:
            def base_url(self, host_id):
                return {glm_server.url!r} + "/" + host_id

        app = make_app(Server())

        async def pilot(pilot):
            chat = app.chat
            while not chat.is_mounted:  # the pilot starts before the screen has finished mounting
                await pilot.pause(0.02)
            chat.composer.set_text("make a plan")
            await pilot.press("enter")
            while "part 3 of" not in chat.session.turns[-1].step.content + "".join(chat.session.turns[-1].step.pending_content):
                await pilot.pause(0.02)
            print("SESSION", chat.session.id, flush=True)
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
            await pilot.pause(5)

        app.run(headless=True, size=(100, 32), auto_pilot=pilot)
        print("ORDERLY CLOSE", app.return_code, flush=True)
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO), "GLMCHAT_HOME": str(glmchat_home)},
    )  # fmt: skip
    assert result.returncode == 143, result.stdout + result.stderr
    assert "ORDERLY CLOSE" not in result.stdout, "the second signal did not cut the close short"
    session_id = result.stdout.split("SESSION", 1)[1].split()[0]
    [turn] = open_store().load_session(session_id).turns
    assert turn.status == TurnStatus.STOPPED and turn.status != TurnStatus.STREAMING
    assert turn.reasoning == REASONING and ANSWER.startswith(turn.content) and turn.content
