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
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from glmchat.errors import ConfigError
from glmchat.files import write_atomic
from glmchat.hosts import BUILTIN_HOSTS, CHAT, OLLAMA, RUNWARE, Host, check_transport, is_local_url

if TYPE_CHECKING:
    from glmchat.session import Session

APP_NAME = "glmchat"
CONFIG_NAME = "config.toml"
HOME_ENV = "GLMCHAT_HOME"
"""When set, config, data, themes and log all live in this one folder."""

DIALECTS = (CHAT, OLLAMA, RUNWARE)


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
    last_session: str = ""
    """Id of the session the TUI had open last ("" = none)."""
    keys: dict[str, str] = field(default_factory=dict)
    """Host id -> API key (used when the host's environment variable is not set)."""
    hosts: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Host id -> overrides of a built-in host, or a user-defined host (dialect, base_url, based_on)."""

    warnings: list[str] = field(default_factory=list, compare=False)
    """Problems found while loading, one line each, for the UI and CLI to show."""
    path: Path | None = field(default=None, compare=False)
    """The file this config was loaded from."""
    extra: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """Unknown top-level settings, kept so that saving does not throw them away."""


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
    "last_session": (str,),
    "keys": (dict,),
    "hosts": (dict,),
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
        return config
    except OSError as exc:
        config.warnings.append(f"{path}: cannot read ({exc.strerror or exc}); using defaults")
        return config

    data, problem = _parse_toml(raw, path)
    if problem is not None:
        config.warnings.append(_set_aside(path, problem))
        return config

    _apply(config, data)
    if config.keys:
        _check_private(path, config)
    return config


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
        if name == "keys":
            value = _clean_keys(value, config, where)
        elif name == "hosts":
            value = _clean_hosts(value, config, where)
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
            f"{path} holds API keys and is readable by other users: run chmod 600 {path}"
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
    for name in ("hosts", "keys"):
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
_DIALECT_TEMPLATE = {OLLAMA: "ollama", RUNWARE: "runware"}


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

    if host.dialect not in DIALECTS:
        raise ConfigError(
            f"{where}: [hosts.{host_id}] dialect {host.dialect!r} is not one of {', '.join(DIALECTS)}"
        )
    if base_url:
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
        host = Host(id=host_id, name=host_id, dialect=CHAT, base_url="")
    if "local" not in entry:
        entry["local"] = is_local_url(str(entry["base_url"]))
    return host


def _check_override_types(host: Host, entry: dict[str, Any], host_id: str, where: str) -> None:
    for name, value in entry.items():
        current = getattr(host, name, None)
        if current is None:
            continue
        expected: tuple[type, ...]
        if isinstance(current, bool):
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
    if host.key_env:
        value = os.environ.get(host.key_env, "").strip()
        if value:
            return value
    key = config.keys.get(host.id, "").strip()
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
