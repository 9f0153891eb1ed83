"""The adapter protocol: how the conformance kit drives an implementation.

An implementation joins by writing one class with the methods of
:class:`Implementation` and a zero-argument factory for it (the class itself
will do). The kit calls :meth:`~Implementation.start` once per test case, then
the actions, then :meth:`~Implementation.observe` after each of them; it
controls the clock the implementation must read. A refused action raises
:class:`Denied` (or :class:`~replication.errors.ReplicationDenied`) with the
reason code, or with ``None`` when the implementation cannot say why.

Two adapters are bundled: :class:`ReferenceImplementation` (the pure core
itself, so the kit can be checked against itself) and
:class:`FacadeImplementation` (the seed's imperative API), which is what
``replication conformance`` checks when given no target.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from replication import transitions as core
from replication.controller import Controller
from replication.errors import ReasonCode, ReplicationDenied
from replication.invariants import Observation, observe
from replication.model import State
from replication.observability import StructuredLogger
from replication.orchestrator import SandboxOrchestrator

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import datetime, timedelta

    from replication.model import (
        Event,
        Manifest,
        OrchestratorState,
        ReplicationContract,
        ResourceSpec,
    )
    from replication.signing import SigningKey
    from replication.transitions import Outcome

__all__ = [
    "OPTIONAL_ACTIONS",
    "Denied",
    "FacadeImplementation",
    "Implementation",
    "ReferenceImplementation",
]

#: Actions an adapter may declare as gaps (``gaps = frozenset({"quarantine", "release"})``).
#: issue, register, launch and observe are required of every implementation;
#: ``generated_ids`` is ``issue`` with ``worker_id=None``.
OPTIONAL_ACTIONS = frozenset(
    {"heartbeat", "kill", "reap", "kill_switch", "quarantine", "release",
     "deregister", "expire", "generated_ids"}
)  # fmt: skip
#: Actions added to the protocol after its first version: an adapter written
#: before them, which neither provides nor declares them, has them as gaps
#: (the report says so, and a strict run refuses it).
LATER_ACTIONS = frozenset({"deregister", "expire", "generated_ids"})
#: The methods of adapter-owned signing: all three, or none (the kit then signs
#: with the Ed25519 key it gives ``start``).
SIGNING_METHODS = ("sign", "sign_with_another_key", "verify")

Clock = Callable[[], "datetime"]


class Denied(Exception):  # noqa: N818 - it names a decision, like ReplicationDenied
    """Raised by an adapter when its implementation refused an action.

    ``reason`` is one of :class:`~replication.errors.ReasonCode`'s values, or
    ``None`` when the implementation does not say why (then only the
    ``decision`` comparison mode can pass).
    """

    def __init__(self, reason: str | None = None) -> None:
        self.reason = reason
        super().__init__(reason or "denied")


@runtime_checkable
class Implementation(Protocol):
    """What an implementation under test provides.

    Every action either returns (allowed) or raises :class:`Denied` (refused,
    and nothing changed). Three optional attributes: ``gaps``, the optional
    actions it does not implement; ``unreported``, the optional observation
    fields it never reports; and ``version``, shown in the report.

    An implementation that signs with its own scheme (HMAC, another key type)
    also provides :meth:`sign`, :meth:`sign_with_another_key` and
    :meth:`verify`; the kit then builds every validly signed, foreign-signed
    and tampered manifest through them, and compares manifests without their
    signatures.
    """

    def start(self, contract: ReplicationContract, key: SigningKey, clock: Clock) -> None:
        """Begin a fresh system under ``contract``, signing with ``key``, reading ``clock``."""

    def issue(
        self,
        parent_id: str | None,
        worker_id: str | None,
        resources: ResourceSpec,
        state_snapshot: Mapping[str, Any],
    ) -> Manifest:
        """Issue a signed manifest for ``worker_id``, a child of ``parent_id`` or a root.

        With ``worker_id=None`` the controller generates the id (R-ISSUE-3),
        unless the adapter declares ``generated_ids`` a gap.
        """
        ...

    def register(self, manifest: Manifest) -> None:
        """Register the worker ``manifest`` describes."""

    def launch(self, manifest: Manifest) -> None:
        """Launch the container of a registered worker."""

    def heartbeat(self, worker_id: str) -> None:
        """Record a heartbeat from ``worker_id``."""

    def kill(self, worker_id: str) -> None:
        """Kill ``worker_id``'s container (its registration stays)."""

    def reap(self, timeout: timedelta) -> None:
        """Deregister workers silent for longer than ``timeout`` and kill their containers."""

    def kill_switch(self) -> None:
        """Kill every container, deregister every worker, refuse all growth from now on."""

    def quarantine(self, worker_id: str) -> None:
        """Quarantine ``worker_id``."""

    def release(self, worker_id: str) -> None:
        """Release ``worker_id`` from quarantine."""

    def deregister(self, worker_id: str) -> None:
        """Deregister ``worker_id`` and kill its container."""

    def expire(self) -> None:
        """Deregister every worker older than the contract's expiration, killing its container."""

    def sign(self, manifest: Manifest) -> Manifest:
        """Return ``manifest``'s fields signed by the controller's key (adapter-owned signing)."""
        ...

    def sign_with_another_key(self, manifest: Manifest) -> Manifest:
        """Return ``manifest``'s fields signed by a key that is not the controller's."""
        ...

    def verify(self, manifest: Manifest) -> bool:
        """Return whether ``manifest`` carries the controller's valid signature."""
        ...

    def observe(self) -> Observation:
        """Return the current state, normalised (report what you can, ``None`` the rest)."""
        ...


class ReferenceImplementation:
    """The pure core behind the adapter protocol: the kit checked against itself."""

    gaps: frozenset[str] = frozenset()

    def start(self, contract: ReplicationContract, key: SigningKey, clock: Clock) -> None:
        self.key = key
        self.clock = clock
        self.state = State.initial(contract, key.verifying_key)

    def _apply(self, transition: Callable[..., Outcome[State]], *args: Any, **kwargs: Any) -> Any:
        try:
            outcome = transition(self.state, *args, now=self.clock(), **kwargs)
        except ReplicationDenied as denied:
            raise Denied(denied.reason.value) from None
        self.state = outcome.state
        return outcome.manifest

    def issue(
        self,
        parent_id: str | None,
        worker_id: str | None,
        resources: ResourceSpec,
        state_snapshot: Mapping[str, Any],
    ) -> Manifest:
        manifest: Manifest = self._apply(
            core.issue_manifest, self.key, parent_id=parent_id, worker_id=worker_id,
            resources=resources, state_snapshot=state_snapshot,
        )  # fmt: skip
        return manifest

    def register(self, manifest: Manifest) -> None:
        self._apply(core.register_worker, manifest)

    def launch(self, manifest: Manifest) -> None:
        self._apply(core.launch_worker, manifest)

    def heartbeat(self, worker_id: str) -> None:
        self._apply(core.heartbeat, worker_id)

    def kill(self, worker_id: str) -> None:
        self._apply(core.kill_worker, worker_id, reason="conformance")

    def reap(self, timeout: timedelta) -> None:
        self._apply(core.reap_stale_workers, timeout=timeout)

    def kill_switch(self) -> None:
        self._apply(core.engage_kill_switch)

    def quarantine(self, worker_id: str) -> None:
        self._apply(core.quarantine_worker, worker_id, reason="conformance")

    def release(self, worker_id: str) -> None:
        self._apply(core.release_worker, worker_id)

    def deregister(self, worker_id: str) -> None:
        self._apply(core.deregister_worker, worker_id, reason="conformance")

    def expire(self) -> None:
        self._apply(core.expire_workers)

    def observe(self) -> Observation:
        return observe(self.state)


class _ThreadTrail(StructuredLogger):
    """The facade's logger, also keeping each thread's own decisions.

    Calls from several threads overlap (the concurrent mode), so a call reads
    the decisions its own thread recorded, not the shared trail.
    """

    def __init__(self, *, clock: Clock) -> None:
        super().__init__(clock=clock)
        self._local = threading.local()

    def record(
        self,
        event: Event,
        before: State | OrchestratorState | None = None,
        after: State | OrchestratorState | None = None,
    ) -> None:
        super().record(event, before, after)
        self.mine().append(event)

    def mine(self) -> list[Event]:
        """Return the decisions recorded by the calling thread."""
        if not hasattr(self._local, "events"):
            self._local.events = []
        events: list[Event] = self._local.events
        return events


class FacadeImplementation:
    """The seed's imperative API (``Controller`` and ``SandboxOrchestrator``) as an adapter.

    Where the seed stays silent on a refusal (a heartbeat from an unknown
    worker), the decision is read from the audit trail, as an operator would
    (from the decisions the calling thread recorded, so overlapping calls do
    not read each other's).
    """

    gaps: frozenset[str] = frozenset()

    def start(self, contract: ReplicationContract, key: SigningKey, clock: Clock) -> None:
        self.logger = _ThreadTrail(clock=clock)
        self.orchestrator = SandboxOrchestrator(self.logger, clock=clock)
        self.controller = Controller(
            contract, key, self.logger, orchestrator=self.orchestrator, clock=clock
        )

    def _call(self, method: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        mine = self.logger.mine()
        decisions = len(mine)
        try:
            result = method(*args, **kwargs)
        except ReplicationDenied as denied:
            raise Denied(denied.reason.value) from None
        refused = [event for event in mine[decisions:] if not event.allowed]
        if refused:  # refused, but the seed's API stayed silent about it
            raise Denied(ReasonCode(refused[-1].reason).value)
        return result

    def issue(
        self,
        parent_id: str | None,
        worker_id: str | None,
        resources: ResourceSpec,
        state_snapshot: Mapping[str, Any],
    ) -> Manifest:
        manifest: Manifest = self._call(
            self.controller.issue_manifest, parent_id, None, state_snapshot, resources,
            worker_id=worker_id,
        )  # fmt: skip
        return manifest

    def register(self, manifest: Manifest) -> None:
        self._call(self.controller.register_worker, manifest)

    def launch(self, manifest: Manifest) -> None:
        self._call(self.controller.launch_worker, manifest)

    def heartbeat(self, worker_id: str) -> None:
        self._call(self.controller.heartbeat, worker_id)

    def kill(self, worker_id: str) -> None:
        self._call(self.orchestrator.kill_worker, worker_id, "conformance")

    def reap(self, timeout: timedelta) -> None:
        self._call(self.controller.reap_stale_workers, timeout)

    def kill_switch(self) -> None:
        self._call(self.controller.kill_switch)

    def quarantine(self, worker_id: str) -> None:
        self._call(self.controller.quarantine, worker_id, "conformance")

    def release(self, worker_id: str) -> None:
        self._call(self.controller.release, worker_id)

    def deregister(self, worker_id: str) -> None:
        self._call(self.controller.deregister, worker_id, "conformance")

    def expire(self) -> None:
        self._call(self.controller.expire_workers)

    def observe(self) -> Observation:
        return observe(self.controller.state)
