"""What the process backend raises, beside the core's denials.

The exception tree (every class is a :class:`~replication.errors.ReplicationError`)::

    ProcessBackendError              the operating system did not do what was asked
    ├── IsolationUnavailable         the kernel refused namespaces or cgroups, and
    │                                weaker isolation was not accepted (at construction)
    ├── LaunchError                  a sandbox could not be started; nothing was committed
    │                                and nothing of it runs (.worker_id)
    └── KillUnconfirmed              close() found workers whose death the kernel has not
                                     confirmed, even after a retry (.survivors)

A launch or a kill that fails at the OS level is not a policy decision: the
reference model has no such outcome, so it is a typed error, never a denial
with a reason code (specs/08-process-backend.md, R-PROC-4 and R-PROC-6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from replication.errors import ReplicationError

if TYPE_CHECKING:
    from collections.abc import Mapping

    from replication.processes.isolation import Isolation

__all__ = ["IsolationUnavailable", "KillUnconfirmed", "LaunchError", "ProcessBackendError"]


class ProcessBackendError(ReplicationError):
    """The operating system did not do what the process backend asked of it."""


class IsolationUnavailable(ProcessBackendError):  # noqa: N818 - it names a state, like the rest
    """The kernel refused full isolation and weaker isolation was not accepted."""

    def __init__(self, isolation: Isolation) -> None:
        self.isolation = isolation
        super().__init__(
            f"full isolation is unavailable: missing {', '.join(isolation.missing)} "
            f"({'; '.join(isolation.refused)}); pass "
            "accept_weaker_isolation=True to run with "
            f"{isolation.describe()} instead, or run where the kernel grants namespaces "
            "and cgroups (as root)"
        )


class LaunchError(ProcessBackendError):
    """A worker's sandbox could not be started; nothing of it runs and nothing was committed."""

    def __init__(self, worker_id: str, reason: str) -> None:
        self.worker_id = worker_id
        self.reason = reason
        super().__init__(f"cannot launch {worker_id!r}: {reason}")


class KillUnconfirmed(ProcessBackendError):  # noqa: N818 - it names a state, like the rest
    """The kernel did not confirm, in time, that every process of these workers is gone.

    ``survivors`` maps each such worker id to the pids still alive. Raised by
    ``close()`` (and by the recovery from a state file): a kill inside the
    policy's actions never raises it, because the policy's decision stands (the
    kill switch engages); the survivors are reported, retried, and block every
    launch instead (specs/08-process-backend.md, R-PROC-6).
    """

    def __init__(self, survivors: Mapping[str, tuple[int, ...]]) -> None:
        self.survivors = dict(survivors)
        listed = ", ".join(f"{w} (pids {list(p)})" for w, p in sorted(self.survivors.items()))
        super().__init__(f"the kernel did not confirm the death of {listed}")
