"""Checks on Ed25519 public keys that OpenSSL (and so ``cryptography``) does not make.

OpenSSL accepts an off-curve 32-byte string as a key object and fails only
later, and it accepts small-order keys: with the identity key and the signature
``R = identity, S = 0``, verification succeeds for every message. This module
decodes a key as RFC 8032 section 5.1.3 prescribes and refuses

* non-canonical encodings (``y >= p``, or ``x = 0`` with the sign bit set),
* points not on the curve,
* points of small order (the eight torsion points), and
* points outside the prime-order subgroup (a torsion component mixed in).

Every key a standard library generates (a clamped scalar times the base point)
passes. The arithmetic is the textbook extended-coordinates formulae of
RFC 8032 section 5.1.4; keys are loaded rarely, so clarity wins over speed.
"""

from __future__ import annotations

__all__ = ["KeyRejected", "check_public_key"]

P = 2**255 - 19
#: The order of the prime-order subgroup.
L = 2**252 + 27742317777372353535851937790883648493
D = (-121665 * pow(121666, P - 2, P)) % P
_SQRT_MINUS_ONE = pow(2, (P - 1) // 4, P)

_Point = tuple[int, int, int, int]  # extended coordinates (X, Y, Z, T), x = X/Z, y = Y/Z
_IDENTITY: _Point = (0, 1, 1, 0)


class KeyRejected(Exception):  # noqa: N818 - internal signal, turned into InvalidKeyError
    """The key must not be used; the message says why."""


def _decode(raw: bytes) -> _Point:
    if len(raw) != 32:
        raise KeyRejected(f"an Ed25519 public key is 32 bytes, got {len(raw)}")
    encoded = int.from_bytes(raw, "little")
    sign = encoded >> 255
    y = encoded & ((1 << 255) - 1)
    if y >= P:
        raise KeyRejected("non-canonical encoding: y >= p")
    u = (y * y - 1) % P
    w = (D * y * y + 1) % P
    x = (u * pow(w, 3, P) * pow(u * pow(w, 7, P), (P - 5) // 8, P)) % P
    if (w * x * x - u) % P != 0:
        if (w * x * x + u) % P != 0:
            raise KeyRejected("not a point on the curve")
        x = (x * _SQRT_MINUS_ONE) % P
    if x == 0 and sign == 1:
        raise KeyRejected("non-canonical encoding: x = 0 with the sign bit set")
    if x & 1 != sign:
        x = P - x
    return (x, y, 1, (x * y) % P)


def _add(a: _Point, b: _Point) -> _Point:
    x1, y1, z1, t1 = a
    x2, y2, z2, t2 = b
    e1 = (y1 - x1) * (y2 - x2) % P
    e2 = (y1 + x1) * (y2 + x2) % P
    c = t1 * 2 * D * t2 % P
    d = z1 * 2 * z2 % P
    e, f, g, h = e2 - e1, d - c, d + c, e2 + e1
    return (e * f % P, g * h % P, f * g % P, e * h % P)


def _multiply(scalar: int, point: _Point) -> _Point:
    result = _IDENTITY
    while scalar:
        if scalar & 1:
            result = _add(result, point)
        point = _add(point, point)
        scalar >>= 1
    return result


def _is_identity(point: _Point) -> bool:
    x, y, z, _ = point
    return x % P == 0 and (y - z) % P == 0


def check_public_key(raw: bytes) -> None:
    """Raise :class:`KeyRejected` unless ``raw`` encodes a safe Ed25519 public key."""
    point = _decode(raw)
    if _is_identity(_multiply(8, point)):
        raise KeyRejected("a point of small order (a torsion point)")
    if not _is_identity(_multiply(L, point)):
        raise KeyRejected("a point outside the prime-order subgroup")
