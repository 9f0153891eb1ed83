"""The scenarios and signing cases of the test vectors, recorded from the reference core.

Each scenario is written as a short script against a :class:`Recorder`, which
runs every action on the pure core and writes down the clock, the action, its
arguments, the decision and the observation after it. The scenarios are one per
rule family, plus a few seeded random programs over every action.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from replication import transitions as core
from replication.conformance.fixtures import NO_EXTERNAL_NETWORK, TAMPERABLE, tamper
from replication.conformance.vectors.jsonforms import (
    FORMAT,
    contract_to_json,
    manifest_to_json,
    observation_to_json,
)
from replication.encoding import format_timestamp, manifest_body
from replication.errors import BadSignatureError, ReplicationDenied
from replication.invariants import observe
from replication.model import Manifest, NetworkPolicy, ReplicationContract, ResourceSpec, State
from replication.signing import SigningKey, sign_manifest, verify_manifest

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["KEY", "KEY_SEED", "START", "Recorder", "scenarios", "signing_vectors"]

#: The vectors' controller key: a fixed, public RFC 8032 seed. Never use it for anything else.
KEY_SEED = bytes(range(32))
KEY = SigningKey.from_seed(KEY_SEED)
OTHER_KEY = SigningKey.from_seed(bytes(range(1, 33)))
START = datetime(2026, 1, 1, tzinfo=UTC)


def _time(moment: datetime) -> str:
    return format_timestamp(moment)


def _resources_json(resources: ResourceSpec) -> dict[str, Any]:
    body = manifest_body(Manifest("x", None, 0, {}, START, resources))
    resources_json: dict[str, Any] = body["resources"]  # type: ignore[assignment]
    return resources_json


# -- recording scenarios from the reference -------------------------------------------------------


class Recorder:
    """Runs actions on the reference core and writes them down as vector steps."""

    def __init__(self, name: str, description: str, contract: ReplicationContract) -> None:
        self.name = name
        self.description = description
        self.contract = contract
        self.state = State.initial(contract, KEY.verifying_key)
        self.now = START
        self.steps: list[dict[str, Any]] = []
        self.exercises: set[str] = set()
        #: Each issued manifest's step, by its signature: where a later manifest comes from.
        self.issued_at: dict[str, tuple[int, Manifest]] = {}

    def advance(self, seconds: float = 0, microseconds: int = 0) -> None:
        """Move the clock forward."""
        self.now += timedelta(seconds=seconds, microseconds=microseconds)

    def _record(
        self, action: str, arguments: dict[str, Any], run: Callable[[State], core.Outcome[State]]
    ) -> core.Outcome[State] | None:
        outcome: core.Outcome[State] | None
        reason: str | None
        try:
            outcome = run(self.state)
        except ReplicationDenied as denied:
            outcome, decision, reason = None, "denied", denied.reason.value
            self.exercises.add(f"denied:{reason}")
        else:
            self.state, decision, reason = outcome.state, "allowed", None
        self.exercises.add(action)
        expect: dict[str, Any] = {"decision": decision, "reason": reason}
        if outcome is not None and outcome.manifest is not None:
            expect["manifest"] = manifest_to_json(outcome.manifest)
            self.issued_at[outcome.manifest.signature] = (len(self.steps), outcome.manifest)
        expect["observation"] = observation_to_json(observe(self.state))
        self.steps.append(
            {"at": _time(self.now), "action": action, "args": arguments, "expect": expect}
        )
        return outcome

    def origin(self, manifest: Manifest) -> dict[str, Any]:
        """Say where ``manifest`` comes from, in words any signing scheme can follow.

        ``issued`` (the manifest the implementation returned at ``step``),
        ``tampered`` (these fields, with the signature the implementation gave at
        ``step``), ``signed`` by the ``controller`` or by ``another key``, or a
        literal ``signature`` value.
        """
        found = self.issued_at.get(manifest.signature)
        if found is not None:
            step, original = found
            return {"kind": "issued" if original == manifest else "tampered", "step": step}
        for key, by in ((KEY, "controller"), (OTHER_KEY, "another key")):
            try:
                verify_manifest(manifest, key.verifying_key)
            except BadSignatureError:
                continue
            return {"kind": "signed", "by": by}
        return {"kind": "signature", "value": manifest.signature}

    def issue(
        self,
        worker_id: str | None,
        parent_id: str | None = None,
        *,
        external_network: bool = False,
        snapshot: dict[str, Any] | None = None,
    ) -> Manifest | None:
        """Issue a manifest."""
        resources = ResourceSpec(0.5, 256, NetworkPolicy(allow_external=external_network))
        snapshot = snapshot or {}
        outcome = self._record(
            "issue",
            {
                "parent_id": parent_id,
                "worker_id": worker_id,
                "resources": _resources_json(resources),
                "state_snapshot": snapshot,
            },
            lambda s: core.issue_manifest(
                s,
                KEY,
                parent_id=parent_id,
                worker_id=worker_id,
                resources=resources,
                state_snapshot=snapshot,
                now=self.now,
            ),
        )
        return outcome.manifest if outcome else None

    def register(self, manifest: Manifest) -> bool:
        """Register a manifest (given in full in the vector, and by its origin)."""
        outcome = self._record(
            "register",
            {"manifest": manifest_to_json(manifest), "origin": self.origin(manifest)},
            lambda s: core.register_worker(s, manifest, now=self.now),
        )
        return outcome is not None

    def launch(self, manifest: Manifest) -> None:
        """Launch a registered worker's container."""
        self._record(
            "launch",
            {"manifest": manifest_to_json(manifest), "origin": self.origin(manifest)},
            lambda s: core.launch_worker(s, manifest, now=self.now),
        )

    def start(self, worker_id: str, parent_id: str | None = None) -> Manifest | None:
        """Issue, register and launch."""
        manifest = self.issue(worker_id, parent_id)
        if manifest is not None and self.register(manifest):
            self.launch(manifest)
        return manifest

    def heartbeat(self, worker_id: str) -> None:
        """Send a heartbeat."""
        self._record(
            "heartbeat",
            {"worker_id": worker_id},
            lambda s: core.heartbeat(s, worker_id, now=self.now),
        )

    def kill(self, worker_id: str) -> None:
        """Kill a container."""
        self._record(
            "kill",
            {"worker_id": worker_id},
            lambda s: core.kill_worker(s, worker_id, reason="vector", now=self.now),
        )

    def reap(self, timeout_seconds: float) -> None:
        """Reap stale workers."""
        timeout = timedelta(seconds=timeout_seconds)
        self._record(
            "reap",
            {"timeout_seconds": timeout_seconds},
            lambda s: core.reap_stale_workers(s, timeout=timeout, now=self.now),
        )

    def deregister(self, worker_id: str) -> None:
        """Deregister a worker, killing its container."""
        self._record(
            "deregister",
            {"worker_id": worker_id},
            lambda s: core.deregister_worker(s, worker_id, reason="vector", now=self.now),
        )

    def expire(self) -> None:
        """Remove the workers older than the contract's expiration."""
        self._record("expire", {}, lambda s: core.expire_workers(s, now=self.now))

    def kill_switch(self) -> None:
        """Engage the kill switch."""
        self._record("kill_switch", {}, lambda s: core.engage_kill_switch(s, now=self.now))

    def quarantine(self, worker_id: str) -> None:
        """Quarantine a worker."""
        self._record(
            "quarantine",
            {"worker_id": worker_id},
            lambda s: core.quarantine_worker(s, worker_id, reason="vector", now=self.now),
        )

    def release(self, worker_id: str) -> None:
        """Release a worker from quarantine."""
        self._record(
            "release",
            {"worker_id": worker_id},
            lambda s: core.release_worker(s, worker_id, now=self.now),
        )

    def to_json(self) -> dict[str, Any]:
        """Return the scenario file's content."""
        return {
            "format": FORMAT,
            "name": self.name,
            "description": self.description,
            "exercises": sorted(self.exercises),
            "contract": contract_to_json(self.contract),
            "key_seed": KEY_SEED.hex(),
            "public_key": KEY.verifying_key.raw.hex(),
            "start": _time(START),
            "steps": self.steps,
        }


def _contract(**overrides: Any) -> ReplicationContract:
    values: dict[str, Any] = {"max_depth": 2, "max_replicas": 4, "cooldown_seconds": 10.0}
    values.update(overrides)
    return ReplicationContract(**values)


def _hand_signed(worker_id: str, parent_id: str | None, depth: int, at: datetime) -> Manifest:
    return sign_manifest(Manifest(worker_id, parent_id, depth, {}, at, ResourceSpec(0.5, 256)), KEY)


def scenarios() -> list[Recorder]:
    """Record every hand-written scenario, and a few seeded random programs."""
    made = []

    r = Recorder(
        "lifecycle",
        "A root and a child are issued, registered, launched, heartbeat, "
        "killed; a second launch is refused.",
        _contract(),
    )
    root = r.start("root")
    r.advance(1)
    child = r.start("child", "root")
    r.advance(1)
    r.heartbeat("root")
    if root is not None:
        r.launch(root)
    r.kill("child")
    r.kill("never-existed")
    if child is not None:
        r.launch(child)
    made.append(r)

    r = Recorder(
        "kill_switch",
        "Engaging the kill switch kills every container and "
        "deregisters every worker; afterwards nothing grows again.",
        _contract(),
    )
    r.start("a")
    r.start("b")
    pending = r.issue("c")
    r.kill_switch()
    r.issue("d")
    if pending is not None:
        r.register(pending)
        r.launch(pending)
    r.heartbeat("a")
    r.kill_switch()
    made.append(r)

    r = Recorder(
        "depth",
        "Depth is derived from the registry: max_depth is reached, the next "
        "level is refused, and hand-signed manifests claiming another depth are "
        "refused.",
        _contract(max_depth=1, cooldown_seconds=0),
    )
    r.start("root")
    r.start("child", "root")
    r.issue("grandchild", "child")
    r.register(_hand_signed("liar", "root", 2, r.now))
    r.register(_hand_signed("deep", "child", 2, r.now))
    r.register(_hand_signed("rooted", None, 1, r.now))
    made.append(r)

    r = Recorder(
        "quota",
        "The registry never holds more than max_replicas workers, at issue "
        "and again at registration.",
        _contract(max_replicas=2),
    )
    first = r.issue("a")
    second = r.issue("b")
    third = r.issue("c")
    for manifest in (first, second, third):
        if manifest is not None:
            r.register(manifest)
    r.issue("d")
    made.append(r)

    r = Recorder(
        "cooldown",
        "A parent's children are cooldown_seconds apart: one microsecond "
        "short is refused, exactly at the boundary is allowed.",
        _contract(),
    )
    r.start("parent")
    r.start("first", "parent")
    r.advance(10, -1)
    r.issue("too-soon", "parent")
    r.advance(0, 1)
    early = r.issue("on-time", "parent")
    if early is not None:
        r.register(early)
    made.append(r)

    r = Recorder(
        "signatures",
        "A manifest changed in any field after signing, signed by "
        "another key, or carrying a placeholder signature is refused.",
        _contract(),
    )
    genuine = r.issue("w", snapshot={"task": "survey"})
    if genuine is not None:
        for field in TAMPERABLE:
            r.register(tamper(genuine, field))
        r.register(sign_manifest(attrs.evolve(genuine, signature=""), OTHER_KEY))
        r.register(attrs.evolve(genuine, signature="signed"))
        r.register(attrs.evolve(genuine, signature=""))
        r.register(genuine)
    made.append(r)

    r = Recorder(
        "replay_and_time",
        "A manifest registers once, ever; one issued further in "
        "the future than the clock skew is refused.",
        _contract(clock_skew_seconds=1.0),
    )
    once = r.start("once")
    if once is not None:
        r.register(once)
    r.register(_hand_signed("at-skew", None, 0, r.now + timedelta(seconds=1)))
    r.register(_hand_signed("beyond", None, 0, r.now + timedelta(seconds=1, microseconds=1)))
    r.issue("once")
    made.append(r)

    r = Recorder(
        "reap",
        "Workers silent for longer than the timeout are deregistered and "
        "their containers killed; exactly at the timeout they survive.",
        _contract(),
    )
    r.start("silent")
    r.advance(5)
    r.start("chatty")
    r.advance(25)
    r.reap(30)
    r.advance(0, 1)
    r.heartbeat("chatty")
    r.reap(30)
    made.append(r)

    r = Recorder(
        "quarantine",
        "A quarantined worker may not heartbeat, spawn or be launched, until released.",
        _contract(cooldown_seconds=0),
    )
    suspect = r.issue("suspect")
    if suspect is not None:
        r.register(suspect)
    r.quarantine("suspect")
    r.quarantine("suspect")
    r.heartbeat("suspect")
    r.issue("spawn", "suspect")
    if suspect is not None:
        r.launch(suspect)
    r.release("suspect")
    r.release("suspect")
    r.quarantine("ghost")
    r.heartbeat("suspect")
    made.append(r)

    r = Recorder(
        "launch", "Only a registered worker's own manifest is launched, once.", _contract()
    )
    unregistered = r.issue("a")
    if unregistered is not None:
        r.launch(unregistered)
        r.register(unregistered)
        bigger = attrs.evolve(unregistered.resources, cpu_limit=64.0)
        r.launch(sign_manifest(attrs.evolve(unregistered, resources=bigger, signature=""), KEY))
        r.launch(unregistered)
        r.launch(unregistered)
    made.append(r)

    r = Recorder(
        "stop_condition",
        "The contract's stop condition 'no_external_network' "
        "refuses a worker asking for unrestricted egress.",
        _contract(stop_conditions=[NO_EXTERNAL_NETWORK]),
    )
    open_manifest = r.issue("open", external_network=True)
    if open_manifest is not None:
        r.register(open_manifest)
    r.start("closed")
    r.issue("closed")
    r.issue("unknown-parent", "ghost")
    made.append(r)

    r = Recorder(
        "departures",
        "A departed worker leaves its parent's spawn time behind (a sibling within the "
        "cooldown is refused) and its id in the history (its manifest is a replay); expiry "
        "removes the old; generated ids skip every id used before.",
        _contract(max_replicas=5, expiration_seconds=60.0),
    )
    parent = r.start("parent")
    r.advance(1)
    child = r.start("child", "parent")
    r.advance(1)
    r.deregister("child")
    r.issue("sibling", "parent")
    r.deregister("ghost")
    if child is not None:
        r.register(child)
    r.advance(9)
    r.start("sibling", "parent")
    r.issue("w5")
    r.issue(None)
    r.advance(51)
    r.expire()
    r.advance(0, 1)
    r.expire()
    if parent is not None:
        r.register(parent)
    made.append(r)

    for seed in (1, 2, 3):
        made.append(_random_program(seed))
    return made


def _random_program(seed: int) -> Recorder:
    chooser = random.Random(seed)  # noqa: S311 - deterministic test data, not security
    r = Recorder(
        f"random_{seed}",
        f"A seeded random program (seed {seed}) over every action.",
        _contract(max_replicas=5, cooldown_seconds=2.0),
    )
    issued: list[Manifest] = []
    for serial in range(40):
        ids = sorted(r.state.registry) or ["none"]
        action = chooser.choice(
            [
                "issue",
                "register",
                "launch",
                "heartbeat",
                "kill",
                "reap",
                "quarantine",
                "release",
                "advance",
                "advance",
            ]
        )
        if action == "issue":
            parent = chooser.choice([None, *ids])
            manifest = r.issue(f"r{serial}", None if parent == "none" else parent)
            if manifest is not None:
                issued.append(manifest)
        elif action in {"register", "launch"} and issued:
            getattr(r, action)(chooser.choice(issued))
        elif action in {"heartbeat", "kill", "quarantine", "release"}:
            getattr(r, action)(chooser.choice(ids))
        elif action == "reap":
            r.reap(chooser.choice([3.0, 10.0]))
        else:
            r.advance(chooser.choice([0.5, 1.0, 2.0, 4.0]))
    if seed == 3:
        r.kill_switch()
    return r


# -- signing vectors ---------------------------------------------------------------------------


def signing_vectors() -> dict[str, Any]:
    """Return the signing vectors: exact payloads and signatures, and forgeries."""
    resources = ResourceSpec(0.5, 256, NetworkPolicy(allow_controller=True, allow_external=False))
    manifests = [
        Manifest("w1", None, 0, {}, START, resources),
        Manifest(
            "wörker-ü-\U0001f600",
            "parent:with|delimiters",
            3,
            {"nested": {"list": [1, 2.5, None, True, "x"], "empty": {}}, "é": "e\u0301"},
            START + timedelta(microseconds=123456),
            resources,
        ),
        Manifest(
            "numbers",
            None,
            0,
            {
                "int": 9007199254740991,
                "neg": -9007199254740991,
                "zero": -0.0,
                "tiny": 5e-324,
                "big": 1.7976931348623157e308,
                "e21": 1e21,
                "e20": 1e20,
                "frac": 0.1,
                "third": 1 / 3,
                "sci": 1e-7,
            },
            START,
            ResourceSpec(1e-6, 1, NetworkPolicy(allow_controller=False, allow_external=True)),
        ),
        Manifest(
            "order",
            None,
            0,
            {"b": 1, "a": 2, "\U0001f600": 3, "\ufb01": 4, "": 5},
            datetime(2099, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
            resources,
        ),
    ]
    cases = []
    for manifest in manifests:
        signed = sign_manifest(manifest, KEY)
        cases.append(
            {
                "manifest": manifest_to_json(signed),
                "payload_hex": signed.signing_payload.hex(),
                "signature": signed.signature,
                "valid": True,
            }
        )
    genuine = sign_manifest(manifests[1], KEY)
    forgeries = [
        tamper(genuine, "depth"),
        tamper(genuine, "state_snapshot"),
        attrs.evolve(genuine, signature=genuine.signature[:-2] + "00"),
        sign_manifest(manifests[1], OTHER_KEY),
        attrs.evolve(genuine, signature="signed"),
    ]
    for forged in forgeries:
        cases.append(
            {
                "manifest": manifest_to_json(forged),
                "payload_hex": forged.signing_payload.hex(),
                "signature": forged.signature,
                "valid": False,
            }
        )
    return {
        "format": FORMAT,
        "description": "Manifests signed with the test key: the exact signed bytes (DSSE v1 PAE "
        "of RFC 8785 JSON) and the signature string; 'valid' says whether the signature must "
        "verify under public_key.",
        "key_seed": KEY_SEED.hex(),
        "public_key": KEY.verifying_key.raw.hex(),
        "key_id": KEY.verifying_key.key_id,
        "payload_type": "replication.manifest.v1",
        "cases": cases,
    }
