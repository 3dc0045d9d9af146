"""`glmchat serve` without a browser: who may connect, what starts an app, how it stops.

The server runs as a real process (tests/serve_support.py); requests go over
real sockets to 127.0.0.1, and the apps it starts are found as its child
processes. The browser end to end is tests/e2e/test_browser.py.
"""

from __future__ import annotations

import re
import shlex
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from glmchat.cli import main
from tests.serve_support import (
    REPO,
    alive,
    open_tab,
    serve_env,
    start_serve,
    start_server_process,
    wait_until,
    websocket_handshake,
)
from tests.test_startup_imports import imported_modules

KEY = "serve-secret-key-0123456789abcdef"
WEB_MODULES = {"textual_serve", "aiohttp", "aiohttp_jinja2", "jinja2"}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):  # noqa: ANN002, ANN003 - urllib's signature
        return None


def fetch(url: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    """GET without following redirects: status, headers, body."""
    opener = urllib.request.build_opener(_NoRedirect)
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8", "replace")


@pytest.fixture
def env(glmchat_home: Path) -> dict[str, str]:
    return serve_env(glmchat_home, ZAI_API_KEY=KEY)


# -- the pure parts ---------------------------------------------------------------------------


def test_loopback_addresses() -> None:
    from glmchat.web.server import is_loopback

    for address in ("127.0.0.1", "127.8.9.10", "::1", "[::1]", "localhost", "LOCALHOST", "app.localhost"):
        assert is_loopback(address), address
    for address in ("0.0.0.0", "::", "192.168.1.20", "10.0.0.1", "example.com", "localhost.example.com", ""):
        assert not is_loopback(address), address


def test_token_is_the_first_path_segment_exactly() -> None:
    from glmchat.web.server import token_matches

    token = "Abc_123-xyz"
    assert token_matches(f"/{token}/", token)
    assert token_matches(f"/{token}/static/js/textual.js", token)
    assert token_matches(f"/{token}", token)
    for path in ("/", "", f"{token}/", f"/x/{token}/", f"/{token}x/", f"/{token[:-1]}/", f"//{token}/", "/abc_123-xyz/"):
        assert not token_matches(path, token), path


def test_same_origin_compares_host_and_port() -> None:
    from glmchat.web.server import same_origin

    assert same_origin("http://127.0.0.1:8000", "127.0.0.1:8000", "http")
    assert same_origin("http://LocalHost:8000", "localhost:8000", "http")
    assert same_origin("https://box.lan", "box.lan:443", "https")
    assert not same_origin("http://127.0.0.1:9000", "127.0.0.1:8000", "http")
    assert not same_origin("http://evil.example:8000", "127.0.0.1:8000", "http")
    assert not same_origin("null", "127.0.0.1:8000", "http")


def test_app_command_runs_this_glmchat_with_the_options_quoted() -> None:
    from glmchat.web.server import app_command

    command = app_command(("--host", "zai", "--base-url", "http://127.0.0.1:9/zai?x=1&y=2", "--model", "a b;c"))
    assert shlex.split(command) == [
        "exec", sys.executable, "-m", "glmchat",
        "--host", "zai", "--base-url", "http://127.0.0.1:9/zai?x=1&y=2", "--model", "a b;c",
    ]  # fmt: skip


# -- the command line ----------------------------------------------------------------------------


def test_bad_options_are_one_line_and_nothing_listens(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--port", "70000"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a TCP port: '70000'" in err

    assert main(["serve", "--bind", ""]) == 2
    assert "not an address to listen on" in capsys.readouterr().err

    assert main(["serve", "--host", "nope"]) == 2
    out, err = capsys.readouterr()
    assert "unknown host 'nope'" in err and "served at" not in out

    assert main(["serve", "--session", "42"]) == 2
    out, err = capsys.readouterr()
    assert "42" in err and "glmchat sessions list" in err and "served at" not in out


def test_a_port_in_use_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--port", str(port)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert f"cannot listen on 127.0.0.1:{port}" in err and "choose another with --port" in err

    # An address this machine does not have (a documentation address): binding sends nothing anywhere.
    assert main(["serve", "--port", "0", "--bind", "192.0.2.1"]) == 1
    err = capsys.readouterr().err
    assert err == "glmchat: cannot listen on 192.0.2.1:0: cannot assign requested address\n"


def test_only_serve_imports_the_web_server(glm_server) -> None:
    for args in (["--version"], ["serve", "--help"]):
        names, proc = imported_modules(args)
        assert proc.returncode == 0, proc.stderr[-2000:]
        assert not names & WEB_MODULES, (args, sorted(names & WEB_MODULES))
    names, proc = imported_modules(
        ["ask", "--host", "zai", "--base-url", f"{glm_server.url}/zai", "--no-think", "hello"],
        env_extra={"ZAI_API_KEY": KEY},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert not names & WEB_MODULES, sorted(names & WEB_MODULES)


def test_the_tui_does_not_import_the_web_server() -> None:
    import subprocess

    code = (
        "import sys, glmchat.cli, glmchat.ui.app;"
        f"bad = sorted(m for m in sys.modules if m.split('.')[0] in {sorted(WEB_MODULES)!r});"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-2000:]


# -- loopback ---------------------------------------------------------------------------------------


def test_loopback_serves_a_self_contained_page(env: dict[str, str]) -> None:
    serve = start_serve(["--port", "0"], env)
    try:
        assert serve.url == f"http://127.0.0.1:{serve.port}/"
        assert "only this machine can connect" in serve.output()
        status, headers, page = fetch(serve.local())
        assert status == 200
        assert "<title>glmchat</title>" in page
        assert f'data-session-websocket-url="ws://127.0.0.1:{serve.port}/ws"' in page
        # Everything the page loads comes from this server.
        assert all(url.startswith(("/", "data:")) for url in re.findall(r'(?:src|href)="([^"]*)"', page))
        assert "googleapis" not in page
        assert KEY not in page and KEY[:12] not in page
        assert headers["Referrer-Policy"] == "no-referrer"
        assert headers["X-Frame-Options"] == "DENY"
        assert headers["Cache-Control"] == "no-store"
        status, _, script = fetch(serve.local("/static/js/textual.js"))
        assert status == 200 and "WebSocket" in script
        # The page's own URLs follow the name the browser used.
        status, _, page = fetch(serve.local(), headers={"Host": f"localhost:{serve.port}"})
        assert status == 200 and f"ws://localhost:{serve.port}/ws" in page
    finally:
        serve.kill()


def test_loopback_answers_only_to_loopback_names(env: dict[str, str]) -> None:
    """A site that points its own name at 127.0.0.1 (DNS rebinding) gets nothing."""
    serve = start_serve(["--port", "0"], env)
    try:
        for path in ("/", "/static/js/textual.js"):
            status, _, body = fetch(serve.local(path), headers={"Host": f"evil.example:{serve.port}"})
            assert status == 403, path
            assert "answers only to this machine" in body
        status, sock = websocket_handshake(serve.port, "/ws", {"Host": f"evil.example:{serve.port}"})
        sock.close()
        assert status == 403
        assert serve.apps() == []
    finally:
        serve.kill()


def test_one_app_per_websocket_and_only_from_its_own_page(env: dict[str, str]) -> None:
    serve = start_serve(["--port", "0", "--new"], env)
    try:
        status, sock = websocket_handshake(serve.port, "/ws", {"Origin": "http://evil.example"})
        sock.close()
        assert status == 403
        status, sock = websocket_handshake(serve.port, "/ws", {"Origin": f"http://127.0.0.1:{serve.port + 1}"})
        sock.close()
        assert status == 403
        assert serve.apps() == [], "a refused websocket started an app"

        status, tab = open_tab(serve.port, "/ws?width=100&height=30", {"Origin": f"http://127.0.0.1:{serve.port}"})
        assert status == 101 and tab is not None
        try:
            wait_until("the tab's glmchat to draw", lambda: "Message GLM" in tab.screen_text(), detail=serve.output)
            [app] = serve.apps()
            cmdline = Path(f"/proc/{app}/cmdline").read_bytes().split(b"\0")
            assert cmdline[1:4] == [b"-m", b"glmchat", b"--new"], cmdline
            assert "a browser connected from 127.0.0.1 (1 open)" in serve.output()
        finally:
            tab.close()
        # The tab went away: its app is told to quit and does.
        wait_until("the tab's glmchat to quit", lambda: not alive(app), detail=serve.output)
        wait_until("the server to see the tab close", lambda: "(0 open)" in serve.output(), detail=serve.output)
    finally:
        serve.kill()


def test_each_tab_gets_the_options_serve_was_given(
    env: dict[str, str], glm_server, glmchat_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZAI_API_KEY", KEY)
    assert main(["ask", "--host", "zai", "--base-url", f"{glm_server.url}/zai", "--no-think", "first"]) == 0
    from glmchat.store import Store

    store = Store.open(glmchat_home)
    try:
        [summary] = store.list_sessions()
    finally:
        store.close()
    base_url = f"{glm_server.url}/zai"
    serve = start_serve(["--port", "0", "--host", "zai", "--base-url", base_url, "--model", "glm-4.7", "--session", "1"], env)
    try:
        status, tab = open_tab(serve.port, "/ws", {"Origin": f"http://127.0.0.1:{serve.port}"})
        assert status == 101 and tab is not None
        try:
            wait_until("the tab's glmchat to draw", lambda: "Message GLM" in tab.screen_text(), detail=serve.output)
            [app] = serve.apps()
            cmdline = [part.decode() for part in Path(f"/proc/{app}/cmdline").read_bytes().split(b"\0") if part]
            # The session number is resolved once, at start: every tab opens that very session.
            assert cmdline[1:] == [
                "-m", "glmchat", "--host", "zai", "--base-url", base_url, "--model", "glm-4.7", "--session", summary.id,
            ]  # fmt: skip
        finally:
            tab.close()
    finally:
        serve.kill()


def test_ctrl_c_to_the_server_alone_quits_every_app(env: dict[str, str]) -> None:
    serve = start_serve(["--port", "0"], env)
    tabs = []
    try:
        for _ in range(2):
            status, tab = open_tab(serve.port, "/ws", {"Origin": f"http://127.0.0.1:{serve.port}"})
            assert status == 101 and tab is not None
            tabs.append(tab)
        for tab in tabs:
            wait_until("both glmchats to draw", lambda tab=tab: "Message GLM" in tab.screen_text(), detail=serve.output)
        apps = serve.apps()
        assert len(apps) == 2
        serve.interrupt(whole_group=False)  # only the server is told: it must end the apps itself
        assert serve.wait(30) == 0, serve.output()
        assert not [pid for pid in apps if alive(pid)]
        output = serve.output()
        assert "stopping 2 glmchats" in output and output.rstrip().endswith("stopped.")
        assert "killed" not in output  # they quit when asked
        assert all(tab.closed_by_server.is_set() for tab in tabs)
    finally:
        for tab in tabs:
            tab.close()
        serve.kill()


def test_an_app_that_does_not_quit_is_killed(env: dict[str, str]) -> None:
    """The last resort of a stop: an app that ignores "quit" is killed after the grace time."""
    script = (
        "import asyncio, sys\n"
        "from glmchat.web.server import GlmChatServer\n"
        # `sleep` never answers textual-serve's quit message, like a hung app.
        "server = GlmChatServer('exec sleep 600', bind='127.0.0.1', port=0, token=None, quit_grace=1.0)\n"
        "sys.exit(asyncio.run(server.run()))\n"
    )
    serve = start_server_process([sys.executable, "-c", script], env)
    tab = None
    try:
        status, tab = open_tab(serve.port, "/ws", {"Origin": f"http://127.0.0.1:{serve.port}"})
        assert status == 101
        # textual-serve answers a ping once it has started the app and reads the tab's messages.
        tab.send_text('["ping", "started?"]')
        wait_until("the pong", lambda: '["pong", "started?"]' in tab.screen_text(), detail=serve.output)
        [app] = serve.apps()
        serve.proc.terminate()
        assert serve.wait(30) == 0, serve.output()
        assert not alive(app)
        assert "killed 1 glmchat that did not quit within 1 s" in serve.output()
    finally:
        if tab is not None:
            tab.close()
        serve.kill()


# -- any other address: the token --------------------------------------------------------------------


def test_off_loopback_every_request_needs_the_token(env: dict[str, str]) -> None:
    serve = start_serve(["--port", "0", "--bind", "0.0.0.0"], env)
    try:
        output = serve.output()
        assert "the URL carries a secret token: share it only with people you trust" in output
        token = serve.path.strip("/")
        assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token), serve.url
        assert output.count(token) == 1  # printed once, in the URL

        wrong = token[:-1] + ("A" if token[-1] != "A" else "B")
        for path in ("/", "/ws", "/static/js/textual.js", f"/{wrong}/", f"/{wrong}/static/js/textual.js", f"/x/{token}/"):
            status, _, body = fetch(serve.local(path))
            assert status == 403, path
            assert "secret token" in body and token not in body
        for path in ("/ws", f"/{wrong}/ws"):
            status, sock = websocket_handshake(serve.port, path, {"Origin": f"http://127.0.0.1:{serve.port}"})
            sock.close()
            assert status == 403, path
        assert serve.apps() == [], "a request without the token started an app"

        status, headers, _ = fetch(serve.local(f"/{token}"))
        assert status == 302 and headers["Location"] == f"/{token}/"
        status, _, page = fetch(serve.local())
        assert status == 200
        assert f'data-session-websocket-url="ws://127.0.0.1:{serve.port}/{token}/ws"' in page
        assert f'href="/{token}/static/css/xterm.css"' in page
        assert KEY not in page
        # Any name for this machine works, as long as the token is there.
        status, _, page = fetch(serve.local(), headers={"Host": f"my-box.lan:{serve.port}"})
        assert status == 200 and f"ws://my-box.lan:{serve.port}/{token}/ws" in page
        # A Host header is the browser's, but nothing it holds can break out of the page's markup.
        status, _, page = fetch(serve.local(), headers={"Host": f'x"><script>alert(1)</script>:{serve.port}'})
        assert status == 200 and "<script>alert" not in page and "&lt;script&gt;" in page
        status, _, _ = fetch(serve.local(f"/{token}/static/js/textual.js"))
        assert status == 200

        status, tab = open_tab(serve.port, f"/{token}/ws", {"Origin": f"http://127.0.0.1:{serve.port}"})
        assert status == 101 and tab is not None
        try:
            wait_until("the tab's glmchat to draw", lambda: "Message GLM" in tab.screen_text(), detail=serve.output)
        finally:
            tab.close()
        assert token not in "\n".join(serve.output().splitlines()[1:]), "the token was printed again"
    finally:
        serve.kill()
