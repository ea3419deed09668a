"""Encryption at rest: keys from the setting, rotation, and failures that say what is wrong."""

import pytest

from storage.crypto import MARKER, Cipher, DecryptionError, seal, unseal

OLD = Cipher.generate_key()
NEW = Cipher.generate_key()
WRONG_KEY_MESSAGE = (
    "stored data cannot be decrypted with THREADGATE_ENCRYPTION_KEY (wrong or rotated-out key?)"
)


def _cipher(setting: str) -> Cipher:
    cipher = Cipher.from_setting(setting)
    assert cipher is not None
    return cipher


def test_sealed_text_round_trips_and_hides_the_plaintext() -> None:
    cipher = _cipher(OLD)
    text = "delete customer 42 — ünïcode ✓"

    stored = cipher.encrypt(text)

    assert stored.startswith(MARKER)
    assert text not in stored
    assert cipher.decrypt(stored) == text
    # Fernet tokens are randomised: equal texts do not give equal rows.
    assert cipher.encrypt(text) != stored


def test_rotation_reads_old_rows_and_reseals_them_with_the_new_key() -> None:
    stored_with_old = _cipher(OLD).encrypt("secret")
    rotated = _cipher(f"{NEW}, {OLD}")

    assert rotated.decrypt(stored_with_old) == "secret"
    resealed = rotated.reencrypt(stored_with_old)

    assert resealed != stored_with_old
    assert _cipher(NEW).decrypt(resealed) == "secret"
    with pytest.raises(DecryptionError):
        _cipher(OLD).decrypt(resealed)
    # The first key seals new data.
    assert _cipher(NEW).decrypt(rotated.encrypt("fresh")) == "fresh"


def test_reencrypt_also_seals_rows_written_before_encryption_was_on() -> None:
    cipher = _cipher(NEW)

    resealed = cipher.reencrypt("plain old row")

    assert cipher.is_sealed(resealed)
    assert cipher.decrypt(resealed) == "plain old row"


def test_a_wrong_key_fails_loudly_with_a_message_that_names_no_key() -> None:
    stored = _cipher(OLD).encrypt("secret")

    with pytest.raises(DecryptionError) as caught:
        _cipher(NEW).decrypt(stored)

    assert str(caught.value) == WRONG_KEY_MESSAGE
    assert OLD not in str(caught.value)
    assert NEW not in str(caught.value)
    # The Fernet error is not chained in, so no traceback shows more than the message.
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_a_tampered_token_is_refused() -> None:
    cipher = _cipher(OLD)
    stored = cipher.encrypt("secret")
    tampered = stored[:-6] + ("A" if stored[-6] != "A" else "B") + stored[-5:]

    with pytest.raises(DecryptionError, match="cannot be decrypted"):
        cipher.decrypt(tampered)


def test_plaintext_written_before_encryption_reads_back_unchanged() -> None:
    cipher = _cipher(OLD)

    assert (
        cipher.decrypt('{"role": "user", "content": "hi"}') == '{"role": "user", "content": "hi"}'
    )
    assert cipher.decrypt("") == ""


def test_seal_and_unseal_pass_through_when_encryption_is_off() -> None:
    assert seal(None, "text") == "text"
    assert unseal(None, "text") == "text"
    assert seal(None, None) is None
    assert unseal(None, None) is None
    cipher = _cipher(OLD)
    assert seal(cipher, None) is None
    assert unseal(cipher, seal(cipher, "text")) == "text"


def test_sealed_text_with_encryption_switched_off_is_an_error_not_a_value() -> None:
    stored = _cipher(OLD).encrypt("secret")

    with pytest.raises(DecryptionError, match="THREADGATE_ENCRYPTION_KEY is not set"):
        unseal(None, stored)


@pytest.mark.parametrize("setting", [None, "", "   "])
def test_an_unset_setting_means_no_encryption(setting: str | None) -> None:
    assert Cipher.from_setting(setting) is None


@pytest.mark.parametrize(
    ("setting", "position"),
    [
        ("not-a-fernet-key-but-a-long-secret-value", "key 1 of 1"),
        (f"{OLD},c2VjcmV0LXRvby1zaG9ydA==", "key 2 of 2"),
        (f"{OLD},{OLD[:-2]}", "key 2 of 2"),
    ],
    # Ids that do not hold the random keys: every test worker collects the same tests.
    ids=["not-a-key", "too-short", "truncated"],
)
def test_a_malformed_key_is_refused_without_showing_it(setting: str, position: str) -> None:
    with pytest.raises(ValueError, match="is not a Fernet key") as caught:
        Cipher.from_setting(setting)

    message = str(caught.value)
    assert position in message
    assert "THREADGATE_ENCRYPTION_KEY" in message
    for key in setting.split(","):
        assert key not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


def test_an_empty_entry_in_the_key_list_is_refused() -> None:
    with pytest.raises(ValueError, match="empty entry"):
        Cipher.from_setting(f"{NEW},,{OLD}")


def test_the_cipher_never_shows_its_keys() -> None:
    cipher = _cipher(f"{NEW},{OLD}")

    assert repr(cipher) == "Cipher(<2 key(s)>)"
    assert NEW not in repr(cipher)
