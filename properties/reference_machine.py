"""A Hypothesis state machine over the pure core, checking every invariant after every step.

It drives :mod:`replication.transitions` with valid manifests and hostile ones
(tampered in one field, signed by another key, replayed, issued in the future,
hand-signed with a depth the registry contradicts), moves the clock to just
below, exactly at and just above the cooldown, heartbeat-timeout, expiration
and clock-skew boundaries, and after each step runs the whole invariant
catalogue on the observations before and after. Every step is also offered to
a :class:`~replication.conformance.witnesses.WitnessLog`, so a run can prove
it reached the situations that matter.

A failure prints the shrunk program; rule and argument names read like the spec.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    precondition,
    rule,
)

from replication import transitions as core
from replication.conformance.strategies import CLOCK_START, contract_parameters
from replication.conformance.witnesses import WitnessLog
from replication.errors import ReasonCode, ReplicationDenied
from replication.invariants import Policy, Step, check_observation, check_step, observe
from replication.model import (
    Manifest,
    NetworkPolicy,
    ReplicationContext,
    ReplicationContract,
    ResourceSpec,
    State,
    StopCondition,
)
from replication.signing import SigningKey, sign_manifest

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.model import Event
    from replication.transitions import Outcome

KEY = SigningKey.from_seed(bytes(range(32)))
OTHER_KEY = SigningKey.from_seed(bytes(range(1, 33)))
TICK = timedelta(microseconds=1)

#: Fields a manifest can be tampered in after signing.
TAMPERABLE = (
    "worker_id", "parent_id", "depth", "state_snapshot", "issued_at",
    "cpu_limit", "memory_limit_mb", "allow_controller", "allow_external",
)  # fmt: skip


#: How far ``advance_clock`` may move, by name: near every boundary of the contract.
CLOCK_STEPS: dict[str, Callable[[ReplicationContract, timedelta], timedelta]] = {
    "1us": lambda contract, timeout: TICK,
    "1s": lambda contract, timeout: timedelta(seconds=1),
    "cooldown-1us": lambda contract, timeout: contract.cooldown - TICK,
    "cooldown": lambda contract, timeout: contract.cooldown,
    "cooldown+1us": lambda contract, timeout: contract.cooldown + TICK,
    "heartbeat timeout": lambda contract, timeout: timeout,
    "heartbeat timeout+1us": lambda contract, timeout: timeout + TICK,
    "expiration+1us": lambda contract, timeout: (contract.expiration or timeout) + TICK,
}


def asks_for_external_network(context: ReplicationContext) -> bool:
    """The demo stop condition: no worker may ask for unrestricted egress."""
    return context.manifest.resources.network_policy.allow_external


NO_EXTERNAL_NETWORK = StopCondition(
    "no_external_network", "no unrestricted egress", asks_for_external_network
)


def tamper(manifest: Manifest, field: str) -> Manifest:
    """Return ``manifest`` with one field changed and its signature kept."""
    resources, policy = manifest.resources, manifest.resources.network_policy
    changed: dict[str, Any] = {
        "worker_id": {"worker_id": manifest.worker_id + "-x"},
        "parent_id": {"parent_id": None if manifest.parent_id else "w1"},
        "depth": {"depth": manifest.depth + 1},
        "state_snapshot": {"state_snapshot": {**manifest.state_snapshot, "tampered": True}},
        "issued_at": {"issued_at": manifest.issued_at - TICK},
        "cpu_limit": {"resources": attrs.evolve(resources, cpu_limit=resources.cpu_limit * 2)},
        "memory_limit_mb": {
            "resources": attrs.evolve(resources, memory_limit_mb=resources.memory_limit_mb + 1)
        },
        "allow_controller": {
            "resources": attrs.evolve(
                resources,
                network_policy=attrs.evolve(policy, allow_controller=not policy.allow_controller),
            )
        },
        "allow_external": {
            "resources": attrs.evolve(
                resources,
                network_policy=attrs.evolve(policy, allow_external=not policy.allow_external),
            )
        },
    }[field]
    return attrs.evolve(manifest, **changed)


#: Ways a rule can name a registered worker without knowing its id in advance.
ROLES = ("newest", "oldest", "deepest", "quarantined", "latest parent")
roles = st.sampled_from(ROLES)


def pick(state: State, role: str) -> str | None:
    """Return the registered worker playing ``role`` in ``state``, or ``None``."""
    registry = state.registry
    if not registry:
        return None
    by_age = sorted(registry, key=lambda w: (registry[w].registered_at, w))
    if role == "newest":
        return by_age[-1]
    if role == "oldest":
        return by_age[0]
    if role == "deepest":
        return max(by_age, key=lambda w: registry[w].depth)
    if role == "quarantined":
        quarantined = state.controller.quarantined
        return max(quarantined, key=lambda w: (quarantined[w], w)) if quarantined else None
    spawn_times = state.controller.spawn_times
    return max(spawn_times, key=lambda w: (spawn_times[w], w)) if spawn_times else None


class ReferenceMachine(RuleBasedStateMachine):
    """Random programs over the pure core; every invariant checked after every step."""

    #: Where witnesses are counted; a test may replace it before running the machine.
    witnesses = WitnessLog()

    manifests = Bundle("manifests")
    worker_ids = Bundle("worker_ids")

    def __init__(self) -> None:
        super().__init__()
        self.state: State | None = None
        self.now = CLOCK_START
        self.timeout = timedelta(seconds=30)
        self.steps = 0

    # -- set-up and the engine -------------------------------------------------------

    @initialize(parameters=contract_parameters())
    def start(self, parameters: dict[str, Any]) -> None:
        """Begin with a fresh system under a small contract."""
        parameters = dict(parameters)
        self.timeout = timedelta(seconds=parameters.pop("heartbeat_timeout_seconds"))
        stop = parameters.pop("stop_on_external_network")
        contract = ReplicationContract(
            **parameters, stop_conditions=[NO_EXTERNAL_NETWORK] if stop else []
        )
        self.state = State.initial(contract, KEY.verifying_key)

    @property
    def current(self) -> State:
        if self.state is None:  # pragma: no cover - initialize always runs first
            raise RuntimeError("the machine has not started")
        return self.state

    def apply(
        self,
        call: Callable[[State], Outcome[State]],
        *,
        must_deny: frozenset[ReasonCode] | None = None,
        timeout: timedelta | None = None,
    ) -> Outcome[State] | None:
        """Apply one transition and check the whole catalogue on it.

        ``must_deny`` lists the reason codes a hostile input may be refused
        with; being allowed, or refused for another reason, fails the run.
        """
        before = self.current
        observed_before = observe(before)
        outcome: Outcome[State] | None
        try:
            outcome = call(before)
        except ReplicationDenied as denied:
            outcome = None
            event: Event | None = denied.event
            after = before
        else:
            event = outcome.event
            after = outcome.state
        assert event is not None
        if must_deny is not None:
            assert not event.allowed, f"{event.action} allowed a hostile input"
            assert ReasonCode(event.reason) in must_deny, (
                f"{event.action} denied a hostile input for {event.reason!r}, "
                f"expected one of {sorted(must_deny)}"
            )
        # Re-observing ``before`` also proves a denial did not mutate it.
        observed_after = observe(after)
        step = Step(event.action, event.at, event.allowed, event.reason, event.worker_id,
                    (event,), timeout)  # fmt: skip
        policy = Policy(before.contract, KEY.verifying_key)
        violations = check_step(observed_before, step, observed_after, policy)
        violations += check_observation(observed_after, Policy(before.contract))
        assert not violations, "\n".join(map(str, violations))
        self.witnesses.record(observed_before, step, observed_after, policy)
        self.state = after
        self.steps += 1
        return outcome

    # -- issuing -----------------------------------------------------------------------

    @rule(
        target=manifests,
        snapshot=st.sampled_from([{}, {"task": "survey"}, {"n": 1, "seen": [1, 2.5, None]}]),
        cpu=st.sampled_from([0.5, 1.0]),
        external_network=st.booleans(),
        worker_id=st.sampled_from([None, None, None, "w1", "w2", "chosen"]),
    )
    def issue_root(
        self, snapshot: dict[str, Any], cpu: float, external_network: bool, worker_id: str | None
    ) -> Manifest | None:
        """Issue a manifest for a new root worker."""
        resources = ResourceSpec(cpu, 256, NetworkPolicy(allow_external=external_network))
        outcome = self.apply(lambda s: core.issue_manifest(
            s, KEY, resources=resources, state_snapshot=snapshot, worker_id=worker_id,
            now=self.now))  # fmt: skip
        return outcome.manifest if outcome else None

    @rule(
        target=manifests,
        parent=worker_ids,
        claimed_depth=st.sampled_from(["none", "none", "derived", "one too many"]),
        external_network=st.booleans(),
    )
    def issue_child(
        self, parent: str, claimed_depth: str, external_network: bool
    ) -> Manifest | None:
        """Issue a manifest for a child of ``parent``, optionally claiming a depth."""
        entry = self.current.registry.get(parent)
        derived = entry.depth + 1 if entry else 1
        depth = {"none": None, "derived": derived, "one too many": derived + 1}[claimed_depth]
        resources = ResourceSpec(0.5, 256, NetworkPolicy(allow_external=external_network))
        outcome = self.apply(lambda s: core.issue_manifest(
            s, KEY, parent_id=parent, depth=depth, resources=resources, now=self.now))  # fmt: skip
        return outcome.manifest if outcome else None

    @rule(
        target=worker_ids,
        parent=st.none() | worker_ids,
        external_network=st.sampled_from([False, False, False, True]),
    )
    def start_worker(self, parent: str | None, external_network: bool) -> str:
        """Issue, register and launch a worker (a root, or a child of ``parent``), each step
        checked on its own, as a Worker starts in the facade."""
        resources = ResourceSpec(0.5, 256, NetworkPolicy(allow_external=external_network))
        outcome = self.apply(lambda s: core.issue_manifest(
            s, KEY, parent_id=parent, resources=resources, now=self.now))  # fmt: skip
        if outcome is None or outcome.manifest is None:
            return parent or "never-issued"
        manifest = outcome.manifest
        if self.apply(lambda s: core.register_worker(s, manifest, now=self.now)) is not None:
            self.apply(lambda s: core.launch_worker(s, manifest, now=self.now))
        return manifest.worker_id

    @rule(target=worker_ids, role=roles)
    def start_child_of(self, role: str) -> str:
        """Start a child of the registered worker playing ``role`` (the deepest, say)."""
        parent = pick(self.current, role)
        return self.start_worker(parent, external_network=False) if parent else "never-issued"

    @rule(target=worker_ids, timing=st.sampled_from(["cooldown-1us", "cooldown", "cooldown+1us"]))
    def start_sibling_at_cooldown(self, timing: str) -> str:
        """Take the parent that spawned most recently (or else the newest worker, giving it
        a first child now), move the clock to just before, exactly at or just after the end
        of its cooldown, and start another child of it."""
        parent = pick(self.current, "latest parent")
        if parent is None:
            parent = pick(self.current, "newest")
            if parent is None:
                return "never-issued"
            self.start_worker(parent, external_network=False)
        last_spawn = self.current.controller.spawn_times.get(parent)
        if last_spawn is not None:
            moment = last_spawn + CLOCK_STEPS[timing](self.current.contract, self.timeout)
            self.now = max(self.now, moment)
        return self.start_worker(parent, external_network=False)

    # -- registering, honestly and not ---------------------------------------------------

    @rule(target=worker_ids, manifest=manifests)
    def register(self, manifest: Manifest | None) -> str:
        """Register a manifest the controller issued (perhaps for the second time)."""
        if manifest is None:
            return "never-issued"
        self.apply(lambda s: core.register_worker(s, manifest, now=self.now))
        return manifest.worker_id

    @rule(manifest=manifests, field=st.sampled_from(TAMPERABLE))
    def register_tampered(self, manifest: Manifest | None, field: str) -> None:
        """Register an issued manifest with one field changed after signing."""
        if manifest is not None:
            forged = tamper(manifest, field)
            self.apply(
                lambda s: core.register_worker(s, forged, now=self.now),
                must_deny=frozenset({ReasonCode.KILL_SWITCH, ReasonCode.BAD_SIGNATURE}),
            )

    @rule(manifest=manifests)
    def register_signed_by_another_key(self, manifest: Manifest | None) -> None:
        """Register an issued manifest re-signed by a key that is not the controller's."""
        if manifest is not None:
            foreign = sign_manifest(attrs.evolve(manifest, signature=""), OTHER_KEY)
            self.apply(
                lambda s: core.register_worker(s, foreign, now=self.now),
                must_deny=frozenset({ReasonCode.KILL_SWITCH, ReasonCode.BAD_SIGNATURE}),
            )

    @rule(
        target=worker_ids,
        ahead=st.sampled_from(["at the skew", "just beyond the skew"]),
        serial=st.integers(0, 3),
    )
    def register_from_the_future(self, ahead: str, serial: int) -> str:
        """Register a root manifest, validly signed, issued ahead of the clock."""
        skew = self.current.contract.clock_skew + (TICK if ahead == "just beyond the skew"
                                                   else timedelta(0))  # fmt: skip
        manifest = sign_manifest(
            Manifest(f"future-{serial}", None, 0, {}, self.now + skew, ResourceSpec(0.5, 256)),
            KEY,
        )
        self.apply(lambda s: core.register_worker(s, manifest, now=self.now))
        return manifest.worker_id

    @rule(
        target=worker_ids,
        parent=worker_ids,
        depth_offset=st.sampled_from([-1, 0, 1]),
        serial=st.integers(0, 3),
    )
    def register_hand_signed_child(self, parent: str, depth_offset: int, serial: int) -> str:
        """Register a child manifest signed by the controller's key but never issued,
        claiming a depth ``depth_offset`` away from the one the registry gives it."""
        entry = self.current.registry.get(parent)
        depth = max(0, (entry.depth + 1 if entry else 1) + depth_offset)
        manifest = sign_manifest(
            Manifest(f"{parent}/hand-{serial}", parent, depth, {}, self.now,
                     ResourceSpec(0.5, 256)),
            KEY,
        )  # fmt: skip
        self.apply(lambda s: core.register_worker(s, manifest, now=self.now))
        return manifest.worker_id

    # -- containers ------------------------------------------------------------------------

    @rule(manifest=manifests)
    def launch(self, manifest: Manifest | None) -> None:
        """Launch the container of a registered worker (perhaps a second time)."""
        if manifest is not None:
            self.apply(lambda s: core.launch_worker(s, manifest, now=self.now))

    @rule(role=roles)
    def relaunch(self, role: str) -> None:
        """Launch the manifest of the worker playing ``role`` again (a duplicate if it runs)."""
        worker_id = pick(self.current, role)
        entry = self.current.registry.get(worker_id) if worker_id else None
        if entry is not None:
            self.apply(lambda s: core.launch_worker(s, entry.manifest, now=self.now))

    @rule(role=roles)
    def launch_substitute(self, role: str) -> None:
        """Launch, for the worker playing ``role``, a validly signed manifest that differs
        from the one it registered with."""
        worker_id = pick(self.current, role)
        entry = self.current.registry.get(worker_id) if worker_id else None
        if entry is not None:
            manifest = entry.manifest
            bigger = attrs.evolve(manifest.resources, cpu_limit=manifest.resources.cpu_limit * 4)
            substitute = sign_manifest(attrs.evolve(manifest, resources=bigger, signature=""), KEY)
            self.apply(lambda s: core.launch_worker(s, substitute, now=self.now),
                       must_deny=frozenset({ReasonCode.KILL_SWITCH,
                                            ReasonCode.MANIFEST_MISMATCH}))  # fmt: skip

    @rule(worker_id=worker_ids)
    def kill(self, worker_id: str) -> None:
        """Kill a worker's container (its registration stays)."""
        self.apply(lambda s: core.kill_worker(s, worker_id, reason="test", now=self.now))

    @rule(worker_id=worker_ids)
    def enforce_resource_bounds(self, worker_id: str) -> None:
        """Enforce a container's limits."""
        self.apply(lambda s: core.enforce_resource_bounds(s, worker_id, now=self.now))

    # -- liveness ---------------------------------------------------------------------------

    @rule(worker_id=worker_ids)
    def heartbeat(self, worker_id: str) -> None:
        """Send a heartbeat for a worker."""
        self.apply(lambda s: core.heartbeat(s, worker_id, now=self.now))

    @rule(role=roles)
    def heartbeat_from(self, role: str) -> None:
        """Send a heartbeat for the registered worker playing ``role``."""
        worker_id = pick(self.current, role)
        if worker_id is not None:
            self.heartbeat(worker_id)

    @rule()
    def reap_stale_workers(self) -> None:
        """Reap every worker silent for longer than the run's heartbeat timeout."""
        self.apply(
            lambda s: core.reap_stale_workers(s, timeout=self.timeout, now=self.now),
            timeout=self.timeout,
        )

    @rule()
    def expire_workers(self) -> None:
        """Remove every worker older than the contract's expiration."""
        self.apply(lambda s: core.expire_workers(s, now=self.now))

    @rule(worker_id=worker_ids)
    def deregister(self, worker_id: str) -> None:
        """Deregister a worker (and kill its container)."""
        self.apply(lambda s: core.deregister_worker(s, worker_id, reason="done", now=self.now))

    # -- quarantine and the kill switch --------------------------------------------------------

    @rule(worker_id=worker_ids)
    def quarantine(self, worker_id: str) -> None:
        """Quarantine a worker."""
        self.apply(lambda s: core.quarantine_worker(s, worker_id, reason="odd", now=self.now))

    @rule(role=roles)
    def quarantine_the(self, role: str) -> None:
        """Quarantine the registered worker playing ``role``."""
        worker_id = pick(self.current, role)
        if worker_id is not None:
            self.quarantine(worker_id)

    @rule(role=roles)
    def release(self, role: str) -> None:
        """Release the registered worker playing ``role`` from quarantine."""
        worker_id = pick(self.current, role)
        if worker_id is not None:
            self.apply(lambda s: core.release_worker(s, worker_id, now=self.now))

    # After the switch every growth is refused; engaging it on an empty system
    # only shortens the run, so it waits for at least one container.
    @precondition(lambda self: self.state is not None and len(self.state.containers) >= 1)
    @rule()
    def engage_kill_switch(self) -> None:
        """Engage the kill switch."""
        self.apply(lambda s: core.engage_kill_switch(s, now=self.now))

    # -- time ----------------------------------------------------------------------------------

    @rule(by=st.sampled_from(sorted(CLOCK_STEPS)))
    def advance_clock(self, by: str) -> None:
        """Move the clock forward by an amount near one of the contract's boundaries."""
        self.now += max(timedelta(0), CLOCK_STEPS[by](self.current.contract, self.timeout))

    @rule(
        role=roles,
        boundary=st.sampled_from(["cooldown", "heartbeat timeout", "expiration"]),
        offset=st.sampled_from(["-1us", "exactly", "+1us"]),
    )
    def advance_to_boundary(self, role: str, boundary: str, offset: str) -> None:
        """Move the clock to just before, exactly at or just after a boundary of the worker
        playing ``role``: the end of its children's cooldown, its heartbeat timeout, or its
        expiration."""
        controller = self.current.controller
        worker_id = pick(self.current, role)
        if worker_id is None:
            return
        entry = controller.registry.get(worker_id)
        start = {
            "cooldown": controller.spawn_times.get(worker_id),
            "heartbeat timeout": entry.last_heartbeat if entry else None,
            "expiration": entry.registered_at if entry else None,
        }[boundary]
        length = {
            "cooldown": controller.contract.cooldown,
            "heartbeat timeout": self.timeout,
            "expiration": controller.contract.expiration,
        }[boundary]
        if start is None or length is None:
            return
        target = start + length + {"-1us": -TICK, "exactly": timedelta(0), "+1us": TICK}[offset]
        self.now = max(self.now, target)
