"""The explorer's fixed key, with signing and verification memoised.

Exploration applies the same few manifests in thousands of states: registering
the same signed bytes again, checking INV-SIGNATURE on the same registered
manifests in every state. Ed25519 signing is deterministic (RFC 8032) and
verification is a pure function of the key, the signed bytes and the
signature, so both are cached by exactly those: the signature by the bytes,
the verdict by the bytes and the signature, each per key. A cached answer is
the answer the uncached call gave for the same inputs, so the cache changes
the speed of exploration and nothing else (specs/06-exploration.md,
R-EXPLORE-6).

The core accepts its own key classes only, exactly (R-TRUST-2), so the caches
sit one level down, in the Ed25519 key objects those classes hold: ``cryptography``
defines ``Ed25519PrivateKey`` and ``Ed25519PublicKey`` as abstract classes
precisely so that other implementations (hardware keys, say) can stand in.
The private key is the :class:`~replication.signing.SigningKey`'s field; the
public key is the :class:`~replication.signing.VerifyingKey`'s derived
``_public_key``, which this module fills in before anything reads it. Should
the core stop deriving it that way, :data:`VERIFICATION_CACHED` is false and
exploration is slower, not wrong.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from replication.signing import SigningKey, VerifyingKey

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import serialization

__all__ = ["KEY", "KEY_SEED", "VERIFICATION_CACHED", "VERIFYING_KEY", "cache_sizes"]

#: The explorer's controller key: the public RFC 8032 test seed the kit and the vectors use.
KEY_SEED: Final = bytes(range(32))


class _MemoPrivateKey(Ed25519PrivateKey):
    """An Ed25519 private key that remembers every signature it made."""

    def __init__(self, key: Ed25519PrivateKey) -> None:
        self._key = key
        self.signatures: dict[bytes, bytes] = {}

    def sign(self, data: bytes | bytearray | memoryview) -> bytes:
        data = bytes(data)  # the same object when it is exactly bytes
        signature = self.signatures.get(data)
        if signature is None:
            signature = self.signatures[data] = self._key.sign(data)
        return signature

    def public_key(self) -> Ed25519PublicKey:
        return self._key.public_key()

    def private_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PrivateFormat,  # noqa: A002 - the abstract method's own name
        encryption_algorithm: serialization.KeySerializationEncryption,
    ) -> bytes:
        return self._key.private_bytes(encoding, format, encryption_algorithm)

    def private_bytes_raw(self) -> bytes:
        return self._key.private_bytes_raw()

    def __copy__(self) -> _MemoPrivateKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _MemoPrivateKey:
        return self


class _MemoPublicKey(Ed25519PublicKey):
    """An Ed25519 public key that remembers the verdict on every (signature, bytes) it checked."""

    def __init__(self, key: Ed25519PublicKey) -> None:
        self._key = key
        self.verdicts: dict[tuple[bytes, bytes], bool] = {}

    def verify(
        self, signature: bytes | bytearray | memoryview, data: bytes | bytearray | memoryview
    ) -> None:
        signature, data = bytes(signature), bytes(data)
        valid = self.verdicts.get((signature, data))
        if valid is None:
            try:
                self._key.verify(signature, data)
                valid = True
            except InvalidSignature:
                valid = False
            self.verdicts[signature, data] = valid
        if not valid:
            raise InvalidSignature

    def public_bytes(
        self,
        encoding: serialization.Encoding,
        format: serialization.PublicFormat,  # noqa: A002 - the abstract method's own name
    ) -> bytes:
        return self._key.public_bytes(encoding, format)

    def public_bytes_raw(self) -> bytes:
        return self._key.public_bytes_raw()

    def __eq__(self, other: object) -> bool:
        return self._key == (other._key if isinstance(other, _MemoPublicKey) else other)

    def __hash__(self) -> int:
        return hash(self.public_bytes_raw())

    def __copy__(self) -> _MemoPublicKey:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> _MemoPublicKey:
        return self


def _keys() -> tuple[SigningKey, VerifyingKey, bool]:
    private = _MemoPrivateKey(Ed25519PrivateKey.from_private_bytes(KEY_SEED))
    key = SigningKey(private)
    verifying = VerifyingKey(private.public_key().public_bytes_raw())
    try:
        # Fill in the derived caches before anything reads them; both objects stay
        # exactly the core's classes.
        object.__setattr__(verifying, "_public_key", _MemoPublicKey(private.public_key()))
        object.__setattr__(key, "verifying_key", verifying)
    except (AttributeError, TypeError):  # pragma: no cover - the core derives them otherwise
        return key, key.verifying_key, False
    cached = isinstance(verifying._public_key, _MemoPublicKey)
    return key, verifying, cached and key.verifying_key is verifying


KEY, VERIFYING_KEY, VERIFICATION_CACHED = _keys()


def cache_sizes() -> tuple[int, int]:
    """Return how many signatures and verdicts are cached (for the report)."""
    private = KEY.private_key
    public = getattr(VERIFYING_KEY, "_public_key", None)
    signatures = len(private.signatures) if isinstance(private, _MemoPrivateKey) else 0
    verdicts = len(public.verdicts) if isinstance(public, _MemoPublicKey) else 0
    return signatures, verdicts
