"""This path before the kit was grouped: now :mod:`replication.conformance.adapters.adapter`.

Kept so that code written against this path (an adapter, a printed
reproduction program) still imports; new code imports from the new path.
"""

from replication.conformance.adapters.adapter import (
    OPTIONAL_ACTIONS,
    Denied,
    FacadeImplementation,
    Implementation,
    ReferenceImplementation,
)

__all__ = [
    "OPTIONAL_ACTIONS",
    "Denied",
    "FacadeImplementation",
    "Implementation",
    "ReferenceImplementation",
]
