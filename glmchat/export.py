"""Export sessions as Markdown or JSON, and import them back from JSON.

Markdown is for reading: model text is untrusted, so control characters are made
inert, raw HTML is escaped, unsafe links are not clickable, and every text sits
in a construct it cannot break out of (a fence longer than any backtick run in
it, or Markdown checked with a CommonMark parser and fenced if the check fails).

JSON is for keeping: every field, every text exact (lone surrogates included),
inside a versioned envelope. `from_json` gives back a Session whose `to_dict()`
equals the original's, or raises `SessionImportError` with a one-line reason.

Nothing here touches files: callers write the returned text where the user said.
"""

from __future__ import annotations

import json
import json.scanner
import re
import unicodedata
from datetime import datetime, timezone
from functools import lru_cache
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from glmchat.errors import GlmChatError
from glmchat.sanitize import inert, redact, safe_link
from glmchat.sanity import Invalid, check_object
from glmchat.session import Session, SessionTree, Step, Turn, TurnStatus
from glmchat.usage import estimate_tokens, host_of, turn_cockpit, turn_cost

FORMAT = "glmchat.session"
"""The `format` of a JSON export."""
VERSION = 2
"""The newest JSON export version this glmchat writes and reads (1: a list of turns; 2: a tree of turns made of steps)."""


class SessionImportError(GlmChatError):
    """A JSON file that cannot be imported: not JSON, truncated, not ours, too new, malformed."""


# -- text helpers -----------------------------------------------------------------------------

_SURROGATE = re.compile("[\ud800-\udfff]")


def _readable(text: str) -> str:
    """Text safe to show and to encode: controls made inert, lone surrogates replaced."""
    return _SURROGATE.sub("\ufffd", inert(text))


_INLINE_SPECIAL = re.compile(r"([\\`*_\[\]<>#!|~&])")


def _inline(text: str) -> str:
    """One line of literal text inside Markdown (a heading, a label): nothing in it is markup."""
    return _INLINE_SPECIAL.sub(r"\\\1", " ".join(_readable(text).split()))


def _html(text: str) -> str:
    """Text escaped for HTML: every `&`, `<` and `>` as an entity (shown as itself by every renderer)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_INFO = re.compile(r"[A-Za-z0-9_+#.-]{1,32}")


def _literal_block(text: str, info: str = "") -> str:
    """A block that shows `text` exactly as written, in every Markdown renderer.

    An HTML `<pre><code>` block with the text escaped, not a ``` fence: CommonMark,
    GFM, markdown-it, mistune and Python-Markdown all pass a `<pre>` block through
    until `</pre>` (blank lines included), while plain Python-Markdown does not know
    fences and would read raw HTML between blank lines inside one. The escaped text
    cannot hold `</pre>`, so nothing in it ends the block or opens a tag.
    """
    body = _html(_readable(text))
    language = f' class="language-{info}"' if info and _INFO.fullmatch(info) else ""
    return f"<pre><code{language}>{body}</code></pre>\n"


# -- Markdown from model text --------------------------------------------------------------------

_FENCE_OPEN = re.compile(r"^ {0,3}(`{3,}|~{3,})(.*)$")
_TAG_START = re.compile(r"<(?=[A-Za-z/!?])")
_CODE_SPAN = re.compile(r"(?<!\\)(`+)(?!`)(.+?)(?<!`)\1(?!`)")
_LINK_DEST = re.compile(r"\]\(\s*<?([^\s)>]*)")
_ATX_HEADING = re.compile(r"^( {0,3})(#{1,6})(?=[ \t]|$)")
_SETEXT_UNDERLINE = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_REF_DEF = re.compile(r"^( {0,3})\[([^\]]+)\]:\s*<?(\S*?)>?(\s|$)")


def _clickable(url: str | None) -> bool:
    """Links kept clickable: web and mail links, and anchors within the document."""
    if not url:
        return True
    return safe_link(url) or url.startswith("#")


def _escape_prose(line: str) -> str:
    """Outside inline code: escape what starts HTML, and defuse links to unsafe targets."""

    def prose(part: str) -> str:
        part = _TAG_START.sub("&lt;", part)

        def link(match: re.Match[str]) -> str:
            if _clickable(match.group(1)):
                return match.group(0)
            return "]\\(" + match.group(0)[2:]

        return _LINK_DEST.sub(link, part)

    out = []
    last = 0
    for match in _CODE_SPAN.finditer(line):
        out.append(prose(line[last : match.start()]))
        out.append(_code_span(match))
        last = match.end()
    out.append(prose(line[last:]))
    result = "".join(out)
    ref = _REF_DEF.match(result)
    if ref and not _clickable(ref.group(3)):
        result = ref.group(1) + "\\" + result[len(ref.group(1)) :]
    return result


def _code_span(match: re.Match[str]) -> str:
    """Inline code as written, or as an escaped `<code>` element when it holds `<` or `&`.

    Inside a raw HTML block (Python-Markdown keeps all of `<details>` raw) a backtick
    span is not code, so a `<` in it would be a live tag; `<code>&lt;…</code>` reads
    the same in every renderer.
    """
    body = match.group(2)
    if "<" not in body and "&" not in body:
        return match.group(0)
    if len(body) > 2 and body[0] == " " and body[-1] == " " and body.strip(" "):
        body = body[1:-1]  # CommonMark strips one space on each side
    return f"<code>{_html(body)}</code>"


def _sanitize_markdown(text: str) -> str:
    """Model Markdown made safe to embed: inert, HTML escaped, unsafe links defused, fences closed."""
    lines = _readable(text).split("\n")
    out: list[str] = []
    fence: str | None = None  # the opening run of the fenced block we are in
    code: list[str] = []
    indent = info = ""
    for line in lines:
        if fence is None:
            opened = _FENCE_OPEN.match(line)
            if opened and not (opened.group(1)[0] == "`" and "`" in opened.group(2)):
                # A fenced block becomes a <pre> block (see _literal_block): fences are
                # not Markdown everywhere, and inside <details> nothing is.
                fence = opened.group(1)
                indent = line[: len(line) - len(line.lstrip(" "))]
                info = opened.group(2).strip().split(" ")[0] if opened.group(2).strip() else ""
                code = []
                continue
            # Headings of the text sit below the document's own (# title, ## Turn n).
            line = _ATX_HEADING.sub(lambda m: m.group(1) + "#" * min(6, len(m.group(2)) + 2), line)
            if _SETEXT_UNDERLINE.match(line) and out and out[-1].strip():
                out.append("")  # a rule, not an underline that makes the line above a heading
            out.append(_escape_prose(line))
        else:
            stripped = line.strip(" ")
            if (
                len(line) - len(line.lstrip(" ")) <= 3
                and stripped.startswith(fence[0] * len(fence))
                and stripped.rstrip(fence[0]) == ""
            ):
                fence = None
                out.append(indent + _pre(code, info))
                continue
            code.append(line[len(indent) :] if line.startswith(indent) else line.lstrip(" "))
    if fence is not None:
        out.append(indent + _pre(code, info))  # a fence the text never closed ends with it
    return "\n".join(out).rstrip("\n")


def _pre(lines: list[str], info: str) -> str:
    language = f' class="language-{info}"' if info and _INFO.fullmatch(info) else ""
    body = _html("\n".join(lines))
    return f"<pre><code{language}>{body}\n</code></pre>" if lines else f"<pre><code{language}></code></pre>"


_SENTINEL = "glmchat-export-sentinel"
_CODE_HTML = ("<pre><code", "<code>", "</code>")
"""HTML the export writes for code (model text has every `<` escaped, so it cannot make these)."""


@lru_cache(maxsize=1)
def _parser() -> Any:
    try:
        from markdown_it import MarkdownIt
    except ImportError:  # pragma: no cover - rich depends on markdown-it-py
        return None
    md = MarkdownIt("commonmark").enable("table").enable("strikethrough")
    # Report every link as written, so the check below sees javascript: and file:
    # links too (by default the parser silently drops them; other renderers may not).
    md.validateLink = lambda url: True
    return md


def _links_and_html_safe(tokens: list[Any], env: dict[str, Any], allowed_html: tuple[str, ...] = ()) -> bool:
    """No raw HTML (but `allowed_html`), no heading above level 3 but ours, no unsafe link or definition."""
    for ref in env.get("references", {}).values():
        # A definition in one text could serve a link in another: judge it alone.
        if not _clickable(str(ref.get("href") or "")):
            return False
    stack = list(tokens)
    while stack:
        token = stack.pop()
        if token.type in ("html_block", "html_inline") and not token.content.startswith(allowed_html or ("\0",)):
            return False
        if token.type == "link_open" and not _clickable(str(token.attrGet("href") or "")):
            return False
        if token.type == "image" and not _clickable(str(token.attrGet("src") or "")):
            return False
        if token.children:
            stack.extend(token.children)
    return True


def _renders_safely(markdown: str) -> bool:
    """Whether a CommonMark parser finds no raw HTML, no unsafe link, no big heading, nothing left open."""
    md = _parser()
    if md is None:
        return False
    env: dict[str, Any] = {}
    tokens = md.parse(markdown + "\n\n" + _SENTINEL + "\n", env)
    if len(tokens) < 3 or tokens[-2].content != _SENTINEL or tokens[-3].type != "paragraph_open" or tokens[-3].level:
        return False  # the text swallowed what follows it
    if any(t.type == "heading_open" and t.tag in ("h1", "h2") for t in tokens):
        return False
    return _links_and_html_safe(tokens, env, _CODE_HTML)


def _markdown_block(text: str, literal: bool = False) -> str:
    """Model text as Markdown that cannot break the document around it (fenced if in doubt)."""
    if not literal:
        safe = _sanitize_markdown(text)
        if _renders_safely(safe):
            return safe + "\n"
    return _literal_block(text)


_OUR_HTML = ("<details>\n<summary>Thinking", "</details>", *_CODE_HTML)
"""HTML the export writes itself (model text has every `<` escaped, so it cannot make these)."""


def _quote(block: str) -> str:
    return "".join(f"> {line}\n" if line else ">\n" for line in block.rstrip("\n").split("\n"))


# -- Markdown export ------------------------------------------------------------------------------


def _when(timestamp: float | None) -> str:
    try:
        return datetime.fromtimestamp(timestamp, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")  # type: ignore[arg-type]
    except (TypeError, ValueError, OverflowError, OSError):  # None, NaN, or out of the calendar
        return "unknown"


_STATUS_NOTE = {
    TurnStatus.STOPPED: "Stopped by the user; the reply is what had arrived.",
    TurnStatus.INTERRUPTED: "Interrupted: glmchat ended while this reply was streaming; the reply is what was saved.",
    TurnStatus.STREAMING: "Still streaming when exported; the reply is incomplete.",
}


def _status_note(turn: Turn) -> str | None:
    if turn.status == TurnStatus.COMPLETE:
        return None
    if turn.status == TurnStatus.ERROR:
        return "**Error:** " + _inline(turn.error or turn.error_kind or "the request failed")
    if turn.status == TurnStatus.TRUNCATED:
        reason = f" (finish reason: {_inline(turn.finish_reason)})" if turn.finish_reason else ""
        return f"**Truncated** by the host{reason}."
    return _inline(_STATUS_NOTE.get(turn.status, f"Status: {turn.status}"))


def _thinking_summary(turn: Turn, step: Step, index: int) -> str:
    label = "Thinking" if len(turn.steps) == 1 else f"Thinking, step {index + 1}"
    if step.usage.reasoning_tokens is not None:
        tokens = f"{step.usage.reasoning_tokens:,} tokens"
    else:
        tokens = f"~{estimate_tokens(step.reasoning):,} tokens"
    seconds = turn.reasoning_seconds if index == 0 else None
    return f"{label} ({tokens} · {seconds:.1f} s)" if seconds is not None else f"{label} ({tokens})"


def _turn_markdown(number: int, turn: Turn, session: Session, literal: bool) -> str:
    parts = [f"## Turn {number}\n"]
    facts = [(f"thinking {turn.thinking_level}" if turn.thinking_level else "thinking on") if turn.thinking else "thinking off"]
    if (turn.host, turn.model) != (session.host, session.model) and (turn.host or turn.model):
        facts.append(_inline(f"{turn.model} on {turn.host}"))
    facts.append(_when(turn.created_at))
    branch = session.branches.get(turn.id)
    if branch is not None:
        facts.append(f"branch {branch.position} of {branch.count}")
    figures = turn_cockpit(turn)  # tokens, cache hit, cost: as the turn's footer shows them
    if figures:
        facts.append(figures)
    parts.append("*" + " · ".join(facts) + "*\n")
    parts.append("**You:**\n")
    parts.append(_literal_block(turn.user_text, "text"))
    if turn.content or any(step.tool_calls for step in turn.steps):
        parts.append("**Assistant:**\n")
    for index, step in enumerate(turn.steps):
        if step.reasoning:
            # The summary holds only numbers; the reasoning is a quoted block, ended
            # by a blank line before the closing tag, so nothing in it can close the
            # <details> early.
            parts.append(
                f"<details>\n<summary>{_thinking_summary(turn, step, index)}</summary>\n\n"
                f"{_quote(_markdown_block(step.reasoning, literal))}\n</details>\n"
            )
        if step.content:
            parts.append(_markdown_block(step.content, literal))
        for position, call in enumerate(step.tool_calls):
            name = " ".join(_readable(call.name or "?").split()).replace("`", "'")
            parts.append(f"Tool call `{name}`:\n")
            parts.append(_literal_block(call.arguments, "json"))
            if position < len(step.tool_results):
                result = step.tool_results[position]
                parts.append("Result" + (" (error)" if result.is_error else "") + ":\n")
                parts.append(_literal_block(result.content, "text"))
    note = _status_note(turn)
    if note:
        parts.append(f"> {note}\n")
    return "\n".join(parts)


def to_markdown(session: Session) -> str:
    """The session as a Markdown document for people: metadata, then each turn (see `iter_markdown`)."""
    return "".join(iter_markdown(session))


DEMO_NOTE = " (the built-in demo: glmchat wrote these answers itself, offline; no model was asked)"
"""Said in an export of a demo session, so nobody takes its answers for a model's."""


def iter_markdown(session: Session, turns: Callable[[], Iterable[Turn]] | None = None) -> Iterator[str]:
    """The Markdown document of a session, in pieces: the header, then one piece per turn.

    Reasoning is folded in ``<details>``; the user's text is a literal block; the
    answer is Markdown made inert (literal when a CommonMark check of it fails).
    Each turn's piece is checked on its own as it is made (our heading, our folds,
    safe links only) and made literal if texts in it interact, so a session of
    any length is written in O(one turn) of memory.

    Args:
        session: The session (its settings and title; its turns unless `turns` is given).
        turns: Called twice for the turns, oldest first: once for the totals in the
            header, once to write them (a store can page them in, `Store.iter_turns`).
    """
    source = turns if turns is not None else (lambda: session.turns)
    totals = _Totals()
    for turn in source():
        totals.add(turn)
    yield f"# {_inline(session.title or 'Untitled chat')}\n"
    meta = [
        f"- **Host:** {_inline(session.host)}" + (DEMO_NOTE if session.host == "demo" else ""),
        f"- **Model:** {_inline(session.model)}",
        f"- **Created:** {_when(session.created_at)}",
        f"- **Updated:** {_when(session.updated_at)}",
        f"- **Turns:** {totals.count}",
    ]
    tokens = totals.token_line()
    if tokens:
        meta.append(f"- **Tokens:** {tokens}")
    if totals.cost is not None:
        meta.append(f"- **Cost:** ${totals.cost:.4f}")
    meta.append(f"- **Preserved thinking:** {'on' if session.preserve_thinking else 'off'}")
    if session.branches:
        meta.append("- **Branches:** this is the current branch; the session has others (the JSON export keeps them all)")
    yield "\n" + "\n".join(meta) + "\n"
    if session.system_prompt:
        yield "\n**System prompt:**\n"
        yield "\n" + _literal_block(session.system_prompt, "text")
    for number, turn in enumerate(source(), 1):
        piece = _turn_markdown(number, turn, session, literal=False)
        if not _turn_is_sound(piece, number):
            piece = _turn_markdown(number, turn, session, literal=True)
        yield "\n---\n\n" + piece


def _turn_is_sound(markdown: str, number: int) -> bool:
    """One turn's Markdown parses as we built it: its heading, our folds and code, safe links only."""
    md = _parser()
    if md is None:
        return False
    env: dict[str, Any] = {}
    tokens = md.parse("---\n\n" + markdown, env)
    headings = [
        (t.tag, tokens[i + 1].content)
        for i, t in enumerate(tokens)
        if t.type == "heading_open" and t.tag in ("h1", "h2")
    ]
    if headings != [("h2", f"Turn {number}")]:
        return False
    return _links_and_html_safe(tokens, env, _OUR_HTML)


class _Totals:
    """What the header sums over all turns, gathered one turn at a time."""

    def __init__(self) -> None:
        self.count = 0
        self.prompt: int | None = None
        self.completion: int | None = None
        self.cached: int | None = None
        self.reasoning: int | None = None
        self.cost: float | None = None

    def add(self, turn: Turn) -> None:
        self.count += 1
        usage = turn.usage
        self.prompt = _plus(self.prompt, usage.prompt_tokens)
        self.completion = _plus(self.completion, usage.completion_tokens)
        self.cached = _plus(self.cached, usage.cached_tokens)
        self.reasoning = _plus(self.reasoning, usage.reasoning_tokens)
        self.cost = _plus(self.cost, turn_cost(turn, host_of(turn)))

    def token_line(self) -> str | None:
        parts = []
        if self.prompt is not None:
            hit = f", {self.cached / self.prompt:.0%} cache hit" if self.cached is not None and self.prompt else ""
            parts.append(f"{self.prompt:,} prompt" + (f" ({self.cached:,} cached{hit})" if self.cached is not None else ""))
        elif self.cached is not None:
            parts.append(f"{self.cached:,} cached")
        if self.completion is not None:
            parts.append(
                f"{self.completion:,} completion" + (f" ({self.reasoning:,} reasoning)" if self.reasoning is not None else "")
            )
        elif self.reasoning is not None:
            parts.append(f"{self.reasoning:,} reasoning")
        return " · ".join(parts) if parts else None


def _plus(total: Any, value: Any) -> Any:
    if value is None:
        return total
    return value if total is None else total + value


# -- JSON export and import ---------------------------------------------------------------------

# Characters written as \u escapes although JSON allows them raw: lone surrogates
# (UTF-8 cannot hold them), DEL and C1 controls (a terminal may act on them),
# and the line separators JavaScript chokes on.
_JSON_ESCAPE = re.compile("[\ud800-\udfff\x7f-\x9f\u2028\u2029]")


def to_json(tree: SessionTree) -> str:
    """Everything in the session, as a versioned JSON document (exact text, JSON-escaped).

    A surrogate code point in a text is written as its own ``\\u`` escape, so a
    lone half, or two halves that happen to sit side by side, come back as they
    were (`from_json` reads escaped pairs as two code points; real characters
    outside the BMP are written raw).
    """
    from glmchat import __version__

    envelope = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generator": f"glmchat {__version__}",
        # Exact text, but never a known API key (nor a piece of one): a key a host echoed
        # into an answer must not leave in a file.
        "session": _without_secrets(
            {**tree.session.to_dict(with_turns=False), "head": tree.head, "turns": [t.to_dict() for t in tree.turns]}
        ),
    }
    text = json.dumps(envelope, ensure_ascii=False, indent=2)
    return _JSON_ESCAPE.sub(lambda m: f"\\u{ord(m.group()):04x}", text) + "\n"


def _without_secrets(value: Any) -> Any:
    """Every string in a JSON-ready tree passed through `redact` (a no-op when no key is known)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {_without_secrets(k): _without_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_secrets(v) for v in value]
    return value


# An escaped high surrogate right after... an escaped low one: json.loads would
# merge them into one character; our exports mean two code points.
_ESCAPED_PAIR = re.compile(r"\\u[dD][89abAB][0-9a-fA-F]{2}\\u[dD][c-fC-F][0-9a-fA-F]{2}")
_STRING_CHUNK = re.compile(r'([^"\\\x00-\x1f]*)(["\\\x00-\x1f])')
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}


def _scanstring_exact(s: str, end: int, strict: bool = True) -> tuple[str, int]:
    """A JSON string body decoded with every \\uXXXX as one code point (no pair merging)."""
    chunks: list[str] = []
    while True:
        match = _STRING_CHUNK.match(s, end)
        if match is None:
            raise json.JSONDecodeError("Unterminated string starting at", s, end - 1)
        content, terminator = match.groups()
        end = match.end()
        if content:
            chunks.append(content)
        if terminator == '"':
            return "".join(chunks), end
        if terminator != "\\":
            if strict:
                raise json.JSONDecodeError("Invalid control character at", s, end - 1)
            chunks.append(terminator)
            continue
        escape = s[end : end + 1]
        if escape == "u":
            digits = s[end + 1 : end + 5]
            if len(digits) != 4 or not all(c in "0123456789abcdefABCDEF" for c in digits):
                raise json.JSONDecodeError("Invalid \\uXXXX escape", s, end - 1)
            chunks.append(chr(int(digits, 16)))
            end += 5
        elif escape in _SIMPLE_ESCAPES:
            chunks.append(_SIMPLE_ESCAPES[escape])
            end += 1
        else:
            raise json.JSONDecodeError("Invalid \\escape", s, end - 1)


_SPACE = re.compile(r"[ \t\n\r]*")


def _parse_object_exact(
    s_and_end: tuple[str, int], strict: bool, scan_once: Any, *_hooks: Any
) -> tuple[dict[str, Any], int]:
    """A JSON object whose keys, too, keep escaped surrogate halves apart."""
    s, end = s_and_end
    out: dict[str, Any] = {}
    end = _SPACE.match(s, end).end()
    if s[end : end + 1] == "}":
        return out, end + 1
    while True:
        if s[end : end + 1] != '"':
            raise json.JSONDecodeError("Expecting property name enclosed in double quotes", s, end)
        key, end = _scanstring_exact(s, end + 1, strict)
        end = _SPACE.match(s, end).end()
        if s[end : end + 1] != ":":
            raise json.JSONDecodeError("Expecting ':' delimiter", s, end)
        end = _SPACE.match(s, end + 1).end()
        try:
            out[key], end = scan_once(s, end)
        except StopIteration as stop:
            raise json.JSONDecodeError("Expecting value", s, stop.value) from None
        end = _SPACE.match(s, end).end()
        delimiter = s[end : end + 1]
        if delimiter == "}":
            return out, end + 1
        if delimiter != ",":
            raise json.JSONDecodeError("Expecting ',' delimiter", s, end)
        end = _SPACE.match(s, end + 1).end()


class _ExactDecoder(json.JSONDecoder):
    """json.JSONDecoder whose strings keep escaped surrogate halves apart (pure Python: slow)."""

    def __init__(self) -> None:
        super().__init__()
        self.parse_string = _scanstring_exact
        self.parse_object = _parse_object_exact
        self.scan_once = json.scanner.py_make_scanner(self)


def _loads(text: str) -> Any:
    if _ESCAPED_PAIR.search(text):
        return _ExactDecoder().decode(text)
    return json.loads(text)


def _bad(where: str, what: str) -> SessionImportError:
    return SessionImportError(f"Not a valid glmchat session file: {where} {what}.")


def _tree_from(data: Any, version: int) -> SessionTree:
    """Check the `session` object of an export against the session model and build the tree it describes."""
    try:
        check_object(data, Session, "session", skip=("turns", "branches"))
        if "turns" not in data:
            raise Invalid("session", 'has no "turns"')
        if not isinstance(data["turns"], list):
            raise Invalid("session.turns", f"should be a list, not {_json_type(data['turns'])}")
        for i, turn in enumerate(data["turns"]):
            where = f"session.turns[{i}]"
            if version == 1:
                # A version 1 turn holds its one step's fields itself.
                check_object(turn, Step, where)
                check_object(turn, Turn, where, skip=("steps",))
            else:
                check_object(turn, Turn, where)
    except Invalid as exc:
        raise _bad(exc.where, exc.what) from None
    if not data["id"]:
        raise _bad("session.id", "is empty")
    seen: set[str] = set()
    for i, turn in enumerate(data["turns"]):
        if not turn["id"] or turn["id"] in seen:
            raise _bad(f"session.turns[{i}].id", "is empty or repeated")
        seen.add(turn["id"])
    try:
        turns = [Turn.from_dict(t) for t in data["turns"]]
        session = Session.from_dict({k: v for k, v in data.items() if k not in ("turns", "head")})
    except (TypeError, ValueError, KeyError) as exc:  # a shape the checks above did not foresee
        raise SessionImportError(f"Not a valid glmchat session file: {exc}.") from None
    if version == 1:
        # A list of turns is one path: each follows the one before.
        session.turns = turns
        return SessionTree.of(session)
    head = data.get("head")
    if head is not None and head not in seen:
        raise _bad("session.head", "names no turn of the file")
    for i, turn in enumerate(turns):
        if turn.parent_id is not None and turn.parent_id not in seen:
            raise _bad(f"session.turns[{i}].parent_id", "names no turn of the file")
    tree = SessionTree(session=session, turns=turns, head=head)
    session.turns = tree.path_to(head)
    return tree


def _json_type(value: Any) -> str:
    from glmchat.sanity import json_type

    return json_type(value)


_PARTIAL_TOKEN = re.compile(r"[\w.+\-\\]*")


def from_json(text: str | bytes) -> SessionTree:
    """The session (its whole tree of turns) in a JSON export, of this version or an earlier one.

    Raises:
        SessionImportError: The text is not JSON, is cut short, is not a glmchat
            session export, comes from a newer glmchat, or has fields of the
            wrong type. The message is one line and says which.
    """
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SessionImportError(f"Not a glmchat session file: not UTF-8 text (byte {exc.start}).") from None
    text = text.removeprefix("\ufeff")
    if not text.strip():
        raise SessionImportError("Not a glmchat session file: it is empty.")
    try:
        data = _loads(text)
    except json.JSONDecodeError as exc:
        # Cut short: the error is in the last, unfinished token (or an open string).
        if exc.msg.startswith("Unterminated string") or _PARTIAL_TOKEN.fullmatch(text[exc.pos :].rstrip()):
            raise SessionImportError(
                f"The session file is truncated: its JSON stops early (line {exc.lineno}). "
                "Export the session again."
            ) from None
        raise SessionImportError(
            f"Not a glmchat session file: invalid JSON at line {exc.lineno}, column {exc.colno} ({exc.msg})."
        ) from None
    except RecursionError:
        raise SessionImportError("Not a glmchat session file: the JSON is nested too deeply.") from None
    except ValueError:
        # Python refuses to read integers of more than 4,300 digits (a guard against slow parsing).
        raise SessionImportError("Not a glmchat session file: a number in it has thousands of digits.") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise SessionImportError(f'Not a glmchat session file: it has no "format": "{FORMAT}".')
    version = data.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise SessionImportError(
            f"Not a valid glmchat session file: version should be a whole number ≥ 1, not {version!r}."
        )
    if version > VERSION:
        raise SessionImportError(
            f"This session file comes from a newer glmchat (format version {version}; this glmchat reads up to "
            f"{VERSION}). Update glmchat to import it."
        )
    return _tree_from(data.get("session"), version)


# -- file names -------------------------------------------------------------------------------

_WINDOWS_RESERVED = frozenset(
    {"CON", "PRN", "AUX", "NUL", "CONIN$", "CONOUT$"}
    | {f"COM{i}" for i in range(10)}
    | {f"LPT{i}" for i in range(10)}
    | {f"COM{c}" for c in "¹²³"}
    | {f"LPT{c}" for c in "¹²³"}
)
_UNSAFE_IN_NAMES = set('/\\:*?"<>|')
_MAX_NAME_BYTES = 120


def safe_filename(title: str, ext: str = "md") -> str:
    """A file name made from a session title, safe on every common file system.

    No path separators, no ``..``, no control or invisible formatting characters
    (bidi overrides could disguise the extension), no leading dot or dash (hidden
    files, command-line options), no trailing dot or space, no Windows reserved
    name (CON, NUL, COM1...); at most about 120 bytes; never empty.
    """
    kept = []
    for ch in unicodedata.normalize("NFC", _SURROGATE.sub(" ", title)):
        category = unicodedata.category(ch)
        if category[0] in ("C", "Z") or ch in _UNSAFE_IN_NAMES or ch.isspace():
            kept.append(" ")
        else:
            kept.append(ch)
    name = "-".join("".join(kept).split())
    name = re.sub(r"\.{2,}", ".", name)
    name = re.sub(r"-{2,}", "-", name)
    name = name.strip(".-_ ")
    encoded = name.encode("utf-8")
    if len(encoded) > _MAX_NAME_BYTES:
        name = encoded[:_MAX_NAME_BYTES].decode("utf-8", "ignore").rstrip(".-_ ")
    if not name:
        name = "chat"
    if name.split(".")[0].upper() in _WINDOWS_RESERVED:
        name = f"chat-{name}"
    suffix = re.sub(r"[^A-Za-z0-9]", "", ext)[:10]
    return f"{name}.{suffix}" if suffix else name

