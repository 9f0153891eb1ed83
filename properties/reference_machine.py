"""The property suite's state machine: the reference core alone, every invariant each step.

It is the conformance kit's :class:`~replication.conformance.machine.DifferentialMachine`
with no implementation attached (so every action runs on the pure core only,
with its audit events checked too), plus the actions only the core has:
deregistration, expiry, resource enforcement, and issuing with a claimed depth.
A failure prints the shrunk program; rule and argument names read like the spec.
"""

from __future__ import annotations

from typing import Literal

from hypothesis import strategies as st
from hypothesis.stateful import rule

from replication import transitions as core
from replication.conformance.fixtures import KEY, pick, roles
from replication.conformance.machine import DifferentialMachine, Issued, RunStats
from replication.model import ResourceSpec


class ReferenceMachine(DifferentialMachine):
    """Random programs over the pure core; every invariant checked after every step."""

    factory = None
    stats = RunStats()

    @rule(
        target=DifferentialMachine.issued,
        role=roles,
        claimed=st.sampled_from(["derived", "one too many", "one too few"]),
    )
    def issue_child_claiming_depth(
        self, role: str, claimed: Literal["derived", "one too many", "one too few"]
    ) -> Issued | None:
        """Issue a child of the worker playing ``role``, claiming a depth for it."""
        parent = pick(self.current, role)
        if parent is None:
            return None
        derived = self.current.registry[parent].depth + 1
        depth = {"derived": derived, "one too many": derived + 1, "one too few": derived - 1}
        worker_id = self.next_id()
        outcome, _ = self.act(
            lambda s: core.issue_manifest(s, KEY, parent_id=parent, worker_id=worker_id,
                                          depth=depth[claimed], resources=ResourceSpec(0.5, 256),
                                          now=self.now),
            None,
        )  # fmt: skip
        return Issued(worker_id, outcome.manifest, None) if outcome and outcome.manifest else None

    @rule(role=roles)
    def deregister(self, role: str) -> None:
        """Deregister the worker playing ``role`` (killing its container)."""
        worker_id = pick(self.current, role) or "ghost"
        self.act(lambda s: core.deregister_worker(s, worker_id, reason="done", now=self.now), None)

    @rule()
    def expire_workers(self) -> None:
        """Remove every worker older than the contract's expiration."""
        self.act(lambda s: core.expire_workers(s, now=self.now), None)

    @rule(role=roles)
    def enforce_resource_bounds(self, role: str) -> None:
        """Enforce the limits of the container of the worker playing ``role``."""
        worker_id = pick(self.current, role) or "ghost"
        self.act(lambda s: core.enforce_resource_bounds(s, worker_id, now=self.now), None)
