"""The explorer's fixed key, with signing and verification memoised.

Exploration applies the same few manifests in thousands of states: registering
the same signed bytes again, checking INV-SIGNATURE on the same registered
manifests in every state. Ed25519 signing is deterministic (RFC 8032) and
verification is a pure function of the key, the signed bytes and the
signature, so both are cached by exactly those: ``(key, bytes)`` for a
signature, ``(key, bytes, signature)`` for a verdict. A cached answer is the
answer the uncached call gave for the same inputs, so the cache changes the
speed of exploration and nothing else (specs/06-exploration.md, R-EXPLORE-6).

The keys are the core's own classes with one method each overridden; the core
sees a :class:`~replication.signing.SigningKey` and a
:class:`~replication.signing.VerifyingKey` and calls them as usual.
"""

from __future__ import annotations

from typing import Final

from replication.errors import BadSignatureError
from replication.signing import SigningKey, VerifyingKey

__all__ = ["KEY", "KEY_SEED", "CachedSigningKey", "CachedVerifyingKey", "cache_sizes"]

#: The explorer's controller key: the public RFC 8032 test seed the kit and the vectors use.
KEY_SEED: Final = bytes(range(32))

# Module-level, so that forked exploration processes start with what the parent learnt.
_SIGNATURES: dict[tuple[bytes, bytes], bytes] = {}
_VERDICTS: dict[tuple[bytes, bytes, bytes], bool] = {}


class CachedVerifyingKey(VerifyingKey):
    """A verifying key whose verdicts are memoised by (key, signed bytes, signature)."""

    __slots__ = ()

    def verify(self, signature: bytes, data: bytes) -> None:
        """Raise :class:`BadSignatureError` unless ``signature`` is valid for ``data``."""
        cache_key = (self.raw, data, signature)
        valid = _VERDICTS.get(cache_key)
        if valid is None:
            try:
                super().verify(signature, data)
                valid = True
            except BadSignatureError:
                valid = False
            _VERDICTS[cache_key] = valid
        if not valid:
            raise BadSignatureError("signature does not verify under this key")


class CachedSigningKey(SigningKey):
    """A signing key whose signatures are memoised by (key, signed bytes)."""

    __slots__ = ()

    @property
    def verifying_key(self) -> CachedVerifyingKey:
        """The matching public key, as a :class:`CachedVerifyingKey`."""
        return _VERIFYING_KEYS[id(self)]

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``data`` (deterministic, so cached)."""
        cache_key = (self.verifying_key.raw, data)
        signature = _SIGNATURES.get(cache_key)
        if signature is None:
            signature = _SIGNATURES[cache_key] = self.private_key.sign(data)
        return signature


_VERIFYING_KEYS: dict[int, CachedVerifyingKey] = {}


def _cached_key(seed: bytes) -> CachedSigningKey:
    plain = SigningKey.from_seed(seed)
    key = CachedSigningKey(plain.private_key)
    _VERIFYING_KEYS[id(key)] = CachedVerifyingKey(plain.verifying_key.raw)
    return key


#: The explorer's controller key (the same key material as the kit's and the vectors' ``KEY``).
KEY: Final = _cached_key(KEY_SEED)


def cache_sizes() -> tuple[int, int]:
    """Return how many signatures and verdicts are cached (for the report)."""
    return len(_SIGNATURES), len(_VERDICTS)
