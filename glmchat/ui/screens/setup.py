"""First-run setup: choose a host, give it a key (or use its environment variable), or pick a local server."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, ClassVar

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Checkbox, Input, OptionList, Static
from textual.widgets.option_list import Option

from glmchat.ui.probe import DEFAULT_CANDIDATES, Candidate, LocalServer, probe_local_servers

if TYPE_CHECKING:
    from glmchat.config import Config
    from glmchat.hosts import Host

LOCAL_PREFIX = "local:"
"""Option ids of servers the probe found: "local:<host_id>"."""

# A pasted key is one token: spaces or line breaks mean a paste went wrong.
_KEY_SHAPE = re.compile(r"^[\x21-\x7e]+$")


@dataclass(frozen=True)
class SetupResult:
    """What the user chose. The app saves the key (config.save_config writes mode 0600)."""

    host_id: str
    api_key: str | None = field(default=None, repr=False)
    """A key pasted now; None: use the environment variable, the key already saved, or none needed."""
    base_url: str | None = None
    """Set for a local server the probe found (its address), else None (the host's own URL)."""
    model: str | None = None
    """A model the local server lists (a GLM one when there is one), else None."""


def pick_model(models: Iterable[str]) -> str | None:
    """The model to start with on a local server: the first GLM model, else the first one."""
    models = list(models)
    for name in models:
        if "glm" in name.lower():
            return name
    return models[0] if models else None


class SetupScreen(ModalScreen["SetupResult | None"]):
    """Choose a host and give it a key; dismisses with a `SetupResult`, or None when cancelled.

    The key field is masked and its value never leaves the screen except in the
    result. Local servers are looked for in a worker, so the screen shows at once
    and fills in what it finds.

    | Key(s) | Description |
    | :- | :- |
    | ctrl+s | Continue with the chosen host. |
    | escape | Cancel. |
    """

    DEFAULT_CSS = """
    SetupScreen {
        align: center middle;
        background: $background 70%;
    }
    SetupScreen > #dialog {
        width: 90;
        max-width: 100%;
        height: 90%;
        max-height: 38;
        padding: 0 2;
        border: thick $primary 60%;
        background: $surface;
    }
    SetupScreen #body {
        height: 1fr;
    }
    SetupScreen #title {
        text-style: bold;
        color: $primary;
        margin-top: 1;
    }
    SetupScreen .hint {
        color: $text-muted;
    }
    SetupScreen #hosts {
        height: auto;
        max-height: 12;
        margin: 1 0 0 0;
        background: $boost;
    }
    SetupScreen #local-status {
        height: auto;
        margin-bottom: 1;
    }
    SetupScreen #key-section {
        height: auto;
    }
    SetupScreen #key-section.-hidden {
        display: none;
    }
    SetupScreen #error {
        color: $error;
        height: auto;
    }
    SetupScreen #error.-empty {
        display: none;
    }
    SetupScreen #buttons {
        height: auto;
        margin: 1 0;
        align-horizontal: right;
    }
    SetupScreen #buttons Button {
        margin-left: 2;
    }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+s", "accept", "Continue", tooltip="Use the chosen host.", id="setup-accept"),
        Binding("escape", "cancel", "Cancel", id="setup-cancel"),
    ]

    def __init__(
        self,
        config: Config,
        hosts: Mapping[str, Host],
        probe: bool = True,
        *,
        probe_candidates: Iterable[Candidate] = DEFAULT_CANDIDATES,
        probe_timeout: float = 0.25,
    ) -> None:
        """Create the screen.

        Args:
            config: the loaded settings (its host is preselected; saved keys are noticed).
            hosts: host id -> Host, built-in and the user's own.
            probe: look for servers on this machine's usual ports.
            probe_candidates: where to look (tests use their own port).
            probe_timeout: seconds per probe.
        """
        super().__init__()
        self.config = config
        self.hosts = dict(hosts)
        self.probe = probe
        self.probe_candidates = tuple(probe_candidates)
        self.probe_timeout = probe_timeout
        self.local_servers: dict[str, LocalServer] = {}
        """Servers the probe found, by option id."""

    # -- layout --------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with Vertical(id="dialog"):
            yield Static("Set up glmchat", id="title")
            yield Static(
                "Choose where GLM runs. Hosted services need an API key; local servers do not. "
                "No key yet? Choose Demo (offline) to try glmchat with built-in answers.",
                classes="hint",
            )
            with VerticalScroll(id="body"):
                yield OptionList(*self._host_options(), id="hosts", markup=False, compact=True)
                yield Static(
                    "Looking for local servers…" if self.probe else "",
                    id="local-status",
                    classes="hint",
                    markup=False,
                )
                with Vertical(id="key-section"):
                    yield Static("", id="key-label", markup=False)
                    yield Input(placeholder="Paste your API key", password=True, id="key")
                    yield Checkbox("", id="use-env", compact=True)
                    yield Static("", id="key-hint", classes="hint", markup=False)
                yield Static("", id="error", classes="-empty", markup=False)
            with Horizontal(id="buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Continue", variant="primary", id="accept")

    def _host_options(self) -> list[Option]:
        options = []
        for host in self.hosts.values():
            options.append(Option(self._host_prompt(host), id=host.id))
        return options

    def _host_prompt(self, host: Host) -> Content:
        if host.demo:
            detail = "try glmchat offline: built-in demo answers · no key, no network"
        elif host.local:
            detail = f"local server · {host.base_url} · no key"
        elif host.key_env:
            state = "set" if os.environ.get(host.key_env, "").strip() else "not set"
            detail = f"needs a key · reads ${host.key_env} ({state})"
            if self.config.keys.get(host.id):
                detail += " · key saved"
        else:
            detail = f"{host.base_url}"
        return Content.assemble((f"{host.name:<18}", "bold"), (detail, "$text-muted"))

    def on_mount(self) -> None:
        hosts = self.query_one("#hosts", OptionList)
        ids = list(self.hosts)
        hosts.highlighted = ids.index(self.config.host) if self.config.host in ids else 0
        if not self.probe:
            self.query_one("#local-status").display = False
        else:
            self.run_probe()
        self._show_host(self.chosen_host_id)
        if self._needs_key(self._chosen_host()):
            self.query_one("#key", Input).focus()
        else:
            hosts.focus()

    # -- the probe -----------------------------------------------------------------------

    @work(exclusive=True, group="probe-local-servers", exit_on_error=False)
    async def run_probe(self) -> list[LocalServer]:
        """Look for local servers and offer each one at the top of the host list."""
        servers = await probe_local_servers(self.probe_timeout, candidates=self.probe_candidates)
        self._show_servers(servers)
        return servers

    def _show_servers(self, servers: list[LocalServer]) -> None:
        status = self.query_one("#local-status", Static)
        if not servers:
            status.update("No local servers found (Ollama 11434, vLLM 8000, SGLang 30000, llama.cpp 8080).")
            return
        hosts = self.query_one("#hosts", OptionList)
        highlighted = self.chosen_option_id
        found: list[Option] = []
        for server in servers:
            option_id = LOCAL_PREFIX + server.host_id
            self.local_servers[option_id] = server
            host = self.hosts.get(server.host_id)
            name = host.name if host else server.host_id
            count = len(server.models)
            models = f"{count} model{'' if count == 1 else 's'}" if count else "no models listed"
            prompt = Content.assemble(
                ("● ", "$success"),
                (f"{name + ' (found)':<16}", "bold"),
                (f"running at {server.base_url} · {models}", "$text-muted"),
            )
            found.append(Option(prompt, id=option_id))
        # Found servers go first: they work without a key.
        rest = [
            Option(o.prompt, id=o.id) for o in hosts.options if not (o.id or "").startswith(LOCAL_PREFIX)
        ]
        hosts.set_options(found + rest)
        ids = [o.id for o in found + rest]
        if highlighted in ids:
            hosts.highlighted = ids.index(highlighted)
        names = ", ".join(
            f"{self.hosts[s.host_id].name if s.host_id in self.hosts else s.host_id}" for s in servers
        )
        status.update(f"Found on this machine: {names}.")

    # -- choosing ------------------------------------------------------------------------

    @property
    def chosen_option_id(self) -> str | None:
        option = self.query_one("#hosts", OptionList).highlighted_option
        return option.id if option else None

    @property
    def chosen_host_id(self) -> str:
        option_id = self.chosen_option_id or self.config.host
        if option_id.startswith(LOCAL_PREFIX):
            return self.local_servers[option_id].host_id
        return option_id

    def _chosen_host(self) -> Host:
        return self.hosts[self.chosen_host_id]

    @on(OptionList.OptionHighlighted, "#hosts")
    def _host_highlighted(self) -> None:
        self._show_host(self.chosen_host_id)
        self._set_error("")

    @on(OptionList.OptionSelected, "#hosts")
    def _host_selected(self) -> None:
        # Enter (or a click) on a host: go on to the key, or finish when none is needed.
        if self._needs_key(self._chosen_host()):
            self.query_one("#key", Input).focus()
        else:
            self.action_accept()

    def _needs_key(self, host: Host) -> bool:
        return not host.local and host.key_env is not None

    def _show_host(self, host_id: str) -> None:
        host = self.hosts[host_id]
        section = self.query_one("#key-section")
        section.set_class(not self._needs_key(host), "-hidden")
        if not self._needs_key(host):
            return
        env_set = bool(os.environ.get(host.key_env or "", "").strip())
        self.query_one("#key-label", Static).update(f"API key for {host.name}")
        use_env = self.query_one("#use-env", Checkbox)
        use_env.label = f"Use ${host.key_env} from the environment" + ("" if env_set else " (not set now)")
        use_env.value = env_set and not self.query_one("#key", Input).value
        hints = []
        if env_set:
            hints.append(f"${host.key_env} is set in this environment.")
        if self.config.keys.get(host.id):
            hints.append("A key is already saved in config.toml; paste a new one to replace it.")
        hints.append("A pasted key is saved in config.toml, readable only by you (mode 0600).")
        if host.note:
            hints.append(host.note)
        self.query_one("#key-hint", Static).update(" ".join(hints))

    @on(Input.Changed, "#key")
    def _key_typed(self, event: Input.Changed) -> None:
        if event.value:
            self.query_one("#use-env", Checkbox).value = False
        self._set_error("")

    @on(Checkbox.Changed, "#use-env")
    def _use_env_changed(self, event: Checkbox.Changed) -> None:
        if event.value:
            self.query_one("#key", Input).value = ""
        self._set_error("")

    def _set_error(self, message: str) -> None:
        error = self.query_one("#error", Static)
        error.update(message)
        error.set_class(not message, "-empty")
        if message:
            error.scroll_visible()

    # -- results -------------------------------------------------------------------------

    def validate(self) -> SetupResult | str:
        """The result of the current choices, or a message saying what is missing."""
        option_id = self.chosen_option_id or self.config.host
        if option_id.startswith(LOCAL_PREFIX):
            server = self.local_servers[option_id]
            return SetupResult(server.host_id, None, server.base_url, pick_model(server.models))
        host = self.hosts[option_id]
        if not self._needs_key(host):
            return SetupResult(host.id)
        key = self.query_one("#key", Input).value.strip()
        if key:
            if not _KEY_SHAPE.match(key):
                return "That key has spaces or odd characters in it; paste it again."
            return SetupResult(host.id, key)
        env_set = bool(os.environ.get(host.key_env or "", "").strip())
        if self.query_one("#use-env", Checkbox).value:
            if not env_set:
                return f"${host.key_env} is not set here: set it and start glmchat again, or paste a key."
            return SetupResult(host.id)
        if env_set or self.config.keys.get(host.id):
            return SetupResult(host.id)
        return f"Paste your {host.name} API key, or use ${host.key_env}."

    @on(Input.Submitted, "#key")
    @on(Button.Pressed, "#accept")
    def action_accept(self) -> None:
        """Dismiss with the choice, or say inline what is missing."""
        result = self.validate()
        if isinstance(result, str):
            self._set_error(result)
            return
        self.workers.cancel_group(self, "probe-local-servers")
        self.dismiss(result)

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        """Dismiss with None."""
        self.workers.cancel_group(self, "probe-local-servers")
        self.dismiss(None)
