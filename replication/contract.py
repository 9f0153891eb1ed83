"""The seed's ``replication.contract`` module: the policy and manifest records.

They live in :mod:`replication.model` with the rest of the state; this module
keeps the seed's import paths working.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeAlias

from replication.model import (
    Manifest,
    NetworkPolicy,
    ReplicationContext,
    ReplicationContract,
    ResourceSpec,
    StopCondition,
)

__all__ = [
    "Manifest",
    "NetworkPolicy",
    "Predicate",
    "ReplicationContext",
    "ReplicationContract",
    "ResourceSpec",
    "StopCondition",
]

#: A stop condition's test.
Predicate: TypeAlias = Callable[[ReplicationContext], bool]
