"""This path before the kit was grouped: now :mod:`replication.conformance.adapters.preflight`.

Kept so that code written against this path (an adapter, a printed
reproduction program) still imports; new code imports from the new path.
"""

from replication.conformance.adapters.preflight import (
    Adapter,
    SetupError,
    load_adapter,
    load_factory,
)

__all__ = ["Adapter", "SetupError", "load_adapter", "load_factory"]
