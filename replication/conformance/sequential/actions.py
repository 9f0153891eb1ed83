"""The actions a rule applies, each on both sides: issue, register, launch, and the rest.

Each helper spells one action of the adapter protocol once: the reference
transition, the adapter call, the names a report gives them. The rules of
:mod:`replication.conformance.sequential.machine` are written with these.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from replication import transitions as core
from replication.conformance.fixtures import KEY
from replication.conformance.sequential.engine import GENERATED
from replication.conformance.sequential.manifests import ManifestSources
from replication.conformance.sequential.results import Issued
from replication.model import NetworkPolicy, ResourceSpec

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.errors import ReasonCode
    from replication.model import Manifest, State
    from replication.transitions import Outcome

__all__ = ["Actions"]


class Actions(ManifestSources):
    """One action on both sides, as the rules need it."""

    def _issue(
        self,
        parent: str | None,
        worker_id: str | None,
        external_network: bool,  # noqa: FBT001 - every caller names it
        snapshot: dict[str, Any],
    ) -> Issued | None:
        """Issue on both sides; ``worker_id=None`` lets the controller generate it."""
        resources = ResourceSpec(0.5, 256, NetworkPolicy(allow_external=external_network))
        outcome, manifest = self.act(
            "issue_manifest",
            lambda s: core.issue_manifest(
                s, KEY, parent_id=parent, worker_id=worker_id, resources=resources,
                state_snapshot=snapshot, now=self.now,
            ),
            lambda impl: impl.issue(parent, worker_id, resources, snapshot),
            call=("issue", parent, worker_id, resources, snapshot),
            subject=GENERATED if worker_id is None else worker_id,
        )  # fmt: skip
        if outcome is None or outcome.manifest is None:
            return None
        return Issued(outcome.manifest.worker_id, outcome.manifest, manifest)

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
        if outcome is not None:
            self.registered_manifests[reference.worker_id] = sent
        return outcome is not None

    def _launch(
        self,
        reference: Manifest,
        implementation: Manifest | None,
        *,
        must_deny: frozenset[ReasonCode] | None = None,
    ) -> None:
        sent = implementation if implementation is not None else reference
        self.act(
            "launch_worker",
            lambda s: core.launch_worker(s, reference, now=self.now),
            lambda impl: impl.launch(sent),
            call=("launch", sent),
            subject=reference.worker_id,
            must_deny=must_deny,
        )

    def _on_worker(
        self, action: str, method: str, worker_id: str, transition: Callable[..., Any], **extra: Any
    ) -> Outcome[State] | None:
        """Apply an action on one worker (``kill``, ``heartbeat``, ``deregister``, ...)."""
        outcome, _ = self.act(
            action,
            lambda s: transition(s, worker_id, now=self.now, **extra),
            lambda impl: getattr(impl, method)(worker_id),
            call=(method, worker_id),
            subject=worker_id,
        )
        return outcome

    def _start_worker(
        self,
        parent: str | None,
        *,
        external_network: bool = False,
        name: str | None = None,
        snapshot: dict[str, Any] | None = None,
    ) -> str:
        issued = self._issue(parent, name or self.next_id(), external_network, snapshot or {})
        if issued is None:
            return parent or "never-issued"
        if self._register(issued.reference, issued.implementation):
            self._launch(issued.reference, issued.implementation)
        return issued.worker_id

    def _deregister(self, worker_id: str) -> None:
        self._on_worker(
            "deregister_worker", "deregister", worker_id, core.deregister_worker,
            reason="conformance",
        )  # fmt: skip
