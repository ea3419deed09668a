"""The model's Markdown reaches people rendered, whole, and unable to ping or phish."""

import random
import re

import pytest

from bot.slack.markdown import (
    EMPTY_ANSWER,
    MARKDOWN_LIMIT,
    MarkdownSanitizer,
    answer_messages,
    safe_markdown,
    split_markdown,
    to_mrkdwn,
)
from bot.slack.mrkdwn import FALLBACK_TEXT_LIMIT

PINGS = ["<!channel>", "<!here>", "<!everyone>", "<@U0VICTIM>", "<!subteam^S0EVIL>", "<#C0SECRET>"]
PHISH = ["<https://evil.example/login|Log in>", "<https://evil.example|https://bank.example>"]
HOSTILE = " ".join([*PINGS, *PHISH, "Tom & Jerry"])
OUR_LINK = re.compile(r"<(?:https?://|mailto:)[^<>|\s]*>")


def assert_safe_mrkdwn(text: str) -> None:
    """The only `<…>` are links that show their own URL; a `>` only starts a quote."""
    unlinked = re.sub(r"^(?:> ?)+", "", OUR_LINK.sub("", text), flags=re.MULTILINE)
    assert "<" not in unlinked, text
    assert ">" not in unlinked, text
    assert re.fullmatch(r"(?:&amp;|&lt;|&gt;|[^&])*", text), text


# -- to_mrkdwn -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("md", "mrkdwn"),
    [
        ("# Title", "*Title*"),
        ("### Title with **bold** ###", "*Title with bold*"),
        ("Title\n=====", "*Title*"),
        ("**bold** and __bold__", "*bold* and *bold*"),
        ("*italic* and _italic_", "_italic_ and _italic_"),
        ("***both***", "_*both*_"),
        ("~~gone~~", "~gone~"),
        ("snake_case_name and 2 * 3 * 4", "snake_case_name and 2 * 3 * 4"),
        (r"\*not italic\*", "*not italic*"),
        ("use `a < b`", "use `a &lt; b`"),
        ("```python\nif a < b:\n    pass\n```", "```\nif a &lt; b:\n    pass\n```"),
        ("~~~\ncode with ``` inside\n~~~", "```\ncode with `\u200b`` inside\n```"),
        ("- one\n- two\n  - nested\n    - deeper", "• one\n• two\n    • nested\n        • deeper"),
        ("* star\n+ plus", "• star\n• plus"),
        ("1. first\n2. second\n   1. inner", "1. first\n2. second\n    1. inner"),
        ("- [ ] todo\n- [x] done", "• ☐ todo\n• ☑ done"),
        ("> quoted **text**\n> more", "> quoted *text*\n> more"),
        ("> outer\n> > inner", "> outer\n> > inner"),
        ("above\n\n---\n\nbelow", "above\n\n──────────\n\nbelow"),
        ("a  \nb\\\nc", "a\nb\nc"),
        ("one\n\n\n\ntwo", "one\n\ntwo"),
        (
            "| name | n |\n|:-----|--:|\n| a | 1 |\n| **bc** | 22 |",
            "```\nname |  n\n-----+---\na    |  1\nbc   | 22\n```",
        ),
    ],
)
def test_markdown_becomes_mrkdwn(md: str, mrkdwn: str) -> None:
    assert to_mrkdwn(md) == mrkdwn


@pytest.mark.parametrize(
    ("md", "mrkdwn"),
    [
        ("[Log in](https://evil.example/login)", "Log in (<https://evil.example/login>)"),
        ("[https://a.example](https://a.example)", "<https://a.example>"),
        ("<https://a.example/x>", "<https://a.example/x>"),
        ("<me@example.com>", "<mailto:me@example.com>"),
        ("[mail me](mailto:me@example.com)", "mail me (<mailto:me@example.com>)"),
        ("see https://a.example/x.", "see <https://a.example/x>."),
        ("(https://a.example/x)", "(<https://a.example/x>)"),
        ("![chart](https://a.example/c.png)", "chart (<https://a.example/c.png>)"),
        ("[**bold** label](https://a.example)", "*bold* label (<https://a.example>)"),
        ("[click](javascript:alert(1))", "click (javascript:alert(1))"),
        ("[rel](/etc/passwd)", "rel (/etc/passwd)"),
        ("<ftp://a.example>", "&lt;ftp://a.example&gt;"),
        ("[x](https://a.example/a|b>c)", "x (<https://a.example/a%7Cb%3Ec>)"),
        ("<https://a.example/a|b>", "<https://a.example/a%7Cb>"),
        ("[x](<https://a.example/a b>)", "x (<https://a.example/a%20b>)"),
        ("[x](https://a.example/?a=1&b=2)", "x (<https://a.example/?a=1&amp;b=2>)"),
        ("[x](https://a.example/wiki/A_(b))", "x (<https://a.example/wiki/A_(b)>)"),
        ('[x](https://a.example "a title")', "x (<https://a.example>)"),
    ],
)
def test_a_link_in_mrkdwn_never_hides_its_url(md: str, mrkdwn: str) -> None:
    assert to_mrkdwn(md) == mrkdwn
    assert_safe_mrkdwn(to_mrkdwn(md))


@pytest.mark.parametrize("hostile", [*PINGS, *PHISH, HOSTILE])
@pytest.mark.parametrize(
    "template",
    ["{}", "# {}", "**{}**", "`{}`", "```\n{}\n```", "- {}", "> {}", "| a |\n|---|\n| {} |"],
)
def test_pings_and_phishing_arrive_in_mrkdwn_as_text(template: str, hostile: str) -> None:
    text = to_mrkdwn(template.format(hostile))

    assert_safe_mrkdwn(text)
    assert "&lt;!channel&gt;" in text or "<!channel>" not in hostile


def test_a_label_cannot_smuggle_markup_into_mrkdwn() -> None:
    text = to_mrkdwn("[<!channel> <https://evil|x>](https://a.example)")

    assert text == "&lt;!channel&gt; <https://evil%7Cx> (<https://a.example>)"


# -- safe_markdown ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("md", "safe"),
    [
        ("# Title\n\n**bold** _it_ ~~s~~", "# Title\n\n**bold** _it_ ~~s~~"),
        ("a < b && c > d", "a &lt; b &amp;&amp; c &gt; d"),
        ("> quoted\n>> deeper", "> quoted\n>> deeper"),
        ("x > y", "x &gt; y"),
        ("use `a < b` here", "use `a < b` here"),
        ("```html\n<b>&amp;</b>\n```\n<b>", "```html\n<b>&amp;</b>\n```\n&lt;b&gt;"),
        ("```x<y>\ncode\n```", "```x&lt;y&gt;\ncode\n```"),
        ("[Log in](https://evil.example)", "Log in ([https://evil.example](https://evil.example))"),
        ("[https://a.example](https://a.example)", "[https://a.example](https://a.example)"),
        ("<https://a.example>", "[https://a.example](https://a.example)"),
        ("<me@example.com>", "[me@example.com](mailto:me@example.com)"),
        ("[click](javascript:alert(1))", "click (javascript:alert(1))"),
        ("[x](https://a.example/a b", "[x]\\(https://a.example/a b"),
        ("[x]( https://evil.example )", "x ([https://evil.example](https://evil.example))"),
        (
            "[x](https://a.example/(a)|b)",
            "x ([https://a.example/(a)\\|b](https://a.example/%28a%29%7Cb))",
        ),
        (
            "[ref]: https://evil.example\n[click][ref]",
            "[ref]\\: https://evil.example\n[click][ref]",
        ),
        ("stray ` backtick <b>", "stray \\` backtick &lt;b&gt;"),
        (r"\<b\> \& \*", r"&lt;b&gt; &amp; \*"),
        ("bare https://a.example/?a=1&b=2", "bare https://a.example/?a=1&amp;b=2"),
    ],
)
def test_markdown_stays_markdown_made_safe(md: str, safe: str) -> None:
    assert safe_markdown(md) == safe


@pytest.mark.parametrize("hostile", [*PINGS, *PHISH, HOSTILE])
@pytest.mark.parametrize(
    "template", ["{}", "# {}", "**{}**", "- {}", "> {}", "| a |\n|---|\n| {} |", "[{}](x)"]
)
def test_pings_and_phishing_arrive_in_markdown_as_text(template: str, hostile: str) -> None:
    text = safe_markdown(template.format(hostile))

    assert "<" not in text, text
    assert re.fullmatch(r"(?:&amp;|&lt;|&gt;|[^&])*", text), text


@pytest.mark.parametrize(
    "md",
    [
        # a code span that Markdown would have opened on the line before
        "a `b\nc <!channel> `x",
        # a table splits cells at `|` before it looks for code
        "| a | `x|<!channel>|y` |\n|---|---|",
        "| a |\n|---|\n| `x|<!channel>` |",
        "| a |\n|---|\n| [`x|<!channel>`](https://a.example) |",
        # a fence whose end depends on list or quote structure
        "> ```\n<!channel>\n",
        "  ```\n<!channel>\n  ```\n",
        "  ```\n<x>\n  ```\n  <!channel>",
        "- a\n    ```\n  ```\n  <!channel>",
        "- ```\n  code\n<!channel>",
        "    ```\n<!channel>\n```",
        "1. ```\n   x\n   ```\n   <!channel>",
    ],
)
def test_raw_markup_is_left_only_where_markdown_surely_reads_code(md: str) -> None:
    assert "<!channel>" not in safe_markdown(md)


def test_a_backtick_that_closes_nothing_on_its_line_cannot_pair_with_the_next() -> None:
    assert safe_markdown("a `b\nc` <x> `d`") == "a \\`b\nc` <x> `d\\`"


def test_code_keeps_its_characters_in_markdown() -> None:
    md = "- ```sh\n  curl 'a?b=1&c=<d>'\n  ```\n\n```\n<!channel> & more\n```"

    assert safe_markdown(md) == md


def test_a_pipe_in_code_outside_tables_stays_code() -> None:
    assert safe_markdown("run `ls | grep <x>`\nnext") == "run `ls | grep <x>`\nnext"


# -- streaming -------------------------------------------------------------------------------

STREAMED = [
    HOSTILE,
    "# Title\n\nSome **bold** and `code <x>` and [a link](https://a.example/x?a=1&b=2 'title').",
    "```python\nif a < b:\n    print('<!here>')\n```\nafter <b> & [x](javascript:1)",
    "- item\n  - ```\n    <a>\n    ```\n  <!channel>\n> quote `q`\n>> deeper",
    "| a | `b|c` |\n|:-|-:|\n| `<x>` | [l](https://e.example) |\n\ntext ` stray",
    "| a | b |\n| --- | :-: |\n| `<y>|z` | w |",
    "a `b\nc` <!channel> `x` ``y`` ```z``` ![img](https://i.example/p.png)",
    "[ref]: https://evil\n[nested [brackets]](https://a.example) \\<esc\\> \\` ] ( ]: "
    "<me@a.example>",
    "  ```\n<!channel>\n  ```\nafter the uncertain fence <x>\n```\n<y>\n```",
    "~~~~ info `ok`\n``` not a close\n~~~~\n<z> <https://auto.example/a|b> https://bare.example.",
]


@pytest.mark.parametrize("md", STREAMED)
def test_any_split_of_a_streamed_answer_gives_the_same_safe_markdown(md: str) -> None:
    whole = safe_markdown(md)
    rng = random.Random(md)
    for _ in range(300):
        sanitizer = MarkdownSanitizer()
        cuts = sorted(rng.sample(range(1, len(md)), rng.randint(0, min(len(md) - 1, 25))))
        pieces = [md[a:b] for a, b in zip([0, *cuts], [*cuts, len(md)], strict=True)]
        assert "".join(sanitizer.feed(p) for p in pieces) + sanitizer.flush() == whole


def test_streaming_one_character_at_a_time_gives_the_same_safe_markdown() -> None:
    md = "\n\n".join(STREAMED)
    sanitizer = MarkdownSanitizer()

    assert "".join(sanitizer.feed(c) for c in md) + sanitizer.flush() == safe_markdown(md)


def test_the_sanitizer_holds_back_only_what_is_undecided() -> None:
    sanitizer = MarkdownSanitizer()

    assert sanitizer.feed("Hello <world> and ") == "Hello &lt;world&gt; and "
    assert sanitizer.feed("[a link](https://a.exa") == ""
    assert (
        sanitizer.feed("mple) then `code")
        == "a link ([https://a.example](https://a.example)) then "
    )
    assert sanitizer.feed(" <x>` done") == "`code <x>` done"
    assert sanitizer.flush() == ""


def test_the_sanitizer_starts_over_after_a_flush() -> None:
    sanitizer = MarkdownSanitizer()
    sanitizer.feed("```\n")
    sanitizer.flush()

    assert sanitizer.feed("<x>\n") == "&lt;x&gt;\n"


# -- splitting -------------------------------------------------------------------------------


def _strip_added_fences(parts: list[str], md: str) -> list[str]:
    """The parts without the fence lines the split added, each checked to be in `md` in
    order with only whitespace between."""
    fence_line = re.compile(r" *(?:`{3,}|~{3,})[^\n]*")
    stripped: list[str] = []
    at = 0
    for part in parts:
        head, _, after_head = part.partition("\n")
        before_tail, _, tail = part.rpartition("\n")
        variants = [part]
        if fence_line.fullmatch(head):
            variants.append(after_head)
        if fence_line.fullmatch(tail):
            variants.append(before_tail)
            if fence_line.fullmatch(head):
                variants.append(after_head.rpartition("\n")[0])
        for variant in variants:
            found = md.find(variant, at)
            if found >= 0 and not md[at:found].strip():
                stripped.append(variant)
                at = found + len(variant)
                break
        else:
            pytest.fail(f"part not found in order: {part[:80]!r}")
    assert not md[at:].strip()
    return stripped


def _words(rng: random.Random, count: int) -> str:
    return " ".join(rng.choice(["alpha", "b<c", "d&e", "**f**", "`g`", "h"]) for _ in range(count))


def _document(rng: random.Random) -> str:
    blocks = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.randint(0, 4)
        if kind == 0:
            blocks.append(_words(rng, rng.randint(1, 60)))
        elif kind == 1:
            lines = [_words(rng, rng.randint(0, 8)) for _ in range(rng.randint(1, 20))]
            blocks.append("```py\n" + "\n".join(lines) + "\n```")
        elif kind == 2:
            blocks.append("\n".join("- " + _words(rng, rng.randint(1, 6)) for _ in range(5)))
        elif kind == 3:
            blocks.append("x" * rng.randint(1, 300))
        else:
            blocks.append("> " + _words(rng, rng.randint(1, 30)))
    return "\n\n".join(blocks)


@pytest.mark.parametrize("seed", range(40))
def test_split_parts_fit_and_nothing_is_lost(seed: int) -> None:
    rng = random.Random(seed)
    md = _document(rng)
    limit = rng.randint(40, 400)

    parts = split_markdown(md, limit, lambda part: len(safe_markdown(part)))

    assert all(len(safe_markdown(part)) <= limit for part in parts)
    _strip_added_fences(parts, md)


def test_split_prefers_paragraphs_then_lines_then_words() -> None:
    assert split_markdown("aaa bbb\n\nccc ddd", 10) == ["aaa bbb", "ccc ddd"]
    assert split_markdown("aaa bbb\nccc ddd\n\neee", 10) == ["aaa bbb", "ccc ddd", "eee"]
    assert split_markdown("aaa bbb ccc ddd", 10) == ["aaa bbb", "ccc ddd"]
    assert split_markdown("x" * 25, 10) == ["x" * 10, "x" * 10, "x" * 5]


def test_a_split_code_block_is_closed_and_reopened_with_its_language() -> None:
    md = "intro\n\n```python\nline 1\nline 2\nline 3\n```\n\nafter"

    parts = split_markdown(md, 30)

    assert parts == [
        "intro",
        "```python\nline 1\nline 2\n```",
        "```python\nline 3\n```\n\nafter",
    ]


def test_text_that_fits_is_one_part() -> None:
    assert split_markdown("short\n\ntext", 100) == ["short\n\ntext"]


# -- answers ---------------------------------------------------------------------------------


def _long_answer() -> str:
    rng = random.Random(7)
    paragraphs = [_words(rng, 40) for _ in range(20)]
    code = "```sql\n" + "\n".join(f"SELECT '<{i}>' & x;" for i in range(1100)) + "\n```"
    long_line = " ".join(["word"] * 800)
    return "\n\n".join([*paragraphs[:10], code, long_line, "y" * 15_000, *paragraphs[10:]])


def test_a_30000_character_answer_arrives_whole_in_several_messages() -> None:
    md = _long_answer()
    assert len(md) > 30_000

    messages = answer_messages(md)

    assert len(messages) >= 3
    parts: list[str] = []
    for text, body in messages:
        [block] = body
        assert block["type"] == "markdown"
        assert len(block["text"]) <= MARKDOWN_LIMIT
        assert len(text) <= FALLBACK_TEXT_LIMIT
        assert_safe_mrkdwn(text)
        assert "<" not in re.sub(r"```.*?```|`[^`\n]*`", "", block["text"], flags=re.DOTALL)
        parts.append(block["text"])
    joined = "".join(parts)
    first, code, last = joined.index("SELECT '<0>'"), joined.index("SELECT '<1099>' & x;"), 0
    last = joined.index("y" * 11_000)
    assert first < code < last


def test_the_split_of_an_answer_keeps_every_character() -> None:
    md = _long_answer()
    parts = split_markdown(md, MARKDOWN_LIMIT, lambda part: len(safe_markdown(part)))

    _strip_added_fences(parts, md)
    assert [text for text, _ in answer_messages(md)] == [
        to_mrkdwn(p)[:FALLBACK_TEXT_LIMIT] if len(to_mrkdwn(p)) <= FALLBACK_TEXT_LIMIT else text
        for p, (text, _) in zip(parts, answer_messages(md), strict=True)
    ]


def test_an_empty_answer_is_one_message_saying_so() -> None:
    for md in ["", "  \n\n "]:
        assert answer_messages(md) == [(EMPTY_ANSWER, [{"type": "markdown", "text": EMPTY_ANSWER}])]


def test_a_short_answer_is_one_message_in_both_renderings() -> None:
    [(text, blocks)] = answer_messages(f"**Done**: {HOSTILE}")

    assert text.startswith("*Done*: &lt;!channel&gt;")
    assert blocks == [{"type": "markdown", "text": safe_markdown(f"**Done**: {HOSTILE}")}]
    assert "<" not in blocks[0]["text"]


def test_characters_outside_the_bmp_count_twice_as_slack_counts_them() -> None:
    messages = answer_messages("😀" * 7_000)

    assert len(messages) == 2
