"""The public surface is exactly what we intend (the layers: tests/test_architecture.py)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

import replication

PACKAGE = Path(replication.__file__).parent


def test_the_top_level_exports_are_exactly_these():
    assert sorted(replication.__all__) == sorted(
        [
            "AuditError",
            "BadSignatureError",
            "ContainerRecord",
            "Controller",
            "ControllerState",
            "Effect",
            "Event",
            "FrozenDict",
            "FrozenList",
            "ImmutableError",
            "InvalidInputError",
            "InvalidKeyError",
            "InvalidTypeError",
            "InvalidValueError",
            "ManualClock",
            "Manifest",
            "Metric",
            "MonotonicClock",
            "NetworkPolicy",
            "OrchestratorState",
            "Outcome",
            "ReasonCode",
            "ReentrancyError",
            "RegistryEntry",
            "ReplicationContext",
            "ReplicationContract",
            "ReplicationDenied",
            "ReplicationError",
            "ResourceSpec",
            "SandboxOrchestrator",
            "SignatureError",
            "SigningKey",
            "State",
            "StopCondition",
            "StopConditionTriggered",
            "StructuredLogger",
            "VerifyingKey",
            "Worker",
            "__version__",
            "generate_signing_key",
        ]
    )
    for name in replication.__all__:
        assert hasattr(replication, name)


@pytest.mark.parametrize(
    "module",
    sorted(
        ".".join(p.relative_to(PACKAGE).with_suffix("").parts)
        for p in PACKAGE.rglob("*.py")
        if p.stem not in {"__main__", "__init__"}
    ),
)
def test_every_name_a_module_exports_exists(module):
    imported = importlib.import_module(f"replication.{module}")
    for name in getattr(imported, "__all__", []):
        assert hasattr(imported, name), f"replication.{module}.__all__ lists missing {name}"


def test_the_seed_import_paths_work():
    from replication.contract import Manifest, NetworkPolicy, ResourceSpec  # noqa: F401
    from replication.controller import Controller, RegistryEntry, ReplicationDenied  # noqa: F401
    from replication.observability import Metric, StructuredLogger  # noqa: F401
    from replication.orchestrator import ContainerRecord, SandboxOrchestrator  # noqa: F401
    from replication.signer import ManifestSigner  # noqa: F401
    from replication.worker import Worker  # noqa: F401


def test_the_kits_module_paths_from_before_its_grouping_still_work():
    """Adapters and printed programs written against the flat kit still import the same objects."""
    from replication.conformance import adapters, concurrent, vectors
    from replication.conformance.adapter import Denied, ReferenceImplementation
    from replication.conformance.jsonforms import manifest_to_json
    from replication.conformance.machine import differential_machine
    from replication.conformance.preflight import load_factory
    from replication.conformance.runner import run_conformance
    from replication.conformance.sequential import machine, runner
    from replication.conformance.vectors import jsonforms

    assert (Denied, ReferenceImplementation, load_factory) == (
        adapters.Denied,
        adapters.ReferenceImplementation,
        adapters.load_factory,
    )
    assert (differential_machine, run_conformance, manifest_to_json) == (
        machine.differential_machine,
        runner.run_conformance,
        jsonforms.manifest_to_json,
    )
    assert concurrent.run_concurrent is concurrent.runner.run_concurrent
    assert vectors.check_vectors is vectors.check.check_vectors


@pytest.mark.parametrize("module", ["transitions", "model", "errors", "encoding"])
def test_a_name_defined_in_a_private_module_shows_its_public_path(module):
    """What a public module re-exports from a private one reads as the public module's own."""
    imported = importlib.import_module(f"replication.{module}")
    shown = {
        name: getattr(imported, name).__module__
        for name in imported.__all__
        if isinstance(getattr(imported, name), type) or callable(getattr(imported, name))
    }
    assert shown == dict.fromkeys(shown, f"replication.{module}")
