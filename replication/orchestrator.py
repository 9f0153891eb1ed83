"""The seed's ``SandboxOrchestrator``: an imperative facade over the orchestrator's part.

Used alone, it launches any manifest it is given, as the seed's did, with one
deliberate difference: launching a worker id that is already running is denied
(``already_running``) instead of silently replacing, and so losing, the first
container. Once a :class:`~replication.controller.Controller` is bound to it,
the controller applies system transitions to both parts at once, and
:meth:`SandboxOrchestrator.launch_worker` becomes the system launch: only a
registered worker is launched, and nothing after the kill switch.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from replication import transitions
from replication.clock import DEFAULT_CLOCK
from replication.errors import ReasonCode, ReplicationDenied
from replication.model import ContainerRecord, Manifest, OrchestratorState
from replication.observability import StructuredLogger

if TYPE_CHECKING:
    from collections.abc import Callable

    import immutables

    from replication.clock import Clock
    from replication.controller import Controller
    from replication.transitions import Outcome

__all__ = ["ContainerRecord", "SandboxOrchestrator"]


class SandboxOrchestrator:
    """Container lifecycle manager for worker sandboxes, holding an immutable state.

    ``containers`` is the current immutable map of running containers by worker
    id; every method applies one pure transition under a lock and logs its event.
    """

    def __init__(self, logger: StructuredLogger | None = None, *, clock: Clock | None = None):
        self.clock: Clock = clock or DEFAULT_CLOCK
        self.logger = logger or StructuredLogger(clock=self.clock)
        self._state = OrchestratorState()
        # Reentrant: a Controller holding it may call back into this object.
        self._lock = threading.RLock()
        #: The controller bound to this orchestrator, if any (set by the controller).
        self._controller: Controller | None = None

    @property
    def state(self) -> OrchestratorState:
        """The current orchestrator state."""
        return self._state

    @property
    def containers(self) -> immutables.Map[str, ContainerRecord]:
        """Running containers by worker id (an immutable snapshot)."""
        return self._state.containers

    def _apply(
        self, transition: Callable[..., Outcome[OrchestratorState]], *args: object, **kwargs: object
    ) -> None:
        with self._lock:
            before = self._state.containers
            try:
                outcome = transition(self._state, *args, now=self.clock(), **kwargs)
            except ReplicationDenied as denied:
                if denied.event is not None:
                    self.logger.record(denied.event)
                raise
            self._state = outcome.state
        self.logger.record(outcome.event, before)

    def launch_worker(self, manifest: Manifest) -> None:
        """Start a container for ``manifest``; denied if that worker id already runs.

        Bound to a controller, this is the controller's launch: the worker must
        be registered and the kill switch not engaged, as for
        :meth:`Controller.launch_worker <replication.controller.Controller.launch_worker>`.
        """
        controller = self._controller
        if controller is not None:
            controller.launch_worker(manifest, self)
            return
        self._apply(transitions.launch_container, manifest)

    def kill_worker(self, worker_id: str, reason: str) -> None:
        """Stop and remove a container; an unknown id is logged as ``container_kill_skipped``."""
        self._apply(transitions.kill_container, worker_id, reason=reason)

    def kill_all(self, reason: str) -> None:
        """Terminate every running container."""
        self._apply(transitions.kill_all_containers, reason=reason)

    def enforce_resource_bounds(self, worker_id: str) -> None:
        """Apply a running container's limits and emit a ``resource_enforced`` metric.

        As in the seed, an id with no running container is not an error (the
        denial is logged in the audit trail).
        """
        try:
            self._apply(transitions.enforce_container_bounds, worker_id)
        except ReplicationDenied as denied:
            if denied.reason is not ReasonCode.NOT_RUNNING:
                raise

    def __repr__(self) -> str:
        return f"<SandboxOrchestrator containers={len(self._state.containers)}>"
