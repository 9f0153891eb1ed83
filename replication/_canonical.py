"""Canonical bytes: RFC 8785 JSON, the DSSE pre-authentication encoding, timestamps.

The byte-level half of :mod:`replication.encoding`, from plain values: the
records below the keys and the state (a manifest caches its signed bytes)
compute with it, so it imports no record. :mod:`replication.encoding` adds the
functions that take a whole manifest, and is where the encoding is described.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import rfc8785

from replication._exceptions import InvalidValueError
from replication._frozen import thaw_json
from replication._validation import check_aware_datetime

if TYPE_CHECKING:
    from datetime import datetime

    from replication._frozen import FrozenDict

__all__ = [
    "MANIFEST_PAYLOAD_TYPE",
    "body_of",
    "canonical_json",
    "format_timestamp",
    "manifest_payload_of",
    "pae",
]

#: The type tag of a manifest; a new encoding gets a new tag, never a silent change.
MANIFEST_PAYLOAD_TYPE = "replication.manifest.v1"


#: The largest integer RFC 8785 writes exactly (an IEEE 754 double's).
_SAFE_INTEGER = 2**53 - 1


def canonical_json(value: object) -> bytes:
    """Return the RFC 8785 (JSON Canonicalization Scheme) encoding of ``value``.

    For a value whose keys are ASCII, whose integers are within 2^53, and whose
    floats have a fraction and no exponent in Python's shortest form (exact
    built-in types only), Python's encoder (sorted keys, no spaces, UTF-8)
    writes exactly RFC 8785's bytes, ten times faster than the ``rfc8785``
    package, which writes everything else. Tests compare the two on generated
    values (tests/test_journal_fleet.py, TestCanonicalBytes).
    """
    if _plain(value):
        try:
            text = json.dumps(
                value, ensure_ascii=False, separators=(",", ":"), sort_keys=True, allow_nan=False
            )
            return text.encode("utf-8")
        except (ValueError, UnicodeEncodeError, RecursionError):
            # NaN, a lone surrogate, nesting deeper than Python's encoder goes: the
            # package decides (and says why it refuses).
            pass
    try:
        return bytes(rfc8785.dumps(value))  # type: ignore[arg-type]
    except rfc8785.CanonicalizationError as error:
        raise InvalidValueError(
            "value", "JSON that RFC 8785 can canonicalise", str(error)
        ) from None


def _plain(value: object) -> bool:
    """Whether Python's encoder writes RFC 8785's bytes for ``value`` (see canonical_json)."""
    pending = [value]
    while pending:
        item = pending.pop()
        kind = type(item)
        if kind is dict:
            # Keys of exact type str (a subclass could sort itself otherwise), all ASCII:
            # tested over all keys at once, in C.
            if not set(map(type, item)) <= {str} or not "".join(item).isascii():  # type: ignore[call-overload, arg-type]
                return False
            pending.extend(item.values())  # type: ignore[attr-defined]
        elif kind is list:
            pending.extend(item)  # type: ignore[arg-type]
        elif kind is float:
            if item.is_integer() or "e" in repr(item):  # type: ignore[attr-defined]
                return False
        elif kind is int:
            if not -_SAFE_INTEGER <= item <= _SAFE_INTEGER:  # type: ignore[operator]
                return False
        elif kind not in {str, bool, type(None)}:
            return False
    return True


def pae(payload_type: str, body: bytes) -> bytes:
    """Return the DSSE v1 pre-authentication encoding of ``body`` under ``payload_type``."""
    tag = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(tag), tag, len(body), body)


def format_timestamp(moment: datetime) -> str:
    """Return ``moment`` as RFC 3339 in UTC with exactly six fractional digits and a ``Z``.

    ``moment`` is converted as every time at the boundary is: a naive time, or
    one whose instant lies outside ``datetime``'s range in UTC (the year 1 east
    of Greenwich), is refused with :class:`InvalidValueError`.
    """
    utc = check_aware_datetime("moment", moment).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def body_of(  # noqa: PLR0917 - the signed fields, in the order of the record
    worker_id: str,
    parent_id: str | None,
    depth: int,
    state_snapshot: FrozenDict,
    issued_at: datetime,
    cpu_limit: float,
    memory_limit_mb: int,
    allow_controller: bool,  # noqa: FBT001
    allow_external: bool,  # noqa: FBT001
) -> dict[str, object]:
    """Return the signed JSON body of a manifest with these field values."""
    return {
        "depth": depth,
        "issued_at": format_timestamp(issued_at),
        "parent_id": parent_id,
        "resources": {
            "cpu_limit": cpu_limit,
            "memory_limit_mb": memory_limit_mb,
            "network_policy": {
                "allow_controller": allow_controller,
                "allow_external": allow_external,
            },
        },
        "state_snapshot": thaw_json(state_snapshot),
        "worker_id": worker_id,
    }


def manifest_payload_of(*fields: object) -> bytes:
    """Return the signed bytes for the field values :func:`body_of` takes, in its order."""
    return pae(MANIFEST_PAYLOAD_TYPE, canonical_json(body_of(*fields)))  # type: ignore[arg-type]
