"""Bad input from files, databases and the command line: one clear line, nothing lost, never a crash.

Each case here once ended in "unexpected error" (or worse, broke the app for good):
absurd numbers in an imported session or already in a database, an imported id that
shadowed a session number, and argument values the parser let through.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from glmchat.export import to_json
from glmchat.session import Session, SessionTree
from glmchat.store import Store
from tests.test_cli import make_sessions, run


def one_line_usage_error(proc) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    assert proc.stderr.startswith("glmchat: ") and proc.stderr.count("\n") == 1, proc.stderr
    assert "unexpected" not in proc.stderr and "Traceback" not in proc.stderr


def exported(**session_fields) -> dict:
    session = Session(title="Imported")
    turn = session.new_turn("hello", thinking=True)
    turn.finish()
    data = json.loads(to_json(SessionTree.of(session)))
    data["session"].update(session_fields)
    return data


# -- numbers in an import ----------------------------------------------------------------------------

ABSURD = [
    ('"created_at": -1e18', "session.created_at"),
    ('"updated_at": 1e18', "session.updated_at"),
    ('"updated_at": 1e400', "session.updated_at"),
    ('"created_at": ' + "9" * 30, "session.created_at"),
    ('"temperature": 1e308', "session.temperature"),
    ('"top_p": -0.5', "session.top_p"),
    ('"max_tokens": 0', "session.max_tokens"),
    ('"max_tokens": 1e999', "session.max_tokens"),
]


@pytest.mark.parametrize(("field", "name"), ABSURD)
def test_an_import_with_absurd_numbers_is_refused_naming_the_field(glmchat_home: Path, tmp_path: Path,
                                                                    field: str, name: str) -> None:
    key = field.split(":")[0]
    data = exported()
    text = json.dumps(data)
    # Replace the field's value in the text itself: json.dumps cannot write 1e400 or 1e999.
    start = text.index(key + ":")
    end = text.index(",", start)
    bad = tmp_path / "bad.json"
    bad.write_text(text[:start] + field + text[end:])
    proc = run("sessions", "import", str(bad), home=glmchat_home)
    one_line_usage_error(proc)
    assert name in proc.stderr and "bad.json" in proc.stderr
    with Store.open(glmchat_home) as store:
        assert store.count_sessions() == 0


@pytest.mark.parametrize(
    ("change", "name"),
    [({"created_at": 1e300}, "turns[0].created_at"), ({"finished_at": -5}, "turns[0].finished_at"),
     ({"usage": {"prompt_tokens": 10**15}}, "turns[0].steps[0].usage.prompt_tokens"),
     ({"usage": {"cost": -1}}, "turns[0].steps[0].usage.cost"),
     ({"tool_calls": [{"index": 10**9, "name": "f", "arguments": "{}"}]}, "turns[0].steps[0].tool_calls[0].index")],
)
def test_turn_numbers_are_checked_too(glmchat_home: Path, tmp_path: Path, change: dict, name: str) -> None:
    data = exported()
    turn = data["session"]["turns"][0]
    (turn if name.count(".") == 1 else turn["steps"][0]).update(change)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(data))
    proc = run("sessions", "import", str(bad), home=glmchat_home)
    one_line_usage_error(proc)
    assert name in proc.stderr


def test_an_import_with_a_5000_digit_integer_is_a_usage_error(glmchat_home: Path, tmp_path: Path) -> None:
    text = json.dumps(exported()).replace('"max_tokens": null', '"max_tokens": ' + "7" * 5000)
    bad = tmp_path / "digits.json"
    bad.write_text(text)
    proc = run("sessions", "import", str(bad), home=glmchat_home)
    one_line_usage_error(proc)
    assert "digits" in proc.stderr and len(proc.stderr) < 300


# -- absurd numbers already in a database ----------------------------------------------------------------


def poison_database(home: Path) -> None:
    """Two sessions, then numbers no calendar or counter holds written straight into the rows."""
    make_sessions(home)
    conn = sqlite3.connect(home / "glmchat.db")
    with conn:
        conn.execute("UPDATE sessions SET created_at = -1e18, updated_at = 1e18 WHERE number = 1")
        conn.execute("UPDATE sessions SET created_at = 9e999, updated_at = 'soon' WHERE number = 2")
        conn.execute("UPDATE turns SET created_at = 1e300")
        row = conn.execute("SELECT num, id, meta FROM turns ORDER BY num LIMIT 1").fetchone()
        meta = json.loads(row[2])
        meta.update(finished_at=1e308, first_reasoning_at=-1, first_content_at="x", temperature=None)
        conn.execute("UPDATE turns SET meta = ? WHERE num = ?", (json.dumps(meta).encode(), row[0]))
        step = json.loads(conn.execute("SELECT meta FROM steps WHERE turn_id = ? AND n = 0", (row[1],)).fetchone()[0])
        step["usage"] = {"prompt_tokens": 10**30, "completion_tokens": "many", "cost": float("inf")}
        conn.execute("UPDATE steps SET meta = ? WHERE turn_id = ? AND n = 0", (json.dumps(step).encode(), row[1]))
        settings = json.dumps({"temperature": 1e308, "top_p": "high", "max_tokens": -3}).encode()
        conn.execute("UPDATE sessions SET settings = ? WHERE number = 1", (settings,))
    conn.close()


def test_every_reader_survives_absurd_numbers_in_the_database(glmchat_home: Path, tmp_path: Path) -> None:
    poison_database(glmchat_home)
    for args in (["sessions", "list"], ["sessions", "list", "--json"], ["sessions", "show", "1"],
                 ["sessions", "show", "1", "--json"], ["sessions", "show", "2"], ["sessions", "export", "1"],
                 ["sessions", "export", "1", "--format", "json"], ["sessions", "search", "zebras"]):
        proc = run(*args, home=glmchat_home)
        assert proc.returncode == 0, (args, proc.stderr)
        assert proc.stderr == "", (args, proc.stderr)
    listed = run("sessions", "list", home=glmchat_home).stdout
    assert "unknown" in listed and "Tell me about zebras" in listed and "What is tea?" in listed
    shown = run("sessions", "show", "1", home=glmchat_home).stdout
    assert "created unknown, updated unknown" in shown and "Zebras have stripes." in shown
    # What an export of it holds imports back (the bad fields were left out, nothing else).
    out = tmp_path / "again.json"
    assert run("sessions", "export", "1", "-o", str(out), home=glmchat_home).returncode == 0
    other = tmp_path / "other"
    proc = run("sessions", "import", str(out), home=other)
    assert proc.returncode == 0, proc.stderr
    session = json.loads(out.read_text())["session"]
    assert [t["steps"][0]["content"] for t in session["turns"]] == ["Zebras have stripes.", "Because of flies."]
    assert session["temperature"] is None and session["max_tokens"] is None
    assert session["turns"][0]["steps"][0]["usage"]["prompt_tokens"] is None


async def test_the_tui_starts_with_absurd_numbers_in_the_database(glmchat_home: Path) -> None:
    from tests.ui_support import SIZE, make_app

    poison_database(glmchat_home)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert app.is_running
    assert app.return_code in (None, 0)


# -- imported ids never shadow session numbers -------------------------------------------------------------


def test_a_numeric_imported_id_never_shadows_a_session_number(glmchat_home: Path, tmp_path: Path) -> None:
    make_sessions(glmchat_home)  # sessions 1 and 2
    hostile = exported(id="1", title="Impostor")
    hostile["session"]["turns"][0]["id"] = hostile["session"]["head"] = "2"
    source = tmp_path / "impostor.json"
    source.write_text(json.dumps(hostile))
    proc = run("sessions", "import", str(source), home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    assert "session 3" in proc.stdout
    for ref in ("1", "#1"):
        shown = run("sessions", "show", ref, home=glmchat_home)
        assert shown.returncode == 0 and "Tell me about zebras" in shown.stdout and "Impostor" not in shown.stdout
    with Store.open(glmchat_home) as store:
        [imported] = [s for s in store.list_sessions() if s.title == "Impostor"]
        assert imported.id != "1" and len(imported.id) == 32
        assert store.load_session(imported.id).turns[0].id != "2"
    assert run("sessions", "delete", "1", "-y", home=glmchat_home).returncode == 0
    with Store.open(glmchat_home) as store:
        assert sorted(s.title for s in store.list_sessions()) == ["Impostor", "What is tea?"]
    # A number that is gone stays gone: it does not fall back to an id.
    proc = run("sessions", "show", "1", home=glmchat_home)
    one_line_usage_error(proc)


def test_an_all_digit_id_already_stored_is_reached_by_its_number(glmchat_home: Path) -> None:
    # Databases written before imports were re-keyed may hold such an id.
    with Store.open(glmchat_home) as store:
        store.save_session(Session(id="7", title="old import"))
        store.save_session(Session(title="second"))
        assert store.load_session("1").title == "old import"
        assert store.load_session("2").title == "second"
        with pytest.raises(LookupError):
            store.resolve_id("7")


# -- the command line ---------------------------------------------------------------------------------------

BAD_ARGUMENTS = [
    ["sessions", "list", "--limit", "99999999999999999999"],
    ["sessions", "list", "--limit", "0"],
    ["sessions", "list", "--limit", "-5"],
    ["sessions", "list", "--limit", "1e3"],
    ["sessions", "list", "--limit", "٣"],  # a digit Python's int() reads, but not an ASCII number
    ["sessions", "search", "x", "--limit", "9" * 40],
    ["sessions", "show", "99999999999999999999999999"],
    ["sessions", "show", "#"],
    ["sessions", "show", ""],
    ["sessions", "export", "1", "--format", "pdf"],
    ["sessions", "delete", "1" * 19, "-y"],
    ["ask", "--base-url", "http://[::1", "hi"],
    ["ask", "--base-url", "http://127.0.0.1:99999/v1", "hi"],
    ["ask", "--base-url", "http://127.0.0.1:0/v1", "hi"],
    ["ask", "--base-url", "http://127.0.0.1:port/v1", "hi"],
    ["ask", "--base-url", "ftp://127.0.0.1/", "hi"],
    ["ask", "--base-url", "http://user:pw@127.0.0.1:8000/v1", "hi"],
    ["ask", "--base-url", "", "hi"],
    ["ask", "--base-url", "http://[zz]/v1", "hi"],
    ["ask", "--base-url", "http://127.attacker.example/v1", "hi"],
    ["ask", "--host", "no-such-host", "hi"],
    ["ask", "--session", "999", "hi"],
    ["--base-url", "http://[::1", "ask", "hi"],
    ["config", "set-key", "zai", "has space"],
]


@pytest.mark.parametrize("args", BAD_ARGUMENTS, ids=lambda a: " ".join(a)[:60])
def test_bad_arguments_are_one_line_usage_errors(glmchat_home: Path, args: list[str]) -> None:
    make_sessions(glmchat_home)
    proc = run(*args, home=glmchat_home, env={"ZAI_API_KEY": "sk-bad-input-0123456789"})
    one_line_usage_error(proc)
    assert "pw@" not in proc.stderr
    with Store.open(glmchat_home) as store:
        assert store.count_sessions() == 2  # nothing lost, nothing added
