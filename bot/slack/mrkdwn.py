"""Untrusted text made literal in Slack's mrkdwn, and cut to Slack's limits.

Kept apart from the Block Kit builders so that the Markdown conversion can use the same
escaping and cutting without the two modules importing each other. Limits count the escaped
text, as Slack does.
"""

from collections.abc import Callable

FALLBACK_TEXT_LIMIT = 3000

_ESCAPED = {"&": "&amp;", "<": "&lt;", ">": "&gt;"}


def _marker(removed: int) -> str:
    return f"… ({removed} more characters)"


def _escape_all(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _prefix_that_fits(text: str, room: int) -> int:
    """How many characters of `text` fit in `room` once escaped; reads no further than needed."""
    used = 0
    for index, char in enumerate(text):
        used += len(_ESCAPED.get(char, char))
        if used > room:
            return index
    return len(text)


def escape(text: str, limit: int | None = None) -> str:
    """Untrusted text made literal for mrkdwn. With a limit, the escaped text fits it, is never
    cut inside an entity, and the marker counts the characters of `text` left out."""
    if limit is None or _prefix_that_fits(text, limit) == len(text):
        return _escape_all(text)
    kept = _keep(len(text), limit, lambda room: _prefix_that_fits(text, room))
    if kept is None:
        return _escape_all(text[: _prefix_that_fits(text, limit)])
    return _escape_all(text[:kept]) + _marker(len(text) - kept)


def _keep(length: int, limit: int, fit: Callable[[int], int]) -> int | None:
    """How much to keep so that it and the marker counting the rest fit `limit`, or None when
    no marker fits. The marker for all `length` characters is the longest there can be; the
    second pass takes back the room a shorter count leaves."""
    longest = len(_marker(length))
    if limit < longest:
        return None
    kept = fit(limit - longest)
    return fit(limit - len(_marker(length - kept)))


def _safe_cut(text: str, cut: int) -> int:
    """Move a cut back so that it falls neither inside an entity nor inside one of our `<…>`."""
    amp = text.rfind("&", max(0, cut - 4), cut)
    if amp != -1 and ";" not in text[amp:cut]:
        cut = amp
    bracket = text.rfind("<", max(0, cut - 300), cut)
    if bracket != -1 and ">" not in text[bracket:cut]:
        cut = bracket
    return cut


def truncate(text: str, limit: int) -> str:
    """Cut text that is already safe mrkdwn to `limit` characters; the marker counts exactly
    the characters removed."""
    if len(text) <= limit:
        return text
    cut = _keep(len(text), limit, lambda room: _safe_cut(text, room))
    if cut is None:
        return text[: _safe_cut(text, limit)]
    return text[:cut] + _marker(len(text) - cut)
