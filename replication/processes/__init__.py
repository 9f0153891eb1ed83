"""The process backend: workers as isolated Linux processes, and killed means dead.

A room of its own: it imports the core and the facade, and only the command
line imports it. Its modules, from the kernel up:

* :mod:`~replication.processes.seccomp` - the system calls a worker may not make;
* :mod:`~replication.processes.fences` - the command line that puts a worker
  behind every fence (cgroups, rlimits, its own uid, bubblewrap);
* :mod:`~replication.processes.isolation` - what the kernel grants (probed);
* :mod:`~replication.processes.cgroups` - a worker's limits and usage, the
  freezer, and the sweep of a dead orchestrator's cgroups;
* :mod:`~replication.processes.sandbox` - one worker's process tree: started
  behind its fences, killed, confirmed dead;
* :mod:`~replication.processes.statefile` - what was launched, for a successor
  to kill;
* :mod:`~replication.processes.orchestrator` - :class:`ProcessOrchestrator`,
  the seed's orchestrator over all of that, with
  :mod:`~replication.processes.workers` (statuses, the default launcher);
* :mod:`~replication.processes.adapter` - the conformance kit's adapter;
* :mod:`~replication.processes.demo` - ``replication demo --processes``.

specs/08-process-backend.md states what it guarantees against a hostile worker
(the threat model, R-PROC-1 to R-PROC-17).
"""

from replication.processes.errors import (
    IsolationUnavailable,
    KillUnconfirmed,
    LaunchError,
    ProcessBackendError,
)
from replication.processes.isolation import Isolation, probe_isolation
from replication.processes.orchestrator import (
    DEFAULT_MAX_PROCESSES,
    ProcessOrchestrator,
    WeakerIsolationWarning,
    WorkerStatus,
    command_from_snapshot,
)

__all__ = [
    "DEFAULT_MAX_PROCESSES",
    "Isolation",
    "IsolationUnavailable",
    "KillUnconfirmed",
    "LaunchError",
    "ProcessBackendError",
    "ProcessOrchestrator",
    "WeakerIsolationWarning",
    "WorkerStatus",
    "command_from_snapshot",
    "probe_isolation",
]
