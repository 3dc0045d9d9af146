"""The ranges every stored number must fall in, checked on import and enforced on read.

A session file or a database row may carry any number JSON or SQLite can hold:
`-1e18`, `1e400` (infinity), a 30-digit integer. Such a value must never reach
`time.localtime`, a format string or an arithmetic that overflows. Two uses:

- `number_problem` says, in a few words, why a value is out of range (the import
  turns it into a one-line error naming the field);
- `clean_session_fields` / `clean_turn_fields` / `clean_usage_fields` drop what is
  out of range from a dict read back from the database (the field gets its default,
  or 0.0 for a time, which readers show as "unknown"), so nothing already stored
  can crash a reader.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
    whole: bool = False
    """Only whole numbers (token counts, max_tokens, an index)."""
    what: str = "a number"
    """How the range is described in a message."""

    def problem(self, value: Any) -> str | None:
        """Why `value` breaks the rule, or None when it is fine (None itself is left to the type checks)."""
        if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if isinstance(value, float):
            if not math.isfinite(value):
                return f"is not a finite number ({value!r}); it should be {self.what}"
            if self.whole and not value.is_integer():
                return f"= {value!r} is not a whole number; it should be {self.what}"
        if not self.low <= value <= self.high:
            return f"= {short_number(value)} is out of range; it should be {self.what}"
        return None


_TIME = Rule(TIME_MIN, TIME_MAX, what="a time from 1970 to 9999 (seconds since 1970)")
_COUNT = Rule(0, 10**12, whole=True, what="a whole number from 0 to 10^12")

SESSION_RULES: dict[str, Rule] = {
    "created_at": _TIME,
    "updated_at": _TIME,
    "temperature": Rule(0.0, 2.0, what="a number from 0 to 2"),
    "top_p": Rule(0.0, 1.0, what="a number from 0 to 1"),
    "max_tokens": Rule(1, 10_000_000, whole=True, what="a whole number from 1 to 10,000,000"),
}
TURN_RULES: dict[str, Rule] = {
    "created_at": _TIME,
    "first_reasoning_at": _TIME,
    "first_content_at": _TIME,
    "finished_at": _TIME,
}
USAGE_RULES: dict[str, Rule] = {
    "prompt_tokens": _COUNT,
    "completion_tokens": _COUNT,
    "cached_tokens": _COUNT,
    "reasoning_tokens": _COUNT,
    "cost": Rule(0.0, 1e9, what="a number of US dollars from 0 to 10^9"),
}
TOOL_CALL_RULES: dict[str, Rule] = {"index": Rule(0, 100_000, whole=True, what="a whole number from 0 to 100,000")}

_NUMBER = (int, float)
NULL = type(None)
"""The JSON null, as a type for the field tables."""

# Field -> allowed JSON types, for every field `to_dict` writes. A test checks this
# covers the dataclasses, so a new field cannot slip through unchecked.
SESSION_FIELDS: dict[str, tuple[type, ...]] = {
    "title": (str,), "host": (str,), "model": (str,), "system_prompt": (str,),
    "temperature": (*_NUMBER, NULL), "top_p": (*_NUMBER, NULL), "max_tokens": (int, NULL),
    "preserve_thinking": (bool,), "thinking_next": (bool,), "id": (str,), "created_at": _NUMBER,
    "updated_at": _NUMBER, "turns": (list,),
}
TURN_FIELDS: dict[str, tuple[type, ...]] = {
    "user_text": (str,), "thinking": (bool,), "host": (str,), "model": (str,), "id": (str,), "reasoning": (str,),
    "content": (str,), "tool_calls": (list,), "reasoning_details": (list, NULL), "status": (str,),
    "finish_reason": (str, NULL), "error": (str, NULL), "error_kind": (str, NULL),
    "usage": (dict,), "created_at": _NUMBER, "first_reasoning_at": (*_NUMBER, NULL),
    "first_content_at": (*_NUMBER, NULL), "finished_at": (*_NUMBER, NULL),
    "include_in_context": (bool, NULL),
}
USAGE_FIELDS: dict[str, tuple[type, ...]] = {
    "prompt_tokens": (int, NULL), "completion_tokens": (int, NULL), "cached_tokens": (int, NULL),
    "reasoning_tokens": (int, NULL), "cost": (*_NUMBER, NULL),
}
TOOL_CALL_FIELDS: dict[str, tuple[type, ...]] = {
    "index": (int,), "id": (str, NULL), "name": (str,), "arguments": (str,), "type": (str,),
}


def type_ok(value: Any, allowed: tuple[type, ...]) -> bool:
    """Whether a JSON value has one of the allowed types (true/false is not a number here)."""
    return isinstance(value, allowed) and not (isinstance(value, bool) and bool not in allowed)


# Fields whose default (when the stored value is dropped) is not None.
_REQUIRED_TIMES = frozenset({"created_at", "updated_at"})


def short_number(value: Any) -> str:
    """A number quoted in a message, never thousands of characters long."""
    if isinstance(value, int) and not isinstance(value, bool):
        digits = len(str(abs(value))) if abs(value) < 10**4000 else 4000
        if digits > 20:
            return f"{'-' if value < 0 else ''}a {digits}-digit number"
        return str(value)
    text = repr(value)
    return text if len(text) <= 30 else text[:29] + "…"


def number_problem(rules: dict[str, Rule], data: dict[str, Any]) -> tuple[str, str] | None:
    """The first (field, problem) in `data` that breaks `rules`, or None."""
    for name, rule in rules.items():
        if name in data:
            problem = rule.problem(data[name])
            if problem is not None:
                return name, problem
    return None


def _clean(rules: dict[str, Rule], data: dict[str, Any]) -> dict[str, Any]:
    for name, rule in rules.items():
        if name not in data:
            continue
        value = data[name]
        bad = isinstance(value, bool) or (value is not None and not isinstance(value, (int, float)))
        if bad or rule.problem(value) is not None:
            if name in _REQUIRED_TIMES:
                data[name] = UNKNOWN_TIME
            else:
                data[name] = None
        elif isinstance(value, float) and rule.whole:
            data[name] = int(value)
    return data


def clean_session_fields(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a session dict from storage) with every out-of-range number replaced; changed in place."""
    return _clean(SESSION_RULES, data)


def clean_turn_fields(data: dict[str, Any]) -> dict[str, Any]:
    """`data` (a turn dict from storage) with out-of-range numbers replaced, usage and tool calls included."""
    _clean(TURN_RULES, data)
    usage = data.get("usage")
    data["usage"] = _clean(USAGE_RULES, dict(usage)) if isinstance(usage, dict) else {}
    calls = data.get("tool_calls")
    kept = []
    for position, call in enumerate(calls if isinstance(calls, list) else []):
        if not isinstance(call, dict):
            continue
        call = dict(call)
        if TOOL_CALL_RULES["index"].problem(call.get("index")) is not None or not isinstance(call.get("index"), int):
            call["index"] = position
        kept.append(call)
    data["tool_calls"] = kept
    return data


def sane_time(value: Any) -> float | None:
    """A timestamp that every formatter can take, or None (unknown) for anything else (0.0 included)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if _TIME.problem(value) is not None or value <= TIME_MIN:
        return None
    return float(value)
