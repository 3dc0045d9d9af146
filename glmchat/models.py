"""The model table: what each GLM model can hold, what it costs, and how its thinking is controlled.

Hosts say how to speak to a server (hosts.py); this table says what the model
behind a name is. Each entry gives the context and output limits, the price per
million tokens (input, cached input, output) and the thinking capability:

- `SWITCH`: thinking on or off per turn (GLM-4.7, GLM-5, GLM-5.1);
- `LEVELS`: off, or one of several effort levels (GLM-5.2: `high`/`xhigh`);
- `ALWAYS`: the model always thinks; only the level can be chosen (GLM-5.3:
  `low`/`high`/`max`, default `max`).

None of the GLM-5 facts were seen on the wire: they come from vendor pages and
are defaults. A host can override any field of any model in config.toml:

    [hosts.zai.model_table."glm-5.3"]
    levels = ["low", "medium", "high", "max"]
    default_level = "high"
    price = { input = 1.5, cached_input = 0.3, output = 5.0 }

A model the table does not know behaves as the host says (its limits, its price
list, thinking on/off where the host has a switch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from glmchat.hosts import Host
    from glmchat.session import Session


@dataclass(frozen=True)
class Price:
    """USD per million tokens."""

    input: float
    output: float
    cached_input: float | None = None


class ThinkingMode(StrEnum):
    """How a model's thinking can be controlled per turn."""

    SWITCH = "switch"
    """On or off."""
    LEVELS = "levels"
    """Off, or one of `levels`."""
    ALWAYS = "always"
    """Always on: one of `levels` (asking for "off" gets the lowest)."""


OFF = "off"
"""The thinking choice that turns it off (where the model allows it)."""
ON = "on"
"""The thinking choice of a model with no levels."""


@dataclass(frozen=True)
class ModelInfo:
    """One model's facts. Every field can be overridden per host (`Host.model_table`)."""

    id: str
    """The name requests carry (as the host spells it)."""
    name: str
    context_window: int
    max_output: int
    price: Price | None = None
    """None: not known (the host's own price list, if any, applies)."""
    thinking: ThinkingMode = ThinkingMode.SWITCH
    levels: tuple[str, ...] = ()
    """Effort levels, lowest first (LEVELS and ALWAYS)."""
    default_level: str | None = None
    known: bool = True
    """False for a model the table does not list (its facts are the host's)."""

    @property
    def can_disable(self) -> bool:
        return self.thinking != ThinkingMode.ALWAYS

    @property
    def has_levels(self) -> bool:
        return bool(self.levels) and self.thinking != ThinkingMode.SWITCH

    def choices(self) -> tuple[str, ...]:
        """What the per-turn control offers, in cycling order: "off"/"on", or "off" and levels, or levels."""
        if not self.has_levels:
            return (OFF, ON)
        return ((OFF,) if self.can_disable else ()) + self.levels

    def level_or_default(self, level: str | None) -> str | None:
        """`level` if the model has it, else its default level (None for a model without levels)."""
        if not self.has_levels:
            return None
        if level in self.levels:
            return level
        return self.default_level if self.default_level in self.levels else self.levels[-1]

    def describe(self) -> str:
        """One line of facts: "1M context · 128k out · $1.40/$0.26/$4.40 · thinking: off, high, xhigh"."""
        parts = [f"{_short(self.context_window)} context", f"{_short(self.max_output)} out"]
        if self.price is not None:
            cached = f"${self.price.cached_input:.2f}" if self.price.cached_input is not None else "–"
            parts.append(f"${self.price.input:.2f} in / {cached} cached / ${self.price.output:.2f} out")
        if self.thinking == ThinkingMode.ALWAYS:
            parts.append(f"thinking always on: {', '.join(self.levels)}")
        elif self.has_levels:
            parts.append(f"thinking: off, {', '.join(self.levels)}")
        else:
            parts.append("thinking on/off")
        return " · ".join(parts)


def _short(tokens: int) -> str:
    if tokens >= 1_000_000 and tokens % 1_000_000 == 0:
        return f"{tokens // 1_000_000}M"
    if tokens >= 1000:
        return f"{round(tokens / 1000)}k"
    return str(tokens)


MODELS: dict[str, ModelInfo] = {
    m.id: m
    for m in (
        ModelInfo("glm-4.7", "GLM-4.7", 200_000, 131_072, Price(input=0.60, output=2.20, cached_input=0.11)),
        ModelInfo("glm-4.7-flash", "GLM-4.7-Flash", 200_000, 131_072, Price(input=0.0, output=0.0, cached_input=0.0)),
        ModelInfo("glm-4.7-flashx", "GLM-4.7-FlashX", 200_000, 131_072, Price(input=0.07, output=0.40, cached_input=0.01)),
        # GLM-5 and 5.1: limits as GLM-4.7's until the vendor's figures are confirmed; prices unknown.
        ModelInfo("glm-5", "GLM-5", 200_000, 131_072),
        ModelInfo("glm-5.1", "GLM-5.1", 200_000, 131_072),
        ModelInfo(
            "glm-5.2", "GLM-5.2", 1_000_000, 131_072, Price(input=1.40, output=4.40, cached_input=0.26),
            thinking=ThinkingMode.LEVELS, levels=("high", "xhigh"), default_level="high",
        ),
        # GLM-5.3: the 1M context is GLM-5.2's, assumed; its price is not known yet.
        ModelInfo(
            "glm-5.3", "GLM-5.3", 1_000_000, 131_072,
            thinking=ThinkingMode.ALWAYS, levels=("low", "high", "max"), default_level="max",
        ),
    )
}
"""The models glmchat knows, by the name Z.ai gives them."""

_PREFIXES = ("z-ai/",)
"""Vendor prefixes some hosts put before the same model name (OpenRouter: z-ai/glm-5.2)."""


def canonical(model: str) -> str:
    """The table's name for a model as a host spells it: lowercased, without a vendor prefix."""
    name = model.strip().lower()
    for prefix in _PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix):]
    return name


def model_info(host: Host | None, model: str) -> ModelInfo:
    """The facts of `model` on `host`: the table's entry (or the host's own figures), the host's overrides on top.

    Raises:
        ValueError: an override in the host's `model_table` is not a field or has the wrong shape.
    """
    key = canonical(model)
    base = MODELS.get(key)
    if base is not None:
        info = dataclasses.replace(base, id=model)
        if host is not None and host.local and not host.demo:
            # A self-hosted server's limits are how it was started, which the host profile says.
            info = dataclasses.replace(info, context_window=host.context_window, max_output=host.max_output)
    elif host is not None:
        info = ModelInfo(model, model, host.context_window, host.max_output, known=False)
    else:
        info = ModelInfo(model, model, 200_000, 131_072, known=False)
    if host is not None:
        price = host.prices.get(model) or host.prices.get(key)
        if price is not None:
            info = dataclasses.replace(info, price=price)
        override = host.model_table.get(model) or host.model_table.get(key)
        if override:
            info = apply_override(info, override)
    return info


def apply_override(info: ModelInfo, override: dict[str, Any]) -> ModelInfo:
    """`info` with the fields a config table sets (lists become tuples, a price table a Price)."""
    known = {f.name for f in dataclasses.fields(ModelInfo)} - {"id", "known"}
    unknown = sorted(set(override) - known)
    if unknown:
        raise ValueError(f"unknown model setting(s): {', '.join(unknown)}")
    values = dict(override)
    try:
        if "levels" in values:
            values["levels"] = tuple(str(v) for v in values["levels"])
        if "price" in values and isinstance(values["price"], dict):
            values["price"] = Price(**values["price"])
        if "thinking" in values:
            values["thinking"] = ThinkingMode(values["thinking"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bad model setting: {exc}") from None
    return dataclasses.replace(info, **values)


# -- the per-turn thinking choice ----------------------------------------------------------------


@dataclass(frozen=True)
class ThinkingChoice:
    """What a turn sends: thinking on or off, the level (None: no level), and why it differs from what was asked."""

    thinking: bool
    level: str | None = None
    note: str = ""
    """Non-empty when the request was adjusted to what the model allows ("GLM-5.3 always thinks: low")."""

    @property
    def label(self) -> str:
        """The choice as the composer shows it: "off", "on", or the level."""
        if not self.thinking:
            return OFF
        return self.level or ON


def resolve_thinking(info: ModelInfo, thinking: bool, level: str | None = None) -> ThinkingChoice:
    """The request's thinking for a turn that asked for `thinking` (and `level`), on this model.

    Never a request the model refuses: where thinking cannot be off, "off" becomes
    the lowest level and the note says so; an unknown level becomes the default.
    """
    if not info.has_levels:
        return ThinkingChoice(thinking)
    if not thinking:
        if info.can_disable:
            return ThinkingChoice(False)
        lowest = info.levels[0]
        return ThinkingChoice(True, lowest, f"{info.name} always thinks: off means the lowest level, {lowest}")
    chosen = info.level_or_default(level)
    note = "" if level in (None, chosen) else f"{info.name} has no level {level!r}: {chosen} is used"
    return ThinkingChoice(True, chosen, note)


def choice_from_label(info: ModelInfo, label: str) -> ThinkingChoice:
    """The choice a control label names ("off", "on", a level) on this model."""
    if label == OFF:
        return resolve_thinking(info, False)
    if label == ON:
        return resolve_thinking(info, True)
    return resolve_thinking(info, True, label)


def next_choice(info: ModelInfo, current: ThinkingChoice) -> ThinkingChoice:
    """The choice after `current` in the model's cycle (Ctrl+T)."""
    options = info.choices()
    label = current.label
    index = options.index(label) if label in options else -1
    return choice_from_label(info, options[(index + 1) % len(options)])


# -- the session's choice for its next turn -----------------------------------------------------


def session_model_info(host: Host | None, session: Session) -> ModelInfo:
    """The facts of the session's model on its host (the host's figures where an override is broken)."""
    try:
        return model_info(host, session.model)
    except ValueError:
        return ModelInfo(session.model, session.model, host.context_window if host else 200_000,
                         host.max_output if host else 131_072, known=False)


def next_turn_thinking(host: Host | None, session: Session) -> ThinkingChoice:
    """What the session's next turn will send, as the composer shows it."""
    return resolve_thinking(session_model_info(host, session), session.thinking_next, session.thinking_level_next)


def set_next_thinking(session: Session, choice: ThinkingChoice) -> None:
    """Make `choice` the session's choice for its next turn."""
    session.thinking_next = choice.thinking
    if choice.level is not None:
        session.thinking_level_next = choice.level


def cycle_next_thinking(host: Host | None, session: Session) -> ThinkingChoice:
    """Ctrl+T on a model with levels: the next choice in its cycle, made the session's."""
    choice = next_choice(session_model_info(host, session), next_turn_thinking(host, session))
    set_next_thinking(session, choice)
    return choice


def host_for_model(host: Host, model: str) -> Host:
    """`host` as it serves `model`: that model as its default, and the model's context and output limits."""
    changes: dict[str, Any] = {}
    if model and model != host.default_model:
        changes["default_model"] = model
    try:
        info = model_info(host, model or host.default_model)
    except ValueError:
        info = None
    if info is not None and info.known:
        from glmchat.hosts import BUILTIN_HOSTS

        # A limit set for the host in config.toml is the user's word: it stays.
        builtin = BUILTIN_HOSTS.get(host.id)
        for name in ("context_window", "max_output"):
            if builtin is None or getattr(host, name) == getattr(builtin, name):
                changes[name] = getattr(info, name)
    return dataclasses.replace(host, **changes) if changes else host


def settle_next_thinking(host: Host | None, session: Session) -> tuple[ThinkingChoice, bool]:
    """The next turn's thinking made valid for the session's model, and whether the model always thinks.

    A choice the model cannot take ("off" on GLM-5.3, a level it lacks) is replaced
    in the session by what will be sent, so the control, the status line and the
    request all say the same.
    """
    info = session_model_info(host, session)
    choice = resolve_thinking(info, session.thinking_next, session.thinking_level_next)
    if choice.note:
        set_next_thinking(session, choice)
    return choice, info.thinking == ThinkingMode.ALWAYS and info.has_levels
