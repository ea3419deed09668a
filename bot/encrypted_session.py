"""Thread history encrypted at rest, in front of the SDK's SQLAlchemySession.

Why not the SDK's own EncryptedSession: it drops items it cannot decrypt without a word (a wrong
key would quietly hand the model half a conversation) and it derives one key per session from a
single master, so keys cannot be rotated. Here an unreadable item stops the run with
DecryptionError, and the key list of storage.crypto (first seals, all open) does rotation.

Each item becomes one envelope row, so the SDK's history limit still counts real items, and the
underlying session keeps doing the locking, ordering and SQLite retries it already does well.
Rows written before encryption was switched on have no envelope and read back as they are.

It implements the SDK's `Session` protocol structurally rather than subclassing `SessionABC`:
the SDK recommends the protocol for code outside it, and only `runs`, `agent` and the tools may
import `agents` at run time (DESIGN.md), so the SDK types below are for the type checker only.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, cast

from storage.crypto import Cipher, DecryptionError, unseal

if TYPE_CHECKING:
    from agents.items import TResponseInputItem
    from agents.memory import Session, SessionSettings

ENVELOPE_KEY = "threadgate_sealed"
ENVELOPE_VERSION = 1


class SealedSession:
    """Encrypts each history item on the way in and decrypts it on the way out.

    With `cipher=None` it writes plain items and still refuses sealed ones, so a deployment that
    switches encryption off fails loudly instead of sending ciphertext to the model.
    """

    def __init__(self, underlying: Session, cipher: Cipher | None) -> None:
        self.underlying = underlying
        self.cipher = cipher
        # A plain attribute, not a property: the SDK's protocol declares it settable.
        self.session_id: str = underlying.session_id

    @property
    def session_settings(self) -> SessionSettings | None:
        """The underlying session's, so the history limit is applied where rows are counted."""
        return self.underlying.session_settings

    @session_settings.setter
    def session_settings(self, value: SessionSettings | None) -> None:
        self.underlying.session_settings = value

    async def get_items(self, limit: int | None = None) -> list[TResponseInputItem]:
        stored = await self.underlying.get_items(limit)
        return [self._open(item) for item in stored]

    async def add_items(self, items: list[TResponseInputItem]) -> None:
        if not items:
            return
        await self.underlying.add_items([self._seal(item) for item in items])

    async def pop_item(self) -> TResponseInputItem | None:
        """Checks the newest item opens before removing it: a pop under a wrong key must not
        delete a row that it then cannot return."""
        newest = await self.underlying.get_items(1)
        if not newest:
            return None
        self._open(newest[-1])
        popped = await self.underlying.pop_item()
        return None if popped is None else self._open(popped)

    async def clear_session(self) -> None:
        await self.underlying.clear_session()

    def _seal(self, item: TResponseInputItem) -> TResponseInputItem:
        if self.cipher is None:
            return item
        payload = self.cipher.encrypt(json.dumps(item, separators=(",", ":")))
        envelope = {ENVELOPE_KEY: ENVELOPE_VERSION, "payload": payload}
        return cast("TResponseInputItem", envelope)

    def _open(self, item: TResponseInputItem) -> TResponseInputItem:
        raw: Any = item
        if not isinstance(raw, dict) or ENVELOPE_KEY not in raw:
            return item
        payload = raw.get("payload")
        if raw[ENVELOPE_KEY] != ENVELOPE_VERSION or not isinstance(payload, str):
            raise DecryptionError("a stored history item has an unknown envelope format")
        if not Cipher.is_sealed(payload):
            raise DecryptionError("a stored history item has an unknown envelope format")
        return cast("TResponseInputItem", json.loads(unseal(self.cipher, payload)))
