"""Huge texts in a turn: only a page is ever laid out, every page stays reachable, and copy takes all of it.

The work is counted, not timed: the characters handed to the wrapper (for the
reasoning and the message) and to the Markdown parser (for the answer). Laying
out the whole text would show up there as megabytes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.content import Content

from glmchat.ui.widgets import answer as answer_module
from glmchat.ui.widgets.pager import PageBar, Pages
from glmchat.ui.widgets.turn import ANSWER_PAGE, REASONING_PAGE, USER_PAGE
from tests.glm_server import Reply
from tests.ui_support import SIZE, make_app, open_store, screen_text, stored_session, stored_turn, wait_for

SLACK = 1.3
"""A page ends at the next break within a quarter page (and a Markdown page may get a fence line back)."""


def numbered(n: int, label: str) -> str:
    """`n` lines, each saying which it is, so a page shows where it is in the text."""
    return "".join(f"{label} line {i:07d}, with words enough to wrap at a narrow width.\n" for i in range(n))


@pytest.fixture
def wrapped(monkeypatch) -> list[int]:
    """Characters of every text wrapped for display."""
    sizes: list[int] = []
    wrap = Content.wrap

    def counting(self: Content, width: int, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(len(self.plain))
        return wrap(self, width, **kwargs)

    monkeypatch.setattr(Content, "wrap", counting)
    return sizes


@pytest.fixture
def parsed(monkeypatch) -> list[int]:
    """Characters of every Markdown source parsed for an answer view."""
    sizes: list[int] = []
    parse = answer_module.parse_blocks

    def counting(source: str, *args, **kwargs):  # type: ignore[no-untyped-def]
        sizes.append(len(source))
        return parse(source, *args, **kwargs)

    monkeypatch.setattr(answer_module, "parse_blocks", counting)
    return sizes


def shown_text(widget) -> str:  # type: ignore[no-untyped-def]
    """The plain text a Static shows."""
    return widget.visual.plain


def open_huge(**texts: str) -> None:
    store = open_store()
    stored_session(store, "Huge", [stored_turn(1, **texts)])
    store.close()


async def test_unfolding_a_huge_reasoning_lays_out_one_page(glm_server, wrapped):
    reasoning = numbered(40_000, "reasoning")  # about 2.6 MB
    open_huge(reasoning=reasoning)
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        view = app.chat.log_view.mounted_views[-1]
        pane, bar = view.reasoning, view.reasoning_pages
        assert bar is not None and not bar.display, "the bar shows with the text, not while folded"
        wrapped.clear()
        pane.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert pane.expanded and bar.display
        assert wrapped and max(wrapped) <= REASONING_PAGE * SLACK, f"laid out {max(wrapped):,} characters"
        assert pane.size.height <= REASONING_PAGE * SLACK / 40, "a page of lines, not the whole text"
        assert pane._full_text().startswith("reasoning line 0000000,")
        # The log keeps following its bottom: the end of the page and the bar under it are on screen.
        last_line = pane._full_text().rstrip("\n").rsplit("\n", 1)[1][:40]
        await wait_for(pilot, lambda: last_line in screen_text(app))
        assert f"reasoning page 1 of {bar.pages.count:,}" in screen_text(app)
        assert bar.pages.count == Pages(reasoning, REASONING_PAGE).count > 100


async def test_an_unfolded_page_renders_only_the_lines_on_screen(glm_server):
    open_huge(reasoning=numbered(40_000, "reasoning"))
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        view = app.chat.log_view.mounted_views[-1]
        pane = view.reasoning
        view.set_expanded(True)
        await wait_for(pilot, lambda: pane.size.height > SIZE[1])
        await pilot.pause()
        rendered = len(pane._strips._strips)
        assert 0 < rendered <= SIZE[1], f"{rendered} of {pane.size.height} lines rendered"
        app.chat.log_view.scroll_page_up(animate=False)
        await pilot.pause()
        assert len(pane._strips._strips) <= 2 * SIZE[1], "scrolling renders the lines that come into view"


async def test_every_page_of_the_reasoning_is_reachable_in_order(glm_server, wrapped):
    reasoning = numbered(2_000, "r")
    open_huge(reasoning=reasoning)
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        view = app.chat.log_view.mounted_views[-1]
        view.set_expanded(True)
        bar = view.reasoning_pages
        assert bar is not None
        bar.focus()
        await pilot.pause()
        seen = [view.reasoning._full_text()]
        for _ in range(bar.pages.count - 1):
            await pilot.press("n")
            seen.append(view.reasoning._full_text())
        await pilot.press("n")  # past the last page: nothing moves
        assert bar.page == bar.pages.count - 1
        assert "".join(seen) == reasoning, "the pages, one after the other, are the whole text"
        await pilot.press("home")
        assert view.reasoning._full_text() == seen[0]
        await pilot.press("end")
        await pilot.pause()
        last_page = view.reasoning._full_text()
        assert reasoning.endswith(last_page)
        # A new page is shown from its first line.
        assert last_page.split("\n", 1)[0][:40] in screen_text(app)
        await pilot.press("p")
        assert view.reasoning._full_text() == seen[-2]
        assert max(wrapped) <= REASONING_PAGE * SLACK


async def test_copy_all_takes_the_whole_reasoning_exactly(glm_server):
    reasoning = numbered(2_000, "r") + "trailing spaces  \n\tand a tab"
    open_huge(reasoning=reasoning)
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        view = app.chat.log_view.mounted_views[-1]
        view.set_expanded(True)
        view.reasoning_pages.focus()
        await pilot.press("y")
        assert app.clipboard == reasoning


async def test_a_text_too_long_for_the_clipboard_is_saved_to_a_file(glm_server, monkeypatch, tmp_path):
    from glmchat.ui.screens import chat as chat_module

    monkeypatch.setattr(chat_module, "CLIPBOARD_LIMIT", 10_000)
    monkeypatch.chdir(tmp_path)
    reasoning = numbered(2_000, "r") + "crlf\r\nkept"
    open_huge(reasoning=reasoning)
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        before = app.clipboard
        view = app.chat.log_view.mounted_views[-1]
        view.set_expanded(True)
        view.reasoning_pages.focus()
        await pilot.press("y")
        await pilot.pause()
        [saved] = list(Path(tmp_path).glob("*.txt"))
        assert saved.read_bytes() == reasoning.encode()
        assert app.clipboard == before, "nothing that size went to the terminal"
        assert any(str(saved) in n.message for n in app._notifications)


async def test_a_huge_stored_answer_opens_with_one_page_parsed(glm_server, parsed):
    content = "".join(
        f"## Part {i}\n\nSome **bold** text and `code` in part {i}.\n\n```python\nx = {i}\n\n\ny = {i}\n```\n\n"
        for i in range(20_000)
    )  # about 1.3 MB of Markdown, code fences with blank lines in them
    open_huge(content=content)
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        view = app.chat.log_view.mounted_views[-1]
        bar = view.answer_pages
        assert bar is not None
        assert parsed and max(parsed) <= ANSWER_PAGE * SLACK + 100, f"parsed {max(parsed):,} characters"
        bar.focus()
        await pilot.press("end")
        await pilot.pause()
        assert "Part 19999" in view.answer.source
        assert max(parsed) <= ANSWER_PAGE * SLACK + 100
        # Copy takes the answer exactly as stored, every page of it.
        await pilot.press("y")
        assert app.clipboard == content


def test_a_markdown_page_that_starts_inside_a_code_fence_is_still_code():
    from glmchat.ui.markdown_render import Code, parse_blocks

    fence = "~~~~ js\n" + "".join(f"let v{i} = {i};\n\n" for i in range(3_000)) + "~~~~\n"
    text = "Intro.\n\n" + fence + "After the code.\n"
    pages = Pages(text, 2_000, markdown=True)
    assert pages.count > 5
    middle = pages.page(3)
    assert middle.startswith("~~~~ js\n"), "the open fence is put back in front"
    [block] = parse_blocks(middle)
    assert isinstance(block, Code)
    last = pages.page(pages.count - 1)
    assert last.endswith("After the code.\n")
    code, after = parse_blocks(last)
    assert isinstance(code, Code), "the fence closes on this page: code, then text again"
    assert "After the code." in after.content.plain
    assert "".join(text[slice(*pages.bounds(i))] for i in range(pages.count)) == text


async def test_a_huge_user_message_is_shown_by_pages(glm_server, wrapped):
    message = numbered(20_000, "message")
    open_huge(user=message)
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        view = app.chat.log_view.mounted_views[-1]
        bar = view.user_pages
        assert bar is not None
        assert len(shown_text(view.user_message)) <= USER_PAGE * SLACK + 100
        assert "message line 0000000" in shown_text(view.user_message)
        assert "message page 1 of" in screen_text(app)
        bar.focus()
        await pilot.press("end")
        await pilot.pause()
        assert "message line 0019999" in shown_text(view.user_message)
        assert max(wrapped, default=0) <= USER_PAGE * SLACK + 100
        await pilot.press("y")
        assert app.clipboard == message


async def test_a_huge_live_reasoning_is_paged_when_the_answer_starts(glm_server, wrapped):
    reasoning = [f"thought {i:06d} goes on and on.\n" for i in range(3_000)]  # about 100 KB
    glm_server.enqueue(Reply(reasoning=reasoning, content="Done.", chunk_tokens=50))
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        chat = app.chat
        chat.composer.set_text("think a lot")
        await pilot.press("enter")
        await app.workers.wait_for_complete()
        await pilot.pause()
        view = chat.log_view.mounted_views[-1]
        assert view.reasoning_pages is not None and view.reasoning_pages.is_mounted
        wrapped.clear()
        view.set_expanded(True)
        await pilot.pause()
        assert max(wrapped) <= REASONING_PAGE * SLACK
        assert view.reasoning._full_text().startswith("thought 000000")
        await wait_for(pilot, lambda: view.reasoning_pages.display)
        assert "reasoning page 1 of" in screen_text(app)


def test_the_bar_says_where_it_is_and_moves_only_within_the_text():
    pages = Pages("x\n" * 50_000, 10_000)
    bar = PageBar(pages, what="answer")
    assert "answer page 1 of 10 (10 KB of 100 KB)" in bar.render().plain
    bar.show(99)
    assert bar.page == 9
    bar.show(-3)
    assert bar.page == 0


async def test_the_page_bar_actions_are_in_the_command_palette(glm_server):
    open_huge(reasoning=numbered(2_000, "r"))
    app = make_app(glm_server)
    async with app.run_test(size=SIZE) as pilot:
        view = app.chat.log_view.mounted_views[-1]
        view.set_expanded(True)
        bar = view.reasoning_pages
        bar.focus()
        await pilot.pause()
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        assert {"Next page", "Previous page", "First page", "Last page", "Copy the whole reasoning"} <= set(commands)
        commands["Last page"].callback()
        assert bar.page == bar.pages.count - 1
        app.chat.composer.focus_prompt()
        await pilot.pause()
        assert "Next page" not in {c.title for c in app.get_system_commands(app.screen)}
