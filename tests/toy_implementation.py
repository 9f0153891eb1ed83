"""Implementations for testing the conformance kit: the plain model, and six broken copies.

Each faulty implementation is the property suite's plain model with one rule
broken the way real implementations break them; the kit (and the test vectors)
must reject every one and name the right invariant or divergence.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from properties.plain_model import PlainModel
from replication.conformance.adapter import Denied

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from replication.model import Manifest

__all__ = [
    "DepthOffByOne",
    "DuplicateLaunchReplaces",
    "IgnoresCooldown",
    "KillSwitchSurvivor",
    "QuarantinedHeartbeat",
    "ReapLeavesContainer",
    "ToyImplementation",
    "WithoutQuarantine",
]


class ToyImplementation(PlainModel):
    """A correct, independent implementation (the plain model itself)."""


class KillSwitchSurvivor(PlainModel):
    """A container survives the kill switch."""

    def kill_switch(self) -> None:
        survivor = dict(list(self.containers.items())[:1])
        super().kill_switch()
        self.containers.update(survivor)


class DepthOffByOne(PlainModel):
    """Depth checked with >= instead of >."""

    def _too_deep(self, depth: int) -> bool:
        return depth >= self.contract.max_depth


class IgnoresCooldown(PlainModel):
    """The cooldown is never checked."""

    def _too_soon(self, parent_id: str, now: datetime) -> bool:
        return False


class ReapLeavesContainer(PlainModel):
    """Reaping deregisters a worker but leaves its container running."""

    def reap(self, timeout: timedelta) -> None:
        running = dict(self.containers)
        super().reap(timeout)
        self.containers = running


class QuarantinedHeartbeat(PlainModel):
    """A quarantined worker can still send heartbeats."""

    def heartbeat(self, worker_id: str) -> None:
        if worker_id in self.quarantined and worker_id in self.registry:
            self.registry[worker_id]["last_heartbeat"] = self.clock()
            return
        super().heartbeat(worker_id)


class DuplicateLaunchReplaces(PlainModel):
    """Launching a running worker replaces its container (the older implementation's bug)."""

    def launch(self, manifest: Manifest) -> None:
        running = self.containers.pop(manifest.worker_id, None)
        try:
            super().launch(manifest)
        except Denied:
            if running is not None:  # only the duplicate check is broken
                self.containers[manifest.worker_id] = running
            raise


class WithoutQuarantine(PlainModel):
    """A correct implementation that has no quarantine, and says so."""

    gaps = frozenset({"quarantine", "release"})
