"""The older API's ``ManifestSigner(secret)``, kept as a migration path for HMAC secrets.

The older implementation signed manifests with HMAC-SHA256 under a shared
secret string. Code written against it keeps working: the secret is checked
as the older API checked it (not empty, not only whitespace, at least
:data:`MIN_SECRET_LENGTH` characters), then derives an Ed25519 signing key
(specs/03-manifest-format.md, R-MIGRATE-1 to R-MIGRATE-3)::

    seed = HKDF-SHA256(ikm=UTF-8(secret), salt=none, info=SECRET_MIGRATION_TAG, length=32)
    key  = the Ed25519 key whose RFC 8032 seed is ``seed``

so the same secret always gives the same key, and signatures are ordinary
Ed25519 manifest signatures (:mod:`replication.signing`), tamper detection
included.

What this gives: an HMAC deployment moves to Ed25519 without handing out a
new key, and anyone who only has to *verify* needs just the public key
(:attr:`ManifestSigner.verifying_key`), never the secret. What it does not
give: anyone holding the secret can still sign, as with HMAC; and HKDF does
not stretch a weak secret, so a secret that can be guessed can be recovered
offline from the public key. A new deployment generates its key instead
(:func:`replication.signing.generate_signing_key`).
"""

from __future__ import annotations

from typing import ClassVar, NoReturn

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from replication.errors import (
    BadSignatureError,
    ImmutableError,
    InvalidTypeError,
    InvalidValueError,
)
from replication.model import Manifest
from replication.signing import SigningKey, VerifyingKey, sign_manifest, verify_manifest

__all__ = [
    "MIN_SECRET_LENGTH",
    "SECRET_MIGRATION_TAG",
    "ManifestSigner",
    "check_secret",
    "signing_key_from_secret",
]

#: The HKDF ``info`` (domain separation): a key derived for this purpose is
#: never the key some other use of the same secret derives. A new derivation
#: gets a new tag, never a silent change.
SECRET_MIGRATION_TAG = b"replication.hmac-secret-migration.v1"
#: The older API's shortest accepted secret, in characters.
MIN_SECRET_LENGTH = 8


def check_secret(secret: object) -> bytes:
    """Return the UTF-8 bytes of ``secret`` if the older API would have accepted it.

    Refused, naming the field and what was expected but never echoing a usable
    secret: anything but a string, an empty or whitespace-only string, one
    shorter than :data:`MIN_SECRET_LENGTH` characters, one with a lone surrogate.
    """
    if not isinstance(secret, str):
        raise InvalidTypeError(
            "secret", "a string (the older API's HMAC secret)", _withheld(secret)
        )
    # The characters themselves, as an exact str: a subclass could lie about
    # its length, its whitespace or its encoding.
    text = str.__str__(secret)
    if not text.strip():
        raise InvalidValueError(
            "secret",
            "text with a character other than whitespace "
            "(secret must not be empty or whitespace: an empty key authenticates nothing)",
            text,
        )
    if len(text) < MIN_SECRET_LENGTH:
        raise InvalidValueError(
            "secret", f"at least {MIN_SECRET_LENGTH} characters long", _withheld(text)
        )
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidValueError(
            "secret", "valid Unicode text (no lone surrogates)", _withheld(text)
        ) from None


def signing_key_from_secret(secret: str) -> SigningKey:
    """Return the Ed25519 signing key an older HMAC ``secret`` derives (R-MIGRATE-2).

    Raises :class:`~replication.errors.InvalidValueError` or
    :class:`~replication.errors.InvalidTypeError` for a secret the older API
    refused (see :func:`check_secret`).
    """
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=SECRET_MIGRATION_TAG).derive(
        check_secret(secret)
    )
    return SigningKey(Ed25519PrivateKey.from_private_bytes(seed))


def _withheld(value: object) -> str:
    """Describe a refused secret without repeating it: a near miss may be the real one."""
    if isinstance(value, str):
        return f"<a secret of {len(value)} character{'' if len(value) == 1 else 's'}, withheld>"
    return f"<{type(value).__name__}, withheld>"


class ManifestSigner:
    """Signs and verifies manifests with the key a secret derives; the older API's signer.

    ``sign`` returns the signed manifest; ``verify`` returns whether a
    manifest's signature verifies under this signer's public key. Immutable;
    its ``repr`` shows the key id, never the secret.
    """

    __slots__ = ("_key",)

    #: As on the older class.
    MIN_SECRET_LENGTH: ClassVar[int] = MIN_SECRET_LENGTH

    _key: SigningKey

    def __init__(self, secret: str) -> None:
        object.__setattr__(self, "_key", signing_key_from_secret(secret))

    @classmethod
    def from_signing_key(cls, key: SigningKey) -> ManifestSigner:
        """Return a signer for an Ed25519 key that came from elsewhere (no secret involved)."""
        if not isinstance(key, SigningKey):
            raise InvalidTypeError("key", "a replication.signing.SigningKey", key)
        signer = object.__new__(cls)
        object.__setattr__(signer, "_key", key)
        return signer

    @property
    def signing_key(self) -> SigningKey:
        """The derived Ed25519 signing key (private: whoever holds it can sign)."""
        return self._key

    @property
    def verifying_key(self) -> VerifyingKey:
        """The public key: all a verifier needs, and safe to publish."""
        return self._key.verifying_key

    def sign(self, manifest: Manifest) -> Manifest:
        """Return a copy of ``manifest`` signed with this signer's key.

        The older ``sign`` set the signature on the manifest it was given and
        returned that same object; manifests are frozen now, so use the
        returned copy (``manifest = signer.sign(manifest)`` works with both).
        """
        return sign_manifest(manifest, self._key)

    def verify(self, manifest: Manifest) -> bool:
        """Return whether ``manifest``'s signature verifies under this signer's public key.

        A malformed signature, another key's signature and a field changed
        after signing all return ``False``; something that is not a manifest
        raises :class:`~replication.errors.InvalidTypeError`.
        """
        if not isinstance(manifest, Manifest):
            raise InvalidTypeError("manifest", "a Manifest", manifest)
        try:
            verify_manifest(manifest, self._key.verifying_key)
        except BadSignatureError:
            return False
        return True

    def __setattr__(self, name: str, value: object) -> NoReturn:
        raise ImmutableError(f"ManifestSigner is immutable: {name!r} cannot be assigned")

    def __delattr__(self, name: str) -> NoReturn:
        raise ImmutableError(f"ManifestSigner is immutable: {name!r} cannot be deleted")

    def __repr__(self) -> str:
        return f"<ManifestSigner key_id={self._key.verifying_key.key_id}>"
