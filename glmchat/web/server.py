"""The web server behind `glmchat serve`.

textual-serve does the heavy lifting: an aiohttp server whose page draws a
terminal with xterm.js and, for each websocket, a child process running the app
command under Textual's web driver, with the screen relayed out and the keys in.
`GlmChatServer` extends it with what a chat client that holds API keys needs:

- It listens on loopback unless told otherwise. There it answers only to
  loopback names in the Host header, so a page on another site cannot reach it
  by pointing its own domain name at 127.0.0.1 (DNS rebinding).
- On any other address every request must start with a secret token
  (``http://host:port/TOKEN/``). The check runs before routing and compares in
  constant time; without the token there is no page, no file and no app.
- A websocket is accepted only from the server's own page (its Origin), so
  another site open in the same browser cannot start or drive glmchat.
- No access log (the token is in every path), nothing logged carries the token,
  and pages are sent with ``Referrer-Policy: no-referrer`` and may not be framed.
- Its own page (templates/index.html): nothing is loaded from other sites.
- A bounded stop: Ctrl+C asks every app to quit, waits a few seconds, then kills
  whatever is left, so no child outlives the server.

The keys never leave this machine: the apps are this process's children and read
the same config file and environment; the browser only ever sees the screen.
"""

from __future__ import annotations

import asyncio
import errno
import hmac
import ipaddress
import logging
import os
import secrets
import shlex
import signal
import socket
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp_jinja2
from aiohttp import web
from textual_serve.server import Server
from yarl import URL

from glmchat.errors import GlmChatError

DEFAULT_PORT = 8000
DEFAULT_BIND = "127.0.0.1"
QUIT_GRACE = 5.0
"""Seconds the apps get to quit by themselves when the server stops, before they are killed."""
TEMPLATES = Path(__file__).parent / "templates"
TITLE = "glmchat"
# Names that always mean this machine; anything else in a Host header is another site's name.
LOOPBACK_NAMES = frozenset({"localhost", "ip6-localhost", "ip6-loopback"})
WILDCARD_BINDS = frozenset({"0.0.0.0", "::"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class ServeOptions:
    """What `glmchat serve` was asked for."""

    bind: str = DEFAULT_BIND
    """Address to listen on; any but a loopback one needs the URL's token."""
    port: int = DEFAULT_PORT
    """TCP port; 0 lets the system choose a free one (the printed URL says which)."""
    app_args: tuple[str, ...] = ()
    """Options for the glmchat each browser tab starts (``--host zai --new`` ...)."""


def is_loopback(address: str) -> bool:
    """Whether a bind address or host name means this machine only."""
    name = address.strip().strip("[]").rstrip(".").lower()
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def app_command(app_args: tuple[str, ...] | list[str]) -> str:
    """The shell command textual-serve runs for each browser tab: this glmchat, with these options."""
    # `exec`: the shell that textual-serve starts becomes the app, so the child it
    # waits for and signals is glmchat itself, not a shell around it.
    return "exec " + shlex.join([sys.executable, "-m", "glmchat", *app_args])


def token_matches(raw_path: str, token: str) -> bool:
    """Whether a request path starts with the token as its first segment (constant-time compare)."""
    first = raw_path[1:].split("/", 1)[0] if raw_path.startswith("/") else ""
    return hmac.compare_digest(first.encode("utf-8", "replace"), token.encode("utf-8"))


def _authority(url: str) -> tuple[str, int | None] | None:
    """(host, port) of a URL, with the scheme's default port filled in; None if it has no host."""
    try:
        parsed = URL(url)
    except ValueError:
        return None
    if not parsed.host or parsed.scheme not in ("http", "https", "ws", "wss"):
        return None
    return parsed.host.lower().rstrip("."), parsed.port


def same_origin(origin: str, host: str, scheme: str) -> bool:
    """Whether a websocket's Origin header names the server it connects to (its Host header)."""
    theirs = _authority(origin)
    ours = _authority(f"{scheme}://{host}")
    return theirs is not None and theirs == ours


def _url_host(address: str) -> str:
    """An address as it is written in a URL (IPv6 in brackets)."""
    try:
        if ipaddress.ip_address(address.strip("[]")).version == 6:
            return f"[{address.strip('[]')}]"
    except ValueError:
        pass
    return address


def _font_size(text: str | None) -> int:
    try:
        size = int(text or "")
    except ValueError:
        return 16
    return size if 6 <= size <= 64 else 16


class _Scrubbed(logging.Formatter):
    """Log lines with the URL token cut out, tracebacks included."""

    def __init__(self, secret: str | None) -> None:
        super().__init__("glmchat serve: %(message)s")
        self.secret = secret

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        return text.replace(self.secret, "<token>") if self.secret else text


class GlmChatServer(Server):
    """textual-serve's server with a token check, same-origin websockets and an orderly stop.

    Args:
        command: shell command that starts one app (see `app_command`).
        bind: address to listen on.
        port: TCP port (0: any free one).
        token: secret every request path must start with; None on loopback.
        quit_grace: seconds the apps get to quit when the server stops, before they are killed.
    """

    def __init__(
        self, command: str, *, bind: str, port: int, token: str | None, quit_grace: float = QUIT_GRACE
    ) -> None:
        # Each app carries a mark in its environment, so a stop that must kill finds this
        # server's apps among its children and nothing else.
        self.app_mark = f"GLMCHAT_WEB_APP={secrets.token_hex(8)}"
        super().__init__(f"export {self.app_mark}; {command}", host=bind, port=port, title=TITLE,
                         templates_path=TEMPLATES)
        self.bind = bind
        self.token = token
        self.quit_grace = quit_grace
        self._connections: set[asyncio.Task[Any]] = set()

    # -- the web application -----------------------------------------------------------------

    async def _make_app(self) -> web.Application:
        # textual-serve's routes (page, websocket, static files); with a token they move
        # under /TOKEN/, so every URL the page builds carries it.
        inner = await super()._make_app()
        if self.token is None:
            outer = inner
        else:
            outer = web.Application()
            outer.add_subapp(f"/{self.token}", inner)
        # The guard sits on the outermost app: it sees every request, routed or not.
        outer.middlewares.append(self._guard_middleware())
        outer.on_response_prepare.append(_safe_headers)
        return outer

    def refusal(self, request: web.Request) -> str | None:
        """Why this request is refused, or None to let it through."""
        if self.token is not None and not token_matches(request.rel_url.raw_path, self.token):
            return "this glmchat server needs the full URL it printed when it started (it carries a secret token)"
        host = request.headers.get("Host")
        if self.token is None and host is not None:
            authority = _authority(f"http://{host}")
            if authority is None or not is_loopback(authority[0]):
                return "this glmchat server answers only to this machine's own names (localhost, 127.0.0.1)"
        origin = request.headers.get("Origin")
        if request.headers.get("Upgrade", "").lower() == "websocket" and origin is not None:
            if not same_origin(origin, request.host, request.scheme):
                return "a websocket from another site's page is refused"
        return None

    def _guard_middleware(self) -> Callable[[web.Request, Handler], Awaitable[web.StreamResponse]]:
        @web.middleware
        async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
            reason = self.refusal(request)
            if reason is not None:
                raise web.HTTPForbidden(text=f"403 Forbidden: {reason}\n")
            if self.token is not None and request.rel_url.raw_path == f"/{self.token}":
                raise web.HTTPFound(f"/{self.token}/")
            return await handler(request)

        return guard

    @aiohttp_jinja2.template("index.html")
    async def handle_index(self, request: web.Request) -> dict[str, Any]:
        """The page. Its URLs are built from the address the browser used (textual-serve would
        use the bind address, which is no use from another machine when it is 0.0.0.0)."""
        router = request.app.router
        websocket_scheme = "wss" if request.scheme == "https" else "ws"
        static = str(router["static"].url_for(filename="/")).rstrip("/") + "/"
        return {
            "font_size": _font_size(request.query.get("fontsize")),
            "app_websocket_url": f"{websocket_scheme}://{request.host}{router['websocket'].url_for()}",
            "config": {"static": {"url": static}},
            "application": {"name": self.title},
        }

    async def handle_websocket(self, request: web.Request) -> web.WebSocketResponse:
        """One browser tab: textual-serve starts an app for it; kept in a set so a stop can end it."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        self.say(f"a browser connected from {request.remote or 'an unknown address'} ({self.open_count()} open)")
        try:
            return await super().handle_websocket(request)
        finally:
            self._connections.discard(task)
            self.say(f"a browser tab closed ({self.open_count()} open)")

    def open_count(self) -> int:
        return sum(1 for task in self._connections if not task.done())

    async def on_startup(self, app: web.Application) -> None:
        """Nothing: `serve` says where it listens once the port is known."""

    async def on_shutdown(self, app: web.Application) -> None:
        await self.stop_apps()

    async def stop_apps(self) -> None:
        """End every tab's app: ask them to quit, wait `quit_grace` seconds, then kill the rest."""
        grace = self.quit_grace
        tasks = [task for task in self._connections if not task.done()]
        if not tasks:
            return
        self.say(f"stopping {len(tasks)} glmchat{'s' if len(tasks) != 1 else ''}…")
        for task in tasks:
            # textual-serve's handler answers a cancel by sending its app "quit" and
            # waiting for the process to end.
            task.cancel()
        _, pending = await asyncio.wait(tasks, timeout=grace)
        if pending:
            # Still pending: an app that ignores "quit", or a browser slow to answer the close.
            if killed := self.kill_apps():
                self.say(f"killed {killed} glmchat{'s' if killed != 1 else ''} that did not quit within {grace:g} s")
            await asyncio.wait(pending, timeout=2.0)

    # -- what it says -----------------------------------------------------------------------------

    def url(self, port: int) -> str:
        """The URL to open: the bind address (this machine's name for a wildcard), with the token."""
        host = socket.gethostname() if self.bind in WILDCARD_BINDS or not self.bind else self.bind
        path = f"/{self.token}/" if self.token else "/"
        return f"http://{_url_host(host)}:{port}{path}"

    def announce(self, port: int) -> None:
        lines = [f"glmchat is served at {self.url(port)}"]
        where = f"{_url_host(self.bind)}:{port}"
        if self.token is None:
            lines.append(f"Listening on {where}: only this machine can connect.")
        else:
            every = " (every address of this machine)" if self.bind in WILDCARD_BINDS else ""
            lines.append(
                f"Listening on {where}{every}; the URL carries a secret token: share it only with people you trust."
            )
        lines.append("Each browser tab runs its own glmchat here, with this machine's keys and sessions.")
        lines.append("Press Ctrl+C to stop.")
        self.say("\n".join(lines))

    async def run(self) -> int:
        """Listen, say where, and serve until Ctrl+C, SIGTERM or SIGHUP; returns the exit code."""
        _setup_logging(self.token)
        app = await self._make_app()
        # No access log: with a token, every path it would write holds it.
        runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=self.quit_grace + 3.0)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.bind, self.port)
            try:
                await site.start()
            except OSError as exc:
                where = f"{_url_host(self.bind)}:{self.port}"
                hint = "; choose another with --port (0: any free port)" if exc.errno == errno.EADDRINUSE else ""
                # asyncio's own message repeats the address; the system's says just what went wrong.
                if isinstance(exc, socket.gaierror):
                    reason = f"no such address ({exc.strerror})"
                else:
                    reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
                raise GlmChatError(f"cannot listen on {where}: {reason}{hint}") from None
            self.announce(_listening_port(runner, self.port))
            await self._until_stopped()
            self.say("stopping…")
        finally:
            await runner.cleanup()
            # A tab that connected while the server was stopping may have started an app after
            # the others were told to quit: none outlives the server.
            self.kill_apps()
        self.say("stopped.")
        return 0

    async def _until_stopped(self) -> None:
        """Wait for Ctrl+C, SIGTERM or SIGHUP. Another one while stopping kills the apps at once."""
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()

        def on_signal() -> None:
            if stop.is_set():
                self.kill_apps()
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            try:
                loop.add_signal_handler(signum, on_signal)
            except NotImplementedError:
                pass  # no loop signal handlers here: Ctrl+C arrives as KeyboardInterrupt instead
        await stop.wait()

    def app_pids(self) -> list[int]:
        """The apps this server started that are still running, with what they started.

        The whole tree: textual-serve starts each app through a shell, and a shell that
        did not exec would leave the app itself running (and holding the terminal) if
        only the shell were killed.
        """
        mark = self.app_mark.encode()
        found = []
        for pid in descendant_pids():
            try:
                with open(f"/proc/{pid}/environ", "rb") as f:
                    environment = f.read().split(b"\0")
            except OSError:
                continue
            if mark in environment:
                found.append(pid)
        return found

    def kill_apps(self) -> int:
        """Kill every app of this server still running; returns how many were signalled."""
        killed = 0
        for pid in self.app_pids():
            try:
                os.kill(pid, signal.SIGKILL)
                killed += 1
            except OSError:
                pass
        return killed

    @staticmethod
    def say(text: str) -> None:
        try:
            sys.stdout.write(text + "\n")
            sys.stdout.flush()
        except (OSError, ValueError):
            pass  # nobody reads our output any more; serving goes on


async def _safe_headers(request: web.Request, response: web.StreamResponse) -> None:
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    if response.content_type == "text/html":
        # With a token the page holds it: no cache keeps a copy.
        response.headers.setdefault("Cache-Control", "no-store")


def descendant_pids() -> list[int]:
    """The running children of this process, their children, and so on."""
    found: list[int] = []
    parents = [os.getpid()]
    while parents:
        children = [pid for parent in parents for pid in child_pids(parent)]
        found.extend(children)
        parents = children
    return found


def child_pids(parent: int | None = None) -> list[int]:
    """The running direct children of a process, this one by default (Linux /proc; elsewhere none)."""
    me = os.getpid() if parent is None else parent
    found = []
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for name in entries:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ...": comm may hold spaces and parentheses, so split after the last ")".
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and fields[1] == str(me) and fields[0] != "Z":
            found.append(int(name))
    return found


def _setup_logging(token: str | None) -> None:
    """Warnings from textual-serve and aiohttp as one-line messages on stderr, token scrubbed."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Scrubbed(token))
    for name in ("textual-serve", "aiohttp"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler]
        logger.setLevel(logging.WARNING)
        logger.propagate = False


def serve(options: ServeOptions) -> int:
    """Serve glmchat until Ctrl+C (or SIGTERM/SIGHUP); returns the exit code."""
    token = None if is_loopback(options.bind) else secrets.token_urlsafe(24)
    server = GlmChatServer(app_command(options.app_args), bind=options.bind, port=options.port, token=token)
    return asyncio.run(server.run())


def _listening_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked
