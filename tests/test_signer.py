"""The older API's ManifestSigner(secret): secrets checked as before, Ed25519 keys by HKDF."""

from __future__ import annotations

import hmac
import unicodedata
from hashlib import sha256

import attrs
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from replication.errors import (
    ImmutableError,
    InvalidInputError,
    InvalidTypeError,
    InvalidValueError,
)
from replication.model import Manifest, NetworkPolicy, ResourceSpec
from replication.signer import (
    MIN_SECRET_LENGTH,
    SECRET_MIGRATION_TAG,
    ManifestSigner,
    check_secret,
    signing_key_from_secret,
)
from replication.signing import generate_signing_key, sign_manifest, verify_manifest
from tests.helpers import KEY, T0

# The older implementation's own test secret: public, like every secret in this file.
SECRET = "test-secret"  # noqa: S105
EMPTY_OR_BLANK = ["", " ", "   ", "\t\n", "\u3000" * 10, "\n" * 20]
TOO_SHORT = ["x", "7 chars", "\U0001f600" * 7, "é" * 7]


def rfc5869_seed(secret: bytes, info: bytes) -> bytes:
    """HKDF-SHA256 with no salt and 32 bytes of output, written as RFC 5869 section 2 does."""
    prk = hmac.new(bytes(32), secret, sha256).digest()
    return hmac.new(prk, info + b"\x01", sha256).digest()


def manifest(**overrides: object) -> Manifest:
    values: dict[str, object] = {
        "worker_id": "abc123",
        "parent_id": None,
        "depth": 0,
        "state_snapshot": {"task": "test"},
        "issued_at": T0,
        "resources": ResourceSpec(0.5, 256, NetworkPolicy(allow_external=False)),
    }
    values.update(overrides)
    return Manifest(**values)  # type: ignore[arg-type]


def seed_of(secret: str) -> bytes:
    return signing_key_from_secret(secret).private_key.private_bytes_raw()


class TestSigningKeyFromSecret:
    # Spec: R-MIGRATE-2.
    @pytest.mark.parametrize("secret", [SECRET, " spaced secret ", "pässwörd-ü-\U0001f600"])
    def test_the_seed_is_hkdf_sha256_of_the_utf8_secret_under_the_tag(self, secret):
        """The seed is RFC 5869 HKDF-SHA256: no salt, the tag as info, 32 bytes."""
        expected = rfc5869_seed(secret.encode("utf-8"), b"replication.hmac-secret-migration.v1")
        assert expected == seed_of(secret)
        assert expected == HKDF(hashes.SHA256(), 32, None, SECRET_MIGRATION_TAG).derive(
            secret.encode("utf-8")
        )

    # Spec: R-MIGRATE-2.
    def test_the_known_answer(self):
        """test-secret -> seed -> public key -> key id, fixed for every implementation."""
        key = signing_key_from_secret(SECRET)
        assert (
            key.private_key.private_bytes_raw().hex()
        ) == "df78c9274dd8776309eee637ee1e603574a3685c2074c81f493800070a74d1d5"
        assert (
            key.verifying_key.raw.hex()
        ) == "b8cbc86319b6f7d942d247b835e23e56ffc540eaf8b95d37a69681041eb25840"
        assert key.verifying_key.key_id == "b47c53c85781057d"

    # Spec: R-MIGRATE-2.
    def test_the_tag_separates_this_key_from_other_uses_of_the_secret(self):
        """Without the tag (or with another) the same secret gives another seed."""
        secret = SECRET.encode()
        assert seed_of(SECRET) != rfc5869_seed(secret, b"")
        assert seed_of(SECRET) != rfc5869_seed(secret, b"replication.hmac-secret-migration.v2")
        assert seed_of(SECRET) != hmac.new(secret, b"", sha256).digest()

    # Spec: R-MIGRATE-2.
    def test_the_secret_is_used_exactly_as_given(self):
        """No trimming and no Unicode normalisation: other bytes, another key."""
        assert seed_of(" spaced secret ") != seed_of("spaced secret")
        composed = unicodedata.normalize("NFC", "pässwörd-é")
        decomposed = unicodedata.normalize("NFD", composed)
        assert composed != decomposed
        assert seed_of(composed) != seed_of(decomposed)

    def test_the_same_secret_always_derives_the_same_key(self):
        """Deterministic: a controller restarted with its secret keeps its public key."""
        assert signing_key_from_secret(SECRET).verifying_key == (
            signing_key_from_secret(SECRET).verifying_key
        )
        assert signing_key_from_secret(SECRET).verifying_key != (
            signing_key_from_secret(SECRET + "!").verifying_key
        )


class TestCheckSecret:
    # Spec: R-MIGRATE-1.
    @pytest.mark.parametrize("secret", EMPTY_OR_BLANK, ids=repr)
    def test_invalid_empty_or_whitespace_secret(self, secret):
        """Refused as the older API refused it, with its phrase, naming the field."""
        with pytest.raises(InvalidValueError, match="secret must not be empty") as caught:
            check_secret(secret)
        assert caught.value.field == "secret"
        assert isinstance(caught.value, ValueError)

    # Spec: R-MIGRATE-1.
    @pytest.mark.parametrize("secret", TOO_SHORT, ids=repr)
    def test_invalid_short_secret_is_refused_without_repeating_it(self, secret):
        """Fewer than 8 characters is refused; the message never contains the secret."""
        with pytest.raises(InvalidValueError, match="secret must be at least 8 characters") as e:
            check_secret(secret)
        assert secret not in str(e.value)
        assert secret != e.value.got
        assert e.value.got.startswith(f"<a secret of {len(secret)} character")
        assert e.value.got.endswith(", withheld>")

    # Spec: R-MIGRATE-1.
    @pytest.mark.parametrize("secret", [b"bytes-secret", None, 12345678, bytearray(b"12345678")])
    def test_invalid_secret_of_another_type(self, secret):
        """Only text: bytes, None and numbers are usage errors (TypeError), never echoed."""
        with pytest.raises(InvalidTypeError) as caught:
            check_secret(secret)
        assert isinstance(caught.value, TypeError)
        assert caught.value.field == "secret"
        assert f"<{type(secret).__name__}, withheld>" == caught.value.got

    # Spec: R-MIGRATE-1.
    def test_invalid_secret_with_a_lone_surrogate(self):
        """A secret with no UTF-8 encoding has no key; refused, not crashed on."""
        with pytest.raises(InvalidValueError, match="no lone surrogates"):
            check_secret("abcdefg\ud800")

    # Spec: R-MIGRATE-1.
    def test_length_counts_characters_and_eight_is_enough(self):
        """The bound is on characters (code points), as the older len(secret) was."""
        assert MIN_SECRET_LENGTH == 8 == ManifestSigner.MIN_SECRET_LENGTH
        assert check_secret("x" * 8).decode() == "x" * 8
        assert ("\U0001f600" * 8).encode() == check_secret("\U0001f600" * 8)
        with pytest.raises(InvalidValueError):
            check_secret("\U0001f600" * 7)  # 28 bytes, still 7 characters
        assert check_secret(" padded ") == b" padded "  # whitespace counts, and is kept

    def test_a_str_subclass_is_read_by_its_characters(self):
        """A subclass cannot lie its way past the checks or change the key."""

        class Liar(str):
            def __len__(self) -> int:
                return 100

            def strip(self, chars: str | None = None) -> str:
                return "not blank"

            def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
                return b"something else entirely"

        with pytest.raises(InvalidValueError, match="secret must not be empty"):
            check_secret(Liar("   "))
        with pytest.raises(InvalidValueError, match="at least 8"):
            check_secret(Liar("short"))
        assert seed_of(SECRET) == seed_of(Liar(SECRET))

    def test_every_refusal_is_an_invalid_input_error(self):
        """One family to catch: InvalidInputError, under ReplicationError."""
        for secret in [*EMPTY_OR_BLANK, *TOO_SHORT, None]:
            with pytest.raises(InvalidInputError):
                signing_key_from_secret(secret)  # type: ignore[arg-type]
            with pytest.raises(InvalidInputError):
                ManifestSigner(secret)  # type: ignore[arg-type]


class TestManifestSigner:
    # Spec: R-MIGRATE-3.
    def test_sign_returns_a_signed_copy_and_leaves_the_original_unsigned(self):
        """Manifests are frozen: sign returns the signed copy, the original is unchanged."""
        signer = ManifestSigner(SECRET)
        original = manifest()
        signed = signer.sign(original)
        assert original.signature == ""
        assert signed.signature.startswith(f"ed25519:{signer.verifying_key.key_id}:")
        assert attrs.evolve(signed, signature="") == original
        assert signer.verify(signed)
        assert not signer.verify(original)

    # Spec: R-MIGRATE-2, R-MIGRATE-3.
    def test_signatures_are_ordinary_ed25519_manifest_signatures(self):
        """The same signature as signing with the derived key; the public key alone verifies."""
        signer = ManifestSigner(SECRET)
        signed = signer.sign(manifest())
        assert sign_manifest(manifest(), signing_key_from_secret(SECRET)) == signed
        verify_manifest(signed, signer.verifying_key)
        assert signer.signing_key.verifying_key == signer.verifying_key

    # Spec: R-MIGRATE-3.
    @pytest.mark.parametrize(
        "change",
        [
            {"depth": 99},
            {"worker_id": "abc124"},
            {"parent_id": "someone"},
            {"state_snapshot": {"task": "escape"}},
            {"issued_at": T0.replace(microsecond=1)},
            {"resources": ResourceSpec(99.0, 256)},
            {"resources": ResourceSpec(0.5, 99999)},
            {"resources": ResourceSpec(0.5, 256, NetworkPolicy(allow_external=True))},
            {"resources": ResourceSpec(0.5, 256, NetworkPolicy(allow_controller=False))},
        ],
        ids=lambda change: next(iter(change)),
    )
    def test_any_field_changed_after_signing_fails_verification(self, change):
        """Tamper detection as before: depth, limits, network policy, anything signed."""
        signer = ManifestSigner(SECRET)
        signed = signer.sign(manifest())
        assert signer.verify(signed)
        assert not signer.verify(attrs.evolve(signed, **change))

    # Spec: R-MIGRATE-3.
    @pytest.mark.parametrize(
        "signature",
        ["", "deadbeef", "bad", "signed", "0" * 64, "ed25519:" + "0" * 16 + ":" + "0" * 128],
    )
    def test_a_malformed_or_foreign_signature_returns_false(self, signature):
        """Placeholders, an older HMAC hex digest and an all-zero signature do not verify."""
        signer = ManifestSigner(SECRET)
        assert not signer.verify(attrs.evolve(signer.sign(manifest()), signature=signature))

    # Spec: R-MIGRATE-3.
    def test_another_secret_or_key_does_not_verify(self):
        """A signature by another secret's key, or any other key, is refused."""
        signed = ManifestSigner(SECRET).sign(manifest())
        assert not ManifestSigner("another-secret").verify(signed)
        assert not ManifestSigner(SECRET).verify(sign_manifest(manifest(), KEY))
        assert signed.signature != ManifestSigner("another-secret").sign(manifest()).signature

    # Spec: R-MIGRATE-3.
    def test_verify_refuses_what_is_not_a_manifest(self):
        """A dict or None is bad input (TypeError), not a failed verification."""
        signer = ManifestSigner(SECRET)
        for thing in ({"signature": ""}, None, "manifest"):
            with pytest.raises(InvalidTypeError):
                signer.verify(thing)  # type: ignore[arg-type]

    def test_snapshot_insertion_order_does_not_change_the_signature(self):
        """Canonical bytes: {"b": 2, "a": 1} and {"a": 1, "b": 2} sign identically."""
        signer = ManifestSigner(SECRET)
        assert signer.sign(manifest(state_snapshot={"b": 2, "a": 1})).signature == (
            signer.sign(manifest(state_snapshot={"a": 1, "b": 2})).signature
        )

    def test_from_signing_key_wraps_a_key_that_came_from_elsewhere(self):
        """A controller with a generated key offers the same sign/verify interface."""
        key = generate_signing_key()
        signer = ManifestSigner.from_signing_key(key)
        assert key is signer.signing_key
        assert signer.verify(sign_manifest(manifest(), key))
        with pytest.raises(InvalidTypeError):
            ManifestSigner.from_signing_key(SECRET)  # type: ignore[arg-type]

    def test_it_is_immutable_and_its_repr_hides_the_secret(self):
        """No key swapping after construction; the repr shows the key id only."""
        signer = ManifestSigner(SECRET)
        with pytest.raises(ImmutableError):
            signer._key = KEY  # type: ignore[misc]
        with pytest.raises(ImmutableError):
            del signer._key
        assert repr(signer) == "<ManifestSigner key_id=b47c53c85781057d>"
        assert SECRET not in repr(signer)
