"""The table of hosts that serve GLM-4.7, and how each one wants a request.

Each host names a wire `dialect` and a few knobs that say where its dialect
differs (design.md §4, protocol.md §0 and §8). Knobs that the vendors do not
document (UNCONFIRMED in protocol.md) are plain fields, so a user can override
them per host in config.toml instead of waiting for a release.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from glmchat.models import MODELS, Price

__all__ = ["Price"]  # re-exported: configs and callers have always found it here

class Dialect(StrEnum):
    """How a host is spoken to (one module in glmchat/protocol/ each)."""

    CHAT = "chat"
    """OpenAI-style chat completions over SSE (protocol/openai.py)."""
    OLLAMA = "ollama"
    """Ollama's native /api/chat, NDJSON."""
    RUNWARE = "runware"
    """Runware's task API (`textInference`), SSE."""


class ThinkingStyle(StrEnum):
    """How thinking is switched on or off for one turn."""

    ZAI = "zai"
    """thinking: {type: enabled|disabled}"""
    EFFORT = "reasoning_effort"
    """reasoning_effort: "none" (Cerebras, Ollama /v1)"""
    OPENROUTER = "openrouter"
    """reasoning: {effort: "none"} / {enabled: true}"""
    TEMPLATE = "chat_template_kwargs"
    """chat_template_kwargs.enable_thinking (vLLM, SGLang, llama.cpp)"""
    OLLAMA = "ollama"
    """think: true|false"""
    RUNWARE = "runware"
    """settings.thinkingLevel"""
    NONE = "none"
    """The host has no switch."""


class PreserveStyle(StrEnum):
    """Where clear_thinking=false goes."""

    ZAI = "zai"
    """thinking.clear_thinking"""
    TOP = "top_level"
    """clear_thinking (Cerebras)"""
    TEMPLATE = "chat_template_kwargs"
    """chat_template_kwargs.clear_thinking"""
    ALWAYS = "always"
    """The host keeps reasoning whenever it is sent (Ollama)."""
    NONE = "none"
    """Cannot be expressed (Runware); undocumented (OpenRouter)."""


class ReplayField(StrEnum):
    """Which field carries earlier reasoning back."""

    REASONING_CONTENT = "reasoning_content"
    REASONING = "reasoning"
    THINK_TAGS = "think_tags"
    """"<think>R</think>C" in content (Cerebras' documented form)."""
    REASONING_DETAILS = "reasoning_details"
    """OpenRouter's raw items."""
    THINKING = "thinking"
    """Ollama native."""
    NONE = "none"


@dataclass(frozen=True)
class Host:
    """One host profile. All fields can be overridden in config.toml under [hosts.<id>]."""

    id: str
    name: str
    dialect: Dialect
    base_url: str
    chat_path: str = "/chat/completions"
    key_env: str | None = None
    """Environment variable holding the API key; None for local servers."""
    default_model: str = "glm-4.7"
    models: tuple[str, ...] = ()
    context_window: int = 200_000
    max_output: int = 131_072
    prices: dict[str, Price] = field(default_factory=dict)
    """Model name -> price; hosts without known prices leave it empty."""
    model_table: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Model name -> overrides of the model table's facts on this host (see models.py)."""
    level_field: str = "reasoning_effort"
    """Top-level request field that carries a thinking level (OpenRouter: reasoning.effort instead)."""
    demo: bool = False
    """Answers come from glmchat itself (the built-in demo), not from a model."""
    thinking_style: ThinkingStyle = ThinkingStyle.ZAI
    preserve_style: PreserveStyle = PreserveStyle.ZAI
    replay_field: ReplayField = ReplayField.REASONING_CONTENT
    max_tokens_field: str = "max_tokens"
    stream_usage: bool = True
    """Send stream_options.include_usage (harmless where ignored)."""
    local: bool = False
    """A server on this machine or the LAN: no key, plain http allowed."""
    allow_insecure_http: bool = False
    """Allow http:// to a non-local address (explicit opt-in only)."""
    note: str = ""
    """Shown to the user where the host differs (e.g. no preserved thinking)."""
    extra_body: dict[str, Any] = field(default_factory=dict)
    """Merged (recursively) into every request body; for Runware into the task.

    The escape hatch for what protocol.md marks UNCONFIRMED: e.g. OpenRouter
    provider pinning, a Runware AIR model id, a server-specific flag.
    """
    thinking_level: str = "high"
    """Level sent when thinking is on, for hosts that take a level (Runware `thinkingLevel`; enum UNCONFIRMED)."""
    preserve_needs_thinking: bool = False
    """Send the clear_thinking switch only on turns with thinking on.

    Cerebras documents that `clear_thinking` "requires reasoning enabled"; sending
    it next to `reasoning_effort: "none"` risks a 400, so on such turns it is left
    out and the host's default (clear) applies to that one request.
    """

    @property
    def can_toggle_thinking(self) -> bool:
        return self.thinking_style != ThinkingStyle.NONE

    @property
    def can_preserve_thinking(self) -> bool:
        return self.preserve_style != PreserveStyle.NONE and self.replay_field != ReplayField.NONE

    @property
    def can_replay_reasoning(self) -> bool:
        """Whether earlier reasoning is sent back at all (OpenRouter: yes, though it has no switch)."""
        return self.replay_field != ReplayField.NONE and self.dialect != Dialect.RUNWARE

    @property
    def url(self) -> str:
        """The endpoint: the base URL and the chat path after it.

        A base URL that already ends with the chat path is the endpoint itself and
        is used as it is: Runware documents its endpoint, version segment included,
        as the base URL (https://api.runware.ai/v1), and the /v1 must not be doubled.
        """
        base = self.base_url.rstrip("/")
        path = self.chat_path
        if path and base.endswith(path.rstrip("/")):
            return base
        return base + path

    def price_for(self, model: str) -> Price | None:
        return self.prices.get(model)

    def with_overrides(self, overrides: dict[str, Any]) -> Host:
        """A copy with config overrides applied; unknown keys raise ValueError naming them."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown host setting(s): {', '.join(unknown)}")
        values = dict(overrides)
        if "models" in values:
            values["models"] = tuple(values["models"])
        if "prices" in values:
            values["prices"] = {m: Price(**p) for m, p in values["prices"].items()}
        for name, kind in _CHOICES.items():
            if name in values:
                try:
                    values[name] = kind(values[name])
                except ValueError:
                    allowed = ", ".join(repr(str(v)) for v in kind)
                    raise ValueError(f"{name} = {values[name]!r} is not one of {allowed}") from None
        return dataclasses.replace(self, **values)


_CHOICES: dict[str, type[StrEnum]] = {
    "dialect": Dialect,
    "thinking_style": ThinkingStyle,
    "preserve_style": PreserveStyle,
    "replay_field": ReplayField,
}
"""Host settings that take one of a fixed set of names."""


_ZAI_PRICES = {
    # USD per 1M tokens, Z.ai's public price list as the model table holds it (overridable in config).
    name: info.price
    for name, info in MODELS.items()
    if info.price is not None
}
_ZAI_MODELS = (
    "glm-5.3", "glm-5.2", "glm-5.1", "glm-5", "glm-4.7", "glm-4.7-flash", "glm-4.7-flashx", "glm-4.6", "glm-4.5",
    "glm-4.5-air",
)

BUILTIN_HOSTS: dict[str, Host] = {
    h.id: h
    for h in (
        Host(
            id="zai",
            name="Z.ai",
            dialect=Dialect.CHAT,
            base_url="https://api.z.ai/api/paas/v4",
            key_env="ZAI_API_KEY",
            models=_ZAI_MODELS,
            prices=_ZAI_PRICES,
        ),
        Host(
            id="zai-coding",
            name="Z.ai Coding Plan",
            dialect=Dialect.CHAT,
            base_url="https://api.z.ai/api/coding/paas/v4",
            key_env="ZAI_API_KEY",
            models=_ZAI_MODELS,
            note="Coding Plan keys are meant for coding tools; usage counts against the plan's quota.",
        ),
        Host(
            id="bigmodel",
            name="BigModel",
            dialect=Dialect.CHAT,
            base_url="https://open.bigmodel.cn/api/paas/v4",
            key_env="ZAI_API_KEY",
            models=_ZAI_MODELS,
        ),
        Host(
            id="cerebras",
            name="Cerebras",
            dialect=Dialect.CHAT,
            base_url="https://api.cerebras.ai/v1",
            key_env="CEREBRAS_API_KEY",
            default_model="zai-glm-4.7",
            models=("zai-glm-4.7",),
            context_window=131_072,
            max_output=40_000,
            prices={"zai-glm-4.7": Price(input=2.25, output=2.75)},
            thinking_style=ThinkingStyle.EFFORT,
            preserve_style=PreserveStyle.TOP,
            replay_field=ReplayField.THINK_TAGS,
            max_tokens_field="max_completion_tokens",
            preserve_needs_thinking=True,
        ),
        Host(
            id="openrouter",
            name="OpenRouter",
            dialect=Dialect.CHAT,
            base_url="https://openrouter.ai/api/v1",
            key_env="OPENROUTER_API_KEY",
            default_model="z-ai/glm-4.7",
            models=("z-ai/glm-4.7",),
            context_window=202_752,
            thinking_style=ThinkingStyle.OPENROUTER,
            preserve_style=PreserveStyle.NONE,
            replay_field=ReplayField.REASONING_DETAILS,
            note="OpenRouter does not document preserved thinking; reasoning_details are sent back as it asks.",
        ),
        Host(
            id="vllm",
            name="vLLM",
            dialect=Dialect.CHAT,
            base_url="http://127.0.0.1:8000/v1",
            default_model="zai-org/GLM-4.7-FP8",
            context_window=202_752,
            thinking_style=ThinkingStyle.TEMPLATE,
            preserve_style=PreserveStyle.TEMPLATE,
            replay_field=ReplayField.REASONING,
            local=True,
        ),
        Host(
            id="sglang",
            name="SGLang",
            dialect=Dialect.CHAT,
            base_url="http://127.0.0.1:30000/v1",
            default_model="zai-org/GLM-4.7-FP8",
            context_window=202_752,
            thinking_style=ThinkingStyle.TEMPLATE,
            preserve_style=PreserveStyle.TEMPLATE,
            replay_field=ReplayField.REASONING_CONTENT,
            local=True,
        ),
        Host(
            id="llamacpp",
            name="llama.cpp",
            dialect=Dialect.CHAT,
            base_url="http://127.0.0.1:8080/v1",
            default_model="GLM-4.7-Flash",
            context_window=131_072,
            thinking_style=ThinkingStyle.TEMPLATE,
            preserve_style=PreserveStyle.TEMPLATE,
            replay_field=ReplayField.REASONING_CONTENT,
            local=True,
        ),
        Host(
            id="ollama",
            name="Ollama",
            dialect=Dialect.OLLAMA,
            base_url="http://127.0.0.1:11434",
            chat_path="/api/chat",
            default_model="glm-4.7",
            context_window=131_072,
            thinking_style=ThinkingStyle.OLLAMA,
            preserve_style=PreserveStyle.ALWAYS,
            replay_field=ReplayField.THINKING,
            local=True,
        ),
        Host(
            id="runware",
            name="Runware",
            dialect=Dialect.RUNWARE,
            base_url="https://api.runware.ai/v1",
            chat_path="/v1",
            key_env="RUNWARE_API_KEY",
            default_model="zai-glm-4-7",
            models=("zai-glm-4-7",),
            thinking_style=ThinkingStyle.RUNWARE,
            preserve_style=PreserveStyle.NONE,
            replay_field=ReplayField.NONE,
            note="Runware's task API cannot carry earlier reasoning: preserved thinking is off on this host.",
        ),
        Host(
            id="demo",
            name="Demo (offline)",
            dialect=Dialect.CHAT,
            # Never contacted: the demo's requests are answered inside glmchat (glmchat/demo.py).
            base_url="http://demo.localhost/v1",
            models=tuple(MODELS),
            prices=_ZAI_PRICES,
            local=True,
            demo=True,
            note="Demo: answers are written by glmchat itself, offline, to show what it can do; no model is asked.",
        ),
    )
}

def _hostname(url: str) -> str:
    """The host part of a URL, lowercased, without brackets; "" when the URL has none or is broken."""
    try:
        return (urlsplit(url).hostname or "").lower().rstrip(".")
    except ValueError:
        return ""


def _ip(name: str) -> Any:
    """The IP address a host name spells literally (an IPv4 or IPv6 address), or None."""
    import ipaddress

    try:
        return ipaddress.ip_address(name.split("%", 1)[0])  # an IPv6 zone ("fe80::1%eth0") is not part of the address
    except ValueError:
        return None


def is_local_url(url: str) -> bool:
    """True when the URL points at this machine: a loopback IP address, `localhost` or `*.localhost`.

    Decided by the parsed address, never by how the name starts: `127.attacker.example`
    and `127.0.0.1.nip.io` are names a DNS server can point anywhere, so they are remote.
    `*.localhost` names are reserved for loopback (RFC 6761) and resolved so by every
    common resolver.
    """
    name = _hostname(url)
    if not name:
        return False
    if name == "localhost" or name.endswith(".localhost"):
        return True
    address = _ip(name)
    if address is None:
        return False
    mapped = getattr(address, "ipv4_mapped", None)  # ::ffff:127.0.0.1
    if mapped is not None:
        address = mapped
    # 0.0.0.0 and :: reach this machine when connected to (Linux, macOS).
    return bool(address.is_loopback or address.is_unspecified)


def is_private_url(url: str) -> bool:
    """True for a private-range IP address, or a name that only the LAN can resolve.

    Names count as private when they have no dot (`gpu-box`) or end in `.local`
    (mDNS), `.lan`, `.home.arpa` or `.internal`; an IP address counts when it is in a
    private, link-local or loopback range. Any other name is public, whatever digits
    it starts with.
    """
    name = _hostname(url)
    if not name:
        return False
    address = _ip(name)
    if address is not None:
        mapped = getattr(address, "ipv4_mapped", None)
        if mapped is not None:
            address = mapped
        return bool(address.is_private or address.is_link_local or address.is_loopback)
    if name.endswith((".local", ".lan", ".home.arpa", ".internal")) or "." not in name:
        return True
    return False


def display_url(url: str) -> str:
    """The URL as it may appear in a message: without any user name or password in it."""
    try:
        parts = urlsplit(url)
    except ValueError:
        parts = None
    if parts is not None and "@" in parts.netloc:
        url = parts._replace(netloc=parts.netloc.rpartition("@")[2]).geturl()
    if "@" in url:
        # Not a URL a parser reads (no scheme, broken brackets): anything before an "@" may be a password.
        return "…@" + url.rpartition("@")[2]
    return url


def url_problem(url: str) -> str | None:
    """What makes a base URL unusable, in a few words ("port 99999 is out of range"); None when it is fine."""
    if not isinstance(url, str) or not url.strip():
        return "it is empty"
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in url):
        return "it contains spaces or control characters"
    try:
        parts = urlsplit(url)
    except ValueError:
        return "it is not a valid URL (check the brackets around an IPv6 address)"
    if parts.scheme.lower() not in ("http", "https"):
        return "it must start with https:// (or http:// for a local server)"
    try:
        host = parts.hostname
        port = parts.port
    except ValueError:
        return "its port is not a number from 1 to 65535"
    if not host:
        return "it names no host"
    if port == 0:
        return "its port is not a number from 1 to 65535"
    if parts.username is not None or parts.password is not None:
        return "it holds a user name or password (user:…@); give the key with `glmchat config set-key` instead"
    if "[" in parts.netloc and _ip(host) is None:
        return "the address in brackets is not an IPv6 address"
    return None


def check_transport(host: Host) -> None:
    """Refuse a base URL that cannot be used safely, and plain http:// to a remote address.

    Loopback is always fine; a self-hosted profile (`local`) may also use the LAN;
    anything else needs `allow_insecure_http`. A URL with credentials in it is
    refused (httpx would turn them into a Basic login that replaces the key).

    Raises:
        ConfigError: naming the host and what to change; the URL is quoted without credentials.
    """
    from glmchat.errors import ConfigError

    problem = url_problem(host.base_url)
    if problem is not None:
        raise ConfigError(
            f"{host.name}: the base URL {display_url(str(host.base_url))!r} is not usable: {problem}",
            host=host.name,
        )
    scheme = urlsplit(host.base_url).scheme.lower()
    if scheme == "https":
        return
    if is_local_url(host.base_url) or host.allow_insecure_http:
        return
    if host.local and is_private_url(host.base_url):
        return
    raise ConfigError(
        f"{host.name}: refusing unencrypted http:// to {_hostname(host.base_url)}; "
        f"use https://, or set allow_insecure_http = true under [hosts.{host.id}] in config.toml",
        host=host.name,
    )
