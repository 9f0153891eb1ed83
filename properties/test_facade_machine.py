"""The seed-API facade and the pure core, side by side: same decisions, same state."""

from __future__ import annotations

import pytest

from properties.conftest import PROFILE
from replication.conformance.adapters.adapter import FacadeImplementation
from replication.conformance.sequential.runner import run_conformance


# Spec: R-INV-1, R-KIT-2, R-KIT-3.
def test_the_facade_makes_the_cores_decisions_and_reaches_its_states():
    """Every action through Controller/SandboxOrchestrator agrees with the pure core in
    decision, reason code and full observation, and the run reaches every witness."""
    report = run_conformance(FacadeImplementation, mode="observation", profile=PROFILE)
    assert report.failure is None, report.render()
    assert report.implementation_steps == report.steps
    if PROFILE == "dev":
        pytest.skip(
            f"dev profile: witnesses reported, not enforced; missing {report.missing_witnesses}"
        )
    assert report.conformant, report.render()
