"""Optional encryption at rest for what people wrote: Fernet keys from THREADGATE_ENCRYPTION_KEY.

Sealed text carries a marker so that turning encryption on needs no migration: rows written
before it read back as they are, and only marked rows are decrypted. Several keys make rotation
possible without downtime: the first seals, every one of them opens, and `reencrypt` moves old
rows to the first key at the operator's pace.

A row that no key opens is an error, never an empty or skipped value: silently losing part of a
conversation (or a paused run) is worse than stopping and telling the operator.
"""

from collections.abc import Sequence
from typing import overload

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

SETTING = "THREADGATE_ENCRYPTION_KEY"
MARKER = "tgenc:v1:"


class DecryptionError(Exception):
    """Stored data that the configured keys cannot open; the message is safe to log."""


_NO_KEY_FITS = f"stored data cannot be decrypted with {SETTING} (wrong or rotated-out key?)"
_NO_KEY_SET = f"stored data is encrypted but {SETTING} is not set"


class Cipher:
    """The configured keys. It never shows them: not in repr, not in any error message."""

    __slots__ = ("_fernet", "_key_count", "_newest")

    def __init__(self, keys: Sequence[str | bytes]) -> None:
        if isinstance(keys, str | bytes):
            raise TypeError("Cipher takes a list of keys, not one key")
        if not keys:
            raise ValueError(f"{SETTING} holds no key")
        fernets = []
        for position, key in enumerate(keys, start=1):
            try:
                fernets.append(Fernet(key))
            except (ValueError, TypeError):
                # `from None`: the underlying error may quote the decoded key material.
                raise ValueError(
                    f"{SETTING}: key {position} of {len(keys)} is not a Fernet key "
                    "(32 url-safe base64-encoded bytes; make one with "
                    "`python -c 'from cryptography.fernet import Fernet; "
                    "print(Fernet.generate_key().decode())'`)"
                ) from None
        self._fernet = MultiFernet(fernets)
        self._newest = fernets[0]
        self._key_count = len(fernets)

    @classmethod
    def from_setting(cls, value: str | None) -> "Cipher | None":
        """None when the setting is unset or blank: encryption is opt-in."""
        if value is None or not value.strip():
            return None
        keys = [part.strip() for part in value.split(",")]
        if any(not key for key in keys):
            raise ValueError(f"{SETTING}: empty entry in the comma-separated key list")
        return cls(keys)

    @staticmethod
    def generate_key() -> str:
        return Fernet.generate_key().decode("ascii")

    def __repr__(self) -> str:
        return f"Cipher(<{self._key_count} key(s)>)"

    @staticmethod
    def is_sealed(stored: str) -> bool:
        return stored.startswith(MARKER)

    def encrypt(self, text: str) -> str:
        return MARKER + self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str) -> str:
        """Unmarked text was stored before encryption was switched on: it is returned as is."""
        if not self.is_sealed(stored):
            return stored
        try:
            return self._fernet.decrypt(stored[len(MARKER) :]).decode("utf-8")
        except (InvalidToken, UnicodeDecodeError):
            raise DecryptionError(_NO_KEY_FITS) from None

    def is_current(self, stored: str) -> bool:
        """Sealed with the first key: `reencrypt` has nothing to do, so a rerun skips it."""
        if not self.is_sealed(stored):
            return False
        try:
            self._newest.decrypt(stored[len(MARKER) :])
        except InvalidToken:
            return False
        return True

    def reencrypt(self, stored: str) -> str:
        """Seal with the first key whatever opened it, so an old key can then be dropped.

        Unmarked (pre-encryption) text is sealed too: rotation doubles as the backfill.
        """
        return self.encrypt(self.decrypt(stored))


@overload
def seal(cipher: Cipher | None, text: str) -> str: ...
@overload
def seal(cipher: Cipher | None, text: None) -> None: ...
@overload
def seal(cipher: Cipher | None, text: str | None) -> str | None: ...
def seal(cipher: Cipher | None, text: str | None) -> str | None:
    """Encrypt when encryption is on; store as is when it is off."""
    if cipher is None or text is None:
        return text
    return cipher.encrypt(text)


@overload
def unseal(cipher: Cipher | None, stored: str) -> str: ...
@overload
def unseal(cipher: Cipher | None, stored: None) -> None: ...
@overload
def unseal(cipher: Cipher | None, stored: str | None) -> str | None: ...
def unseal(cipher: Cipher | None, stored: str | None) -> str | None:
    """Decrypt sealed text. With encryption off, sealed text is an error, not a value: passing
    the token on would show ciphertext to people or feed it to the model.
    """
    if stored is None:
        return None
    if cipher is None:
        if Cipher.is_sealed(stored):
            raise DecryptionError(_NO_KEY_SET)
        return stored
    return cipher.decrypt(stored)
