"""Everything done to sessions, in plain Python: the TUI and the CLI both drive this.

The controller owns the config, the store, the HTTP client and the hosts, and
offers the verbs: open, new, send (and its siblings retry, regenerate, edit),
branch, fork, rename, delete, export. It knows nothing of the screen: the TUI
calls it from workers and shows what it returns; `glmchat ask` and
`glmchat sessions` call the same methods.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

from glmchat.config import AppOptions, Config, Paths, api_key_for, known_host_ids, new_session, resolve_host, save_config
from glmchat.errors import ConfigError, GlmChatError, SessionNotFound, StorageError
from glmchat.session import Session, SessionTree, Turn, TurnStatus
from glmchat.cache_break import CacheBreak, CacheWatch
from glmchat.usage import context_used, request_estimate

if TYPE_CHECKING:
    from glmchat.client import GlmClient
    from glmchat.hosts import Host
    from glmchat.protocol.events import Event
    from glmchat.store import Store, SyncPoint
    from glmchat.tools import ToolBox
    from glmchat.tools.runner import Approver, CallListener, McpToolRunner
    from glmchat.turn_runner import ToolRunner


class ExportFormat(StrEnum):
    MARKDOWN = "md"
    JSON = "json"


@dataclass(frozen=True)
class TooLong:
    """A message that would not fit the host's context window (estimated)."""

    estimate: int
    window: int
    host: str

    def message(self) -> str:
        return (
            f"the request is about {self.estimate:,} tokens, more than {self.host}'s context window "
            f"of {self.window:,} tokens"
        )


class Controller:
    """Sessions, turns and their storage for one run of glmchat.

    Args:
        config: The loaded settings.
        paths: Where config and data live.
        options: What the command line asked for (host, base URL, model, session).
        store: An open store, or None when there is none (the data folder is unusable).
        client: The HTTP client to use; default: one made on first use.
        clock: Wall-clock time (tests pin it).
    """

    def __init__(
        self,
        config: Config,
        paths: Paths,
        *,
        options: AppOptions | None = None,
        store: Store | None = None,
        client: GlmClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.paths = paths
        self.options = options or AppOptions()
        self.store = store
        self._client = client
        self._demo_client: GlmClient | None = None
        self.clock = clock
        self.cache_watch = CacheWatch()
        """Each session's previous request, to find where a replay breaks the prompt cache."""
        self._model_lists: dict[tuple[str, str], tuple[float, list[str]]] = {}
        self._boxes: dict[tuple[str, ...], ToolBox] = {}
        """Tool boxes kept running between turns (the TUI's), by their server names."""

    # -- hosts and keys ------------------------------------------------------------------------

    def host_for_id(self, host_id: str) -> Host:
        """A host with the config's overrides (and --base-url for this run's host).

        Raises:
            ConfigError: unknown host, bad override, or plain http to a remote address.
        """
        run_host = self.options.host or self.config.host
        base_url = self.options.base_url if host_id == run_host else None
        return resolve_host(self.config, host_id, base_url=base_url)

    def host_for(self, session: Session) -> Host:
        """The host a session sends to, with the session's model as its default model (and that model's limits)."""
        from glmchat.models import host_for_model

        return host_for_model(self.host_for_id(session.host), session.model)

    def hosts(self) -> dict[str, Host]:
        """Every host that resolves (built-in and the user's own), by id."""
        out: dict[str, Host] = {}
        for host_id in known_host_ids(self.config):
            try:
                out[host_id] = self.host_for_id(host_id)
            except ConfigError:
                continue
        return out

    def default_model(self, host_id: str) -> str:
        try:
            return self.host_for_id(host_id).default_model
        except ConfigError:
            return "glm-4.7"

    def api_key(self, host: Host) -> str | None:
        return api_key_for(self.config, host)

    def needs_key(self, host: Host) -> bool:
        """A hosted service with no key in the environment or the config."""
        return bool(host.key_env) and not host.local and not self.api_key(host)

    @property
    def client(self) -> GlmClient:
        """The HTTP client, made on first use (httpx is imported then)."""
        if self._client is None:
            from glmchat.client import GlmClient

            self._client = GlmClient()
        return self._client

    def client_for(self, host: Host) -> GlmClient:
        """The client that reaches `host`: the demo's in-process one for the demo host, else the HTTP client."""
        if host.demo:
            if self._demo_client is None:
                from glmchat.demo import demo_client

                self._demo_client = demo_client()
            return self._demo_client
        return self.client

    async def close(self) -> None:
        """Close the client's connections (the store is closed by whoever opened it)."""
        if self._client is not None:
            await self._client.aclose()
        if self._demo_client is not None:
            await self._demo_client.aclose()

    def save_config(self) -> None:
        """Write the settings (mode 0600). Raises ConfigError with a one-line message."""
        save_config(self.config, self.paths)

    MODEL_LIST_TTL = 3600.0
    """Seconds a host's /models list is reused before it is asked again."""

    async def model_list(self, host: Host, *, refresh: bool = False) -> ModelList:
        """The models `host` offers: its /models list (cached for an hour), else the built-in list, saying why.

        Never raises for a host that cannot list its models (local servers often cannot,
        some hosts do not offer the endpoint): the built-in list comes back with the reason.
        """
        key = (host.id, host.base_url)
        cached = self._model_lists.get(key)
        if cached is not None and not refresh and self.clock() - cached[0] < self.MODEL_LIST_TTL:
            return ModelList(_with_current(cached[1], host), "host")
        try:
            names = await self.client_for(host).list_models(host, self.api_key(host))
        except GlmChatError as exc:
            return ModelList(_with_current(list(host.models), host), "built-in", str(exc))
        if not names:
            return ModelList(_with_current(list(host.models), host), "built-in", f"{host.name} listed no models")
        self._model_lists[key] = (self.clock(), names)
        return ModelList(_with_current(names, host), "host")

    # -- sessions ------------------------------------------------------------------------------

    def _store(self, action: str) -> Store:
        if self.store is None:
            raise StorageError(f"Could not {action}: the session store could not be opened.")
        return self.store

    def new_session(self) -> Session:
        """A new, unsaved session with the config's defaults (saved with its first turn)."""
        config = self.config
        host_id = self.options.host or config.host
        model = self.options.model or (config.model if host_id == config.host else "") or self.default_model(host_id)
        return new_session(config, host_id, model)

    def open_session(self, ref: str, *, last: int | None = None) -> Session:
        """A stored session's current path (all of it, or the `last` turns)."""
        return self._store("load the session").load_session(ref, last=last)

    def apply_options(self, session: Session) -> Session:
        """The host and model the command line asked for, on an opened session."""
        options = self.options
        if options.host and options.host != session.host:
            session.host = options.host
            session.model = options.model or self.default_model(options.host)
        elif options.model:
            session.model = options.model
        return session

    def older_turns(self, session: Session, limit: int | None = None) -> list[Turn]:
        """Load the turns of the path before the first one the session holds; put them in front."""
        if not session.turns or session.turns[0].parent_id is None:
            return []
        turns, branches = self._store("load turns").load_turns_before(session.id, session.turns[0].id, limit)
        session.turns[:0] = turns
        session.branches.update(branches)
        return turns

    def changed_elsewhere(self, session: Session, revision: int | None) -> bool:
        """Whether another process changed the session since `revision` (None: never stored)."""
        if self.store is None or revision is None or not session.turns:
            return False
        return self.store.revision(session.id) != revision

    def is_stored(self, session: Session) -> bool:
        """Whether the session is in the store (a new one is saved with its first turn)."""
        if self.store is None:
            return False
        try:
            self.store.revision(session.id)
        except SessionNotFound:
            return False
        return True

    def save_settings(self, session: Session) -> None:
        """Save the session's settings (not its turns) if it is stored already."""
        if self.store is not None and session.turns:
            self.store.save_session(session, turns=False)

    def rename(self, session: Session | str, title: str) -> None:
        session_id = session if isinstance(session, str) else session.id
        if not isinstance(session, str):
            session.title = title
            if not session.turns:
                return  # saved with its first turn
        self._store("rename the session").rename_session(session_id, title)

    def delete(self, session_id: str) -> None:
        self._store("delete the session").delete_session(session_id)

    def fork(self, session: Session | str, at: int, title: str | None = None) -> str:
        """A new session sharing the first `at` turns of the current path; returns its id (one row written)."""
        ref = session if isinstance(session, str) else session.id
        return self._store("fork the session").fork_session(ref, at, title)

    def switch_branch(self, session: Session, turn: Turn, offset: int) -> tuple[Session, SyncPoint] | None:
        """The session with the sibling `offset` places from `turn` (and its newest path) current.

        Returns the reloaded session and where it stands against other writers, or
        None when there is no such sibling.
        """
        siblings = self._store("switch branches").siblings(session.id, turn.id)
        index = siblings.index(turn.id) + offset
        if not 0 <= index < len(siblings):
            return None
        return self.show_branch_of(session, siblings[index])

    def show_branch_of(self, session: Session, turn_id: str) -> tuple[Session, SyncPoint]:
        """The session with the newest path through `turn_id` current (a search hit on another branch)."""
        store = self._store("switch branches")
        store.switch_branch(session.id, turn_id)
        switched, point = store.load_session_synced(session.id)
        return self.apply_options(switched), point

    # -- turns -----------------------------------------------------------------------------------

    def too_long(self, session: Session, text: str, host: Host) -> TooLong | None:
        """The estimate, when a message would not fit the host's context window."""
        # The cheap estimate first; the full one (O(session)) only when it is close.
        estimate = context_used(session, text)
        if estimate > 0.8 * host.context_window:
            estimate = max(estimate, request_estimate(session, text))
        if estimate > host.context_window:
            return TooLong(estimate, host.context_window, host.name)
        return None

    def start_turn(self, session: Session, text: str, thinking: bool, *, replacing: Turn | None = None) -> Turn:
        """Put a new turn at the end of the path: after the head, or as a sibling of `replacing`.

        Editing, retrying and regenerating all add a sibling: the old turn stays on
        its own branch, reachable with the branch arrows.
        """
        after = session.branch_before(replacing) if replacing is not None else None
        if replacing is not None and after is None:
            del session.turns[:]  # a sibling of the first turn: the path starts afresh
        turn = session.new_turn(text, thinking, after=after)
        if replacing is not None:
            turn.parent_id = replacing.parent_id
        return turn

    async def run(
        self,
        session: Session,
        turn: Turn,
        *,
        on_event: Callable[[Event], None] | None = None,
        tools: ToolRunner | None = None,
        on_cache_break: Callable[[CacheBreak], None] | None = None,
    ) -> Turn:
        """Stream the turn's reply through the one turn runner, saving as it goes.

        Each request is checked against the session's previous one (`cache_watch`);
        a replay that breaks the prompt cache is logged and passed to `on_cache_break`.

        Raises:
            ConfigError: the session's host does not resolve.
            StorageError: the store failed (the turn is settled in memory first).
        """
        from glmchat.turn_runner import run_turn

        host = self.host_for(session)
        return await run_turn(
            self.client_for(host), host, session, turn, api_key=self.api_key(host), store=self.store, on_event=on_event,
            tools=tools, cache_watch=self.cache_watch, on_cache_break=on_cache_break,
        )

    # -- tools -----------------------------------------------------------------------------------

    def tool_server_names(self) -> list[str]:
        """The enabled [mcp.NAME] servers of the config, in config order."""
        return [name for name, server in self.config.mcp_servers().items() if server.enabled]

    def check_tools(self, host: Host, names: Iterable[str]) -> list[str]:
        """The server names, checked: each one configured and enabled, and the host able to take tools.

        Raises:
            ConfigError: one line naming what is wrong (an unknown name lists the known ones).
        """
        from glmchat.protocol import supports_tools

        wanted = list(dict.fromkeys(names))
        if not wanted:
            return []
        servers = self.config.mcp_servers()
        for name in wanted:
            if name not in servers:
                known = ", ".join(servers) or "none; add an [mcp.NAME] table to the config"
                raise ConfigError(f"no MCP server {name!r} in the config (configured: {known})")
            if not servers[name].enabled:
                raise ConfigError(f"MCP server {name!r} is disabled in the config (enabled = false)")
        if not supports_tools(host):
            raise ConfigError(f"{host.name} takes no tools (its API has none); send without MCP servers")
        return wanted

    def usable_tools(self, host: Host, names: Iterable[str]) -> tuple[list[str], str | None]:
        """The session's tool servers that can be used now, and one line about those that cannot (None: all can).

        For the TUI, where a session may name a server removed from the config since,
        or have moved to a host without tools: the turn is sent without them.
        """
        from glmchat.protocol import supports_tools

        wanted = list(dict.fromkeys(names))
        if not wanted:
            return [], None
        if not supports_tools(host):
            return [], f"{host.name} takes no tools: this turn is sent without the session's tool servers"
        enabled = set(self.tool_server_names())
        usable = [name for name in wanted if name in enabled]
        missing = [name for name in wanted if name not in enabled]
        if missing:
            return usable, f"MCP server(s) not in the config or disabled, not used: {', '.join(missing)}"
        return usable, None

    @asynccontextmanager
    async def tools(
        self,
        host: Host,
        names: Iterable[str],
        *,
        approve: Approver,
        on_call: CallListener | None = None,
        on_notice: Callable[[str], None] | None = None,
        always: set[str] | None = None,
        keep: bool = False,
    ) -> AsyncIterator[McpToolRunner | None]:
        """The tool runner for `names` (None when there are none), its servers started and always stopped.

        A server that fails to start is a notice (`on_notice`), not an error: the
        turn goes on with the tools of the others. The `mcp` SDK is imported here,
        and only when there is a server to start.

        Args:
            always: Tools already allowed "always" (the set is updated as the user allows more).
            keep: Keep the servers running after the turn, for the next turns that use the
                same ones (a server costs a second or more to start); `close_tools` stops them.

        Raises:
            ConfigError: see `check_tools`.
        """
        wanted = self.check_tools(host, names)
        if not wanted:
            yield None
            return
        from glmchat.tools import ToolBox
        from glmchat.tools.runner import McpToolRunner

        key = tuple(sorted(wanted))
        box = self._boxes.get(key) if keep else None
        fresh = box is None
        if box is None:
            box = ToolBox.from_config(self.config, wanted, on_notice=on_notice)
        try:
            if fresh:
                await box.start()
                if keep:
                    self._boxes[key] = box
            runner = McpToolRunner(box, approve=approve, on_call=on_call)
            if always is not None:
                runner.always = always  # shared: "always for this tool" lasts beyond one turn
            yield runner
        finally:
            if not keep or self._boxes.get(key) is not box:
                await box.close()

    async def close_tools(self) -> None:
        """Stop every tool server kept running between turns."""
        boxes = list(self._boxes.values())
        self._boxes.clear()
        for box in boxes:
            await box.close()

    # -- export --------------------------------------------------------------------------------------

    def export_pieces(self, session: Session, kind: ExportFormat) -> Iterable[str]:
        """A session as Markdown (its current path) or JSON (its whole tree), in pieces.

        A stored session's Markdown is made a page of turns at a time from the store:
        a session of any length never sits in memory whole, nor does its document.
        """
        from glmchat import export

        stored = self.is_stored(session)
        if kind == ExportFormat.MARKDOWN:
            if not stored:
                return export.iter_markdown(session)
            store = self._store("export the session")
            header = Session.from_dict(session.to_dict(with_turns=False))
            header.branches = store.path_branches(session.id)
            return export.iter_markdown(header, lambda: store.iter_turns(session.id))
        tree = self._store("export the session").load_tree(session.id) if stored else SessionTree.of(session)
        return [export.to_json(tree)]

    def export(self, session: Session, kind: ExportFormat, target: Path) -> Path:
        """Write the session to `target` (a file, or a folder to name a file in), atomically, mode 0600.

        A name made from the title never overwrites: "-2", "-3"… are tried next.
        Exports are private like the database they come from, whatever the umask:
        the owner chooses when to share one (chmod).

        Raises:
            GlmChatError: the file could not be written (one line naming it).
        """
        from glmchat.export import safe_filename
        from glmchat.files import write_atomic

        pieces = self.export_pieces(session, kind)
        path = target
        if target.is_dir():
            path = free_name(target, safe_filename(session.title or "chat", str(kind)))
        try:
            write_atomic(path, pieces, mode=0o600)
        except OSError as exc:
            raise GlmChatError(f"cannot write {path}: {exc.strerror or exc}") from None
        return path

    def import_file(self, text: str | bytes) -> Session:
        """Store a JSON export as a new session; returns it (its current path)."""
        from glmchat.export import from_json

        tree = self._store("import the session").import_session(from_json(text))
        return tree.session

    # -- the TUI's memory of the last session -------------------------------------------------------

    def remember(self, session: Session) -> None:
        """The session to reopen next time."""
        self.config.last_session = session.id

    def initial(self) -> tuple[Session, bool]:
        """The session a start opens (asked for, last, most recent, or new) and whether it is partial."""
        options = self.options
        if self.store is not None and not options.new:
            for ref in (options.session, self.config.last_session or None):
                if ref:
                    try:
                        return self._partial(ref)
                    except GlmChatError:
                        if ref == options.session:
                            raise
            recent = self.store.most_recent_session_id()
            if recent:
                return self._partial(recent)
        return self.new_session(), False

    FIRST_LOAD = 9
    """Turns of the path loaded when a session opens (the rest after the first frame)."""

    def _partial(self, ref: str) -> tuple[Session, bool]:
        session = self.apply_options(self.open_session(ref, last=self.FIRST_LOAD))
        return session, bool(session.turns) and session.turns[0].parent_id is not None


@dataclass(frozen=True)
class ModelList:
    """The models a host offers, where the list came from, and why not from the host (if so)."""

    names: list[str]
    source: str
    """"host" (its /models list) or "built-in" (glmchat's list for the host)."""
    error: str | None = None


def _with_current(names: list[str], host: Host) -> list[str]:
    """The list with the host's current model in it (a session may use one the list omits)."""
    return list(dict.fromkeys([*names, host.default_model])) if host.default_model else list(names)


def free_name(folder: Path, name: str) -> Path:
    """`folder/name`, or `stem-2.ext`, `stem-3.ext`… when taken."""
    path = folder / name
    stem, dot, ext = name.rpartition(".")
    if not dot:
        stem, ext = name, ""
    n = 2
    while path.exists():
        path = folder / (f"{stem}-{n}.{ext}" if ext else f"{stem}-{n}")
        n += 1
    return path
