"""The answer renderer: Markdown to Content lines, and the streaming answer view's chunking."""

from __future__ import annotations

from textual.app import App, ComposeResult

from glmchat.ui.markdown_render import (
    Code,
    Heading,
    ListBlock,
    Paragraph,
    Table,
    code_blocks,
    layout_blocks,
    parse_blocks,
)
from glmchat.ui.widgets.answer import CHUNK_CHARS, FREEZE_CHARS, AnswerView, split_at_line


def plain(source: str, width: int = 60) -> list[str]:
    return [line.plain.rstrip() for line in layout_blocks(parse_blocks(source), width)]


def test_blocks_and_their_start_lines():
    source = "# Title\n\nA paragraph\nthat continues.\n\n- one\n- two\n\n```python\nx = 1\n```\n"
    blocks = parse_blocks(source)
    assert [type(b) for b in blocks] == [Heading, Paragraph, ListBlock, Code]
    assert [b.start_line for b in blocks] == [0, 2, 5, 8]


def test_paragraphs_wrap_to_the_width_and_soft_breaks_join():
    lines = plain("alpha beta gamma delta epsilon zeta eta theta\niota kappa", width=20)
    assert all(len(line) <= 20 for line in lines)
    assert " ".join(lines).split() == "alpha beta gamma delta epsilon zeta eta theta iota kappa".split()


def test_lists_hang_their_wrapped_lines_under_the_text():
    lines = plain("- a long item that has to wrap over more than one line here\n- b", width=24)
    assert lines[0].startswith("• a long")
    assert lines[1].startswith("  ") and not lines[1].startswith("   ")
    assert lines[-1] == "• b"


def test_ordered_lists_number_from_their_start_and_align():
    lines = plain("9. nine\n10. ten\n11. eleven")
    assert lines == [" 9. nine", "10. ten", "11. eleven"]


def test_nested_lists_indent_and_change_bullet():
    lines = plain("- outer\n  - inner\n- next")
    assert lines == ["• outer", "  ◦ inner", "• next"]


def test_code_is_highlighted_kept_verbatim_and_folded_not_wrapped():
    source = "```python\ndef f(x):\n    return x  # " + "c" * 80 + "\n```\n"
    block = parse_blocks(source)[0]
    assert isinstance(block, Code) and block.language == "python"
    assert block.code.spans, "python code gets highlight spans"
    lines = [line.plain for line in block.lines(40)]
    assert all(len(line) == 40 for line in lines), "code rows fill the width with their background"
    body = "".join(line.strip() for line in lines)
    assert "deff(x):" in body.replace(" ", "") and "c" * 30 in body


def test_unlabelled_code_is_not_guessed():
    block = parse_blocks("```\nplain text\n```\n")[0]
    assert isinstance(block, Code) and not block.code.spans


def test_tables_draw_borders_and_fit_the_width():
    source = "| Name | Value |\n|:-----|------:|\n| a | 1 |\n| long name here | 12345 |\n"
    block = parse_blocks(source)[0]
    assert isinstance(block, Table)
    lines = [line.plain for line in block.lines(30)]
    assert lines[0].startswith("┌") and lines[-1].startswith("└")
    assert all(len(line) <= 30 for line in lines)
    assert any("12345 │" in line for line in lines), "right-aligned column"


def test_inline_styles_and_links():
    source = "**bold** *it* `code` [site](https://example.com) [ftp](ftp://x.org/f) [bad](file:///etc/passwd)"
    block = parse_blocks(source)[0]
    content = block.content
    # markdown-it refuses file: and javascript: targets outright (the text stays literal);
    # other schemes are links, but only web and mail links get a click action.
    assert content.plain == "bold it code site ftp [bad](file:///etc/passwd)"
    styles = [(content.plain[s.start : s.end], s.style) for s in content.spans]
    clicks = [str(style.meta.get("@click")) for _, style in styles if hasattr(style, "meta") and style.meta]
    assert clicks == ["link('https://example.com')"], "only the web link is clickable"
    assert ("bold", "bold") in styles and ("it", "italic") in styles


def test_link_targets_cannot_break_out_of_the_click_action():
    block = parse_blocks("[x](https://example.com/a'),quit()#)")[0]
    click = [s.style.meta["@click"] for s in block.content.spans if hasattr(s.style, "meta") and s.style.meta]
    assert click and click[0].startswith("link(") and click[0].endswith(")")
    # The href is a single quoted literal: Textual parses it with literal_eval.
    import ast

    assert isinstance(ast.literal_eval(click[0][len("link") :]), str)


def test_code_blocks_helper_returns_exact_code():
    text = "a\n\n```py\nx = 1\n\n  y\n```\n\n~~~\nz\n~~~\n"
    assert code_blocks(text) == ["x = 1\n\n  y\n", "z\n"]


def test_split_at_line_counts_newlines_only():
    text = "a\u2028b\nc\nd"
    assert split_at_line(text, 1) == ("a\u2028b\n", "c\nd")
    assert split_at_line(text, 5) == (text, "")


# -- the streaming answer view -------------------------------------------------------------


class AnswerApp(App[None]):
    def __init__(self, view: AnswerView) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield self.view


def _long_answer() -> str:
    parts = []
    for i in range(300):
        parts.append(f"## Part {i}\n\nSome text for part {i} with **bold** and `code`.\n\n")
        if i % 5 == 0:
            parts.append(f"```python\nprint({i})\n```\n\n")
        if i % 7 == 0:
            parts.append(f"- item {i}\n- item {i + 1}\n\n")
    return "".join(parts)


async def test_streamed_answer_is_cut_into_settled_chunks_and_reads_the_same():
    answer = _long_answer()
    assert len(answer) > 2 * CHUNK_CHARS
    view = AnswerView(live=True)
    app = AnswerApp(view)
    async with app.run_test(size=(80, 24)) as pilot:
        for start in range(0, len(answer), 37):
            view.append(answer[start : start + 37])
        view.finish()
        await pilot.pause()
        assert view.source == answer
        assert view.chunk_count >= 2, "long answers settle into chunks"
        assert view.chunk_count <= len(answer) // (CHUNK_CHARS // 2) + 1, "settled blocks join chunks"
        assert len(view._tail_source) < FREEZE_CHARS + 200, "the re-parsed tail stays small"
        shown = []
        from glmchat.ui.widgets.answer import MarkdownView

        for chunk in view.query(MarkdownView):
            shown.extend(line.plain.rstrip() for line in chunk._lines(78))
            if chunk.has_class("-chunk"):
                shown.append("")
        whole = plain(answer, 78)
        assert [s for s in shown if s] == [w for w in whole if w]


def test_bare_urls_are_links_and_trailing_punctuation_is_not_part_of_them():
    block = parse_blocks("See https://example.com/a_b?x=1. Or (http://x.org/y), not ftp://nope.")[0]
    content = block.content
    links = [
        (content.plain[s.start : s.end], s.style.meta.get("@click"))
        for s in content.spans
        if hasattr(s.style, "meta") and s.style.meta
    ]
    assert links == [
        ("https://example.com/a_b?x=1", "link('https://example.com/a_b?x=1')"),
        ("http://x.org/y", "link('http://x.org/y')"),
    ]


class TurnApp(App[None]):
    def __init__(self, view: Any) -> None:
        super().__init__()
        self.view = view

    def compose(self) -> ComposeResult:
        yield self.view


async def test_a_flush_moves_at_most_its_limit_and_the_answer_waits_for_the_reasoning():
    from glmchat.protocol.events import ContentDelta, Finish, ReasoningDelta
    from glmchat.session import Session
    from glmchat.ui.widgets.turn import TurnView

    turn = Session().new_turn("q", True)
    view = TurnView(turn, live=True, last=True)
    app = TurnApp(view)
    reasoning = "".join(f"thought {i}. " for i in range(2_000))
    answer = _long_answer()
    async with app.run_test(size=(80, 24)) as pilot:
        view._timer.stop()  # flushed by hand here
        view.feed(ReasoningDelta(reasoning))
        view.feed(ContentDelta(answer))
        view.flush(limit=5_000)
        assert view._reasoning_text() == reasoning[:5_000]
        assert view.answer.source == "", "the answer starts below all of the reasoning"
        while view._pending_reasoning:
            view.flush(limit=5_000)
        assert view._reasoning_text() == reasoning
        before = len(view.answer.source)
        assert before <= 5_000, "what the last reasoning flush left of its limit"
        view.flush(limit=5_000)
        assert len(view.answer.source) - before == 5_000 and answer.startswith(view.answer.source)
        view.feed(Finish("stop"))  # the end draws everything at once
        assert view.answer.source == answer
        await pilot.pause()
