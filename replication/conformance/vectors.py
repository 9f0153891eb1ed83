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
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from replication.conformance.adapter import Denied, Implementation
from replication.conformance.jsonforms import (
    FORMAT,
    contract_from_json,
    manifest_from_json,
    manifest_to_json,
    observation_from_json,
    parse_time,
)
from replication.conformance.results import compare_observations
from replication.conformance.scenarios import START, scenarios, signing_vectors
from replication.errors import BadSignatureError, InvalidInputError, ReplicationDenied
from replication.model import Manifest, ResourceSpec
from replication.signer import MIN_SECRET_LENGTH, SECRET_MIGRATION_TAG, signing_key_from_secret
from replication.signing import SigningKey, VerifyingKey, sign_manifest, verify_manifest

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.invariants import Observation

__all__ = [
    "FORMAT",
    "VectorCheck",
    "check_vectors",
    "export_vectors",
    "secret_migration_vectors",
]

SCHEMA_PATH = Path(__file__).with_name("vectors.schema.json")


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


@attrs.define
class VectorCheck:
    """What checking a vector directory found."""

    files: int = 0
    steps: int = 0
    failures: list[str] = attrs.field(factory=list)
    rules: set[str] = attrs.field(factory=set)

    @property
    def ok(self) -> bool:
        """Whether every file and step checked out."""
        return not self.failures

    def render(self) -> str:
        """Return a short text report."""
        lines = [f"{self.files} files, {self.steps} steps, {len(self.rules)} rules exercised"]
        lines += [f"FAIL {failure}" for failure in self.failures]
        lines.append("OK" if self.ok else f"{len(self.failures)} failures")
        return "\n".join(lines)


def _check_index(directory: Path, result: VectorCheck) -> list[str]:
    index = json.loads((directory / "index.json").read_text(encoding="utf-8"))
    for name, entry in index["files"].items():
        path = directory / name
        if not path.exists():
            result.failures.append(f"{name}: listed in index.json but missing")
            continue
        if hashlib.sha256(path.read_bytes()).hexdigest() != entry["sha256"]:
            result.failures.append(f"{name}: its SHA-256 differs from index.json")
        result.rules.update(entry["exercises"])
    listed = set(index["files"])
    for path in sorted(directory.rglob("*.json")):
        name = path.relative_to(directory).as_posix()
        if name != "index.json" and name not in listed:
            result.failures.append(f"{name}: not listed in index.json (it would never be loaded)")
    return sorted(name for name in listed if name.startswith("scenarios/"))


def _check_signing(directory: Path, result: VectorCheck) -> None:
    data = json.loads((directory / "signing.json").read_text(encoding="utf-8"))
    key = SigningKey.from_seed(bytes.fromhex(data["key_seed"])).verifying_key
    if key.raw.hex() != data["public_key"]:
        result.failures.append("signing.json: public_key does not match key_seed")
    for number, case in enumerate(data["cases"]):
        manifest = manifest_from_json(case["manifest"])
        if manifest.signing_payload.hex() != case["payload_hex"]:
            result.failures.append(f"signing.json case {number}: payload bytes differ")
        try:
            verify_manifest(manifest, key)
            valid = True
        except BadSignatureError:
            valid = False
        if valid != case["valid"]:
            result.failures.append(
                f"signing.json case {number}: signature {'verifies' if valid else 'fails'}, "
                f"expected {'valid' if case['valid'] else 'invalid'}"
            )
        result.steps += 1


def _check_secret_migration(directory: Path, result: VectorCheck) -> None:
    data = json.loads((directory / "secret-migration.json").read_text(encoding="utf-8"))
    if data["kdf"]["info"].encode("ascii") != SECRET_MIGRATION_TAG:
        result.failures.append("secret-migration.json: kdf info is not the derivation's tag")
    for number, case in enumerate(data["cases"]):
        where = f"secret-migration.json case {number}"
        key = signing_key_from_secret(case["secret"])
        if key.private_key.private_bytes_raw().hex() != case["seed"]:
            result.failures.append(f"{where}: the derived seed differs")
        if (key.verifying_key.raw.hex(), key.verifying_key.key_id) != (
            case["public_key"],
            case["key_id"],
        ):
            result.failures.append(f"{where}: the derived public key differs")
        manifest = manifest_from_json(case["manifest"])
        if sign_manifest(manifest, key).signature != manifest.signature:
            result.failures.append(f"{where}: the derived key signs differently")
        try:
            verify_manifest(manifest, VerifyingKey(bytes.fromhex(case["public_key"])))
        except BadSignatureError:
            result.failures.append(f"{where}: signature fails under public_key")
        result.steps += 1
    for secret in data["refused"]:
        try:
            signing_key_from_secret(secret)
        except InvalidInputError:
            pass
        else:
            result.failures.append(f"secret-migration.json: refused secret {secret!r} accepted")
        result.steps += 1


def _call(implementation: Implementation, step: dict[str, Any]) -> Any:
    action, arguments = step["action"], step["args"]
    if action == "issue":
        resources = manifest_from_json(
            {
                "worker_id": "x",
                "parent_id": None,
                "depth": 0,
                "state_snapshot": {},
                "issued_at": step["at"],
                "resources": arguments["resources"],
                "signature": "",
            }
        ).resources
        return implementation.issue(
            arguments["parent_id"], arguments["worker_id"], resources, arguments["state_snapshot"]
        )
    if action in {"register", "launch"}:
        return getattr(implementation, action)(manifest_from_json(arguments["manifest"]))
    if action == "reap":
        return implementation.reap(timedelta(seconds=arguments["timeout_seconds"]))
    if action == "kill_switch":
        return implementation.kill_switch()
    return getattr(implementation, action)(arguments["worker_id"])


def _without_manifests(observation: Observation) -> Observation:
    # Vector observations carry no manifests (the manifests are in the steps).
    workers = {wid: attrs.evolve(view, manifest=None) for wid, view in observation.workers.items()}
    return attrs.evolve(observation, workers=workers)


def _replay(path: Path, factory: Callable[[], Implementation], result: VectorCheck) -> None:
    scenario = json.loads(path.read_text(encoding="utf-8"))
    now = {"value": parse_time(scenario["start"])}
    implementation = factory()
    implementation.start(
        contract_from_json(scenario["contract"]),
        SigningKey.from_seed(bytes.fromhex(scenario["key_seed"])),
        lambda: now["value"],
    )
    for number, step in enumerate(scenario["steps"]):
        now["value"] = parse_time(step["at"])
        where = f"{path.name} step {number} ({step['action']})"
        expect = step["expect"]
        try:
            returned = _call(implementation, step)
            decision, reason = "allowed", None
        except (Denied, ReplicationDenied) as denied:
            returned = None
            decision = "denied"
            reason = denied.reason if isinstance(denied, Denied) else denied.reason.value
        result.steps += 1
        if (decision, reason) != (expect["decision"], expect["reason"]):
            result.failures.append(
                f"{where}: expected {expect['decision']} ({expect['reason']}), "
                f"got {decision} ({reason})"
            )
            return
        if returned is not None and manifest_to_json(returned) != expect.get("manifest"):
            result.failures.append(f"{where}: the issued manifest differs")
            return
        differences = compare_observations(
            observation_from_json(expect["observation"]),
            _without_manifests(implementation.observe()),
        )
        if differences:
            result.failures.append(f"{where}: {'; '.join(differences)}")
            return


def check_vectors(
    directory: Path, factory: Callable[[], Implementation] | None = None
) -> VectorCheck:
    """Verify a vector directory, and replay its scenarios against ``factory`` if given."""
    directory = Path(directory)
    result = VectorCheck()
    scenario_files = _check_index(directory, result)
    result.files = len(scenario_files) + 2
    _check_signing(directory, result)
    _check_secret_migration(directory, result)
    if factory is not None:
        for name in scenario_files:
            _replay(directory / name, factory, result)
    return result
