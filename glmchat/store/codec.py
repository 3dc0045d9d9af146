"""How sessions, turns and steps become rows, and rows become them again, exactly.

Every text is stored as a BLOB of UTF-8 with `surrogatepass`, and structured
fields as JSON written the same way (raw code points, not `\\u` escapes), so
any Python str comes back identical: NUL, `\\r\\n`, trailing spaces, lone
surrogates. Full-text search indexes a separate, display-safe copy.
"""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from glmchat.sanity import clean
from glmchat.session import Session, Step, Turn

TURN_COLUMNS = frozenset({"id", "status", "created_at", "user_text", "steps", "parent_id"})
"""Turn fields with columns of their own (the rest go to the JSON `meta`)."""
SESSION_COLUMNS = ("id", "title", "host", "model", "created_at", "updated_at")
"""Session fields with columns of their own (the rest go to the JSON `settings`)."""


def enc(text: str) -> bytes:
    """Exact bytes of any Python str (lone surrogates included)."""
    return text.encode("utf-8", "surrogatepass")


def dec(data: bytes | str | None) -> str:
    if data is None:
        return ""
    if isinstance(data, str):
        return data
    return bytes(data).decode("utf-8", "surrogatepass")


def json_blob(value: Any) -> bytes:
    # ensure_ascii=False keeps lone surrogates as raw code points; escaping them
    # would make json.loads merge an adjacent high+low pair into one character.
    return enc(json.dumps(value, ensure_ascii=False, separators=(",", ":")))


def json_load(data: bytes | str | None) -> Any:
    return json.loads(dec(data)) if data else None


def searchable(text: str) -> str:
    """The copy of a text the full-text index gets (and snippets are cut from): valid UTF-8, no NUL."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", " ")


# -- turns and steps ---------------------------------------------------------------------------


def turn_meta(turn: Turn) -> bytes:
    data = {f.name: getattr(turn, f.name) for f in fields(turn) if f.name not in TURN_COLUMNS}
    return json_blob(data)


def step_meta(step: Step) -> bytes:
    data = step.to_dict()
    del data["reasoning"], data["content"]
    return json_blob(data)


def step_row(step: Step) -> tuple[bytes, bytes, bytes]:
    """(reasoning, content, meta) of a step, synced first."""
    step.sync()
    return enc(step.reasoning), enc(step.content), step_meta(step)


def _object(data: bytes | str | None) -> dict[str, Any]:
    value = json_load(data)
    return value if isinstance(value, dict) else {}


def turn_from_row(row: tuple[Any, ...], steps: list[tuple[Any, ...]]) -> Turn:
    """A turn from its row (id, parent_id, status, created_at, user_text, meta) and its step rows.

    A value no glmchat wrote (an absurd date, a wrong type) is dropped, so every reader can show the rest.
    """
    tid, parent_id, status, created_at, user_text, meta = row
    data = _object(meta)
    data.update(id=tid, parent_id=parent_id, status=status, created_at=created_at, user_text=dec(user_text))
    data["steps"] = [step_from_row(s) for s in steps]
    return Turn.from_dict(clean(data, Turn))


def step_from_row(row: tuple[Any, ...]) -> dict[str, Any]:
    """A step's dict from (reasoning, content, meta)."""
    reasoning, content, meta = row
    data = _object(meta)
    data.update(reasoning=dec(reasoning), content=dec(content))
    return data


# -- sessions ------------------------------------------------------------------------------------


def session_settings(session: Session) -> bytes:
    data = {k: v for k, v in session.settings().items() if k not in SESSION_COLUMNS}
    return json_blob(data)


def session_from_row(row: tuple[Any, ...]) -> Session:
    """A session (without turns) from (id, title, host, model, created_at, updated_at, settings)."""
    sid, title, host, model, created_at, updated_at, settings = row
    data = _object(settings)
    data.update(id=sid, title=dec(title), host=dec(host), model=dec(model), created_at=created_at, updated_at=updated_at)
    return Session.from_dict(clean(data, Session))
