"""The hash chain, the state fingerprint and the signed checkpoints of a journal.

Every hash here is SHA-256 over a DSSE pre-authentication encoding
(:func:`replication.encoding.pae`) under a type tag of its own, so bytes of one
kind can never be taken for another: a row for a header, a checkpoint for a
manifest.

* The **genesis** is the hash of the header's canonical JSON under
  ``replication.journal.header.v1``; the header's **signature** is the
  checkpoint key's Ed25519 signature over the same encoding, so no field of
  the header (the keys, the contract, the checkpoint interval) can be changed
  without that key.
* A **row's hash** is the hash of its canonical JSON, which holds the previous
  row's hash (the genesis for row 1), under ``replication.journal.row.v1``.
* The **state fingerprint** is the hash of a canonical JSON summary of the
  whole state under ``replication.journal.state.v1``: every map sorted by
  worker id, every time in RFC 3339, every manifest by its digest (SHA-256 of
  its signed bytes followed by its signature).
* A **checkpoint** is the canonical JSON of ``{journal, sequence, head,
  state}`` (the genesis, the row, its hash, the fingerprint of the state after
  it), signed with Ed25519 under ``replication.journal.checkpoint.v1``.

The specification is specs/07-journal.md (R-JOURNAL-4, R-JOURNAL-8).
"""

from __future__ import annotations

import functools
import hashlib
import json
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from replication.encoding import canonical_json, format_timestamp, pae
from replication.errors import BadSignatureError
from replication.signing import format_signature, parse_signature

if TYPE_CHECKING:
    from replication.model import Manifest, State
    from replication.signing import SigningKey, VerifyingKey

__all__ = [
    "CHECKPOINT_TYPE",
    "HEADER_TYPE",
    "ROW_TYPE",
    "STATE_TYPE",
    "checkpoint_body",
    "digest",
    "fingerprint",
    "fingerprint_bytes",
    "format_time",
    "is_valid_checkpoint",
    "is_valid_header",
    "is_valid_signature",
    "sign_checkpoint",
    "sign_header",
    "verify_checkpoint",
]

HEADER_TYPE = "replication.journal.header.v1"
ROW_TYPE = "replication.journal.row.v1"
STATE_TYPE = "replication.journal.state.v1"
CHECKPOINT_TYPE = "replication.journal.checkpoint.v1"


def digest(payload_type: str, body: bytes) -> str:
    """Return the SHA-256, in hex, of ``body`` encoded under ``payload_type``."""
    return hashlib.sha256(pae(payload_type, body)).hexdigest()


def _manifest_digest(manifest: Manifest) -> str:
    # The signed bytes are self-delimiting (PAE carries the body's length), so
    # appending the signature cannot shift one into the other.
    signed = manifest.signing_payload + manifest.signature.encode("utf-8")
    return hashlib.sha256(signed).hexdigest()


def format_time(moment: datetime) -> str:
    """:func:`replication.encoding.format_timestamp`, four times faster for a time in UTC.

    Every time in a state is an exact ``datetime`` in UTC (R-TIME-2), and most
    of a state's times are the same from one snapshot or checkpoint to the
    next: each is written once, then remembered (by value: equal UTC times
    write the same text).
    """
    if type(moment) is datetime and moment.tzinfo is UTC:
        return _utc_text(moment)
    return format_timestamp(moment)


@functools.lru_cache(maxsize=1 << 16)
def _utc_text(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds")[:-6] + "Z"


def _times(entries: Any) -> list[list[str]]:
    return [[key, format_time(entries[key])] for key in sorted(entries)]


#: Manifest digests by the manifest's identity, kept with the manifest (so its id is not reused).
Digests = dict[int, tuple["Manifest", str]]


def state_summary(state: State, digests: Digests | None = None) -> dict[str, Any]:
    """Return the JSON summary of a state that its fingerprint covers.

    ``digests`` carries the manifests' digests from one fingerprint to the
    next: a manifest's digest costs its signed bytes and a hash, and most
    manifests outlive many checkpoints. It keeps only the manifests this state
    holds.
    """
    known = digests if digests is not None else {}
    used: Digests = {}

    def digest_of(manifest: Manifest) -> str:
        key = id(manifest)
        hit = known.get(key)
        value = hit[1] if hit is not None and hit[0] is manifest else _manifest_digest(manifest)
        used[key] = (manifest, value)
        return value

    controller = state.controller
    registry = controller.registry
    containers = state.orchestrator.containers
    summary = {
        "containers": [
            [
                worker_id,
                digest_of(record.manifest),
                record.status,
                format_time(record.started_at),
                record.reason,
            ]
            for worker_id, record in sorted(containers.items())
        ],
        "issued_ids": _times(controller.issued_ids),
        "kill_switch_engaged": controller.kill_switch_engaged,
        "quarantined": _times(controller.quarantined),
        "registered_ids": _times(controller.registered_ids),
        "registry": [
            [
                worker_id,
                digest_of(entry.manifest),
                format_time(entry.registered_at),
                format_time(entry.last_heartbeat),
            ]
            for worker_id, entry in sorted(registry.items())
        ],
        "spawn_times": _times(controller.spawn_times),
    }
    if digests is not None:
        digests.clear()
        digests.update(used)
    return summary


def fingerprint_bytes(summary: dict[str, Any]) -> bytes:
    """Return the canonical JSON of a state summary.

    The summary holds only ASCII keys, strings without control characters
    (R-ID-1, R-ID-2), booleans, nulls and lists, for which Python's own
    encoder, with sorted keys and no spaces, writes exactly the bytes of
    RFC 8785, many times faster (a test compares the two).
    """
    text = json.dumps(summary, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    return text.encode("utf-8")


def fingerprint(state: State, digests: Digests | None = None) -> str:
    """Return the fingerprint of a whole state (see the module's docstring)."""
    return digest(STATE_TYPE, fingerprint_bytes(state_summary(state, digests)))


def checkpoint_body(genesis: str, sequence: int, head: str, state_fingerprint: str) -> bytes:
    """Return the canonical bytes a checkpoint signature covers."""
    return canonical_json(
        {"head": head, "journal": genesis, "sequence": sequence, "state": state_fingerprint}
    )


def sign_checkpoint(body: bytes, key: SigningKey) -> str:
    """Return the signature string of a checkpoint body."""
    signature = key.sign(pae(CHECKPOINT_TYPE, body))
    return format_signature(key.verifying_key.key_id, signature)


def verify_checkpoint(body: bytes, signature: str, key: VerifyingKey) -> None:
    """Raise :class:`BadSignatureError` unless ``signature`` is ``key``'s over ``body``."""
    _, raw = parse_signature(signature)
    key.verify(raw, pae(CHECKPOINT_TYPE, body))


def is_valid_checkpoint(body: bytes, signature: object, key: VerifyingKey) -> bool:
    """Whether ``signature`` is ``key``'s over the checkpoint ``body``."""
    return _is_valid(CHECKPOINT_TYPE, body, signature, key)


def sign_header(header: bytes, key: SigningKey) -> str:
    """Return the signature string of a journal's header (its canonical JSON)."""
    return format_signature(key.verifying_key.key_id, key.sign(pae(HEADER_TYPE, header)))


def is_valid_header(header: object, signature: object, key: VerifyingKey) -> bool:
    """Whether ``signature`` is ``key``'s over the header's bytes ``header``."""
    return type(header) is bytes and _is_valid(HEADER_TYPE, header, signature, key)


def is_valid_signature(
    payload_type: str, body: bytes, signature: object, key: VerifyingKey
) -> bool:
    """Whether ``signature`` is ``key``'s over ``body`` encoded under ``payload_type``."""
    return _is_valid(payload_type, body, signature, key)


def _is_valid(payload_type: str, body: bytes, signature: object, key: VerifyingKey) -> bool:
    if type(signature) is not str:
        return False
    try:
        _, raw = parse_signature(signature)
        key.verify(raw, pae(payload_type, body))
    except BadSignatureError:
        return False
    return True
