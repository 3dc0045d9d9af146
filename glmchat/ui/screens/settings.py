"""Settings of the open session (host, model, sampling, preserved thinking), hosts' base URLs and the theme."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, Select, SelectionList, Static, Switch, TextArea

if TYPE_CHECKING:
    from glmchat.config import Config
    from glmchat.hosts import Host
    from glmchat.session import Session

SESSION_FIELDS = (
    "host", "model", "system_prompt", "temperature", "top_p", "max_tokens", "preserve_thinking", "tool_servers", "web_search",
)
"""Settings that belong to a session (same names as Session's fields)."""


@dataclass(frozen=True)
class SettingsResult:
    """The settings the user changed (and only those).

    ``changes`` maps a name from `SESSION_FIELDS` or ``"theme"`` to its new value.
    ``temperature``, ``top_p`` and ``max_tokens`` may be None: "the host's default".
    ``base_urls`` maps a host id to its new base URL (None: back to the built-in one).
    """

    changes: dict[str, Any] = field(default_factory=dict)
    base_urls: dict[str, str | None] = field(default_factory=dict)

    def __contains__(self, name: str) -> bool:
        return name in self.changes

    @property
    def theme(self) -> str | None:
        """The new theme, or None if it did not change."""
        return self.changes.get("theme")

    @property
    def session_changes(self) -> dict[str, Any]:
        """The changes that apply to the session."""
        return {k: v for k, v in self.changes.items() if k in SESSION_FIELDS}

    def apply_to_session(self, session: Session) -> None:
        """Set the changed session settings on `session`."""
        for name, value in self.session_changes.items():
            setattr(session, name, value)

    def apply_to_config(self, config: Config, *, as_defaults: bool = False) -> None:
        """Set the theme and the base URLs on `config`; with `as_defaults`, the session settings become the defaults too."""
        if self.theme is not None:
            config.theme = self.theme
        for host_id, url in self.base_urls.items():
            set_base_url(config, host_id, url)
        if not as_defaults:
            return
        for name, value in self.session_changes.items():
            if name in ("tool_servers", "web_search"):
                continue  # chosen per session only: a new session starts with none
            if name in ("temperature", "top_p") and value is None:
                continue  # the config always holds a number for these
            setattr(config, name, value)


@dataclass
class _Values:
    host: str
    model: str
    system_prompt: str
    temperature: float | None
    top_p: float | None
    max_tokens: int | None
    preserve_thinking: bool
    theme: str
    tool_servers: list[str] = field(default_factory=list)
    web_search: bool = False


def configured_base_url(config: Config, host: Host) -> str:
    """The base URL config.toml gives a host (its [hosts.<id>] base_url), else the host's own."""
    value = (config.hosts.get(host.id) or {}).get("base_url")
    return value if isinstance(value, str) and value else host.base_url


def set_base_url(config: Config, host_id: str, url: str | None) -> None:
    """Put a host's base URL in the config (None: remove the override, back to the built-in URL)."""
    entry = config.hosts.setdefault(host_id, {})
    if url:
        entry["base_url"] = url
    else:
        entry.pop("base_url", None)
        if not entry:
            del config.hosts[host_id]


def check_base_url(config: Config, host_id: str, url: str | None) -> None:
    """Refuse a base URL the config loader would refuse, with its one-line reason.

    The check is the loader's own: a copy of the config with the new URL is
    resolved as a start would resolve it (type, scheme, plain http only where it
    is allowed, a host name).

    Raises:
        ConfigError: the URL is not usable.
    """
    import copy

    from glmchat.config import resolve_host

    candidate = copy.deepcopy(config)
    set_base_url(candidate, host_id, url)
    resolve_host(candidate, host_id)


def _number_text(value: float | int | None) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


class SettingsScreen(ModalScreen["SettingsResult | None"]):
    """Edit the session's settings and the theme; dismisses with a `SettingsResult` or None.

    The theme is previewed live as it is chosen; cancelling puts the old one back.

    | Key(s) | Description |
    | :- | :- |
    | ctrl+s | Save the settings. |
    | escape | Cancel (the theme goes back too). |
    """

    DEFAULT_CSS = """
    SettingsScreen {
        align: center middle;
        background: $background 70%;
    }
    SettingsScreen > #dialog {
        width: 86;
        max-width: 100%;
        height: 90%;
        max-height: 46;
        border: thick $primary 60%;
        background: $surface;
    }
    SettingsScreen #header {
        height: auto;
        padding: 1 2 0 2;
    }
    SettingsScreen #title {
        width: 1fr;
        text-style: bold;
        color: $primary;
        padding-top: 1;
    }
    SettingsScreen #header Button {
        margin-left: 2;
    }
    /* A dropdown opens downwards from its field, under the buttons (they are at the top):
       kept short enough that, pushed up at the foot of a small screen, it still stays below them. */
    SettingsScreen Select > SelectOverlay {
        max-height: 45vh;
    }
    SettingsScreen #fields {
        height: 1fr;
        padding: 0 2;
    }
    SettingsScreen .row {
        height: auto;
    }
    SettingsScreen .row > Label {
        width: 20;
        padding-top: 1;
    }
    SettingsScreen .row > Input, SettingsScreen .row > Select {
        width: 1fr;
    }
    SettingsScreen .row > SelectionList {
        width: 1fr;
        height: auto;
        max-height: 8;
    }
    SettingsScreen .row > Switch {
        width: auto;
    }
    SettingsScreen #system_prompt {
        height: 6;
        width: 1fr;
    }
    SettingsScreen .hint {
        color: $text-muted;
        padding-left: 20;
        height: auto;
    }
    SettingsScreen .error {
        color: $error;
        padding-left: 20;
        height: auto;
    }
    SettingsScreen .error.-empty {
        display: none;
    }
    SettingsScreen #fields > .row:last-child {
        margin-bottom: 1;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "save", "Save", tooltip="Save the settings.", id="settings-save"),
        Binding("escape", "cancel", "Cancel", id="settings-cancel"),
    ]

    def __init__(
        self,
        session: Session | None,
        config: Config,
        hosts: Mapping[str, Host],
        theme_names: Iterable[str],
    ) -> None:
        """Create the screen.

        Args:
            session: the open session (its settings are edited); None: the config's defaults.
            config: the loaded settings (the current theme, defaults).
            hosts: host id -> Host.
            theme_names: themes to offer (registered with the app), in the order to list them.
        """
        super().__init__()
        self.session = session
        self.config = config
        self.hosts = dict(hosts)
        self.theme_names = list(dict.fromkeys(theme_names))
        """In the order given (the app lists its own themes first)."""
        source: Any = session if session is not None else config
        host_id = source.host if source.host in self.hosts else next(iter(self.hosts))
        model = source.model or self.hosts[host_id].default_model
        self.initial = _Values(
            host=host_id,
            model=model,
            system_prompt=source.system_prompt or "",
            temperature=source.temperature,
            top_p=source.top_p,
            max_tokens=source.max_tokens,
            preserve_thinking=bool(source.preserve_thinking),
            theme=config.theme,
            tool_servers=list(getattr(session, "tool_servers", None) or []),
            web_search=bool(getattr(session, "web_search", False)),
        )
        self.tool_servers = [name for name, server in config.mcp_servers().items() if server.enabled]
        """The [mcp.NAME] servers a session may use (none offered for the defaults: it is a per-session choice)."""
        self._theme_before: str | None = None
        self.initial_base_urls = {host_id: configured_base_url(config, host) for host_id, host in self.hosts.items()}
        """Host id -> the base URL config.toml gives it now."""
        self._base_urls = dict(self.initial_base_urls)
        """Host id -> the base URL in the field (kept for each host while the host choice changes)."""
        self._shown_host = host_id

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        initial = self.initial
        host = self.hosts[initial.host]
        with Vertical(id="dialog"):
            # The buttons are at the top, where no dropdown below them can cover them.
            with Horizontal(id="header"):
                yield Static("Settings" if self.session is None else "Session settings", id="title")
                yield Button("Cancel", id="cancel")
                yield Button("Save", variant="primary", id="save")
            with VerticalScroll(id="fields"):
                with Horizontal(classes="row"):
                    yield Label("Host")
                    yield Select(
                        [(h.name, h.id) for h in self.hosts.values()],
                        value=initial.host,
                        allow_blank=False,
                        id="host",
                    )
                with Horizontal(classes="row"):
                    yield Label("Base URL")
                    yield Input(self._base_urls[initial.host], placeholder=self._default_base_url(host), id="base_url")
                yield Static(self._base_url_hint(host), id="base_url-hint", classes="hint", markup=False)
                yield from self._error("base_url")
                with Horizontal(classes="row"):
                    yield Label("Model")
                    yield Input(initial.model, placeholder=host.default_model, id="model", suggester=self._suggester(host))
                yield Static(self._models_hint(host, initial.model), id="model-hint", classes="hint", markup=False)
                yield from self._error("model")
                with Horizontal(classes="row"):
                    yield Label("System prompt")
                    yield TextArea(initial.system_prompt, id="system_prompt", soft_wrap=True)
                with Horizontal(classes="row"):
                    yield Label("Temperature")
                    yield Input(_number_text(initial.temperature), placeholder="host default", id="temperature")
                yield from self._error("temperature")
                with Horizontal(classes="row"):
                    yield Label("Top p")
                    yield Input(_number_text(initial.top_p), placeholder="host default", id="top_p")
                yield from self._error("top_p")
                with Horizontal(classes="row"):
                    yield Label("Max tokens")
                    yield Input(_number_text(initial.max_tokens), placeholder="host default", id="max_tokens")
                yield from self._error("max_tokens")
                with Horizontal(classes="row"):
                    yield Label("Preserved thinking")
                    yield Switch(initial.preserve_thinking, id="preserve_thinking")
                yield Static("", id="preserve-hint", classes="hint", markup=False)
                if self.session is not None and self.tool_servers:
                    with Horizontal(classes="row"):
                        yield Label("Tool servers")
                        yield SelectionList[str](
                            *[(name, name, name in initial.tool_servers) for name in self.tool_servers], id="tool_servers"
                        )
                    yield Static(
                        "MCP servers from config.toml whose tools the model may call; each call asks first "
                        "unless the tool is trusted there.",
                        classes="hint",
                        markup=False,
                    )
                if self.session is not None:
                    with Horizontal(classes="row"):
                        yield Label("Web search")
                        yield Switch(initial.web_search, id="web_search")
                    yield Static(
                        "Z.ai and BigModel search the web for the model; the sources are kept with the turn. "
                        "Other hosts have no built-in search.",
                        classes="hint",
                        markup=False,
                    )
                with Horizontal(classes="row"):
                    yield Label("Theme")
                    options = [(name, name) for name in self.theme_names]
                    yield Select(
                        options,
                        value=initial.theme if initial.theme in self.theme_names else Select.NULL,
                        allow_blank=initial.theme not in self.theme_names,
                        id="theme",
                    )

    @staticmethod
    def _error(name: str) -> ComposeResult:
        yield Static("", id=f"{name}-error", classes="error -empty", markup=False)

    @staticmethod
    def _suggester(host: Host) -> SuggestFromList | None:
        return SuggestFromList(host.models, case_sensitive=False) if host.models else None

    @staticmethod
    def _default_base_url(host: Host) -> str:
        from glmchat.hosts import BUILTIN_HOSTS

        builtin = BUILTIN_HOSTS.get(host.id)
        return builtin.base_url if builtin is not None else "https://…"

    @staticmethod
    def _base_url_hint(host: Host) -> str:
        from glmchat.hosts import BUILTIN_HOSTS

        where = f"Saved as [hosts.{host.id}] base_url in config.toml"
        if host.id in BUILTIN_HOSTS:
            return f"{where}; empty: {BUILTIN_HOSTS[host.id].base_url}"
        return where

    @staticmethod
    def _models_hint(host: Host, model: str = "") -> str:
        from glmchat.ui.model_commands import model_facts

        listed = "Models: " + ", ".join(host.models) if host.models else f"Default: {host.default_model}"
        model = model.strip() or host.default_model
        return f"{model}: {model_facts(host, model)}\n{listed}"

    @on(Input.Changed, "#model")
    def _model_changed(self, event: Input.Changed) -> None:
        # The facts of the model being typed: limits, prices, thinking (from the model table).
        self.query_one("#model-hint", Static).update(self._models_hint(self.hosts[self._shown_host], event.value))

    def on_mount(self) -> None:
        self._theme_before = self.app.theme
        self._show_host(self.hosts[self.initial.host])
        self.query_one("#host", Select).focus()

    # -- reacting ------------------------------------------------------------------------

    def _show_host(self, host: Host) -> None:
        switch = self.query_one("#preserve_thinking", Switch)
        hint = self.query_one("#preserve-hint", Static)
        if host.can_preserve_thinking:
            switch.disabled = False
            hint.update("Send earlier reasoning back so the model keeps its train of thought (clear_thinking=false).")
        else:
            switch.disabled = True
            switch.value = False
            hint.update(host.note or f"{host.name} cannot carry earlier reasoning back, so this stays off.")
        self.query_one("#model-hint", Static).update(self._models_hint(host, self.query_one("#model", Input).value))
        self.query_one("#model", Input).suggester = self._suggester(host)

    @on(Select.Changed, "#host")
    def _host_changed(self, event: Select.Changed) -> None:
        if event.value is Select.NULL or event.value not in self.hosts:
            return
        host = self.hosts[str(event.value)]
        # Each host keeps its own base URL: what was typed for the one left stays with it.
        base_url = self.query_one("#base_url", Input)
        self._base_urls[self._shown_host] = base_url.value.strip()
        self._shown_host = host.id
        base_url.value = self._base_urls[host.id]
        base_url.placeholder = self._default_base_url(host)
        self.query_one("#base_url-hint", Static).update(self._base_url_hint(host))
        model = self.query_one("#model", Input)
        if host.id == self.initial.host:
            model.value = self.initial.model
        elif not host.models or model.value not in host.models:
            model.value = host.default_model
        model.placeholder = host.default_model
        switch = self.query_one("#preserve_thinking", Switch)
        if host.can_preserve_thinking and switch.disabled:
            switch.value = self.initial.preserve_thinking if host.id == self.initial.host else True
        self._show_host(host)

    @on(Select.Changed, "#theme")
    def _theme_changed(self, event: Select.Changed) -> None:
        # Live preview: the theme changes under the dialog; cancel restores the old one.
        if isinstance(event.value, str) and event.value in self.app.available_themes:
            self.app.theme = event.value

    @on(Input.Changed)
    def _clear_error(self, event: Input.Changed) -> None:
        if event.input.id:
            self._set_error(event.input.id, "")

    def _set_error(self, name: str, message: str) -> None:
        try:
            error = self.query_one(f"#{name}-error", Static)
        except Exception:  # a field without an error line
            return
        error.update(message)
        error.set_class(not message, "-empty")

    # -- validation ----------------------------------------------------------------------

    def _read_float(self, name: str, label: str, low: float, high: float, *, low_open: bool = False) -> float | None:
        text = self.query_one(f"#{name}", Input).value.strip()
        if not text:
            return None
        try:
            value = float(text)
        except ValueError:
            raise _Invalid(name, f"{label} must be a number (or empty for the host's default).") from None
        if not math.isfinite(value) or value > high or value < low or (low_open and value == low):
            if low_open:
                raise _Invalid(name, f"{label} must be more than {low:g} and at most {high:g}.")
            raise _Invalid(name, f"{label} must be from {low:g} to {high:g}.")
        return value

    def _read_max_tokens(self, host: Host) -> int | None:
        text = self.query_one("#max_tokens", Input).value.strip().replace("_", "").replace(",", "")
        if not text:
            return None
        try:
            value = int(text)
        except ValueError:
            raise _Invalid("max_tokens", "Max tokens must be a whole number (or empty for the host's default).") from None
        if not 1 <= value <= host.max_output:
            raise _Invalid("max_tokens", f"Max tokens must be from 1 to {host.max_output:,} on {host.name}.")
        return value

    def _read_model(self, host: Host) -> str:
        model = self.query_one("#model", Input).value.strip() or host.default_model
        if any(ch.isspace() or not ch.isprintable() for ch in model):
            raise _Invalid("model", "A model name has no spaces or control characters.")
        return model

    def result(self) -> SettingsResult | None:
        """The changes, or None when a field is invalid (every bad field shows its error)."""
        errors: dict[str, str] = {}

        def read(check: Any) -> Any:
            try:
                return check()
            except _Invalid as problem:
                errors[problem.field] = problem.message
                return None

        host_value = self.query_one("#host", Select).value
        host = self.hosts.get(str(host_value), self.hosts[self.initial.host])
        theme_value = self.query_one("#theme", Select).value
        values = _Values(
            host=host.id,
            model=read(lambda: self._read_model(host)),
            system_prompt=self.query_one("#system_prompt", TextArea).text,
            temperature=read(lambda: self._read_float("temperature", "Temperature", 0.0, 2.0)),
            top_p=read(lambda: self._read_float("top_p", "Top p", 0.0, 1.0, low_open=True)),
            max_tokens=read(lambda: self._read_max_tokens(host)),
            preserve_thinking=self.query_one("#preserve_thinking", Switch).value,
            theme=theme_value if isinstance(theme_value, str) else self.initial.theme,
            tool_servers=self._read_tool_servers(),
            web_search=self._read_web_search(),
        )
        base_urls = read(lambda: self._read_base_urls(host))
        for name in ("base_url", "model", "temperature", "top_p", "max_tokens"):
            self._set_error(name, errors.get(name, ""))
        if errors:
            self.query_one(f"#{next(iter(errors))}").focus()
            return None
        changes = {
            name: getattr(values, name)
            for name in (*SESSION_FIELDS, "theme")
            if getattr(values, name) != getattr(self.initial, name)
        }
        return SettingsResult(changes, base_urls or {})

    def _read_web_search(self) -> bool:
        switches = self.query("#web_search")
        return switches.first(Switch).value if switches else self.initial.web_search

    def _read_tool_servers(self) -> list[str]:
        """The chosen servers in config order; servers not in the config any more are kept as they were."""
        lists = self.query("#tool_servers")
        if not lists:
            return list(self.initial.tool_servers)
        chosen = set(lists.first(SelectionList).selected)
        kept = [name for name in self.initial.tool_servers if name not in self.tool_servers]
        return [name for name in self.tool_servers if name in chosen] + kept

    def _read_base_urls(self, shown: Host) -> dict[str, str | None]:
        """Host id -> new base URL (None: the built-in one), for every host whose URL was changed."""
        from glmchat.errors import ConfigError
        from glmchat.hosts import BUILTIN_HOSTS

        self._base_urls[self._shown_host] = self.query_one("#base_url", Input).value.strip()
        changed: dict[str, str | None] = {}
        for host_id, text in self._base_urls.items():
            if text == self.initial_base_urls[host_id]:
                continue
            builtin = BUILTIN_HOSTS.get(host_id)
            url: str | None = text
            if not text or (builtin is not None and text == builtin.base_url):
                url = None  # no override: the built-in URL
            try:
                check_base_url(self.config, host_id, url)
            except ConfigError as exc:
                if host_id != shown.id:
                    # The field shows one host at a time: show the host whose URL is wrong.
                    self.query_one("#host", Select).value = host_id
                raise _Invalid("base_url", str(exc)) from None
            changed[host_id] = url
        return changed

    # -- actions -------------------------------------------------------------------------

    @on(Button.Pressed, "#save")
    def action_save(self) -> None:
        """Dismiss with the changes, or show what is wrong."""
        result = self.result()
        if result is not None:
            self.dismiss(result)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Dismiss with None and put the old theme back."""
        if self._theme_before is not None and self.app.theme != self._theme_before:
            self.app.theme = self._theme_before
        self.dismiss(None)


class _Invalid(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message
