"""Test vectors: deterministic, checked in, schema-valid, tamper-evident, replayable."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jsonschema
import pytest

from replication.cli import main
from replication.conformance.adapters.adapter import FacadeImplementation, ReferenceImplementation
from replication.conformance.vectors.export import check_vectors, export_vectors
from replication.conformance.vectors.jsonforms import manifest_from_json, manifest_to_json
from replication.errors import ReasonCode
from tests import toy_implementation as toys

CHECKED_IN = Path(__file__).resolve().parent.parent / "specs" / "vectors"


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    directory = tmp_path_factory.mktemp("vectors")
    export_vectors(directory)
    return directory


def files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*.json")}


# Spec: R-VECTOR-5.
def test_the_checked_in_vectors_are_exactly_what_the_code_exports(exported):
    """Regenerating the sample set changes nothing: no drift between code and vectors."""
    assert files(exported) == files(CHECKED_IN), (
        "specs/vectors drifted from the code: run `python -m replication vectors export "
        "specs/vectors` and review the diff"
    )


# Spec: R-VECTOR-1.
def test_every_file_matches_the_published_schema(exported):
    schema = json.loads((exported / "schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    for name, content in files(exported).items():
        if name != "schema.json":
            jsonschema.validate(json.loads(content), schema)


# Spec: R-VECTOR-2.
def test_the_index_names_which_vectors_exercise_each_rule(exported):
    index = json.loads((exported / "index.json").read_text())
    reachable = {code.value for code in ReasonCode} - {"not_running", "expired"}
    assert {f"denied:{code}" for code in reachable} <= set(index["rules"])
    for action in ("issue", "register", "launch", "heartbeat", "kill", "reap", "kill_switch",
                   "quarantine", "release"):  # fmt: skip
        assert index["rules"][action]


# Spec: R-VECTOR-3, R-VECTOR-8.
@pytest.mark.parametrize(
    "factory",
    [ReferenceImplementation, FacadeImplementation, toys.ToyImplementation, toys.HmacSigning],
)
def test_the_vectors_replay_cleanly_on_correct_implementations(exported, factory):
    """HmacSigning signs with its own scheme: the steps' origins say which manifest is valid."""
    result = check_vectors(exported, factory)
    assert result.ok, result.render()
    assert result.steps > 150


# Spec: R-VECTOR-3.
@pytest.mark.parametrize(
    "factory",
    [
        toys.KillSwitchSurvivor,
        toys.DepthOffByOne,
        toys.IgnoresCooldown,
        toys.ReapLeavesContainer,
        toys.QuarantinedHeartbeat,
        toys.DuplicateLaunchReplaces,
        toys.SpawnTimeForgotten,
        toys.ReplayCheckedAgainstRegistryOnly,
        toys.HmacColonJoined,
    ],
    ids=lambda factory: factory.__name__,
)
def test_the_vectors_catch_every_faulty_implementation(exported, factory):
    assert not check_vectors(exported, factory).ok


# Spec: R-VECTOR-2, R-VECTOR-4.
def test_one_changed_byte_in_a_signing_vector_fails(exported, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    signing = json.loads((copy / "signing.json").read_text())
    payload = signing["cases"][1]["payload_hex"]
    flipped = payload[:-2] + ("00" if payload[-2:] != "00" else "01")
    signing["cases"][1]["payload_hex"] = flipped
    (copy / "signing.json").write_text(json.dumps(signing, indent=2, ensure_ascii=False))
    result = check_vectors(copy)
    assert not result.ok
    assert any("signing.json case 1: payload bytes differ" in f for f in result.failures)
    assert any("signing.json: its SHA-256 differs" in f for f in result.failures)


# Spec: R-VECTOR-4.
def test_a_signature_changed_by_one_byte_no_longer_verifies(exported, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    signing = json.loads((copy / "signing.json").read_text())
    case = signing["cases"][0]
    signature = case["manifest"]["signature"]
    case["manifest"]["signature"] = signature[:-2] + ("00" if signature[-2:] != "00" else "01")
    (copy / "signing.json").write_text(json.dumps(signing))
    assert any("case 0: signature fails" in f for f in check_vectors(copy).failures)


# Spec: R-VECTOR-6, R-MIGRATE-1, R-MIGRATE-2.
def test_the_secret_migration_vectors_are_checked(exported, tmp_path):
    """A changed seed, public key or signature, or an accepted refused secret, is reported."""
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    path = copy / "secret-migration.json"
    migration = json.loads(path.read_text())
    assert [case["secret"] for case in migration["cases"]] == [
        "test-secret",
        " spaced secret ",
        "pässwörd-ü-\U0001f600",
    ]
    assert check_vectors(copy).ok
    migration["cases"][0]["seed"] = "00" * 32
    migration["cases"][1]["public_key"] = migration["cases"][0]["public_key"]
    signature = migration["cases"][2]["manifest"]["signature"]
    migration["cases"][2]["manifest"]["signature"] = signature[:-2] + (
        "00" if signature[-2:] != "00" else "01"
    )
    migration["refused"].append("long enough secret")
    path.write_text(json.dumps(migration, ensure_ascii=False))
    failures = check_vectors(copy).failures
    assert "secret-migration.json case 0: the derived seed differs" in failures
    assert "secret-migration.json case 1: the derived public key differs" in failures
    assert "secret-migration.json case 2: the derived key signs differently" in failures
    assert "secret-migration.json case 2: signature fails under public_key" in failures
    assert any("refused secret 'long enough secret' accepted" in f for f in failures)


# Spec: R-VECTOR-2.
def test_an_unlisted_or_missing_vector_is_reported(exported, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(exported, copy)
    (copy / "scenarios" / "quota.json").unlink()
    (copy / "scenarios" / "extra.json").write_text("{}")
    failures = check_vectors(copy).failures
    assert "scenarios/quota.json: listed in index.json but missing" in failures
    assert any("scenarios/extra.json: not listed" in f for f in failures)


# Spec: R-VECTOR-1.
def test_manifests_round_trip_through_json(exported):
    signing = json.loads((exported / "signing.json").read_text())
    for case in signing["cases"]:
        assert manifest_to_json(manifest_from_json(case["manifest"])) == case["manifest"]


# Spec: R-VECTOR-3.
def test_the_command_line(tmp_path, capsys):
    assert main(["vectors", "export", str(tmp_path)]) == 0
    assert main(["vectors", "check", str(tmp_path), "--impl",
                 "tests.toy_implementation:ToyImplementation"]) == 0  # fmt: skip
    assert main(["vectors", "check", str(tmp_path), "--impl",
                 "tests.toy_implementation:IgnoresCooldown"]) == 1  # fmt: skip
    assert main(["vectors", "check", str(tmp_path), "--impl", "no.such:thing"]) == 2
    assert "cannot import no.such" in capsys.readouterr().err
