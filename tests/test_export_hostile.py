"""Markdown export of hostile model text: no common renderer makes an active element of it.

Renderers: markdown-it-py (CommonMark with raw HTML on, as GFM-style renderers do),
Python-Markdown plain and with "extra", mistune. Each payload goes into every text a
session holds; the rendered HTML may hold only harmless tags, no event handler, no link
to anything but http(s), mail and anchors, and exactly the <details> folds we wrote.
"""

from __future__ import annotations

import json

import pytest

from glmchat.export import from_json, to_json, to_markdown
from glmchat.protocol.events import ContentDelta, ReasoningDelta, ToolCallDelta
from glmchat.session import Session, SessionTree
from tests.hostile_markdown import PAYLOADS, active_elements, renderers

RENDERERS = renderers()


def test_every_renderer_is_installed() -> None:
    assert set(RENDERERS) == {"markdown-it", "python-markdown", "python-markdown-extra", "mistune"}
    assert len(PAYLOADS) >= 30


def hostile_session(payload: str) -> Session:
    session = Session(title="title " + payload, system_prompt="system " + payload)
    first = session.new_turn("user " + payload, thinking=True)
    first.apply(ReasoningDelta("reasoning " + payload + "\nmore"))
    first.apply(ContentDelta("answer " + payload))
    first.apply(ToolCallDelta(0, "c1", "tool" + payload, payload))
    first.finish()
    second = session.new_turn(payload, thinking=True)
    second.apply(ReasoningDelta(payload))
    second.apply(ContentDelta(payload))
    second.error = "error " + payload
    second.status = "error"
    second.finish()
    return session


@pytest.mark.parametrize("payload", PAYLOADS, ids=range(len(PAYLOADS)))
def test_no_renderer_makes_an_active_element(payload: str) -> None:
    markdown = to_markdown(hostile_session(payload))
    for name, render in RENDERERS.items():
        problems, details = active_elements(render(markdown))
        assert problems == [], (name, problems)
        assert details == 2, (name, details)  # our two folds, none from the text


def test_bidi_controls_show_in_markdown_and_stay_exact_in_json() -> None:
    sneaky = "invoice\u202egpj.exe \u2066iso\u2069 \u200e\u200f\u202a\u202b\u202c\u202d"
    session = Session(title=sneaky)
    turn = session.new_turn(sneaky, thinking=True)
    turn.apply(ReasoningDelta(sneaky))
    turn.apply(ContentDelta(sneaky))
    turn.finish()
    markdown = to_markdown(session)
    for ch in "\u202e\u2066\u2069\u200e\u200f\u202a\u202b\u202c\u202d":
        assert ch not in markdown
    assert "invoice⟨U+202E⟩gpj.exe" in markdown and "⟨U+2066⟩iso⟨U+2069⟩" in markdown
    exported = to_json(SessionTree.of(session))
    assert json.loads(exported)["session"]["turns"][0]["steps"][0]["content"] == sneaky
    assert from_json(exported).turns[0].reasoning == sneaky
