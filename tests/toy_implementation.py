"""A plain, mutable implementation of the policy, written the way another team might,
with switches for the faults the conformance kit must catch.

It shares nothing with the reference model but the record types and the signing
functions (an implementation would use a library for those too).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from replication.conformance.adapter import Denied
from replication.errors import BadSignatureError
from replication.invariants import Observation, WorkerView
from replication.model import Manifest, ReplicationContext
from replication.signing import sign_manifest, verify_manifest

if TYPE_CHECKING:
    from datetime import timedelta


class ToyImplementation:
    """Dicts and sets, checks in the specified order, no faults unless switched on."""

    gaps: frozenset[str] = frozenset()
    faults: frozenset[str] = frozenset()

    def start(self, contract, key, clock) -> None:
        self.contract, self.key, self.clock = contract, key, clock
        self.registry: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, Manifest] = {}
        self.spawn_times: dict[str, Any] = {}
        self.quarantined: set[str] = set()
        self.issued: set[str] = set()
        self.ever: set[str] = set()
        self.killed = False

    def _too_deep(self, depth: int) -> bool:
        if "depth_off_by_one" in self.faults:
            return depth >= self.contract.max_depth
        return depth > self.contract.max_depth

    def _too_soon(self, parent_id: str, now) -> bool:
        last = self.spawn_times.get(parent_id)
        if "ignore_cooldown" in self.faults or last is None:
            return False
        return now - last < self.contract.cooldown

    def _parent_depth(self, parent_id: str) -> int:
        parent = self.registry.get(parent_id)
        if parent is None:
            raise Denied("parent_unknown")
        if parent_id in self.quarantined:
            raise Denied("parent_quarantined")
        return parent["manifest"].depth

    def issue(self, parent_id, worker_id, resources, state_snapshot) -> Manifest:
        now = self.clock()
        if self.killed:
            raise Denied("kill_switch")
        if len(self.registry) >= self.contract.max_replicas:
            raise Denied("quota")
        depth = 0
        if parent_id is not None:
            depth = self._parent_depth(parent_id) + 1
            if self._too_deep(depth):
                raise Denied("depth_exceeded")
            if self._too_soon(parent_id, now):
                raise Denied("cooldown")
        if worker_id in self.issued or worker_id in self.ever:
            raise Denied("duplicate_worker_id")
        self.issued.add(worker_id)
        manifest = Manifest(worker_id, parent_id, depth, state_snapshot, now, resources)
        return sign_manifest(manifest, self.key)

    def register(self, manifest: Manifest) -> None:
        now = self.clock()
        if self.killed:
            raise Denied("kill_switch")
        try:
            verify_manifest(manifest, self.key.verifying_key)
        except BadSignatureError:
            raise Denied("bad_signature") from None
        if manifest.worker_id in self.ever:
            raise Denied("replay")
        if manifest.issued_at - now > self.contract.clock_skew:
            raise Denied("issued_in_future")
        parent_id = manifest.parent_id
        expected = 0 if parent_id is None else self._parent_depth(parent_id) + 1
        if manifest.depth != expected:
            raise Denied("depth_mismatch")
        if self._too_deep(expected):
            raise Denied("depth_exceeded")
        if len(self.registry) >= self.contract.max_replicas:
            raise Denied("quota")
        if parent_id is not None and self._too_soon(parent_id, now):
            raise Denied("cooldown")
        context = ReplicationContext(manifest, len(self.registry), self.contract)
        if self.contract.evaluate(context) is not None:
            raise Denied("stop_condition")
        self.registry[manifest.worker_id] = {
            "manifest": manifest, "registered_at": now, "last_heartbeat": now,
        }  # fmt: skip
        self.ever.add(manifest.worker_id)
        if parent_id is not None:
            self.spawn_times[parent_id] = now

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
        if manifest.worker_id in self.containers and "duplicate_launch_replaces" not in self.faults:
            raise Denied("already_running")
        self.containers[manifest.worker_id] = manifest

    def heartbeat(self, worker_id: str) -> None:
        entry = self.registry.get(worker_id)
        if entry is None:
            raise Denied("unknown_worker")
        if worker_id in self.quarantined and "quarantine_heartbeat" not in self.faults:
            raise Denied("quarantined")
        entry["last_heartbeat"] = self.clock()

    def kill(self, worker_id: str) -> None:
        self.containers.pop(worker_id, None)

    def _remove(self, worker_id: str, *, keep_container: bool = False) -> None:
        if not keep_container:
            self.containers.pop(worker_id, None)
        del self.registry[worker_id]
        self.quarantined.discard(worker_id)
        self.spawn_times.pop(worker_id, None)

    def reap(self, timeout: timedelta) -> None:
        now = self.clock()
        stale = [w for w, e in self.registry.items() if now - e["last_heartbeat"] > timeout]
        for worker_id in stale:
            self._remove(worker_id, keep_container="reap_leaves_container" in self.faults)

    def kill_switch(self) -> None:
        self.killed = True
        survivor = next(iter(self.containers), None)
        running = dict(self.containers)
        for worker_id in list(self.registry):
            self._remove(worker_id)
        self.containers = running
        if "kill_switch_survivor" in self.faults and survivor is not None:
            self.containers = {survivor: running[survivor]}
        else:
            self.containers = {}

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
                worker_id, entry["manifest"].parent_id, entry["manifest"].depth,
                registered_at=entry["registered_at"], last_heartbeat=entry["last_heartbeat"],
                last_child_registered_at=self.spawn_times.get(worker_id),
                manifest=entry["manifest"],
            )
            for worker_id, entry in self.registry.items()
        }  # fmt: skip
        return Observation(
            workers, frozenset(self.containers), self.killed,
            quarantined=frozenset(self.quarantined), registered_ever=frozenset(self.ever),
        )  # fmt: skip


class KillSwitchSurvivor(ToyImplementation):
    """A container survives the kill switch."""

    faults = frozenset({"kill_switch_survivor"})


class DepthOffByOne(ToyImplementation):
    """Depth checked with >= instead of >."""

    faults = frozenset({"depth_off_by_one"})


class IgnoresCooldown(ToyImplementation):
    """The cooldown is never checked."""

    faults = frozenset({"ignore_cooldown"})


class ReapLeavesContainer(ToyImplementation):
    """Reaping deregisters a worker but leaves its container running."""

    faults = frozenset({"reap_leaves_container"})


class QuarantinedHeartbeat(ToyImplementation):
    """A quarantined worker can still send heartbeats."""

    faults = frozenset({"quarantine_heartbeat"})


class DuplicateLaunchReplaces(ToyImplementation):
    """Launching a running worker replaces its container (the older implementation's bug)."""

    faults = frozenset({"duplicate_launch_replaces"})


class WithoutQuarantine(ToyImplementation):
    """A correct implementation that has no quarantine, and says so."""

    gaps = frozenset({"quarantine", "release"})
