"""The standard stop conditions: the ones a contract may name in a vector or a trace.

A stop condition is a predicate, which a JSON record cannot carry, so vectors
(specs/05-vectors.md) and traces (specs/07-journal.md, R-TRACE-1) name it, and
a reader rebuilds it from its name. These are the names every reader knows
without being given a predicate; the vector format and the trace format both
read them from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replication.model import StopCondition

if TYPE_CHECKING:
    from collections.abc import Mapping

    from replication.model import ReplicationContext

__all__ = ["NO_EXTERNAL_NETWORK", "STANDARD_STOP_CONDITIONS", "asks_for_external_network"]


def asks_for_external_network(context: ReplicationContext) -> bool:
    """Fire when a worker asks for unrestricted network egress."""
    return context.manifest.resources.network_policy.allow_external


#: Fires for a manifest that asks for unrestricted egress.
NO_EXTERNAL_NETWORK = StopCondition(
    "no_external_network", "no unrestricted egress", asks_for_external_network
)

#: Every standard stop condition, by name.
STANDARD_STOP_CONDITIONS: Mapping[str, StopCondition] = {
    NO_EXTERNAL_NETWORK.name: NO_EXTERNAL_NETWORK
}
