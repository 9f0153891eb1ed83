"""The public surface is exactly what we intend, and the layers import one way only."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import replication

PACKAGE = Path(replication.__file__).parent
CORE = {
    "model",
    "transitions",
    "decisions",
    "signing",
    "encoding",
    "errors",
    "_validation",
    "_frozen",
    "rules",
    "_ed25519",
    "invariants",
    # Helpers every room uses, importing nothing of the package: counts and
    # plurals (_text), module arguments resolved one way (_resolve).
    "_text",
    "_resolve",
}
FACADE = {
    "controller",
    "orchestrator",
    "worker",
    "observability",
    "contract",
    "signer",
    "clock",
    "demo",
    "cli",
}


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


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("replication")
        ):
            found.add(node.module.split(".")[1] if "." in node.module else "")
            if node.module == "replication":
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(
                a.name.split(".")[1] for a in node.names if a.name.startswith("replication.")
            )
    return found


@pytest.mark.parametrize("module", sorted(CORE))
def test_the_core_never_imports_the_facade(module):
    assert (
        imported_modules(PACKAGE / f"{module}.py")
        & (FACADE | {"conformance", "journal", "processes"})
        == set()
    )


def test_only_the_command_line_imports_the_process_backend():
    """The process backend is a room of its own: the CLI opens its door, nothing else does."""
    importers = sorted(
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if "processes" not in path.relative_to(PACKAGE).parts
        and "processes" in imported_modules(path)
    )
    assert importers == ["cli.py"]


def test_the_layer_lists_cover_every_module():
    modules = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__", "__main__"}
    assert modules - CORE - FACADE == set(), "classify new modules as core or facade"
