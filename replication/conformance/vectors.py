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
from pathlib import Path
from typing import Any

from replication.conformance.jsonforms import FORMAT, SCHEMA_PATH
from replication.conformance.scenarios import scenarios, signing_vectors
from replication.conformance.vector_check import VectorCheck, VectorError, check_vectors

__all__ = ["FORMAT", "VectorCheck", "VectorError", "check_vectors", "export_vectors"]


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
