"""Implementations for testing the conformance kit: the plain model, and broken copies.

Each faulty implementation is the property suite's plain model with one rule
broken the way real implementations break them; the kit (and the test vectors)
must reject every one and name the right invariant or divergence. The second
group are the blind spots independent implementations found in the kit: each
got through as conformant before, and must be caught in the ``ci`` profile now.
Two implementations sign with HMAC in their adapter: one correctly, one by
joining fields with ``:`` (so moving text across the ``:`` keeps the signature).
"""

from __future__ import annotations

import hashlib
import hmac
from typing import TYPE_CHECKING

import attrs

from properties.plain_model import PlainModel
from replication.conformance.adapters.adapter import Denied
from replication.encoding import manifest_body

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from replication.model import Manifest, ReplicationContext, StopCondition

__all__ = [
    "BOUNDARY_FAULTS",
    "CooldownEndsLate",
    "DepthOffByOne",
    "DuplicateLaunchReplaces",
    "ExpiresAtTheBoundary",
    "GeneratedIdSkipsIssuedOnly",
    "HmacColonJoined",
    "HmacSigning",
    "IgnoresCooldown",
    "KillSwitchSurvivor",
    "QuarantinedHeartbeat",
    "QuotaCheckedAtIssueOnly",
    "ReapLeavesContainer",
    "ReapsAtTheBoundary",
    "ReplayCheckedAgainstRegistryOnly",
    "SkewBoundaryRefused",
    "SpawnTimeForgotten",
    "StopConditionFailsOpen",
    "ToyImplementation",
    "TwoFaults",
    "WithoutDeregisterOrExpire",
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


class WithoutDeregisterOrExpire(PlainModel):
    """A correct implementation without the optional deregistration and expiry, and says so."""

    gaps = frozenset({"deregister", "expire"})


# -- the blind spots ---------------------------------------------------------------------------


class SpawnTimeForgotten(PlainModel):
    """When a child departs, its parent's spawn time goes with it: the next child escapes
    the cooldown (and the parent reports no last child)."""

    def _remove(self, worker_id: str) -> None:
        parent_id = self.registry[worker_id]["manifest"].parent_id
        super()._remove(worker_id)
        if parent_id is not None:
            self.spawn_times.pop(parent_id, None)


class StopConditionFailsOpen(PlainModel):
    """A stop condition whose predicate raises is treated as not fired."""

    def _fires(self, condition: StopCondition, context: ReplicationContext) -> bool:
        try:
            return bool(condition.predicate(context))
        except Exception:  # noqa: BLE001 - the fault: it fails open
            return False


class ReplayCheckedAgainstRegistryOnly(PlainModel):
    """A replay is refused only while its worker is registered: a departed worker comes back."""

    def _is_replay(self, worker_id: str) -> bool:
        return worker_id in self.registry


class QuotaCheckedAtIssueOnly(PlainModel):
    """The quota is checked when issuing, not again at registration: issued manifests
    register past ``max_replicas``."""

    def _full_at_registration(self) -> bool:
        return False


# -- each time rule off by one at its boundary instant (">=" for ">", "<=" for "<") ---------


class CooldownEndsLate(PlainModel):
    """A sibling exactly ``cooldown_seconds`` after the last child is refused (``<=`` for ``<``)."""

    def _too_soon(self, parent_id: str, now: datetime) -> bool:
        last = self.spawn_times.get(parent_id)
        return last is not None and now - last <= self.contract.cooldown


class ReapsAtTheBoundary(PlainModel):
    """A worker silent for exactly the timeout is reaped (``>=`` for ``>``)."""

    def reap(self, timeout: timedelta) -> None:
        now = self.clock()
        for worker_id in [
            w for w, e in self.registry.items() if now - e["last_heartbeat"] >= timeout
        ]:
            self._remove(worker_id)


class ExpiresAtTheBoundary(PlainModel):
    """A worker registered exactly ``expiration_seconds`` ago expires (``>=`` for ``>``)."""

    def expire(self) -> None:
        now, expiration = self.clock(), self.contract.expiration
        if expiration is None:
            return
        for worker_id in [
            w for w, e in self.registry.items() if now - e["registered_at"] >= expiration
        ]:
            self._remove(worker_id)


class SkewBoundaryRefused(PlainModel):
    """A manifest issued exactly ``clock_skew_seconds`` ahead is refused (``>=`` for ``>``)."""

    def _from_the_future(self, issued_at: datetime, now: datetime) -> bool:
        return issued_at - now >= self.contract.clock_skew


#: The time rules' boundary faults, by the rule each breaks.
BOUNDARY_FAULTS = {
    "cooldown": CooldownEndsLate,
    "heartbeat timeout": ReapsAtTheBoundary,
    "expiration": ExpiresAtTheBoundary,
    "clock skew": SkewBoundaryRefused,
}


# -- identifiers as adversaries -------------------------------------------------------------


class GeneratedIdSkipsIssuedOnly(PlainModel):
    """The ``w<n>`` generator skips the ids it issued, not those registered from manifests it
    never issued (signed outside the controller): it hands a registered id out again."""

    def _new_id(self) -> str:
        serial = len(self.issued) + 1
        while f"w{serial}" in self.issued:
            serial += 1
        return f"w{serial}"


# -- signing with another scheme, in the adapter ----------------------------------------------

CONTROLLER_SECRET = b"the controller's HMAC secret (a test fixture)"
ANOTHER_SECRET = b"a secret that is not the controller's"


class HmacSigning(PlainModel):
    """A correct implementation that signs with HMAC-SHA256 over the canonical bytes.

    Its adapter owns signing: the kit asks it for every validly signed and
    foreign-signed manifest, and for its verdict on a signature.
    """

    def _mac(self, manifest: Manifest, secret: bytes) -> str:
        mac = hmac.new(secret, manifest.signing_payload, hashlib.sha256)
        return "hmac-sha256:" + mac.hexdigest()

    def _sign(self, manifest: Manifest) -> Manifest:
        return attrs.evolve(manifest, signature=self._mac(manifest, CONTROLLER_SECRET))

    def _verifies(self, manifest: Manifest) -> bool:
        return hmac.compare_digest(manifest.signature, self._mac(manifest, CONTROLLER_SECRET))

    def sign(self, manifest: Manifest) -> Manifest:
        return self._sign(manifest)

    def sign_with_another_key(self, manifest: Manifest) -> Manifest:
        return attrs.evolve(manifest, signature=self._mac(manifest, ANOTHER_SECRET))

    def verify(self, manifest: Manifest) -> bool:
        return self._verifies(manifest)


class HmacColonJoined(HmacSigning):
    """Signs ``f"{worker_id}:{parent_id}:{depth}:..."``: a ``:`` inside an id moves a field
    boundary without changing the signed text (the older implementation's bug)."""

    def _mac(self, manifest: Manifest, secret: bytes) -> str:
        body = manifest_body(manifest)
        text = ":".join(
            str(body[field])
            for field in ("worker_id", "parent_id", "depth", "issued_at", "resources",
                          "state_snapshot")
        )  # fmt: skip
        return "hmac-sha256:" + hmac.new(secret, text.encode(), hashlib.sha256).hexdigest()


class TwoFaults(IgnoresCooldown, QuarantinedHeartbeat):
    """Two faults at once: no cooldown, and a quarantined worker's heartbeat accepted."""
