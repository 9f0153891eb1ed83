"""Concurrent programs: what each client of a concurrent history does, and doing it.

A :class:`Scenario` is a contract and a few rounds; a :class:`Round` moves the
clock and then gives each client a short program of :class:`Step` s, which
the clients run at the same time. :func:`generate` draws scenarios from a
seeded ``random.Random`` (a concurrent run is not a Hypothesis test: the same
program can give different histories, so the kit records what happened and
minimises the history, not the program). The steps are the kit's actions on
a small pool of worker ids, so calls collide: a client launches a worker
another registered, a kill switch lands among launches, registrations race
for the last slot of the quota, a manifest is registered twice.

:func:`perform` runs one client's program for one round against an adapter
and records every call (it runs in a thread of the kit's process or in a
client process). A step that needs a manifest uses one issued in an earlier
round, or earlier by the same client; the reference model is given the
manifest the reference would have issued (same fields, same key), the
implementation its own.
"""

from __future__ import annotations

import time
from datetime import timedelta
from functools import partial
from typing import TYPE_CHECKING, Any

import attrs

from replication.conformance.adapters.adapter import Denied
from replication.conformance.concurrent.history import (
    ALLOWED,
    CRASHED,
    DENIED,
    OBSERVED,
    Call,
    resources,
)
from replication.conformance.fixtures import KEY, TICK
from replication.errors import ReplicationDenied
from replication.invariants import Observation
from replication.model import Manifest
from replication.signing import sign_manifest

if TYPE_CHECKING:
    import random
    from collections.abc import Callable
    from datetime import datetime

    from replication.conformance.adapters.adapter import Implementation

__all__ = ["KINDS", "Round", "Scenario", "Step", "generate", "perform", "reference_manifest"]

#: Step kinds and the calls each makes.
KINDS: dict[str, str] = {
    "start": "issue a root, register it, launch it (stopping at the first refusal)",
    "prepare": "issue a root and register it, leaving the launch to a later round",
    "child": "issue a child of a known worker, register it, launch it",
    "launch": "launch a known worker with the manifest it was issued",
    "replay": "register a known worker's manifest again",
    "heartbeat": "send a heartbeat for a known worker",
    "kill": "kill a known worker's container",
    "quarantine": "quarantine a known worker",
    "release": "release a known worker",
    "reap": "reap the workers silent for longer than the heartbeat timeout",
    "kill_switch": "engage the kill switch",
}

#: Manifests issued so far: worker id -> (the implementation's, the reference's).
Manifests = dict[str, tuple[Manifest, Manifest]]


@attrs.frozen
class Step:
    """One step of a client's program: a kind, the worker it names, its parent, its egress."""

    kind: str
    worker_id: str | None = None
    parent_id: str | None = None
    external: bool = False


@attrs.frozen
class Round:
    """The clock moves by ``advance``, then every client runs its program at once."""

    advance: timedelta
    programs: tuple[tuple[Step, ...], ...]


@attrs.frozen
class Scenario:
    """A contract (the kit's ``start`` parameters) and the rounds to run under it."""

    parameters: dict[str, Any] = attrs.field(hash=False)
    rounds: tuple[Round, ...]


_WEIGHTS = {
    "start": 3, "child": 3, "prepare": 2, "launch": 4, "replay": 1, "heartbeat": 2,
    "kill": 1, "quarantine": 1, "release": 1, "reap": 1,
}  # fmt: skip


def generate(
    rng: random.Random, clients: int, *, rounds: int = 3, gaps: frozenset[str] = frozenset()
) -> Scenario:
    """Draw a scenario for ``clients`` clients: a first round that starts workers, then mixes.

    Two of every five scenarios engage the kill switch once, in a later round.
    Steps using an action in ``gaps`` (the adapter's declared gaps) are never drawn.
    """
    weights = {kind: weight for kind, weight in _WEIGHTS.items() if kind not in gaps}
    parameters = {
        "max_depth": rng.randint(1, 3),
        "max_replicas": rng.randint(2, 5),
        "cooldown_seconds": rng.choice([0.0, 1.0, 10.0]),
        "expiration_seconds": None,
        "clock_skew_seconds": 1.0,
        "stop_on_external_network": rng.random() < 0.3,
        "heartbeat_timeout_seconds": 5.0,
    }
    serial = 0
    known: list[str] = []

    def fresh() -> str:
        nonlocal serial
        serial += 1
        return f"k{serial}"

    drawn: list[Round] = []
    kill_switch_round = rng.randrange(1, rounds) if rounds > 1 and rng.random() < 0.4 else None
    if "kill_switch" in gaps:
        kill_switch_round = None
    for number in range(rounds):
        advance = (
            timedelta(0)
            if number == 0
            else rng.choice([timedelta(0), TICK, timedelta(seconds=1), timedelta(seconds=10),
                             timedelta(seconds=10) + TICK, timedelta(seconds=5) + TICK])
        )  # fmt: skip
        programs = []
        added: list[str] = []
        for _ in range(clients):
            mine = list(known)
            steps = []
            for _ in range(rng.randint(1, 2) if number == 0 else rng.randint(2, 4)):
                kind = (
                    rng.choice(["start", "prepare"])
                    if number == 0 or not mine
                    else rng.choices(list(weights), weights=list(weights.values()))[0]
                )
                external = rng.random() < 0.15
                if kind in {"start", "prepare"}:
                    step = Step(kind, fresh(), external=external)
                    mine.append(str(step.worker_id))
                elif kind == "child":
                    step = Step(kind, fresh(), rng.choice(mine), external=external)
                    mine.append(str(step.worker_id))
                elif kind == "reap":
                    step = Step(kind)
                else:
                    step = Step(kind, rng.choice(mine))
                steps.append(step)
            added += [w for w in mine if w not in known]
            programs.append(steps)
        if number == kill_switch_round:
            victim = rng.randrange(clients)
            programs[victim].insert(rng.randint(0, len(programs[victim])), Step("kill_switch"))
        known += added
        drawn.append(Round(advance, tuple(tuple(p) for p in programs)))
    return Scenario(parameters, tuple(drawn))


def reference_manifest(
    worker_id: str, parent: Manifest | None, *, parent_id: str | None, external: bool, now: datetime
) -> Manifest:
    """Return the manifest the reference issues for this call, given the parent's (if known)."""
    depth = 0 if parent_id is None else (parent.depth + 1 if parent is not None else 1)
    unsigned = Manifest(worker_id, parent_id, depth, {}, now, resources(external=external))
    return sign_manifest(unsigned, KEY)


class _Client:
    """One client's round: runs its steps, records its calls, keeps what it issued."""

    def __init__(
        self,
        implementation: Implementation,
        name: str,
        round_number: int,
        *,
        now: datetime,
        manifests: Manifests,
        reap_timeout: timedelta,
    ) -> None:
        self.implementation = implementation
        self.name = name
        self.round = round_number
        self.now = now
        self.manifests = manifests
        self.reap_timeout = reap_timeout
        self.calls: list[Call] = []
        self.issued: Manifests = {}

    def record(self, action: str, invoke: Callable[[], object], **fields: Any) -> object:
        """Make one call and record it; return its result (``None`` unless allowed)."""
        invoked = time.monotonic_ns()
        result: object = None
        reason: str | None = None
        try:
            result = invoke()
        except Denied as denied:
            outcome, reason = DENIED, None if denied.reason is None else str(denied.reason)
        except ReplicationDenied as denied:
            outcome, reason = DENIED, denied.reason.value
        except Exception as error:  # noqa: BLE001 - an implementation's crash is a finding
            outcome, reason = CRASHED, f"{type(error).__name__}: {error}"
        else:
            outcome = ALLOWED
        returned = time.monotonic_ns()
        call = Call(self.name, self.round, action, self.now, invoked, returned, outcome, reason,
                    **fields)  # fmt: skip
        self.calls.append(call)
        return result if outcome == ALLOWED else None

    @property
    def allowed(self) -> bool:
        """Whether the last call was allowed."""
        return self.calls[-1].outcome == ALLOWED

    @property
    def crashed(self) -> bool:
        """Whether the last call crashed (which ends the program)."""
        return bool(self.calls) and self.calls[-1].outcome == CRASHED

    def known(self, worker_id: str | None) -> tuple[Manifest, Manifest] | None:
        """Return the manifests of ``worker_id``, if issued before (or by this client)."""
        return self.issued.get(str(worker_id)) or self.manifests.get(str(worker_id))

    def grow(self, step: Step) -> None:
        """Issue, register and launch (``prepare``: no launch), stopping at the first refusal."""
        worker_id, parent_id, external = str(step.worker_id), step.parent_id, step.external
        parent = self.known(parent_id)
        wanted = resources(external=external)
        mine = self.record(
            "issue", partial(self.implementation.issue, parent_id, worker_id, wanted, {}),
            worker_id=worker_id, parent_id=parent_id, external=external,
        )  # fmt: skip
        if self.allowed and not isinstance(mine, Manifest):
            message = f"issue returned {mine!r}, not a Manifest"
            self.calls[-1] = attrs.evolve(self.calls[-1], outcome=CRASHED, reason=message)
        if not isinstance(mine, Manifest) or not self.allowed:
            return
        reference = reference_manifest(
            worker_id, parent[1] if parent else None,
            parent_id=parent_id, external=external, now=self.now,
        )  # fmt: skip
        self.issued[worker_id] = (mine, reference)
        self.record("register", partial(self.implementation.register, mine),
                    worker_id=worker_id, parent_id=parent_id, manifest=reference)  # fmt: skip
        if self.allowed and step.kind != "prepare":
            self.record("launch", partial(self.implementation.launch, mine),
                        worker_id=worker_id, manifest=reference)  # fmt: skip

    def reuse(self, step: Step) -> None:
        """Launch, or register again, a known worker with the manifest it was issued."""
        pair = self.known(step.worker_id)
        if pair is None:
            return
        mine, reference = pair
        if step.kind == "launch":
            self.record("launch", partial(self.implementation.launch, mine),
                        worker_id=step.worker_id, manifest=reference)  # fmt: skip
        else:
            self.record("register", partial(self.implementation.register, mine),
                        worker_id=step.worker_id, parent_id=reference.parent_id,
                        manifest=reference)  # fmt: skip

    def run(self, steps: tuple[Step, ...]) -> None:
        """Run ``steps`` in order; a crash ends the program."""
        implementation = self.implementation
        for step in steps:
            if step.kind in {"start", "prepare", "child"}:
                self.grow(step)
            elif step.kind in {"launch", "replay"}:
                self.reuse(step)
            elif step.kind == "reap":
                self.record("reap", partial(implementation.reap, self.reap_timeout),
                            timeout=self.reap_timeout)  # fmt: skip
            elif step.kind == "kill_switch":
                self.record("kill_switch", implementation.kill_switch)
            else:
                method = getattr(implementation, step.kind)
                self.record(step.kind, partial(method, step.worker_id), worker_id=step.worker_id)
            if self.crashed:
                return


def perform(
    implementation: Implementation,
    client: str,
    round_number: int,
    steps: tuple[Step, ...],
    *,
    now: datetime,
    manifests: Manifests,
    reap_timeout: timedelta,
) -> tuple[list[Call], Manifests]:
    """Run one client's steps for one round; return its calls and the manifests it issued.

    A crash ends the program: the kit reports it.
    """
    player = _Client(implementation, client, round_number, now=now, manifests=manifests,
                     reap_timeout=reap_timeout)  # fmt: skip
    player.run(steps)
    return player.calls, player.issued


def observe_call(
    implementation: Implementation, client: str, round_number: int, now: datetime
) -> Call:
    """Observe the implementation and record the observation as a call."""
    invoked = time.monotonic_ns()
    try:
        observation: object = implementation.observe()
    except Exception as error:  # noqa: BLE001 - an implementation's crash is a finding
        returned = time.monotonic_ns()
        message = f"{type(error).__name__}: {error}"
        return Call(client, round_number, "observe", now, invoked, returned, CRASHED, message)
    returned = time.monotonic_ns()
    if not isinstance(observation, Observation):
        message = f"observe() returned {observation!r}, not an Observation"
        return Call(client, round_number, "observe", now, invoked, returned, CRASHED, message)
    return Call(
        client, round_number, "observe", now, invoked, returned, OBSERVED,
        observation=observation,
    )  # fmt: skip
