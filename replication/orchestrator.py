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
from typing import TYPE_CHECKING, Protocol

from replication import transitions
from replication.clock import DEFAULT_CLOCK
from replication.errors import AuditError, ReasonCode, ReplicationDenied
from replication.model import ContainerRecord, Manifest, OrchestratorState
from replication.observability import StructuredLogger

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    import immutables

    from replication.clock import Clock
    from replication.model import Event
    from replication.transitions import Outcome

__all__ = ["BoundController", "ContainerRecord", "SandboxOrchestrator"]


class BoundController(Protocol):
    """What an orchestrator asks of the controller bound to it.

    That is a :class:`~replication.controller.Controller`; a protocol, so that
    the dependency points one way: the controller binds and drives an
    orchestrator, and the orchestrator knows only these three members of it,
    not the module.
    """

    @property
    def journal(self) -> object | None:
        """The controller's journal, if it keeps one (the containers are then shared state)."""

    def launch_worker(
        self, manifest: Manifest, orchestrator: SandboxOrchestrator | None = None
    ) -> None:
        """Launch a registered worker's container in ``orchestrator``."""

    def _apply_to_containers(
        self,
        transition: Callable[..., Outcome[OrchestratorState]],
        orchestrator: SandboxOrchestrator,
        arguments: Mapping[str, object],
    ) -> None:
        """Decide a transition of ``orchestrator``'s own part, as a journaled action."""


class SandboxOrchestrator:
    """Container lifecycle manager for worker sandboxes, holding an immutable state.

    ``containers`` is the current immutable map of running containers by worker
    id; every method applies one pure transition under a lock and logs its event.
    """

    def __init__(self, logger: StructuredLogger | None = None, *, clock: Clock | None = None):
        self.clock: Clock = clock or DEFAULT_CLOCK
        self.logger = logger or StructuredLogger()
        self._state = OrchestratorState()
        # Reentrant: a Controller holding it may call back into this object.
        self._lock = threading.RLock()
        #: The controller bound to this orchestrator, if any (set by the controller).
        self._controller: BoundController | None = None

    @property
    def state(self) -> OrchestratorState:
        """The current orchestrator state."""
        return self._state

    @property
    def containers(self) -> immutables.Map[str, ContainerRecord]:
        """Running containers by worker id (an immutable snapshot)."""
        return self._state.containers

    def _install(self, state: OrchestratorState) -> None:
        """Make ``state`` the current one (the controller's commit and ours go through here).

        The extension point of a real backend: it starts and stops what differs
        between the current state and ``state`` first, and raises, leaving
        everything as it was, if it cannot. Called with this orchestrator's lock held.
        """
        self._state = state

    def _adopt(self, state: OrchestratorState) -> None:
        """Make ``state`` current where this process did not decide it (a shared journal).

        Another process's decision, or the journal read back on start: the
        extension point of a real backend that stops what it runs and ``state``
        no longer holds, and starts nothing, since a container runs where it was
        launched (specs/07-journal.md, R-JOURNAL-11). Called with this
        orchestrator's lock held.
        """
        self._state = state

    def _apply(
        self, transition: Callable[..., Outcome[OrchestratorState]], **arguments: object
    ) -> None:
        with self._lock:
            controller = self._controller
            if controller is None or controller.journal is None:
                # The clock first: it may call back into a bound controller and change
                # this state; the transition below is pure and calls nothing back, so
                # the state it reads is the one it commits over (R-FACADE-1).
                now = self.clock()
                before = self._state
                try:
                    outcome = transition(before, **arguments, now=now)
                except ReplicationDenied as denied:
                    if denied.event is not None:
                        _record(self.logger, denied.event, before, before, denial=denied)
                    raise
                if outcome.state is not before:
                    self._install(outcome.state)
                _record(self.logger, outcome.event, before, outcome.state, applied=True)
                return
        # Bound to a journaled controller, the containers are shared state: the
        # controller decides and journals the change (outside our lock, which it
        # takes after its own, R-JOURNAL-11).
        controller._apply_to_containers(transition, self, arguments)

    def launch_worker(self, manifest: Manifest) -> None:
        """Start a container for ``manifest``; denied if that worker id already runs.

        Bound to a controller, this is the controller's launch: the worker must
        be registered and the kill switch not engaged, as for
        :meth:`Controller.launch_worker <replication.controller.Controller.launch_worker>`.
        The binding is read under this orchestrator's lock, which binding takes
        too, so a launch is either standalone and done before the binding, or
        the controller's (R-FACADE-4).
        """
        with self._lock:
            controller = self._controller
            if controller is None:
                self._apply(transitions.launch_container, manifest=manifest)
                return
        controller.launch_worker(manifest, self)

    def kill_worker(self, worker_id: str, reason: str) -> None:
        """Stop and remove a container; an unknown id is logged as ``container_kill_skipped``."""
        self._apply(transitions.kill_container, worker_id=worker_id, reason=reason)

    def kill_all(self, reason: str) -> None:
        """Terminate every running container."""
        self._apply(transitions.kill_all_containers, reason=reason)

    def enforce_resource_bounds(self, worker_id: str) -> None:
        """Apply a running container's limits and emit a ``resource_enforced`` metric.

        As in the seed, an id with no running container is not an error (the
        denial is logged in the audit trail).
        """
        try:
            self._apply(transitions.enforce_container_bounds, worker_id=worker_id)
        except ReplicationDenied as denied:
            if denied.reason is not ReasonCode.NOT_RUNNING:
                raise

    def __repr__(self) -> str:
        return f"<SandboxOrchestrator containers={len(self._state.containers)}>"


def _record(
    logger: StructuredLogger,
    event: Event,
    before: OrchestratorState,
    after: OrchestratorState,
    *,
    applied: bool = False,
    denial: ReplicationDenied | None = None,
) -> None:
    """Record ``event``; a failing sink raises :class:`AuditError` (R-FACADE-3)."""
    try:
        logger.record(event, before, after)
    except Exception as error:
        raise AuditError(event, applied=applied, denial=denial) from error
