"""This path before the kit was grouped: now :mod:`replication.conformance.sequential.runner`.

Kept so that code written against this path (an adapter, a printed
reproduction program) still imports; new code imports from the new path.
"""

from replication.conformance.sequential.runner import (
    DEFAULT_SHRINK_TIME,
    DEFAULT_TARGET,
    DEFAULT_TIMEOUT,
    Report,
    SetupError,
    run_conformance,
)

__all__ = [
    "DEFAULT_SHRINK_TIME",
    "DEFAULT_TARGET",
    "DEFAULT_TIMEOUT",
    "Report",
    "SetupError",
    "run_conformance",
]
