"""GlmChatApp: config, store, client, themes and screens put together.

Start-up stays lean: the config is a small TOML file, the store opens with the
session list and the last turns of one session only, httpx is imported on the
first send, and dialogs are imported when they are opened.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Iterable

from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from glmchat.config import (
    AppOptions,
    Config,
    Paths,
    load_config,
    new_session,
    paths as default_paths,
)
from glmchat.controller import Controller
from glmchat.errors import ConfigError, DamagedStorage, GlmChatError
from glmchat.session import Session
from glmchat.ui.config_writer import ConfigWriter
from glmchat.ui.drafts import NEW_SESSION
from glmchat.ui.keys import register_alt_keys
from glmchat.ui.screens.chat import ChatScreen
from glmchat.ui.themes import DEFAULT_THEME, THEME_VARIABLE_DEFAULTS, load_themes, register_themes
from glmchat.ui.widgets.chat_log import PAGE

if TYPE_CHECKING:
    from textual.driver import Driver
    from textual.timer import Timer

    from glmchat.client import GlmClient
    from glmchat.hosts import Host
    from glmchat.store import Store
    from glmchat.ui.terminal import TerminalDriver


CHECK_MARKER = "check-on-start"
"""A file in the data dir asking the next start to check the database before using it."""

_POSIX = sys.platform != "win32"

EXIT_SIGNALS: tuple[signal.Signals, ...] = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT) if _POSIX else ()
"""Signals that close the app the orderly way (stream stopped and saved, drafts saved, terminal restored).

In a terminal Ctrl+C is a key (the terminal is in raw mode); SIGINT comes from elsewhere: `kill -INT`,
or under `glmchat serve`, whose Ctrl+C reaches every tab's app with the server."""


def signal_exit_code(signum: int) -> int:
    """The exit code after closing on a signal: 128 + its number (143 for SIGTERM, 129 for SIGHUP).

    It is the code a shell reports for a process the signal ended, so scripts and
    service managers read the exit the same way whether or not glmchat caught it.
    """
    return 128 + signum


class GlmChatApp(App[int]):
    """The glmchat TUI.

    Args:
        options: What the command line asked for (host, base URL, model, session, new).
        paths: Where config and data live (default: `glmchat.config.paths()`).
        config: A config to use instead of loading one (tests).
        store: An open store to use instead of opening one (tests); None opens
            `paths.data_dir`'s store.
        client: A `GlmClient` to use (tests); default: one created on the first send.
        clock: Wall-clock time (tests pin it to keep screenshots stable).
        probe: Let the setup screen look for local servers.
    """

    TITLE = "glmchat"
    CSS_PATH = ["app.tcss", "screens/chat.tcss"]
    """The chat screen is the default screen, whose own CSS_PATH Textual does not load: its file is listed here."""
    PAUSE_GC_ON_SCROLL = True

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help", tooltip="Show the keys and how glmchat works.", id="help"),
        Binding("f4", "settings", "Settings", tooltip="Host, base URL, model, sampling, thinking, theme.", id="settings"),
        Binding("ctrl+q", "quit", "Quit", tooltip="Quit glmchat.", id="quit", priority=True, show=False),
    ]

    def __init__(
        self,
        options: AppOptions | None = None,
        *,
        paths: Paths | None = None,
        config: Config | None = None,
        store: Store | None = None,
        client: GlmClient | None = None,
        clock: Callable[[], float] = time.time,
        probe: bool = True,
    ) -> None:
        super().__init__()
        register_alt_keys()
        self.options = options or AppOptions()
        self.paths = paths or default_paths()
        self.config = config if config is not None else load_config(self.paths)
        self.store: Store | None = store
        self._own_store = store is None
        self._client = client
        self._own_client = client is None
        self._demo_client: GlmClient | None = None
        self.clock = clock
        self.probe = probe
        self.controller = Controller(self.config, self.paths, options=self.options, store=store, client=client, clock=clock)
        """Sessions, turns, hosts and exports: what the screens ask for."""
        self.chat = ChatScreen()
        self._saved_state = (self.config.last_session, self.config.sidebar)
        """What config.toml says of the UI state (compared at exit: written only if it changed)."""
        self._config_writer = ConfigWriter(self.paths)
        self._config_error_shown = False
        self._settle_timer: Timer | None = None
        self._theme_failures: list[str] = []
        self._check_pending = False
        self.resume_gc = False
        """The garbage collector was paused for start-up: `_warm_up` turns it back on."""
        self.exit_signal: int | None = None
        """The signal the app is closing on (None: not closing on a signal)."""
        self._signal_loop: asyncio.AbstractEventLoop | None = None
        self._caught_signals: list[int] = []
        self._starting = True
        """Until the first session is open: a signal then waits for that (see `start_chat`)."""
        self._register_themes()

    # -- themes ----------------------------------------------------------------------------

    def get_theme_variable_defaults(self) -> dict[str, str]:
        return dict(THEME_VARIABLE_DEFAULTS)

    def _register_themes(self) -> None:
        result = load_themes(self.paths.themes_dir)
        register_themes(self, result, notify=False)
        self._theme_failures = list(result.failures)
        self.own_themes = result.names
        """glmchat's shipped themes and the user's own, in load order (listed before Textual's)."""
        wanted = self.config.theme or DEFAULT_THEME
        for name in (wanted, DEFAULT_THEME, "textual-dark"):
            if name in self.available_themes:
                self._set_start_theme(name)
                break
        if wanted not in self.available_themes:
            self._theme_failures.append(f"theme {wanted!r} is not installed; using {self.theme}")

    def _set_start_theme(self, name: str) -> None:
        """Choose the theme before the app runs.

        Assigning `theme` makes Textual re-parse every stylesheet once the app
        runs (its watcher queues a CSS refresh), on top of the first parse, which
        already uses the theme in place: that is ~15 ms of start-up for nothing.
        So the value is set without the watcher, and what the watcher does
        besides (the theme's classes, the ANSI colour mapping) is done here.
        """
        self.set_reactive(App.theme, name)
        # The stylesheet took the default theme's variables when the app was made; it is not parsed yet.
        self.stylesheet.set_variables(self.get_css_variables())
        theme = self.current_theme
        classes = {cls: False for cls in self.classes if cls.startswith("-theme-")}
        classes.update({f"-theme-{theme.name}": True, "-dark-mode": theme.dark, "-light-mode": not theme.dark})
        self.update_classes(classes, update=False)
        refresh_filter = getattr(self, "_refresh_truecolor_filter", None)
        if refresh_filter is not None:
            refresh_filter(self.ansi_theme)

    # -- start -----------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[Any]:
        return self.chat

    async def start_chat(self) -> None:
        """Open the store and the first session (called when the chat screen mounts)."""
        for warning in self.config.warnings:
            self.notify(warning, title="Config", severity="warning", timeout=10, markup=False)
        if self._theme_failures:
            self.notify("\n".join(self._theme_failures), title="Themes", severity="warning", timeout=10, markup=False)
        from glmchat.ui.drafts import drafts_path, load_drafts

        self.chat.drafts.update(load_drafts(drafts_path(self.paths.data_dir)))
        try:
            self._open_store()
            session, partial = self._initial_session()
            await self.chat.open_session(session, partial=partial)
        finally:
            self._starting = False
            if self.exit_signal is not None:
                # A signal came while the screen was being built: closing then would pull
                # the widgets out from under the mount. Close now that it is done.
                self.exit(return_code=signal_exit_code(self.exit_signal))
        if self.exit_signal is not None:
            return
        host = self.chat.current_host()
        if host is not None and self.needs_key(host):
            self.action_setup()
        # Once the first frame is up, load what the first send needs (httpx, the
        # protocol, the Markdown parser) while the user types.
        self.call_after_refresh(self._warm_up)

    def _warm_up(self) -> None:
        if self.resume_gc:
            import gc

            self.resume_gc = False
            gc.enable()
        client = self.get_client()
        self.run_worker(lambda: _warm_imports(client), thread=True, group="warm-up", exit_on_error=False)
        driver = self._terminal_driver()
        if driver is not None and driver.input_tty:
            # A closed terminal is noticed by SIGHUP, or by the next failed write; this
            # catches the rest (no SIGHUP came, nothing was drawn): one ioctl a second.
            self.set_interval(1.0, self._watch_terminal, name="watch terminal")
        if self._check_pending and self.store is not None:
            self._check_pending = False
            self.run_worker(self._check_store, thread=True, group="store-check", exit_on_error=False)
        self.request_settle(1.0)

    def _mark_for_check(self) -> None:
        """Have the next start run the full check (which sets a damaged file aside)."""
        try:
            (self.paths.data_dir / CHECK_MARKER).touch()
        except OSError:
            pass

    def _check_store(self) -> None:
        """Check the database for damage (a thread worker, after the first frame).

        It uses a connection of its own, read-only, so the app's reads and writes
        go on meanwhile; a problem found is reported, and the file is set aside on
        the next start (when the store opens with its full check).
        """
        assert self.store is not None
        from glmchat.store.files import quick_check

        problem = quick_check(self.store.path)
        if problem:
            self._mark_for_check()
            self.call_from_thread(
                self.notify,
                f"The database {self.store.path} looks damaged ({problem}). Export what you need; "
                "glmchat will set the file aside and start a new one the next time it starts.",
                title="Storage",
                severity="error",
                timeout=30,
                markup=False,
            )

    def request_settle(self, delay: float = 2.0) -> None:
        """Settle memory once the app has been quiet for `delay` seconds (see `settle_memory`)."""
        if self._settle_timer is not None:
            self._settle_timer.stop()
        self._settle_timer = self.set_timer(delay, self.settle_memory)

    def settle_memory(self) -> None:
        """Collect garbage now (while idle) and exempt what survives from later collections.

        A full collection walks every object the app holds (tens of thousands of
        Textual objects): left to itself, Python runs one in the middle of a
        stream and the screen stalls for ~80 ms. Frozen objects are skipped, so
        the collections during a stream only walk what the stream created.
        Frozen objects are thawed first, so widgets unmounted since the last
        settle (paged-out turns, closed sessions) are collected too.
        """
        import gc

        self._settle_timer = None
        if self.chat.live is not None:
            self.request_settle()
            return
        gc.unfreeze()
        gc.collect()
        gc.freeze()

    def _open_store(self) -> None:
        if self.store is None:
            from glmchat.store import Store

            try:
                # The integrity check reads the whole file: it runs after the first frame
                # (see `_check_store`), not before it.
                marker = self.paths.data_dir / CHECK_MARKER
                full = marker.exists()
                self.store = self.controller.store = Store.open(self.paths.data_dir, verify=full)
                self._check_pending = not full
                if full:
                    marker.unlink(missing_ok=True)
            except GlmChatError as exc:
                self.notify(
                    f"{exc} Sessions will not be saved in this run.", title="Storage", severity="error", timeout=15, markup=False
                )
                return
        for warning in self.store.warnings:
            self.notify(warning, title="Storage", severity="warning", timeout=15, markup=False)

    def _initial_session(self) -> tuple[Session, bool]:
        options = self.options
        session: Session | None = None
        partial = False
        # Quit while typing in a new session: come back to it, text and all.
        resume_new = NEW_SESSION in self.chat.drafts and not options.session
        if self.store is not None and not options.new and not resume_new:
            wanted = options.session or self.config.last_session
            if wanted:
                session, partial = self.load_session(wanted, quiet=not options.session)
            if session is None:
                try:
                    recent = self.store.most_recent_session_id()
                except GlmChatError:
                    recent = None
                if recent:
                    session, partial = self.load_session(recent)
        if session is None:
            return self.new_session(), False
        if options.host and options.host != session.host:
            session.host = options.host
            session.model = options.model or self._default_model(options.host)
        elif options.model:
            session.model = options.model
        return session, partial

    def _default_model(self, host_id: str) -> str:
        try:
            return self.host_for_id(host_id).default_model
        except ConfigError:
            return "glm-4.7"

    # -- sessions --------------------------------------------------------------------------

    def new_session(self) -> Session:
        """A new, unsaved session with the config's defaults (saved with its first turn)."""
        config = self.config
        host_id = self.options.host or config.host
        model = self.options.model or (config.model if host_id == config.host else "") or self._default_model(host_id)
        return new_session(config, host_id, model)

    def load_session(self, ref: str, *, quiet: bool = False) -> tuple[Session | None, bool]:
        """Load a session's last turns; returns (session, partial) or (None, False) with a notification."""
        if self.store is None:
            return None, False
        try:
            session, point = self.store.load_session_synced(ref, last=PAGE + 1)
        except DamagedStorage as exc:
            # Rows that do not decode: the file is damaged (the check that would have
            # found it runs after the first frame). Start on a new session and have
            # the next start check the file and set it aside.
            self._mark_for_check()
            self.notify(
                f"Session {ref} could not be read; the database may be damaged. ({exc})",
                title="Storage",
                severity="error",
                timeout=15,
                markup=False,
            )
            return None, False
        except GlmChatError as exc:
            if not quiet:
                self.notify(str(exc), severity="error", markup=False)
            return None, False
        # What other windows write to it from now on is taken in before each send.
        self.chat.sync_points[session.id] = point
        # PAGE + 1 asked for: a full page means there may be older turns to load.
        return session, len(session.turns) > PAGE

    def remember_session(self, session: Session) -> None:
        """The session to reopen next time: saved as soon as it changes, so even a killed
        process comes back to it (called when a session opens and when it gets its first turn).

        A session with no turns is not stored yet: its id would mean nothing after a
        restart, so the one remembered before stays. The write runs in a thread; it
        happens only when the session changes, never per keystroke or per token.
        """
        if self.store is None or not session.turns or self.config.last_session == session.id:
            return
        self.config.last_session = session.id
        # `_saved_state` is left as it is: the exit writes the config once more, at once,
        # rather than trust a thread that may not have run by then.
        ticket, path, text = self._config_writer.snapshot(self.config)
        writer = self._config_writer

        def write() -> None:
            try:
                writer.write(ticket, path, text)
            except ConfigError as exc:
                try:
                    self.call_from_thread(self._config_write_failed, exc)
                except RuntimeError:
                    pass  # the app closed meanwhile; its exit writes the config again

        self.run_worker(write, thread=True, group="config", exit_on_error=False, description="remember the open session")

    def _config_write_failed(self, exc: ConfigError) -> None:
        if not self._config_error_shown:  # once a run: the next switch would fail the same way
            self._config_error_shown = True
            self.notify(str(exc), title="The open session is not remembered", severity="warning", markup=False)

    def on_app_focus(self) -> None:
        # Back from another window (where the terminal reports focus): show what it did.
        if self.chat.is_mounted:
            self.chat.request_sync()

    # -- hosts and keys --------------------------------------------------------------------

    # The controller resolves hosts and keys; the screens ask the app, which asks it.

    def host_for_id(self, host_id: str) -> Host:
        return self.controller.host_for_id(host_id)

    def host_for(self, session: Session) -> Host:
        return self.controller.host_for(session)

    def hosts(self) -> dict[str, Host]:
        return self.controller.hosts()

    def api_key(self, host: Host) -> str | None:
        return self.controller.api_key(host)

    def needs_key(self, host: Host) -> bool:
        return self.controller.needs_key(host)

    def get_client(self, host: Host | None = None) -> GlmClient:
        """The client for `host`: the HTTP client, created on the first send (httpx is imported then),
        or the demo's in-process one for the demo host."""
        if host is not None and host.demo:
            if self._demo_client is None:
                from glmchat.demo import demo_client

                self._demo_client = demo_client(stall_timeout=self.config.stall_timeout)
            return self._demo_client
        if self._client is None:
            from glmchat.client import GlmClient

            self._client = GlmClient(stall_timeout=self.config.stall_timeout)
        return self._client

    def log_exception(self, exc: BaseException) -> None:
        """Report an unexpected failure without leaving the app."""
        self.notify(f"Unexpected error: {type(exc).__name__}: {exc}", severity="error", markup=False, timeout=10)

    # -- dialogs ---------------------------------------------------------------------------

    def action_setup(self) -> None:
        """Choose a host and give it a key (shown on first run)."""
        from glmchat.ui.screens.setup import SetupScreen  # Lazy import: first run only.

        self.push_screen(SetupScreen(self.config, self.hosts(), probe=self.probe), self._setup_done)

    async def _setup_done(self, result: Any) -> None:
        if result is None:
            return
        config = self.config
        config.host = result.host_id
        config.model = result.model or ""
        if result.api_key:
            config.keys[result.host_id] = result.api_key
        if result.base_url:
            config.hosts.setdefault(result.host_id, {})["base_url"] = result.base_url
        self._save_config()
        session = self.chat.session
        if not session.turns:
            session.host = result.host_id
            session.model = result.model or self._default_model(result.host_id)
        await self.chat.open_session(session)

    def action_settings(self) -> None:
        """Edit the session's settings and the theme."""
        from glmchat.ui.screens.settings import SettingsScreen  # Lazy import: a rare dialog.

        own = [name for name in self.own_themes if name in self.available_themes]
        others = sorted(name for name in self.available_themes if name not in own)
        self.push_screen(
            SettingsScreen(self.chat.session, self.config, self.hosts(), [*own, *others]),
            self._settings_done,
        )

    async def _settings_done(self, result: Any) -> None:
        if result is None:
            return
        if result.theme is not None and result.theme in self.available_themes:
            self.theme = result.theme
        result.apply_to_session(self.chat.session)
        result.apply_to_config(self.config)
        run_host = self.options.host or self.config.host
        if run_host in result.base_urls:
            # A URL chosen in the settings now beats --base-url for the rest of this run.
            self.options.base_url = None
        self._save_config()
        self.chat._save_settings()
        await self.chat.open_session(self.chat.session)

    def action_help(self) -> None:
        """Show the keys."""
        from glmchat.ui.screens.help import HelpScreen  # Lazy import: a rare dialog.

        self.push_screen(HelpScreen())

    def _save_config(self) -> None:
        ticket, path, text = self._config_writer.snapshot(self.config)
        try:
            self._config_writer.write(ticket, path, text)
        except ConfigError as exc:
            self.notify(str(exc), title="Settings not saved", severity="error", markup=False)

    # -- command palette -------------------------------------------------------------------

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        chat = self.chat
        if screen is not chat:
            yield SystemCommand("Settings", "Host and its base URL, model, sampling, preserved thinking, theme (F4)", self.action_settings)
            return
        commands: list[tuple[str, str, Callable[[], Any]]] = [
            ("New session", "Start a new session (Ctrl+N)", chat.action_new_session),
            ("Toggle thinking", "Thinking on/off, or the model's next level, for the next turn (Ctrl+T)", chat.action_toggle_thinking),
            ("Stop", "Stop the answer and keep what arrived (Esc)", chat.action_stop),
            ("Retry / regenerate", "Retry or regenerate the turn in focus, else the last one, as a new branch (Ctrl+R)", chat.action_retry),
            ("Edit message", "Edit the message of the turn in focus, else the last one, and send it as a new branch (Ctrl+G)", chat.action_edit_last),
            ("Previous branch", "Show the previous branch of the turn in focus, or of the newest turn that has branches (←)", lambda: chat.action_branch(-1)),
            ("Next branch", "Show the next branch of the turn in focus, or of the newest turn that has branches (→)", lambda: chat.action_branch(1)),
            ("Fork from here", "A new session with this one's turns up to the turn in focus (or all of them)", chat.action_fork),
            ("Fold / unfold all reasoning", "Fold or unfold every turn's reasoning (Ctrl+O)", chat.action_toggle_fold_all),
            ("Copy last answer", "Copy the last answer to the clipboard (Alt+C)", chat.action_copy_answer),
            ("Copy code blocks", "Copy the last answer's code blocks (Alt+K)", chat.action_copy_code),
            ("Copy reasoning", "Copy the reasoning of the focused turn, or of the last turn", chat.action_copy_reasoning),
            ("Export to Markdown", "Write this session to a .md file in the current folder (Alt+M)", lambda: chat.action_export("md")),
            ("Export to JSON", "Write this session to a .json file in the current folder (Alt+J)", lambda: chat.action_export("json")),
            ("Rename session", "Rename this session (F2)", chat.action_rename_session),
            ("Delete session", "Delete this session (Alt+D)", chat.action_delete_session),
            ("Search sessions", "Full-text search across all sessions (Ctrl+F)", chat.action_search),
            ("Toggle sidebar", "Show and focus the session list, or hide it (Ctrl+B)", chat.action_toggle_sidebar),
            ("Settings", "Host and its base URL, model, sampling, preserved thinking, theme (F4)", self.action_settings),
            ("Set up host and key", "Choose a host and give it an API key", self.action_setup),
            ("Help", "Keys and how glmchat works (F1)", self.action_help),
        ]
        for title, help_text, callback in commands:
            yield SystemCommand(title, help_text, callback)
        from glmchat.ui.model_commands import commands as model_commands

        yield from model_commands(chat)
        yield from _page_commands(screen)

    # -- shutdown --------------------------------------------------------------------------

    def exit(self, *args: Any, **kwargs: Any) -> None:
        """Quit (every way out of the app comes here).

        A turn still streaming is stopped and saved as stopped, and the composer
        texts are saved, before anything else happens.
        """
        if self.chat.is_mounted:
            self.chat.stop_for_exit()
            self.chat.save_drafts()
            # Now rather than at unmount only: a second signal may end the process before that.
            self._save_last_state()
        super().exit(*args, **kwargs)

    # -- signals and the terminal ---------------------------------------------------------
    # SIGTERM and SIGHUP close the app the way Ctrl+Q does: a streaming turn is
    # stopped and saved as stopped, the drafts are saved, the terminal is restored.
    # The exit code is then 128 + the signal's number (143, 129).

    def on_load(self) -> None:
        # Load comes before the terminal is switched to application mode: from here on
        # a signal closes the app the orderly way. Earlier, the default action ends the
        # process with the terminal untouched and nothing unsaved.
        self._catch_exit_signals()

    def _catch_exit_signals(self) -> None:
        loop = asyncio.get_running_loop()
        caught: list[int] = []
        for signum in EXIT_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_IGN:
                continue  # ignored on purpose by whoever started glmchat (nohup): left so
            try:
                loop.add_signal_handler(signum, self._exit_on_signal, signum)
            except (NotImplementedError, RuntimeError, ValueError):
                # Not the main thread, or a loop without signal support: default actions stay.
                for added in caught:
                    loop.remove_signal_handler(added)
                return
            caught.append(signum)
        self._signal_loop = loop
        self._caught_signals = caught

    def _release_exit_signals(self) -> None:
        """Give the signals back their default actions (the app is gone, nothing is left to save)."""
        loop, self._signal_loop = self._signal_loop, None
        caught, self._caught_signals = self._caught_signals, []
        if loop is None or loop.is_closed():
            return
        for signum in caught:
            loop.remove_signal_handler(signum)

    def _exit_on_signal(self, signum: int) -> None:
        """SIGTERM or SIGHUP: close as Ctrl+Q does, with the exit code `signal_exit_code(signum)`.

        Runs on the event loop (`loop.add_signal_handler`), so it may touch the app.
        A second signal while the app is closing ends the process at once: the
        first one has saved the turn and the drafts already (`exit` does that
        before it returns).
        """
        if self.exit_signal is not None:
            self._exit_now(signum)
            return
        self.exit_signal = signum
        if self._hung_up():
            from glmchat.ui.terminal import detach_from_terminal

            detach_from_terminal()
        if not self._starting:  # (else `start_chat` closes the app once the first session is open)
            # First: `exit` saves the turn and the drafts before it returns. A second signal
            # meanwhile waits for the event loop, so it cannot cut the saving short.
            self.exit(return_code=signal_exit_code(signum))
        # From here on a signal is handled where Python handles it, between two
        # statements, even while the event loop is busy: it does not wait for the loop.
        for caught in self._caught_signals:
            signal.signal(caught, self._exit_now_handler)

    def _exit_now_handler(self, signum: int, frame: object) -> None:
        self._exit_now(signum)

    def _exit_now(self, signum: int) -> None:
        """End the process now, leaving the terminal as it was before the app started."""
        driver = self._driver
        if driver is not None and not self.is_headless:
            from glmchat.ui.terminal import restore_terminal  # Lazy import: only on the way out

            restore_terminal(driver)
        os._exit(signal_exit_code(signum))

    def get_driver_class(self) -> type[Driver]:
        driver_class = super().get_driver_class()
        if not _POSIX:
            return driver_class
        from textual.drivers.linux_driver import LinuxDriver

        if driver_class is LinuxDriver:
            # Only in place of the default: a driver chosen with TEXTUAL_DRIVER is left alone.
            from glmchat.ui.terminal import TerminalDriver

            return TerminalDriver
        return driver_class

    def _terminal_driver(self) -> TerminalDriver | None:
        """The driver, when it is glmchat's own (a real terminal on a POSIX system)."""
        if not _POSIX:
            return None
        from glmchat.ui.terminal import TerminalDriver

        driver = self._driver
        return driver if isinstance(driver, TerminalDriver) else None

    def _hung_up(self) -> bool:
        driver = self._terminal_driver()
        return driver is not None and driver.hung_up()

    def _watch_terminal(self) -> None:
        """Timer: notice a closed terminal when nothing is being drawn and no SIGHUP came."""
        if self._hung_up():
            self._terminal_lost()

    def on_terminal_lost(self) -> None:
        """The driver could not write to the terminal: it was closed under the app."""
        self._terminal_lost()

    def _terminal_lost(self) -> None:
        from glmchat.ui.terminal import detach_from_terminal

        detach_from_terminal()
        if self.exit_signal is None:
            self._exit_on_signal(signal.SIGHUP)  # a hang-up, whether or not the signal came

    async def on_unmount(self) -> None:
        import gc

        self._release_exit_signals()
        gc.unfreeze()  # what settle_memory exempted can be collected again once the app is gone
        self._save_last_state()
        try:
            await self.controller.close_tools()  # the MCP servers kept running between turns
        except Exception:  # noqa: BLE001 - closing must not fail the exit
            pass
        if self._client is not None and self._own_client:
            try:
                await self._client.aclose()
            except Exception:  # noqa: BLE001 - closing must not fail the exit
                pass
        if self._demo_client is not None:
            await self._demo_client.aclose()
        if self.store is not None and self._own_store:
            self.store.close()

    def _save_last_state(self) -> None:
        """Write the session to reopen and the sidebar's state to the config, if they changed."""
        if self.store is not None and self.chat.session.turns:
            self.config.last_session = self.chat.session.id
        state = (self.config.last_session, self.config.sidebar)
        if state != self._saved_state:
            self._save_config_quietly()
            self._saved_state = state

    def _save_config_quietly(self) -> None:
        ticket, path, text = self._config_writer.snapshot(self.config)
        try:
            self._config_writer.write(ticket, path, text)
        except ConfigError:
            pass


def _page_commands(screen: Screen[Any]) -> Iterable[SystemCommand]:
    """The page bar's actions, when one has focus (the bar under a long text)."""
    from glmchat.ui.widgets.pager import PageBar  # Lazy import: loaded already if a bar is shown

    bar = screen.focused
    if not isinstance(bar, PageBar):
        return
    what = bar.what
    yield SystemCommand("Next page", f"Show the next page of this {what} (n)", lambda: bar.action_move(1))
    yield SystemCommand("Previous page", f"Show the previous page of this {what} (p)", lambda: bar.action_move(-1))
    yield SystemCommand("First page", f"Show the first page of this {what} (Home)", bar.action_first)
    yield SystemCommand("Last page", f"Show the last page of this {what} (End)", bar.action_last)
    yield SystemCommand(f"Copy the whole {what}", f"Copy every page of this {what} (y)", bar.action_copy)


def _warm_imports(client: GlmClient) -> None:
    """Get the first send ready ahead of it (in a thread, off the event loop).

    Imports its modules, and builds the client's connection pool: the TLS
    context it loads (the CA bundle) would otherwise cost the first Enter tens
    of milliseconds before the request leaves.
    """
    import glmchat.turn_runner  # noqa: F401
    import glmchat.protocol  # noqa: F401
    import glmchat.ui.widgets.turn  # noqa: F401

    client.prepare()
    from glmchat.ui.markdown_render import parse_blocks

    parse_blocks("warm `up` **now**\n\n- a\n\n| a |\n|---|\n| 1 |\n")


def run_app(options: AppOptions | None = None, *, resume_gc: bool = False) -> int:
    """Run the TUI; returns the process exit code.

    Args:
        options: What the command line asked for.
        resume_gc: The caller paused the garbage collector for start-up: turn it
            back on once the first frame is up (and at the latest on exit).
    """
    import gc

    _measure_the_terminal()
    try:
        app = GlmChatApp(options)
        app.resume_gc = resume_gc
        result = app.run()
    finally:
        if resume_gc:
            gc.enable()
    return result if isinstance(result, int) else (app.return_code or 0)


def _measure_the_terminal() -> None:
    """Let the terminal, not the environment, say how big it is.

    Textual sizes the screen with `shutil.get_terminal_size`, which believes
    COLUMNS and LINES when they are set. Some programs export them (GNU
    readline does, in any Python that imported it), and a glmchat started from
    one would keep that size however the window is resized. On a terminal the
    real size is there to ask for, at start and after every resize.
    """
    import os
    import sys

    if sys.__stdout__ is not None and sys.__stdout__.isatty():
        for name in ("COLUMNS", "LINES"):
            os.environ.pop(name, None)
