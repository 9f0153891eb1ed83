"""The exact bytes a manifest signature covers.

A signature covers ``PAE(type, body)``, the DSSE v1 pre-authentication encoding::

    "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body

where ``type`` is :data:`MANIFEST_PAYLOAD_TYPE`, ``body`` the RFC 8785 canonical
JSON of every manifest field except the signature, and ``LEN`` the length in
bytes, in ASCII decimal. The type tag keeps any other kind of record signed by
the same key from being replayed as a manifest; the length prefixes and the
canonical JSON keep two distinct manifests from ever sharing signed bytes (the
older implementation joined fields with ``:``, so a ``:`` inside an id shifted
every field after it).
"""

from __future__ import annotations

from datetime import UTC
from typing import TYPE_CHECKING

import rfc8785

from replication._validation import thaw_json
from replication.errors import InvalidValueError

if TYPE_CHECKING:
    from datetime import datetime

    from replication.model import Manifest

__all__ = [
    "MANIFEST_PAYLOAD_TYPE",
    "canonical_json",
    "format_timestamp",
    "manifest_body",
    "manifest_payload",
    "pae",
]

#: The type tag of a manifest; a new encoding gets a new tag, never a silent change.
MANIFEST_PAYLOAD_TYPE = "replication.manifest.v1"


def canonical_json(value: object) -> bytes:
    """Return the RFC 8785 (JSON Canonicalization Scheme) encoding of ``value``."""
    try:
        return bytes(rfc8785.dumps(value))  # type: ignore[arg-type]
    except rfc8785.CanonicalizationError as error:
        raise InvalidValueError(
            "value", "JSON that RFC 8785 can canonicalise", str(error)
        ) from None


def pae(payload_type: str, body: bytes) -> bytes:
    """Return the DSSE v1 pre-authentication encoding of ``body`` under ``payload_type``."""
    tag = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(tag), tag, len(body), body)


def format_timestamp(moment: datetime) -> str:
    """Return ``moment`` as RFC 3339 in UTC with exactly six fractional digits and a ``Z``."""
    utc = moment.astimezone(UTC).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds") + "Z"


def manifest_body(manifest: Manifest) -> dict[str, object]:
    """Return the manifest's signed fields as plain JSON (everything but the signature)."""
    resources = manifest.resources
    return {
        "depth": manifest.depth,
        "issued_at": format_timestamp(manifest.issued_at),
        "parent_id": manifest.parent_id,
        "resources": {
            "cpu_limit": resources.cpu_limit,
            "memory_limit_mb": resources.memory_limit_mb,
            "network_policy": {
                "allow_controller": resources.network_policy.allow_controller,
                "allow_external": resources.network_policy.allow_external,
            },
        },
        "state_snapshot": thaw_json(manifest.state_snapshot),
        "worker_id": manifest.worker_id,
    }


def manifest_payload(manifest: Manifest) -> bytes:
    """Return the exact bytes a signature over ``manifest`` covers."""
    return pae(MANIFEST_PAYLOAD_TYPE, canonical_json(manifest_body(manifest)))
