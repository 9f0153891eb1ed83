"""This path before the kit was grouped: now :mod:`replication.conformance.sequential.machine`.

Kept so that code written against this path (an adapter, a printed
reproduction program) still imports; new code imports from the new path.
"""

from replication.conformance.sequential.machine import (
    GENERATED,
    MODES,
    DifferentialMachine,
    differential_machine,
)

__all__ = ["GENERATED", "MODES", "DifferentialMachine", "differential_machine"]
