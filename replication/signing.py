"""Manifest signatures: a manifest signed with an Ed25519 key, and verified.

The keys and the signature strings are :mod:`replication.keys`'s, re-exported
here. A signature string reads ``ed25519:<key id>:<signature>``: the algorithm, the
key id (the first 8 bytes of SHA-256 over the raw public key, in hex) and the
64-byte signature in lowercase hex. It covers the bytes
:func:`replication.encoding.manifest_payload` returns.

The key id is a hint for humans and for choosing among keys, never a security
decision: verification always uses the verifying key it is given, never one
taken from the record being verified. Verification raises
:class:`~replication.errors.BadSignatureError` on any failure, malformed input
included; :func:`replication.transitions.register_worker` turns that into a
denial with reason ``bad_signature``.
"""

from __future__ import annotations

import attrs

from replication._validation import check_record
from replication.keys import (
    SIGNATURE_ALGORITHM,
    SigningKey,
    VerifyingKey,
    format_signature,
    generate_signing_key,
    parse_signature,
)
from replication.model import Manifest

__all__ = [
    "SIGNATURE_ALGORITHM",
    "SigningKey",
    "VerifyingKey",
    "format_signature",
    "generate_signing_key",
    "parse_signature",
    "sign_manifest",
    "verify_manifest",
]

_MANIFEST_FIELDS = tuple(
    field.name for field in attrs.fields(Manifest) if field.name != "signature"
)


def sign_manifest(manifest: Manifest, key: SigningKey) -> Manifest:
    """Return a copy of ``manifest`` carrying ``key``'s signature over its payload."""
    manifest = check_record("manifest", manifest, Manifest, "a Manifest")
    key = check_record("key", key, SigningKey, "a replication.signing.SigningKey")
    payload = manifest.signing_payload
    signature = format_signature(key.verifying_key.key_id, key.sign(payload))
    # Every field but the signature is copied from a validated manifest, and the
    # payload does not cover the signature, so the copy is built field by field
    # and shares the payload already computed, with the objects it came from
    # (attrs.evolve would re-validate and canonicalise again: a third of the
    # cost of issuing).
    signed = object.__new__(Manifest)
    for field in _MANIFEST_FIELDS:
        object.__setattr__(signed, field, getattr(manifest, field))
    object.__setattr__(signed, "signature", signature)
    object.__setattr__(signed, "_payload_memo", manifest._payload_memo)
    return signed


def _sign_new(manifest: Manifest, key: SigningKey) -> Manifest:
    """Sign a manifest the core has just built and nobody else has seen, in place.

    For :func:`replication.transitions.issue_manifest` only: it saves the copy
    :func:`sign_manifest` makes.
    """
    payload = manifest.signing_payload
    object.__setattr__(
        manifest, "signature", format_signature(key.verifying_key.key_id, key.sign(payload))
    )
    return manifest


def verify_manifest(manifest: Manifest, key: VerifyingKey) -> None:
    """Raise :class:`BadSignatureError` unless ``manifest`` is signed by ``key``.

    The key id in the signature is not consulted: a signature made by another
    key fails because it does not verify, whatever id it claims. The bytes
    verified are derived from the manifest's fields as they are at this call
    (see :attr:`Manifest.signing_payload <replication.model.Manifest.signing_payload>`).
    """
    manifest = check_record("manifest", manifest, Manifest, "a Manifest")
    key = check_record("key", key, VerifyingKey, "a replication.signing.VerifyingKey")
    _, signature = parse_signature(manifest.signature)
    key.verify(signature, manifest.signing_payload)
