"""`glmchat` as a real subprocess: ask, sessions, config (against the loopback GLM server)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

from tests.glm_server import Reply


ROOT = Path(__file__).resolve().parent.parent
KEY = "sk-cli-test-9f8e7d6c5b4a39281706SECRET"


def run(*args: str, home: Path, stdin: str | bytes | None = None, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """Run `python -m glmchat ARGS` with its own GLMCHAT_HOME; stdout/stderr as text (exact bytes in .stdout_bytes)."""
    full_env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    full_env.update(GLMCHAT_HOME=str(home), PYTHONPATH=str(ROOT), **(env or {}))
    proc = subprocess.run(
        [sys.executable, "-m", "glmchat", *args],
        cwd=ROOT, env=full_env, capture_output=True, timeout=timeout,
        input=stdin.encode() if isinstance(stdin, str) else stdin,
    )
    proc.stdout_bytes = proc.stdout  # type: ignore[attr-defined]
    proc.stdout = proc.stdout.decode("utf-8", "replace")
    proc.stderr = proc.stderr.decode("utf-8", "replace")
    return proc


# -- config -------------------------------------------------------------------------------------


def test_set_key_from_stdin_creates_a_0600_file_and_never_echoes(glmchat_home: Path) -> None:
    proc = run("config", "set-key", "zai", home=glmchat_home, stdin=KEY + "\n")
    assert proc.returncode == 0, proc.stderr
    config_file = glmchat_home / "config.toml"
    assert stat.S_IMODE(config_file.stat().st_mode) == 0o600
    assert KEY in config_file.read_text()
    assert KEY not in proc.stdout + proc.stderr
    assert "…" + KEY[-4:] in proc.stderr


def test_set_key_refuses_unknown_host_and_empty_key(glmchat_home: Path) -> None:
    proc = run("config", "set-key", "nowhere", home=glmchat_home, stdin=KEY)
    assert proc.returncode == 2
    assert "unknown host 'nowhere'" in proc.stderr and "zai" in proc.stderr
    proc = run("config", "set-key", "zai", home=glmchat_home, stdin="\n")
    assert proc.returncode == 2
    assert not (glmchat_home / "config.toml").exists()


def test_config_show_masks_every_key(glmchat_home: Path) -> None:
    other = "csk-0000111122223333444455556666"
    run("config", "set-key", "zai", KEY, home=glmchat_home)
    run("config", "set-key", "cerebras", home=glmchat_home, stdin=other)
    env_key = "sk-or-v1-env-777788889999aaaabbbb"
    proc = run("config", "show", home=glmchat_home, env={"OPENROUTER_API_KEY": env_key})
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout + proc.stderr
    for key in (KEY, other, env_key):
        assert key not in out
        assert key[-4:] in out  # the masked form is shown
        assert key[-8:] not in out
    assert "$OPENROUTER_API_KEY" in out


def test_config_path(glmchat_home: Path) -> None:
    proc = run("config", "path", home=glmchat_home)
    assert proc.returncode == 0
    assert str(glmchat_home / "config.toml") in proc.stdout


def test_broken_config_names_file_and_line_and_cli_still_works(glmchat_home: Path) -> None:
    config_file = glmchat_home / "config.toml"
    config_file.write_text('host = "zai"\n\ntheme = [unclosed\n')
    proc = run("config", "show", home=glmchat_home)
    assert proc.returncode == 0
    assert f"{config_file} line 3:" in proc.stderr
    assert proc.stderr.count("line 3:") == 1  # warned once
    assert 'host = "zai"' in proc.stdout  # defaults used
    assert not config_file.exists()
    assert len(list(glmchat_home.glob("config.toml.broken-*"))) == 1
    # The next run is clean.
    proc = run("config", "show", home=glmchat_home)
    assert proc.returncode == 0 and "warning" not in proc.stderr


def test_group_readable_config_with_key_warns(glmchat_home: Path) -> None:
    run("config", "set-key", "zai", KEY, home=glmchat_home)
    os.chmod(glmchat_home / "config.toml", 0o644)
    proc = run("config", "path", home=glmchat_home)
    assert proc.returncode == 0
    assert "chmod 600" in proc.stderr
    assert KEY not in proc.stderr


def test_usage_errors_exit_2_with_one_line(glmchat_home: Path) -> None:
    for args in (["ask", "--bogus", "x"], ["sessions"], ["ask", "--session", "1", "--new", "x"]):
        proc = run(*args, home=glmchat_home)
        assert proc.returncode == 2, (args, proc.stderr)
        assert proc.stderr.startswith("glmchat: ")
        assert proc.stderr.count("\n") == 1
        assert "Traceback" not in proc.stderr


def test_ask_without_key_says_how_to_set_one(glmchat_home: Path) -> None:
    proc = run("ask", "hello", home=glmchat_home)
    assert proc.returncode == 2
    assert "ZAI_API_KEY" in proc.stderr and "glmchat config set-key zai" in proc.stderr
    assert proc.stdout == ""


# -- ask ----------------------------------------------------------------------------------------

ZAI_KEY = "sk-zai-loopback-0123456789abcdefKEYEND"
TRICKY = "  lead\r\n\ttab · 中文 🚀 `x` </think> trailing  \n\n"


def ask(server, home: Path, *args: str, stdin: str | None = None, env: dict[str, str] | None = None,
        timeout: float = 30) -> subprocess.CompletedProcess:
    """`glmchat ask` against the loopback server as Z.ai, with a key in the environment."""
    return run("ask", "--base-url", f"{server.url}/zai", *args, home=home, stdin=stdin,
               env={"ZAI_API_KEY": ZAI_KEY, **(env or {})}, timeout=timeout)


def store_turns(home: Path) -> list:
    from glmchat.store import Store

    with Store.open(home) as store:
        sid = store.most_recent_session_id()
        return store.load_session(sid).turns if sid else []


def test_ask_streams_answer_to_stdout_and_reasoning_to_stderr(glm_server, glmchat_home: Path) -> None:
    glm_server.enqueue(Reply(reasoning="Let me think: " + TRICKY, content="The answer" + TRICKY, chunk_tokens=2))
    proc = ask(glm_server, glmchat_home, "What", "is", "it?")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout_bytes == ("The answer" + TRICKY).encode()  # exact, piped
    assert "Let me think: " + TRICKY.replace("\r\n", "\n") in proc.stderr.replace("\r\n", "\n")
    assert "The answer" not in proc.stderr
    request = glm_server.last
    assert request.thinking is True
    assert request.json["messages"][-1]["content"] == "What is it?"
    assert request.header("Authorization") == f"Bearer {ZAI_KEY}"
    [turn] = store_turns(glmchat_home)
    assert (turn.status, turn.reasoning, turn.content) == ("complete", "Let me think: " + TRICKY, "The answer" + TRICKY)
    assert "session" not in proc.stderr  # stderr is not a terminal: no session number


def test_ask_no_think_and_hide_reasoning(glm_server, glmchat_home: Path) -> None:
    glm_server.enqueue(Reply(reasoning="hidden thoughts", content="short"))
    proc = ask(glm_server, glmchat_home, "--no-think", "--hide-reasoning", "hi")
    assert proc.returncode == 0, proc.stderr
    assert glm_server.last.thinking is False
    assert proc.stdout == "short"
    assert "hidden thoughts" not in proc.stderr


def test_continue_replays_the_first_reasoning_byte_exact(glm_server, glmchat_home: Path) -> None:
    first_reasoning = "R1:" + TRICKY + "\x00nul and \u2028 separator "
    glm_server.enqueue(Reply(reasoning=first_reasoning, content="A1" + TRICKY, chunk_tokens=1, fragment_bytes=5))
    assert ask(glm_server, glmchat_home, "first").returncode == 0
    glm_server.enqueue(Reply(reasoning="R2", content="A2"))
    proc = ask(glm_server, glmchat_home, "-c", "--no-think", "second")
    assert proc.returncode == 0, proc.stderr
    messages = glm_server.last.json["messages"]
    assistant = [m for m in messages if m["role"] == "assistant"]
    assert len(assistant) == 1
    assert assistant[0]["reasoning_content"] == first_reasoning
    assert assistant[0]["content"] == "A1" + TRICKY
    assert glm_server.last.preserve is True
    assert glm_server.last.thinking is False
    # The cache simulation agrees: everything up to the new message was cached.
    assert glm_server.last.cached_tokens > 0
    turns = store_turns(glmchat_home)
    assert [t.user_text for t in turns] == ["first", "second"]
    assert [t.thinking for t in turns] == [True, False]


def test_prompt_from_stdin(glm_server, glmchat_home: Path) -> None:
    proc = ask(glm_server, glmchat_home, stdin="line one\nline two\n")
    assert proc.returncode == 0, proc.stderr
    assert glm_server.last.json["messages"][-1]["content"] == "line one\nline two\n"
    proc = ask(glm_server, glmchat_home, "-", stdin="dash prompt")
    assert proc.returncode == 0, proc.stderr
    assert glm_server.last.json["messages"][-1]["content"] == "dash prompt"


def test_continue_without_sessions_starts_one_and_system_prompt_is_kept(glm_server, glmchat_home: Path) -> None:
    proc = ask(glm_server, glmchat_home, "-c", "--system", "Be brief.", "first")
    assert proc.returncode == 0, proc.stderr
    assert glm_server.last.json["messages"][0] == {"role": "system", "content": "Be brief."}
    # Options before `ask` count too.
    proc = run("--base-url", f"{glm_server.url}/zai", "ask", "-c", "--system", "Be terse.", "second",
               home=glmchat_home, env={"ZAI_API_KEY": ZAI_KEY})
    assert proc.returncode == 0, proc.stderr
    messages = glm_server.last.json["messages"]
    assert messages[0] == {"role": "system", "content": "Be terse."}
    assert [m["content"] for m in messages if m["role"] == "user"] == ["first", "second"]
    from glmchat.store import Store

    with Store.open(glmchat_home) as store:
        [summary] = store.list_sessions()
        assert store.load_session(summary.id).system_prompt == "Be terse."


def test_session_option_continues_that_session(glm_server, glmchat_home: Path) -> None:
    make_sessions(glmchat_home)
    proc = ask(glm_server, glmchat_home, "--session", "1", "back to one")
    assert proc.returncode == 0, proc.stderr
    users = [m["content"] for m in glm_server.last.json["messages"] if m["role"] == "user"]
    assert users == ["Tell me about zebras", "Why stripes?", "back to one"]
    proc = ask(glm_server, glmchat_home, "--session", "99", "nowhere")
    assert proc.returncode == 2 and "99" in proc.stderr
    assert len(glm_server.chat_requests()) == 1


def test_401_names_host_and_fix_and_never_shows_the_key(glm_server, glmchat_home: Path) -> None:
    glm_server.enqueue(Reply.zai_error(1002))
    proc = ask(glm_server, glmchat_home, "hi")
    assert proc.returncode == 1
    assert proc.stderr.count("\n") == 1 and proc.stderr.startswith("glmchat: ")
    assert "Z.ai" in proc.stderr and "ZAI_API_KEY" in proc.stderr
    assert ZAI_KEY not in proc.stderr + proc.stdout
    assert ZAI_KEY[-12:] not in proc.stderr
    assert len(glm_server.chat_requests()) == 1  # auth is not retried
    [turn] = store_turns(glmchat_home)
    assert turn.status == "error" and turn.error_kind == "auth"


def test_quota_429_is_not_retried(glm_server, glmchat_home: Path) -> None:
    glm_server.enqueue(Reply.zai_error(1113))
    proc = ask(glm_server, glmchat_home, "hi")
    assert proc.returncode == 1
    assert "Z.ai" in proc.stderr and proc.stderr.count("\n") == 1
    assert len(glm_server.chat_requests()) == 1


def test_dropped_stream_keeps_the_partial_answer(glm_server, glmchat_home: Path) -> None:
    glm_server.enqueue(Reply(reasoning="", content=" ".join(f"w{i}" for i in range(40)), drop_after=10))
    proc = ask(glm_server, glmchat_home, "--no-think", "hi")
    assert proc.returncode == 1
    assert proc.stdout.startswith("w0 w1")
    assert "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1, proc.stderr
    [turn] = store_turns(glmchat_home)
    assert turn.status == "error" and turn.content == proc.stdout


def test_length_finish_is_exit_1_with_the_answer_kept(glm_server, glmchat_home: Path) -> None:
    glm_server.enqueue(Reply(content="cut off here", finish_reason="length"))
    proc = ask(glm_server, glmchat_home, "hi")
    assert proc.returncode == 1
    assert proc.stdout == "cut off here"
    assert "session 1" in proc.stderr
    [turn] = store_turns(glmchat_home)
    assert turn.status == "truncated" and turn.content == "cut off here"


def test_too_long_prompt_is_refused_unless_forced(glm_server, glmchat_home: Path) -> None:
    (glmchat_home / "config.toml").write_text("[hosts.zai]\ncontext_window = 50\n")
    long_prompt = "word " * 200
    proc = ask(glm_server, glmchat_home, long_prompt)
    assert proc.returncode == 2
    assert "context window" in proc.stderr and "--force" in proc.stderr
    assert glm_server.chat_requests() == []
    proc = ask(glm_server, glmchat_home, "--force", long_prompt)
    assert proc.returncode == 0, proc.stderr
    assert "context window" in proc.stderr
    assert len(glm_server.chat_requests()) == 1


ESCAPES = "A\x1b]52;c;cHduZWQ=\x07B\x1b[2J\x1b]0;title\x07C\x1b]8;;file:///etc/passwd\x1b\\link\x1b]8;;\x1b\\D\x9b31m"


def test_escape_sequences_are_exact_when_piped(glm_server, glmchat_home: Path) -> None:
    glm_server.enqueue(Reply(reasoning="think" + ESCAPES, content="say" + ESCAPES))
    proc = ask(glm_server, glmchat_home, "hi")
    assert proc.returncode == 0
    assert proc.stdout_bytes == ("say" + ESCAPES).encode()


def run_in_pty(args: list[str], env: dict[str, str], timeout: float = 30) -> tuple[int, bytes, bytes]:
    """Run a command with stdout and stderr each on its own pseudo-terminal; return (rc, out, err)."""
    import pty  # noqa: F401 - Unix only, like this test
    import select

    out_master, out_slave = os.openpty()
    err_master, err_slave = os.openpty()
    proc = subprocess.Popen(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out_slave, stderr=err_slave)
    os.close(out_slave)
    os.close(err_slave)
    chunks: dict[int, list[bytes]] = {out_master: [], err_master: []}
    open_fds = set(chunks)
    try:
        import time

        deadline = time.monotonic() + timeout
        while open_fds and time.monotonic() < deadline:
            ready, _, _ = select.select(list(open_fds), [], [], 0.1)
            for fd in ready:
                try:
                    data = os.read(fd, 65536)
                except OSError:  # EIO: the other side is closed
                    data = b""
                if data:
                    chunks[fd].append(data)
                else:
                    open_fds.discard(fd)
        rc = proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(out_master)
        os.close(err_master)
    return rc, b"".join(chunks[out_master]), b"".join(chunks[err_master])


def test_escape_sequences_are_inert_on_a_terminal(glm_server, glmchat_home: Path) -> None:
    glm_server.enqueue(Reply(reasoning="think" + ESCAPES, content="say" + ESCAPES))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(GLMCHAT_HOME=str(glmchat_home), PYTHONPATH=str(ROOT), ZAI_API_KEY=ZAI_KEY)
    rc, out, err = run_in_pty([sys.executable, "-m", "glmchat", "ask", "--base-url", f"{glm_server.url}/zai", "hi"], env)
    assert rc == 0, err
    text = out.decode()
    assert text.startswith("say")
    for raw in ("\x1b]52", "\x1b[2J", "\x1b]0;", "\x1b]8;", "\x07", "\x9b"):
        assert raw not in text
        assert raw not in err.decode()
    assert "␛]52;c;cHduZWQ=␇B" in text  # visible, harmless
    # Reasoning is dimmed with one switch on and one off around it, nothing else.
    assert err.decode().startswith("\x1b[2mthinkA␛]52;c;cHduZWQ=␇B")
    assert err.count(b"\x1b[2m") == 1 and err.count(b"\x1b[0m") == 1
    assert "session 1" in err.decode()  # a new session's number, on a terminal only
    # What was stored is the exact text.
    [turn] = store_turns(glmchat_home)
    assert turn.content == "say" + ESCAPES and turn.reasoning == "think" + ESCAPES


# -- sessions -----------------------------------------------------------------------------------


def make_sessions(home: Path) -> None:
    """Two sessions written in-process (`ask` itself is tested above; this keeps the tests quick)."""
    from glmchat.protocol.events import ContentDelta, ReasoningDelta
    from glmchat.session import Session, SessionTree
    from glmchat.store import Store

    with Store.open(home) as store:
        for texts in ((("Tell me about zebras", "pondering zebras", "Zebras have stripes."),
                       ("Why stripes?", "more", "Because of flies.")),
                      (("What is tea?", "other", "Tea is a drink."),)):
            session = Session(host="zai", model="glm-4.7")
            for user, reasoning, content in texts:
                turn = session.new_turn(user, True)
                store.begin_turn(session, turn)
                turn.apply(ReasoningDelta(reasoning))
                turn.apply(ContentDelta(content))
                turn.finish()
                store.finish_turn(turn)


def test_sessions_list_and_show_json(glmchat_home: Path) -> None:
    make_sessions(glmchat_home)
    proc = run("sessions", "list", "--json", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    listed = json.loads(proc.stdout)
    assert [(s["number"], s["title"], s["turn_count"]) for s in listed] == [
        (2, "What is tea?", 1), (1, "Tell me about zebras", 2)]
    assert json.loads(run("sessions", "list", "--json", "--limit", "1", home=glmchat_home).stdout)[0]["number"] == 2
    text = run("sessions", "list", home=glmchat_home).stdout
    assert "Tell me about zebras" in text and "What is tea?" in text
    proc = run("sessions", "show", "1", "--json", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)["session"]
    assert [t["steps"][0]["reasoning"] for t in shown["turns"]] == ["pondering zebras", "more"]
    assert shown["head"] == shown["turns"][-1]["id"]
    proc = run("sessions", "show", "1", home=glmchat_home)
    assert "Zebras have stripes." in proc.stdout and "Why stripes?" in proc.stdout


def test_sessions_export_md_and_json_and_import_round_trip(glmchat_home: Path, tmp_path: Path) -> None:
    make_sessions(glmchat_home)
    md = run("sessions", "export", "1", home=glmchat_home)
    assert md.returncode == 0, md.stderr
    assert "Zebras have stripes." in md.stdout and "<details>" in md.stdout and "pondering zebras" in md.stdout
    out_dir = tmp_path / "exports"
    out_dir.mkdir()
    proc = run("sessions", "export", "1", "-o", str(out_dir), home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    [written] = list(out_dir.iterdir())
    assert written.suffix == ".md" and "zebras" in written.name.lower()
    # A second export into the folder does not overwrite the first.
    assert run("sessions", "export", "1", "-o", str(out_dir), home=glmchat_home).returncode == 0
    assert sorted(p.name for p in out_dir.iterdir()) == sorted([written.name, f"{written.stem}-2.md"])
    json_file = tmp_path / "one.json"
    proc = run("sessions", "export", "1", "--format", "json", "-o", str(json_file), home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    original = json_file.read_text()

    other_home = tmp_path / "other-home"
    proc = run("sessions", "import", str(json_file), home=other_home)
    assert proc.returncode == 0, proc.stderr
    again = run("sessions", "export", "1", "--format", "json", home=other_home)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["session"] == json.loads(original)["session"]

    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "ours"}')
    proc = run("sessions", "import", str(bad), home=other_home)
    assert proc.returncode == 2 and "bad.json" in proc.stderr and proc.stderr.count("\n") == 1  # bad input: usage error


def test_sessions_delete_and_search(glmchat_home: Path) -> None:
    make_sessions(glmchat_home)
    proc = run("sessions", "search", "zebras", "--json", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    hits = json.loads(proc.stdout)
    assert hits and all(h["title"] == "Tell me about zebras" for h in hits)
    assert "Tell me about zebras" in run("sessions", "search", "stripes", home=glmchat_home).stdout
    # stdin is not a terminal: no silent delete without --yes.
    proc = run("sessions", "delete", "1", home=glmchat_home, stdin="y\n")
    assert proc.returncode == 2 and "--yes" in proc.stderr
    from glmchat.store import Store

    with Store.open(glmchat_home) as store:
        assert store.count_sessions() == 2
    proc = run("sessions", "delete", "1", "--yes", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    with Store.open(glmchat_home) as store:
        assert [s.number for s in store.list_sessions()] == [2]
        assert store.search("zebras") == []
    assert run("sessions", "show", "1", home=glmchat_home).returncode == 2


def test_ctrl_c_keeps_the_partial_turn_marked_stopped(glm_server, glmchat_home: Path) -> None:
    import signal
    import time

    content = [f"w{i:04d} " for i in range(2000)]
    glm_server.enqueue(Reply(reasoning="", content=content, pace=200.0, chunk_tokens=1))
    env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
    env.update(GLMCHAT_HOME=str(glmchat_home), PYTHONPATH=str(ROOT), ZAI_API_KEY=ZAI_KEY)
    proc = subprocess.Popen(
        [sys.executable, "-m", "glmchat", "ask", "--no-think", "--base-url", f"{glm_server.url}/zai", "long please"],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        assert glm_server.wait_for(lambda s: s.chat_requests() and len(s.last.chunk_times) >= 40, timeout=20)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err.decode()
    assert b"Traceback" not in err
    assert b"stopped" in err and err.count(b"\n") == 1
    [turn] = store_turns(glmchat_home)
    assert turn.status == "stopped"
    assert turn.content and turn.content == out.decode()  # what was shown is what was kept
    assert "".join(content).startswith(turn.content)
    assert len(turn.content) < len("".join(content))


def test_corrupt_database_is_reported_once_and_set_aside(glmchat_home: Path) -> None:
    db = glmchat_home / "glmchat.db"
    db.write_bytes(b"not a database at all\n" * 64)
    proc = run("sessions", "list", "--json", home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == []
    assert proc.stderr.count("warning:") == 1 and "glmchat.db" in proc.stderr
    assert any(p.name.startswith("glmchat.db.") for p in glmchat_home.iterdir())
    proc = run("sessions", "list", "--json", home=glmchat_home)
    assert proc.returncode == 0 and proc.stderr == ""


def test_transient_error_is_retried_with_a_note(glm_server, glmchat_home: Path) -> None:
    glm_server.enqueue(Reply.zai_error(1305, headers={"Retry-After": "0"}), Reply(reasoning="r", content="after retry"))
    proc = ask(glm_server, glmchat_home, "hi")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "after retry"
    assert "Retrying in" in proc.stderr
    assert len(glm_server.chat_requests()) == 2


def test_hostile_title_is_imported_and_exported_inside_the_chosen_folder(glmchat_home: Path, tmp_path: Path) -> None:
    from glmchat.export import to_json
    from glmchat.session import Session, SessionTree

    session = Session(title="../../escape/\x1b]0;pwned\x07CON")
    turn = session.new_turn("hello", thinking=False)
    turn.finish()
    source = tmp_path / "in" / "hostile.json"
    source.parent.mkdir()
    source.write_text(to_json(SessionTree.of(session)), encoding="utf-8")
    before = {p for p in tmp_path.rglob("*")}

    proc = run("sessions", "import", str(source), home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    proc = run("sessions", "export", "1", "-o", str(out_dir), home=glmchat_home)
    assert proc.returncode == 0, proc.stderr

    [written] = list(out_dir.iterdir())
    assert written.parent == out_dir and written.suffix == ".md"
    assert "/" not in written.name and ".." not in written.name and "\x1b" not in written.name
    # Nothing appeared anywhere else: import writes only into the data dir's database.
    created = {p for p in tmp_path.rglob("*")} - before - {out_dir, written}
    assert all(glmchat_home in p.parents or p == glmchat_home for p in created), created
