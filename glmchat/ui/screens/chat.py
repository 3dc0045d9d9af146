"""The chat screen: session sidebar, chat log, composer, status line and footer.

It owns the open session and everything done to it: sending (through
`glmchat.turn_runner.run_turn`, the one streaming path), stopping, retrying,
regenerating, editing, switching sessions, exporting. The app owns the
config, the store, the client and the hosts.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import events, on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.keys import key_to_character
from textual.containers import Horizontal, Vertical
from textual.reactive import var
from textual.widget import MountError
from textual.widgets import TextArea

from glmchat.errors import ConfigError, DamagedStorage, GlmChatError, StorageError
from glmchat.protocol.events import ContentDelta, Event, ReasoningDelta, Retrying
from glmchat.sanitize import inert
from glmchat.session import Branch, Session, Turn, TurnStatus
from glmchat.ui.drafts import NEW_SESSION, DraftWriter, drafts_path
from glmchat.ui.stream_layout import ExactLayoutScreen
from glmchat.ui.widgets.chat_log import ChatLog
from glmchat.ui.widgets.composer import Composer
from glmchat.ui.widgets.footer import FittingFooter
from glmchat.ui.widgets.status import StatusFacts, StatusLine
from glmchat.usage import context_used, request_estimate

if TYPE_CHECKING:
    from textual.timer import Timer

    from glmchat.hosts import Host
    from glmchat.store import SessionChanges, SyncPoint
    from glmchat.tools.runner import McpToolRunner
    from glmchat.ui.widgets.session_list import SessionList
    from glmchat.ui.widgets.turn import TurnView
    from glmchat.ui.app import GlmChatApp


class TurnText(StrEnum):
    """One of the texts of a turn."""

    ANSWER = "answer"
    REASONING = "reasoning"
    MESSAGE = "message"


CLIPBOARD_LIMIT = 4_000_000
"""Characters copied through the terminal at most (it gets them base64-encoded in one escape
sequence, which terminals cap); a longer text is written to a file instead."""


@dataclass(repr=False)
class LiveTurn:
    """The turn being streamed, and the view (if any) showing it.

    The stream keeps going when the user switches to another session; the view
    is dropped then, and a new one attached when they come back.
    """

    session: Session
    turn: Turn
    view: TurnView | None
    text: str
    """The prompt as sent, to give back to the composer if the turn cannot even be saved."""

    def __repr__(self) -> str:
        # Short on purpose: the session's own repr would hold the whole history.
        return f"LiveTurn(session={self.session.id!r}, turn={self.turn.id!r})"

    retrying: Retrying | None = None
    """The last retry announced while no view was attached (a view attached later shows its countdown)."""

    def feed(self, event: Event) -> None:
        """`run_turn`'s on_event: hand the event to the view, if one is showing this turn."""
        view = self.view
        if view is not None:
            view.feed(event)
        elif isinstance(event, Retrying):
            self.retrying = event
        elif isinstance(event, (ReasoningDelta, ContentDelta)):
            self.retrying = None

    def attach(self, view: TurnView) -> None:
        """Show this turn in `view` from now on, starting with what it received so far."""
        self.turn.sync()
        view.feed_existing(self.turn)
        if self.retrying is not None:
            view.feed(self.retrying)
            self.retrying = None
        self.view = view


class ChatScreen(ExactLayoutScreen):
    """The main screen (its stylesheet, chat.tcss, is loaded by the app).

    | Key(s) | Description |
    | :- | :- |
    | enter | Send. |
    | escape | Stop the answer (or cancel an edit). |
    | ctrl+t | Thinking on/off for the next turn. |
    | ctrl+b | Show or hide the sessions. |
    | ctrl+n | New session. |
    | ctrl+r | Retry or regenerate the turn in focus, else the last one (a new branch). |
    | ctrl+g | Edit the message of the turn in focus, else the last one (sent as a new branch). |
    | ← / → (on a turn's `‹ 2/3 ›` line) | Switch between the branches from that turn. |
    | ctrl+o | Fold or unfold all reasoning. |

    Any printable key typed while something else has focus goes to the composer
    (unless the focused widget has a key of its own for it, such as the session
    list's n, r, d and /).
    """

    AUTO_FOCUS = "#prompt"

    NARROW_WIDTH: ClassVar[int] = 100
    """Below this many columns the session list no longer fits beside the chat: it is
    hidden, and Ctrl+B shows it over the log instead."""

    # The Alt bindings are priority bindings: they are commands wherever the focus is.
    # (A text field would otherwise see Alt+D first, as the letter d it carries.)
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "stop", "Stop", tooltip="Stop the answer, keeping what arrived; else back to typing.", id="stop", priority=True),
        Binding("ctrl+t", "toggle_thinking", "Thinking", tooltip="Thinking on/off for the next turn.", id="toggle-thinking", priority=True),
        Binding("ctrl+b", "toggle_sidebar", "Sessions", tooltip="Show and focus the session list, or hide it.", id="toggle-sidebar"),
        Binding("ctrl+n", "new_session", "New", tooltip="Start a new session.", id="new-session"),
        Binding("ctrl+r", "retry", "Retry", tooltip="Retry or regenerate the turn in focus, else the last one.", id="retry"),
        Binding("ctrl+g", "edit_last", "Edit", tooltip="Edit the message of the turn in focus, else the last one.", id="edit-last", show=False),
        Binding("ctrl+o", "toggle_fold_all", "Fold all", tooltip="Fold or unfold every turn's reasoning.", id="fold-all"),
        Binding("ctrl+f", "search", "Search", tooltip="Search all sessions.", id="search", show=False),
        Binding("f2", "rename_session", "Rename", tooltip="Rename this session.", id="rename-session", show=False),
        Binding("alt+d", "delete_session", "Delete", tooltip="Delete this session.", id="delete-session", show=False, priority=True),
        Binding("alt+c", "copy_answer", "Copy", tooltip="Copy the answer in focus, else the last one.", id="copy-answer", show=False, priority=True),
        Binding("alt+k", "copy_code", "Copy code", tooltip="Copy the code blocks of that answer.", id="copy-code", show=False, priority=True),
        Binding("alt+m", "export('md')", "Export .md", tooltip="Export this session to Markdown.", id="export-markdown", show=False, priority=True),
        Binding("alt+j", "export('json')", "Export .json", tooltip="Export this session to JSON.", id="export-json", show=False, priority=True),
        Binding("shift+pageup", "scroll_log(-1)", "Scroll up", tooltip="Scroll the chat up.", id="scroll-up", show=False),
        Binding("shift+pagedown", "scroll_log(1)", "Scroll down", tooltip="Scroll the chat down.", id="scroll-down", show=False),
    ]

    DRAFT_SAVE_DELAY: ClassVar[float] = 1.0
    """Seconds after the last edit of the prompt before the drafts are written."""

    streaming: var[bool] = var(False)
    """A turn of the open session is streaming.

    Neither a CSS class (restyling the screen costs O(widgets)) nor a bindings
    refresh (the footer rebuilds every key, ~30 ms): the keys stay as they are
    and do nothing when there is nothing to do."""

    def __init__(self) -> None:
        super().__init__()
        self.session: Session = Session()
        self.live: LiveTurn | None = None
        self.drafts: dict[str, str] = {}
        """Session id -> composer text left there."""
        self.fold_state: dict[str, bool] = {}
        """Turn id -> the user's fold choice; survives switching sessions."""
        self._always_tools: dict[str, set[str]] = {}
        """Session id -> tools the user allowed "always" (for the rest of this run)."""
        self._partial = False
        """Only the last turns of the session are loaded (the rest load after the first frame)."""
        self._editing: str | None = None
        """Id of the turn being edited (Enter replaces it)."""
        self._draft_before_edit = ""
        self._draft_writer: DraftWriter | None = None
        self._draft_timer: Timer | None = None
        self._draft_error_shown = False
        self._overlay_open = False
        """On a narrow screen: the session list is shown over the log (Ctrl+B)."""
        self._focus_list_when_mounted = False
        self.sync_points: dict[str, SyncPoint] = {}
        """Session id -> where the copy shown stands against the store (see `sync_with_store`)."""
        self._syncing = False
        self._sync_queued = False

    @property
    def gapp(self) -> GlmChatApp:
        return self.app  # type: ignore[return-value]

    @property
    def log_view(self) -> ChatLog:
        return self.query_one("#log", ChatLog)

    @property
    def composer(self) -> Composer:
        return self.query_one("#composer", Composer)

    @property
    def sidebar(self) -> SessionList:
        """The session list (mounted right after the first frame; see `_mount_sidebar`)."""
        return self.query_one("#sidebar")  # type: ignore[return-value]

    @property
    def sidebar_slot(self) -> Vertical:
        """The sidebar's column: shown and hidden with Ctrl+B."""
        return self.query_one("#sidebar-slot", Vertical)

    def compose(self) -> ComposeResult:
        with Horizontal(id="body"):
            # The column is laid out in the first frame; the list itself (an input, a
            # list and three buttons) is mounted right after it, to keep start-up short.
            yield Vertical(id="sidebar-slot")
            with Vertical(id="main"):
                log = ChatLog(id="log")
                log.fold_state = self.fold_state
                log.clock = self.gapp.clock
                yield log
                yield Composer(id="composer")
        yield StatusLine(id="status")
        yield FittingFooter()

    async def on_mount(self) -> None:
        self._set_narrow(self.app.size.width < self.NARROW_WIDTH)
        await self.gapp.start_chat()
        self.call_after_refresh(self._mount_sidebar)
        self._start_idle_sync()

    # -- small screens ---------------------------------------------------------------------

    @property
    def narrow(self) -> bool:
        """The screen is too narrow for the session list beside the chat."""
        return self.has_class("-narrow")

    def on_resize(self, event: events.Resize) -> None:
        self._set_narrow(event.size.width < self.NARROW_WIDTH)

    def on_screen_resume(self) -> None:
        # The terminal may have been resized while a dialog was on top.
        if self.is_mounted:
            self._set_narrow(self.app.size.width < self.NARROW_WIDTH)

    def _set_narrow(self, narrow: bool) -> None:
        if narrow != self.narrow:
            self.set_class(narrow, "-narrow")
            self._overlay_open = False
            self.query_one(FittingFooter).compact = narrow
        self._apply_sidebar()

    def _apply_sidebar(self) -> None:
        """Show or hide the session list: beside the chat as the config says, or over it on a narrow screen."""
        shown = self._overlay_open if self.narrow else self.gapp.config.sidebar
        slot = self.sidebar_slot
        if slot.display != shown:
            slot.display = shown
        if not shown and self._focus_in_sidebar():
            self.composer.focus_prompt()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # Over the log, the list is there to pick something: once the focus moves on
        # (a session opened, a new one started, a click in the chat), it goes away.
        if self._overlay_open and not self._focus_in_sidebar():
            self._overlay_open = False
            self._apply_sidebar()

    def _focus_in_sidebar(self) -> bool:
        focused = self.focused
        return focused is not None and self.sidebar_slot in focused.ancestors

    # -- keys typed anywhere ---------------------------------------------------------------

    def on_key(self, event: events.Key) -> None:
        """A printable key nothing else took: it is text for the composer.

        Keys reach this handler after the focused widget had them (a text field types
        them itself) and before the bindings run, so a key some binding wants (the
        session list's n, a pane's space) is left for it.
        """
        character = event.character
        if character is None or not event.is_printable or key_to_character(event.key) is None:
            return  # not text: a named key, or a chord (Alt+X carries its letter, but is not text)
        composer = self.composer
        # Not "unless the prompt has the focus": the prompt takes the keys sent to it (they
        # never get here), and a key sent elsewhere may arrive after the first key of a word
        # moved the focus to the prompt; it is text all the same.
        if event.key in self.active_bindings:
            return
        event.stop()
        event.prevent_default()
        composer.type_text(character)  # (the list shown over the log goes as the focus leaves it)

    async def _mount_sidebar(self) -> None:
        if self.query("#sidebar"):
            return
        # Lazy import: the list is not part of the first frame.
        from glmchat.ui.widgets.session_list import SessionList

        slot = self.sidebar_slot
        try:
            await slot.mount(SessionList(id="sidebar", clock=self.gapp.clock))
        except MountError:
            return  # the app is closing already
        self.refresh_sidebar()
        if self._focus_list_when_mounted and slot.display:
            self.sidebar.focus_list()
        self._focus_list_when_mounted = False

    # -- sessions --------------------------------------------------------------------------

    def current_host(self) -> Host | None:
        try:
            return self.gapp.host_for(self.session)
        except ConfigError:
            return None

    async def open_session(self, session: Session, *, partial: bool = False) -> None:
        """Show a session (keeping the draft and a live stream of the one we leave)."""
        if self.is_mounted and self.session is not session:
            self.save_drafts()
        self._leave_current()
        self.session = session
        self._partial = partial
        self._editing = None
        log = self.log_view
        host = self.current_host()
        log.host_name = host.name if host else session.host
        live = self.live if self.live is not None and self.live.session.id == session.id else None
        if live is not None:
            # Come back to a session still streaming: show it again, fed from where it is.
            session = self.session = live.session
        await log.show_session(session, skip_last=live is not None)
        if not session.turns:
            from glmchat.ui.widgets.chat_log import welcome_content

            can_toggle = host.can_toggle_thinking if host else True
            await log.show_welcome(welcome_content(log.host_name, session.model, can_toggle_thinking=can_toggle))
        if live is not None:
            view = log.make_view(live.turn, live=True, last=True)
            await log.add_view(view)
            live.attach(view)
        self.streaming = live is not None
        composer = self.composer
        composer.set_text(self.drafts.pop(self._draft_key(session), ""))
        composer.set_editing(False)
        self._sync_thinking_switch()
        self.refresh_status()
        self.refresh_sidebar()
        self.gapp.remember_session(session)
        self.gapp.request_settle()
        if partial:
            self.call_after_refresh(self.ensure_full_session)

    def _leave_current(self) -> None:
        if not self.is_mounted:
            return
        text = self.composer.text
        if self._editing is not None:
            text = self._draft_before_edit
        key = self._draft_key(self.session)
        if text:
            self.drafts[key] = text
        else:
            self.drafts.pop(key, None)
        if self.live is not None and self.live.session is self.session:
            self.live.view = None

    @staticmethod
    def _draft_key(session: Session) -> str:
        # A session with no turns is not stored: its id means nothing after a restart.
        return session.id if session.turns else NEW_SESSION

    @property
    def draft_writer(self) -> DraftWriter:
        if self._draft_writer is None:
            self._draft_writer = DraftWriter(drafts_path(self.gapp.paths.data_dir))
        return self._draft_writer

    def save_drafts(self) -> None:
        """Write every draft, the open session's composer text included, to the data dir."""
        self._cancel_draft_timer()
        self._leave_current()
        if self.live is not None and self.live.session is self.session and self.is_mounted:
            self.live.view = self.log_view.view_for(self.live.turn.id)  # still shown: keep feeding it
        writer = self.draft_writer
        try:
            writer.write(dict(self.drafts), writer.ticket())
        except OSError as exc:
            self.notify(f"Drafts not saved: {exc}", severity="error", markup=False)

    @on(TextArea.Changed, "#prompt")
    def _prompt_changed(self) -> None:
        # One timer pushed back on every edit, not a write per keystroke: the drafts
        # are written once typing has paused, so a killed process loses at most that pause.
        timer = self._draft_timer
        if timer is None:
            self._draft_timer = self.set_timer(self.DRAFT_SAVE_DELAY, self._autosave_drafts, name="save drafts")
        else:
            timer.reset()

    def _cancel_draft_timer(self) -> None:
        if self._draft_timer is not None:
            self._draft_timer.stop()
            self._draft_timer = None

    def _autosave_drafts(self) -> None:
        """Write a snapshot of the drafts in a thread (a large draft must not stall the screen)."""
        self._draft_timer = None
        if not self.is_mounted:
            return
        drafts = dict(self.drafts)
        text = self._draft_before_edit if self._editing is not None else self.composer.text
        key = self._draft_key(self.session)
        if text:
            drafts[key] = text
        else:
            drafts.pop(key, None)
        writer = self.draft_writer
        ticket = writer.ticket()

        def write() -> None:
            try:
                writer.write(drafts, ticket)
            except OSError as exc:
                try:
                    self.app.call_from_thread(self._autosave_failed, exc)
                except RuntimeError:
                    pass  # the app has closed meanwhile; the quit path reports its own write
            else:
                self._draft_error_shown = False

        self.run_worker(write, thread=True, group="drafts", exit_on_error=False, description="save drafts")

    def _autosave_failed(self, exc: OSError) -> None:
        if not self._draft_error_shown:  # once per failing spell, not after every pause
            self._draft_error_shown = True
            self.notify(f"Drafts not saved: {exc}", severity="error", markup=False)

    def ensure_full_session(self) -> None:
        """Load the turns not loaded at open (every turn is needed to build a request)."""
        if not self._partial:
            return
        self._partial = False
        store = self.gapp.store
        if store is None:
            return
        session = self.session
        loaded = {turn.id for turn in session.turns}
        try:
            full = store.load_session(session.id)
        except GlmChatError as exc:
            self._partial = True
            if isinstance(exc, DamagedStorage):
                self.gapp._mark_for_check()  # checked in full (and set aside) on the next start
            self.notify(str(exc), title="Could not load the whole session", severity="error", markup=False)
            return
        older = []
        for turn in full.turns:
            if turn.id in loaded:
                break
            older.append(turn)
        if older:
            session.turns[:0] = older
            self.log_view.rebase(len(older))
        self.refresh_status()

    def refresh_status(self) -> None:
        host = self.current_host()
        if host is None:
            return
        self.query_one("#status", StatusLine).show(
            StatusFacts(
                host=host,
                model=self.session.model,
                thinking_next=self.session.thinking_next,
                preserve=self.session.preserve_thinking,
                session=self.session,
                streaming=self.streaming,
            )
        )

    def refresh_sidebar(self) -> None:
        store = self.gapp.store
        if store is None or not self.query("#sidebar"):
            return
        try:
            summaries = store.list_sessions()
        except GlmChatError as exc:
            self.notify(str(exc), severity="error", markup=False)
            return
        self.sidebar.load(summaries, self.session.id)

    def _sync_thinking_switch(self) -> None:
        from glmchat.models import settle_next_thinking

        host = self.current_host()
        can = host.can_toggle_thinking if host else True
        reason = "" if can or host is None else f"set by {host.name}"
        choice, always = settle_next_thinking(host, self.session)  # the model decides: on/off, a level, or always on
        self.composer.set_thinking(
            choice.thinking if can else True, can_toggle=can, reason=reason, level=choice.level,
            note="always on" if always else "",
        )

    def _save_settings(self) -> None:
        """Save the session's settings (not its turns) if it is stored already."""
        store = self.gapp.store
        if store is None or not self.session.turns:
            return
        try:
            store.save_session(self.session, turns=False)
        except GlmChatError as exc:
            self.notify(str(exc), title="Setting not saved", severity="error", markup=False)

    async def new_session(self) -> None:
        await self.open_session(self.gapp.new_session())
        self.composer.focus_prompt()

    async def switch_to(self, session_id: str) -> None:
        if session_id == self.session.id:
            return
        session, partial = self.gapp.load_session(session_id)
        if session is not None:
            await self.open_session(session, partial=partial)

    # -- sending ---------------------------------------------------------------------------

    @on(Composer.Submitted)
    async def _on_submitted(self, event: Composer.Submitted) -> None:
        event.stop()
        await self.send(event.text, event.thinking)

    async def send(self, text: str, thinking: bool, *, confirmed: bool = False, replacing: Turn | None = None) -> bool:
        """Send a prompt as a new turn: after the last one, or as a sibling of `replacing`
        (a regenerate) or of the turn being edited.

        Returns:
            True when a turn was started.
        """
        if self.live is not None:
            if self.live.session is self.session:
                self.notify("An answer is still streaming: wait for it or press Esc.", severity="warning")
            else:
                title = inert(self.live.session.title or "another session")
                self.notify(f"An answer is still streaming in “{title}”: wait for it, or open it and press Esc.", severity="warning", markup=False)
            return False
        session = self.session
        try:
            host = self.gapp.host_for(session)
        except ConfigError as exc:
            self.notify(str(exc), title="Cannot send", severity="error", markup=False)
            return False
        if self.gapp.needs_key(host):
            self.gapp.action_setup()
            return False
        self.ensure_full_session()
        if not await self.sync_with_store():
            return False  # deleted elsewhere: the text waits in a new session
        if not confirmed:
            # The cheap estimate first; the full one (O(session)) only when it is close.
            estimate = context_used(session, text)
            if estimate > 0.8 * host.context_window:
                estimate = max(estimate, request_estimate(session, text))
            if estimate > host.context_window:
                self._confirm_long(text, thinking, estimate, host)
                return False
        branch: Branch | None = None
        edited = self._turn_on_path(replacing.id if replacing is not None else self._editing)
        if edited is not None:
            branch = await self._branch_off(edited)
        self._editing = None
        self.composer.set_editing(False)
        turn = session.new_turn(text, thinking)
        if branch is not None:
            session.branches[turn.id] = branch
        self.composer.take(text)
        # The request goes out first; the turn's view is mounted while it travels, and
        # takes what arrived meanwhile from the turn itself.
        live = self.live = LiveTurn(session=session, turn=turn, view=None, text=text)
        self.streaming = True
        self.generate(live, host)
        view = self.log_view.make_view(turn, live=True, last=True)
        try:
            await self.log_view.add_view(view)
        except MountError:
            return True  # a signal closed the app meanwhile; the exit keeps the turn (stopped)
        if turn not in live.session.turns:
            # It could not even be saved: the worker took it back (and gave the text back).
            await self.log_view.remove_view(turn.id)
            return False
        if self.live is live and live.session is self.session:
            live.attach(view)
        else:
            turn.sync()
            view.feed_existing(turn)
            view.finish()  # it ended (or the user moved on) while the view was being mounted
        self.refresh_status()
        if len(session.turns) == 1:
            self.gapp.remember_session(session)  # a new session is stored from now on
        return True

    def _confirm_long(self, text: str, thinking: bool, estimate: int, host: Host) -> None:
        from glmchat.ui.screens.confirm import ConfirmScreen  # Lazy import: a rare dialog.

        message = (
            f"This request is about {estimate:,} tokens, more than {host.name}'s context window "
            f"of {host.context_window:,}. The host will probably refuse it. Send anyway?"
        )

        async def answered(ok: bool | None) -> None:
            if ok:
                await self.send(text, thinking, confirmed=True)

        self.app.push_screen(ConfirmScreen(message, "Send anyway", danger=False), answered)

    # A fixed description: by default the worker describes itself with the repr of its
    # arguments, and the session's repr holds the whole history (O(history) per send).
    @work(group="generate", exclusive=True, exit_on_error=False, description="stream a turn")
    async def generate(self, live: LiveTurn, host: Host) -> None:
        """Stream one turn through `run_turn` (the worker Esc cancels)."""
        from glmchat.turn_runner import run_turn

        app = self.gapp
        turn = live.turn
        try:
            client = app.get_client(host)
            async with self._tools(live, host) as tools:
                await run_turn(
                    client,
                    host,
                    live.session,
                    turn,
                    api_key=app.api_key(host),
                    store=app.store,
                    on_event=live.feed,
                    retry_hint="Ctrl+R retries",
                    tools=tools,
                    cache_watch=app.controller.cache_watch,
                    on_cache_break=lambda found: self.notify(
                        f"Prompt {found.message()}: the rest of this request is paid in full.", severity="warning", timeout=12
                    ),
                )
        except StorageError as exc:
            await self._storage_failed(live, exc)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - nothing a stream does may take the app down
            if turn.status == TurnStatus.STREAMING:
                turn.fail(exc if isinstance(exc, GlmChatError) else GlmChatError(f"Unexpected error: {exc}"))
                turn.finish()
                if app.store is not None:
                    try:
                        app.store.finish_turn(turn)  # keep what arrived, marked failed
                    except GlmChatError:
                        pass
            app.log_exception(exc)
        finally:
            self._end_live(live)

    def _tools(self, live: LiveTurn, host: Host) -> AbstractAsyncContextManager[McpToolRunner | None]:
        """The session's tool servers for one turn (started now, stopped when the turn ends)."""
        from glmchat.ui.screens.tool_approval import ask_approval

        controller = self.gapp.controller
        names, problem = controller.usable_tools(host, live.session.tool_servers)
        if problem is not None:
            self.notify(problem, title="Tools", severity="warning", markup=False)

        def on_call(event: object) -> None:
            if live.view is not None:
                live.view.steps.sync()

        def on_notice(line: str) -> None:
            self.notify(line, title="Tools", severity="warning", markup=False, timeout=8)

        always = self._always_tools.setdefault(live.session.id, set())
        return controller.tools(
            host, names, approve=lambda call, spec: ask_approval(self.app, call, spec), on_call=on_call,
            on_notice=on_notice, always=always, keep=True,
        )

    def _end_live(self, live: LiveTurn) -> None:
        if self.live is live:
            self.live = None
        if live.view is not None:
            live.view.finish()
        if live.session is self.session:
            self.streaming = False
            self.refresh_status()
        self.refresh_sidebar()
        # The turn's widgets are here to stay: move them out of the collector's way while idle.
        self.gapp.request_settle()

    async def _storage_failed(self, live: LiveTurn, exc: StorageError) -> None:
        turn = live.turn
        if not turn.reasoning and not turn.content and turn.status == TurnStatus.ERROR:
            # Nothing was sent: take the turn back and give the text back to the composer.
            if turn in live.session.turns:
                live.session.turns.remove(turn)
            if live.view is not None:
                await self.log_view.remove_view(turn.id)
                live.view = None
            # Give the text back in front of whatever was typed since: neither is lost.
            if live.session is self.session:
                composer = self.composer
                typed = composer.text
                composer.set_text(live.text + ("\n\n" + typed if typed else ""))
            else:
                draft = self.drafts.get(live.session.id, "")
                self.drafts[live.session.id] = live.text + ("\n\n" + draft if draft else "")
            self.notify(f"{exc} Your message is back in the composer.", title="Not sent", severity="error", markup=False, timeout=10)
        else:
            self.notify(str(exc), title="The answer could not be saved", severity="error", markup=False, timeout=10)

    def stop_for_exit(self) -> None:
        """The app is closing: settle a streaming turn as stopped and save it, right now.

        Cancelling the stream worker would do the same once the worker runs
        again, but the app may be gone by then (a signal, a second signal that
        ends the process at once). So what arrived is saved here, synchronously,
        and the worker is cancelled after; its own stop path then writes the same
        turn once more, which changes nothing.
        """
        live = self.live
        if live is None:
            return
        turn = live.turn
        if turn.status == TurnStatus.STREAMING:
            turn.finish(TurnStatus.STOPPED)
            store = self.gapp.store
            if store is not None:
                try:
                    if not store.has_turn(turn.id):
                        # The worker had not started yet: the turn was never written.
                        store.begin_turn(live.session, turn)
                    store.finish_turn(turn)
                except GlmChatError:
                    pass  # the store is failing: nothing more can be kept on the way out
        self.workers.cancel_group(self, "generate")

    def _turn_on_path(self, turn_id: str | None) -> Turn | None:
        return next((t for t in self.session.turns if t.id == turn_id), None) if turn_id is not None else None

    async def _branch_off(self, turn: Turn) -> Branch:
        """Cut the path before `turn` (retry, regenerate, edit): it and what followed stay stored, on their branch.

        Returns the place the turn sent next takes among its siblings (the newest).
        """
        session = self.session
        index = session.turns.index(turn)
        known = session.branches.get(turn.id)
        count = (known.count if known is not None else 1) + 1
        for gone in session.turns[index:]:
            session.branches.pop(gone.id, None)
            self.fold_state.pop(gone.id, None)
        del session.turns[index:]
        log = self.log_view
        for view in log.mounted_views:
            if view.turn.id not in {t.id for t in session.turns}:
                await log.remove_view(view.turn.id)
        return Branch(count, count)

    # -- actions ---------------------------------------------------------------------------

    async def action_stop(self) -> None:
        """Esc: stop the answer (the part that arrived is kept and marked stopped), or cancel
        an edit, or clear the session filter, or else go back to the composer."""
        if self.live is not None and self.live.session is self.session:
            self.workers.cancel_group(self, "generate")
            return
        if self._editing is not None:
            self._editing = None
            self.composer.set_text(self._draft_before_edit)
            self.composer.set_editing(False)
            self.composer.focus_prompt()
            return
        if self._focus_in_sidebar() and self.query("#sidebar") and self.sidebar.clear_filter():
            return
        if self.narrow and self._overlay_open:
            self._overlay_open = False
            self._apply_sidebar()
        self.composer.focus_prompt()

    def action_toggle_thinking(self) -> None:
        """Ctrl+T: thinking on/off for the next turn, or the model's next thinking level."""
        from glmchat.ui.model_commands import cycle_thinking

        if cycle_thinking(self):
            return
        if not self.composer.toggle_thinking():
            host = self.current_host()
            self.notify(f"{host.name if host else 'This host'} cannot switch thinking per turn.", severity="warning")

    @on(Composer.ThinkingChanged)
    def _thinking_changed(self, event: Composer.ThinkingChanged) -> None:
        event.stop()
        self.session.thinking_next = event.thinking
        self._save_settings()
        self._sync_thinking_switch()  # a model that always thinks shows its lowest level instead of "off"
        self.refresh_status()

    def action_toggle_sidebar(self) -> None:
        """Ctrl+B: show the session list and focus it, or hide it and go back to the composer.

        On a narrow screen the list is shown over the log and the config's choice
        (for wide screens) is left as it is.
        """
        showing = not self.sidebar_slot.display
        if self.narrow:
            self._overlay_open = showing
        else:
            self.gapp.config.sidebar = showing
        self._apply_sidebar()
        # Asked for before the list was mounted (a quick Ctrl+B at start-up): it is focused once it is there.
        self._focus_list_when_mounted = showing and not self.query("#sidebar")
        if showing:
            if not self._focus_list_when_mounted:
                self.sidebar.focus_list()
        else:
            self.composer.focus_prompt()

    async def action_new_session(self) -> None:
        await self.new_session()

    def _streaming_elsewhere(self, turn: Turn) -> bool:
        """The turn is being streamed by another glmchat process: it must not be replaced."""
        if turn.status != TurnStatus.STREAMING or (self.live is not None and self.live.turn is turn):
            return False
        self.notify("This answer is still streaming in another window.", severity="warning")
        return True

    async def action_retry(self) -> None:
        """Retry a failed or stopped turn, regenerate a complete one: the turn in focus, else the last."""
        turn = self._turn_in_focus() or self.session.head
        if turn is not None:
            await self.regenerate(turn)

    async def regenerate(self, turn: Turn) -> None:
        """Ask `turn`'s message again: the new answer is a sibling branch, the old one is kept."""
        if self.live is not None or not await self.sync_with_store():
            return
        turn = self._turn_on_path(turn.id)  # (the sync may have replaced it)
        if turn is None or self._streaming_elsewhere(turn):
            return
        if self._editing is not None:
            await self.action_stop()  # an edit in progress is cancelled, its draft given back
        self.ensure_full_session()
        await self.send(turn.user_text, turn.thinking, confirmed=True, replacing=turn)

    def action_edit_last(self) -> None:
        """Put the message of the turn in focus (else the last) in the composer; Enter sends it as a new branch."""
        turn = self._turn_in_focus() or self.session.head
        if turn is not None:
            self.edit(turn)

    def edit(self, turn: Turn) -> None:
        """Put a message in the composer; Enter sends the edit as a sibling branch of `turn`."""
        if self.live is not None or self._streaming_elsewhere(turn):
            return
        composer = self.composer
        if self._editing is None:
            self._draft_before_edit = composer.text
        self._editing = turn.id
        composer.set_text(turn.user_text)
        composer.set_editing(True)
        composer.focus_prompt()

    def fork_from(self, turn: Turn) -> None:
        """A new session with the path up to and including `turn` (shared, not copied), opened."""
        self.ensure_full_session()
        if turn not in self.session.turns:
            return
        at = self.session.turns.index(turn) + 1
        try:
            new_id = self.gapp.controller.fork(self.session, at)
        except GlmChatError as exc:
            self.notify(str(exc), title="Not forked", severity="error", markup=False)
            return

        async def opened() -> None:
            await self.switch_to(new_id)
            self.notify(f"Forked: a new session with the first {at} turn{'s' if at != 1 else ''}.")

        self.call_later(opened)

    async def switch_branch(self, turn: Turn, offset: int) -> None:
        """Show the sibling `offset` places from `turn`, and the newest path below it."""
        branch = self.session.branches.get(turn.id)
        if branch is None or branch.count < 2:
            self.notify("This turn has no other branch.")
            return
        if self.live is not None and self.live.session is self.session:
            self.notify("An answer is still streaming: wait for it or press Esc.", severity="warning")
            return
        if not 1 <= branch.position + offset <= branch.count:
            return  # already the first (or last) one
        try:
            switched = self.gapp.controller.switch_branch(self.session, turn, offset)
        except GlmChatError as exc:
            self.notify(str(exc), title="Could not switch branches", severity="error", markup=False)
            return
        if switched is None:
            return
        index = self.session.turns.index(turn)
        await self._show_path(*switched)
        view = await self.log_view.reveal(self.session.turns[index].id)
        if view is not None:
            view.scroll_visible(animate=False, top=True)
            view.status.focus()

    async def _show_path(self, loaded: Session, point: SyncPoint) -> None:
        """Show another path of the open session (the store made it current)."""
        session = self.session
        session.turns[:] = loaded.turns
        session.branches = loaded.branches
        self._partial = False
        self.sync_points[session.id] = point
        await self.log_view.show_session(session)
        self.refresh_status()
        self.refresh_sidebar()  # (its turn count is the path's)

    def _turn_in_focus(self) -> Turn | None:
        """The turn that has focus (its reasoning or its footer), if any."""
        from glmchat.ui.widgets.turn import TurnView

        focused = self.focused
        for node in focused.ancestors_with_self if focused is not None else ():
            if isinstance(node, TurnView):
                return node.turn
        return None

    def _branch_target(self) -> Turn | None:
        """For the palette: the turn in focus if it has branches, else the newest turn on the path that has."""
        turn = self._turn_in_focus()
        branches = self.session.branches
        if turn is not None and turn.id in branches:
            return turn
        return next((t for t in reversed(self.session.turns) if t.id in branches and branches[t.id].count > 1), None)

    async def action_branch(self, offset: int) -> None:
        turn = self._branch_target()
        if turn is None:
            self.notify("No turn of this session has another branch.")
            return
        await self.switch_branch(turn, offset)

    def action_fork(self) -> None:
        turn = self._turn_in_focus() or self.session.head
        if turn is None:
            self.notify("Nothing to fork yet.")
            return
        self.fork_from(turn)

    @on(Composer.EditLastRequested)
    def _edit_requested(self, event: Composer.EditLastRequested) -> None:
        event.stop()
        self.action_edit_last()

    def action_toggle_fold_all(self) -> None:
        log = self.log_view
        log.set_all_expanded(not log.any_expanded())

    def action_scroll_log(self, direction: int) -> None:
        log = self.log_view
        if direction < 0:
            log.scroll_page_up()
        else:
            log.scroll_page_down()

    def _answer_to_copy(self) -> Turn | None:
        """The turn whose reasoning pane has focus, else the newest turn with an answer."""
        focused = self.focused
        if focused is not None:
            from glmchat.ui.widgets.turn import TurnView

            for node in focused.ancestors_with_self:
                if isinstance(node, TurnView):
                    return node.turn
        for turn in reversed(self.session.turns):
            turn.sync()  # a streaming turn's newest text (a no-op for a settled one)
            if turn.content:
                return turn
        return None

    def action_copy_answer(self) -> None:
        turn = self._answer_to_copy()
        if turn is None:
            self.notify("No answer to copy yet.")
            return
        self.copy_turn(turn)

    def action_copy_reasoning(self) -> None:
        """Copy the reasoning of the turn whose reasoning has focus, else of the last turn that reasoned."""
        from glmchat.ui.widgets.turn import TurnView

        focused = self.focused
        view = next((node for node in (focused.ancestors_with_self if focused else ()) if isinstance(node, TurnView)), None)
        turn = view.turn if view is not None and view.turn.reasoning else None
        if turn is None:
            turn = next((t for t in reversed(self.session.turns) if t.reasoning), None)
        if turn is None:
            self.notify("No reasoning to copy yet.")
            return
        self.copy_turn(turn, part=TurnText.REASONING)

    def action_copy_code(self) -> None:
        turn = self._answer_to_copy()
        if turn is None:
            self.notify("No answer to copy yet.")
            return
        self.copy_turn(turn, code=True)

    def copy_turn(self, turn: Turn, *, code: bool = False, part: TurnText = TurnText.ANSWER) -> None:
        """Copy an answer (or its code blocks, or the turn's reasoning or message) to the clipboard, exactly as stored."""
        turn.sync()
        if not turn.content:
            self.notify("This turn has no answer to copy.")
            return
        if code:
            from glmchat.ui.markdown_render import code_blocks

            blocks = code_blocks(turn.content)
            if not blocks:
                self.notify("This answer has no code blocks.")
                return
            text = "\n".join(blocks)
            what = f"{len(blocks)} code block{'s' if len(blocks) != 1 else ''}"
        elif part is TurnText.REASONING:
            text, what = turn.reasoning, "the reasoning"
        elif part is TurnText.MESSAGE:
            text, what = turn.user_text, "the message"
        else:
            text = turn.content
            what = "the answer"
        if len(text) > CLIPBOARD_LIMIT:
            self._save_for_copy(turn, text, what)
            return
        self.app.copy_to_clipboard(text)
        self.notify(f"Copied {what} ({len(text):,} characters).")

    def _save_for_copy(self, turn: Turn, text: str, what: str) -> None:
        """A text too long for the terminal's clipboard: written to a file in the current folder instead."""
        from glmchat import export  # Lazy import: only when exporting.
        from glmchat.controller import free_name

        name = export.safe_filename(f"{self.session.title or 'chat'} {what.removeprefix('the ')}", "txt")
        try:
            path = free_name(Path.cwd(), name)
            path.write_text(text, encoding="utf-8", errors="surrogatepass", newline="")
        except OSError as exc:
            self.notify(f"{what.capitalize()} is too long for the clipboard and could not be saved: {exc}", severity="error", markup=False)
            return
        self.notify(
            f"{what.capitalize()} ({len(text):,} characters) is too long for the terminal's clipboard: saved to {path}",
            title="Copy",
            markup=False,
            timeout=10,
        )

    def on_turn_view_paged(self, event: TurnView.Paged) -> None:
        """Another page of a long text: show it from its first line."""
        event.stop()
        log = self.log_view
        # Stop following the bottom, or the next layout would scroll away from the page.
        log.anchor(False)
        log.call_after_refresh(log.scroll_to_widget, event.widget, animate=False, top=True)

    async def on_turn_view_action_requested(self, event: TurnView.ActionRequested) -> None:
        event.stop()
        turn = event.view.turn
        action = event.action
        if action == "copy":
            self.copy_turn(turn)
        elif action == "copy_code":
            self.copy_turn(turn, code=True)
        elif action == "copy_reasoning":
            self.copy_turn(turn, part=TurnText.REASONING)
        elif action == "copy_message":
            self.copy_turn(turn, part=TurnText.MESSAGE)
        elif action in ("retry", "regenerate"):
            await self.regenerate(turn)
        elif action == "edit":
            self.edit(turn)
        elif action == "fork":
            self.fork_from(turn)
        elif action in ("branch_previous", "branch_next"):
            await self.switch_branch(turn, -1 if action == "branch_previous" else 1)

    def on_turn_view_fold_changed(self, event: TurnView.FoldChanged) -> None:
        event.stop()
        self.fold_state[event.view.turn.id] = event.expanded

    # -- session list ----------------------------------------------------------------------
    # Handlers by name rather than @on: the list's module is imported only when it is mounted.

    async def on_session_list_selected(self, event: SessionList.Selected) -> None:
        event.stop()
        await self.switch_to(event.session_id)
        self.composer.focus_prompt()

    async def on_session_list_new_requested(self, event: SessionList.NewRequested) -> None:
        event.stop()
        await self.new_session()

    def on_session_list_rename_requested(self, event: SessionList.RenameRequested) -> None:
        event.stop()
        self.rename_session(event.session_id)

    def on_session_list_delete_requested(self, event: SessionList.DeleteRequested) -> None:
        event.stop()
        self.delete_session(event.session_id)

    def on_session_list_search_requested(self, event: SessionList.SearchRequested) -> None:
        event.stop()
        self.search(event.query)

    def action_rename_session(self) -> None:
        self.rename_session(self.session.id)

    def action_delete_session(self) -> None:
        self.delete_session(self.session.id)

    def action_search(self) -> None:
        self.search("")

    def _title_of(self, session_id: str) -> str:
        if session_id == self.session.id:
            return inert(self.session.title or "New chat")
        summaries = self.sidebar.summaries if self.query("#sidebar") else ()
        for summary in summaries:
            if summary.id == session_id:
                return inert(summary.title)
        return "this session"

    def rename_session(self, session_id: str) -> None:
        from glmchat.ui.screens.prompt import PromptScreen  # Lazy import: a rare dialog.

        store = self.gapp.store

        def renamed(title: str | None) -> None:
            if not title:
                return
            if session_id == self.session.id:
                self.session.title = title
            if store is not None:
                try:
                    if session_id == self.session.id and not self.session.turns:
                        return  # saved with its first turn
                    store.rename_session(session_id, title)
                except GlmChatError as exc:
                    self.notify(str(exc), title="Not renamed", severity="error", markup=False)
                    return
            self.refresh_sidebar()

        self.app.push_screen(PromptScreen("Rename session", self._title_of(session_id), ok_label="Rename"), renamed)

    def delete_session(self, session_id: str) -> None:
        from glmchat.ui.screens.confirm import ConfirmScreen  # Lazy import: a rare dialog.

        title = self._title_of(session_id)

        async def answered(ok: bool | None) -> None:
            if not ok:
                return
            if self.live is not None and self.live.session.id == session_id:
                self.workers.cancel_group(self, "generate")
            store = self.gapp.store
            if store is not None:
                try:
                    store.delete_session(session_id)
                except GlmChatError as exc:
                    if session_id != self.session.id or self.session.turns:
                        self.notify(str(exc), title="Not deleted", severity="error", markup=False)
                        return
            self.drafts.pop(session_id, None)
            if session_id == self.session.id:
                self.session = Session()  # leave nothing to save as a draft
                next_id = store.most_recent_session_id() if store is not None else None
                if next_id is not None:
                    session, partial = self.gapp.load_session(next_id)
                    if session is not None:
                        await self.open_session(session, partial=partial)
                        return
                await self.open_session(self.gapp.new_session())
            else:
                self.refresh_sidebar()

        self.app.push_screen(ConfirmScreen(f"Delete “{title}” and all its turns? This cannot be undone."), answered)

    def search(self, query: str) -> None:
        store = self.gapp.store
        if store is None:
            self.notify("Search needs the session store, which could not be opened.", severity="error")
            return
        from glmchat.ui.screens.search import SearchScreen, SearchTarget  # Lazy import: a rare dialog.

        async def chosen(target: SearchTarget | None) -> None:
            if target is None:
                return
            await self.switch_to(target.session_id)
            if target.session_id != self.session.id:
                return  # it could not be opened (the reason was shown)
            self.ensure_full_session()
            if self._turn_on_path(target.turn_id) is None and self.live is None:
                try:  # a hit on another branch: that branch is shown
                    await self._show_path(*self.gapp.controller.show_branch_of(self.session, target.turn_id))
                except GlmChatError as exc:
                    self.notify(str(exc), title="Could not show that branch", severity="error", markup=False)
                    return
            if target.field == "reasoning":
                await self.reveal_turn(target.turn_id, reasoning_match=target.match, context=target.context)
            else:
                await self.reveal_turn(target.turn_id)

        self.app.push_screen(SearchScreen(store, query), chosen)

    async def reveal_turn(self, turn_id: str, *, reasoning_match: str | None = None, context: str = "") -> None:
        """Scroll to a turn, paging it in if it is not mounted.

        Args:
            turn_id: the turn.
            reasoning_match: a word found in the turn's reasoning: the pane is unfolded
                and the line holding the word scrolled into view.
            context: the passage around that word (tells one occurrence from another).
        """
        self.ensure_full_session()
        log = self.log_view
        view = await log.reveal(turn_id)
        if view is None:
            return
        # Stop following the bottom, or the next layout would scroll away from the hit.
        log.anchor(False)
        pane = view.reasoning
        if reasoning_match is None or not pane.display:
            log.call_after_refresh(log.scroll_to_widget, view, animate=False, top=True)
            return
        if not pane.expanded:
            view.set_expanded(True)
            self.fold_state[view.turn.id] = True

        def show_line(tries: int = 20) -> None:
            """Scroll the matching line into view, again after each frame until nothing moves.

            The turns around the hit were just mounted: their heights settle over a frame
            or two (the unfolded text, answers measured again), and a position read too
            early is off by what changed above it.
            """
            if not pane.is_attached or not tries:
                return
            line = pane.line_of_match(reasoning_match, context) or 0
            # Where the pane's line is in the log's scrollable area; the match is put a
            # few lines below the top, so what leads up to it shows too.
            top = pane.region.y - log.content_region.y + round(log.scroll_y) + line
            wanted = max(top - min(3, log.size.height // 4), 0)
            if pane.region.height > line and wanted <= log.max_scroll_y and round(log.scroll_y) == wanted:
                return  # in place, and laid out
            if wanted <= log.max_scroll_y:
                # (Not beyond the end: reaching it pages in the turns below instead.)
                log.scroll_to(y=wanted, animate=False, immediate=True)
            log.call_after_refresh(show_line, tries - 1)

        log.call_after_refresh(show_line)

    # -- other windows ---------------------------------------------------------------------
    # Another glmchat (a second window, `glmchat ask -c`) may add, rewrite or delete
    # turns of the open session. Before a request is built the copy shown is brought
    # up to date, or the model would be sent a history the store does not hold; while
    # idle it is checked too, so that the other window's turn shows up here.

    IDLE_SYNC_INTERVAL: ClassVar[float] = 1.0
    """Seconds between checks for other windows' changes while idle (each costs one PRAGMA)."""

    def _start_idle_sync(self) -> None:
        self.set_interval(self.IDLE_SYNC_INTERVAL, self.request_sync, name="sync with other windows")

    def request_sync(self) -> None:
        """Check for other windows' changes soon, in turn with the screen's other messages.

        A timer runs in a task of its own: the check is queued on the screen
        instead, so it never runs while a send (or a switch of session) is half done.
        """
        if not self._sync_queued and self.live is None:
            self._sync_queued = True
            self.call_later(self._queued_sync)

    async def _queued_sync(self) -> None:
        self._sync_queued = False
        if self.live is None:
            await self.sync_with_store()

    async def sync_with_store(self) -> bool:
        """Take in what other windows did to the open session since it was read.

        Returns:
            False when the session was deleted elsewhere (a new session is open
            then, with the composer's text in it); True otherwise.
        """
        store = self.gapp.store
        session = self.session
        if store is None or self._syncing or not self.is_mounted:
            return True
        if not session.turns and session.id not in self.sync_points:
            return True  # a new session, not stored yet: nobody else knows it
        if self.live is not None and self.live.session is session:
            return True  # our own turn streams at the end; after it, the next check sees the rest
        from glmchat.store import NOT_SYNCED  # loaded already: the app opened the store

        self._syncing = True
        try:
            since = self.sync_points.get(session.id, NOT_SYNCED)
            try:
                changes = store.changes_since(session.id, since)
            except (GlmChatError, ValueError, sqlite3.DatabaseError):
                return True  # the next check tries again; a send goes ahead with what is shown
            if session is not self.session:
                return True  # switched away meanwhile
            self.sync_points[session.id] = changes.point
            if changes.deleted:
                if session.turns:
                    await self._deleted_elsewhere()
                    return False
                return True
            if changes.turn_ids is not None:
                await self._apply_changes(changes)
            return True
        finally:
            self._syncing = False

    async def _apply_changes(self, changes: SessionChanges) -> None:
        """Put the store's order of turns on screen: added, rewritten and removed turns."""
        assert changes.turn_ids is not None
        if self._partial:
            self.ensure_full_session()  # the changes are placed among all the turns
        session = self.session
        old = list(session.turns)
        by_id = {turn.id: turn for turn in old}
        new = [changes.turns.get(tid) or by_id[tid] for tid in changes.turn_ids if tid in changes.turns or tid in by_id]
        if [t.id for t in new] == [t.id for t in old] and all(a is b for a, b in zip(new, old)):
            return  # only our own writes moved the revision
        log = self.log_view
        old_ids = [t.id for t in old]
        added = len(new) - len(old)
        rewritten = [t for t in new if t.id in by_id and by_id[t.id] is not t]
        if added >= 0 and [t.id for t in new[: len(old)]] == old_ids:
            # The common case (`glmchat ask -c`, an answer finished elsewhere): turns
            # rewritten in place, turns added at the end. The log keeps its place.
            session.turns[:] = new[: len(old)]
            for turn in rewritten:
                await self._replace_view(turn)
            for turn in new[len(old) :]:
                session.turns.append(turn)
                await log.add_view(log.make_view(turn, last=turn is new[-1]))
        else:
            # Turns removed or put in between: show the session again, from its end.
            session.turns[:] = new
            await log.show_session(session)
        if self._editing is not None and self._turn_on_path(self._editing) is None:
            # The message being edited is no longer on the path: Enter will add a new turn
            # with the edited text; what was typed before the edit stays below it.
            self._editing = None
            composer = self.composer
            composer.set_editing(False)
            if self._draft_before_edit:
                composer.set_text(composer.text + "\n\n" + self._draft_before_edit)
        new_ids = {t.id for t in new}
        counts = (
            (len([t for t in new if t.id not in by_id]), "added"),
            (len(rewritten), "changed"),
            (len([tid for tid in old_ids if tid not in new_ids]), "removed"),
        )
        news = [f"{n} turn{'s' if n != 1 else ''} {what}" for n, what in counts if n]
        if news:
            self.notify(f"This session changed in another window: {', '.join(news)}.", timeout=4)
        self.refresh_status()
        self.refresh_sidebar()

    async def _replace_view(self, turn: Turn) -> None:
        log = self.log_view
        view = log.view_for(turn.id)
        if view is None:
            return  # not mounted: it is drawn from the session when it is paged in
        new_view = log.make_view(turn, last=bool(self.session.turns) and self.session.turns[-1] is turn)
        children = list(log.children)
        below = children[children.index(view) + 1]  # the log ends with its "later turns" marker
        with self.app.batch_update():
            await view.remove()  # first: the new view has the same id
            await log.mount(new_view, before=below)

    async def _deleted_elsewhere(self) -> None:
        """The open session was deleted by another window: move to a new one, taking the composer's text."""
        dead = self.session
        title = inert(dead.title or "This session")
        # While editing, the composer holds the edited message and what was typed before the edit waits aside.
        kept = [self.composer.text, self._draft_before_edit if self._editing is not None else ""]
        text = "\n\n".join(part for part in kept if part)
        self._editing = None
        self.drafts.pop(dead.id, None)
        self.composer.set_text("")  # nothing to keep under the deleted session's id
        self.sync_points.pop(dead.id, None)
        await self.open_session(self.gapp.new_session())
        if text:
            waiting = self.composer.text
            self.composer.set_text(text + ("\n\n" + waiting if waiting else ""))
        self.notify(
            f"“{title}” was deleted in another window. A new session is open, with your text.",
            severity="warning",
            markup=False,
            timeout=8,
        )

    # -- export ----------------------------------------------------------------------------

    def action_export(self, kind: str) -> None:
        """Write the session to the current folder as Markdown (this branch) or JSON (every branch)."""
        from glmchat.controller import ExportFormat

        self.ensure_full_session()
        session = self.session
        if not session.turns:
            self.notify("Nothing to export yet.")
            return
        try:
            path = self.gapp.controller.export(session, ExportFormat(kind), Path.cwd())
        except GlmChatError as exc:
            self.notify(f"Export failed: {exc}", severity="error", markup=False)
            return
        self.notify(f"Exported to {path}", title="Export", markup=False, timeout=8)
