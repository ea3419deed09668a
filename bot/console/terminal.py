"""The console's standard input and output.

Lines are read from the file descriptor on a daemon thread, so a line typed while the agent
works waits its turn and an exit never waits for a read that may not come. What the model, a
tool or a person wrote reaches the terminal with its control characters shown, never obeyed: an
escape sequence in an argument must not recolour, hide or rewrite what the approver reads.
"""

import asyncio
import contextlib
import os
import threading
from typing import TextIO

# Bidirectional overrides and isolates reorder what is shown around them.
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """`text` with control characters (but line breaks and tabs) shown as escapes."""
    return "".join(
        ch.encode("unicode_escape").decode("ascii")
        if (ch not in "\n\t" and (ord(ch) < 0x20 or 0x7F <= ord(ch) < 0xA0)) or ch in _BIDI
        else ch
        for ch in text
    )


class Terminal:
    def __init__(self, stdin: int, stdout: TextIO, stderr: TextIO, *, interactive: bool) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.interactive = interactive  # a person at a terminal, not a file or a pipe
        self._lines: asyncio.Queue[str | None] = asyncio.Queue()
        self._ended = False
        self._reader: threading.Thread | None = None

    def _read_lines(self, loop: asyncio.AbstractEventLoop) -> None:
        """Reads the file descriptor itself: a thread blocked in a buffered reader would hold
        its lock and abort the interpreter's shutdown."""

        def put(line: str | None) -> None:
            with contextlib.suppress(RuntimeError):  # the loop closed first: nobody waits
                loop.call_soon_threadsafe(self._lines.put_nowait, line)

        pending = b""
        try:
            while chunk := os.read(self.stdin, 65536):
                *lines, pending = (pending + chunk).split(b"\n")
                for raw in lines:
                    put(raw.decode("utf-8", "replace").removesuffix("\r"))
            if pending:
                put(pending.decode("utf-8", "replace").removesuffix("\r"))
        except OSError:
            pass  # standard input went away: that is its end
        finally:
            put(None)

    async def read(self, prompt: str = "") -> str | None:
        """The next line, or None at the end of input (and every time after it)."""
        if self._reader is None:
            self._reader = threading.Thread(
                target=self._read_lines,
                args=(asyncio.get_running_loop(),),
                name="console input",
                daemon=True,
            )
            self._reader.start()
        if prompt:
            self.stdout.write(printable(prompt))
            self.stdout.flush()
        if self._ended:
            return None
        line = await self._lines.get()
        if line is None:
            self._ended = True
            if prompt:
                self.stdout.write("\n")
        return line

    def say(self, text: str) -> None:
        """Untrusted text is fine here: `printable` is applied."""
        self.stdout.write(printable(text) + "\n")
        self.stdout.flush()

    def fail(self, line: str) -> None:
        """Why the console cannot start: one line on standard error, like `python -m bot`'s."""
        self.stderr.write(f"threadgate: {printable(line)}\n")
        self.stderr.flush()
