"""What a model, a tool or a person wrote reaches the console's terminal shown, never obeyed."""

import pytest

from bot.console.terminal import printable


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("plain text, ünïcode and emoji 👩‍💻", "plain text, ünïcode and emoji 👩‍💻"),
        ("lines\nand\ttabs stay", "lines\nand\ttabs stay"),
        ("\x1b[2J\x1b[31mred", "\\x1b[2J\\x1b[31mred"),
        ("carriage\rreturn", "carriage\\rreturn"),
        ("c1 \x9b control", "c1 \\x9b control"),
        ("bidi \u202eevil\u202c", "bidi \\u202eevil\\u202c"),
    ],
)
def test_control_characters_are_shown_as_escapes(text: str, shown: str) -> None:
    assert printable(text) == shown
