"""The `glmchat` command: the TUI by default, and `ask`, `sessions`, `config` for scripts.

Imports stay lazy: `glmchat --version` and `--help` load neither Textual nor
httpx nor SQLite, and `glmchat ask` never loads Textual. Every failure a person
can act on is one line on stderr ("glmchat: ..."); anything unexpected is one
line plus the path of a log holding the traceback, with every known key
scrubbed from it.

Exit codes: 0 ok, 1 the host, the stream or a file failed, 2 usage or config
error, 130 interrupted (Ctrl+C); `ask` stopped by SIGTERM or SIGHUP exits
128 + the signal's number (143, 129), after saving the partial turn as stopped.
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any, NoReturn

from glmchat import __version__
from glmchat.errors import ConfigError, GlmChatError, TurnNotFound

if TYPE_CHECKING:
    from glmchat.config import Config, Paths
    from glmchat.controller import Controller
    from glmchat.hosts import Host
    from glmchat.session import Session, Turn
    from glmchat.store import SessionSummary, Store
    from glmchat.tools.runner import CallEvent
    from glmchat.turn_runner import ToolRunner

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

DIM = "\x1b[2m"
RESET = "\x1b[0m"


class UsageError(GlmChatError):
    """The command line asks for something that cannot be done (exit code 2)."""


def _count(text: str) -> int:
    """An argparse type: a whole number from 1 to 100,000 (a limit of rows to show)."""
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 6 or not 1 <= int(value) <= 100_000:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a whole number from 1 to 100,000")
    return int(value)


def _turn_number(text: str) -> int:
    """An argparse type: a turn number, counted from 1 (the turn `sessions show` calls "turn 1")."""
    value = text.strip()
    if not (value.isascii() and value.isdigit()) or len(value) > 9 or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a turn number (1 for the first turn)")
    return int(value)


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit code 2 without a usage dump."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see `{self.prog} --help`)")


# -- the command line --------------------------------------------------------------------


def _add_host_options(parser: argparse.ArgumentParser, prefix: str = "") -> None:
    parser.add_argument("--host", dest=f"{prefix}host", metavar="H", help="host id (see `glmchat config show`); default from config")
    parser.add_argument("--base-url", dest=f"{prefix}base_url", metavar="URL",
                        help="send to this base URL instead (proxy or local server), this run only")
    parser.add_argument("--model", dest=f"{prefix}model", metavar="M", help="model name; default: the host's default")


# The TUI's options are also accepted before `ask` (`glmchat --host X ask ...`); argparse
# would let the sub-command's defaults overwrite them, so they get their own names.
_TOP_OPTIONS = ("host", "base_url", "model", "session", "new")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="glmchat",
        description="A terminal chat client for GLM-4.7. Without a command, starts the TUI.",
    )
    parser.add_argument("--version", action="version", version=f"glmchat {__version__}")
    _add_host_options(parser, prefix="top_")
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--session", dest="top_session", metavar="ID", help="open this session (number, id or id prefix)")
    which.add_argument("--new", dest="top_new", action="store_true", help="start with a new session")
    parser.set_defaults(func=cmd_tui)
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser)

    ask = commands.add_parser("ask", help="send one prompt, stream the answer to stdout",
                              description="Send one prompt and stream the answer to stdout (reasoning to stderr).")
    _add_host_options(ask)
    ask.add_argument("--think", dest="think", action="store_true", default=None, help="thinking on for this turn")
    ask.add_argument("--no-think", dest="think", action="store_false", help="thinking off for this turn")
    ask.add_argument("--level", metavar="LEVEL", help="thinking level, for models that have levels (glm-5.2: high, xhigh; glm-5.3: low, high, max)")
    ask.add_argument("--json", dest="as_json", action="store_true",
                     help="print one JSON object when done (text, reasoning, usage, cache hit, cost) instead of streaming")
    which = ask.add_mutually_exclusive_group()
    which.add_argument("--session", metavar="ID", help="continue this session (number, id or id prefix)")
    which.add_argument("--new", action="store_true", help="start a new session (the default)")
    which.add_argument("-c", "--continue", dest="cont", action="store_true", help="continue the most recent session")
    ask.add_argument("--hide-reasoning", action="store_true", help="do not print the reasoning")
    ask.add_argument("--system", metavar="TEXT", help="system prompt (for a continued session: from now on)")
    ask.add_argument("--force", action="store_true", help="send even when the prompt looks too long for the host")
    ask.add_argument("--mcp", action="append", default=[], metavar="NAME",
                     help="let the model call the tools of this [mcp.NAME] server (repeat for more)")
    ask.add_argument("--yes", action="store_true", help="run every tool call without asking")
    ask.add_argument("--web-search", action="store_true",
                     help="let Z.ai search the web for this turn (kept on for the session); sources kept with the turn")
    ask.add_argument("prompt", nargs="*", help="the prompt; read from stdin when absent or '-'")
    ask.set_defaults(func=cmd_ask)

    sessions = commands.add_parser("sessions", help="list, show, export, import, delete, search sessions")
    sub = sessions.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)
    p = sub.add_parser("list", help="list sessions, most recent first")
    p.add_argument("--json", action="store_true", help="JSON for scripts")
    p.add_argument("--limit", type=_count, default=50, metavar="N", help="at most N sessions (default 50)")
    p.set_defaults(func=cmd_sessions_list)
    p = sub.add_parser("show", help="print a session")
    p.add_argument("id", metavar="ID")
    p.add_argument("--json", action="store_true", help="the full session as JSON")
    p.set_defaults(func=cmd_sessions_show)
    p = sub.add_parser("export", help="export a session as Markdown or JSON")
    p.add_argument("id", metavar="ID")
    p.add_argument("-o", "--output", metavar="FILE", help="file or folder to write (default: stdout)")
    p.add_argument("--format", choices=("md", "json"), default=None, help="default: md (or from the file name)")
    p.set_defaults(func=cmd_sessions_export)
    p = sub.add_parser("import", help="import a session from a JSON export")
    p.add_argument("file", metavar="FILE", help="JSON file ('-' for stdin)")
    p.set_defaults(func=cmd_sessions_import)
    p = sub.add_parser("delete", help="delete a session")
    p.add_argument("id", metavar="ID")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask")
    p.set_defaults(func=cmd_sessions_delete)
    p = sub.add_parser("fork", help="start a new session from the first N turns of one (nothing is copied)",
                       description="Start a new session whose history is the first N turns of SESSION's current "
                                   "branch. The turns are shared, not copied; SESSION is not changed. The new "
                                   "session's number is printed on the last line.")
    p.add_argument("id", metavar="SESSION")
    p.add_argument("--at", type=_turn_number, required=True, metavar="N",
                   help="keep the first N turns (1 to the session's length)")
    p.add_argument("--title", metavar="T", help="title of the new session (default: the source's, marked as a fork)")
    p.set_defaults(func=cmd_sessions_fork)
    p = sub.add_parser("search", help="full-text search over prompts, answers and reasoning")
    p.add_argument("query", metavar="QUERY", nargs="+")
    p.add_argument("--json", action="store_true", help="JSON for scripts")
    p.add_argument("--limit", type=_count, default=50, metavar="N", help="at most N matches (default 50)")
    p.set_defaults(func=cmd_sessions_search)

    serve = commands.add_parser(
        "serve", help="serve the TUI in a browser tab",
        description="Serve glmchat in a browser: each tab runs its own glmchat on this machine, with its keys "
                    "and sessions. Only this machine can connect unless --bind names another address; then the "
                    "printed URL carries a secret token that every request must have.",
    )
    serve.add_argument("--port", type=_port, default=8000, metavar="P", help="TCP port (default 8000; 0: any free port)")
    serve.add_argument("--bind", type=_bind_address, default="127.0.0.1", metavar="ADDR",
                       help="address to listen on (default 127.0.0.1; 0.0.0.0 for every address, with a token)")
    _add_host_options(serve)
    which = serve.add_mutually_exclusive_group()
    which.add_argument("--session", metavar="ID", help="each tab opens this session (number, id or id prefix)")
    which.add_argument("--new", action="store_true", help="each tab starts a new session")
    serve.set_defaults(func=cmd_serve)

    config = commands.add_parser("config", help="where the settings are, show them, store an API key")
    sub = config.add_subparsers(title="commands", metavar="COMMAND", parser_class=_Parser, required=True)
    p = sub.add_parser("path", help="print the config file, data folder, themes folder and log paths")
    p.set_defaults(func=cmd_config_path)
    p = sub.add_parser("show", help="print the settings (keys masked) and the hosts")
    p.set_defaults(func=cmd_config_show)
    p = sub.add_parser("set-key", help="store an API key for a host in the config file (mode 0600)")
    p.add_argument("host", metavar="HOST")
    p.add_argument("key", metavar="KEY", nargs="?", help="the key; read from the terminal (hidden) or stdin when absent")
    p.set_defaults(func=cmd_config_set_key)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the glmchat command; returns the exit code."""
    ctx = _Context()
    try:
        try:
            args = build_parser().parse_args(argv)
        except SystemExit as exc:  # --help / --version
            return exc.code if isinstance(exc.code, int) else EXIT_OK
        _merge_top_options(args)
        if args.func is not cmd_tui:
            ctx.config  # noqa: B018 - load it now, so its warnings come first (the TUI shows its own)
        return args.func(args, ctx)
    except KeyboardInterrupt:
        ctx.err("interrupted")
        return EXIT_INTERRUPTED
    except (UsageError, ConfigError) as exc:
        ctx.err(exc.message)
        return EXIT_USAGE
    except GlmChatError as exc:
        ctx.err(exc.message)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`glmchat ... | head`): not an error of ours.
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:  # noqa: BLE001 - the last line of defence: one line and a log
        ctx.err(ctx.crash_report(exc))
        return EXIT_FAILED
    finally:
        ctx.close()


def _merge_top_options(args: argparse.Namespace) -> None:
    """Give `ask` the options written before it; refuse them before commands that take none."""
    given = [name for name in _TOP_OPTIONS if getattr(args, f"top_{name}", None)]
    if args.func is cmd_tui:
        for name in _TOP_OPTIONS:
            setattr(args, name, getattr(args, f"top_{name}"))
    elif args.func is cmd_ask:
        for name in given:
            if not getattr(args, name):
                setattr(args, name, getattr(args, f"top_{name}"))
        if args.session and (args.new or args.cont):
            raise UsageError("--session cannot be combined with --new or --continue")
    elif given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        raise UsageError(f"{flags}: only for the TUI and `glmchat ask`")


# -- shared state of one command run --------------------------------------------------------


class _Context:
    """Config, paths and store, opened on demand; warnings printed once."""

    def __init__(self) -> None:
        self._paths: Paths | None = None
        self._config: Config | None = None
        self._store: Store | None = None
        self._warned: set[str] = set()

    @property
    def paths(self) -> Paths:
        if self._paths is None:
            from glmchat.config import paths

            self._paths = paths()
        return self._paths

    @property
    def config(self) -> Config:
        if self._config is None:
            from glmchat.config import load_config

            self._config = load_config(self.paths)
            self.warn_all(self._config.warnings)
        return self._config

    @property
    def store(self) -> Store:
        if self._store is None:
            from glmchat.store import Store

            self._store = Store.open(self.paths.data_dir)
            self.warn_all(self._store.warnings)
        return self._store

    @property
    def controller(self) -> Controller:
        from glmchat.controller import Controller

        return Controller(self.config, self.paths, store=self.store)

    def close(self) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            try:
                store.close()
            except Exception:  # noqa: BLE001 - closing must not hide the real outcome
                pass

    def warn_all(self, warnings: list[str]) -> None:
        for warning in warnings:
            if warning not in self._warned:
                self._warned.add(warning)
                self.err(f"warning: {warning}")

    def err(self, message: str) -> None:
        """One line on stderr, control characters made inert."""
        from glmchat.sanitize import inert

        line = " ".join(inert(self.scrub(str(message))).splitlines()) or "error"
        try:
            sys.stderr.write(f"glmchat: {line}\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    # -- crash reports ------------------------------------------------------------------

    def secrets(self) -> list[str]:
        """Every key value this process may know: from the environment and the config file."""
        from glmchat.hosts import BUILTIN_HOSTS

        names = {h.key_env for h in BUILTIN_HOSTS.values() if h.key_env}
        values: set[str] = set()
        config = self._config
        if config is not None:
            values.update(v for v in config.keys.values() if v)
            values.update(v for server in config.mcp_servers().values() for v in server.secrets())  # MCP headers, env
            for entry in config.hosts.values():
                if isinstance(entry.get("key_env"), str):
                    names.add(entry["key_env"])
        values.update(os.environ.get(name, "").strip() for name in names)
        # Longest first, so a key that contains another is scrubbed whole.
        return sorted((v for v in values if len(v) >= 8), key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """Whole keys masked (the last 4 characters say which one it was), pieces of them redacted."""
        from glmchat.config import mask_key
        from glmchat.sanitize import redact

        secrets = self.secrets()
        for secret in secrets:
            text = text.replace(secret, mask_key(secret))
        return redact(text, secrets)

    def crash_report(self, exc: BaseException) -> str:
        """Write the traceback (keys scrubbed) to the log; return the one line to show."""
        import time
        import traceback

        summary = self.scrub(f"{type(exc).__name__}: {exc}")
        try:
            log_file = self.paths.log_file
            text = self.scrub("".join(traceback.format_exception(exc)))
            fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8", errors="backslashreplace") as f:
                f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} glmchat {__version__} {' '.join(sys.argv[1:2])}\n{text}\n")
        except Exception:  # noqa: BLE001 - no log: still say what happened
            return f"unexpected error ({summary})"
        return f"unexpected error ({summary}); details in {log_file}"


def _silence_stdout() -> None:
    # After a broken pipe, Python's final flush of stdout would print a second error.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


class _Out:
    """Writes model text to a stream: inert on a terminal, the exact text when piped."""

    def __init__(self, stream: Any, dim: bool = False) -> None:
        self.tty = _isatty(stream)
        self.dim = dim and self.tty
        self._buffer = getattr(stream, "buffer", None)
        self._stream = stream
        from glmchat.sanitize import stream_redactor

        # Piped or not, a known API key (or a piece of one) echoed by a host is never printed.
        self._redactor = stream_redactor()
        self.broken = False
        self.at_line_start = True
        self.wrote = False
        self._dim_open = False

    def write(self, text: str, *, plain: bool = False) -> None:
        """Write model text; `plain` text is ours (a line break, a label) and goes out as is."""
        if not text or self.broken:
            return
        shown = text if plain else self._redactor.feed(text)
        if self.tty and not plain:
            from glmchat.sanitize import inert

            shown = inert(shown)
            if self.dim and not self._dim_open:
                # One style switch per run of reasoning, not one per token.
                shown = DIM + shown
                self._dim_open = True
        elif plain and self._dim_open:
            shown = RESET + text
            self._dim_open = False
        try:
            if self._buffer is not None:
                # Bytes, so the locale's encoding never changes what was streamed.
                self._buffer.write(shown.encode("utf-8", "replace"))
                self._buffer.flush()
            else:
                self._stream.write(shown)
                self._stream.flush()
        except BrokenPipeError:
            self.broken = True
            if self._stream is sys.stdout:
                _silence_stdout()
            return
        self.wrote = True
        self.at_line_start = text.endswith("\n")

    def end_line(self) -> None:
        """End the dim style and finish a started line (terminal only: piped output stays exact)."""
        if self.tty and self.wrote and not self.at_line_start:
            self.write("\n", plain=True)
        elif self._dim_open:
            at_line_start = self.at_line_start
            self.write(RESET, plain=True)
            self.at_line_start = at_line_start


# -- glmchat (the TUI) ----------------------------------------------------------------------------


def cmd_tui(args: argparse.Namespace, ctx: _Context) -> int:
    from glmchat.config import AppOptions

    options = AppOptions(host=args.host, base_url=args.base_url, model=args.model, session=args.session, new=args.new)
    # Start-up creates many objects and few cycles: the collector would run ~150 times
    # for nothing before the first frame. The app turns it back on once that frame is up.
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        from glmchat.ui.app import run_app  # Lazy import: Textual loads only for the TUI.
    except ImportError as exc:
        if gc_was_enabled:
            gc.enable()
        raise GlmChatError(f"the TUI is not available ({exc}); `glmchat ask` still works") from None
    result = run_app(options, resume_gc=gc_was_enabled)
    return result if isinstance(result, int) else EXIT_OK


# -- glmchat serve ----------------------------------------------------------------------------------


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"not a TCP port: {text!r} (0 to 65535)")
    return port


def _bind_address(text: str) -> str:
    address = text.strip()
    if not address or any(ch.isspace() or ch == "/" for ch in address):
        raise argparse.ArgumentTypeError(f"not an address to listen on: {text!r}")
    return address


def cmd_serve(args: argparse.Namespace, ctx: _Context) -> int:
    from glmchat.config import resolve_host

    # Every tab would fail the same way: say it once, before listening.
    resolve_host(ctx.config, args.host, base_url=args.base_url, model=args.model)
    app_args: list[str] = []
    for flag, value in (("--host", args.host), ("--base-url", args.base_url), ("--model", args.model)):
        if value:
            app_args += [flag, value]
    if args.session:
        app_args += ["--session", _resolve_session(ctx, args.session)]
    elif args.new:
        app_args.append("--new")
    ctx.close()  # the tabs' apps open the store themselves; this process never needs it again
    try:
        from glmchat.web.server import ServeOptions, serve  # Lazy import: only `serve` loads the web server.
    except ImportError as exc:
        raise GlmChatError(f"`glmchat serve` needs the textual-serve package ({exc}); pip install textual-serve") from None
    return serve(ServeOptions(bind=args.bind, port=args.port, app_args=tuple(app_args)))


# -- glmchat ask ------------------------------------------------------------------------------------


def _read_prompt(args: argparse.Namespace) -> str:
    words = args.prompt
    if words and words != ["-"]:
        return " ".join(words)
    if not words and _isatty(sys.stdin):
        raise UsageError("no prompt: give one as arguments, or pipe it on stdin (or use '-' to type it)")
    data = sys.stdin.buffer.read() if hasattr(sys.stdin, "buffer") else sys.stdin.read().encode()
    return data.decode("utf-8", "replace")


def _open_session(args: argparse.Namespace, ctx: _Context) -> tuple[Session, bool]:
    """The session to add the turn to, and whether it is new."""
    store = ctx.store
    session_id: str | None = None
    if args.session:
        session_id = _resolve_session(ctx, args.session)
    elif args.cont:
        session_id = store.most_recent_session_id()
    if session_id is not None:
        return store.load_session(session_id), False

    from glmchat.config import new_session

    return new_session(ctx.config), True


def _resolve_session(ctx: _Context, ref: str) -> str:
    try:
        return ctx.store.resolve_id(ref)
    except (KeyError, LookupError, ValueError) as exc:
        what = exc.message.rstrip(".") if isinstance(exc, GlmChatError) else f"no session {ref!r}"
        raise UsageError(f"{what} (see `glmchat sessions list`)") from None


def cmd_ask(args: argparse.Namespace, ctx: _Context) -> int:
    from glmchat.config import resolve_host
    from glmchat.usage import request_estimate

    prompt = _read_prompt(args)
    if not prompt.strip():
        raise UsageError("the prompt is empty")
    config = ctx.config
    host: Host | None = None
    if not (args.session or args.cont):
        # Check host and key before touching the store: a typo fails fast and leaves nothing behind.
        host = resolve_host(config, args.host, base_url=args.base_url, model=args.model)
        _require_key(config, host)
    session, is_new = _open_session(args, ctx)
    if host is None:
        # A continued session keeps its host and model unless told otherwise.
        model = args.model
        if not model and not is_new and args.host in (None, session.host):
            model = session.model
        host = resolve_host(config, args.host or (None if is_new else session.host), base_url=args.base_url, model=model)
    session.host, session.model = host.id, host.default_model
    from glmchat.models import host_for_model

    host = host_for_model(host, session.model)  # the model's own context and output limits
    api_key = _require_key(config, host)
    tool_names = ctx.controller.check_tools(host, args.mcp)
    if args.web_search:
        from glmchat.protocol.openai import supports_web_search

        if not supports_web_search(host):
            raise UsageError(f"{host.name} has no built-in web search (Z.ai and BigModel do)")
        if not session.web_search:
            session.web_search = True
            if not is_new:
                ctx.store.save_session(session, turns=False)
    if args.system is not None and args.system != session.system_prompt:
        session.system_prompt = args.system
        if not is_new:
            # Starting a turn records only the session's host and model; settings are saved here.
            ctx.store.save_session(session, turns=False)

    estimate = request_estimate(session, prompt)
    if estimate > host.context_window:
        message = (
            f"the request is about {estimate:,} tokens, more than {host.name}'s context window "
            f"of {host.context_window:,} tokens"
        )
        if not args.force:
            raise UsageError(f"{message}; not sent (use --force to send anyway, or start a new session)")
        ctx.err(f"warning: {message}; sending anyway (--force)")

    thinking = args.think if args.think is not None else (config.thinking if is_new else session.thinking_next)
    if args.level is not None and args.think is None:
        thinking = True  # a level asks for thinking
    turn = session.new_turn(prompt, thinking)
    note = _settle_level(host, session, turn, args.level)
    if note:
        ctx.err(f"note: {note}")
    out = _Out(io.StringIO() if args.as_json else sys.stdout)
    reasoning_out = None if args.hide_reasoning or args.as_json else _Out(sys.stderr, dim=True)
    printer = _TurnPrinter(out, reasoning_out, ctx)
    tools = None
    if tool_names:
        from glmchat.cli_tools import approver

        approve = approver(args.yes, printer, ctx)
        tools = lambda: ctx.controller.tools(  # noqa: E731 - opened inside the event loop
            host, tool_names, approve=approve, on_call=printer.tool_call, on_notice=printer.notice
        )

    import asyncio

    try:
        signum = asyncio.run(_stream_turn(host, session, turn, api_key, ctx.store, printer, config.stall_timeout, tools))
    except KeyboardInterrupt:
        printer.close()
        ctx.err(f"stopped; the partial answer is kept in {_session_label(ctx, session)}")
        return EXIT_INTERRUPTED
    printer.close()
    if args.as_json:
        _print_json(ask_result(host, session, turn))
    if signum is not None:
        import signal

        name = signal.Signals(signum).name
        ctx.err(f"stopped by {name}; the partial answer is kept in {_session_label(ctx, session)}")
        return 128 + signum  # the shell's convention: 143 for SIGTERM, 129 for SIGHUP
    return _report_turn(ctx, host, session, turn, is_new)


def _settle_level(host: Host, session: Session, turn: Turn, level: str | None) -> str:
    """Put `--level` on the turn and settle its thinking for the model; returns a note when it was adjusted.

    Raises:
        UsageError: the model has no levels, or not this one.
    """
    from glmchat.models import model_info, resolve_thinking

    try:
        info = model_info(host, turn.model or session.model)
    except ValueError as exc:
        raise ConfigError(f"{host.name}: {exc}") from None
    if level is not None:
        if not info.has_levels:
            raise UsageError(f"{info.name} has no thinking levels; use --think or --no-think")
        if level not in info.levels:
            raise UsageError(f"{info.name} has no level {level!r}; its levels: {', '.join(info.levels)}")
        turn.thinking_level = level
    choice = resolve_thinking(info, turn.thinking, turn.thinking_level)
    turn.thinking, turn.thinking_level = choice.thinking, choice.level
    return choice.note


def ask_result(host: Host, session: Session, turn: Turn) -> dict[str, Any]:
    """`ask --json`'s object: the turn's text, reasoning, usage and cost (known API keys redacted)."""
    from glmchat.sanitize import redact
    from glmchat.usage import turn_report

    figures = turn_report(turn, host)
    return {
        "session": session.id,
        "turn": turn.id,
        "host": host.id,
        "demo": host.demo,
        "model": turn.model,
        "thinking": turn.thinking,
        "thinking_level": turn.thinking_level,
        "status": str(turn.status),
        "error": redact(turn.error) if turn.error else None,
        "text": redact(turn.content),
        "reasoning": redact(turn.reasoning),
        "usage": figures,
        "cost_usd": figures["cost_usd"],
    }


def _print_json(data: dict[str, Any]) -> None:
    import json

    sys.stdout.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")
    sys.stdout.flush()


def _require_key(config: Config, host: Host) -> str | None:
    from glmchat.config import api_key_for, missing_key_message

    api_key = api_key_for(config, host)
    if api_key is None and not host.local:
        raise ConfigError(missing_key_message(host))
    return api_key


_STOP_SIGNALS = ("SIGTERM", "SIGHUP")
"""Signals that stop `ask` the way Ctrl+C does: the partial turn is saved as stopped first."""


async def _stream_turn(
    host: Host, session: Session, turn: Turn, api_key: str | None, store: Store, printer: _TurnPrinter,
    stall_timeout: float | None = None,
    tools: Callable[[], AbstractAsyncContextManager[ToolRunner | None]] | None = None,
) -> int | None:
    """Stream the turn; return the number of the signal that stopped it (None when it ran its course)."""
    import asyncio
    import signal

    from glmchat.turn_runner import run_turn
    from glmchat.client import GlmClient

    loop = asyncio.get_running_loop()
    task = asyncio.current_task()
    received: list[int] = []

    def stop(signum: int) -> None:
        if not received and task is not None:
            received.append(signum)
            task.cancel()  # run_turn marks the turn stopped and saves it before the cancel goes on

    installed = []
    for name in _STOP_SIGNALS:
        signum = getattr(signal, name, None)
        if signum is None:
            continue
        try:
            loop.add_signal_handler(signum, stop, signum)
        except (NotImplementedError, RuntimeError, ValueError):  # no signals here (Windows, a thread)
            continue
        installed.append(signum)
    try:
        if host.demo:
            from glmchat.demo import demo_client

            client_cm = demo_client(stall_timeout=stall_timeout)
        else:
            client_cm = GlmClient(stall_timeout=stall_timeout)
        async with client_cm as client, (tools or _no_tools)() as runner:
            await run_turn(client, host, session, turn, api_key=api_key, store=store, on_event=printer, tools=runner)
    except asyncio.CancelledError:
        if received:
            return received[0]
        raise
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    return None


@asynccontextmanager
async def _no_tools() -> AsyncIterator[None]:
    yield None


class _TurnPrinter:
    """on_event callback of `ask`: answer to stdout, reasoning to stderr, retries noted."""

    def __init__(self, out: _Out, reasoning: _Out | None, ctx: _Context) -> None:
        self.out = out
        self.reasoning = reasoning
        self.ctx = ctx

    def __call__(self, event: Any) -> None:
        from glmchat.protocol.events import ContentDelta, ReasoningDelta, Retrying, WebSearchResults

        if isinstance(event, ContentDelta):
            if event.text:
                self._end_reasoning()
                self.out.write(event.text)
        elif isinstance(event, ReasoningDelta):
            if self.reasoning is not None:
                self.reasoning.write(event.text)
        elif isinstance(event, WebSearchResults):
            for item in event.items:
                title = " ".join(str(item.get("title") or item.get("media") or "untitled").split())
                self.line(f"source: {title} <{item.get('link') or ''}>")
        elif isinstance(event, Retrying):
            self._end_reasoning()
            message = str(event.error).rstrip()
            if not message.endswith((".", "?", "!")):
                message += "."
            self.ctx.err(f"{message} Retrying in {event.delay:.0f} s (attempt {event.attempt}).")

    def tool_call(self, event: CallEvent) -> None:
        """One line on stderr per finished call (the approval question, if any, came before it)."""
        if event.result is None:
            return
        from glmchat.cli_tools import call_line

        self.line(call_line(event))

    def notice(self, line: str) -> None:
        self.line(f"warning: {line}")

    def line(self, text: str) -> None:
        """A line of ours on stderr, after whatever reasoning was streaming there."""
        self._end_reasoning()
        self.ctx.err(text)

    def _end_reasoning(self) -> None:
        # A line break after the reasoning, so the two streams read well on one terminal.
        if self.reasoning is not None and self.reasoning.wrote:
            if self.reasoning.at_line_start:
                self.reasoning.end_line()
            else:
                self.reasoning.write("\n", plain=True)

    def close(self) -> None:
        self._end_reasoning()
        self.out.end_line()


def _session_label(ctx: _Context, session: Session) -> str:
    try:
        return f"session {ctx.store.session_number(session.id)}"
    except GlmChatError:  # a label is not worth failing for
        return f"session {session.id[:8]}"


def _report_turn(ctx: _Context, host: Host, session: Session, turn: Turn, is_new: bool) -> int:
    from glmchat.session import TurnStatus

    label = _session_label(ctx, session)
    if turn.status == TurnStatus.COMPLETE:
        if is_new and _isatty(sys.stderr):
            ctx.err(label)
        return EXIT_OK
    if turn.status == TurnStatus.TRUNCATED:
        # The turn runner worded why the host ended it early.
        why = turn.error or f"{host.name}: the answer ended early"
        ctx.err(f"{why.rstrip('.')}; the partial answer is kept in {label}")
    elif turn.status == TurnStatus.ERROR:
        ctx.err(f"{turn.error or 'the request failed'} (kept in {label})")
    elif turn.status == TurnStatus.STOPPED:
        ctx.err(f"stopped; the partial answer is kept in {label}")
        return EXIT_INTERRUPTED
    else:
        ctx.err(f"the turn ended as {turn.status} (kept in {label})")
    return EXIT_FAILED


# -- glmchat sessions ---------------------------------------------------------------------------------


def _fmt_time(ts: Any) -> str:
    """A stored time as local "YYYY-MM-DD HH:MM", or "unknown" for a value no calendar holds."""
    import time

    from glmchat.sanity import sane_time

    when = sane_time(ts)
    if when is None:
        return "unknown"
    try:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(when))
    except (OverflowError, OSError, ValueError):
        return "unknown"


def _print(text: str = "", *, exact: bool = False) -> None:
    """Print stored text to stdout: inert on a terminal (unless exact is asked), as is when piped."""
    out = _Out(sys.stdout)
    if exact:
        out.tty = False
    out.write(text + "\n")
    if out.broken:
        raise BrokenPipeError


def _summary_dict(summary: SessionSummary) -> dict[str, Any]:
    import dataclasses

    return dataclasses.asdict(summary)


def cmd_sessions_list(args: argparse.Namespace, ctx: _Context) -> int:
    import json

    summaries = ctx.store.list_sessions(limit=args.limit)
    if args.json:
        _print(json.dumps([_summary_dict(s) for s in summaries], ensure_ascii=False, indent=2), exact=True)
        return EXIT_OK
    if not summaries:
        ctx.err("no sessions yet")
        return EXIT_OK
    width = max(len(str(s.number)) for s in summaries)
    for s in summaries:
        turns = f"{s.turn_count} turn" + ("" if s.turn_count == 1 else "s")
        _print(f"{s.number:>{width}}  {_fmt_time(s.updated_at)}  {turns:>9}  {s.host}/{s.model}  {s.title}")
    return EXIT_OK


def _load(ctx: _Context, ref: str) -> Session:
    return ctx.store.load_session(_resolve_session(ctx, ref))


def cmd_sessions_show(args: argparse.Namespace, ctx: _Context) -> int:
    if args.json:
        from glmchat.export import to_json

        # The whole tree: every branch, and which path is current (`head`).
        _print(to_json(ctx.store.load_tree(_resolve_session(ctx, args.id))), exact=True)
        return EXIT_OK
    session = _load(ctx, args.id)
    _print(f"{_session_label(ctx, session)}: {session.title}")
    _print(f"{session.host}/{session.model}, {len(session.turns)} turns, "
           f"created {_fmt_time(session.created_at)}, updated {_fmt_time(session.updated_at)}")
    if session.system_prompt:
        _print(f"system: {session.system_prompt}")
    dim = _isatty(sys.stdout)
    for n, turn in enumerate(session.turns, 1):
        status = "" if turn.status == "complete" else f" [{turn.status}]"
        branch = session.branches.get(turn.id)
        where = f", branch {branch.position}/{branch.count}" if branch else ""
        _print(f"\n--- turn {n}{status} ({'thinking' if turn.thinking else 'no thinking'}{where})")
        _print(f"> {turn.user_text}")
        for step in turn.steps:
            if step.reasoning:
                _print(f"{DIM}{_inert(step.reasoning)}{RESET}" if dim else step.reasoning, exact=dim)
            if step.content:
                _print(step.content)
            for call, result in zip(step.tool_calls, [*step.tool_results, *([None] * len(step.tool_calls))]):
                _print(f"[tool {call.name} {call.arguments}]")
                if result is not None:
                    _print(f"[result{' (error)' if result.is_error else ''}] {result.content}")
        if turn.error:
            _print(f"error: {turn.error}")
    return EXIT_OK


def _inert(text: str) -> str:
    from glmchat.sanitize import inert

    return inert(text)


def cmd_sessions_export(args: argparse.Namespace, ctx: _Context) -> int:
    from pathlib import Path

    from glmchat.controller import ExportFormat

    # The settings only: the turns are read a page at a time while the export is written.
    session = ctx.store.load_session(_resolve_session(ctx, args.id), last=0)
    target = Path(args.output).expanduser() if args.output else None
    fmt = args.format
    if fmt is None:
        fmt = "json" if target is not None and target.suffix.lower() == ".json" else "md"
    kind = ExportFormat(fmt)
    if target is None:
        _print_pieces(ctx.controller.export_pieces(session, kind))
        return EXIT_OK
    written = ctx.controller.export(session, kind, target)
    ctx.err(f"wrote {written}")
    return EXIT_OK


def _print_pieces(pieces: Iterable[str]) -> None:
    """Print a document given in pieces to stdout as they come (exact, as a pipe wants it)."""
    out = _Out(sys.stdout)
    out.tty = False  # already inert: exported Markdown has no control characters, JSON escapes them
    for piece in pieces:
        out.write(piece)
        if out.broken:
            raise BrokenPipeError


def cmd_sessions_import(args: argparse.Namespace, ctx: _Context) -> int:
    if args.file == "-":
        text = sys.stdin.buffer.read().decode("utf-8", "replace")
        name = "stdin"
    else:
        try:
            with open(args.file, "rb") as f:
                raw = f.read()
        except OSError as exc:
            raise GlmChatError(f"cannot read {args.file}: {exc.strerror or exc}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise GlmChatError(f"{args.file}: not a glmchat JSON export (not UTF-8 text)") from None
        name = args.file
    try:
        imported = ctx.controller.import_file(text)
    except GlmChatError as exc:
        # A file that is not a valid export is bad input, like a bad option (exit code 2).
        raise UsageError(f"{name}: {exc.message}") from None
    _print(f"imported {_session_label(ctx, imported)}: {imported.title}")
    return EXIT_OK


def cmd_sessions_delete(args: argparse.Namespace, ctx: _Context) -> int:
    session_id = _resolve_session(ctx, args.id)
    session = ctx.store.load_session(session_id)
    label = _session_label(ctx, session)
    if not args.yes:
        if not _isatty(sys.stdin):
            raise UsageError(f"not deleting {label} without --yes (stdin is not a terminal)")
        sys.stderr.write(f"Delete {label} \"{_inert(session.title)}\" ({len(session.turns)} turns)? [y/N] ")
        sys.stderr.flush()
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            ctx.err("not deleted")
            return EXIT_FAILED
    ctx.store.delete_session(session_id)
    ctx.err(f"deleted {label}")
    return EXIT_OK


def cmd_sessions_fork(args: argparse.Namespace, ctx: _Context) -> int:
    session_id = _resolve_session(ctx, args.id)
    try:
        forked = ctx.controller.fork(session_id, args.at, args.title)
    except TurnNotFound as exc:
        raise UsageError(exc.message) from None
    ctx.err(f"forked {args.at} turn{'s' if args.at != 1 else ''} of session {ctx.store.session_number(session_id)}")
    _print(str(ctx.store.session_number(forked)))
    return EXIT_OK


def _search(ctx: _Context, query: str, limit: int) -> list[Any]:
    """The store's search, in a thread so that Ctrl+C stops it at once (SQLite is interrupted)."""
    import threading

    from glmchat.store import SearchCancel

    store = ctx.store
    cancel = SearchCancel()
    outcome: dict[str, Any] = {}

    def work() -> None:
        try:
            outcome["hits"] = store.search(query, limit=limit, cancel=cancel)
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread as is
            outcome["error"] = exc

    thread = threading.Thread(target=work, name="glmchat-search", daemon=True)
    thread.start()
    try:
        while thread.is_alive():
            thread.join(0.1)
    except KeyboardInterrupt:
        cancel.cancel()
        thread.join(5)
        raise
    if "error" in outcome:
        raise outcome["error"]
    return outcome["hits"]


def cmd_sessions_search(args: argparse.Namespace, ctx: _Context) -> int:
    import dataclasses
    import json

    query = " ".join(args.query)
    hits = _search(ctx, query, args.limit)
    if args.json:
        keys = ("session_id", "turn_id", "title", "snippet", "field", "branch")
        rows = [{k: v for k, v in dataclasses.asdict(h).items() if k in keys} for h in hits]
        _print(json.dumps(rows, ensure_ascii=False, indent=2), exact=True)
        return EXIT_OK
    if not hits:
        ctx.err(f"nothing found for {query!r}")
        return EXIT_FAILED
    for h in hits:
        number = h.session_number
        snippet = " ".join(str(h.snippet).split())
        where = f" ({h.branch})" if h.branch else ""
        _print(f"{number}  {h.title}  [{h.field}{where}] {snippet}")
    return EXIT_OK


# -- glmchat config -----------------------------------------------------------------------------------


def cmd_config_path(args: argparse.Namespace, ctx: _Context) -> int:
    p = ctx.paths
    _print(f"config  {p.config_file}\ndata    {p.data_dir}\nthemes  {p.themes_dir}\nlog     {p.log_file}")
    return EXIT_OK


def cmd_config_show(args: argparse.Namespace, ctx: _Context) -> int:
    import tomli_w

    from glmchat.config import key_source, known_host_ids, mask_key, masked_config_dict, resolve_host

    config = ctx.config
    data = masked_config_dict(config)  # keys, MCP headers and env values masked
    _print(f"# {config.path}")
    _print(tomli_w.dumps(data).rstrip("\n"))
    _print("\n# hosts (* = default)")
    for host_id in known_host_ids(config):
        mark = "*" if host_id == config.host else " "
        try:
            host = resolve_host(config, host_id)
        except GlmChatError as exc:
            _print(f"#{mark} {host_id:<11} error: {exc.message}")
            continue
        from glmchat.config import api_key_for

        source = key_source(config, host)
        key = f"key {mask_key(api_key_for(config, host))} from {source}" if source else (
            "no key needed" if host.local else f"no key (set {host.key_env} or run `glmchat config set-key {host_id}`)"
            if host.key_env else f"no key (run `glmchat config set-key {host_id}`)")
        _print(f"#{mark} {host_id:<11} {host.default_model:<22} {host.base_url}  {key}")
    return EXIT_OK


def cmd_config_set_key(args: argparse.Namespace, ctx: _Context) -> int:
    from glmchat.config import known_host_ids, mask_key, save_config

    config = ctx.config
    if args.host not in known_host_ids(config):
        raise UsageError(f"unknown host {args.host!r}; known hosts: {', '.join(known_host_ids(config))}")
    key = args.key
    if key is None:
        if _isatty(sys.stdin):
            import getpass

            key = getpass.getpass(f"API key for {args.host} (input hidden): ")
        else:
            key = sys.stdin.readline()
    key = (key or "").strip()
    if not key:
        raise UsageError("no key given; nothing saved")
    if any(ch.isspace() or ord(ch) < 0x20 for ch in key):
        raise UsageError("the key contains spaces or control characters; nothing saved")
    config.keys[args.host] = key
    path = save_config(config, ctx.paths)
    ctx.err(f"saved the key for {args.host} ({mask_key(key)}) in {path} (mode 0600)")
    return EXIT_OK

