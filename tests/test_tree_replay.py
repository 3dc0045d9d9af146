"""Preserved thinking across branches and forks, per host, against the loopback server.

The first request on a branch (a sibling of an earlier turn) or on a fork replays every
earlier reasoning of its path byte-exact, in order, in the host's own replay field and with
its preserved-thinking switch, so that the server's prompt cache still covers the prefix
the new path shares with the old one. Sessions are read back from the store before each
request, as the app does when it opens a branch or a fork.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from glmchat.client import GlmClient
from glmchat.session import Session, TurnStatus
from glmchat.store import Store
from glmchat.turn_runner import run_turn
from tests.glm_server import CHARS_PER_TOKEN, HOST_IDS, GlmServer, Reply
from tests.test_turn_runner import messages_of, reasoning_field_value

KEY = "sk-tree-Qx81Lm2Zr7"

# Reasoning any strip, newline normalisation or re-encoding would change (a lone surrogate too:
# every host's JSON carries it as a \ud800 escape).
REASONING = [
    " First:\r\n\tplan  🚀 \ud800 ends in spaces   ",
    "\nSecond: 漢字 naïve\r\n\t\t\n",
    "Third \\n stays literal, CR alone\r and a tab\t",
]
CONTENT = ["One.\n", "Two, with trailing spaces  ", "Three."]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "tree.db")
    yield s
    s.close()


async def send(server: GlmServer, host_id: str, store: Store, session: Session, text: str, *, after=None) -> Any:
    """One turn with thinking on, run and stored; returns the server's record of its request."""
    host = server.host(host_id)
    turn = session.new_turn(text, thinking=True, after=after)
    async with GlmClient() as client:
        await run_turn(client, host, session, turn, api_key=KEY if host.key_env else None, store=store)
    assert turn.status == TurnStatus.COMPLETE, turn.error
    return server.last


async def three_turns(server: GlmServer, host_id: str, store: Store) -> tuple[Session, list[Any]]:
    host = server.host(host_id)
    session = Session(host=host_id, model=host.default_model, preserve_thinking=True)
    server.enqueue(*(Reply(reasoning=r, content=c) for r, c in zip(REASONING, CONTENT)))
    records = [await send(server, host_id, store, session, f"q{i}?") for i in (1, 2, 3)]
    stored = store.load_session(session.id)
    assert [t.reasoning for t in stored.turns] == REASONING  # byte-exact in the store first
    return stored, records


def assert_replays(server: GlmServer, host_id: str, record: Any, reasoning: list[str], users: list[str],
                   shared_with: Any) -> None:
    """`record` replays `reasoning` in order, in the host's field, and hits the cache up to `shared_with`'s end."""
    host = server.host(host_id)
    messages = messages_of(record)
    if not host.can_replay_reasoning:
        # Runware: no field for earlier reasoning; none is sent, and nothing is gained.
        body = record.body.decode("utf-8", "backslashreplace")
        assert all(r.strip()[:6] not in body for r in REASONING)
        assert [m["content"] for m in messages][-1] == users[-1]
        return
    assert [m["content"] for m in messages if m["role"] == "user"] == users
    assistants = [m for m in messages if m["role"] == "assistant"]
    assert [reasoning_field_value(host_id, m) for m in assistants] == reasoning
    assert record.replay_problems == []
    assert record.preserve is True  # the host's preserved-thinking switch (or, without one, the replay itself)
    # The prefix the new path shares with the old one is in the server's cache.
    shared = shared_with.prompt + shared_with.generation
    assert record.prompt.startswith(shared)
    assert record.cached_tokens >= len(shared) // CHARS_PER_TOKEN
    assert record.cached_tokens > shared_with.cached_tokens


@pytest.mark.parametrize("host_id", HOST_IDS)
async def test_a_branch_replays_the_reasoning_of_its_path(glm_server: GlmServer, host_id: str, store: Store) -> None:
    session, records = await three_turns(glm_server, host_id, store)

    # Edit turn 3: a sibling of it, following turn 2.
    glm_server.enqueue(Reply(reasoning="branch thinking", content="Branch."))
    branch = await send(glm_server, host_id, store, session, "q3, edited?", after=session.turns[1])
    assert_replays(glm_server, host_id, branch, REASONING[:2], ["q1?", "q2?", "q3, edited?"], records[1])
    # Only the two turns of the path: the old turn 3 is not sent.
    assert "Three." not in branch.body.decode("utf-8", "backslashreplace")
    if host_id not in ("ollama", "runware"):  # hosts that report cached tokens hand them to the turn
        assert store.load_session(session.id).head.usage.cached_tokens == branch.cached_tokens

    # Back on the old branch (read again from the store), the next turn replays all three.
    store.switch_branch(session.id, _old_third(store, session.id))
    old = store.load_session(session.id)
    assert [t.reasoning for t in old.turns] == REASONING
    glm_server.enqueue(Reply(reasoning="r4", content="Four."))
    fourth = await send(glm_server, host_id, store, old, "q4?")
    assert_replays(glm_server, host_id, fourth, REASONING, ["q1?", "q2?", "q3?", "q4?"], records[2])


def _old_third(store: Store, session_id: str) -> str:
    """The first of turn 3's siblings (the original turn 3)."""
    current = store.load_session(session_id).turns[2]
    return store.siblings(session_id, current.id)[0]


@pytest.mark.parametrize("host_id", HOST_IDS)
async def test_a_fork_replays_the_reasoning_it_shares(glm_server: GlmServer, host_id: str, store: Store) -> None:
    session, records = await three_turns(glm_server, host_id, store)
    forked = store.load_session(store.fork_session(session.id, 2))
    assert [t.reasoning for t in forked.turns] == REASONING[:2]

    glm_server.enqueue(Reply(reasoning="fork thinking", content="Fork."))
    first = await send(glm_server, host_id, store, forked, "q3, in the fork?")
    assert_replays(glm_server, host_id, first, REASONING[:2], ["q1?", "q2?", "q3, in the fork?"], records[1])
    # The source still has its three turns, and goes on with all three replayed.
    source = store.load_session(session.id)
    assert [t.reasoning for t in source.turns] == REASONING
    glm_server.enqueue(Reply(reasoning="r4", content="Four."))
    fourth = await send(glm_server, host_id, store, source, "q4?")
    assert_replays(glm_server, host_id, fourth, REASONING, ["q1?", "q2?", "q3?", "q4?"], records[2])


async def test_a_branch_inside_a_fork_replays_the_shared_reasoning(glm_server: GlmServer, store: Store) -> None:
    session, records = await three_turns(glm_server, "zai", store)
    fork_id = store.fork_session(session.id, 3)
    forked = store.load_session(fork_id)
    # A sibling of the shared turn 2, made in the fork.
    glm_server.enqueue(Reply(reasoning="fork branch", content="FB."))
    record = await send(glm_server, "zai", store, forked, "q2, in the fork?", after=forked.turns[0])
    assert_replays(glm_server, "zai", record, REASONING[:1], ["q1?", "q2, in the fork?"], records[0])
    # Back to the shared branch of the fork: all three shared turns replay.
    store.switch_branch(fork_id, session.turns[1].id)
    back = store.load_session(fork_id)
    assert [t.id for t in back.turns] == [t.id for t in session.turns]
    glm_server.enqueue(Reply(reasoning="r4", content="Four."))
    fourth = await send(glm_server, "zai", store, back, "q4 in the fork?")
    assert_replays(glm_server, "zai", fourth, REASONING, ["q1?", "q2?", "q3?", "q4 in the fork?"], records[2])


# -- any reasoning text ---------------------------------------------------------------------------------

_PIECE = st.one_of(
    st.text(max_size=5),
    st.sampled_from(["\r\n", "\r", "\t", "  ", " \n", "🚀", "漢", "\x00", "\u2028", "\ufeff", "\\", '"']),
    st.characters(categories=["Cs"]),
)


def _no_pair(text: str) -> bool:
    # A high surrogate then a low one is one character to any JSON reader: not a lone half.
    return not any("\ud800" <= a <= "\udbff" and "\udc00" <= b <= "\udfff" for a, b in zip(text, text[1:]))


_EDGE = st.sampled_from(["", " ", "  \n", "\r\n", "\t", "\n\n", "\r"])
"""How a text may start or end: what a strip would eat."""

REASONING_TEXT = st.tuples(_EDGE, st.lists(_PIECE, min_size=1, max_size=8).map("".join), _EDGE).map("".join).filter(
    lambda t: t.strip() != "" and _no_pair(t)
)


@pytest.mark.parametrize("host_id", ["zai", "vllm", "ollama", "openrouter"])
# Every example is a real conversation over HTTP: no shrinking (it would replay hundreds), the failing texts are shown as found.
@settings(max_examples=12, deadline=None, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(first=REASONING_TEXT, second=REASONING_TEXT)
def test_any_reasoning_replays_exactly_on_a_branch_and_a_fork(glm_server: GlmServer, tmp_path: Path, host_id: str,
                                                              first: str, second: str) -> None:
    glm_server.reset()
    path = tmp_path / f"any-{host_id}.db"
    path.unlink(missing_ok=True)

    async def scenario() -> None:
        with Store(path) as store:
            host = glm_server.host(host_id)
            session = Session(host=host_id, model=host.default_model, preserve_thinking=True)
            glm_server.enqueue(Reply(reasoning=first, content="A"), Reply(reasoning=second, content="B"),
                               Reply(reasoning="x", content="C"), Reply(reasoning="y", content="D"))
            r1 = await send(glm_server, host_id, store, session, "one")
            await send(glm_server, host_id, store, session, "two")
            stored = store.load_session(session.id)
            assert [t.reasoning for t in stored.turns] == [first, second]
            branch = await send(glm_server, host_id, store, stored, "two again", after=stored.turns[0])
            assistants = [m for m in messages_of(branch) if m["role"] == "assistant"]
            assert [reasoning_field_value(host_id, m) for m in assistants] == [first]
            assert branch.replay_problems == []
            assert branch.prompt.startswith(r1.prompt + r1.generation)
            forked = store.load_session(store.fork_session(session.id, 2))
            fork = await send(glm_server, host_id, store, forked, "three")
            assistants = [m for m in messages_of(fork) if m["role"] == "assistant"]
            assert [reasoning_field_value(host_id, m) for m in assistants] == [first, "x"]
            assert fork.replay_problems == []

    asyncio.run(scenario())
