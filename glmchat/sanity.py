"""What a value of the session model may be: types read off its dataclasses, ranges for its numbers.

A session file or a database row may carry anything JSON or SQLite can hold: a
title that is a number, `-1e18` as a date, `1e400`, a 30-digit integer. Such a
value must never reach `time.localtime`, a format string or an arithmetic that
overflows. Two uses of one description:

- `check` (imports) raises `Invalid` naming the first field that is wrong and why;
- `clean` (rows read back) drops what is wrong, so the field gets its default (a
  time gets 0.0, which readers show as "unknown") and nothing stored can crash a reader.

The types come from the dataclasses' own annotations, so a field added to the
model is checked the day it is added; only the numeric ranges are written here.
"""

from __future__ import annotations

import enum
import math
import types
import typing
from dataclasses import MISSING, dataclass, fields, is_dataclass
from functools import lru_cache
from typing import Any

TIME_MIN = 0.0
"""1970-01-01: no glmchat session is older."""
TIME_MAX = 253_402_300_799.0
"""9999-12-31 23:59:59 UTC: the last second every calendar library can show."""
UNKNOWN_TIME = 0.0
"""What a time that was out of range reads back as (shown as "unknown")."""


@dataclass(frozen=True)
class Rule:
    """The range of one numeric field."""

    low: float
    high: float
    what: str
    """How the range is described in a message."""


_TIME = Rule(TIME_MIN, TIME_MAX, "a time from 1970 to 9999 (seconds since 1970)")
_COUNT = Rule(0, 10**12, "a whole number from 0 to 10^12")

RULES: dict[str, Rule] = {
    "created_at": _TIME,
    "updated_at": _TIME,
    "first_reasoning_at": _TIME,
    "first_content_at": _TIME,
    "finished_at": _TIME,
    "temperature": Rule(0.0, 2.0, "a number from 0 to 2"),
    "top_p": Rule(0.0, 1.0, "a number from 0 to 1"),
    "max_tokens": Rule(1, 10_000_000, "a whole number from 1 to 10,000,000"),
    "prompt_tokens": _COUNT,
    "completion_tokens": _COUNT,
    "cached_tokens": _COUNT,
    "reasoning_tokens": _COUNT,
    "cost": Rule(0.0, 1e9, "a number of US dollars from 0 to 10^9"),
    "index": Rule(0, 100_000, "a whole number from 0 to 100,000"),
    "sent_limit": Rule(0, 10**12, "a whole number from 0 to 10^12"),
}
"""Numeric fields by name (the same name means the same range in every dataclass of the model)."""


class Invalid(ValueError):
    """A value that does not fit the model: `where` names it ("session.turns[0].created_at")."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where} {what}")
        self.where = where
        self.what = what


def short_number(value: Any) -> str:
    """A number quoted in a message, never thousands of characters long."""
    if isinstance(value, int) and not isinstance(value, bool):
        digits = len(str(abs(value))) if abs(value) < 10**4000 else 4000
        if digits > 20:
            return f"{'-' if value < 0 else ''}a {digits}-digit number"
        return str(value)
    text = repr(value)
    return text if len(text) <= 30 else text[:29] + "…"


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true/false"
    if isinstance(value, (int, float)):
        return "a number"
    return {str: "text", list: "a list", dict: "an object"}.get(type(value), type(value).__name__)


@lru_cache(maxsize=None)
def hints(cls: type) -> dict[str, Any]:
    """Field -> type hint of a model dataclass (fields only a stream uses left out)."""
    found = typing.get_type_hints(cls)
    return {f.name: found[f.name] for f in fields(cls) if not f.name.startswith("pending")}


def required(cls: type) -> list[str]:
    """The fields of a model dataclass that have no default."""
    return [f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING]


def check(value: Any, hint: Any, where: str) -> None:
    """Raise `Invalid` unless a JSON value fits a type hint of the model (and its field's range)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return
        check(value, next(o for o in options if o is not type(None)), where)
        return
    if hint is Any:
        return
    if origin is list:
        if not isinstance(value, list):
            raise Invalid(where, f"should be a list, not {json_type(value)}")
        (item,) = typing.get_args(hint)
        for i, element in enumerate(value):
            check(element, item, f"{where}[{i}]")
        return
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise Invalid(where, f"should be an object, not {json_type(value)}")
        return
    if hint is bool:
        if not isinstance(value, bool):
            raise Invalid(where, f"should be true/false, not {json_type(value)}")
        return
    if hint in (int, float):
        _check_number(value, hint is int, where)
        return
    if hint is str:
        if not isinstance(value, str):
            raise Invalid(where, f"should be text, not {json_type(value)}")
        return
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        if value not in {member.value for member in hint}:
            raise Invalid(where, f"{value!r} is unknown" if isinstance(value, str) else f"should be text, not {json_type(value)}")
        return
    if isinstance(hint, type) and is_dataclass(hint):
        check_object(value, hint, where)
        return
    raise AssertionError(f"no check for {hint!r}")  # pragma: no cover - a new kind of field


def _check_number(value: Any, whole: bool, where: str) -> None:
    kind = "a whole number" if whole else "a number"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise Invalid(where, f"should be {kind}, not {json_type(value)}")
    rule = RULES.get(where.rsplit(".", 1)[-1])
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Invalid(where, f"is not a finite number ({value!r}); it should be {rule.what if rule else kind}")
        if whole and not value.is_integer():
            raise Invalid(where, f"should be a whole number, not {value!r}")
    if rule is not None and not rule.low <= value <= rule.high:
        raise Invalid(where, f"= {short_number(value)} is out of range; it should be {rule.what}")
    if rule is None and abs(value) > 2**53:
        raise Invalid(where, f"= {short_number(value)} is out of range")


def check_object(value: Any, cls: type, where: str, *, skip: tuple[str, ...] = ()) -> None:
    """`check` for a dict standing for a model dataclass: its required fields present, each field fits."""
    if not isinstance(value, dict):
        raise Invalid(where, f"should be an object, not {json_type(value)}")
    for name in required(cls):
        if name not in value and name not in skip:
            raise Invalid(where, f'has no "{name}"')
    for name, hint in hints(cls).items():
        if name in value and name not in skip:
            check(value[name], hint, f"{where}.{name}")


def clean(data: dict[str, Any], cls: type) -> dict[str, Any]:
    """A dict for `cls.from_dict` with every field that does not fit dropped (nested ones cleaned too).

    A dropped time reads back as 0.0 ("unknown"), a dropped optional field as None, any other
    dropped field takes its default. Unknown keys are dropped as well.
    """
    out: dict[str, Any] = {}
    for name, hint in hints(cls).items():
        if name not in data:
            continue
        value = _cleaned(data[name], hint, name)
        if value is not _DROP:
            out[name] = value
        elif RULES.get(name) is _TIME:
            # A stored time that is nonsense reads as "unknown", never as the time of reading.
            out[name] = UNKNOWN_TIME
        elif type(None) in typing.get_args(hint):
            # An optional setting that is nonsense reads as unset (the host's default), not as ours.
            out[name] = None
    for name in required(cls):
        if name not in out:
            # A field every reader needs: its plainest value ("unknown" for a time).
            out[name] = UNKNOWN_TIME if RULES.get(name) is _TIME else _PLAIN.get(hints(cls)[name])
    return out


_PLAIN: dict[Any, Any] = {bool: False, str: "", int: 0, float: 0.0}


_DROP = object()


def _cleaned(value: Any, hint: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType) and value is None and type(None) in typing.get_args(hint):
        return None
    if origin in (typing.Union, types.UnionType):
        hint = next(o for o in typing.get_args(hint) if o is not type(None))
        origin = typing.get_origin(hint)
    if origin is list:
        if not isinstance(value, list):
            return _DROP
        (item,) = typing.get_args(hint)
        kept = [_cleaned(v, item, name) for v in value]
        return [v for v in kept if v is not _DROP]
    if isinstance(hint, type) and is_dataclass(hint):
        return clean(value, hint) if isinstance(value, dict) else _DROP
    try:
        check(value, hint, name)
    except Invalid:
        return _DROP
    return value


def sane_time(value: Any) -> float | None:
    """A timestamp that every formatter can take, or None (unknown) for anything else (0.0 included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if not math.isfinite(value) or not TIME_MIN < value <= TIME_MAX:
        return None
    return float(value)
