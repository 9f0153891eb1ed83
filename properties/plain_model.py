"""A plain model of the policy: dicts and sets, mutated in place, written from the spec.

It shares nothing with :mod:`replication.transitions` but the record types and
the signing functions. The property suite runs it beside the pure core as an
oracle (the model-based pattern: a real structure checked against a plain
model), in the kit's strictest comparison mode, so that a change to any rule of
the core (which workers a reap removes, which reason a denial names, which id
a manifest gets) shows up as a divergence even where no invariant would notice.
It implements the conformance adapter protocol, plus the actions only the core
has: deregistration, expiry, resource enforcement, generated ids and claimed
depths. ``tests/toy_implementation.py`` breaks it on purpose, one fault at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from replication.conformance.adapters.adapter import Denied
from replication.errors import BadSignatureError
from replication.invariants import Observation, WorkerView
from replication.model import Manifest, ReplicationContext
from replication.signing import sign_manifest, verify_manifest

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime, timedelta

    from replication.model import ReplicationContract, ResourceSpec, StopCondition
    from replication.signing import SigningKey


class PlainModel:
    """Every rule, checked in the specified order, on plain mutable data."""

    gaps: frozenset[str] = frozenset()

    def start(
        self, contract: ReplicationContract, key: SigningKey, clock: Callable[[], datetime]
    ) -> None:
        self.contract, self.key, self.clock = contract, key, clock
        self.registry: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, Manifest] = {}
        self.spawn_times: dict[str, datetime] = {}
        self.quarantined: set[str] = set()
        self.issued: set[str] = set()
        self.ever: set[str] = set()
        self.killed = False

    # -- rules shared by issue and register ----------------------------------------------

    def _too_deep(self, depth: int) -> bool:
        return depth > self.contract.max_depth

    def _too_soon(self, parent_id: str, now: datetime) -> bool:
        last = self.spawn_times.get(parent_id)
        return last is not None and now - last < self.contract.cooldown

    def _parent_depth(self, parent_id: str) -> int:
        parent = self.registry.get(parent_id)
        if parent is None:
            raise Denied("parent_unknown")
        if parent_id in self.quarantined:
            raise Denied("parent_quarantined")
        depth: int = parent["manifest"].depth
        return depth

    def _new_id(self) -> str:
        serial = len(self.issued) + 1
        while f"w{serial}" in self.issued or f"w{serial}" in self.ever:
            serial += 1
        return f"w{serial}"

    # -- the actions --------------------------------------------------------------------------

    def issue(
        self,
        parent_id: str | None,
        worker_id: str | None,
        resources: ResourceSpec,
        state_snapshot: dict[str, Any],
        depth: int | None = None,
    ) -> Manifest:
        now = self.clock()
        if self.killed:
            raise Denied("kill_switch")
        if len(self.registry) >= self.contract.max_replicas:
            raise Denied("quota")
        child_depth = 0
        if parent_id is not None:
            child_depth = self._parent_depth(parent_id) + 1
            if self._too_deep(child_depth):
                raise Denied("depth_exceeded")
            if self._too_soon(parent_id, now):
                raise Denied("cooldown")
        if depth is not None and depth != child_depth:
            raise Denied("depth_mismatch")
        if worker_id is None:
            worker_id = self._new_id()
        elif worker_id in self.issued or worker_id in self.ever:
            raise Denied("duplicate_worker_id")
        self.issued.add(worker_id)
        manifest = Manifest(worker_id, parent_id, child_depth, state_snapshot, now, resources)
        return self._sign(manifest)

    def _sign(self, manifest: Manifest) -> Manifest:
        return sign_manifest(manifest, self.key)

    def _verifies(self, manifest: Manifest) -> bool:
        try:
            verify_manifest(manifest, self.key.verifying_key)
        except BadSignatureError:
            return False
        return True

    def _is_replay(self, worker_id: str) -> bool:
        return worker_id in self.ever

    def register(self, manifest: Manifest) -> None:
        now = self.clock()
        if self.killed:
            raise Denied("kill_switch")
        if not self._verifies(manifest):
            raise Denied("bad_signature")
        if self._is_replay(manifest.worker_id):
            raise Denied("replay")
        if self._from_the_future(manifest.issued_at, now):
            raise Denied("issued_in_future")
        parent_id = manifest.parent_id
        expected = 0 if parent_id is None else self._parent_depth(parent_id) + 1
        if manifest.depth != expected:
            raise Denied("depth_mismatch")
        if self._too_deep(expected):
            raise Denied("depth_exceeded")
        if self._full_at_registration():
            raise Denied("quota")
        if parent_id is not None and self._too_soon(parent_id, now):
            raise Denied("cooldown")
        context = ReplicationContext(manifest, len(self.registry), self.contract)
        for condition in self.contract.stop_conditions:
            if self._fires(condition, context):
                raise Denied("stop_condition")
        self.registry[manifest.worker_id] = {
            "manifest": manifest,
            "registered_at": now,
            "last_heartbeat": now,
        }
        self.ever.add(manifest.worker_id)
        if parent_id is not None:
            self.spawn_times[parent_id] = now

    def _from_the_future(self, issued_at: datetime, now: datetime) -> bool:
        return issued_at - now > self.contract.clock_skew

    def _full_at_registration(self) -> bool:
        return len(self.registry) >= self.contract.max_replicas

    def _fires(self, condition: StopCondition, context: ReplicationContext) -> bool:
        try:
            return bool(condition.predicate(context))
        except Exception:  # noqa: BLE001 - a condition that fails, fails closed (R-REGISTER-5)
            return True

    def launch(self, manifest: Manifest) -> None:
        if self.killed:
            raise Denied("kill_switch")
        entry = self.registry.get(manifest.worker_id)
        if entry is None:
            raise Denied("unknown_worker")
        if entry["manifest"] != manifest:
            raise Denied("manifest_mismatch")
        if manifest.worker_id in self.quarantined:
            raise Denied("quarantined")
        if manifest.worker_id in self.containers:
            raise Denied("already_running")
        self.containers[manifest.worker_id] = manifest

    def heartbeat(self, worker_id: str) -> None:
        entry = self.registry.get(worker_id)
        if entry is None:
            raise Denied("unknown_worker")
        if worker_id in self.quarantined:
            raise Denied("quarantined")
        entry["last_heartbeat"] = self.clock()

    def kill(self, worker_id: str) -> None:
        self.containers.pop(worker_id, None)

    def _remove(self, worker_id: str) -> None:
        self.containers.pop(worker_id, None)
        del self.registry[worker_id]
        self.quarantined.discard(worker_id)
        self.spawn_times.pop(worker_id, None)

    def reap(self, timeout: timedelta) -> None:
        now = self.clock()
        for worker_id in [
            w for w, e in self.registry.items() if now - e["last_heartbeat"] > timeout
        ]:
            self._remove(worker_id)

    def expire(self) -> None:
        now, expiration = self.clock(), self.contract.expiration
        if expiration is None:
            return
        for worker_id in [
            w for w, e in self.registry.items() if now - e["registered_at"] > expiration
        ]:
            self._remove(worker_id)

    def deregister(self, worker_id: str) -> None:
        if worker_id not in self.registry:
            raise Denied("unknown_worker")
        self._remove(worker_id)

    def enforce(self, worker_id: str) -> None:
        if worker_id not in self.containers:
            raise Denied("not_running")

    def kill_switch(self) -> None:
        self.killed = True
        for worker_id in list(self.registry):
            self._remove(worker_id)
        self.containers.clear()

    def quarantine(self, worker_id: str) -> None:
        if worker_id not in self.registry:
            raise Denied("unknown_worker")
        if worker_id in self.quarantined:
            raise Denied("already_quarantined")
        self.quarantined.add(worker_id)

    def release(self, worker_id: str) -> None:
        if worker_id not in self.registry:
            raise Denied("unknown_worker")
        if worker_id not in self.quarantined:
            raise Denied("not_quarantined")
        self.quarantined.discard(worker_id)

    def observe(self) -> Observation:
        workers = {
            worker_id: WorkerView(
                worker_id,
                entry["manifest"].parent_id,
                entry["manifest"].depth,
                registered_at=entry["registered_at"],
                last_heartbeat=entry["last_heartbeat"],
                last_child_registered_at=self.spawn_times.get(worker_id),
                manifest=entry["manifest"],
            )
            for worker_id, entry in self.registry.items()
        }
        return Observation(
            workers,
            frozenset(self.containers),
            self.killed,
            quarantined=frozenset(self.quarantined),
            registered_ever=frozenset(self.ever),
        )
