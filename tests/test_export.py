"""Markdown and JSON export, JSON import, safe file names."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from markdown_it import MarkdownIt

from glmchat import export
from glmchat.errors import GlmChatError
from glmchat.export import SessionImportError, from_json, safe_filename, to_json, to_markdown
from glmchat.protocol.events import ContentDelta, Finish, ReasoningDelta, StreamFailed, ToolCallDelta, UsageUpdate
from glmchat.errors import ServerError
from glmchat.session import Session, SessionTree, Step, ToolCall, Turn, TurnStatus
from glmchat.usage import Usage

# -- helpers ---------------------------------------------------------------------------------


CODE_HTML = ("<pre><code", "<code>", "</code>")
"""The HTML the export writes for code (escaped inside)."""
OURS = ("<details>\n<summary>Thinking (", "</details>", *CODE_HTML)


def parser() -> MarkdownIt:
    md = MarkdownIt("commonmark").enable("table")
    md.validateLink = lambda url: True  # see every link, also the ones the parser would drop
    return md


def walk(tokens):
    for token in tokens:
        yield token
        if token.children:
            yield from walk(token.children)


def structure(markdown: str) -> dict:
    tokens = parser().parse(markdown)
    flat = list(walk(tokens))
    headings = [tokens[i + 1].content for i, t in enumerate(tokens) if t.type == "heading_open" and t.tag == "h2"]
    return {
        "h2": headings,
        "html": [t.content for t in flat if t.type in ("html_block", "html_inline")],
        "links": [t.attrGet("href") for t in flat if t.type == "link_open"]
        + [t.attrGet("src") for t in flat if t.type == "image"],
        "top": [t.type for t in tokens if t.level == 0],
        "h1": sum(1 for t in tokens if t.type == "heading_open" and t.tag == "h1"),
    }


def turn_with(session: Session, user: str, reasoning: str = "", content: str = "", **kw) -> Turn:
    turn = session.new_turn(user, thinking=bool(reasoning))
    if reasoning:
        turn.apply(ReasoningDelta(reasoning), now=100.0)
    if content:
        turn.apply(ContentDelta(content), now=104.5)
    turn.finish(now=105.0)
    for key, value in kw.items():
        setattr(turn.step if key == "usage" else turn, key, value)
    return turn


def sample_session() -> Session:
    session = Session(title="Rust lifetimes", created_at=1_700_000_000, updated_at=1_700_000_600)
    turn_with(session, "What is 'a?", "The user asks about lifetimes.\n", "A **lifetime** is...",
              usage=Usage(100, 50, 80, 30, 0.0012))
    turn_with(session, "Shorter please", "", "Sure.", status=TurnStatus.STOPPED, usage=Usage(200, 10, None, None, 0.0005))
    turn_with(session, "Again", "", "", status="error", error="Z.ai: server error (500); try again")
    turn_with(session, "Long", "ok", "cut", finish_reason="length", status="truncated")
    turn_with(session, "Crash", "half", "", status=TurnStatus.INTERRUPTED)
    session.updated_at = 1_700_000_600
    return session


# -- Markdown ----------------------------------------------------------------------------------


def test_markdown_structure_and_metadata() -> None:
    session = sample_session()
    md = to_markdown(session)
    shape = structure(md)
    assert md.startswith("# Rust lifetimes\n")
    assert shape["h2"] == [f"Turn {i}" for i in range(1, 6)]
    for line in ("**Host:** zai", "**Model:** glm-4.7", "**Turns:** 5",
                 "**Created:** 2023-11-14 22:13 UTC", "**Updated:** 2023-11-14 22:23 UTC",
                 "**Tokens:** 300 prompt (80 cached, 27% cache hit) · 60 completion (30 reasoning)", "**Cost:** $0.0017"):
        assert line in md
    # Reasoning folded only where there is some, with its token count and duration.
    assert md.count("<details>") == 3
    assert "<summary>Thinking (30 tokens · 4.5 s)</summary>" in md
    assert shape["html"].count("</details>\n") == 3
    # Status of turns that did not complete.
    assert "Stopped by the user" in md
    assert "**Error:** Z.ai: server error (500); try again" in md
    assert "**Truncated** by the host (finish reason: length)" in md
    assert "Interrupted" in md
    assert md.count("> ") >= 4


def test_no_details_without_reasoning() -> None:
    session = Session(title="t")
    turn_with(session, "hi", "", "hello")
    assert "<details>" not in to_markdown(session)


def test_tool_calls_and_system_prompt_are_shown() -> None:
    session = Session(title="t", system_prompt="You are terse.")
    turn = session.new_turn("weather?")
    turn.apply(ToolCallDelta(0, "c1", "get_weather", '{"city": "Paris"}'))
    turn.apply(Finish("tool_calls"))
    turn.finish()
    md = to_markdown(session)
    assert "Tool call `get_weather`" in md and '{"city": "Paris"}' in md
    assert "You are terse." in md


def test_literal_text_is_an_escaped_pre_block_whatever_backticks_it_holds() -> None:
    session = Session(title="t")
    turn_with(session, "look: ````` and ``` end <b>", "", "")
    md = to_markdown(session)
    assert '<pre><code class="language-text">look: ````` and ``` end &lt;b&gt;</code></pre>' in md


def test_control_characters_are_inert() -> None:
    hostile = "a\x1b]52;c;ZXZpbA==\x07b\x1b[2Jc\x9b31m\x00d\r\n"
    session = Session(title="title \x1b[31mred")
    turn_with(session, hostile, hostile, hostile, error=hostile, status="error")
    md = to_markdown(session)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", md)
    assert "␛]52;c;ZXZpbA==␇b" in md
    md.encode("utf-8")


def test_lone_surrogates_do_not_break_markdown() -> None:
    session = Session(title="\ud800")
    turn_with(session, "x\udfff", "\ud83d", "\ude00")
    to_markdown(session).encode("utf-8")


@pytest.mark.parametrize(
    "text",
    [
        "[click](javascript:alert(1))",
        "[click]( javascript:alert(1) )",
        "[click](jav&#x61;script:alert(1))",
        "[click](<javascript:alert(1)>)",
        "![img](file:///etc/passwd)",
        "[click](file:///etc/passwd)",
        "<javascript:alert(1)>",
        "<file:///etc/passwd>",
        "[click][ref]\n\n[ref]: javascript:alert(1)",
        "[click][ref]\n\n[ref]:\n  file:///etc/passwd",
        "[click](\njavascript:alert(1))",
        "[x](data:text/html,<script>alert(1)</script>)",
        "[rel](../../secret.txt)",
    ],
)
def test_unsafe_links_are_not_clickable(text: str) -> None:
    session = Session(title="t")
    turn_with(session, "q", text, text)
    shape = structure(to_markdown(session))
    assert shape["links"] == []
    assert all(h.startswith(OURS) for h in shape["html"])


def test_safe_links_stay_clickable() -> None:
    session = Session(title="t")
    turn_with(session, "q", "", "See [docs](https://docs.z.ai/guides) and `code <T>` and [mail](mailto:a@b.c).")
    md = to_markdown(session)
    assert structure(md)["links"] == ["https://docs.z.ai/guides", "mailto:a@b.c"]
    assert "<code>code &lt;T&gt;</code>" in md  # inline code with a "<": escaped, reads the same


@pytest.mark.parametrize(
    "text",
    [
        "</details>\n\n## Turn 99\n\n<details>",
        "```\nnever closed </details>",
        "~~~~\n<details>",
        "- item\n  ```\n<details><summary>x</summary>",
        "<!-- open comment",
        "<script>alert(1)</script>",
        "<div>\n\n# injected\n\n</div>",
        "a ` b\n` <details> `",
        "\\`<details>`",
        "    indented <details>",
        "> quote\n```\n</details>",
    ],
)
def test_hostile_text_cannot_break_the_document(text: str) -> None:
    session = Session(title="t")
    turn_with(session, text, text, text)
    turn_with(session, "second", "r", "c")
    shape = structure(to_markdown(session))
    assert shape["h2"] == ["Turn 1", "Turn 2"]
    opens = [h for h in shape["html"] if h.startswith("<details>")]
    assert len(opens) == 2 and all(h.startswith("<details>\n<summary>Thinking (") for h in opens)
    assert [h for h in shape["html"] if not h.startswith(("<details>", *CODE_HTML))] == ["</details>\n", "</details>\n"]


def test_link_definition_in_one_turn_cannot_serve_another() -> None:
    session = Session(title="t")
    turn_with(session, "q", "", "define\n\n[r]:\n  javascript:alert(1)\n")
    turn_with(session, "q", "", "use [click][r]")
    assert structure(to_markdown(session))["links"] == []


def test_turn_check_catches_what_the_text_check_missed(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the per-text check had a gap, the check of the whole turn still falls back to literal blocks."""
    monkeypatch.setattr(export, "_renders_safely", lambda markdown: True)
    session = Session(title="t")
    hostile = "a ` b\n` <details> `\n\n[x](\njavascript:alert(1))"  # beyond the line-by-line sanitizer
    turn_with(session, "q", "", hostile)
    turn_with(session, "q2", "r", "fine")
    md = to_markdown(session)
    shape = structure(md)
    assert shape["h2"] == ["Turn 1", "Turn 2"] and shape["links"] == []
    assert all(h.startswith(OURS) for h in shape["html"])
    assert "<pre><code>a ` b\n` &lt;details&gt; `" in md  # that turn's model texts went literal
    assert md.endswith("</details>\n\nfine\n")  # the next turn is checked on its own


# Text built from the pieces that break Markdown documents.
HOSTILE = ["`", "```", "````", "~~~", "\n", "\n\n", "    ", "- ", "> ", "1. ", "</details>", "<details>", "<summary>",
           "<", ">", "[", "](", "]: ", "javascript:alert(1)", "file:///etc/passwd", "#", "\\", "&#x61;", "<!--",
           "-->", "|", "***", "\x1b", "\r\n", "text", " "]
hostile_text = st.lists(st.sampled_from(HOSTILE), max_size=25).map("".join)


@settings(max_examples=150, deadline=None)
@given(user=hostile_text, reasoning=hostile_text, content=hostile_text, title=hostile_text)
def test_document_structure_survives_any_text(user: str, reasoning: str, content: str, title: str) -> None:
    session = Session(title=title)
    turn_with(session, user, reasoning, content)
    turn_with(session, "after", "thought", "answer")
    md = to_markdown(session)
    shape = structure(md)
    assert shape["h2"] == ["Turn 1", "Turn 2"]
    assert shape["h1"] == 1 and shape["top"][0] == "heading_open"
    opens = [h for h in shape["html"] if h.startswith("<details>")]
    assert len(opens) == 1 + bool(reasoning)
    folds = [h for h in shape["html"] if not h.startswith(CODE_HTML)]
    assert shape["html"].count("</details>\n") == len(opens) and len(folds) == 2 * len(opens)
    assert all(h.startswith(OURS) for h in shape["html"])
    assert all(link.startswith(("https://", "http://", "mailto:", "#")) for link in shape["links"])
    assert "\x1b" not in md
    assert md.rstrip().endswith("answer")  # the last turn's answer is still plain text at the end


# -- JSON ------------------------------------------------------------------------------------------


def test_json_envelope() -> None:
    session = sample_session()
    data = json.loads(to_json(SessionTree.of(session)))
    assert data["format"] == "glmchat.session" and data["version"] == 2
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", data["exported_at"])
    assert data["session"] == {**session.to_dict(), "head": session.turns[-1].id}


def test_json_round_trip_of_a_rich_session() -> None:
    session = sample_session()
    turn = session.new_turn("tools \x00\r\n  ", thinking=True)
    turn.apply(ToolCallDelta(0, "c", "f", '{"a": "\\u00e9"}'))
    turn.apply(UsageUpdate(Usage(cost=0.1)))
    turn.apply(StreamFailed(ServerError("boom", host="Z.ai")))
    turn.step.reasoning_details = [{"type": "reasoning.text", "text": "x", "signature": None}]
    turn.include_in_context = False
    assert from_json(to_json(SessionTree.of(session))).session.to_dict() == session.to_dict()
    assert from_json(to_json(SessionTree.of(session)).encode("utf-8")).session.to_dict() == session.to_dict()


def test_json_is_utf8_and_escapes_what_a_terminal_would_act_on() -> None:
    session = Session(title="\ud800 \x9b31m \x1b[2J \u2028 😀")
    text = to_json(SessionTree.of(session))
    text.encode("utf-8")
    assert "\x9b" not in text and "\x1b" not in text and "\u2028" not in text
    assert "😀" in text  # real characters stay readable
    assert from_json(text).session.title == session.title


def test_split_surrogate_pair_stays_two_code_points() -> None:
    session = Session(title="t")
    turn_with(session, "q", "\ud83d\ude00", "\ud83d" + "x" + "\ude00")
    back = from_json(to_json(SessionTree.of(session))).session
    assert back.turns[0].reasoning == "\ud83d\ude00" and len(back.turns[0].reasoning) == 2
    assert back.to_dict() == session.to_dict()


def test_foreign_escaped_pair_decoder_handles_all_escapes() -> None:
    session = Session(title='q"\\/\b\f\n\r\t\x00é\ud83d\ude00')
    assert from_json(to_json(SessionTree.of(session))).session.title == session.title


any_char = st.characters(exclude_categories=())
text = st.lists(
    st.one_of(st.text(any_char, max_size=6), st.characters(categories=["Cs"]),
              st.sampled_from(["\r\n", "\x00", "\ud83d\ude00", "`", "</details>", " \t "])),
    max_size=8,
).map("".join)
number = st.floats(allow_nan=False, allow_infinity=False)
# Numbers an export may hold: times from 1970 to 9999, sampling settings and counts in their ranges.
when = st.floats(0, 253_402_300_799)
unit = st.floats(0, 1)
opt_int = st.none() | st.integers(0, 10**9)


@st.composite
def turns(draw: st.DrawFn) -> Turn:
    return Turn(user_text=draw(text), thinking=draw(st.booleans()), host=draw(text), model=draw(text), id=draw(st.uuids()).hex, status=draw(st.sampled_from(tuple(TurnStatus))), finish_reason=draw(st.none() | text), error=draw(st.none() | text), error_kind=draw(st.none() | text), created_at=draw(when), first_reasoning_at=draw(st.none() | when), first_content_at=draw(st.none() | when), finished_at=draw(st.none() | when), include_in_context=draw(st.none() | st.booleans()), steps=[Step(reasoning=draw(text), content=draw(text), tool_calls=[ToolCall(index=i, id=draw(st.none() | text), name=draw(text), arguments=draw(text))
                    for i in range(draw(st.integers(0, 2)))], reasoning_details=draw(st.none() | st.lists(st.dictionaries(text, text | st.integers() | st.none(),
                                                                    max_size=2), max_size=2)), usage=Usage(draw(opt_int), draw(opt_int), draw(opt_int), draw(opt_int), draw(st.none() | unit)))])


@st.composite
def sessions(draw: st.DrawFn) -> Session:
    return Session(
        title=draw(text), host=draw(text), model=draw(text), system_prompt=draw(text),
        temperature=draw(st.none() | st.floats(0, 2)), top_p=draw(st.none() | unit),
        max_tokens=draw(st.none() | st.integers(1, 10**7)),
        preserve_thinking=draw(st.booleans()), thinking_next=draw(st.booleans()), id=draw(st.uuids()).hex,
        created_at=draw(when), updated_at=draw(when), turns=draw(st.lists(turns(), max_size=3)),
    )


@settings(max_examples=100, deadline=None)
@given(session=sessions())
def test_json_round_trip_is_identity(session: Session) -> None:
    exported = to_json(SessionTree.of(session))
    exported.encode("utf-8")
    assert from_json(exported).session.to_dict() == session.to_dict()


@settings(max_examples=30, deadline=None)
@given(session=sessions())
def test_markdown_of_any_session_is_valid_utf8(session: Session) -> None:
    md = to_markdown(session)
    md.encode("utf-8")
    assert structure(md)["h2"] == [f"Turn {i}" for i in range(1, len(session.turns) + 1)]


# -- import errors ------------------------------------------------------------------------------


def envelope(**session_changes) -> str:
    data = json.loads(to_json(SessionTree.of(sample_session())))
    data["session"].update(session_changes)
    return json.dumps(data)


def with_turn_change(**changes) -> str:
    data = json.loads(to_json(SessionTree.of(sample_session())))
    data["session"]["turns"][0].update(changes)
    return json.dumps(data)


def with_step_change(**changes) -> str:
    data = json.loads(to_json(SessionTree.of(sample_session())))
    data["session"]["turns"][0]["steps"][0].update(changes)
    return json.dumps(data)


def with_version_1(**changes) -> str:
    """A version 1 export: each turn holds its one step's fields itself."""
    data = json.loads(to_json(SessionTree.of(sample_session())))
    data["version"] = 1
    for turn in data["session"]["turns"]:
        step = turn.pop("steps")[0]
        turn.update({k: v for k, v in step.items() if k != "tool_results"})
    data["session"]["turns"][0].update(changes)
    return json.dumps(data)


def with_envelope_change(**changes) -> str:
    data = json.loads(to_json(SessionTree.of(sample_session())))
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("   \n", "empty"),
        ("hello, world", "invalid JSON at line 1"),
        ("{'format': 1}", "invalid JSON"),
        ("[1, 2]", "no \"format\""),
        ('"just a string"', "no \"format\""),
        ('{"format": "something.else", "version": 1}', "no \"format\""),
        ('{"messages": []}', "no \"format\""),
        (with_envelope_change(version=3), "newer glmchat"),
        (with_envelope_change(version="1"), "version should be a whole number"),
        (with_envelope_change(version=True), "version should be a whole number"),
        (with_envelope_change(version=0), "version should be a whole number"),
        (with_envelope_change(session=[]), "session should be an object"),
        (with_envelope_change(session=None), "session should be an object"),
        (envelope(turns="none"), "session.turns should be a list, not text"),
        (envelope(title=5), "session.title should be text, not a number"),
        (envelope(preserve_thinking="yes"), "session.preserve_thinking should be true/false"),
        (envelope(max_tokens=1.5), "session.max_tokens should be a whole number"),
        (envelope(created_at=-1e18), "session.created_at = -1e+18 is out of range"),
        (envelope(updated_at=1e400), "session.updated_at is not a finite number"),
        (envelope(max_tokens=10**30), "session.max_tokens = a 31-digit number is out of range"),
        (envelope(head="nowhere"), "session.head names no turn"),
        (envelope(id=""), "session.id is empty"),
        (envelope(turns=[1]), "session.turns[0] should be an object"),
        (with_step_change(reasoning=12), "session.turns[0].steps[0].reasoning should be text, not a number"),
        (with_turn_change(thinking=1), "session.turns[0].thinking should be true/false"),
        (with_step_change(usage={"prompt_tokens": "5"}), "session.turns[0].steps[0].usage.prompt_tokens should be"),
        (with_step_change(usage={"prompt_tokens": True}), "session.turns[0].steps[0].usage.prompt_tokens should be"),
        (with_turn_change(status="weird"), "status 'weird' is unknown"),
        (with_step_change(tool_calls=[{"name": "x"}]), 'tool_calls[0] has no "index"'),
        (with_step_change(reasoning_details=["x"]), "reasoning_details[0] should be an object"),
        (with_turn_change(created_at="yesterday"), "created_at should be"),
        (with_turn_change(parent_id="elsewhere"), "session.turns[0].parent_id names no turn"),
        (with_version_1(reasoning=12), "session.turns[0].reasoning should be text, not a number"),
        (with_version_1(tool_calls=[{"name": "x"}]), 'tool_calls[0] has no "index"'),
    ],
    # Stable ids (an envelope holds a time and fresh ids): every test process collects the same tests.
    ids=lambda value: "envelope" if "exported_at" in value else value[:40],
)
def test_import_errors(text: str, message: str) -> None:
    with pytest.raises(SessionImportError) as info:
        from_json(text)
    assert message in str(info.value)
    assert "\n" not in str(info.value)
    assert isinstance(info.value, GlmChatError)


def test_missing_required_turn_field() -> None:
    data = json.loads(to_json(SessionTree.of(sample_session())))
    del data["session"]["turns"][0]["user_text"]
    with pytest.raises(SessionImportError, match='has no "user_text"'):
        from_json(json.dumps(data))


def test_repeated_turn_ids() -> None:
    data = json.loads(to_json(SessionTree.of(sample_session())))
    data["session"]["turns"][1]["id"] = data["session"]["turns"][0]["id"]
    with pytest.raises(SessionImportError, match="repeated"):
        from_json(json.dumps(data))


def test_not_utf8() -> None:
    with pytest.raises(SessionImportError, match="not UTF-8"):
        from_json(b'{"format": "\xff"}')


def test_every_truncation_is_reported_as_truncated() -> None:
    exported = to_json(SessionTree.of(sample_session()))
    end = len(exported.rstrip())
    for cut in range(1, end, max(1, end // 300)):
        with pytest.raises(SessionImportError, match="truncated"):
            from_json(exported[:cut])


def test_truncation_is_found_on_the_exact_path_too() -> None:
    """A file with an escaped surrogate pair takes the pure-Python decoder: same errors."""
    exported = to_json(SessionTree.of(sample_session())).replace('"Rust lifetimes"', '"Rust \\ud83d\\ude00"')
    assert from_json(exported).session.title == "Rust \ud83d\ude00"
    end = len(exported.rstrip())
    for cut in range(1, end, max(1, end // 300)):
        with pytest.raises(SessionImportError, match="truncated"):
            from_json(exported[:cut])
    with pytest.raises(SessionImportError, match="invalid JSON"):
        from_json(exported.replace('"title":', '"title"'))


def test_unknown_extra_fields_are_ignored() -> None:
    data = json.loads(to_json(SessionTree.of(sample_session())))
    data["session"]["future_field"] = {"x": 1}
    data["session"]["turns"][0]["another"] = 2
    assert from_json(json.dumps(data)).session.to_dict() == sample_session().to_dict() | {
        "id": data["session"]["id"], "turns": from_json(json.dumps(data)).session.to_dict()["turns"]
    }


# -- keys -------------------------------------------------------------------------------------


def test_exports_hold_no_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-0123456789abcdef-SECRET"
    for name in ("ZAI_API_KEY", "CEREBRAS_API_KEY", "OPENROUTER_API_KEY", "RUNWARE_API_KEY"):
        monkeypatch.setenv(name, secret)
    session = sample_session()
    for output in (to_markdown(session), to_json(SessionTree.of(session))):
        assert secret not in output
        assert "SECRET" not in output


# -- file names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("title", "ext", "expected"),
    [
        ("../etc/passwd", "md", "etc-passwd.md"),
        ("/", "md", "chat.md"),
        ("..", "json", "chat.json"),
        ("", "md", "chat.md"),
        ("   ", "md", "chat.md"),
        ("CON", "md", "chat-CON.md"),
        ("nul", "json", "chat-nul.json"),
        ("com1.backup", "md", "chat-com1.backup.md"),
        ("LPT9", "md", "chat-LPT9.md"),
        ("a\x00b\x1b[31mc", "md", "a-b-[31mc.md"),
        ("-rf --no-preserve-root", "md", "rf-no-preserve-root.md"),
        (".hidden", "md", "hidden.md"),
        ("trailing dots...", "md", "trailing-dots.md"),
        ("C:\\Windows\\system32", "md", "C-Windows-system32.md"),
        ('what? <a>|"b"*', "md", "what-a-b.md"),
        ("invoice\u202egpj.exe", "md", "invoice-gpj.exe.md"),
        ("Résumé 日本語", "md", "Résumé-日本語.md"),
        ("x", "../md", "x.md"),
        ("x", "", "x"),
        ("\ud800", "md", "chat.md"),
    ],
)
def test_safe_filename(title: str, ext: str, expected: str) -> None:
    assert safe_filename(title, ext) == expected


def test_safe_filename_is_capped() -> None:
    for title in ("a" * 300, "日" * 300, "ab. " * 100):
        name = safe_filename(title, "json")
        assert len(name.encode("utf-8")) <= 130 and name.endswith(".json")
        assert not name[:-5].endswith((".", "-", " "))


@settings(max_examples=200, deadline=None)
@given(title=st.text(st.characters(exclude_categories=())), ext=st.sampled_from(["md", "json"]))
def test_safe_filename_property(title: str, ext: str) -> None:
    name = safe_filename(title, ext)
    assert name and name.endswith("." + ext)
    assert "/" not in name and "\\" not in name and ".." not in name
    assert not name.startswith((".", "-"))
    assert not re.search(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]", name)
    assert name.split(".")[0].upper() not in ("CON", "PRN", "AUX", "NUL", "COM1", "LPT1")
    assert len(name.encode("utf-8")) <= 130


# -- long sessions: written a page of turns at a time ---------------------------------------------


def test_iter_markdown_pages_turns_in_and_matches_to_markdown() -> None:
    session = sample_session()
    calls = []

    def turns():
        calls.append(1)
        return iter(session.turns)

    pieces = list(export.iter_markdown(session, turns))
    assert len(calls) == 2  # totals, then the turns
    assert "".join(pieces) == to_markdown(session)
    assert len(pieces) >= len(session.turns) + 2 and sum("## Turn" in p for p in pieces) == len(session.turns)


def test_cli_markdown_export_streams_from_the_store(glmchat_home, tmp_path) -> None:
    from glmchat.store import Store
    from tests.test_cli import run

    session = Session(title="long")
    for n in range(450):  # more than two pages of the store's iter_turns
        turn_with(session, f"q{n}", f"r{n}", f"answer {n}")
    with Store.open(glmchat_home) as store:
        store.save_session(session)
        assert [t.id for t in store.iter_turns(session.id, batch=200)] == [t.id for t in session.turns]
    target = tmp_path / "long.md"
    proc = run("sessions", "export", "1", "-o", str(target), home=glmchat_home)
    assert proc.returncode == 0, proc.stderr
    text = target.read_text()
    assert text.count("## Turn ") == 450 and "answer 449" in text and "- **Turns:** 450" in text
    assert not list(tmp_path.glob(".long.md.*"))  # the temp file was renamed, not left behind
    piped = run("sessions", "export", "1", home=glmchat_home)
    assert piped.stdout == text
