"""The seed's ``Worker``: a small agent that performs tasks and may replicate.

A ``Worker`` is started by constructing it: its manifest is registered with the
controller and its container launched, as one step (a refused launch releases
the registration). Replication goes through the controller, which derives the
child's depth and enforces the contract; a refusal is logged and returns ``None``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

import attrs

from replication import _validation as v
from replication._validation import check_record
from replication.errors import InvalidTypeError, InvalidValueError, ReasonCode, ReplicationDenied
from replication.model import Manifest

if TYPE_CHECKING:
    from collections.abc import Mapping

    from replication.controller import Controller
    from replication.model import ReplicationContract
    from replication.observability import StructuredLogger
    from replication.orchestrator import SandboxOrchestrator

__all__ = ["TaskFn", "Worker", "WorkerState"]

#: A task a worker performs; it receives the worker.
TaskFn: TypeAlias = Callable[["Worker"], None]


@v.immutable
@attrs.frozen
class WorkerState:
    """A worker's own view of itself."""

    manifest: Manifest
    expires_at: datetime | None
    created_at: datetime


class Worker:
    """A worker process: registered and launched on construction."""

    def __init__(
        self,
        manifest: Manifest,
        contract: ReplicationContract,
        controller: Controller,
        orchestrator: SandboxOrchestrator,
        logger: StructuredLogger | None = None,
    ) -> None:
        from replication.controller import Controller  # noqa: PLC0415 - it imports us
        from replication.orchestrator import SandboxOrchestrator  # noqa: PLC0415

        # Everything that can refuse is checked before the worker starts; once
        # it runs, the constructor either returns it or takes it down again.
        if not isinstance(controller, Controller):
            raise InvalidTypeError("controller", "a replication.Controller", controller)
        if not isinstance(orchestrator, SandboxOrchestrator):
            raise InvalidTypeError("orchestrator", "a SandboxOrchestrator", orchestrator)
        if contract != controller.contract:
            raise InvalidValueError("contract", "the controller's contract", contract)
        self.manifest: Manifest = check_record("manifest", manifest, Manifest, "a Manifest")
        self.contract = contract
        self.controller = controller
        self.orchestrator = orchestrator
        self.logger = logger or controller.logger
        controller.start_worker(manifest, orchestrator)
        try:
            entry = controller.registry.get(manifest.worker_id)
            created_at = entry.registered_at if entry is not None else controller.clock()
            expiration = contract.expiration
            expires_at = None if expiration is None else _later(created_at, expiration)
            self.state = WorkerState(manifest, expires_at, created_at)
            self.logger.log(
                "worker_started", worker_id=manifest.worker_id, parent_id=manifest.parent_id
            )
        except BaseException:
            # The worker must not run without the object that controls it.
            with contextlib.suppress(Exception):
                self.shutdown("start_failed")
            raise

    @property
    def worker_id(self) -> str:
        """This worker's id."""
        return self.manifest.worker_id

    def perform_task(self, task: TaskFn) -> None:
        """Run ``task``, then send a heartbeat and have the orchestrator enforce bounds.

        An expired worker, or any worker after the kill switch, shuts down and
        raises ``ReplicationDenied``; a task that raises shuts the worker down
        and the exception propagates.
        """
        if self._expired():
            self.shutdown("expired")
            raise ReplicationDenied(
                ReasonCode.EXPIRED, f"Worker expired: worker {self.worker_id!r} expired"
            )
        # With a journal, another process may have engaged the switch since this
        # one last acted: read the journal first (specs/07-journal.md, R-JOURNAL-6).
        self.controller.refresh()
        if self.controller.kill_switch_engaged:
            self.shutdown("kill_switch")
            raise ReplicationDenied(
                ReasonCode.KILL_SWITCH, "Kill switch engaged: the kill switch is engaged"
            )
        try:
            task(self)
        except Exception:
            self.logger.log("task_failed", worker_id=self.worker_id, error=True)
            self.shutdown("task_error")
            raise
        self.controller.heartbeat(self.worker_id)
        self.orchestrator.enforce_resource_bounds(self.worker_id)

    def maybe_replicate(self, reason: str, state_snapshot: Mapping[str, Any]) -> Worker | None:
        """Ask the controller for a child; return it, or ``None`` if the policy refused.

        An expired worker does not replicate: it shuts down (R-EXPIRE-2); nor
        does any worker once the kill switch is engaged. Each refusal is
        logged as ``replication_denied`` with the older API's ``reason``.
        """
        if self._expired():
            self.logger.log(
                "replication_denied", parent_id=self.worker_id, reason="expired", code="expired"
            )
            self.shutdown("expired")
            return None
        if self.controller.kill_switch_engaged:
            self.logger.log(
                "replication_denied",
                parent_id=self.worker_id,
                reason="kill_switch",
                code="kill_switch",
            )
            return None
        try:
            manifest = self.controller.issue_manifest(
                self.worker_id, None, state_snapshot, self.manifest.resources
            )
            child = Worker(manifest, self.contract, self.controller, self.orchestrator, self.logger)
        except ReplicationDenied as denied:
            self.logger.log(
                "replication_denied",
                parent_id=self.worker_id,
                reason=reason,
                code=denied.reason.value,
                detail=denied.detail,
            )
            return None
        self.logger.audit(
            "replication_requested",
            parent_id=self.worker_id,
            child_id=child.worker_id,
            reason=reason,
        )
        return child

    def _expired(self) -> bool:
        """Whether this worker outlived the contract's expiration (R-EXPIRE-2)."""
        expires_at = self.state.expires_at
        return expires_at is not None and self.controller.clock() > expires_at

    def heartbeat(self) -> None:
        """Tell the controller this worker is alive."""
        self.controller.heartbeat(self.worker_id)

    def shutdown(self, reason: str) -> None:
        """Kill this worker's container and deregister it."""
        self.orchestrator.kill_worker(self.worker_id, reason=reason)
        self.controller.deregister(self.worker_id, reason)
        self.logger.log("worker_shutdown", worker_id=self.worker_id, reason=reason)

    def __repr__(self) -> str:
        return f"<Worker {self.worker_id} depth={self.manifest.depth}>"


def _later(moment: datetime, span: timedelta) -> datetime:
    """Return ``moment + span``, or the last representable moment if that lies beyond it."""
    try:
        return moment + span
    except OverflowError:
        return datetime.max.replace(tzinfo=UTC)
