"""Settings, paths and API keys.

Settings live in one TOML file (read with tomllib, written with tomli-w). A
broken file never stops glmchat: it is set aside under a new name (never
deleted), the defaults are used, and a warning saying which file and which line
is kept in ``Config.warnings`` for the UI and the CLI to show.

Keys come from the host's environment variable first, then from the ``[keys]``
table of the config file, which is always written mode 0600.

This module is imported on the TUI's start path: it stays free of Textual and
httpx, and imports platformdirs only when ``GLMCHAT_HOME`` is not set.
"""

from __future__ import annotations

import dataclasses
from enum import StrEnum
import os
import re
import stat
import time
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmchat.errors import ConfigError
from glmchat.files import write_atomic
from glmchat.hosts import BUILTIN_HOSTS, Dialect, Host, check_transport, is_local_url

if TYPE_CHECKING:
    from glmchat.session import Session

APP_NAME = "glmchat"
CONFIG_NAME = "config.toml"
HOME_ENV = "GLMCHAT_HOME"
"""When set, config, data, themes and log all live in this one folder."""



# -- paths -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Paths:
    """Where glmchat keeps its files."""

    config_file: Path
    data_dir: Path
    """The SQLite store and anything else glmchat writes while running."""
    themes_dir: Path
    """User themes (*.toml), loaded next to the shipped ones."""
    log_file: Path
    """Tracebacks of unexpected failures (keys scrubbed)."""

    @property
    def config_dir(self) -> Path:
        return self.config_file.parent


def paths(create: bool = True) -> Paths:
    """The paths for this run; with ``create`` the folders exist afterwards (mode 0700).

    ``GLMCHAT_HOME`` puts everything in one folder (tests, portable use);
    otherwise the platform's config and data folders are used.
    """
    home = os.environ.get(HOME_ENV)
    if home:
        root = Path(home).expanduser()
        config_dir = data_dir = root
    else:
        # Lazy import: platformdirs costs a few ms we don't pay with GLMCHAT_HOME.
        import platformdirs

        config_dir = Path(platformdirs.user_config_dir(APP_NAME))
        data_dir = Path(platformdirs.user_data_dir(APP_NAME))
    result = Paths(
        config_file=config_dir / CONFIG_NAME,
        data_dir=data_dir,
        themes_dir=config_dir / "themes",
        log_file=data_dir / "glmchat.log",
    )
    if create:
        for folder in (config_dir, data_dir):
            _make_private_dir(folder)
    return result


def _make_private_dir(folder: Path) -> None:
    # mkdir's mode only applies to a folder it creates; an existing folder is left as the user set it.
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create {folder}: {exc.strerror or exc}") from None


# -- the settings ------------------------------------------------------------------------


@dataclass
class AppOptions:
    """What the command line asks of the TUI (``glmchat [--host H] ...``)."""

    host: str | None = None
    base_url: str | None = None
    model: str | None = None
    session: str | None = None
    """Open this session (uuid, uuid prefix or number)."""
    new: bool = False
    """Start with a new session instead of the most recent one."""


@dataclass
class Config:
    """The user's settings. Defaults match the vendors' recommendations for GLM-4.7."""

    host: str = "zai"
    """Host id used when none is given (a built-in id or one under [hosts])."""
    model: str = ""
    """Model for the default host; "" means the host's default model."""
    theme: str = "glm-dark"
    thinking: bool = True
    """Thinking switch of new sessions."""
    preserve_thinking: bool = True
    """Send earlier reasoning back (new sessions)."""
    system_prompt: str = ""
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int | None = None
    """None: let the host decide."""
    sidebar: bool = True
    """Whether the TUI shows the session list."""
    stall_timeout: float = 180.0
    """Seconds a stream may go without text (or a finish) before it is given up as stalled.

    Bytes that carry nothing (a keep-alive comment, a trickle of one byte a second)
    do not count: they keep the read timeout from firing but show nothing.
    """
    last_session: str = ""
    """Id of the session the TUI had open last ("" = none)."""
    keys: dict[str, str] = field(default_factory=dict)
    """Host id -> API key (used when the host's environment variable is not set)."""
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Host id -> overrides of a built-in host, or a user-defined host (dialect, base_url, based_on)."""
    mcp: dict[str, Any] = field(default_factory=dict)
    """Server name -> its [mcp.NAME] table as written (parsed by `mcp_servers()`, so a save keeps it whole)."""
    tools: dict[str, Any] = field(default_factory=dict)
    """The [tools] table as written (parsed by `tool_settings()`)."""

    warnings: list[str] = field(default_factory=list, compare=False)
    """Problems found while loading, one line each, for the UI and CLI to show."""
    path: Path | None = field(default=None, compare=False)
    """The file this config was loaded from."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Unknown top-level settings, kept so that saving does not throw them away."""

    def mcp_servers(self) -> dict[str, McpServerConfig]:
        """The valid [mcp.NAME] servers, enabled or not (problems were warned about at load)."""
        return parse_mcp_servers(self.mcp, self._where())[0]

    def tool_settings(self) -> ToolSettings:
        """The [tools] limits, defaults where a value is missing or bad."""
        return parse_tool_settings(self.tools, self._where())[0]

    def _where(self) -> str:
        return self.path.name if self.path else CONFIG_NAME


_NOT_SAVED = frozenset({"warnings", "path", "extra"})
_SETTINGS = {f.name: f for f in dataclasses.fields(Config) if f.name not in _NOT_SAVED}

# Expected TOML types per setting (bool is checked before int: bool is an int in Python).
_TYPES: dict[str, tuple[type, ...]] = {
    "host": (str,),
    "model": (str,),
    "theme": (str,),
    "thinking": (bool,),
    "preserve_thinking": (bool,),
    "system_prompt": (str,),
    "temperature": (int, float),
    "top_p": (int, float),
    "max_tokens": (int,),
    "sidebar": (bool,),
    "stall_timeout": (int, float),
    "last_session": (str,),
    "keys": (dict,),
    "hosts": (dict,),
    "mcp": (dict,),
    "tools": (dict,),
}


def _type_ok(value: Any, types: tuple[type, ...]) -> bool:
    if isinstance(value, bool) and bool not in types:
        return False
    return isinstance(value, types)


def load_config(where: Paths | Path | None = None) -> Config:
    """Read config.toml; a missing file gives the defaults.

    Never raises for a bad file: a file that is not valid TOML is set aside
    (renamed ``config.toml.broken-<timestamp>``) and the defaults are used; a
    wrong or unknown setting is skipped. Each problem adds a one-line warning to
    ``config.warnings``.
    """
    path = _config_path(where)
    config = Config(path=path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        remember_secrets(config)  # keys from the environment
        return config
    except OSError as exc:
        config.warnings.append(f"{path}: cannot read ({exc.strerror or exc}); using defaults")
        return config

    data, problem = _parse_toml(raw, path)
    if problem is not None:
        config.warnings.append(_set_aside(path, problem))
        return config

    _apply(config, data)
    if config.keys or any(s.secrets() for s in config.mcp_servers().values()):
        _check_private(path, config)
    remember_secrets(config)
    return config


def remember_secrets(config: Config) -> None:
    """Tell the redaction helper every key this config and the environment hold, so none is ever shown."""
    from glmchat.sanitize import remember_secret

    names = {h.key_env for h in BUILTIN_HOSTS.values() if h.key_env}
    for entry in config.hosts.values():
        if isinstance(entry.get("key_env"), str):
            names.add(entry["key_env"])
    for name in names:
        remember_secret(os.environ.get(name))
    for value in config.keys.values():
        remember_secret(value)


def _config_path(where: Paths | Path | None) -> Path:
    if where is None:
        return paths().config_file
    if isinstance(where, Paths):
        return where.config_file
    return Path(where)


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")
_TOML_END = re.compile(r"\s*\(at end of document\)\s*$")


def _parse_toml(raw: bytes, path: Path) -> tuple[dict[str, Any], str | None]:
    """The parsed table, or a message "<path> line N: <what>" when the file is broken."""
    import tomllib

    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        return {}, f"{path} line {line}: not valid UTF-8"
    try:
        return tomllib.loads(text), None
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        if match:
            line = int(match.group(1))
            what = message[: match.start()]
        elif _TOML_END.search(message):
            line = text.count("\n") + 1
            what = _TOML_END.sub("", message)
        else:  # pragma: no cover - every tomllib message carries a position
            line = getattr(exc, "lineno", 0) or 1
            what = message
        return {}, f"{path} line {line}: {what}"


def _set_aside(path: Path, problem: str) -> str:
    """Rename a broken config file out of the way (never delete it); return the warning."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.broken-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.broken-{stamp}-{n}")
    try:
        os.replace(path, target)
    except OSError as exc:
        return f"{problem}; could not set it aside ({exc.strerror or exc}); using defaults"
    return f"{problem}; the file was set aside as {target.name} and defaults are used"


def _apply(config: Config, data: dict[str, Any]) -> None:
    where = config.path.name if config.path else CONFIG_NAME
    for name, value in data.items():
        if name not in _SETTINGS:
            config.warnings.append(f"{where}: unknown setting {name!r} ignored")
            config.extra[name] = value
            continue
        if not _type_ok(value, _TYPES[name]):
            config.warnings.append(
                f"{where}: {name} = {value!r} is not a {_type_name(_TYPES[name])}; using the default"
            )
            continue
        if name in ("temperature", "top_p"):
            value = float(value)
        if name == "stall_timeout":
            if not 1 <= value <= 86_400:
                config.warnings.append(f"{where}: stall_timeout = {value!r} is not from 1 to 86400 seconds; using the default")
                continue
            value = float(value)
        if name == "keys":
            value = _clean_keys(value, config, where)
        elif name == "hosts":
            value = _clean_hosts(value, config, where)
        elif name == "mcp":
            config.warnings.extend(parse_mcp_servers(value, where)[1])
        elif name == "tools":
            config.warnings.extend(parse_tool_settings(value, where)[1])
        setattr(config, name, value)


def _type_name(types: tuple[type, ...]) -> str:
    names = {bool: "true/false", int: "number", float: "number", str: "string", dict: "table"}
    return " or ".join(dict.fromkeys(names[t] for t in types))


def _clean_keys(value: dict[str, Any], config: Config, where: str) -> dict[str, str]:
    keys: dict[str, str] = {}
    for host_id, key in value.items():
        if isinstance(key, str) and key.strip():
            keys[host_id] = key.strip()
        elif not isinstance(key, str):
            # Never echo the value: it may be a key in the wrong shape.
            config.warnings.append(f"{where}: keys.{host_id} is not a string; ignored")
    return keys


_HOST_FIELDS = {f.name: f for f in dataclasses.fields(Host)}
_USER_HOST_FIELDS = set(_HOST_FIELDS) | {"based_on"}


def _clean_hosts(value: dict[str, Any], config: Config, where: str) -> dict[str, dict[str, Any]]:
    hosts: dict[str, dict[str, Any]] = {}
    for host_id, entry in value.items():
        if not isinstance(entry, dict):
            config.warnings.append(f"{where}: hosts.{host_id} is not a table; ignored")
            continue
        allowed = _HOST_FIELDS.keys() if host_id in BUILTIN_HOSTS else _USER_HOST_FIELDS
        unknown = sorted(set(entry) - set(allowed) - {"id"})
        for name in unknown:
            config.warnings.append(f"{where}: unknown setting hosts.{host_id}.{name} ignored")
        hosts[host_id] = {k: v for k, v in entry.items() if k not in unknown and k != "id"}
    return hosts


def _check_private(path: Path, config: Config) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        config.warnings.append(
            f"{path} holds API keys or other secrets and is readable by other users: run chmod 600 {path}"
        )


def config_to_dict(config: Config) -> dict[str, Any]:
    """The TOML table for a config (None values left out, unknown settings kept)."""
    out: dict[str, Any] = dict(config.extra)
    for name in _SETTINGS:
        value = getattr(config, name)
        if value is None:
            continue
        if isinstance(value, dict):
            if not value:
                continue
            value = {k: dict(v) if isinstance(v, dict) else v for k, v in value.items()}
        out[name] = value
    # Tables must follow plain values in TOML; tomli-w handles the order, but
    # keeping them last makes the file read naturally.
    for name in ("hosts", "mcp", "tools", "keys"):
        if name in out:
            out[name] = out.pop(name)
    return out


def new_session(config: Config, host: str | None = None, model: str | None = None) -> Session:
    """A new, unsaved session with the config's defaults: system prompt, sampling, thinking switches."""
    from glmchat.session import Session

    session = Session(
        system_prompt=config.system_prompt,
        temperature=config.temperature,
        top_p=config.top_p,
        max_tokens=config.max_tokens,
        preserve_thinking=config.preserve_thinking,
        thinking_next=config.thinking,
    )
    if host:
        session.host = host
    if model:
        session.model = model
    return session


def save_config(config: Config, where: Paths | Path | None = None) -> Path:
    """Write the config atomically (temp file + rename); the file is mode 0600 from the start.

    Returns:
        The path written.

    Raises:
        ConfigError: the file could not be written (the old one is left as it was).
    """
    path, text = config_snapshot(config, where)
    write_config_snapshot(path, text)
    config.path = path
    return path


def config_snapshot(config: Config, where: Paths | Path | None = None) -> tuple[Path, str]:
    """Where `save_config` would write, and the text it would write (nothing is written).

    Taken where the config is changed (the UI thread), the snapshot can be
    written from another thread with `write_config_snapshot`.
    """
    import tomli_w

    path = Path(config.path) if where is None and config.path else _config_path(where)
    return path, tomli_w.dumps(config_to_dict(config))


def write_config_snapshot(path: Path, text: str) -> None:
    """Write a `config_snapshot` atomically, mode 0600.

    Raises:
        ConfigError: the file could not be written (the old one is left as it was).
    """
    _make_private_dir(path.parent)
    try:
        write_atomic(path, text, mode=0o600, durable=True)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror or exc}") from None


# -- hosts and keys ----------------------------------------------------------------------


def known_host_ids(config: Config) -> list[str]:
    """Built-in host ids, then the user's own, in order."""
    return list(BUILTIN_HOSTS) + [h for h in config.hosts if h not in BUILTIN_HOSTS]


# A user host without `based_on` inherits the knobs of the built-in host that speaks its dialect.
_DIALECT_TEMPLATE = {Dialect.OLLAMA: "ollama", Dialect.RUNWARE: "runware"}


def resolve_host(
    config: Config,
    host_id: str | None = None,
    base_url: str | None = None,
    model: str | None = None,
) -> Host:
    """The Host to talk to: a built-in or user-defined host with the config's overrides applied.

    Args:
        config: the loaded settings.
        host_id: host to use; defaults to ``config.host``.
        base_url: points the host somewhere else for this run only (``--base-url``).
        model: model for this run; defaults to ``config.model`` for the default
            host, else the host's default model.

    Raises:
        ConfigError: unknown host (the message lists the known ids), a bad
            override, or a plain-http URL to a remote address.
    """
    host_id = host_id or config.host
    where = config.path.name if config.path else CONFIG_NAME
    entry = dict(config.hosts.get(host_id) or {})
    if host_id in BUILTIN_HOSTS:
        entry.pop("based_on", None)
        host = BUILTIN_HOSTS[host_id]
    elif host_id in config.hosts:
        host = _user_host(host_id, entry, where)
    else:
        raise ConfigError(f"unknown host {host_id!r}; known hosts: {', '.join(known_host_ids(config))}")

    if entry:
        _check_override_types(host, entry, host_id, where)
        try:
            host = host.with_overrides(entry)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}: [hosts.{host_id}]: {exc}") from None

    if base_url is not None:
        # Given but empty is a mistake to report, not a reason to fall back to the default URL.
        host = dataclasses.replace(host, base_url=base_url)
    if not model and host_id == config.host and config.model:
        model = config.model
    if model:
        host = dataclasses.replace(host, default_model=model)
    check_transport(host)
    return host


def _user_host(host_id: str, entry: dict[str, Any], where: str) -> Host:
    """Build a user-defined host from its table; `entry` keeps only the plain overrides."""
    based_on = entry.pop("based_on", None)
    dialect = entry.get("dialect")
    if based_on is None and dialect is None:
        raise ConfigError(f"{where}: [hosts.{host_id}] needs dialect = \"chat\" (or based_on = a built-in host id)")
    if "base_url" not in entry:
        raise ConfigError(f"{where}: [hosts.{host_id}] needs base_url")
    if based_on is None:
        based_on = _DIALECT_TEMPLATE.get(dialect)
    if based_on is not None:
        if based_on not in BUILTIN_HOSTS:
            raise ConfigError(
                f"{where}: [hosts.{host_id}] based_on {based_on!r} is not a built-in host; "
                f"known: {', '.join(BUILTIN_HOSTS)}"
            )
        # Inherit the wire knobs, models and limits, but not the identity: a proxy
        # of Z.ai must not be sent ZAI_API_KEY unless the user says so.
        template = BUILTIN_HOSTS[based_on]
        host = dataclasses.replace(template, id=host_id, name=host_id, key_env=None, note="", local=False)
    else:
        host = Host(id=host_id, name=host_id, dialect=Dialect.CHAT, base_url="")
    if "local" not in entry:
        entry["local"] = is_local_url(str(entry["base_url"]))
    return host


def _check_override_types(host: Host, entry: dict[str, Any], host_id: str, where: str) -> None:
    for name, value in entry.items():
        current = getattr(host, name, None)
        if current is None:
            continue
        expected: tuple[type, ...]
        if isinstance(current, StrEnum):
            expected = (str,)  # which names are allowed is checked with the override itself
        elif isinstance(current, bool):
            expected = (bool,)
        elif isinstance(current, (int, float)):
            expected = (int, float) if isinstance(current, float) else (int,)
        elif isinstance(current, tuple):
            expected = (list, tuple)
        else:
            expected = (type(current),)
        if not _type_ok(value, expected):
            raise ConfigError(f"{where}: hosts.{host_id}.{name} = {value!r} has the wrong type")


def api_key_for(config: Config, host: Host) -> str | None:
    """The key for a host: its environment variable first, then config.toml's [keys]; None if there is none.

    Local hosts usually need none; a key configured for one is still used.
    """
    from glmchat.sanitize import remember_secret

    if host.key_env:
        value = os.environ.get(host.key_env, "").strip()
        if value:
            remember_secret(value)
            return value
    key = config.keys.get(host.id, "").strip()
    remember_secret(key)
    return key or None


def key_source(config: Config, host: Host) -> str | None:
    """Where the key for a host comes from, for display: "$ZAI_API_KEY", "config.toml", or None."""
    if host.key_env and os.environ.get(host.key_env, "").strip():
        return f"${host.key_env}"
    if config.keys.get(host.id, "").strip():
        return config.path.name if config.path else CONFIG_NAME
    return None


_KEY_PREFIX = re.compile(r"^[A-Za-z]{2,4}[-_]")


def mask_key(key: str | None) -> str:
    """A key shown safely: a well-known prefix and at most the last 4 characters ("sk-…abcd").

    Short keys show no tail at all, so a mask never gives away most of a key.
    """
    if not key:
        return "(none)"
    match = _KEY_PREFIX.match(key)
    prefix = match.group() if match and len(key) >= 16 else ""
    tail = key[-4:] if len(key) >= 16 else ""
    return f"{prefix}…{tail}"


def missing_key_message(host: Host) -> str:
    """One line telling the user how to give a key for a host."""
    how = f"set {host.key_env} or run" if host.key_env else "run"
    return f"{host.name}: no API key; {how} `glmchat config set-key {host.id}`"


# -- MCP tool servers ([mcp.NAME]) and tool limits ([tools]) -------------------------------


class McpTransport(StrEnum):
    """How glmchat reaches an MCP server."""

    STDIO = "stdio"
    """A subprocess speaking MCP over its stdin and stdout (`command`)."""
    HTTP = "http"
    """Streamable HTTP (`url`)."""


@dataclass(frozen=True)
class McpServerConfig:
    """One `[mcp.NAME]` table, validated.

    ``env`` and ``headers`` values are secrets: they are left out of the repr, and
    glmchat never shows them (``config show`` masks them, error text is scrubbed).
    """

    name: str
    transport: McpTransport
    command: tuple[str, ...] = ()
    """stdio: the program and its arguments, a leading ``~`` expanded (no shell)."""
    env: dict[str, str] = field(default_factory=dict, repr=False)
    """stdio: extra environment variables, over a minimal inherited environment."""
    cwd: str | None = None
    """stdio: the working directory (``~`` expanded)."""
    url: str = ""
    """http: the streamable-HTTP endpoint."""
    headers: dict[str, str] = field(default_factory=dict, repr=False)
    """http: sent with every request (e.g. Authorization)."""
    trust_all: bool = False
    """``trusted = true``: every tool of this server runs without asking."""
    trusted_tools: frozenset[str] = frozenset()
    """``trusted = ["a", "b"]``: these tools (their names on the server) run without asking."""
    timeout: float | None = None
    """Seconds one call may take; None: ``[tools] call_timeout``."""
    start_timeout: float = 60.0
    """Seconds the server may take to start and list its tools (``uvx`` may download first)."""
    enabled: bool = True

    def trusts(self, tool: str) -> bool:
        """Whether `tool` (its name on this server) may run without the user's approval."""
        return self.trust_all or tool in self.trusted_tools

    def secrets(self) -> list[str]:
        """Values that must never be shown: header and env values."""
        return [v for v in (*self.headers.values(), *self.env.values()) if v]


@dataclass(frozen=True)
class ToolSettings:
    """The `[tools]` table: limits for tool use in a turn."""

    max_steps: int = 25
    """Model steps (requests) one turn may take before it is stopped."""
    call_timeout: float = 60.0
    """Seconds one tool call may take, unless the server sets its own `timeout`."""
    max_result_chars: int = 20_000
    """Characters of one tool result sent to the model (the stored result is complete)."""


MCP_SERVER_NAME = re.compile(r"^[A-Za-z0-9_-]{1,48}$")
"""Server names become part of function names, which allow only these characters."""

_MCP_KEYS = frozenset(
    {"command", "args", "env", "cwd", "url", "headers", "trusted", "timeout", "start_timeout", "enabled",
     "allow_insecure_http"}
)
_STDIO_ONLY = ("args", "env", "cwd")
_HTTP_ONLY = ("headers", "allow_insecure_http")


class _Skip(Exception):
    """A server table is unusable; the message says which key and why."""


def parse_mcp_servers(tables: Any, where: str = CONFIG_NAME) -> tuple[dict[str, McpServerConfig], list[str]]:
    """Validate the `[mcp]` tables.

    A bad server is skipped with one warning naming its table and key; a bad
    optional key is ignored with a warning, and the server is kept. Values are
    never quoted in warnings: any of them may hold a token.

    Returns:
        The usable servers by name, and the warnings.
    """
    servers: dict[str, McpServerConfig] = {}
    warnings: list[str] = []
    if not isinstance(tables, dict):
        return servers, [f"{where}: mcp is not a table of [mcp.NAME] servers; ignored"]
    for name, table in tables.items():
        label = f"[mcp.{name}]"
        if not isinstance(table, dict):
            warnings.append(f"{where}: mcp.{name} is not a table; server skipped")
            continue
        if not MCP_SERVER_NAME.match(name):
            warnings.append(
                f"{where}: {label}: a server name may use only letters, digits, _ and - (at most 48); server skipped"
            )
            continue
        try:
            servers[name] = _parse_mcp_server(name, table, label, where, warnings)
        except _Skip as exc:
            warnings.append(f"{where}: {label} {exc}; server skipped")
    return servers, warnings


def _parse_mcp_server(name: str, table: dict[str, Any], label: str, where: str, warnings: list[str]) -> McpServerConfig:
    for key in sorted(set(table) - _MCP_KEYS):
        warnings.append(f"{where}: {label} unknown setting {key!r} ignored")
    has_command, has_url = "command" in table, "url" in table
    if has_command == has_url:
        raise _Skip("needs either command (a program to run) or url (a streamable-HTTP endpoint)")
    transport = McpTransport.STDIO if has_command else McpTransport.HTTP
    for key in _HTTP_ONLY if has_command else _STDIO_ONLY:
        if key in table:
            warnings.append(f"{where}: {label} {key} applies only to {'url' if has_command else 'command'} servers; ignored")

    command: tuple[str, ...] = ()
    env: dict[str, str] = {}
    cwd: str | None = None
    url = ""
    headers: dict[str, str] = {}
    if transport is McpTransport.STDIO:
        command = _mcp_command(table)
        env = _string_table(table, "env", label)
        if "cwd" in table:
            if not isinstance(table["cwd"], str) or not table["cwd"].strip():
                raise _Skip("cwd must be a folder path (a string)")
            cwd = os.path.expanduser(table["cwd"])
    else:
        url = table["url"]
        if not isinstance(url, str) or not url.strip():
            raise _Skip("url must be a string like \"https://example.com/mcp\"")
        url = url.strip()
        _check_mcp_url(url, table.get("allow_insecure_http") is True)
        headers = _string_table(table, "headers", label)

    trust_all = False
    trusted_tools: frozenset[str] = frozenset()
    trusted = table.get("trusted", False)
    if isinstance(trusted, bool):
        trust_all = trusted
    elif isinstance(trusted, list) and all(isinstance(t, str) for t in trusted):
        trusted_tools = frozenset(trusted)
    else:
        warnings.append(f"{where}: {label} trusted must be true/false or a list of tool names; nothing is trusted")

    timeout = _positive_seconds(table, "timeout", label, where, warnings)
    start_timeout = _positive_seconds(table, "start_timeout", label, where, warnings)
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        warnings.append(f"{where}: {label} enabled must be true or false; the server stays enabled")
        enabled = True
    return McpServerConfig(
        name=name,
        transport=transport,
        command=command,
        env=env,
        cwd=cwd,
        url=url,
        headers=headers,
        trust_all=trust_all,
        trusted_tools=trusted_tools,
        timeout=timeout,
        start_timeout=start_timeout if start_timeout is not None else McpServerConfig.start_timeout,
        enabled=enabled,
    )


def _mcp_command(table: dict[str, Any]) -> tuple[str, ...]:
    """`command = [argv...]`, or `command = "prog"` with `args = [...]`; a leading ~ expanded in each part."""
    command = table["command"]
    args = table.get("args", [])
    if isinstance(command, str):
        if not command.strip():
            raise _Skip("command is empty")
        if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
            raise _Skip("args must be a list of strings")
        argv = [command, *args]
    elif isinstance(command, list) and command and all(isinstance(c, str) for c in command):
        if "args" in table:
            if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
                raise _Skip("args must be a list of strings")
        argv = [*command, *args]
        if not argv[0].strip():
            raise _Skip("command is empty")
    else:
        raise _Skip('command must be a list of strings (["uvx", "some-server"]) or a program name')
    # No shell runs the command, so expand ~ the way a shell would have (only at the start of a part).
    return tuple(os.path.expanduser(part) if part.startswith("~") else part for part in argv)


def _string_table(table: dict[str, Any], key: str, label: str) -> dict[str, str]:
    value = table.get(key, {})
    if not isinstance(value, dict):
        raise _Skip(f"{key} must be a table of names to strings")
    for item, item_value in value.items():
        if not isinstance(item_value, str):
            # The value is a secret: say which entry, never what it holds.
            raise _Skip(f"{key}.{item} must be a string")
    return dict(value)


def _check_mcp_url(url: str, allow_insecure: bool) -> None:
    from urllib.parse import urlsplit

    from glmchat.hosts import is_private_url

    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        raise _Skip("url must start with https:// (or http:// for a server on this machine or your network)")
    if scheme == "http" and not (allow_insecure or is_local_url(url) or is_private_url(url)):
        raise _Skip("url: refusing unencrypted http:// to a remote address; use https://, or set allow_insecure_http = true")


def _positive_seconds(table: dict[str, Any], key: str, label: str, where: str, warnings: list[str]) -> float | None:
    if key not in table:
        return None
    value = table[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        warnings.append(f"{where}: {label} {key} must be a number of seconds above 0; using the default")
        return None
    return float(value)


_TOOL_LIMITS: dict[str, tuple[type, float, float]] = {
    # key: (type, lowest, highest)
    "max_steps": (int, 1, 1000),
    "call_timeout": (float, 0.001, 86_400),
    "max_result_chars": (int, 100, 10_000_000),
}


def parse_tool_settings(table: Any, where: str = CONFIG_NAME) -> tuple[ToolSettings, list[str]]:
    """Validate `[tools]`: each bad or out-of-range value warns and keeps its default."""
    if not isinstance(table, dict):
        return ToolSettings(), [f"{where}: tools is not a table; using the defaults"]
    warnings: list[str] = []
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in _TOOL_LIMITS:
            warnings.append(f"{where}: [tools] unknown setting {key!r} ignored")
            continue
        kind, low, high = _TOOL_LIMITS[key]
        ok_type = isinstance(value, int) if kind is int else isinstance(value, (int, float))
        if isinstance(value, bool) or not ok_type or not low <= value <= high:
            what = "a whole number" if kind is int else "a number of seconds"
            warnings.append(f"{where}: [tools] {key} must be {what} from {low:g} to {high:g}; using the default")
            continue
        values[key] = kind(value)
    return ToolSettings(**values), warnings


def masked_config_dict(config: Config) -> dict[str, Any]:
    """`config_to_dict` for showing: API keys, MCP header and env values masked, URL secrets hidden."""
    data = config_to_dict(config)
    if "keys" in data:
        data["keys"] = {h: mask_key(k) if isinstance(k, str) else "…" for h, k in data["keys"].items()}
    if isinstance(data.get("mcp"), dict):
        masked: dict[str, Any] = {}
        for name, table in data["mcp"].items():
            if isinstance(table, dict):
                table = dict(table)
                for key in ("env", "headers"):
                    if isinstance(table.get(key), dict):
                        table[key] = {k: mask_key(v) if isinstance(v, str) else "…" for k, v in table[key].items()}
                    elif key in table:
                        table[key] = "…"
                if isinstance(table.get("url"), str):
                    table["url"] = mask_url(table["url"])
            masked[name] = table
        data["mcp"] = masked
    return data


def mask_url(url: str) -> str:
    """A URL without what may be a credential: a password in it, and the values of its query."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(url)
    except ValueError:
        return "…"
    netloc = parts.netloc
    if "@" in netloc:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.split(':', 1)[0]}:…@{host}" if ":" in user else f"…@{host}"
    query = "&".join(f"{p.split('=', 1)[0]}=…" if "=" in p else p for p in parts.query.split("&")) if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))
