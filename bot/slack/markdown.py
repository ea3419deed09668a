"""The model's Markdown, made safe for Slack and cut so that long answers arrive whole.

The model writes Markdown, and its words are untrusted (DESIGN.md §7): whatever it writes must
arrive as the characters it wrote, never as `<!channel>`, `<@U…>`, `<!subteam^…>` or a link
whose label hides where it goes. Two renderings are made of one text:

- `to_mrkdwn`: Slack's own mrkdwn, for a message's `text` (notifications, old clients). Every
  `&`, `<`, `>` the model wrote is escaped, in code too, because Slack reads `<…>` everywhere
  in mrkdwn; the only `<…>` in the result are links that show their own URL.
- `safe_markdown` and `MarkdownSanitizer`: the same Markdown kept as Markdown, for `markdown`
  blocks and streamed `markdown_text`. Outside code `&`, `<`, `>` become entities; inside code
  they stay, since Markdown shows code as written. Where it is not certain that Markdown will
  read a span as code, the text is escaped: a wrong guess then costs a visible `&lt;`, never a
  ping.

Pure: no Slack client, no I/O.
"""

import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bot.slack.mrkdwn import FALLBACK_TEXT_LIMIT, escape, truncate

MARKDOWN_LIMIT = 12_000
"""Slack's limit for the text of all `markdown` blocks of one message, together."""

EMPTY_ANSWER = "(empty answer)"

_PUNCTUATION = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")
_LINK_SCHEME = re.compile(r"https?://|mailto:", re.IGNORECASE)
_AUTOLINK_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{1,31}:[^\s<>]*")
_AUTOLINK_EMAIL = re.compile(r"[^\s<>@()\[\]\\,;:\"]+@[A-Za-z0-9](?:[A-Za-z0-9.\-]*[A-Za-z0-9])?")
_BARE_URL = re.compile(r"https?://[^\s<>|`]+", re.IGNORECASE)
_BARE_URL_AFTER = frozenset(" \t\n*_~(")
_URL_TRAILING = "?!.,:;*_~'\""
_TICKS_OR_LINE_END = re.compile(r"`+|\n")
_MAX_LINK = 2000
"""A link longer than this stays text: it bounds what a streamed piece holds back."""
_URL_SAFE = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#@!$'*+,;=%"
)
_MD_SPECIAL = frozenset("\\`*_[]~|")
_ESCAPES = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _entities(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char)[0] in "PS"


def _columns(whitespace: str) -> int:
    return len(whitespace.expandtabs(4))


def _percent(char: str) -> str:
    return "".join(f"%{byte:02X}" for byte in char.encode())


def _same_target(label: str, url: str) -> bool:
    """A label that is its URL (or, for mail, its address) hides nothing."""
    return label == url or url.lower() == "mailto:" + label.lower()


# -- links -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Link:
    label: str
    url: str
    end: int


class _Wait:
    """The text so far cannot decide: a streamed piece holds back and waits for more."""


_WAIT = _Wait()


def _bounded(text: str, start: int, at: int, final: bool) -> _Wait | None:
    """At `at`, the scan ran out of text: wait for more unless nothing more can come or the
    bound is reached (then the construct is not one)."""
    if at >= start + _MAX_LINK or final:
        return None
    return _WAIT


def _closing_ticks(text: str, start: int, run: int) -> int | None:
    """Where the backtick run of length `run` that closes a code span opened before `start`
    begins, on the same line; None when there is none."""
    at = start
    while True:
        found = _TICKS_OR_LINE_END.search(text, at)
        if found is None or found.group() == "\n":
            return None
        if len(found.group()) == run:
            return found.start()
        at = found.end()


def _parse_link(text: str, start: int, final: bool) -> _Link | _Wait | None:
    """`[label](url "title")` or `![alt](url)` at `start`, on one line, as CommonMark reads it
    (labels may nest brackets; a code span in the label hides its brackets)."""
    at = start + (2 if text.startswith("![", start) else 1)
    depth = 1
    while True:
        if at >= len(text) or at >= start + _MAX_LINK:
            return _bounded(text, start, at, final)
        char = text[at]
        if char == "\n":
            return None
        if char == "\\":
            if at + 1 >= len(text):
                return _bounded(text, start, at + 1, final)
            at += 2 if text[at + 1] in _PUNCTUATION else 1
            continue
        if char == "`":
            run = _run_length(text, at, "`")
            if at + run >= len(text) and not final:
                return _bounded(text, start, at + run, final)
            close = _closing_ticks(text, at + run, run)
            if close is None and "\n" not in text[at:] and not final:
                return _bounded(text, start, len(text), final)
            at = at + run if close is None else close + run
            continue
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
            if depth == 0:
                break
        at += 1
    label_end = at
    label = text[text.index("[", start) + 1 : label_end]
    return _parse_destination(text, start, label, label_end + 1, final)


def _parse_destination(
    text: str, start: int, label: str, at: int, final: bool
) -> _Link | _Wait | None:
    def more(where: int) -> _Wait | None:
        return _bounded(text, start, where, final)

    if at >= len(text):
        return more(at)
    if text[at] != "(":
        return None
    at = _skip_spaces(text, at + 1)
    if at >= len(text):
        return more(at)
    url_chars: list[str] = []
    if text[at] == "<":
        at += 1
        while True:
            if at >= len(text) or at >= start + _MAX_LINK:
                return more(at)
            char = text[at]
            if char in "<\n":
                return None
            if char == ">":
                at += 1
                break
            if char == "\\" and at + 1 < len(text) and text[at + 1] in _PUNCTUATION:
                url_chars.append(text[at + 1])
                at += 2
                continue
            url_chars.append(char)
            at += 1
    else:
        parens = 0
        while True:
            if at >= len(text) or at >= start + _MAX_LINK:
                return more(at)
            char = text[at]
            if char.isspace() or ord(char) < 32:
                break
            if char == "\\":
                if at + 1 >= len(text):
                    return more(at + 1)
                if text[at + 1] in _PUNCTUATION:
                    url_chars.append(text[at + 1])
                    at += 2
                    continue
            if char == "(":
                parens += 1
            elif char == ")":
                if parens == 0:
                    break
                parens -= 1
            url_chars.append(char)
            at += 1
    spaced = _skip_spaces(text, at)
    if spaced >= len(text):
        return more(spaced)
    if spaced > at and text[spaced] in "\"'(":
        closing = ")" if text[spaced] == "(" else text[spaced]
        at = spaced + 1
        while True:
            if at >= len(text) or at >= start + _MAX_LINK:
                return more(at)
            char = text[at]
            if char == "\n":
                return None
            if char == "\\":
                at += 2
                continue
            if char == closing:
                break
            at += 1
        spaced = _skip_spaces(text, at + 1)
        if spaced >= len(text):
            return more(spaced)
    if text[spaced] != ")":
        return None
    return _Link(label=label, url="".join(url_chars), end=spaced + 1)


def _skip_spaces(text: str, at: int) -> int:
    while at < len(text) and text[at] in " \t":
        at += 1
    return at


def _run_length(text: str, at: int, char: str) -> int:
    end = at
    while end < len(text) and text[end] == char:
        end += 1
    return end - at


def _autolink(text: str, start: int, final: bool) -> _Link | _Wait | None:
    """`<https://…>` or `<someone@example.com>` at `start`."""
    end = start + 1
    while end < len(text) and text[end] not in "<> \t\n":
        end += 1
        if end >= start + _MAX_LINK:
            return None
    if end >= len(text):
        return _bounded(text, start, end, final)
    if text[end] != ">":
        return None
    body = text[start + 1 : end]
    if _AUTOLINK_URL.fullmatch(body):
        return _Link(label=body, url=body, end=end + 1)
    if _AUTOLINK_EMAIL.fullmatch(body):
        return _Link(label=body, url="mailto:" + body, end=end + 1)
    return None


def _bare_url(text: str, at: int) -> str | None:
    """A URL written as text, as GFM finds them: after a space or an opening mark, without
    the punctuation that ends the sentence around it."""
    if at > 0 and text[at - 1] not in _BARE_URL_AFTER:
        return None
    found = _BARE_URL.match(text, at)
    if found is None:
        return None
    url = found.group().rstrip(_URL_TRAILING)
    while url.endswith(")") and url.count(")") > url.count("("):
        url = url[:-1].rstrip(_URL_TRAILING)
    return url if len(url) > len(url.split("//", 1)[0]) + 2 else None


# -- Markdown to mrkdwn ----------------------------------------------------------------------


@dataclass
class _Delimiter:
    """A run of `*`, `_` or `~` that may open or close emphasis."""

    char: str
    count: int
    can_open: bool
    can_close: bool
    opens: list[str] = field(default_factory=list)
    closes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class _Style:
    """How inline constructs are written out: as mrkdwn, or as plain text in a table."""

    text: Callable[[str], str]
    code: Callable[[str], str]
    link: Callable[[str, str], str]
    tags: dict[str, str]


def _delimiter(char: str, count: int, before: str, after: str) -> _Delimiter:
    """CommonMark's flanking rules: whether a run can open or close emphasis depends on the
    characters around it (so `snake_case` and `2 * 3` stay as written)."""
    after_space, before_space = after.isspace(), before.isspace()
    after_punct, before_punct = _is_punctuation(after), _is_punctuation(before)
    left = not after_space and (not after_punct or before_space or before_punct)
    right = not before_space and (not before_punct or after_space or after_punct)
    if char == "_":
        return _Delimiter(
            char, count, left and (not right or before_punct), right and (not left or after_punct)
        )
    return _Delimiter(char, count, left, right)


def _pairing(opener: _Delimiter, closer: _Delimiter) -> int:
    if opener.char != closer.char or not opener.count:
        return 0
    if closer.char == "~":
        return closer.count if opener.count == closer.count <= 2 else 0
    return 2 if opener.count >= 2 and closer.count >= 2 else 1


def _match_emphasis(tokens: list[str | _Delimiter]) -> None:
    openers: list[_Delimiter] = []
    for token in tokens:
        if not isinstance(token, _Delimiter):
            continue
        if token.can_close:
            index = len(openers) - 1
            while token.count and index >= 0:
                opener = openers[index]
                used = _pairing(opener, token)
                if not used:
                    index -= 1
                    continue
                tag = "strike" if token.char == "~" else "strong" if used == 2 else "em"
                opener.count -= used
                token.count -= used
                opener.opens.append(tag)
                token.closes.append(tag)
                del openers[index + 1 :]
                if not opener.count:
                    openers.pop()
                    index -= 1
        if token.can_open and token.count:
            openers.append(token)


def _inline(text: str, style: _Style) -> str:
    tokens: list[str | _Delimiter] = []
    plain: list[str] = []

    def take_plain() -> None:
        if plain:
            tokens.append(style.text("".join(plain)))
            plain.clear()

    at = 0
    while at < len(text):
        run = _MRKDWN_PLAIN.match(text, at)
        if run:
            plain.append(run.group())
            at = run.end()
            continue
        char = text[at]
        if char == "\\" and at + 1 < len(text) and text[at + 1] in _PUNCTUATION:
            plain.append(text[at + 1])
            at += 2
            continue
        if char == "`":
            ticks = _run_length(text, at, "`")
            close = _closing_ticks(text, at + ticks, ticks)
            if close is None:
                plain.append("`" * ticks)
                at += ticks
                continue
            take_plain()
            tokens.append(style.code(_code_span_content(text[at + ticks : close])))
            at = close + ticks
            continue
        link: _Link | _Wait | None = None
        if char == "[" or text.startswith("![", at):
            link = _parse_link(text, at, final=True)
        elif char == "<":
            link = _autolink(text, at, final=True)
            if isinstance(link, _Link) and not _LINK_SCHEME.match(link.url):
                link = None
        elif char in "hH":
            url = _bare_url(text, at)
            link = _Link(url, url, at + len(url)) if url else None
        if isinstance(link, _Link):
            take_plain()
            tokens.append(style.link(link.label, link.url))
            at = link.end
            continue
        if char in "*_~":
            count = _run_length(text, at, char)
            before = text[at - 1] if at else " "
            after = text[at + count] if at + count < len(text) else " "
            take_plain()
            tokens.append(_delimiter(char, count, before, after))
            at += count
            continue
        plain.append(char)
        at += 1
    take_plain()
    _match_emphasis(tokens)
    out: list[str] = []
    for token in tokens:
        if isinstance(token, str):
            out.append(token)
            continue
        out.append("".join(style.tags[tag] for tag in token.closes))
        out.append(style.text(token.char * token.count))
        out.append("".join(style.tags[tag] for tag in reversed(token.opens)))
    return "".join(out)


_MRKDWN_PLAIN = re.compile(r"[^\\`\[!<hH*_~]+")


def _code_span_content(content: str) -> str:
    if len(content) > 1 and content[0] == content[-1] == " " and content.strip(" "):
        return content[1:-1]
    return content


def _mrkdwn_url(url: str) -> str:
    """A URL that cannot end the `<…>` it is in, nor add a label to it."""
    return "".join(
        "&amp;" if c == "&" else _percent(c) if c in "|<>" or c.isspace() or ord(c) < 32 else c
        for c in url
    )


def _mrkdwn_link(label: str, url: str) -> str:
    if not _LINK_SCHEME.match(url):
        shown = escape(url)
        return shown if not label.strip() or label == url else f"{_mrkdwn_inline(label)} ({shown})"
    target = f"<{_mrkdwn_url(url)}>"
    if not label.strip() or _same_target(label, url):
        return target
    return f"{_mrkdwn_inline(label)} ({target})"


def _mrkdwn_code(content: str) -> str:
    return f"`{escape(content)}`"


_MRKDWN = _Style(
    text=escape,
    code=_mrkdwn_code,
    link=_mrkdwn_link,
    tags={"strong": "*", "em": "_", "strike": "~"},
)
_MRKDWN_BOLD = _Style(
    text=escape, code=_mrkdwn_code, link=_mrkdwn_link, tags={"strong": "", "em": "_", "strike": "~"}
)
_PLAIN = _Style(
    text=lambda text: text,
    code=lambda content: content,
    link=lambda label, url: url if not label.strip() or label == url else f"{label} ({url})",
    tags={"strong": "", "em": "", "strike": ""},
)


def _mrkdwn_inline(text: str) -> str:
    return _inline(text, _MRKDWN)


_FENCE = re.compile(r"(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>.*)")
_ATX = re.compile(r" {0,3}#{1,6}(?:[ \t]+(?P<text>.*?))?(?:[ \t]+#+)?[ \t]*")
_RULE = re.compile(r" {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*")
_SETEXT = re.compile(r" {0,3}(?:=+|-+)[ \t]*")
_ITEM = re.compile(
    r"(?P<indent>[ \t]*)(?:(?P<bullet>[-+*])|(?P<number>\d{1,9})(?P<delim>[.)]))"
    r"(?:[ \t]+(?P<text>.*))?"
)
_TASK = re.compile(r"\[([ xX])\][ \t]+")
_QUOTE = re.compile(r" {0,3}> ?(?P<text>.*)")
_DELIMITER_ROW = re.compile(r"[ \t]*\|?[ \t]*:?-+:?[ \t]*(?:\|[ \t]*:?-+:?[ \t]*)*\|?[ \t]*")
_RULE_LINE = "──────────"


def _closes_fence(line: str, fence: str) -> bool:
    stripped = line.strip(" \t")
    return (
        _columns(line[: len(line) - len(line.lstrip(" \t"))]) <= 3
        and len(stripped) >= len(fence)
        and stripped == fence[0] * len(stripped)
    )


def _code_block(lines: list[str]) -> str:
    """A mrkdwn code block the content cannot close: no three backticks stay together."""
    content = re.sub(r"`(?=``)", "`\u200b", escape("\n".join(lines)))
    return f"```\n{content}\n```"


def _table_cells(row: str) -> list[str]:
    row = row.strip()
    row = row.removeprefix("|")
    if row.endswith("|") and not row.endswith("\\|"):
        row = row[:-1]
    return [cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", row)]


def _table(rows: list[str]) -> str:
    """A GFM table as an aligned code block: mrkdwn has no tables."""
    header, delimiters, *body = rows
    aligns = [
        "center" if c.startswith(":") and c.endswith(":") else "right" if c.endswith(":") else ""
        for c in _table_cells(delimiters)
    ]
    cells = [[_inline(c, _PLAIN) for c in _table_cells(row)] for row in [header, *body]]
    width = max(len(aligns), *(len(row) for row in cells))
    cells = [row + [""] * (width - len(row)) for row in cells]
    aligns += [""] * (width - len(aligns))
    widths = [max(len(row[i]) for row in cells) for i in range(width)]

    def line(row: list[str]) -> str:
        padded = [
            c.rjust(w) if a == "right" else c.center(w) if a == "center" else c.ljust(w)
            for c, w, a in zip(row, widths, aligns, strict=True)
        ]
        return " | ".join(padded).rstrip()

    lines = [line(cells[0]), "-+-".join("-" * w for w in widths), *map(line, cells[1:])]
    return _code_block(lines)


def _is_table_start(lines: list[str], at: int) -> bool:
    return (
        at + 1 < len(lines)
        and "|" in lines[at]
        and _DELIMITER_ROW.fullmatch(lines[at + 1]) is not None
        and "|" in lines[at + 1] + lines[at].strip()[:1]
        and len(_table_cells(lines[at])) == len(_table_cells(lines[at + 1]))
    )


def _paragraph_line(line: str) -> str:
    line = line.rstrip()
    if line.endswith("\\") and (len(line) - len(line.rstrip("\\"))) % 2:
        line = line[:-1]
    return _mrkdwn_inline(line.lstrip())


def to_mrkdwn(md: str) -> str:
    """Markdown as Slack's mrkdwn: headings bold, emphasis and strike in Slack's marks, code
    kept, lists as `•` or numbers indented by depth, quotes as `> `, rules as a line, tables as
    aligned code blocks. Every `&`, `<`, `>` of `md` is escaped, in code too. A link shows its
    URL: `label (<url>)`, or `<url>` when the label is the URL; only http(s) and mailto links
    become links. Indented code blocks and raw HTML are shown as text."""
    lines = md.split("\n")
    out: list[str] = []
    depths: list[int] = []
    at = 0
    while at < len(lines):
        line = lines[at]
        fence = _FENCE.fullmatch(line)
        if fence and not (fence["fence"][0] == "`" and "`" in fence["info"]):
            content: list[str] = []
            indent = len(fence["indent"])
            at += 1
            while at < len(lines) and not _closes_fence(lines[at], fence["fence"]):
                content.append(re.sub(rf"^ {{0,{indent}}}", "", lines[at]))
                at += 1
            out.append(_code_block(content))
            at += 1
            depths.clear()
            continue
        if _is_table_start(lines, at):
            end = at + 2
            while end < len(lines) and lines[end].strip() and "|" in lines[end]:
                end += 1
            out.append(_table(lines[at:end]))
            at = end
            depths.clear()
            continue
        heading = _ATX.fullmatch(line)
        if heading:
            text = (heading["text"] or "").strip()
            out.append(f"*{_inline(text, _MRKDWN_BOLD)}*" if text else "")
            at += 1
            depths.clear()
            continue
        if _RULE.fullmatch(line):
            out.append(_RULE_LINE)
            at += 1
            depths.clear()
            continue
        quote = _QUOTE.fullmatch(line)
        if quote:
            inner: list[str] = []
            while at < len(lines) and (quote := _QUOTE.fullmatch(lines[at])):
                inner.append(quote["text"])
                at += 1
            out.extend(f"> {q}" if q else ">" for q in to_mrkdwn("\n".join(inner)).split("\n"))
            depths.clear()
            continue
        item = _ITEM.fullmatch(line)
        if item and (item["text"] is not None or at + 1 == len(lines) or not lines[at + 1]):
            indent = _columns(item["indent"])
            while depths and depths[-1] > indent:
                depths.pop()
            if not depths or depths[-1] < indent:
                depths.append(indent)
            text = item["text"] or ""
            task = _TASK.match(text)
            if task:
                text = ("☐ " if task[1] == " " else "☑ ") + text[task.end() :]
            marker = "•" if item["bullet"] else f"{item['number']}{item['delim']}"
            out.append("    " * (len(depths) - 1) + f"{marker} {_mrkdwn_inline(text)}".rstrip())
            at += 1
            continue
        if not line.strip():
            if out and out[-1] != "":
                out.append("")
            at += 1
            continue
        if at + 1 < len(lines) and _SETEXT.fullmatch(lines[at + 1]) and not depths:
            out.append(f"*{_inline(line.strip(), _MRKDWN_BOLD)}*")
            at += 2
            continue
        if depths and line[:1] in " \t":
            out.append("    " * len(depths) + _paragraph_line(line))
        else:
            depths.clear()
            out.append(_paragraph_line(line))
        at += 1
    while out and out[-1] == "":
        out.pop()
    return "\n".join(out)


# -- Markdown kept as Markdown ---------------------------------------------------------------

_FENCE_LOOKING = re.compile(
    r"(?P<prefix>(?:[ \t>]|[-+*](?=[ \t])|\d{1,9}[.)](?=[ \t]))*)(?P<run>`{3,}|~{3,})"
)
_MAYBE_FENCE = re.compile(r"[ \t>\-+*0-9.)]*[`~]*")
_MAYBE_DELIMITER_ROW = re.compile(r"[ \t>|:\-]*")
_DELIMITER_LOOKING = re.compile(r"[ \t>]*" + _DELIMITER_ROW.pattern)
_ITEM_FENCE_PREFIX = re.compile(r" {0,3}(?:[-+*]|1[.)]) {1,4}")
_QUOTE_PREFIX = re.compile(r"[ \t>]*")
_ENTITY_RUN = re.compile(r"[&>]+|<+(?=<)|<")
_SAFE_RUN = re.compile(r"[^&<>\\`\[\]!\n]+")


@dataclass(frozen=True)
class _OpenFence:
    """A fenced code block being read. `indent` is where its lines must start: the fence's own
    indentation, or, for a fence opened on a list item's line, the item's content column."""

    run: str
    indent: int
    item: bool


def _md_text(text: str) -> str:
    """Text shown as it is: entities for `&<>`, Markdown's marks escaped."""
    return "".join(_ESCAPES.get(c) or ("\\" + c if c in _MD_SPECIAL else c) for c in text)


def _md_destination(url: str) -> str:
    """A link destination nothing can end early: anything unusual is percent-encoded."""
    return "".join("&amp;" if c == "&" else c if c in _URL_SAFE else _percent(c) for c in url)


def _safe_link(link: _Link) -> str:
    label, url = link.label, link.url
    if not _LINK_SCHEME.match(url):
        shown = _md_text(url)
        return shown if not label.strip() or label == url else f"{_safe_inline(label)} ({shown})"
    same = not label.strip() or _same_target(label, url)
    target = f"[{_md_text(label if same and label.strip() else url)}]({_md_destination(url)})"
    return target if same else f"{_safe_inline(label)} ({target})"


def _safe_inline(text: str) -> str:
    """A link's label on its own. It may sit in a table row, where a `|` ends a cell before a
    code span could close: such spans are escaped."""
    sanitizer = MarkdownSanitizer()
    sanitizer._line_start = sanitizer._quote_prefix = False
    sanitizer._table = True
    return sanitizer.feed(text) + sanitizer.flush()


class MarkdownSanitizer:
    """`safe_markdown` for a text that arrives in pieces (a streamed answer).

    `feed` returns what can already be decided and holds back the rest: an unfinished link,
    an unclosed code span on the current line, a line that may be a code fence. `flush`
    returns what is left and starts over. Whatever the pieces, the outputs joined are
    `safe_markdown` of the text joined.

    Raw `<`, `>`, `&` are left only inside code that Markdown will certainly read as code:
    fenced blocks whose extent does not depend on list or quote structure this does not
    parse, and code spans closed on their own line. Backticks that close nothing are escaped,
    so Markdown cannot pair them differently; after a fence whose extent is uncertain,
    everything that follows is escaped.
    """

    def __init__(self) -> None:
        self._pending = ""
        self._restart()

    def _restart(self) -> None:
        self._line_start = True
        self._quote_prefix = True
        self._fence: _OpenFence | None = None
        self._code_line = False
        self._unsure = False
        self._table = False

    def feed(self, piece: str) -> str:
        self._pending += piece
        return self._run(final=False)

    @property
    def held(self) -> int:
        """How many characters fed so far are not in any output yet."""
        return len(self._pending)

    def flush(self) -> str:
        out = self._run(final=True)
        self._pending = ""
        self._restart()
        return out

    def _run(self, final: bool) -> str:
        text = self._pending
        out: list[str] = []
        at = 0
        while at < len(text):
            if self._fence is not None:
                step = self._fence_step(text, at, final)
            elif self._line_start:
                step = self._line_step(text, at, final)
            else:
                step = self._inline_step(text, at, final)
            if step is None:
                break
            piece, at = step
            out.append(piece)
        self._pending = text[at:]
        return "".join(out)

    def _new_line(self) -> None:
        self._line_start = self._quote_prefix = True

    def _line_step(self, text: str, at: int, final: bool) -> tuple[str, int] | None:
        """At a line's start: is it a fence, a table's delimiter row, a blank line?"""
        end = text.find("\n", at)
        complete = end >= 0 or final
        line = text[at:] if end < 0 else text[at:end]
        if not complete and (
            _MAYBE_FENCE.fullmatch(line)
            or _MAYBE_DELIMITER_ROW.fullmatch(line)
            or (not self._unsure and _FENCE_LOOKING.match(line))
        ):
            return None
        if complete and not line.strip():
            self._table = False
        elif complete and _DELIMITER_LOOKING.fullmatch(line):
            self._table = True
        self._line_start = False
        opening = _FENCE_LOOKING.match(line) if complete and not self._unsure else None
        if opening is None:
            return "", at
        prefix, run, info = opening["prefix"], opening["run"], line[opening.end() :]
        if run[0] == "`" and "`" in info:
            return "", at
        if not prefix.strip(" ") and len(prefix) <= 3:
            self._fence = _OpenFence(run, len(prefix), item=False)
        elif _ITEM_FENCE_PREFIX.fullmatch(prefix):
            self._fence = _OpenFence(run, len(prefix), item=True)
        else:
            self._unsure = True
            return "", at
        self._table = False
        self._new_line()
        opener = prefix + run + _entities(info)
        return (opener + "\n", end + 1) if end >= 0 else (opener, len(text))

    def _fence_step(self, text: str, at: int, final: bool) -> tuple[str, int] | None:
        fence = self._fence
        assert fence is not None
        if self._code_line:
            return self._code(text, at)
        indent_end = _skip_spaces(text, at)
        if indent_end >= len(text) and not final:
            return None
        indent = _columns(text[at:indent_end])
        first = text[indent_end] if indent_end < len(text) else "\n"
        if first == "\n":
            return self._code(text, at)
        if indent < fence.indent:
            self._fence = None
            if fence.item:
                self._new_line()
            else:
                self._unsure = True
                self._line_start, self._quote_prefix = False, True
            return "", at
        if first == fence.run[0]:
            end = text.find("\n", at)
            if end < 0 and not final:
                return None
            line = text[at:] if end < 0 else text[at:end]
            stripped = line.strip(" \t")
            if len(stripped) >= len(fence.run) and stripped == fence.run[0] * len(stripped):
                if indent <= (fence.indent + 3 if fence.item else 3):
                    self._fence = None
                    self._new_line()
                    return (line + "\n", end + 1) if end >= 0 else (line, len(text))
                if not fence.item and fence.indent:
                    self._fence = None
                    self._unsure = True
                    self._line_start, self._quote_prefix = False, True
                    return "", at
        return self._code(text, at)

    def _code(self, text: str, at: int) -> tuple[str, int]:
        end = text.find("\n", at)
        self._code_line = end < 0
        return (text[at:], len(text)) if end < 0 else (text[at : end + 1], end + 1)

    def _inline_step(self, text: str, at: int, final: bool) -> tuple[str, int] | None:
        char = text[at]
        if char == "\n":
            self._new_line()
            return "\n", at + 1
        if self._quote_prefix:
            prefix = _QUOTE_PREFIX.match(text, at)
            assert prefix is not None
            if prefix.end() < len(text):
                self._quote_prefix = False
            if prefix.end() > at:
                return prefix.group(), prefix.end()
        run = _SAFE_RUN.match(text, at)
        if run:
            return run.group(), run.end()
        if char == "<":
            link = _autolink(text, at, final)
            if isinstance(link, _Wait):
                return None
            if link is not None and _LINK_SCHEME.match(link.url):
                return _safe_link(link), link.end
        if char in _ESCAPES:
            entities = _ENTITY_RUN.match(text, at)
            assert entities is not None
            return _entities(entities.group()), entities.end()
        if char == "`":
            return self._code_span(text, at, final)
        if at + 1 >= len(text) and char in "\\!]":
            return None if not final else (char, at + 1)
        following = text[at + 1] if at + 1 < len(text) else ""
        if char == "\\":
            if following in _ESCAPES:
                return _ESCAPES[following], at + 2
            if following in _PUNCTUATION:
                return text[at : at + 2], at + 2
            return "\\", at + 1
        if char == "]":
            return ("]\\" + following, at + 2) if following in "(:" else ("]", at + 1)
        if char == "!" and following != "[":
            return "!", at + 1
        link = _parse_link(text, at, final)
        if isinstance(link, _Wait):
            return None
        if link is None:
            return char, at + 1
        return _safe_link(link), link.end

    def _code_span(self, text: str, at: int, final: bool) -> tuple[str, int] | None:
        ticks = _run_length(text, at, "`")
        if at + ticks >= len(text) and not final:
            return None
        close = _closing_ticks(text, at + ticks, ticks)
        if close is None:
            if text.find("\n", at) < 0 and not final:
                return None
            return "\\`" * ticks, at + ticks
        end = close + ticks
        if end >= len(text) and not final:
            return None
        if "|" in text[at + ticks : close]:
            table = self._table_row(text, end, final)
            if table is None:
                return None
            if table:
                return "\\`" * ticks, at + ticks
        return text[at:end], end

    def _table_row(self, text: str, at: int, final: bool) -> bool | None:
        """Whether the line around `at` may be a table row, where GFM splits cells at `|`
        before it looks for code; None until the next line tells."""
        if self._table:
            return True
        end = text.find("\n", at)
        if end < 0:
            return False if final else None
        after = text.find("\n", end + 1)
        following = text[end + 1 :] if after < 0 else text[end + 1 : after]
        if after < 0 and not final:
            return None if _MAYBE_DELIMITER_ROW.fullmatch(following) else False
        return _DELIMITER_LOOKING.fullmatch(following) is not None


def safe_markdown(md: str) -> str:
    """`md` kept as Markdown for a `markdown` block or streamed `markdown_text`, with nothing
    Slack would read as a mention, a broadcast or a hidden link: outside code `&`, `<`, `>`
    become entities (a `>` that starts a quote stays), a link whose label is not its URL
    becomes `label ([url](url))`, a link to anything but http(s) or mailto becomes text, and
    reference definitions are broken so that no `[label][ref]` can hide a URL."""
    sanitizer = MarkdownSanitizer()
    return sanitizer.feed(md) + sanitizer.flush()


# -- splitting -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Fence:
    opener: str
    closer: str


@dataclass(frozen=True)
class _Cut:
    end: int
    resume: int
    fence: _Fence | None


def _fences_by_line(lines: list[str]) -> list[_Fence | None]:
    """For each line, the fenced block it is content of, if any."""
    inside: list[_Fence | None] = [None] * len(lines)
    at = 0
    while at < len(lines):
        found = _FENCE.fullmatch(lines[at])
        at += 1
        if not found or (found["fence"][0] == "`" and "`" in found["info"]):
            continue
        fence = _Fence(opener=lines[at - 1], closer=found["indent"] + found["fence"])
        while at < len(lines) and not _closes_fence(lines[at], found["fence"]):
            inside[at] = fence
            at += 1
        at += 1
    return inside


def _cuts(md: str) -> tuple[list[_Cut], list[_Cut], list[_Cut], list[int], list[_Fence | None]]:
    lines = md.split("\n")
    starts = [0]
    for line in lines[:-1]:
        starts.append(starts[-1] + len(line) + 1)
    inside = _fences_by_line(lines)
    paragraphs: list[_Cut] = []
    line_cuts: list[_Cut] = []
    words: list[_Cut] = []
    for index, line in enumerate(lines):
        fence = inside[index]
        for space in re.finditer(r"(?<=\S)[ \t]+(?=\S)", line):
            start = starts[index]
            words.append(_Cut(start + space.start(), start + space.end(), fence))
        if index + 1 < len(lines) and inside[index + 1] is fence:
            line_cuts.append(_Cut(starts[index] + len(line), starts[index + 1], fence))
        if not line.strip() or fence is not None:
            continue
        following = index + 1
        while following < len(lines) and not lines[following].strip():
            following += 1
        blank = range(index + 1, following)
        if blank and following < len(lines) and all(inside[b] is None for b in blank):
            paragraphs.append(_Cut(starts[index] + len(line), starts[following], None))
    return paragraphs, line_cuts, words, starts, inside


def split_markdown(md: str, limit: int, measure: Callable[[str], int] = len) -> list[str]:
    """`md` in parts of at most `limit`, as `measure` counts a part. The split is made on the
    Markdown source and each part is measured as it will be sent, so `measure` is how Slack
    counts the rendered part (answer_messages passes the length of its `safe_markdown`).

    Parts end at paragraph breaks, else at line ends, else between words; a word is cut only
    when it alone is longer than `limit`. A fenced code block cut in two is closed at the end
    of one part and opened again, with the same fence and language, at the start of the next.
    Apart from those fence lines and the whitespace at each cut, the parts joined are `md`."""
    return _Splitter(md, limit, measure).parts()


class _Splitter:
    def __init__(self, md: str, limit: int, measure: Callable[[str], int]) -> None:
        self.md, self.limit, self.measure = md, limit, measure
        paragraphs, line_cuts, words, self.starts, self.inside = _cuts(md)
        self.kinds = (paragraphs, line_cuts, words)

    def render(self, start: int, reopen: _Fence | None, cut: _Cut | None) -> str:
        head = reopen.opener + "\n" if reopen else ""
        if cut is None:
            return head + self.md[start:]
        return head + self.md[start : cut.end] + ("\n" + cut.fence.closer if cut.fence else "")

    def fits(self, start: int, reopen: _Fence | None, cut: _Cut | None) -> bool:
        return self.measure(self.render(start, reopen, cut)) <= self.limit

    def horizon(self, start: int) -> int:
        """How far from `start` a part can reach at most: Markdown made safe is never much
        shorter than its source (a link loses at most its title)."""
        return start + 2 * self.limit + 2 * _MAX_LINK

    def parts(self) -> list[str]:
        parts: list[str] = []
        start, reopen = 0, None
        while len(self.md) > self.horizon(start) or not self.fits(start, reopen, None):
            cut = self.best_cut(start, reopen) or self.cut_in_word(start, reopen)
            parts.append(self.render(start, reopen, cut))
            start, reopen = cut.resume, cut.fence
        rest = self.render(start, reopen, None)
        if rest.strip() or not parts:
            parts.append(rest)
        return parts

    def best_cut(self, start: int, reopen: _Fence | None) -> _Cut | None:
        """The furthest cut that fits, of the best kind that has one."""
        horizon = self.horizon(start)
        for cuts in self.kinds:
            candidates = [
                c for c in cuts if start < c.end <= horizon and self.md[start : c.end].strip()
            ]
            found = self.furthest(start, reopen, candidates)
            if found is not None:
                return found
        return None

    def furthest(self, start: int, reopen: _Fence | None, candidates: list[_Cut]) -> _Cut | None:
        found = _last_true(len(candidates), lambda i: self.fits(start, reopen, candidates[i]))
        return candidates[found] if found >= 0 else None

    def cut_in_word(self, start: int, reopen: _Fence | None) -> _Cut:
        """A word longer than the limit is cut where the most of it fits (one character at
        least, so that every part moves on)."""

        def cut_at(end: int) -> _Cut:
            line = max(0, bisect_right(self.starts, end) - 1)
            return _Cut(end, end, self.inside[line])

        room = min(len(self.md), self.horizon(start)) - start
        found = _last_true(room, lambda i: self.fits(start, reopen, cut_at(start + 1 + i)))
        return cut_at(start + 1 + max(found, 0))


def _last_true(count: int, holds: Callable[[int], bool]) -> int:
    """The last index below `count` where `holds`, which is true up to some index and false
    after; -1 when it holds nowhere. Gallops from the start, so that the parts measured are
    never much longer than the answer: measuring costs as much as the text measured."""
    if not count or not holds(0):
        return -1
    good, step = 0, 1
    while good + step < count and holds(good + step):
        good += step
        step *= 2
    bad = min(good + step, count)
    while bad - good > 1:
        middle = (good + bad) // 2
        if holds(middle):
            good = middle
        else:
            bad = middle
    return good


# -- answers ---------------------------------------------------------------------------------


def _slack_length(text: str) -> int:
    """Slack counts in UTF-16 code units, where a character outside the BMP counts twice."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def answer_messages(md: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """The messages that carry a model's answer, in order, nothing left out: each has one
    `markdown` block of its part (within Slack's 12,000 characters per message) and, for
    notifications, the same part as mrkdwn cut to the fallback limit."""
    if not md.strip():
        md = EMPTY_ANSWER
    parts = split_markdown(md, MARKDOWN_LIMIT, lambda part: _slack_length(safe_markdown(part)))
    return [
        (
            truncate(to_mrkdwn(part) or escape(part), FALLBACK_TEXT_LIMIT),
            [{"type": "markdown", "text": safe_markdown(part)}],
        )
        for part in parts
    ]
