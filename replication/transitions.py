"""Pure transitions: ``(state, arguments, now) -> Outcome(new state, audit event)``.

Every function here takes the state and ``now`` explicitly and returns a new
state with the one audit :class:`~replication.model.Event` describing what it
did, or raises :class:`~replication.errors.ReplicationDenied` carrying the
reason code and the audit event of the refusal. No function reads a clock,
draws randomness, logs or mutates its arguments; a denial changes nothing.
Bad arguments (a naive ``now``, a worker id that is not a string) raise
:class:`~replication.errors.InvalidInputError` before any rule is consulted.

System transitions act on the whole :class:`~replication.model.State` and
enforce the rules that span the controller and the orchestrator. The
``*_container*`` transitions act on an
:class:`~replication.model.OrchestratorState` alone, as the standalone
``SandboxOrchestrator`` does: they launch any manifest they are given.

The checks of each transition run in the order written; the first that fails
decides the reason code. ``specs/`` states the same order, clause by clause.

This module is the index; each group of transitions is a module of its own,
in the order of the lifecycle: :mod:`replication._issuing` (issue and
register), :mod:`replication._containers` (launch, kill, enforce),
:mod:`replication._liveness` (heartbeat, reap, expire, deregister) and
:mod:`replication._kill_switch` (the kill switch and quarantine), over
:mod:`replication._outcome` (the :class:`Outcome` and the checks they share).
"""

from replication._containers import (
    enforce_container_bounds,
    enforce_resource_bounds,
    kill_all_containers,
    kill_container,
    kill_worker,
    launch_container,
    launch_worker,
)
from replication._issuing import issue_manifest, may_spawn, register_worker
from replication._kill_switch import engage_kill_switch, quarantine_worker, release_worker
from replication._liveness import (
    deregister_worker,
    expire_workers,
    heartbeat,
    reap_stale_workers,
)
from replication._outcome import Outcome

__all__ = [
    "Outcome",
    "deregister_worker",
    "enforce_container_bounds",
    "enforce_resource_bounds",
    "engage_kill_switch",
    "expire_workers",
    "heartbeat",
    "issue_manifest",
    "kill_all_containers",
    "kill_container",
    "kill_worker",
    "launch_container",
    "launch_worker",
    "may_spawn",
    "quarantine_worker",
    "reap_stale_workers",
    "register_worker",
    "release_worker",
]


# What this module re-exports from the private modules that define it is shown
# under this public path (in tracebacks, reprs, pickles and the API reference),
# as it was before it moved there; httpx does the same for its private modules.
for _name in __all__:
    _value = globals()[_name]
    if getattr(_value, "__module__", "").startswith("replication._"):
        _value.__module__ = __name__
del _name, _value
