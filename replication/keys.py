"""Ed25519 keys, and the signature strings they make.

A signature string reads ``ed25519:<key id>:<signature>``: the algorithm, the
key id (the first 8 bytes of SHA-256 over the raw public key, in hex) and the
64-byte signature in lowercase hex. Keys are checked at the boundary: a public
key of small order, off the curve or not canonically encoded is refused
(:mod:`replication._ed25519`).

The keys sit below the records that hold one (the controller's state holds its
verifying key) and import none of them; :mod:`replication.signing` signs and
verifies manifests with them and re-exports every name here.
"""

from __future__ import annotations

import functools
import hashlib
import re
from typing import TYPE_CHECKING

import attrs
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from replication._ed25519 import KeyRejected, check_public_key
from replication._exceptions import BadSignatureError, InvalidKeyError, InvalidTypeError
from replication._validation import immutable

if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "SIGNATURE_ALGORITHM",
    "SigningKey",
    "VerifyingKey",
    "format_signature",
    "generate_signing_key",
    "parse_signature",
]

SIGNATURE_ALGORITHM = "ed25519"
_SIGNATURE = re.compile(r"ed25519:([0-9a-f]{16}):([0-9a-f]{128})")

#: Signatures known good: (raw public key, signature, signed bytes) this process
#: made (Ed25519 signing is deterministic, so what it signs verifies) or verified.
#: A controller verifies a manifest it issued again when it registers it, and a
#: journal's replay signs each issued manifest again, then verifies the same bytes
#: at its registration; an Ed25519 check costs tens of microseconds, a look-up
#: here one. Exact bytes only, so nothing that was not checked can match (R-SIGN-10).
_KNOWN_GOOD: dict[tuple[bytes, bytes, bytes], None] = {}
#: At most this many are kept; when full, the memory is emptied and starts again.
KNOWN_GOOD_LIMIT = 4096


def _exact(value: bytes) -> bytes:
    """``value`` as an exact ``bytes``: a subclass could lie about equality and hashing."""
    return value if type(value) is bytes else bytes.__getitem__(value, slice(None))


def _remember(known: tuple[bytes, bytes, bytes]) -> None:
    """Keep one signature known good; the memory is bounded (``KNOWN_GOOD_LIMIT``)."""
    if len(_KNOWN_GOOD) >= KNOWN_GOOD_LIMIT:
        # One atomic call: threads sharing the memory never see it half-emptied.
        _KNOWN_GOOD.clear()
    _KNOWN_GOOD[known] = None


#: The library's own private key class: only a signature it made is known good
#: unchecked (a subclass of ``Ed25519PrivateKey`` could return any bytes).
_LIBRARY_PRIVATE_KEY = type(Ed25519PrivateKey.from_private_bytes(bytes(32)))


def _library_verify(key: Ed25519PublicKey, signature: bytes, data: bytes) -> None:
    """Check one signature with the library (a seam a test counts calls through)."""
    key.verify(signature, data)


def _raw_public_key(value: object) -> bytes:
    if not isinstance(value, bytes):
        raise InvalidTypeError("raw", "32 bytes", value)
    # The bytes themselves, as an exact ``bytes``: a subclass could lie about equality.
    raw = _exact(value)
    try:
        check_public_key(raw)
    except KeyRejected as error:
        raise InvalidKeyError(f"refusing Ed25519 public key {raw.hex()}: {error}") from None
    return raw


@immutable
@attrs.frozen
class VerifyingKey:
    """An Ed25519 public key that passed every check of :mod:`replication._ed25519`.

    Construct from the 32 raw bytes or with :meth:`from_pem`; both refuse
    small-order, off-curve, mixed-order and non-canonically encoded keys.
    """

    raw: bytes = attrs.field(converter=_raw_public_key)

    @classmethod
    def from_pem(cls, data: bytes) -> VerifyingKey:
        """Load a SubjectPublicKeyInfo PEM key; anything but Ed25519 is refused."""
        try:
            key = serialization.load_pem_public_key(data)
        except (ValueError, TypeError) as error:
            raise InvalidKeyError(f"not a PEM public key: {error}") from None
        if not isinstance(key, Ed25519PublicKey):
            raise InvalidKeyError(f"expected an Ed25519 public key, got {type(key).__name__}")
        return cls(key.public_bytes_raw())

    def to_pem(self) -> bytes:
        """Return the key as SubjectPublicKeyInfo PEM."""
        return self._public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    @functools.cached_property
    def key_id(self) -> str:
        """The first 8 bytes of SHA-256 over the raw key, in hex: a hint, never a decision."""
        return hashlib.sha256(self.raw).digest()[:8].hex()

    @functools.cached_property
    def _public_key(self) -> Ed25519PublicKey:
        return Ed25519PublicKey.from_public_bytes(self.raw)

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise :class:`BadSignatureError` unless ``signature`` is valid for ``data``."""
        if not isinstance(signature, bytes) or not isinstance(data, bytes):
            raise BadSignatureError("a signature and the data it signs are bytes")
        # The public key that checks is the one whose bytes are remembered: read from
        # the library's key, not from ``raw``, which could be replaced behind the frozen
        # class after ``_public_key`` was cached.
        public_key = self._public_key
        known = (public_key.public_bytes_raw(), _exact(signature), _exact(data))
        if known in _KNOWN_GOOD:
            return
        try:
            _library_verify(public_key, known[1], known[2])
        except InvalidSignature:
            raise BadSignatureError("signature does not verify under this key") from None
        _remember(known)


def _check_private_key(_instance: object, _attribute: Any, value: Any) -> None:
    if not isinstance(value, Ed25519PrivateKey):
        raise InvalidTypeError("private_key", "an Ed25519PrivateKey", value)


@immutable
@attrs.frozen(eq=False)
class SigningKey:
    """An Ed25519 private key together with its verifying key. Compares by identity."""

    private_key: Ed25519PrivateKey = attrs.field(validator=_check_private_key, repr=False)

    @classmethod
    def from_pem(cls, data: bytes, password: bytes | None = None) -> SigningKey:
        """Load a PKCS#8 PEM private key; anything but Ed25519 is refused."""
        try:
            key = serialization.load_pem_private_key(data, password=password)
        except (ValueError, TypeError) as error:
            raise InvalidKeyError(f"not a usable PEM private key: {error}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise InvalidKeyError(f"expected an Ed25519 private key, got {type(key).__name__}")
        return cls(key)

    @classmethod
    def from_seed(cls, seed: bytes) -> SigningKey:
        """Build the key from its 32-byte RFC 8032 seed (for test vectors, never for production)."""
        if not isinstance(seed, bytes):
            raise InvalidTypeError("seed", "32 bytes", seed)
        raw = _exact(seed)
        if len(raw) != 32:
            raise InvalidTypeError("seed", "32 bytes", seed)
        return cls(Ed25519PrivateKey.from_private_bytes(raw))

    def to_pem(self, password: bytes | None = None) -> bytes:
        """Return the key as PKCS#8 PEM, encrypted when ``password`` is given."""
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(password)
            if password
            else serialization.NoEncryption()
        )
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
        )

    @functools.cached_property
    def verifying_key(self) -> VerifyingKey:
        """The matching public key."""
        return VerifyingKey(self.private_key.public_key().public_bytes_raw())

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``data``; it is then known good."""
        data = _exact(data)
        # One read of the field: the key that signs is the key whose public half is
        # remembered, even if the field were replaced behind the frozen class's back.
        key = self.private_key
        signature = key.sign(data)
        if type(key) is _LIBRARY_PRIVATE_KEY:
            # The raw public key of the key that signed (a microsecond; not the checks
            # building a VerifyingKey makes, nor a value cached beside the field).
            _remember((key.public_key().public_bytes_raw(), signature, data))
        return signature


def generate_signing_key() -> SigningKey:
    """Return a new random signing key."""
    return SigningKey(Ed25519PrivateKey.generate())


def format_signature(key_id: str, signature: bytes) -> str:
    """Return the signature string for a raw signature made by the key with ``key_id``."""
    return f"{SIGNATURE_ALGORITHM}:{key_id}:{signature.hex()}"


def parse_signature(text: str) -> tuple[str, bytes]:
    """Return ``(key id, raw signature)``; raise :class:`BadSignatureError` if malformed."""
    if not isinstance(text, str):
        raise BadSignatureError(f"a signature is a string, got {type(text).__name__}")
    text = str.__str__(text)
    match = _SIGNATURE.fullmatch(text)
    if match is None:
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise BadSignatureError(
            f"malformed signature {shown!r}: expected 'ed25519:<16 hex>:<128 hex>'"
        )
    return match[1], bytes.fromhex(match[2])
