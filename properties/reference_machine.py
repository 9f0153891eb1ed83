"""The property suite's state machine: the pure core, an oracle beside it, every invariant.

It is the conformance kit's :class:`~replication.conformance.sequential.machine.DifferentialMachine`
with the property suite's :class:`~properties.plain_model.PlainModel` attached
as the implementation, compared in the strictest mode: every decision, reason
code and observed state of the core must match a plain, independent model of
the rules, and every invariant must hold on both, after every step. On top of
the kit's actions it drives the ones only the core has: resource enforcement and
claimed depths. At teardown the
whole final state is checked again, signatures included.

A failure prints the shrunk program; rule and argument names read like the spec.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import attrs
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from properties.plain_model import PlainModel
from replication import transitions as core
from replication.conformance.fixtures import KEY, pick, roles, tamper
from replication.conformance.sequential.machine import GENERATED, DifferentialMachine
from replication.conformance.sequential.results import ConformanceFailure, Issued, RunStats
from replication.errors import ReasonCode
from replication.invariants import (
    Step,
    Violation,
    check_state,
    check_step,
    observe,
    policy_of,
)
from replication.model import ResourceSpec, State

if TYPE_CHECKING:
    from datetime import datetime


class ReferenceMachine(DifferentialMachine):
    """Random programs over the pure core, checked against a plain model and the invariants."""

    factory = PlainModel
    mode = "observation"
    stats = RunStats()

    @rule(
        target=DifferentialMachine.issued,
        role=st.sampled_from(["none (a root)", "newest", "deepest", "latest parent"]),
        claimed=st.sampled_from(["nothing", "derived", "one too many", "one too few"]),
    )
    def issue_with_generated_id(
        self,
        role: str,
        claimed: Literal["nothing", "derived", "one too many", "one too few"],
    ) -> Issued | None:
        """Issue a manifest with the controller choosing the worker id, for a root or a
        child of the worker playing ``role``, claiming a depth for it or not."""
        parent = None if role == "none (a root)" else pick(self.current, role)
        entry = self.current.registry.get(parent) if parent else None
        derived = entry.depth + 1 if entry else 0
        depth = {
            "nothing": None,
            "derived": derived,
            "one too many": derived + 1,
            "one too few": max(0, derived - 1),
        }[claimed]
        resources = ResourceSpec(0.5, 256)
        outcome, manifest = self.act(
            "issue_manifest",
            lambda s: core.issue_manifest(
                s, KEY, parent_id=parent, depth=depth, resources=resources, now=self.now
            ),
            lambda model: model.issue(parent, None, resources, {}, depth=depth),
            subject=GENERATED,
        )
        if outcome is None or outcome.manifest is None:
            return None
        return Issued(outcome.manifest.worker_id, outcome.manifest, manifest)

    @precondition(lambda self: self.state is not None and _deepest_with_room(self.state))
    @rule()
    def issue_beyond_max_depth(self) -> None:
        """Issue a child of an unquarantined worker at ``max_depth`` while the registry has
        room: the one situation ``depth_exceeded`` needs, which random programs reach
        rarely (a small quota fills before the lineage is deep)."""
        parent = _deepest_with_room(self.current)
        resources = ResourceSpec(0.5, 256)
        self.act(
            "issue_manifest",
            lambda s: core.issue_manifest(
                s, KEY, parent_id=parent, resources=resources, now=self.now
            ),
            lambda model: model.issue(parent, None, resources, {}),
            subject=None,
            must_deny=frozenset({ReasonCode.DEPTH_EXCEEDED}),
        )

    @rule(role=roles)
    def enforce_resource_bounds(self, role: str) -> None:
        """Enforce the limits of the container of the worker playing ``role``."""
        worker_id = pick(self.current, role) or "ghost"
        self.act(
            "enforce_resource_bounds",
            lambda s: core.enforce_resource_bounds(s, worker_id, now=self.now),
            lambda model: model.enforce(worker_id),
            subject=worker_id,
        )

    def teardown(self) -> None:
        """Check the final state once more, in full: every manifest's signature too.

        And check the checker: the same state with one registered manifest
        changed after signing must be reported, so that the signature check can
        never pass vacuously.
        """
        if self.state is not None:
            violations = check_state(self.state)
            if violations:
                raise ConformanceFailure(
                    "reference", "teardown", "no violation", "violation",
                    [str(v) for v in violations],
                )  # fmt: skip
            if self.state.registry:
                _check_the_checkers(self.state, self.now)
        super().teardown()


def _deepest_with_room(state: State) -> str | None:
    """An unquarantined worker at ``max_depth``, if the kill switch is off and there is room."""
    controller = state.controller
    contract = controller.contract
    if controller.kill_switch_engaged or len(controller.registry) >= contract.max_replicas:
        return None
    return next(
        (
            worker_id
            for worker_id, entry in sorted(controller.registry.items())
            if entry.depth == contract.max_depth and worker_id not in controller.quarantined
        ),
        None,
    )


def _check_the_checkers(state: State, now: datetime) -> None:
    """The catalogue must report, under the right id and naming the worker, a registered
    manifest changed after signing and a denial that changed the state."""
    worker_id = min(state.registry)
    forged = _with_one_manifest_tampered(state)
    assert Violation(
        "INV-SIGNATURE",
        f"{worker_id}'s manifest does not verify: signature does not verify under this key",
    ) in check_state(forged)
    before = observe(state)
    without = attrs.evolve(
        before, workers={w: v for w, v in before.workers.items() if w != worker_id}
    )
    denial = Step("heartbeat", now, False, "quarantined", worker_id)
    assert Violation(
        "INV-DENIAL-NO-CHANGE", "heartbeat was denied (quarantined) but changed the state"
    ) in check_step(before, denial, without, policy_of(state))


def _with_one_manifest_tampered(state: State) -> State:
    worker_id = min(state.registry)
    entry = state.registry[worker_id]
    forged = attrs.evolve(entry, manifest=tamper(entry.manifest, "memory_limit_mb"))
    controller = attrs.evolve(state.controller, registry=state.registry.set(worker_id, forged))
    return attrs.evolve(state, controller=controller)
