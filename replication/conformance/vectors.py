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
* ``index.json``: every file with its SHA-256 and the rules (actions and reason
  codes) it exercises, so an implementation can tell which vectors it never
  loaded, and a drift or an edit is caught.
* ``schema.json``: the JSON Schema of all of the above.

Everything is deterministic: the same code exports the same bytes.
``replication vectors check DIR --impl ...`` verifies the index, the signing
vectors (against the reference encoding) and replays every scenario against an
adapter.
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
from replication.conformance.scenarios import scenarios, signing_vectors
from replication.errors import BadSignatureError, ReplicationDenied
from replication.signing import SigningKey, verify_manifest

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.invariants import Observation

__all__ = ["FORMAT", "VectorCheck", "check_vectors", "export_vectors"]

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
    result.files = len(scenario_files) + 1
    _check_signing(directory, result)
    if factory is not None:
        for name in scenario_files:
            _replay(directory / name, factory, result)
    return result
