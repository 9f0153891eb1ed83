"""Language-neutral test vectors: export them from the reference, replay them against anything.

``replication vectors export DIR`` writes

* ``scenarios/*.json``: a contract, the controller's test key, and a sequence of
  steps (the clock value, the action with its arguments, and after it the
  expected decision and the expected observation). A step whose decision is
  ``denied`` must change nothing.
* ``signing.json``: a fixed test key and manifests (unicode ids, nested
  snapshots, edge-case numbers) with their exact signed bytes in hex and their
  signatures, so another implementation can check its canonical encoding byte
  for byte; plus manifests that must *not* verify.
* ``secret-migration.json``: older HMAC secrets with the Ed25519 seed, public
  key and manifest signature each derives (HKDF-SHA256, R-MIGRATE-2), and
  secrets that must be refused (R-MIGRATE-1).
* ``index.json``: every file with its SHA-256 and the rules (actions and reason
  codes) it exercises, so an implementation can tell which vectors it never
  loaded, and a drift or an edit is caught.
* ``schema.json``: the JSON Schema of all of the above.

Everything is deterministic: the same code exports the same bytes.
``replication vectors check DIR --impl ...`` verifies the index, the signing
and secret-migration vectors (against the reference encoding and derivation)
and replays every scenario against an adapter.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from replication.conformance.vectors.check import VectorCheck, VectorError, check_vectors
from replication.conformance.vectors.jsonforms import FORMAT, SCHEMA_PATH, manifest_to_json
from replication.conformance.vectors.scenarios import START, scenarios, signing_vectors
from replication.model import Manifest, ResourceSpec
from replication.signer import MIN_SECRET_LENGTH, SECRET_MIGRATION_TAG, signing_key_from_secret
from replication.signing import sign_manifest

__all__ = [
    "FORMAT",
    "VectorCheck",
    "VectorError",
    "check_vectors",
    "export_vectors",
    "secret_migration_vectors",
]


def _dump(data: Any) -> bytes:
    return (json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True) + "\n").encode()


def export_vectors(directory: Path) -> list[Path]:
    """Write every vector file, the index and the schema into ``directory``."""
    directory = Path(directory)
    (directory / "scenarios").mkdir(parents=True, exist_ok=True)
    files: dict[str, bytes] = {}
    exercises: dict[str, list[str]] = {}
    for recorder in scenarios():
        name = f"scenarios/{recorder.name}.json"
        files[name] = _dump(recorder.to_json())
        exercises[name] = sorted(recorder.exercises)
    files["signing.json"] = _dump(signing_vectors())
    exercises["signing.json"] = ["signing"]
    files["secret-migration.json"] = _dump(secret_migration_vectors())
    exercises["secret-migration.json"] = ["secret_migration"]
    files["schema.json"] = SCHEMA_PATH.read_bytes()
    rules: dict[str, list[str]] = {}
    for name, covered in exercises.items():
        for rule in covered:
            rules.setdefault(rule, []).append(name)
    index = {
        "format": FORMAT,
        "files": {
            name: {
                "sha256": hashlib.sha256(content).hexdigest(),
                "exercises": exercises.get(name, []),
            }
            for name, content in sorted(files.items())
        },
        "rules": {rule: sorted(names) for rule, names in sorted(rules.items())},
    }
    files["index.json"] = _dump(index)
    written = []
    for name, content in files.items():
        path = directory / name
        path.write_bytes(content)
        written.append(path)
    return written


#: The secrets of secret-migration.json: the older tests' own secret, one whose
#: surrounding spaces are part of it, one whose UTF-8 bytes are not ASCII.
MIGRATED_SECRETS = ("test-secret", " spaced secret ", "p\u00e4ssw\u00f6rd-\u00fc-\U0001f600")
#: Secrets the older API refused: empty, whitespace only, too short.
REFUSED_SECRETS = ("", "   ", "\t\n", "x" * (MIN_SECRET_LENGTH - 1))


def secret_migration_vectors() -> dict[str, Any]:
    """Return the secret-migration vectors: secret -> seed -> public key -> signature."""
    manifest = Manifest("w1", None, 0, {}, START, ResourceSpec(0.5, 256))
    cases = []
    for secret in MIGRATED_SECRETS:
        key = signing_key_from_secret(secret)
        cases.append(
            {
                "secret": secret,
                "seed": key.private_key.private_bytes_raw().hex(),
                "public_key": key.verifying_key.raw.hex(),
                "key_id": key.verifying_key.key_id,
                "manifest": manifest_to_json(sign_manifest(manifest, key)),
            }
        )
    return {
        "format": FORMAT,
        "description": "Older HMAC secrets and the Ed25519 key each derives: seed = HKDF-SHA256("
        "ikm = the secret's UTF-8 bytes, no salt, info, 32 bytes), the seed's public key, and "
        "the signature of one manifest under that key; then secrets that must be refused.",
        "kdf": {
            "hash": "SHA-256",
            "salt_hex": "",
            "info": SECRET_MIGRATION_TAG.decode("ascii"),
            "length": 32,
        },
        "cases": cases,
        "refused": list(REFUSED_SECRETS),
    }
