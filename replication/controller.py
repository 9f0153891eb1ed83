"""The seed's ``Controller``: an imperative, thread-safe facade over the pure core.

It holds the controller's part of the state; operations that span both parts
(launch, reap, kill switch, deregistration) lock the bound
:class:`~replication.orchestrator.SandboxOrchestrator` too and apply one system
transition to the composed :class:`~replication.model.State`, so a check and
the act it guards are never split by another thread.

Differences from the seed, each deliberate:

* manifests are signed with Ed25519 (pass a :class:`~replication.signing.SigningKey`,
  or none to generate one); an HMAC secret string is refused;
* registration enforces every rule again (kill switch, signature, replay, depth,
  quota, cooldown), not only the signature and the stop conditions;
* a ``depth`` passed to :meth:`Controller.issue_manifest` must equal the depth
  derived from the registry (the seed ignored it for children);
* deregistration and reaping kill the worker's container in the same step.

With ``journal=`` the controller records every decision in a durable journal
(:mod:`replication.journal`) before it applies it, rebuilds its state from the
journal on start, and shares one policy with every other process that opens
the same journal (specs/07-journal.md).

How a call is decided and committed (the locks, the attempts, the journal, the
audit) is :class:`~replication._committing.Committer`'s, which the controller extends.
"""

from __future__ import annotations

import contextlib
import threading
from typing import TYPE_CHECKING, Any

from replication import transitions
from replication._committing import Committer
from replication._frozen import freeze_json
from replication._validation import check_record
from replication.clock import DEFAULT_CLOCK
from replication.decisions import Decision, decide_on_containers, decide_start
from replication.decisions import decide as decide_transition
from replication.errors import (
    BadSignatureError,
    InvalidTypeError,
    InvalidValueError,
    ReasonCode,
    ReplicationDenied,
)
from replication.model import (
    ControllerState,
    Event,
    Manifest,
    OrchestratorState,
    RegistryEntry,
    ReplicationContract,
    ResourceSpec,
    State,
    _event,
)
from replication.observability import StructuredLogger
from replication.orchestrator import SandboxOrchestrator
from replication.signer import ManifestSigner, signing_key_from_secret
from replication.signing import SigningKey, VerifyingKey, generate_signing_key, sign_manifest
from replication.signing import verify_manifest as _verify_manifest

if TYPE_CHECKING:
    import os
    from collections.abc import Callable, Mapping
    from datetime import datetime, timedelta

    import immutables

    from replication.clock import Clock
    from replication.journal import Journal
    from replication.transitions import Outcome

__all__ = ["Controller", "RegistryEntry", "ReplicationDenied"]

_NO_CONTAINERS = OrchestratorState()


class Controller(Committer):
    """Tracks workers, enforces the contract and signs manifests; thread-safe.

    ``signing_key`` is the Ed25519 key manifests are signed with (a new one is
    generated when omitted). Code written for the older, HMAC-based API may
    pass its ``secret`` instead (by keyword, or as the second positional
    argument): the secret derives the Ed25519 key (R-MIGRATE-1, R-MIGRATE-2).
    ``signer`` signs and verifies with that key, as the older API's did.
    ``clock`` supplies ``now`` for every transition (default: the process-wide
    monotonic clock). ``journal``, a path or a
    :class:`~replication.journal.Journal`, makes every decision durable and
    shared with the other processes that open it (specs/07-journal.md);
    ``head``, ``"SEQUENCE:HASH"`` as ``journal verify`` prints it, is a head
    kept elsewhere that the journal must still reach, or the controller
    refuses to start (R-JOURNAL-18).
    """

    def __init__(
        self,
        contract: ReplicationContract,
        signing_key: SigningKey | str | None = None,
        logger: StructuredLogger | None = None,
        *,
        secret: str | None = None,
        orchestrator: SandboxOrchestrator | None = None,
        clock: Clock | None = None,
        journal: Journal | str | os.PathLike[str] | None = None,
        head: str | None = None,
    ) -> None:
        if not isinstance(contract, ReplicationContract):
            raise InvalidTypeError("contract", "a ReplicationContract", contract)
        if isinstance(signing_key, str):  # the older positional form: Controller(contract, secret)
            if secret is not None:
                raise InvalidValueError("secret", "given once", "<a secret, withheld>")
            signing_key, secret = None, signing_key
        if secret is not None:
            if signing_key is not None:
                raise InvalidValueError(
                    "secret", "absent when a signing_key is given", "<a secret, withheld>"
                )
            signing_key = signing_key_from_secret(secret)
        given: object = signing_key  # any object may arrive here, whatever the annotation says
        if given is not None and not isinstance(given, SigningKey):
            withheld = "<bytes, withheld>" if isinstance(given, bytes) else given
            raise InvalidTypeError(
                "signing_key",
                "a replication.signing.SigningKey (or an older HMAC secret as secret=...)",
                withheld,
            )
        self.signing_key = signing_key or generate_signing_key()
        #: The older API's signer: ``signer.sign(m)`` and ``signer.verify(m)`` with this key.
        self.signer = ManifestSigner.from_signing_key(self.signing_key)
        self.orchestrator: SandboxOrchestrator | None = None
        self.clock: Clock = clock or DEFAULT_CLOCK
        self.logger = logger or StructuredLogger()
        self._controller = ControllerState(contract, self.signing_key.verifying_key)
        #: The orchestrator's part while no orchestrator is bound (a journal may hold containers).
        self._containers = _NO_CONTAINERS
        self._lock = threading.RLock()
        #: Facade calls in progress on the thread holding the lock, and what the calls made
        #: from their callbacks raised (R-FACADE-2).
        self._nesting = 0
        self._raised_inside: list[BaseException] = []
        self._journal: Journal | None = None
        if journal is not None:
            # Imported here: the journal is an optional room the core never needs.
            from replication.journal import Journal  # noqa: PLC0415
            from replication.journal.snapshot import parse_anchor  # noqa: PLC0415

            anchor = None if head is None else parse_anchor(head)
            opened = journal if isinstance(journal, Journal) else Journal(journal)
            self._adopt(opened._attach(self._current(None), self.signing_key, anchor), None)
            self._journal = opened
        elif head is not None:
            raise InvalidValueError("head", "None without a journal (a head is a journal's)", head)
        self._bind(orchestrator)

    # -- reading the state --------------------------------------------------------

    @property
    def contract(self) -> ReplicationContract:
        """The contract this controller enforces."""
        return self._controller.contract

    @property
    def verifying_key(self) -> VerifyingKey:
        """The public key every registered manifest must verify under."""
        return self._controller.verifying_key

    @property
    def controller_state(self) -> ControllerState:
        """The controller's part of the state, as it is now."""
        return self._controller

    @property
    def state(self) -> State:
        """The whole system as it is now (with the bound orchestrator's part, if any)."""
        with self._lock:
            return self._current(self.orchestrator)

    @property
    def journal(self) -> Journal | None:
        """The journal this controller records its decisions in, if any."""
        return self._journal

    def refresh(self) -> None:
        """Catch up with the decisions other processes appended to the journal.

        Every action catches up before it decides; reads (``registry``,
        ``state``, ...) show the state as of this process's last action or
        refresh. Without a journal there is nothing to catch up with.
        """
        with self._lock:
            journal = self._journal
            orchestrator = self.orchestrator
            # The orchestrator's lock too, as for a decision: settling may install decisions
            # of this process's own (group commit), which a real backend acts on.
            with orchestrator._lock if orchestrator else contextlib.nullcontext():
                if journal is not None:
                    caught_up = journal._catch_up(
                        self._current(orchestrator), write=False, settle=self._sync_now
                    )
                    if caught_up is not None:
                        self._adopt(caught_up, orchestrator)

    @property
    def registry(self) -> immutables.Map[str, RegistryEntry]:
        """Registered workers by id (an immutable snapshot)."""
        return self._controller.registry

    @property
    def spawn_timestamps(self) -> immutables.Map[str, datetime]:
        """Parent id -> when its most recent child registered."""
        return self._controller.spawn_times

    @property
    def quarantined(self) -> frozenset[str]:
        """Ids of quarantined workers."""
        return frozenset(self._controller.quarantined)

    @property
    def kill_switch_engaged(self) -> bool:
        """Whether the kill switch has been engaged (it cannot be disengaged).

        Assigning ``True`` engages it, exactly as :meth:`kill_switch` does (the
        older API's flag); assigning anything else is refused: nothing can
        disengage it (R-KILLSWITCH-2).
        """
        return self._controller.kill_switch_engaged

    @kill_switch_engaged.setter
    def kill_switch_engaged(self, value: bool) -> None:
        if value is not True:
            raise InvalidValueError(
                "kill_switch_engaged", "True (the kill switch is never disengaged)", value
            )
        self.kill_switch()

    # -- applying transitions -----------------------------------------------------

    def _bind(self, orchestrator: SandboxOrchestrator | None) -> SandboxOrchestrator | None:
        if orchestrator is None:
            return self.orchestrator
        if not isinstance(orchestrator, SandboxOrchestrator):
            raise InvalidTypeError("orchestrator", "a SandboxOrchestrator", orchestrator)
        with self._lock:
            if self.orchestrator is None:
                if self._journal is not None:
                    _check_adopts(orchestrator)
                _claim(orchestrator, self)
                with orchestrator._lock:
                    # The containers a journal holds were launched by this or another
                    # process; the newly bound orchestrator records them (R-JOURNAL-11).
                    orchestrator._adopt(self._containers)
                self.orchestrator = orchestrator
                self._containers = _NO_CONTAINERS
            elif orchestrator is not self.orchestrator:
                raise InvalidValueError(
                    "orchestrator", "the orchestrator this controller is bound to", orchestrator
                )
        return orchestrator

    def _apply(
        self,
        transition: Callable[..., Outcome[State]],
        *,
        orchestrator: SandboxOrchestrator | None = None,
        **arguments: object,
    ) -> Outcome[State]:
        def decide(state: State, now: datetime) -> Decision:
            return decide_transition(transition, state, now, arguments)

        bound = self._bind(orchestrator)
        outcome: Outcome[State] = self._decide(transition.__name__, arguments, decide, bound)
        return outcome

    def _apply_to_containers(
        self,
        transition: Callable[..., Outcome[OrchestratorState]],
        orchestrator: SandboxOrchestrator,
        arguments: Mapping[str, object],
    ) -> None:
        """Decide a transition of the bound orchestrator's own part, as a journaled action.

        With a journal the containers are shared state (R-JOURNAL-11), so the
        orchestrator's kills and enforcements are decided here, recorded in the
        journal, and audited in the orchestrator's own logger as before.
        """

        def decide(state: State, now: datetime) -> Decision:
            return decide_on_containers(transition, state, now, arguments)

        self._decide(transition.__name__, arguments, decide, orchestrator, orchestrator.logger)

    # -- manifests ----------------------------------------------------------------

    def sign_manifest(self, manifest: Manifest) -> Manifest:
        """Return a copy of ``manifest`` signed with this controller's key."""
        return sign_manifest(manifest, self.signing_key)

    def verify_manifest(self, manifest: Manifest) -> None:
        """Raise ``ReplicationDenied(bad_signature)`` unless ``manifest`` verifies."""
        check_record("manifest", manifest, Manifest, "a Manifest")
        try:
            _verify_manifest(manifest, self.verifying_key)
        except BadSignatureError as error:
            event = _event(
                "verify_manifest",
                self.clock(),
                False,
                ReasonCode.BAD_SIGNATURE.value,
                manifest.worker_id,
                (),
                str(error),
            )
            denied = ReplicationDenied(ReasonCode.BAD_SIGNATURE, str(error), event=event)
            self._record_decision(Decision(None, (event,), None, denied), None, None, self.logger)
            raise denied from None

    def issue_manifest(
        self,
        parent_id: str | None,
        depth: int | None,
        state_snapshot: Mapping[str, object] | None,
        resources: ResourceSpec,
        *,
        worker_id: str | None = None,
    ) -> Manifest:
        """Issue and sign a manifest for a child of ``parent_id`` (or a root when ``None``).

        ``depth`` may be ``None``; otherwise it must equal the depth the
        registry gives the child (``depth_mismatch`` if not).
        """
        outcome = self._apply(
            transitions.issue_manifest,
            key=self.signing_key,
            parent_id=parent_id,
            depth=depth,
            # Frozen once, here: what the transition reads is what a journal records.
            state_snapshot=None
            if state_snapshot is None
            else freeze_json("state_snapshot", state_snapshot),
            resources=resources,
            worker_id=worker_id,
        )
        if outcome.manifest is None:  # pragma: no cover - issue always returns one
            raise AssertionError("issue_manifest returned no manifest")
        return outcome.manifest

    def can_spawn(self, parent_id: str | None) -> None:
        """Return if a child of ``parent_id`` (a root when ``None``) may be issued now.

        Raises ``ReplicationDenied`` with the reason ``issue_manifest`` would
        give; changes nothing either way, and the answer is audited (R-SPAWN-1).
        """
        self._apply(transitions.may_spawn, parent_id=parent_id)

    # -- lifecycle ----------------------------------------------------------------

    def register_worker(self, manifest: Manifest) -> None:
        """Register the worker ``manifest`` describes; raise ``ReplicationDenied`` if refused."""
        self._apply(transitions.register_worker, manifest=manifest)

    def launch_worker(
        self, manifest: Manifest, orchestrator: SandboxOrchestrator | None = None
    ) -> None:
        """Launch a registered worker's container in the (bound) orchestrator."""
        self._apply(
            transitions.launch_worker, manifest=manifest, orchestrator=self._require(orchestrator)
        )

    def start_worker(
        self, manifest: Manifest, orchestrator: SandboxOrchestrator | None = None
    ) -> None:
        """Register and launch as one step; if the launch is refused the slot is released.

        The registration, the refused launch and the release are all in the
        audit trail; the worker id stays spent (a manifest registers once).
        """

        def decide(state: State, now: datetime) -> Decision:
            return decide_start(state, now, manifest)

        self._decide("start_worker", {"manifest": manifest}, decide, self._require(orchestrator))

    def _require(self, orchestrator: SandboxOrchestrator | None) -> SandboxOrchestrator:
        bound = self._bind(orchestrator)
        if bound is None:
            raise InvalidValueError(
                "orchestrator", "a SandboxOrchestrator (none is bound to this controller)", None
            )
        return bound

    def heartbeat(self, worker_id: str) -> None:
        """Record a heartbeat; an unknown id is audited, not raised (as in the seed).

        A quarantined worker's heartbeat raises ``ReplicationDenied(quarantined)``.
        """
        with contextlib.suppress(_Unknown):
            self._apply_known(transitions.heartbeat, worker_id=worker_id)

    def deregister(
        self, worker_id: str, reason: str, orchestrator: SandboxOrchestrator | None = None
    ) -> None:
        """Deregister a worker and kill its container; an unknown id is audited, not raised."""
        with contextlib.suppress(_Unknown):
            self._apply_known(
                transitions.deregister_worker,
                worker_id=worker_id,
                reason=reason,
                orchestrator=orchestrator,
            )

    def _apply_known(self, transition: Callable[..., Outcome[State]], **kwargs: Any) -> None:
        try:
            self._apply(transition, **kwargs)
        except ReplicationDenied as denied:
            if denied.reason is ReasonCode.UNKNOWN_WORKER:
                raise _Unknown from None
            raise

    def reap_stale_workers(
        self, timeout: timedelta, orchestrator: SandboxOrchestrator | None = None
    ) -> list[str]:
        """Deregister workers silent for longer than ``timeout``, killing their containers.

        Returns the reaped worker ids.
        """
        outcome = self._apply(
            transitions.reap_stale_workers, timeout=timeout, orchestrator=orchestrator
        )
        return _deregistered(outcome.event)

    def expire_workers(self, orchestrator: SandboxOrchestrator | None = None) -> list[str]:
        """Deregister workers older than ``expiration_seconds``; returns their ids."""
        outcome = self._apply(transitions.expire_workers, orchestrator=orchestrator)
        return _deregistered(outcome.event)

    def kill_switch(self, orchestrator: SandboxOrchestrator | None = None) -> None:
        """Kill every container, deregister every worker, and refuse all growth from now on.

        The switch engages first, over the orchestrator already bound (if any),
        and only then is ``orchestrator`` checked and bound: an emergency stop
        is never refused on its argument. An argument that cannot be bound (not
        an orchestrator, bound to another controller, one a journal cannot use)
        raises after the switch is engaged (R-JOURNAL-14).
        """
        self._apply(transitions.engage_kill_switch)
        if orchestrator is not None:
            self._bind(orchestrator)

    def quarantine(self, worker_id: str, reason: str) -> None:
        """Quarantine a worker: no more heartbeats, children or launches."""
        self._apply(transitions.quarantine_worker, worker_id=worker_id, reason=reason)

    def release(self, worker_id: str) -> None:
        """Release a worker from quarantine."""
        self._apply(transitions.release_worker, worker_id=worker_id)

    def __repr__(self) -> str:
        return (
            f"<Controller workers={len(self._controller.registry)} "
            f"kill_switch_engaged={self._controller.kill_switch_engaged}>"
        )


class _Unknown(Exception):  # noqa: N818 - private control flow
    """An unknown worker id where the seed stayed silent (already audited)."""


def _deregistered(event: Event) -> list[str]:
    return [worker_id for kind, worker_id in event.effects if kind == "worker_deregistered"]


def _check_adopts(orchestrator: SandboxOrchestrator) -> None:
    """Refuse, for a journal, a backend that acts on containers but cannot adopt a decision.

    With a shared journal, another process's decision (a kill switch, say)
    reaches this orchestrator through ``_adopt``, which must stop what it runs
    and the new state no longer holds (R-JOURNAL-11). A backend that overrides
    ``_install`` (it acts on real containers) and not ``_adopt`` would only
    update its record, and its processes would outlive the decision.
    """
    kind = type(orchestrator)
    if (
        kind._install is not SandboxOrchestrator._install
        and kind._adopt is SandboxOrchestrator._adopt
    ):
        raise InvalidValueError(
            "orchestrator",
            "an orchestrator that adopts another process's decisions (a backend that "
            "overrides _install must override _adopt to be used with a journal)",
            kind.__name__,
        )


def _claim(orchestrator: SandboxOrchestrator, controller: Controller) -> None:
    """Bind ``orchestrator`` to ``controller``, which it then serves alone (R-FACADE-4).

    From now on the orchestrator launches only what the controller allows. The
    binding is read and written under the orchestrator's lock, and refused if
    the orchestrator already runs containers: none of their workers is
    registered with this controller, and adopting them would bypass its policy.
    """
    with orchestrator._lock:
        if orchestrator._controller is not None and orchestrator._controller is not controller:
            raise InvalidValueError(
                "orchestrator", "an orchestrator not bound to another controller", orchestrator
            )
        running = sorted(orchestrator._state.containers)
        if orchestrator._controller is None and running:
            raise InvalidValueError(
                "orchestrator",
                "an orchestrator with no running containers (kill them before binding it)",
                running,
            )
        orchestrator._controller = controller
