"""Trees from the command line: `sessions fork`, `show --json`, search hits on branches, exports of trees."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmchat.protocol.events import ContentDelta, Finish, ReasoningDelta
from glmchat.session import Session, Turn
from glmchat.store import Store
from tests.test_cli import run

TRICKY = "line\r\nspaces  \n\ttab 🧠 \x00 end  "


def add(store: Store, session: Session, text: str, *, after: Turn | None = None, reasoning: str = "") -> Turn:
    turn = session.new_turn(text, thinking=bool(reasoning), after=after)
    store.begin_turn(session, turn)
    if reasoning:
        turn.apply(ReasoningDelta(reasoning))
    turn.apply(ContentDelta(f"answer to {text}"))
    turn.apply(Finish("stop"))
    turn.finish()
    store.finish_turn(turn)
    return turn


def seed_tree(home: Path) -> dict[str, Turn]:
    """Session 1: alpha, then bravo-old -> charlie (an older branch), and bravo-new -> delta (current)."""
    with Store.open(home) as store:
        session = Session(title="Tree")
        t1 = add(store, session, "alpha start", reasoning=TRICKY)
        t2a = add(store, session, "bravo old", reasoning="old thinking\r\n")
        t3a = add(store, session, "charlie on the old branch")
        t2b = add(store, session, "bravo new", after=t1, reasoning="new thinking\t")
        t3b = add(store, session, "delta on the new branch")
        assert store.session_number(session.id) == 1
    return {"t1": t1, "t2a": t2a, "t3a": t3a, "t2b": t2b, "t3b": t3b}


def last_line(text: str) -> str:
    return text.rstrip("\n").rsplit("\n", 1)[-1]


# -- sessions fork --------------------------------------------------------------------------------------


def test_fork_prints_the_new_number_last_and_shares_the_current_branch(glmchat_home: Path) -> None:
    t = seed_tree(glmchat_home)
    proc = run("sessions", "fork", "1", "--at", "2", "--title", "Tried again", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    assert last_line(proc.stdout) == "2"
    with Store.open(glmchat_home) as store:
        forked = store.load_session("2")
        assert forked.title == "Tried again"
        assert [x.id for x in forked.turns] == [t["t1"].id, t["t2b"].id]  # the current branch's, shared
        source = store.load_session("1")
        assert [x.id for x in source.turns] == [t["t1"].id, t["t2b"].id, t["t3b"].id]
        assert store.siblings(source.id, t["t2a"].id) == [t["t2a"].id, t["t2b"].id]

    # The whole path, and a fork of a fork by id prefix; the default title says it is a fork.
    proc = run("sessions", "fork", source.id[:8], "--at", "3", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    assert last_line(proc.stdout) == "3"
    proc = run("sessions", "show", "3", home=glmchat_home)
    assert "Tree (fork)" in proc.stdout and "delta on the new branch" in proc.stdout
    assert "charlie" not in proc.stdout


@pytest.mark.parametrize(("at", "message"), [
    ("0", "--at"),
    ("4", "has 3 turns"),
    ("-1", "--at"),
    ("two", "--at"),
    ("", "--at"),
])
def test_fork_at_a_bad_turn_is_a_one_line_error_and_writes_nothing(glmchat_home: Path, at: str, message: str) -> None:
    seed_tree(glmchat_home)
    proc = run("sessions", "fork", "1", "--at", at, home=glmchat_home)
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr
    with Store.open(glmchat_home) as store:
        assert store.count_sessions() == 1


def test_fork_of_an_unknown_session_is_a_one_line_error(glmchat_home: Path) -> None:
    seed_tree(glmchat_home)
    proc = run("sessions", "fork", "7", "--at", "1", home=glmchat_home)
    assert proc.returncode != 0 and proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "7" in proc.stderr


# -- show --json, search -------------------------------------------------------------------------------


def test_show_json_gives_every_branch_and_the_head(glmchat_home: Path) -> None:
    t = seed_tree(glmchat_home)
    proc = run("sessions", "show", "1", "--json", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)["session"]
    turns = {x["id"]: x for x in data["turns"]}
    assert set(turns) == {x.id for x in t.values()}
    assert data["head"] == t["t3b"].id
    assert turns[t["t2a"].id]["parent_id"] == turns[t["t2b"].id]["parent_id"] == t["t1"].id
    assert turns[t["t3a"].id]["parent_id"] == t["t2a"].id
    # Parents before children, and the reasoning exact.
    order = [x["id"] for x in data["turns"]]
    assert all(order.index(x["parent_id"]) < order.index(x["id"]) for x in data["turns"] if x["parent_id"])
    assert turns[t["t1"].id]["steps"][0]["reasoning"] == TRICKY

    # The plain view shows the current path and where it branches.
    plain = run("sessions", "show", "1", home=glmchat_home).stdout
    assert "bravo new" in plain and "bravo old" not in plain and "branch 2/2" in plain


def test_show_json_of_a_fork_includes_the_turns_it_shares(glmchat_home: Path) -> None:
    t = seed_tree(glmchat_home)
    run("sessions", "fork", "1", "--at", "2", home=glmchat_home)
    data = json.loads(run("sessions", "show", "2", "--json", home=glmchat_home).stdout)["session"]
    assert [x["id"] for x in data["turns"]] == [t["t1"].id, t["t2b"].id]
    assert data["head"] == t["t2b"].id


def test_search_names_the_branch_of_a_hit(glmchat_home: Path) -> None:
    t = seed_tree(glmchat_home)
    proc = run("sessions", "search", "charlie", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    assert "(branch 1/2 at turn 2)" in proc.stdout
    hits = json.loads(run("sessions", "search", "charlie", "--json", home=glmchat_home).stdout)
    assert [(h["turn_id"], h["branch"]) for h in hits] == [(t["t3a"].id, "branch 1/2 at turn 2")]
    # A hit on the current path has no branch to name.
    hits = json.loads(run("sessions", "search", "delta", "--json", home=glmchat_home).stdout)
    assert [(h["turn_id"], h["branch"]) for h in hits] == [(t["t3b"].id, "")]
    assert "(branch" not in run("sessions", "search", "delta", home=glmchat_home).stdout


# -- exports ---------------------------------------------------------------------------------------------


def test_markdown_export_is_the_current_path_and_says_there_are_others(glmchat_home: Path) -> None:
    seed_tree(glmchat_home)
    proc = run("sessions", "export", "1", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    md = proc.stdout
    assert "alpha start" in md and "bravo new" in md and "delta on the new branch" in md
    assert "bravo old" not in md and "charlie" not in md
    assert "the session has others" in md
    assert "**Turns:** 3" in md
    assert "branch 2 of 2" in md

    # A session of one branch says nothing about branches.
    with Store.open(glmchat_home) as store:
        plain = Session(title="Straight")
        add(store, plain, "just one")
    md = run("sessions", "export", "2", home=glmchat_home).stdout
    assert "just one" in md and "Branches" not in md and "branch 1 of" not in md


def test_json_export_of_a_tree_imports_back_identical(glmchat_home: Path, tmp_path: Path) -> None:
    t = seed_tree(glmchat_home)
    out = tmp_path / "tree.json"
    assert run("sessions", "export", "1", "-o", str(out), home=glmchat_home).returncode == 0
    exported = json.loads(out.read_text(encoding="utf-8"))

    # Into a fresh home: the same ids, tree and head.
    other = tmp_path / "other-home"
    proc = run("sessions", "import", str(out), home=other)
    assert proc.returncode == 0, proc.stderr
    again = tmp_path / "again.json"
    assert run("sessions", "export", "1", "-o", str(again), home=other).returncode == 0
    reexported = json.loads(again.read_text(encoding="utf-8"))
    assert reexported["session"] == exported["session"]
    with Store.open(other) as store:
        loaded = store.load_session("1")
        assert [x.id for x in loaded.turns] == [t["t1"].id, t["t2b"].id, t["t3b"].id]
        assert loaded.turns[0].reasoning == TRICKY
        assert store.siblings(loaded.id, t["t2a"].id) == [t["t2a"].id, t["t2b"].id]

    # Into the same home: new ids (nothing is overwritten), the same tree under them.
    proc = run("sessions", "import", str(out), home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    copy = json.loads(run("sessions", "show", "2", "--json", home=glmchat_home).stdout)["session"]
    original = exported["session"]
    assert copy["id"] != original["id"]
    rename = dict(zip((x["id"] for x in original["turns"]), (x["id"] for x in copy["turns"])))
    assert len(set(rename.values()) & set(rename)) == 0
    assert copy["head"] == rename[original["head"]]
    strip = lambda x: {k: v for k, v in x.items() if k not in ("id", "parent_id")}  # noqa: E731
    for a, b in zip(original["turns"], copy["turns"]):
        assert strip(a) == strip(b)
        assert b["parent_id"] == (rename[a["parent_id"]] if a["parent_id"] else None)
