"""Search over big turns: O(text), cancellable, and never holding the store's lock."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from glmchat.protocol.events import ContentDelta, ReasoningDelta
from glmchat.session import Session
from glmchat.store import SearchCancel, SearchCancelledError, Store
from glmchat.store.search import _Finder
from tests.test_cli import run


def big_turn(store: Store, reasoning: str, user: str = "question", content: str = "answer") -> Session:
    session = Session(title="big")
    turn = session.new_turn(user, True)
    store.begin_turn(session, turn)
    turn.apply(ReasoningDelta(reasoning))
    turn.apply(ContentDelta(content))
    turn.finish()
    store.finish_turn(turn)
    return session


@pytest.fixture
def store(glmchat_home: Path):
    with Store.open(glmchat_home) as opened:
        yield opened


def test_a_word_repeated_through_megabytes_is_found_without_rereading(store: Store) -> None:
    # 4 MB, one word 570,000 times: FTS5's snippet() re-read the text per occurrence
    # (0.25 MB took 11 s that way); one pass takes milliseconds. The bound is 100x slack.
    big_turn(store, "needle " * 570_000)
    started = time.perf_counter()
    [hit] = store.search("needle")
    assert time.perf_counter() - started < 15
    assert hit.field == "reasoning"
    assert hit.snippet.startswith("needle needle") and hit.snippet.endswith("…")
    start, end = hit.highlights[0]
    assert hit.snippet[start:end] == "needle"


def test_the_snippet_is_around_the_first_match_deep_in_the_text(store: Store) -> None:
    filler = "lorem ipsum " * 200_000  # 2.4 MB before the match: crosses windows
    big_turn(store, filler + "the Zebra crossing " + filler)
    [hit] = store.search("zebra")
    assert hit.field == "reasoning"
    assert "the Zebra crossing" in hit.snippet and hit.snippet.startswith("…") and hit.snippet.endswith("…")
    assert [hit.snippet[a:b] for a, b in hit.highlights] == ["Zebra"]


def test_fields_prefixes_and_a_word_split_across_windows(store: Store) -> None:
    from glmchat.store import search as search_module

    big_turn(store, "x" * (search_module._WINDOW - 3) + " stripedzebra here", user="about horses", content="none")
    assert store.search("horse")[0].field == "user_text"
    [hit] = store.search("stripedz")
    assert hit.field == "reasoning" and "stripedzebra here" in hit.snippet


def test_search_never_waits_for_the_store_lock(store: Store) -> None:
    big_turn(store, "alpha beta " * 1000)
    found: list = []
    with store._db.lock:  # as a long write or a stream's progress save would hold it
        thread = threading.Thread(target=lambda: found.append(store.search("beta")))
        thread.start()
        thread.join(10)
        assert not thread.is_alive(), "search waited for the store's lock"
    assert found and found[0][0].field == "reasoning"


def test_a_save_goes_on_while_a_search_runs(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    session = big_turn(store, "alpha " * 1000)
    inside = threading.Event()
    release = threading.Event()
    original = _Finder.snippet

    def slow_snippet(self, *args, **kwargs):
        inside.set()
        release.wait(10)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_Finder, "snippet", slow_snippet)
    results: list = []
    thread = threading.Thread(target=lambda: results.append(store.search("alpha")))
    thread.start()
    try:
        assert inside.wait(10)
        # The search is mid-way, holding its snapshot: a write through the store still goes through.
        store.rename_session(session.id, "renamed while searching")
        assert store.list_sessions()[0].title == "renamed while searching"
    finally:
        release.set()
        thread.join(10)
    assert results and len(results[0]) == 1


def test_a_cancelled_search_stops(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(3):
        big_turn(store, "gamma delta " * 1000)
    cancel = SearchCancel()
    cancel.cancel()
    with pytest.raises(SearchCancelledError):
        store.search("gamma", cancel=cancel)

    cancel = SearchCancel()
    original = _Finder.snippet
    calls = []

    def cancelling_snippet(self, *args, **kwargs):
        calls.append(1)
        cancel.cancel()  # from inside, as another thread would: the connection is interrupted
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_Finder, "snippet", cancelling_snippet)
    with pytest.raises(SearchCancelledError):
        store.search("gamma", cancel=cancel)
    assert len(calls) == 1  # the other two hits were never read


def test_cli_search_prints_the_snippet_of_a_big_turn(glmchat_home: Path) -> None:
    with Store.open(glmchat_home) as store:
        big_turn(store, "filler " * 300_000 + "a rare aardvark appears " + "filler " * 1000)
    proc = run("sessions", "search", "aardvark", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    assert "[reasoning]" in proc.stdout and "a rare aardvark appears" in proc.stdout
    assert len(proc.stdout) < 400


def test_words_spread_over_fields_still_get_a_snippet_with_a_match(store: Store) -> None:
    big_turn(store, "zebras graze " * 10, user="tell me about horses", content="nothing here")
    [hit] = store.search("horses zebras")
    assert hit.field == "user_text" and hit.highlights
    assert hit.snippet[hit.highlights[0][0] : hit.highlights[0][1]] == "horses"
