"""The differential state machine's rules: which actions a random program is made of.

Every rule is one action of the kit's vocabulary (issue, register, launch,
heartbeat, kill, reap, kill switch, quarantine, release) with honest or hostile
arguments, or a move of the clock to either side of a contract boundary. Each
action goes through :meth:`~replication.conformance.engine.Engine.act`, which
runs it on the reference core and on the implementation and checks everything.

The first difference raises :class:`~replication.conformance.results.ConformanceFailure`;
Hypothesis shrinks the program and prints it, and
:mod:`replication.conformance.runner` turns it into a runnable snippet. Without
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
from replication.conformance.adapter import OPTIONAL_ACTIONS
from replication.conformance.engine import GENERATED, MODES, Engine, RunControl
from replication.conformance.fixtures import (
    CLOCK_STEPS,
    KEY,
    OTHER_KEY,
    TAMPERABLE,
    TICK,
    pick,
    roles,
    tamper,
)
from replication.conformance.observations import Reporting
from replication.conformance.results import Issued, RunStats
from replication.errors import ReasonCode
from replication.model import Manifest, NetworkPolicy, ResourceSpec
from replication.signing import sign_manifest

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.conformance.adapter import Implementation

__all__ = ["GENERATED", "MODES", "DifferentialMachine", "differential_machine"]


class DifferentialMachine(Engine):
    """Random programs over the kit's actions, on the reference and an implementation."""

    issued = Bundle("issued")
    worker_ids = Bundle("worker_ids")

    # -- issuing and starting workers ------------------------------------------------------------

    def _issue(
        self, parent: str | None, worker_id: str, external_network: bool, snapshot: dict[str, Any]
    ) -> Issued | None:
        resources = ResourceSpec(0.5, 256, NetworkPolicy(allow_external=external_network))
        outcome, manifest = self.act(
            "issue_manifest",
            lambda s: core.issue_manifest(
                s,
                KEY,
                parent_id=parent,
                worker_id=worker_id,
                resources=resources,
                state_snapshot=snapshot,
                now=self.now,
            ),
            lambda impl: impl.issue(parent, worker_id, resources, snapshot),
            call=("issue", parent, worker_id, resources, snapshot),
            subject=worker_id,
        )
        if outcome is None or outcome.manifest is None:
            return None
        return Issued(worker_id, outcome.manifest, manifest)

    def _register(
        self,
        reference: Manifest,
        implementation: Manifest | None,
        *,
        must_deny: frozenset[ReasonCode] | None = None,
    ) -> bool:
        sent = implementation if implementation is not None else reference
        outcome, _ = self.act(
            "register_worker",
            lambda s: core.register_worker(s, reference, now=self.now),
            lambda impl: impl.register(sent),
            call=("register", sent),
            subject=reference.worker_id,
            must_deny=must_deny,
        )
        return outcome is not None

    def _launch(self, reference: Manifest, implementation: Manifest | None) -> None:
        sent = implementation if implementation is not None else reference
        self.act(
            "launch_worker",
            lambda s: core.launch_worker(s, reference, now=self.now),
            lambda impl: impl.launch(sent),
            call=("launch", sent),
            subject=reference.worker_id,
        )

    @rule(
        target=issued,
        external_network=st.booleans(),
        snapshot=st.sampled_from([{}, {"task": "survey"}, {"n": 1, "seen": [1, 2.5, None]}]),
        worker_id=st.sampled_from(["new", "new", "new", "k1", "k2", "w2", "w3"]),
    )
    def issue_root(
        self, external_network: bool, snapshot: dict[str, Any], worker_id: str
    ) -> Issued | None:
        """Issue a manifest for a new root worker: a "new" id, or a chosen one.

        A chosen id may have been used before, or be one the controller would
        generate itself.
        """
        chosen = self.next_id() if worker_id == "new" else worker_id
        return self._issue(None, chosen, external_network, snapshot)

    @rule(target=issued, parent=worker_ids, external_network=st.booleans())
    def issue_child(self, parent: str, external_network: bool) -> Issued | None:
        """Issue a manifest for a child of ``parent``."""
        return self._issue(parent, self.next_id(), external_network, {})

    @rule(
        target=worker_ids,
        parent=st.none() | worker_ids,
        external_network=st.sampled_from([False, False, False, True]),
    )
    def start_worker(self, parent: str | None, external_network: bool) -> str:
        """Issue, register and launch a worker: a root, or a child of ``parent``.

        Each of the three steps is checked on its own.
        """
        return self._start_worker(parent, external_network=external_network)

    def _start_worker(self, parent: str | None, *, external_network: bool = False) -> str:
        issued = self._issue(parent, self.next_id(), external_network, {})
        if issued is None:
            return parent or "never-issued"
        if self._register(issued.reference, issued.implementation):
            self._launch(issued.reference, issued.implementation)
        return issued.worker_id

    @rule(target=worker_ids, role=roles)
    def start_child_of(self, role: str) -> str:
        """Start a child of the registered worker playing ``role`` (the deepest, say)."""
        parent = pick(self.current, role)
        return self._start_worker(parent) if parent else "never-issued"

    @rule(target=worker_ids, timing=st.sampled_from(["cooldown-1us", "cooldown", "cooldown+1us"]))
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

    # -- registering, honestly and not -------------------------------------------------------------

    @rule(target=worker_ids, issued=issued)
    def register(self, issued: Issued | None) -> str:
        """Register an issued manifest (perhaps for the second time)."""
        if issued is None:
            return "never-issued"
        self._register(issued.reference, issued.implementation)
        return issued.worker_id

    @rule(issued=issued, field=st.sampled_from(TAMPERABLE))
    def register_tampered(self, issued: Issued | None, field: str) -> None:
        """Register an issued manifest with one field changed after signing."""
        if issued is not None:
            forged = tamper(issued.implementation or issued.reference, field)
            self._register(
                tamper(issued.reference, field),
                forged,
                must_deny=frozenset({ReasonCode.KILL_SWITCH, ReasonCode.BAD_SIGNATURE}),
            )

    @rule(issued=issued)
    def register_signed_by_another_key(self, issued: Issued | None) -> None:
        """Register an issued manifest re-signed by a key that is not the controller's."""
        if issued is not None:
            foreign = sign_manifest(attrs.evolve(issued.reference, signature=""), OTHER_KEY)
            refused = frozenset({ReasonCode.KILL_SWITCH, ReasonCode.BAD_SIGNATURE})
            self._register(foreign, None, must_deny=refused)

    @rule(
        target=worker_ids,
        ahead=st.sampled_from(["at the skew", "just beyond the skew"]),
        serial=st.integers(0, 3),
    )
    def register_from_the_future(self, ahead: str, serial: int) -> str:
        """Register a root manifest, validly signed, issued ahead of the clock."""
        skew = self.current.contract.clock_skew + (
            TICK if ahead == "just beyond the skew" else timedelta(0)
        )
        manifest = sign_manifest(
            Manifest(f"future-{serial}", None, 0, {}, self.now + skew, ResourceSpec(0.5, 256)),
            KEY,
        )
        self._register(manifest, None)
        return manifest.worker_id

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
        manifest = sign_manifest(
            Manifest(
                f"{parent}/hand-{serial}", parent, depth, {}, self.now, ResourceSpec(0.5, 256)
            ),
            KEY,
        )
        self._register(manifest, None)
        return manifest.worker_id

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
        if entry is not None:
            self._launch(entry.manifest, None)

    @rule(role=roles)
    def launch_substitute(self, role: str) -> None:
        """Launch a validly signed substitute for the manifest ``role`` registered with."""
        worker_id = pick(self.current, role)
        entry = self.current.registry.get(worker_id) if worker_id else None
        if entry is not None:
            manifest = entry.manifest
            bigger = attrs.evolve(manifest.resources, cpu_limit=manifest.resources.cpu_limit * 4)
            substitute = sign_manifest(attrs.evolve(manifest, resources=bigger, signature=""), KEY)
            self.act(
                "launch_worker",
                lambda s: core.launch_worker(s, substitute, now=self.now),
                lambda impl: impl.launch(substitute),
                call=("launch", substitute),
                subject=substitute.worker_id,
                must_deny=frozenset({ReasonCode.KILL_SWITCH, ReasonCode.MANIFEST_MISMATCH}),
            )

    @rule(role=roles)
    def kill(self, role: str) -> None:
        """Kill the container of the worker playing ``role`` (its registration stays)."""
        worker_id = pick(self.current, role) or "ghost"
        self.act(
            "kill_worker",
            lambda s: core.kill_worker(s, worker_id, reason="conformance", now=self.now),
            lambda impl: impl.kill(worker_id),
            call=("kill", worker_id),
            subject=worker_id,
        )

    # -- liveness ----------------------------------------------------------------------------------

    @rule(worker_id=worker_ids)
    def heartbeat(self, worker_id: str) -> None:
        """Send a heartbeat for a worker id (registered, departed or never registered)."""
        self.act(
            "heartbeat",
            lambda s: core.heartbeat(s, worker_id, now=self.now),
            lambda impl: impl.heartbeat(worker_id),
            call=("heartbeat", worker_id),
            subject=worker_id,
        )

    @rule(role=roles)
    def heartbeat_from(self, role: str) -> None:
        """Send a heartbeat for the registered worker playing ``role``."""
        worker_id = pick(self.current, role)
        if worker_id is not None:
            self.act(
                "heartbeat",
                lambda s: core.heartbeat(s, worker_id, now=self.now),
                lambda impl: impl.heartbeat(worker_id),
                call=("heartbeat", worker_id),
                subject=worker_id,
            )

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

    # -- quarantine and the kill switch ------------------------------------------------------------

    @rule(role=roles)
    def quarantine(self, role: str) -> None:
        """Quarantine the registered worker playing ``role``."""
        worker_id = pick(self.current, role) or "ghost"
        self.act(
            "quarantine_worker",
            lambda s: core.quarantine_worker(s, worker_id, reason="conformance", now=self.now),
            lambda impl: impl.quarantine(worker_id),
            call=("quarantine", worker_id),
            subject=worker_id,
        )

    @rule(role=roles)
    def release(self, role: str) -> None:
        """Release the worker playing ``role`` from quarantine."""
        worker_id = pick(self.current, role) or "ghost"
        self.act(
            "release_worker",
            lambda s: core.release_worker(s, worker_id, now=self.now),
            lambda impl: impl.release(worker_id),
            call=("release", worker_id),
            subject=worker_id,
        )

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
        target = start + length + {"-1us": -TICK, "exactly": timedelta(0), "+1us": TICK}[offset]
        self.now = max(self.now, target)


#: The rules that use each optional action; declaring the action a gap removes them.
RULES_BY_ACTION: dict[str, tuple[str, ...]] = {
    "heartbeat": ("heartbeat", "heartbeat_from"),
    "kill": ("kill",),
    "reap": ("reap",),
    "kill_switch": ("kill_switch",),
    "quarantine": ("quarantine",),
    "release": ("release",),
}


def differential_machine(
    factory: Callable[[], Implementation] | None,
    *,
    mode: str = "observation",
    gaps: frozenset[str] = frozenset(),
    unreported: frozenset[str] | None = frozenset(),
    suppressed: frozenset[tuple[str, str]] = frozenset(),
    stats: RunStats | None = None,
    control: RunControl | None = None,
) -> type[DifferentialMachine]:
    """Return a machine class checking ``factory``'s implementation against the reference.

    Rules using an action in ``gaps`` are removed, and listed in ``stats.skipped_rules``.
    ``unreported`` names the optional observation fields the implementation does
    not report (``None``: learn them at first sight); ``suppressed`` the
    ``(action, expected decision)`` steps skipped on both sides (``--keep-going``).
    """
    if mode not in MODES:
        message = f"mode must be one of {MODES}, got {mode!r}"
        raise ValueError(message)
    unknown = gaps - OPTIONAL_ACTIONS
    if unknown:
        message = f"gaps may only name {sorted(OPTIONAL_ACTIONS)}, got {sorted(unknown)}"
        raise ValueError(message)
    skipped = tuple(sorted(name for action in gaps for name in RULES_BY_ACTION[action]))
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
        # A plain attribute shadows the inherited rule: Hypothesis no longer sees it.
        **dict.fromkeys(skipped),
    }
    return type("DifferentialMachine", (DifferentialMachine,), namespace)
