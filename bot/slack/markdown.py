"""Stand-in until the Markdown module lands."""

from bot.slack import blocks


class MarkdownSanitizer:
    held = 0

    def feed(self, piece: str) -> str:
        return blocks.escape(piece)

    def flush(self) -> str:
        return ""


def to_mrkdwn(md: str) -> str:
    return blocks.escape(md)


def answer_messages(md: str) -> list[tuple[str, list[blocks.Block]]]:
    return [blocks.answer(md)]
