"""The differential state machine's rules: which actions a random program is made of.

Every rule is one action of the kit's vocabulary (issue, register, launch,
heartbeat, kill, reap, kill switch, quarantine, release) with honest or hostile
arguments, or a move of the clock to either side of a contract boundary. Each
action goes through :meth:`~replication.conformance.sequential.engine.Engine.act`, which
runs it on the reference core and on the implementation and checks everything.

The first difference raises :class:`~replication.conformance.sequential.results.ConformanceFailure`;
Hypothesis shrinks the program and prints it, and
:mod:`replication.conformance.sequential.runner` turns it into a runnable snippet. Without
an implementation the machine checks the reference core alone (that is the
property suite's reference machine).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, precondition, rule

from replication import transitions as core
from replication.conformance.adapters.adapter import OPTIONAL_ACTIONS
from replication.conformance.adapters.observations import Reporting
from replication.conformance.fixtures import (
    CLOCK_STEPS,
    HOSTILE_IDS,
    HOSTILE_SNAPSHOTS,
    TAMPERABLE,
    TICK,
    pick,
    roles,
    tamper,
)
from replication.conformance.sequential.actions import Actions
from replication.conformance.sequential.engine import GENERATED, MODES, RunControl
from replication.conformance.sequential.results import Issued, RunStats
from replication.conformance.sequential.witnesses import (
    BOUNDARY_TAMPER_REFUSED,
    GENERATED_ID_SKIPPED,
    GENERATED_ID_SKIPPED_REGISTERED,
    SIBLING_AFTER_DEPARTURE,
)
from replication.errors import ReasonCode
from replication.model import Manifest, ResourceSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.conformance.adapters.adapter import Implementation
    from replication.model import ControllerState

__all__ = ["GENERATED", "MODES", "DifferentialMachine", "differential_machine", "next_generated"]

#: Where a boundary rule puts the clock: just before, exactly at, or just after the boundary.
OFFSETS = {"-1us": -TICK, "exactly": timedelta(0), "+1us": TICK}


def next_generated(controller: ControllerState) -> str:
    """Return the id the controller generates next: the first ``w<n>`` never used (R-ISSUE-3)."""
    serial = len(controller.issued_ids) + 1
    while f"w{serial}" in controller.issued_ids or f"w{serial}" in controller.registered_ids:
        serial += 1
    return f"w{serial}"


class DifferentialMachine(Actions):
    """Random programs over the kit's actions, on the reference and an implementation."""

    issued = Bundle("issued")
    worker_ids = Bundle("worker_ids")

    # -- issuing and starting workers ------------------------------------------------------------

    @rule(
        target=issued,
        external_network=st.booleans(),
        snapshot=st.sampled_from(
            [{}, {"task": "survey"}, {"n": 1, "seen": [1, 2.5, None]}, *HOSTILE_SNAPSHOTS]
        ),
        worker_id=st.sampled_from(["new", "new", "new", "k1", "k2", "w2", "w3", *HOSTILE_IDS]),
    )
    def issue_root(
        self, external_network: bool, snapshot: dict[str, Any], worker_id: str
    ) -> Issued | None:
        """Issue a manifest for a new root worker: a "new" id, or a chosen one.

        A chosen id may have been used before, be one the controller would
        generate itself, or be hostile (``:``, ``"None"``, a look-alike); the
        snapshot may hold edge-case JSON.
        """
        chosen = self.next_id() if worker_id == "new" else worker_id
        return self._issue(None, chosen, external_network, snapshot)

    @rule(target=issued, parent=worker_ids, external_network=st.booleans())
    def issue_child(self, parent: str, external_network: bool) -> Issued | None:
        """Issue a manifest for a child of ``parent``."""
        return self._issue(parent, self.next_id(), external_network, {})

    @rule(
        target=issued,
        role=st.sampled_from(["none (a root)", "newest", "latest parent"]),
        first=st.sampled_from(
            ["nothing", "the id it would generate", "a foreign registration of that id"]
        ),
    )
    def issue_generated(self, role: str, first: str) -> Issued | None:
        """Issue a manifest whose worker id the controller generates (R-ISSUE-3).

        For a root, or a child of the worker playing ``role``; perhaps after a
        root was issued under the very id the controller would generate then
        (``w<n + 2>`` with ``n`` ids issued so far), or after a manifest signed
        outside the controller registered under it (``w<n + 1>``: it was never
        issued). The generated id must skip either; the manifest is then
        registered, so that an id handed out twice is refused as a replay.
        """
        parent = None if role == "none (a root)" else pick(self.current, role)
        controller = self.current.controller
        foreign = None
        if first == "the id it would generate":
            upcoming = f"w{len(controller.issued_ids) + 2}"
            self._issue(None, upcoming, external_network=False, snapshot={})
        elif first == "a foreign registration of that id":
            foreign = next_generated(controller)
            unsigned = Manifest(foreign, None, 0, {}, self.now, ResourceSpec(0.5, 256))
            if not self._register(*self.signed(unsigned)):
                foreign = None
        before = len(self.current.controller.issued_ids)
        issued = self._issue(parent, None, external_network=False, snapshot={})
        if issued is None:
            return None
        if issued.worker_id != f"w{before + 1}":
            self.stats.witnesses.reached(GENERATED_ID_SKIPPED)
        if foreign is not None and issued.worker_id != foreign:
            self.stats.witnesses.reached(GENERATED_ID_SKIPPED_REGISTERED)
            self._register(issued.reference, issued.implementation)
        return issued

    @rule(
        target=worker_ids,
        parent=st.none() | worker_ids,
        external_network=st.sampled_from([False, False, False, True]),
        name=st.sampled_from(["new", "new", "new", "new", *HOSTILE_IDS]),
        snapshot=st.sampled_from([{}, {}, *HOSTILE_SNAPSHOTS]),
    )
    def start_worker(
        self, parent: str | None, external_network: bool, name: str, snapshot: dict[str, Any]
    ) -> str:
        """Issue, register and launch a worker: a root, or a child of ``parent``.

        Its id is new, or hostile (``:``, ``"None"``, a look-alike); its snapshot
        may hold edge-case JSON. Each of the three steps is checked on its own.
        """
        chosen = None if name == "new" else name
        return self._start_worker(
            parent, external_network=external_network, name=chosen, snapshot=snapshot
        )

    @rule(target=worker_ids, role=roles)
    def start_child_of(self, role: str) -> str:
        """Start a child of the registered worker playing ``role`` (the deepest, say)."""
        parent = pick(self.current, role)
        return self._start_worker(parent) if parent else "never-issued"

    @rule(target=worker_ids)
    def start_lineage_past_max_depth(self) -> str:
        """From the deepest worker, start one child after another down past ``max_depth``.

        The last one is refused (``depth_exceeded``) unless another limit comes first.
        """
        worker_id = pick(self.current, "deepest")
        for _ in range(self.current.contract.max_depth + 1):
            if worker_id is None or worker_id not in self.current.registry:
                break
            child = self._start_worker(worker_id)
            worker_id = child if child in self.current.registry else None
        return worker_id or "never-issued"

    @rule(
        target=worker_ids,
        timing=st.sampled_from(["cooldown-1us", "cooldown", "cooldown", "cooldown+1us"]),
    )
    def start_sibling_at_cooldown(self, timing: str) -> str:
        """Start a second child just before, exactly at or just after the cooldown's end.

        The parent is the worker that spawned most recently (or else the newest
        worker, given a first child now).
        """
        parent = pick(self.current, "latest parent")
        if parent is None:
            parent = pick(self.current, "newest")
            if parent is None:
                return "never-issued"
            self._start_worker(parent)
        last_spawn = self.current.controller.spawn_times.get(parent)
        if last_spawn is not None:
            moment = last_spawn + CLOCK_STEPS[timing](self.current.contract, self.timeout)
            self.now = max(self.now, moment)
        return self._start_worker(parent)

    def _sibling_after_departure(self, depart: Callable[[str], None]) -> str:
        """Make the latest parent's newest child depart, then start a sibling at once.

        The parent's spawn time outlives the child (R-COOLDOWN-2): within the
        cooldown the sibling is refused, whatever became of the child. A parent
        whose cooldown is over starts a child first, so the sibling comes within it.
        """
        parent = pick(self.current, "latest parent") or pick(self.current, "newest")
        if parent is None:
            return "never-issued"
        spawned = self.current.controller.spawn_times.get(parent)
        if spawned is None or self.now - spawned >= self.current.contract.cooldown:
            self._start_worker(parent)
        registry = self.current.registry
        children = [w for w, entry in registry.items() if entry.manifest.parent_id == parent]
        if not children:
            return "never-issued"
        depart(max(children, key=lambda w: (registry[w].registered_at, w)))
        issued = self._issue(parent, self.next_id(), external_network=False, snapshot={})
        if issued is None:
            if self.last_reason == ReasonCode.COOLDOWN:
                self.stats.witnesses.reached(SIBLING_AFTER_DEPARTURE)
            return parent
        if self._register(issued.reference, issued.implementation):
            self._launch(issued.reference, issued.implementation)
        return issued.worker_id

    @rule(target=worker_ids)
    def child_deregistered_then_sibling(self) -> str:
        """Deregister the latest parent's newest child, then start a sibling within the cooldown."""
        return self._sibling_after_departure(self._deregister)

    @rule(target=worker_ids)
    def child_reaped_then_sibling(self) -> str:
        """Let the latest parent's newest child go silent and be reaped, then start a sibling."""

        def reaped(child: str) -> None:
            entry = self.current.registry[child]
            self.now = max(self.now, entry.last_heartbeat + self.timeout + TICK)
            parent = entry.manifest.parent_id
            if parent is not None and parent in self.current.registry:
                self._on_worker("heartbeat", "heartbeat", parent, core.heartbeat)
            self.reap()

        return self._sibling_after_departure(reaped)

    # -- registering, honestly and not -------------------------------------------------------------

    @rule(target=worker_ids, issued=issued)
    def register(self, issued: Issued | None) -> str:
        """Register an issued manifest (perhaps for the second time, or after it departed)."""
        if issued is None:
            return "never-issued"
        self._register(issued.reference, issued.implementation)
        return issued.worker_id

    # The id boundary is drawn three times as often: it needs a hostile id or a
    # root, and it is the tamper a field-joining signature scheme misses.
    @rule(issued=issued, field=st.sampled_from((*TAMPERABLE, "id boundary", "id boundary")))
    def register_tampered(self, issued: Issued | None, field: str) -> None:
        """Register an issued manifest with one field changed after signing."""
        if issued is not None:
            self._register(
                tamper(issued.reference, field),
                tamper(issued.implementation or issued.reference, field),
                must_deny=frozenset({ReasonCode.KILL_SWITCH, ReasonCode.BAD_SIGNATURE}),
            )
            if field == "id boundary" and self.last_reason == ReasonCode.BAD_SIGNATURE:
                self.stats.witnesses.reached(BOUNDARY_TAMPER_REFUSED)

    @rule(issued=issued)
    def register_signed_by_another_key(self, issued: Issued | None) -> None:
        """Register an issued manifest re-signed by a key that is not the controller's."""
        if issued is not None:
            reference, implementation = self.foreign(issued)
            refused = frozenset({ReasonCode.KILL_SWITCH, ReasonCode.BAD_SIGNATURE})
            self._register(reference, implementation, must_deny=refused)

    @rule(
        target=worker_ids,
        ahead=st.sampled_from(["just within the skew", "at the skew", "just beyond the skew"]),
        serial=st.integers(0, 3),
    )
    def register_from_the_future(self, ahead: str, serial: int) -> str:
        """Register a root manifest, validly signed, issued ahead of the clock."""
        skew = self.current.contract.clock_skew + {
            "just within the skew": -TICK, "at the skew": timedelta(0),
            "just beyond the skew": TICK,
        }[ahead]  # fmt: skip
        unsigned = Manifest(
            f"future-{serial}", None, 0, {}, self.now + skew, ResourceSpec(0.5, 256)
        )
        self._register(*self.signed(unsigned))
        return unsigned.worker_id

    @rule(
        target=worker_ids,
        role=roles,
        depth_offset=st.sampled_from([-1, 0, 1]),
        serial=st.integers(0, 3),
    )
    def register_hand_signed_child(self, role: str, depth_offset: int, serial: int) -> str:
        """Register a hand-signed child of ``role`` whose depth is off by ``depth_offset``.

        The manifest is signed by the controller's key but was never issued.
        """
        parent = pick(self.current, role) or "ghost"
        entry = self.current.registry.get(parent)
        depth = max(0, (entry.depth + 1 if entry else 1) + depth_offset)
        unsigned = Manifest(
            f"{parent}/hand-{serial}", parent, depth, {}, self.now, ResourceSpec(0.5, 256)
        )
        self._register(*self.signed(unsigned))
        return unsigned.worker_id

    # -- containers --------------------------------------------------------------------------------

    @rule(issued=issued)
    def launch(self, issued: Issued | None) -> None:
        """Launch the container of an issued manifest's worker (registered or not)."""
        if issued is not None:
            self._launch(issued.reference, issued.implementation)

    @rule(role=roles)
    def relaunch(self, role: str) -> None:
        """Launch the manifest of the worker playing ``role`` again (a duplicate if it runs)."""
        worker_id = pick(self.current, role)
        entry = self.current.registry.get(worker_id) if worker_id else None
        if worker_id is not None and entry is not None:
            self._launch(entry.manifest, self.registered_with(worker_id, entry.manifest))

    @rule(role=roles)
    def launch_substitute(self, role: str) -> None:
        """Launch a validly signed substitute for the manifest ``role`` registered with."""
        worker_id = pick(self.current, role)
        entry = self.current.registry.get(worker_id) if worker_id else None
        if entry is not None:
            manifest = entry.manifest
            bigger = attrs.evolve(manifest.resources, cpu_limit=manifest.resources.cpu_limit * 4)
            reference, implementation = self.signed(attrs.evolve(manifest, resources=bigger))
            refused = frozenset({ReasonCode.KILL_SWITCH, ReasonCode.MANIFEST_MISMATCH})
            self._launch(reference, implementation, must_deny=refused)

    @rule(role=roles)
    def kill(self, role: str) -> None:
        """Kill the container of the worker playing ``role`` (its registration stays)."""
        worker_id = pick(self.current, role) or "ghost"
        self._on_worker("kill_worker", "kill", worker_id, core.kill_worker, reason="conformance")

    # -- liveness and departures -------------------------------------------------------------------

    @rule(worker_id=worker_ids)
    def heartbeat(self, worker_id: str) -> None:
        """Send a heartbeat for a worker id (registered, departed or never registered)."""
        self._on_worker("heartbeat", "heartbeat", worker_id, core.heartbeat)

    @rule(role=roles)
    def heartbeat_from(self, role: str) -> None:
        """Send a heartbeat for the registered worker playing ``role``."""
        worker_id = pick(self.current, role)
        if worker_id is not None:
            self._on_worker("heartbeat", "heartbeat", worker_id, core.heartbeat)

    @rule()
    def reap(self) -> None:
        """Reap every worker silent for longer than the run's heartbeat timeout."""
        timeout = self.timeout
        self.act(
            "reap_stale_workers",
            lambda s: core.reap_stale_workers(s, timeout=timeout, now=self.now),
            lambda impl: impl.reap(timeout),
            call=("reap", timeout),
            subject=None,
            timeout=timeout,
        )

    @rule(offset=st.sampled_from(["-1us", "exactly", "exactly", "+1us"]))
    def reap_at_boundary(self, offset: str) -> None:
        """Reap just before, exactly at or just after the heartbeat timeout of the freshest worker.

        The freshest heartbeat is the boundary the clock is most likely not past yet.
        """
        registry = self.current.registry
        if registry:
            freshest = max(entry.last_heartbeat for entry in registry.values())
            self.now = max(self.now, freshest + self.timeout + OFFSETS[offset])
        self.reap()

    @rule(offset=st.sampled_from(["-1us", "exactly", "exactly", "+1us"]))
    def expire_at_boundary(self, offset: str) -> None:
        """Expire just before, exactly at or just after the expiration of the newest worker."""
        expiration = self.current.contract.expiration
        registry = self.current.registry
        if expiration is not None and registry:
            newest = max(entry.registered_at for entry in registry.values())
            self.now = max(self.now, newest + expiration + OFFSETS[offset])
        self.expire_workers("now")

    @rule(role=roles)
    def deregister(self, role: str) -> None:
        """Deregister the worker playing ``role``, killing its container."""
        self._deregister(pick(self.current, role) or "ghost")

    @rule(when=st.sampled_from(["now", "just past the oldest worker's expiration"]))
    def expire_workers(self, when: str) -> None:
        """Remove every worker older than the contract's expiration, now or a little later."""
        expiration = self.current.contract.expiration
        registry = self.current.registry
        if when != "now" and expiration is not None and registry:
            oldest = min(entry.registered_at for entry in registry.values())
            self.now = max(self.now, oldest + expiration + TICK)
        self.act(
            "expire_workers",
            lambda s: core.expire_workers(s, now=self.now),
            lambda impl: impl.expire(),
            call=("expire",),
            subject=None,
        )

    # -- quarantine and the kill switch ------------------------------------------------------------

    @rule(role=roles)
    def quarantine(self, role: str) -> None:
        """Quarantine the registered worker playing ``role``."""
        worker_id = pick(self.current, role) or "ghost"
        self._on_worker(
            "quarantine_worker", "quarantine", worker_id, core.quarantine_worker,
            reason="conformance",
        )  # fmt: skip

    @rule(role=roles, then=st.sampled_from(["heartbeat", "launch", "spawn", "quarantine again"]))
    def quarantine_then(self, role: str, then: str) -> None:
        """Quarantine the worker playing ``role``, then have it try what quarantine forbids."""
        worker_id = pick(self.current, role)
        if worker_id is None:
            return
        self.quarantine(role)
        entry = self.current.registry.get(worker_id)
        if entry is None:
            return
        if then == "heartbeat":
            self._on_worker("heartbeat", "heartbeat", worker_id, core.heartbeat)
        elif then == "launch":
            self._launch(entry.manifest, self.registered_with(worker_id, entry.manifest))
        elif then == "spawn":
            self._start_worker(worker_id)
        else:
            self.quarantine(role)

    @rule(role=roles)
    def release(self, role: str) -> None:
        """Release the worker playing ``role`` from quarantine."""
        worker_id = pick(self.current, role) or "ghost"
        self._on_worker("release_worker", "release", worker_id, core.release_worker)

    # After the switch every growth is refused; engaging it on an empty system
    # only shortens the run, so it waits for at least one container.
    @precondition(lambda self: self.state is not None and len(self.state.containers) >= 1)
    @rule()
    def kill_switch(self) -> None:
        """Engage the kill switch."""
        self.act(
            "engage_kill_switch",
            lambda s: core.engage_kill_switch(s, now=self.now),
            lambda impl: impl.kill_switch(),
            call=("kill_switch",),
            subject=None,
        )

    # -- time --------------------------------------------------------------------------------------

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
        """Move the clock to one side of, or exactly onto, a boundary of ``role``.

        The boundary is the end of its children's cooldown, its heartbeat
        timeout, or its expiration.
        """
        controller = self.current.controller
        worker_id = pick(self.current, role)
        entry = controller.registry.get(worker_id) if worker_id else None
        if worker_id is None or entry is None:
            return
        start = {
            "cooldown": controller.spawn_times.get(worker_id),
            "heartbeat timeout": entry.last_heartbeat,
            "expiration": entry.registered_at,
        }[boundary]
        length = {
            "cooldown": controller.contract.cooldown,
            "heartbeat timeout": self.timeout,
            "expiration": controller.contract.expiration,
        }[boundary]
        if start is None or length is None:
            return
        target = start + length + OFFSETS[offset]
        self.now = max(self.now, target)


#: The rules that use each optional action; declaring the action a gap removes them.
RULES_BY_ACTION: dict[str, tuple[str, ...]] = {
    "heartbeat": ("heartbeat", "heartbeat_from", "child_reaped_then_sibling"),
    "kill": ("kill",),
    "reap": ("reap", "reap_at_boundary", "child_reaped_then_sibling"),
    "kill_switch": ("kill_switch",),
    "quarantine": ("quarantine", "quarantine_then"),
    "release": ("release",),
    "deregister": ("deregister", "child_deregistered_then_sibling"),
    "expire": ("expire_workers", "expire_at_boundary"),
    "generated_ids": ("issue_generated",),
}


def differential_machine(
    factory: Callable[[], Implementation] | None,
    *,
    mode: str = "observation",
    gaps: frozenset[str] = frozenset(),
    unreported: frozenset[str] | None = frozenset(),
    suppressed: frozenset[tuple[str, str]] = frozenset(),
    signs: bool = False,
    stats: RunStats | None = None,
    control: RunControl | None = None,
) -> type[DifferentialMachine]:
    """Return a machine class checking ``factory``'s implementation against the reference.

    Rules using an action in ``gaps`` are removed, and listed in ``stats.skipped_rules``.
    ``unreported`` names the optional observation fields the implementation does
    not report (``None``: learn them at first sight); ``suppressed`` the
    ``(action, expected decision)`` steps skipped on both sides (``--keep-going``);
    ``signs`` says the adapter signs with its own scheme.
    """
    if mode not in MODES:
        message = f"mode must be one of {MODES}, got {mode!r}"
        raise ValueError(message)
    unknown = gaps - OPTIONAL_ACTIONS
    if unknown:
        message = f"gaps may only name {sorted(OPTIONAL_ACTIONS)}, got {sorted(unknown)}"
        raise ValueError(message)
    skipped = tuple(sorted({name for action in gaps for name in RULES_BY_ACTION[action]}))
    run_stats = stats if stats is not None else RunStats()
    run_stats.skipped_rules = skipped
    run_stats.reporting = Reporting(unreported)
    run_control = control if control is not None else RunControl()
    run_control.suppressed = frozenset(suppressed)
    namespace: dict[str, Any] = {
        "factory": staticmethod(factory) if factory is not None else None,
        "mode": mode,
        "stats": run_stats,
        "control": run_control,
        "signs": signs,
        # A plain attribute shadows the inherited rule: Hypothesis no longer sees it.
        **dict.fromkeys(skipped),
    }
    return type("DifferentialMachine", (DifferentialMachine,), namespace)
