"""Hostile model text for the Markdown export, and a check that rendered HTML holds nothing active.

Used by tests/test_export_hostile.py with several renderers (markdown-it-py as GFM-like
CommonMark with raw HTML on, Python-Markdown plain and with its "extra" extensions,
mistune).
"""

from __future__ import annotations

from html.parser import HTMLParser

PAYLOADS: list[str] = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<svg onload=alert(1)>",
    "<iframe src=javascript:alert(1)></iframe>",
    '<a href="javascript:alert(1)">click</a>',
    "[click](javascript:alert(1))",
    "[click](JaVaScRiPt:alert(1))",
    "[click](  javascript:alert(1) )",
    "![x](javascript:alert(1))",
    "[ref]\n\n[ref]: javascript:alert(1)",
    "<javascript:alert(1)>",
    "[x](data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==)",
    "[x](vbscript:msgbox(1))",
    "&lt;img src=x onerror=alert(1)&gt;",
    "&#60;img src=x onerror=alert(1)&#62;",
    "&#x3C;script&#x3E;alert(1)&#x3C;/script&#x3E;",
    "[x](&#106;avascript:alert(1))",
    "[x](java&#x09;script:alert(1))",
    "</details><img src=x onerror=alert(1)><details>",
    "</summary></details>\n\n<img src=x onerror=alert(1)>",
    "<details><summary>nested</summary><img src=x onerror=alert(1)></details>",
    "`<img src=x onerror=alert(1)>`",
    "``<img src=x onerror=alert(1)>``",
    "\\`<img src=x onerror=alert(1)>`",
    "`a\\`<img src=x onerror=alert(1)>`",
    "```\n<img src=x onerror=alert(1)>\n```",
    "```html\n\n<img src=x onerror=alert(1)>\n\n```",
    "~~~\n</details>\n<script>alert(1)</script>\n~~~",
    "    <img src=x onerror=alert(1)>",
    "> <img src=x onerror=alert(1)>",
    "- <img src=x onerror=alert(1)>",
    "<div\nonmouseover=alert(1)>hover</div>",
    "<IMG SRC=x ONERROR=alert(1)>",
    "<img/src=x/onerror=alert(1)>",
    "<<img src=x onerror=alert(1)>>",
    "<!-- --><img src=x onerror=alert(1)><!-- -->",
    "<style>body{background:url(javascript:alert(1))}</style>",
    "<form action=javascript:alert(1)><input type=submit></form>",
    '<math><mtext><img src=x onerror=alert(1)></mtext></math>',
    "[a](<javascript:alert(1)>)",
    "*<img src=x onerror=alert(1)>*",
    "| a |\n|---|\n| <img src=x onerror=alert(1)> |",
    "Setext\n===\n<img src=x onerror=alert(1)>",
    "<https://example.com/\"onmouseover=\"alert(1)>",
    "[x](https://example.com \"title\" onmouseover=alert(1))",
]

SAFE_TAGS = frozenset({
    "p", "em", "strong", "code", "pre", "blockquote", "ul", "ol", "li", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
    "br", "table", "thead", "tbody", "tr", "th", "td", "del", "s", "a", "details", "summary", "div", "span", "sup",
    "dl", "dt", "dd", "abbr",
})
SAFE_SCHEMES = ("http://", "https://", "mailto:", "#")


class _Scan(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.problems: list[str] = []
        self.details = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in SAFE_TAGS:
            self.problems.append(f"<{tag}>")
        if tag == "details":
            self.details += 1
        for name, value in attrs:
            if name.startswith("on") or name in ("style", "srcdoc", "formaction"):
                self.problems.append(f"<{tag} {name}=…>")
            if name in ("href", "src", "action", "data") and value is not None:
                target = "".join(value.split()).lower()
                if target and not target.startswith(SAFE_SCHEMES) and ":" in target.split("/")[0]:
                    self.problems.append(f"<{tag} {name}={value!r}>")


def active_elements(html: str) -> tuple[list[str], int]:
    """(what in `html` could run or load something, the number of <details> opened)."""
    scan = _Scan()
    scan.feed(html)
    scan.close()
    return scan.problems, scan.details


def renderers() -> dict[str, object]:
    """name -> callable(markdown) -> html, for every renderer installed."""
    out: dict[str, object] = {}
    from markdown_it import MarkdownIt

    gfm = MarkdownIt("commonmark", {"html": True}).enable("table").enable("strikethrough")
    out["markdown-it"] = gfm.render
    try:
        import markdown
    except ImportError:  # pragma: no cover - a test extra
        pass
    else:
        out["python-markdown"] = lambda text: markdown.markdown(text)
        out["python-markdown-extra"] = lambda text: markdown.markdown(text, extensions=["extra"])
    try:
        import mistune
    except ImportError:  # pragma: no cover - a test extra
        pass
    else:
        out["mistune"] = mistune.create_markdown(escape=False, plugins=["table", "strikethrough"])
    return out
