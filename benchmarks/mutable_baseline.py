# ruff: noqa: FBT003 - positional booleans for the audit record builder, as in the core
"""A deliberately plain, MUTABLE implementation of the rules of ``replication.transitions``.

This is the yardstick ``bench.py`` divides the reference model's costs by. It
is written the way a straightforward in-memory controller would be: one object
holding plain ``dict`` s (registry, containers, quarantine, spawn times, the
issued and registered ids), mutated in place. It applies the same rules, in the
same order, with the same reason codes and the same detail sentences; it
validates its inputs the way the core does (``now`` is an aware datetime and is
normalised to UTC, a worker id is a ``str``, a reason is a non-empty ``str``,
identifiers, depths and snapshots are checked); and it appends exactly one
audit record per decision, a ``dict`` carrying the same information as the
core's ``Event`` (action, at, allowed, reason, worker_id, a list of
``(kind, worker_id)`` effects, detail). Nothing more, nothing less:
``tests/test_benchmark_smoke.py`` checks that it decides exactly as the core
does on a scripted sequence, audit records included.

Manifests are plain dicts. They are signed with raw ``cryptography`` Ed25519
calls over a payload canonicalised exactly as the core canonicalises it (the
DSSE v1 pre-authentication encoding of the RFC 8785 JSON of the same body,
built here with ``rfc8785`` directly; the smoke test checks the bytes are
identical to ``Manifest.signing_payload``), and the signature is the same
``ed25519:<key id>:<hex>`` string, parsed back with the same pattern.

One difference is forced by mutability: a dict manifest can be changed after it
was signed, so registration recomputes the signed bytes from the manifest's
fields before verifying (the core verifies against the bytes cached on its
immutable ``Manifest`` at issue time). That is one canonicalisation more per
registration than the core does; ``bench.py`` reports it.

Resources are given as the core's validated, immutable ``ResourceSpec`` (an
input record validated once when built, as in the core).
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from replication.model import ResourceSpec

__all__ = ["BaselineDenied", "BaselineKey", "BaselineSystem", "StopRule"]

PAYLOAD_TYPE = b"replication.manifest.v1"
MAX_SAFE_INTEGER = 2**53 - 1
MAX_ID_LENGTH = 256
MAX_JSON_DEPTH = 64
_SIGNATURE = re.compile(r"ed25519:([0-9a-f]{16}):([0-9a-f]{128})")
OK = "ok"


class BaselineDenied(Exception):  # noqa: N818 - mirrors ReplicationDenied
    """A refused action: ``reason`` code, ``detail`` sentence, the audit ``record``."""

    def __init__(self, reason: str, detail: str, record: dict[str, Any]) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.record = record


class BaselineKey:
    """An Ed25519 private key with its public parts computed once (as ``SigningKey`` caches)."""

    __slots__ = ("key_id", "private", "public", "public_raw")

    def __init__(self, seed: bytes) -> None:
        self.private = Ed25519PrivateKey.from_private_bytes(seed)
        self.public = self.private.public_key()
        self.public_raw = self.public.public_bytes_raw()
        self.key_id = hashlib.sha256(self.public_raw).digest()[:8].hex()


class StopRule:
    """A named predicate over a context dict; when it fires, registration is refused."""

    __slots__ = ("name", "predicate")

    def __init__(self, name: str, predicate: Callable[[dict[str, Any]], bool]) -> None:
        self.name = name
        self.predicate = predicate


# -- input validation, as the core does it --------------------------------------------


def _check_now(now: object) -> datetime:
    if now.__class__ is datetime and now.tzinfo is UTC:  # type: ignore[attr-defined]
        return now  # type: ignore[return-value]
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a timezone-aware datetime, got {now!r}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be a timezone-aware datetime, got {now!r}")
    return now.astimezone(UTC)


def _check_worker_id(worker_id: object) -> str:
    if type(worker_id) is str:
        return worker_id
    if isinstance(worker_id, str):
        return str.__str__(worker_id)
    raise TypeError(f"worker_id must be a string, got {worker_id!r}")


#: The older API's sentence, first in a denial's detail (as the core writes it).
_OLDER_SENTENCES = {
    "kill_switch": "Kill switch engaged",
    "quota": "Replica quota exceeded",
    "cooldown": "Cooldown not satisfied",
    "depth_exceeded": "Depth exceeded",
    "parent_unknown": "Parent unknown",
    "bad_signature": "Manifest signature invalid",
}

#: The identifier alphabet's refused categories (the core's R-ID-1).
_REFUSED = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def _check_alphabet(field: str, text: str) -> str:
    if not text.isprintable():
        for character in text:
            if unicodedata.category(character) in _REFUSED:
                raise ValueError(f"{field} must not contain U+{ord(character):04X}")
    return text


def _check_reason(reason: object) -> str:
    if not isinstance(reason, str):
        raise TypeError(f"reason must be a non-empty string, got {reason!r}")
    reason = str.__str__(reason)
    if not reason or len(reason) > 1024:
        raise ValueError(f"reason must be a non-empty string of at most 1024, got {reason!r}")
    return _check_alphabet("reason", _check_text("reason", reason))


def _check_text(field: str, text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{field} must be valid Unicode text, got {text!r}") from None
    return text


def _check_identifier(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{field} must be a string, got {value!r}")
    value = str.__str__(value)
    if not 0 < len(value) <= MAX_ID_LENGTH:
        raise ValueError(f"{field} must be a string of 1 to {MAX_ID_LENGTH} characters")
    return _check_alphabet(field, _check_text(field, value))


def _check_depth(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"depth must be an integer, got {value!r}")
    if not 0 <= value <= MAX_SAFE_INTEGER:
        raise ValueError(f"depth must be an integer in [0, 2**53 - 1], got {value!r}")
    return value


def _copy_json(path: str, value: object, depth: int) -> object:
    """Validate a JSON value as the core's ``freeze_json`` does; return a private plain copy."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER:
            raise ValueError(f"{path} must be an integer within +-(2**53 - 1)")
        return int(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{path} must be a finite number")
        return float(value)
    if isinstance(value, str):
        return _check_text(path, value)
    if depth >= MAX_JSON_DEPTH:
        raise ValueError(f"{path} nested more than {MAX_JSON_DEPTH} levels deep")
    if isinstance(value, Mapping):
        items = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} key must be a string, got {key!r}")
            items[_check_text(f"{path} key", key)] = _copy_json(f"{path}[{key!r}]", item, depth + 1)
        return items
    if isinstance(value, list | tuple):
        return [_copy_json(f"{path}[{i}]", item, depth + 1) for i, item in enumerate(value)]
    raise TypeError(f"{path} must be a JSON value, got {value!r}")


# -- the signed bytes --------------------------------------------------------------------


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def signing_payload(manifest: dict[str, Any]) -> bytes:
    """DSSE v1 PAE of the RFC 8785 JSON of every manifest field but the signature."""
    resources = manifest["resources"]
    policy = resources.network_policy
    body = rfc8785.dumps(
        {
            "depth": manifest["depth"],
            "issued_at": _timestamp(manifest["issued_at"]),
            "parent_id": manifest["parent_id"],
            "resources": {
                "cpu_limit": resources.cpu_limit,
                "memory_limit_mb": resources.memory_limit_mb,
                "network_policy": {
                    "allow_controller": policy.allow_controller,
                    "allow_external": policy.allow_external,
                },
            },
            "state_snapshot": manifest["state_snapshot"],
            "worker_id": manifest["worker_id"],
        }
    )
    return b"DSSEv1 %d %b %d %b" % (len(PAYLOAD_TYPE), PAYLOAD_TYPE, len(body), body)


# -- the system ----------------------------------------------------------------------------


class BaselineSystem:
    """The whole system as mutable dicts; every method is one action of the core."""

    def __init__(
        self,
        *,
        max_depth: int,
        max_replicas: int,
        cooldown_seconds: float,
        public_key_raw: bytes,
        clock_skew_seconds: float = 1.0,
        stop_conditions: tuple[StopRule, ...] = (),
    ) -> None:
        self.max_depth = max_depth
        self.max_replicas = max_replicas
        self.cooldown_seconds = float(cooldown_seconds)
        self.cooldown = timedelta(seconds=cooldown_seconds)
        self.clock_skew_seconds = float(clock_skew_seconds)
        self.clock_skew = timedelta(seconds=clock_skew_seconds)
        self.stop_conditions = tuple(stop_conditions)
        self.public_key_raw = public_key_raw
        self.public_key = Ed25519PublicKey.from_public_bytes(public_key_raw)
        self.kill_switch_engaged = False
        self.registry: dict[str, dict[str, Any]] = {}
        self.containers: dict[str, dict[str, Any]] = {}
        self.quarantined: dict[str, datetime] = {}
        self.spawn_times: dict[str, datetime] = {}
        self.issued_ids: dict[str, datetime] = {}
        self.registered_ids: dict[str, datetime] = {}
        self.audit: list[dict[str, Any]] = []

    # -- audit ----------------------------------------------------------------------------

    def _record(  # noqa: PLR0917 - positional like the core's private builder
        self,
        action: str,
        at: datetime,
        allowed: bool,  # noqa: FBT001
        reason: str,
        worker_id: str | None,
        effects: list[tuple[str, str]],
        detail: str = "",
    ) -> dict[str, Any]:
        record = {
            "action": action,
            "at": at,
            "allowed": allowed,
            "reason": reason,
            "worker_id": worker_id,
            "effects": effects,
            "detail": detail,
        }
        self.audit.append(record)
        return record

    def _deny(self, action: str, reason: str, now: datetime, worker_id: str | None, detail: str):
        if reason in _OLDER_SENTENCES:
            detail = f"{_OLDER_SENTENCES[reason]}: {detail}"
        record = self._record(action, now, False, reason, worker_id, [], detail)
        raise BaselineDenied(reason, detail, record)

    # -- issue and register ------------------------------------------------------------------

    def issue_manifest(
        self,
        key: BaselineKey,
        *,
        resources: ResourceSpec,
        now: datetime,
        parent_id: str | None = None,
        state_snapshot: Mapping[str, object] | None = None,
        worker_id: str | None = None,
        depth: int | None = None,
    ) -> dict[str, Any]:
        action = "issue_manifest"
        now = _check_now(now)
        if not isinstance(key, BaselineKey):
            raise TypeError(f"key must be a BaselineKey, got {key!r}")
        if key.public_raw != self.public_key_raw:
            raise ValueError("key must be the signing key of this controller's verifying key")
        if not isinstance(resources, ResourceSpec):
            raise TypeError(f"resources must be a ResourceSpec, got {resources!r}")
        snapshot = {} if state_snapshot is None else state_snapshot
        if not isinstance(snapshot, Mapping):
            raise TypeError("state_snapshot must be a JSON object")
        snapshot = _copy_json("state_snapshot", snapshot, 0)
        if parent_id is not None:
            _check_identifier("parent_id", parent_id)
        if worker_id is not None:
            _check_identifier("worker_id", worker_id)
        if depth is not None:
            _check_depth(depth)

        registry = self.registry
        if self.kill_switch_engaged:
            self._deny(action, "kill_switch", now, worker_id, "the kill switch is engaged")
        if len(registry) >= self.max_replicas:
            self._deny(
                action,
                "quota",
                now,
                worker_id,
                f"registry holds {len(registry)} of max_replicas {self.max_replicas}",
            )
        child_depth = 0
        if parent_id is not None:
            parent = registry.get(parent_id)
            if parent is None:
                self._deny(
                    action,
                    "parent_unknown",
                    now,
                    worker_id,
                    f"parent {parent_id!r} is not registered",
                )
            if parent_id in self.quarantined:
                self._deny(
                    action,
                    "parent_quarantined",
                    now,
                    worker_id,
                    f"parent {parent_id!r} is quarantined",
                )
            child_depth = parent["manifest"]["depth"] + 1
            if child_depth > self.max_depth:
                self._deny(
                    action,
                    "depth_exceeded",
                    now,
                    worker_id,
                    f"child depth {child_depth} > max_depth {self.max_depth}",
                )
            last_spawn = self.spawn_times.get(parent_id)
            if last_spawn is not None and now - last_spawn < self.cooldown:
                self._deny(
                    action,
                    "cooldown",
                    now,
                    worker_id,
                    f"parent {parent_id!r} registered a child "
                    f"{(now - last_spawn).total_seconds()}s ago, cooldown is "
                    f"{self.cooldown_seconds}s",
                )
        if depth is not None and depth != child_depth:
            self._deny(
                action,
                "depth_mismatch",
                now,
                worker_id,
                f"claimed depth {depth}, derived depth {child_depth}",
            )
        if worker_id is None:
            serial = len(self.issued_ids) + 1
            while True:
                worker_id = f"w{serial}"
                if worker_id not in self.issued_ids and worker_id not in self.registered_ids:
                    break
                serial += 1
        elif worker_id in self.issued_ids or worker_id in self.registered_ids:
            self._deny(
                action,
                "duplicate_worker_id",
                now,
                worker_id,
                f"worker id {worker_id!r} was issued or registered before",
            )

        manifest: dict[str, Any] = {
            "worker_id": worker_id,
            "parent_id": parent_id,
            "depth": child_depth,
            "state_snapshot": snapshot,
            "issued_at": now,
            "resources": resources,
            "signature": "",
        }
        signature = key.private.sign(signing_payload(manifest))
        manifest["signature"] = f"ed25519:{key.key_id}:{signature.hex()}"
        self.issued_ids[worker_id] = now
        self._record(action, now, True, OK, worker_id, [("manifest_issued", worker_id)])
        return manifest

    def _verify(self, manifest: dict[str, Any]) -> str | None:
        """Return why the signature is bad, or None when it verifies."""
        text = manifest.get("signature")
        if not isinstance(text, str):
            return f"a signature is a string, got {type(text).__name__}"
        match = _SIGNATURE.fullmatch(text)
        if match is None:
            shown = text if len(text) <= 40 else text[:37] + "..."
            return f"malformed signature {shown!r}: expected 'ed25519:<16 hex>:<128 hex>'"
        try:
            self.public_key.verify(bytes.fromhex(match[2]), signing_payload(manifest))
        except InvalidSignature:
            return "signature does not verify under this key"
        return None

    def register_worker(self, manifest: dict[str, Any], *, now: datetime) -> None:
        action = "register_worker"
        now = _check_now(now)
        if not isinstance(manifest, dict):
            raise TypeError(f"manifest must be a manifest dict, got {manifest!r}")
        registry = self.registry
        worker_id = manifest["worker_id"]

        if self.kill_switch_engaged:
            self._deny(action, "kill_switch", now, worker_id, "the kill switch is engaged")
        problem = self._verify(manifest)
        if problem is not None:
            self._deny(action, "bad_signature", now, worker_id, problem)
        if worker_id in self.registered_ids:
            self._deny(
                action, "replay", now, worker_id, f"worker id {worker_id!r} was registered before"
            )
        if manifest["issued_at"] - now > self.clock_skew:
            self._deny(
                action,
                "issued_in_future",
                now,
                worker_id,
                f"issued_at {manifest['issued_at'].isoformat()} is more than "
                f"{self.clock_skew_seconds}s after now {now.isoformat()}",
            )
        parent_id = manifest["parent_id"]
        expected_depth = 0
        if parent_id is not None:
            parent = registry.get(parent_id)
            if parent is None:
                self._deny(
                    action,
                    "parent_unknown",
                    now,
                    worker_id,
                    f"parent {parent_id!r} is not registered",
                )
            if parent_id in self.quarantined:
                self._deny(
                    action,
                    "parent_quarantined",
                    now,
                    worker_id,
                    f"parent {parent_id!r} is quarantined",
                )
            expected_depth = parent["manifest"]["depth"] + 1
        if manifest["depth"] != expected_depth:
            self._deny(
                action,
                "depth_mismatch",
                now,
                worker_id,
                f"manifest depth {manifest['depth']}, derived depth {expected_depth}",
            )
        if expected_depth > self.max_depth:
            self._deny(
                action,
                "depth_exceeded",
                now,
                worker_id,
                f"child depth {expected_depth} > max_depth {self.max_depth}",
            )
        if len(registry) >= self.max_replicas:
            self._deny(
                action,
                "quota",
                now,
                worker_id,
                f"registry holds {len(registry)} of max_replicas {self.max_replicas}",
            )
        if parent_id is not None:
            last_spawn = self.spawn_times.get(parent_id)
            if last_spawn is not None and now - last_spawn < self.cooldown:
                self._deny(
                    action,
                    "cooldown",
                    now,
                    worker_id,
                    f"parent {parent_id!r} registered a child "
                    f"{(now - last_spawn).total_seconds()}s ago, cooldown is "
                    f"{self.cooldown_seconds}s",
                )
        if self.stop_conditions:
            context = {"manifest": manifest, "active_count": len(registry), "system": self}
            for condition in self.stop_conditions:
                try:
                    fired = bool(condition.predicate(context))
                    detail = f"Stop condition triggered: {condition.name}"
                except Exception as error:  # noqa: BLE001 - fails closed, as the core does
                    fired = True
                    detail = f"Stop condition triggered: {condition.name} raised {error!r}"
                if fired:
                    self._deny(action, "stop_condition", now, worker_id, detail)

        registry[worker_id] = {"manifest": manifest, "last_heartbeat": now, "registered_at": now}
        self.registered_ids[worker_id] = now
        if parent_id is not None:
            self.spawn_times[parent_id] = now
        self._record(action, now, True, OK, worker_id, [("worker_registered", worker_id)])

    # -- containers ---------------------------------------------------------------------------

    def launch_worker(self, manifest: dict[str, Any], *, now: datetime) -> None:
        action = "launch_worker"
        now = _check_now(now)
        if not isinstance(manifest, dict):
            raise TypeError(f"manifest must be a manifest dict, got {manifest!r}")
        worker_id = manifest["worker_id"]
        if self.kill_switch_engaged:
            self._deny(action, "kill_switch", now, worker_id, "the kill switch is engaged")
        entry = self.registry.get(worker_id)
        if entry is None:
            self._deny(
                action, "unknown_worker", now, worker_id, f"worker {worker_id!r} is not registered"
            )
        if entry["manifest"] is not manifest and entry["manifest"] != manifest:
            self._deny(
                action,
                "manifest_mismatch",
                now,
                worker_id,
                f"the manifest differs from the one {worker_id!r} registered with",
            )
        if worker_id in self.quarantined:
            self._deny(
                action, "quarantined", now, worker_id, f"worker {worker_id!r} is quarantined"
            )
        if worker_id in self.containers:
            self._deny(
                action,
                "already_running",
                now,
                worker_id,
                f"a container for {worker_id!r} is already running",
            )
        self.containers[worker_id] = {
            "manifest": manifest,
            "resources": manifest["resources"],
            "status": "running",
            "started_at": now,
            "reason": None,
        }
        self._record(action, now, True, OK, worker_id, [("container_launched", worker_id)])

    def kill_worker(self, worker_id: str, *, reason: str, now: datetime) -> None:
        now = _check_now(now)
        worker_id = _check_worker_id(worker_id)
        reason = _check_reason(reason)
        containers = self.containers
        if worker_id not in containers:
            self._record(
                "kill_worker", now, True, reason, worker_id, [("container_kill_skipped", worker_id)]
            )
            return
        del containers[worker_id]
        self._record("kill_worker", now, True, reason, worker_id, [("container_killed", worker_id)])

    # -- liveness --------------------------------------------------------------------------------

    def heartbeat(self, worker_id: str, *, now: datetime) -> None:
        action = "heartbeat"
        now = _check_now(now)
        worker_id = _check_worker_id(worker_id)
        entry = self.registry.get(worker_id)
        if entry is None:
            self._deny(
                action, "unknown_worker", now, worker_id, f"worker {worker_id!r} is not registered"
            )
        if worker_id in self.quarantined:
            self._deny(
                action, "quarantined", now, worker_id, f"worker {worker_id!r} is quarantined"
            )
        entry["last_heartbeat"] = now
        self._record(action, now, True, OK, worker_id, [("heartbeat", worker_id)])

    def _remove(self, worker_ids: list[str]) -> list[tuple[str, str]]:
        effects: list[tuple[str, str]] = []
        containers = self.containers
        registry = self.registry
        quarantined = self.quarantined
        spawn_times = self.spawn_times
        for worker_id in worker_ids:
            if worker_id in containers:
                del containers[worker_id]
                effects.append(("container_killed", worker_id))
            del registry[worker_id]
            quarantined.pop(worker_id, None)
            spawn_times.pop(worker_id, None)
            effects.append(("worker_deregistered", worker_id))
        return effects

    def reap_stale_workers(self, *, timeout: timedelta, now: datetime) -> None:
        now = _check_now(now)
        if not isinstance(timeout, timedelta):
            raise TypeError(f"timeout must be a datetime.timedelta >= 0, got {timeout!r}")
        if timeout < timedelta(0):
            raise ValueError(f"timeout must be a datetime.timedelta >= 0, got {timeout!r}")
        stale = [
            worker_id
            for worker_id, entry in self.registry.items()
            if now - entry["last_heartbeat"] > timeout
        ]
        effects = self._remove(stale) if stale else []
        self._record("reap_stale_workers", now, True, "heartbeat_timeout", None, effects)

    def deregister_worker(self, worker_id: str, *, reason: str, now: datetime) -> None:
        action = "deregister_worker"
        now = _check_now(now)
        worker_id = _check_worker_id(worker_id)
        reason = _check_reason(reason)
        if worker_id not in self.registry:
            self._deny(
                action, "unknown_worker", now, worker_id, f"worker {worker_id!r} is not registered"
            )
        effects = self._remove([worker_id])
        self._record(action, now, True, reason, worker_id, effects)

    # -- kill switch and quarantine ----------------------------------------------------------------

    def engage_kill_switch(self, *, now: datetime, reason: str = "kill_switch") -> None:
        now = _check_now(now)
        reason = _check_reason(reason)
        effects = [("container_killed", worker_id) for worker_id in self.containers]
        effects.extend(("worker_deregistered", worker_id) for worker_id in self.registry)
        detail = (
            f"{len(self.containers)} containers killed, {len(self.registry)} workers deregistered"
        )
        self.containers.clear()
        self.registry.clear()
        self.quarantined.clear()
        self.spawn_times.clear()
        self.kill_switch_engaged = True
        self._record("engage_kill_switch", now, True, reason, None, effects, detail)

    def quarantine_worker(self, worker_id: str, *, reason: str, now: datetime) -> None:
        action = "quarantine_worker"
        now = _check_now(now)
        worker_id = _check_worker_id(worker_id)
        reason = _check_reason(reason)
        if worker_id not in self.registry:
            self._deny(
                action, "unknown_worker", now, worker_id, f"worker {worker_id!r} is not registered"
            )
        if worker_id in self.quarantined:
            self._deny(
                action,
                "already_quarantined",
                now,
                worker_id,
                f"worker {worker_id!r} is already quarantined",
            )
        self.quarantined[worker_id] = now
        self._record(action, now, True, reason, worker_id, [("worker_quarantined", worker_id)])

    def release_worker(self, worker_id: str, *, now: datetime) -> None:
        action = "release_worker"
        now = _check_now(now)
        worker_id = _check_worker_id(worker_id)
        if worker_id not in self.registry:
            self._deny(
                action, "unknown_worker", now, worker_id, f"worker {worker_id!r} is not registered"
            )
        if worker_id not in self.quarantined:
            self._deny(
                action,
                "not_quarantined",
                now,
                worker_id,
                f"worker {worker_id!r} is not quarantined",
            )
        del self.quarantined[worker_id]
        self._record(action, now, True, OK, worker_id, [("worker_released", worker_id)])
