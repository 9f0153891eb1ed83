"""The conformance kit against ProcessOrchestrator: the reference, over real processes."""

from __future__ import annotations

import pytest

from replication.conformance.adapters.adapter import FacadeImplementation
from replication.conformance.sequential.runner import run_conformance
from replication.processes.adapter import (
    ProcessImplementation,
    WeakerIsolationImplementation,
    close_all,
)
from tests.process_helpers import needs_full_isolation


def check(report, prefix: str) -> bool | None:
    """``True`` for pass, ``False`` for FAIL, ``None`` for n/a or not checked."""
    (value,) = [check for name, check in report.checks.items() if name.startswith(prefix)]
    return {"pass": True, "FAIL": False}.get(value.status)


@pytest.fixture
def closing():
    """Close every system the kit started (their workers killed, confirmed), pass or fail."""
    try:
        yield
    finally:
        close_all()


@needs_full_isolation
# Spec: R-PROC-9, R-KIT-3, R-INV-1.
def test_the_kit_passes_against_real_processes_with_inv_processes_checked(closing):
    """Every decision, reason and observation agrees with the reference, and after every step
    no worker without a container has a live process. (Forty programs reach most witnesses,
    not all of the kit's: the README's full run, 400 programs, reaches every one.)"""
    report = run_conformance(ProcessImplementation, profile="ci", max_examples=40, seed=1)
    assert report.failure is None, report.render()
    assert report.verdict in {"CONFORMANT", "INCONCLUSIVE"}
    assert check(report, "INV-PROCESSES") is True
    assert report.implementation_steps == report.steps > 500
    assert "full isolation" in (report.implementation_version or "")


# Spec: R-PROC-3, R-PROC-9.
def test_the_report_names_weaker_isolation_and_still_checks_processes(closing):
    """With namespaces switched off, the report's header says weaker isolation, and the run
    finds no divergence and no live process without a container."""
    report = run_conformance(
        WeakerIsolationImplementation, profile="ci", max_examples=4, seed=3, shrink=False
    )
    assert report.failure is None, report.render()
    assert check(report, "INV-PROCESSES") is True
    assert "weaker isolation" in report.render().splitlines()[0]


# Spec: R-KIT-3, R-INV-2.
def test_an_adapter_without_processes_gets_not_applicable():
    """The simulation reports no processes: INV-PROCESSES is n/a for it, never passed."""
    report = run_conformance(FacadeImplementation, profile="dev", max_examples=5, seed=3)
    assert report.failure is None, report.render()
    assert check(report, "INV-PROCESSES") is None
