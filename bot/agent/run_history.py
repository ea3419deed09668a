"""The SDK session one run works with: the thread's history, written when the run settles.

The SDK's SQLAlchemySession writes the user's message as the run starts and each turn as it
ends, every write its own transaction of five or six statements. Here the run reads the history
once (in the transaction that starts it, see `repositories.begin_run`), its new items wait in
memory, and `new_rows()` hands them to the transaction that records how the run ended or paused.
So history and run state always agree: a run cut short by a crash leaves nothing behind, and
its retry does not repeat the user's message. The rows keep the SDK's table layout.

Items are sealed at rest when a key is set. Why not the SDK's EncryptedSession: it drops items
it cannot decrypt without a word (a wrong key would quietly hand the model half a conversation)
and derives one key per session from a single master, so keys cannot be rotated. Here an
unreadable item stops the run with DecryptionError, and storage.crypto's key list (first seals,
all open) does rotation. Rows written before encryption was switched on read back as they are.
The envelope lives in storage.history, so `python -m bot reencrypt` can reseal it.

It implements the SDK's `Session` protocol structurally: only `runs`, `agent` and the tools
import `agents` at run time (DESIGN.md), so the SDK types are for the type checker only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, cast

from storage import history
from storage.crypto import Cipher
from storage.database import Database

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory import SessionSettings


def open_row(cipher: Cipher | None, row: str) -> TResponseInputItem | None:
    return cast("TResponseInputItem | None", history.open_item(cipher, row))


class RunHistory:
    """One run's view of its thread's conversation; never shared between runs.

    `stored` is what the run's first transaction read: the newest `stored_limit` rows, oldest
    first (None: not read yet). Reads beyond it go to the database.
    """

    def __init__(
        self,
        db: Database,
        thread_key: str,
        *,
        cipher: Cipher | None,
        settings: SessionSettings | None,
        stored: list[str] | None = None,
        stored_limit: int | None = None,
    ) -> None:
        self.db = db
        self.cipher = cipher
        # Plain attributes: the SDK's protocol declares both settable.
        self.session_id: str = thread_key
        self.session_settings: SessionSettings | None = settings
        # Opened on first use, so an unreadable row fails the run rather than its set-up.
        self._rows = stored
        self._rows_complete = stored is not None and (
            stored_limit is None or len(stored) < stored_limit
        )
        self._opened: list[TResponseInputItem] | None = None
        self._added: list[str] = []

    def new_rows(self) -> list[str]:
        """What this run added, sealed and in order, for the transaction that settles it."""
        return [history.seal_item(self.cipher, row) for row in self._added]

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        if limit is None and self.session_settings is not None:
            limit = self.session_settings.limit
        added = [cast("TResponseInputItem", json.loads(row)) for row in self._added]
        if limit is not None:
            if limit <= 0:
                return []
            if limit <= len(added):
                return added[len(added) - limit :]
        wanted = None if limit is None else limit - len(added)
        return await self._newest_stored(wanted) + added

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        self._added.extend(json.dumps(item, separators=(",", ":")) for item in items)

    async def pop_item(self) -> TResponseInputItem | None:
        if self._added:
            return cast("TResponseInputItem", json.loads(self._added.pop()))
        # A pop under a wrong key must not delete a row that it then cannot return.
        newest = await history.read_newest(self.db, thread_key=self.session_id, limit=1)
        if not newest:
            return None
        open_row(self.cipher, newest[-1])
        popped = await history.pop_newest(self.db, thread_key=self.session_id)
        self._rows = self._opened = None
        return None if popped is None else open_row(self.cipher, popped)

    async def clear_session(self) -> None:
        await history.clear(self.db, thread_key=self.session_id)
        self._added.clear()
        self._rows, self._rows_complete, self._opened = [], True, None

    async def _newest_stored(self, wanted: int | None) -> list[TResponseInputItem]:
        rows = self._rows
        if rows is None or not (
            self._rows_complete or (wanted is not None and wanted <= len(rows))
        ):
            rows = await history.read_newest(self.db, thread_key=self.session_id, limit=wanted)
            self._rows, self._opened = rows, None
            self._rows_complete = wanted is None or len(rows) < wanted
        if self._opened is None:
            opened = (open_row(self.cipher, row) for row in rows)
            self._opened = [item for item in opened if item is not None]
        items = self._opened
        return items if wanted is None else items[max(len(items) - wanted, 0) :]
