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

The functions over plain values live in :mod:`replication._canonical`, below
the records (a manifest computes its own signed bytes with them), and are
re-exported here; the two that take a whole manifest are defined here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replication._canonical import (
    MANIFEST_PAYLOAD_TYPE,
    body_of,
    canonical_json,
    format_timestamp,
    pae,
)

if TYPE_CHECKING:
    from replication._records import Manifest

__all__ = [
    "MANIFEST_PAYLOAD_TYPE",
    "canonical_json",
    "format_timestamp",
    "manifest_body",
    "manifest_payload",
    "pae",
]


def manifest_body(manifest: Manifest) -> dict[str, object]:
    """Return the manifest's signed fields as plain JSON (everything but the signature)."""
    resources = manifest.resources
    network = resources.network_policy
    return body_of(
        manifest.worker_id,
        manifest.parent_id,
        manifest.depth,
        manifest.state_snapshot,
        manifest.issued_at,
        resources.cpu_limit,
        resources.memory_limit_mb,
        network.allow_controller,
        network.allow_external,
    )


def manifest_payload(manifest: Manifest) -> bytes:
    """Return the exact bytes a signature over ``manifest`` covers, computed now."""
    return pae(MANIFEST_PAYLOAD_TYPE, canonical_json(manifest_body(manifest)))


# What this module re-exports from the private modules that define it is shown
# under this public path (in tracebacks, reprs, pickles and the API reference),
# as it was before it moved there; httpx does the same for its private modules.
for _name in __all__:
    _value = globals()[_name]
    if getattr(_value, "__module__", "").startswith("replication._"):
        _value.__module__ = __name__
del _name, _value
