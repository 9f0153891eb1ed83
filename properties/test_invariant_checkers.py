"""Every invariant checker, given faulty observations and steps: each fault is found.

The machines run correct implementations, on which no checker ever fires; a
checker weakened by a mistake would pass them all. So each property here draws
a valid observation (a fleet with consistent depths, times, containers,
quarantine and history), checks that the whole catalogue passes it, then plants
one fault a faulty implementation could make and checks that exactly the right
invariant reports it, naming the worker, and that the boundary case next to the
fault (depth equal to ``max_depth``, children exactly ``cooldown`` apart, a
heartbeat exactly at the reap's cutoff) passes.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from replication.conformance.fixtures import KEY, tamper
from replication.conformance.strategies import CLOCK_START
from replication.invariants import (
    INVARIANTS,
    Invariant,
    Observation,
    Policy,
    Step,
    Violation,
    WorkerView,
    check_observation,
    check_step,
)
from replication.model import Event, Manifest, ReplicationContract, ResourceSpec
from replication.signing import sign_manifest

TICK = timedelta(microseconds=1)

#: Each fault is planted the same way in every fleet, so a few dozen fleets
#: cover every branch; the machines' long runs are not needed here.
checks = settings(max_examples=40)


@st.composite
def contracts(draw: st.DrawFn) -> ReplicationContract:
    return ReplicationContract(
        max_depth=draw(st.integers(1, 3)),
        max_replicas=draw(st.integers(2, 6)),
        cooldown_seconds=draw(st.sampled_from([1.0, 10.0])),
    )


@st.composite
def fleets(draw: st.DrawFn, contract: ReplicationContract) -> Observation:
    """A valid observation: a forest within the contract, times consistent with it, and
    room for one more worker (so that a fault adding one breaks nothing else)."""
    workers: dict[str, WorkerView] = {}
    now = CLOCK_START
    count = draw(st.integers(1, contract.max_replicas - 1))
    for number in range(count):
        candidates = [w for w in workers.values() if w.depth < contract.max_depth]
        parent = draw(st.sampled_from([None, *candidates])) if candidates else None
        # Siblings are at least the cooldown apart; roots may come at the same moment.
        pause = contract.cooldown if parent is not None else timedelta(0)
        now += pause + timedelta(seconds=draw(st.integers(0, 3)))
        worker_id = f"w{number}"
        if parent is not None:
            workers[parent.worker_id] = attrs.evolve(parent, last_child_registered_at=now)
        workers[worker_id] = WorkerView(
            worker_id,
            None if parent is None else parent.worker_id,
            0 if parent is None else parent.depth + 1,
            registered_at=now,
            last_heartbeat=now + timedelta(seconds=draw(st.integers(0, 5))),
        )
    ids = sorted(workers)
    # Any order: a checker must not rely on the order an implementation lists workers in.
    order = draw(st.permutations(ids))
    return Observation(
        {worker_id: workers[worker_id] for worker_id in order},
        frozenset(draw(st.lists(st.sampled_from(ids), unique=True))),
        False,
        quarantined=frozenset(draw(st.lists(st.sampled_from(ids), unique=True))),
        registered_ever=frozenset(ids) | {"gone"},
    )


@st.composite
def cases(draw: st.DrawFn) -> tuple[ReplicationContract, Observation]:
    contract = draw(contracts())
    return contract, draw(fleets(contract))


def violations(observation: Observation, contract: ReplicationContract) -> list[Violation]:
    return check_observation(observation, Policy(contract, KEY.verifying_key))


def step_violations(
    before: Observation, step: Step, after: Observation, contract: ReplicationContract
) -> list[Violation]:
    return check_step(before, step, after, Policy(contract, KEY.verifying_key))


def only(invariant: str, found: list[Violation]) -> list[Violation]:
    return [violation for violation in found if violation.invariant == invariant]


def with_worker(observation: Observation, view: WorkerView, **changes: Any) -> Observation:
    workers = {**observation.workers, view.worker_id: view}
    ever = (observation.registered_ever or frozenset()) | {view.worker_id}
    return attrs.evolve(observation, workers=workers, registered_ever=ever, **changes)


def step(action: str, now: Any = CLOCK_START, *, allowed: bool = True, **fields: Any) -> Step:
    return Step(action, now, allowed, fields.pop("reason", "ok"), **fields)


# -- the generator itself: the valid fleets pass ----------------------------------------------


@checks
@given(cases())
def test_valid_fleets_pass_every_state_form(case):
    contract, fleet = case
    assert violations(fleet, contract) == []
    assert step_violations(fleet, step("heartbeat"), fleet, contract) == []


# -- state forms --------------------------------------------------------------------------------


# Spec: R-DEPTH-1, R-DEPTH-2.
@checks
@given(cases(), st.data())
def test_depth_faults(case, data):
    contract, fleet = case
    limit = contract.max_depth
    at_limit = WorkerView("edge", "ghost", limit)
    assert violations(with_worker(fleet, at_limit), contract) == []
    deep = WorkerView("deep", "ghost", limit + 1)
    assert violations(with_worker(fleet, deep), contract) == [
        Violation("INV-DEPTH", f"deep is at depth {limit + 1} > max_depth {limit}")
    ]
    depth = data.draw(st.integers(1, limit))
    root = WorkerView("rooty", None, depth)
    assert violations(with_worker(fleet, root), contract) == [
        Violation("INV-DEPTH", f"root rooty is at depth {depth}, not 0")
    ]
    parent = data.draw(st.sampled_from(sorted(fleet.workers.values(), key=lambda w: w.worker_id)))
    twin = WorkerView("twin", parent.worker_id, parent.depth)
    assert violations(with_worker(fleet, twin), contract) == [
        Violation(
            "INV-DEPTH",
            f"twin is at depth {parent.depth} but its parent {parent.worker_id} is at depth "
            f"{parent.depth}",
        )
    ]


# Spec: R-QUOTA-1.
@checks
@given(cases())
def test_quota_faults(case):
    contract, fleet = case
    full = fleet
    for extra in range(contract.max_replicas - len(fleet.workers)):
        full = with_worker(full, WorkerView(f"extra{extra}", None, 0))
    assert violations(full, contract) == []
    over = with_worker(full, WorkerView("one-too-many", None, 0))
    assert violations(over, contract) == [
        Violation(
            "INV-QUOTA",
            f"{contract.max_replicas + 1} workers registered > max_replicas "
            f"{contract.max_replicas}",
        )
    ]


# Spec: R-KILLSWITCH-1, R-KILLSWITCH-2.
@checks
@given(cases())
def test_kill_switch_faults(case):
    contract, fleet = case
    empty = Observation({}, frozenset(), True, quarantined=frozenset(), registered_ever=frozenset())
    assert violations(empty, contract) == []
    engaged = attrs.evolve(fleet, kill_switch_engaged=True, quarantined=frozenset())
    expected = [
        Violation("INV-KILL-SWITCH", f"kill switch engaged but {sorted(fleet.workers)} are "
                  "registered")
    ]  # fmt: skip
    if fleet.containers:
        expected.append(
            Violation("INV-KILL-SWITCH", f"kill switch engaged but containers "
                      f"{sorted(fleet.containers)} run")
        )  # fmt: skip
    assert violations(engaged, contract) == expected
    assert step_violations(empty, step("reap_stale_workers"), fleet, contract) == [
        Violation("INV-KILL-SWITCH", "reap_stale_workers disengaged the kill switch")
    ]
    assert step_violations(fleet, step("engage_kill_switch"), empty, contract) == []


# Spec: R-LAUNCH-1, R-DEREGISTER-1.
@checks
@given(cases())
def test_orphan_faults(case):
    contract, fleet = case
    orphaned = attrs.evolve(fleet, containers=fleet.containers | {"stray", "astray"})
    assert violations(orphaned, contract) == [
        Violation("INV-NO-ORPHANS", "containers ['astray', 'stray'] run without a registered "
                  "worker")
    ]  # fmt: skip


def signed_fleet(fleet: Observation) -> Observation:
    workers = {
        worker_id: attrs.evolve(
            view,
            manifest=sign_manifest(
                Manifest(
                    worker_id, view.parent_id, view.depth, {}, CLOCK_START, ResourceSpec(0.5, 256)
                ),
                KEY,
            ),
        )
        for worker_id, view in fleet.workers.items()
    }
    return attrs.evolve(fleet, workers=workers)


# Spec: R-SIGN-7.
@checks
@given(cases(), st.data())
def test_signature_faults(case, data):
    contract, fleet = case
    signed = signed_fleet(fleet)
    assert violations(signed, contract) == []
    victim = data.draw(st.sampled_from(sorted(signed.workers)))
    view = signed.workers[victim]
    assert view.manifest is not None
    forged = attrs.evolve(view, manifest=tamper(view.manifest, "memory_limit_mb"))
    broken = with_worker(signed, forged)
    # A worker reported without its manifest, listed first, does not hide the forgery.
    bare = WorkerView("bare", None, 0)
    broken = attrs.evolve(
        broken, workers={"bare": bare, **broken.workers},
        registered_ever=broken.registered_ever | {"bare"},
    )  # fmt: skip
    message = f"{victim}'s manifest does not verify: signature does not verify under this key"
    assert violations(broken, contract) == [Violation("INV-SIGNATURE", message)]
    # Without a key, nothing is claimed; the step form looks at arrivals only.
    assert check_observation(broken, Policy(contract)) == []
    before = attrs.evolve(broken, workers={w: v for w, v in broken.workers.items() if w != victim})
    arrival = step("register_worker")
    assert only("INV-SIGNATURE", step_violations(before, arrival, broken, contract)) == [
        Violation("INV-SIGNATURE", message)
    ]
    assert only("INV-SIGNATURE", step_violations(broken, arrival, broken, contract)) == []


def family(fleet: Observation) -> tuple[WorkerView, Observation]:
    """A parent of fleet's and an observation holding it without any child."""
    parent = WorkerView("parent", None, 0, registered_at=CLOCK_START, last_heartbeat=CLOCK_START)
    return parent, with_worker(fleet, parent)


# Spec: R-COOLDOWN-1, R-COOLDOWN-2.
@checks
@given(cases(), st.sampled_from([-TICK, timedelta(0)]))
def test_cooldown_faults(case, offset):
    contract, fleet = case
    parent, base = family(fleet)
    first = CLOCK_START + timedelta(seconds=1)
    second = first + contract.cooldown + offset
    children = [
        WorkerView("child-a", "parent", 1, registered_at=first, last_heartbeat=first),
        WorkerView("child-b", "parent", 1, registered_at=second, last_heartbeat=second),
    ]
    observed = with_worker(base, attrs.evolve(parent, last_child_registered_at=second))
    for child in children:
        observed = with_worker(observed, child)
    expected = []
    if offset:
        apart = (second - first).total_seconds()
        expected.append(
            Violation("INV-COOLDOWN", f"children of parent registered {apart}s apart < "
                      f"cooldown {contract.cooldown_seconds}s")
        )  # fmt: skip
    assert only("INV-COOLDOWN", violations(observed, contract)) == expected
    stale = with_worker(observed, attrs.evolve(parent, last_child_registered_at=first))
    assert only("INV-COOLDOWN", violations(stale, contract)) == [
        *expected,
        Violation(
            "INV-COOLDOWN",
            f"parent's last child registration {first.isoformat()} is earlier than a "
            f"registered child's {second.isoformat()}",
        ),
    ]
    # The step form: the second child arrives ``offset`` short of (or exactly at) the cooldown.
    before = with_worker(base, attrs.evolve(parent, last_child_registered_at=first))
    before = with_worker(before, children[0])
    after = with_worker(before, children[1])
    found = step_violations(before, step("register_worker", second), after, contract)
    if offset:
        gap = (second - first).total_seconds()
        assert found == [
            Violation("INV-COOLDOWN", f"child-b registered {gap}s after its sibling, cooldown "
                      f"is {contract.cooldown_seconds}s")
        ]  # fmt: skip
    else:
        assert found == []


# Spec: R-QUARANTINE-1, R-QUARANTINE-2.
@checks
@given(cases(), st.data())
def test_quarantine_faults(case, data):
    contract, fleet = case
    stray = attrs.evolve(fleet, quarantined=(fleet.quarantined or frozenset()) | {"nobody"})
    assert violations(stray, contract) == [
        Violation("INV-QUARANTINE", "['nobody'] are quarantined but not registered")
    ]
    suspect = data.draw(st.sampled_from(sorted(fleet.workers)))
    before = attrs.evolve(fleet, quarantined=frozenset({suspect}))
    view = before.workers[suspect]
    child = WorkerView("spawned", suspect, view.depth + 1)
    spawned = step_violations(before, step("register_worker"), with_worker(before, child),
                              contract)  # fmt: skip
    assert only("INV-QUARANTINE", spawned) == [
        Violation("INV-QUARANTINE", f"quarantined {suspect} spawned spawned")
    ]
    assert view.last_heartbeat is not None
    moved = view.last_heartbeat + timedelta(seconds=1)
    after = with_worker(before, attrs.evolve(view, last_heartbeat=moved))
    assert step_violations(before, step("kill_worker"), after, contract) == [
        Violation("INV-QUARANTINE", f"quarantined {suspect}'s last heartbeat moved to {moved}")
    ]
    beat = step("heartbeat", worker_id=suspect)
    assert step_violations(before, beat, before, contract) == [
        Violation("INV-QUARANTINE", f"quarantined {suspect}'s heartbeat was allowed")
    ]
    refused = step("heartbeat", allowed=False, reason="quarantined", worker_id=suspect)
    assert step_violations(before, refused, before, contract) == []
    # A quarantined id that was not registered before (a faulty implementation's
    # observation) registering now is a spawn-free arrival, not a crash of the checker.
    ghost = attrs.evolve(fleet, quarantined=frozenset({"ghost"}))
    arrival = with_worker(ghost, WorkerView("ghost", None, 0, last_heartbeat=CLOCK_START))
    assert only("INV-QUARANTINE", step_violations(ghost, step("register_worker"), arrival,
                                                  contract)) == []  # fmt: skip


# Spec: R-QUARANTINE-1, R-QUARANTINE-2.
@checks
@given(cases(), st.data())
def test_quarantine_boundaries(case, data):
    """Each clause of INV-QUARANTINE fires for the quarantined worker only, and only for what
    it forbids: next to each fault, the step it does not forbid passes."""
    contract, fleet = case
    suspect = data.draw(st.sampled_from(sorted(fleet.workers)))
    before = attrs.evolve(fleet, quarantined=frozenset({suspect}))
    view = before.workers[suspect]
    others = sorted(set(fleet.workers) - {suspect})
    # A child of a worker that is not quarantined registers: no spawn by the suspect.
    if others:
        other = before.workers[others[0]]
        child = WorkerView("spawned", other.worker_id, other.depth + 1)
        arrival = with_worker(before, child)
        assert only("INV-QUARANTINE", step_violations(before, step("register_worker"), arrival,
                                                      contract)) == []  # fmt: skip
        # Another worker's heartbeat is allowed and moves its own time only.
        assert other.last_heartbeat is not None
        beaten = with_worker(before, attrs.evolve(other, last_heartbeat=other.last_heartbeat
                                                  + timedelta(seconds=1)))  # fmt: skip
        beat = step("heartbeat", worker_id=other.worker_id)
        assert only("INV-QUARANTINE", step_violations(before, beat, beaten, contract)) == []
    # The suspect leaves the registry (deregistered, reaped): quarantine ends with it.
    gone = attrs.evolve(
        before,
        workers={w: v for w, v in before.workers.items() if w != suspect},
        quarantined=frozenset(),
        containers=before.containers - {suspect},
    )
    departure = step("deregister_worker", worker_id=suspect)
    assert only("INV-QUARANTINE", step_violations(before, departure, gone, contract)) == []
    # A last heartbeat the implementation did not report before says nothing about a move.
    unreported = with_worker(before, attrs.evolve(view, last_heartbeat=None))
    assert only("INV-QUARANTINE", step_violations(unreported, step("kill_worker"), before,
                                                  contract)) == []  # fmt: skip
    # Released in this step, the suspect's quarantine still held before it.
    released = attrs.evolve(before, quarantined=frozenset())
    spawned = with_worker(released, WorkerView("spawned", suspect, view.depth + 1))
    assert only("INV-QUARANTINE", step_violations(before, step("register_worker"), spawned,
                                                  contract)) == [
        Violation("INV-QUARANTINE", f"quarantined {suspect} spawned spawned")
    ]  # fmt: skip


# Spec: R-QUARANTINE-1, R-QUARANTINE-2, R-KIT-2.
@checks
@given(cases(), st.data())
def test_quarantine_unreported_blames_nothing(case, data):
    """An implementation that does not report its quarantine (``None``) is never blamed for
    one: a spawn, a moved heartbeat and an allowed heartbeat are all a quarantine allows."""
    contract, fleet = case
    unreported = attrs.evolve(fleet, quarantined=None)
    assert only("INV-QUARANTINE", violations(unreported, contract)) == []
    worker = data.draw(st.sampled_from(sorted(fleet.workers)))
    view = unreported.workers[worker]
    assert view.last_heartbeat is not None
    beaten = with_worker(
        unreported, attrs.evolve(view, last_heartbeat=view.last_heartbeat + timedelta(seconds=1))
    )
    beat = step("heartbeat", worker_id=worker)
    assert only("INV-QUARANTINE", step_violations(unreported, beat, beaten, contract)) == []
    spawned = with_worker(unreported, WorkerView("spawned", worker, view.depth + 1))
    arrival = step("register_worker", worker_id="spawned")
    assert only("INV-QUARANTINE", step_violations(unreported, arrival, spawned, contract)) == []


# Spec: R-REAP-1, R-DEREGISTER-1.
@checks
@given(cases(), st.sampled_from([-TICK, timedelta(0)]))
def test_reap_faults(case, offset):
    contract, fleet = case
    timeout = timedelta(seconds=30)
    silent = min(fleet.workers.values(), key=lambda w: (w.last_heartbeat, w.worker_id))
    assert silent.last_heartbeat is not None
    now = silent.last_heartbeat + timeout - offset
    kept = {w: v for w, v in fleet.workers.items() if v.last_heartbeat >= now - timeout}
    after = attrs.evolve(fleet, workers=kept, containers=fleet.containers & kept.keys())
    reap = step("reap_stale_workers", now, timeout=timeout)
    expected = []
    if offset:
        cutoff = now - timeout
        expected = [
            Violation("INV-REAP", f"{w.worker_id} survived the reap with last heartbeat "
                      f"{w.last_heartbeat.isoformat()} < {cutoff.isoformat()}")
            for w in fleet.workers.values()
            if w.last_heartbeat < cutoff
        ]  # fmt: skip
        after = fleet
    assert sorted(step_violations(fleet, reap, after, contract), key=str) == sorted(
        expected, key=str
    )
    # A reaped worker's container must go with it.
    gone = attrs.evolve(
        fleet,
        workers={w: v for w, v in fleet.workers.items() if w != silent.worker_id},
        containers=fleet.containers | {silent.worker_id},
    )
    late = step("reap_stale_workers", silent.last_heartbeat, timeout=timeout)
    assert step_violations(fleet, late, gone, contract) == [
        Violation("INV-REAP", f"reaped {silent.worker_id} still has a container")
    ]
    for other in (step("expire_workers", now, timeout=timeout),
                  step("reap_stale_workers", now, allowed=False, reason="kill_switch",
                       timeout=timeout),
                  step("reap_stale_workers", now)):  # fmt: skip
        assert [v for v in step_violations(fleet, other, fleet, contract)
                if v.invariant == "INV-REAP"] == []  # fmt: skip


# Spec: R-REGISTER-3.
@checks
@given(cases(), st.data())
def test_id_faults(case, data):
    contract, fleet = case
    forgotten = data.draw(st.sampled_from(sorted(fleet.workers)))
    history = attrs.evolve(fleet, registered_ever=fleet.registered_ever - {forgotten})
    assert violations(history, contract) == [
        Violation("INV-IDS", f"registered workers ['{forgotten}'] are missing from the "
                  "registration history")
    ]  # fmt: skip
    back = with_worker(fleet, WorkerView("gone", None, 0))
    assert step_violations(fleet, step("register_worker"), back, contract) == [
        Violation("INV-IDS", "gone was registered again")
    ]
    new = with_worker(fleet, WorkerView("new", None, 0))
    assert step_violations(fleet, step("register_worker"), new, contract) == []
    unknown = attrs.evolve(fleet, registered_ever=None)
    assert step_violations(unknown, step("register_worker"), back, contract) == []


# Spec: R-AUDIT-2.
@checks
@given(cases(), st.data())
def test_denial_that_changes_the_state(case, data):
    contract, fleet = case
    victim = data.draw(st.sampled_from(sorted(fleet.workers)))
    after = attrs.evolve(fleet, containers=fleet.containers ^ {victim})
    denied = step("launch_worker", allowed=False, reason="quota")
    assert step_violations(fleet, denied, after, contract) == [
        Violation("INV-DENIAL-NO-CHANGE", "launch_worker was denied (quota) but changed the state")
    ]
    assert step_violations(fleet, denied, fleet, contract) == []
    assert step_violations(fleet, step("launch_worker"), after, contract) == []


# Spec: R-AUDIT-1, R-AUDIT-3.
@checks
@given(cases(), st.data())
def test_audit_faults(case, data):
    contract, fleet = case
    victim = data.draw(st.sampled_from(sorted(fleet.workers)))
    after = attrs.evolve(
        fleet,
        workers={w: v for w, v in fleet.workers.items() if w != victim},
        containers=fleet.containers - {victim},
        quarantined=(fleet.quarantined or frozenset()) - {victim},
    )
    effects = [("container_killed", victim)] if victim in fleet.containers else []
    effects.append(("worker_deregistered", victim))
    event = Event("deregister_worker", CLOCK_START, True, "done", victim, tuple(effects))

    def audit(*events: Event, **fields: Any) -> list[Violation]:
        found = step_violations(
            fleet, step("deregister_worker", reason=fields.pop("reason", "done"),
                        events=events, **fields), after, contract,
        )  # fmt: skip
        return [v for v in found if v.invariant == "INV-AUDIT"]

    assert audit(event) == []
    assert audit() == [Violation("INV-AUDIT", "deregister_worker produced 0 audit events, not 1")]
    assert audit(event, event) == [
        Violation("INV-AUDIT", "deregister_worker produced 2 audit events, not 1")
    ]
    assert audit(attrs.evolve(event, reason="other")) == [
        Violation("INV-AUDIT", "deregister_worker's event records deregister_worker/True/other, "
                  "the step was deregister_worker/True/done")
    ]  # fmt: skip
    assert audit(attrs.evolve(event, reason=""), reason="") == [
        Violation("INV-AUDIT", "deregister_worker's event names no reason")
    ]
    silent = attrs.evolve(event, effects=())
    expected = [
        Violation("INV-AUDIT", f"deregister_worker: effects say worker_deregistered [], the "
                  f"state says ['{victim}']")
    ]  # fmt: skip
    if victim in fleet.containers:
        expected.append(
            Violation("INV-AUDIT", f"deregister_worker: effects say container_killed [], the "
                      f"state says ['{victim}']")
        )  # fmt: skip
    assert audit(silent) == expected
    for kind in ("worker_registered", "container_launched"):
        boasting = attrs.evolve(event, effects=(*event.effects, (kind, "phantom")))
        assert audit(boasting) == [
            Violation("INV-AUDIT", f"deregister_worker: effects say {kind} ['phantom'], the "
                      "state says []")
        ]  # fmt: skip
    assert step_violations(fleet, step("deregister_worker"), after, contract) == []


# Spec: R-PROC-9, R-KILLSWITCH-1.
@checks
@given(cases(), st.data())
def test_process_faults(case, data):
    contract, fleet = case
    assert violations(attrs.evolve(fleet, live_processes=fleet.containers), contract) == []
    stray = data.draw(st.sampled_from(sorted(fleet.workers)))
    alive = attrs.evolve(fleet, live_processes=fleet.containers | {stray, "ghost"})
    expected = sorted({stray, "ghost"} - fleet.containers)
    assert violations(alive, contract) == [
        Violation("INV-PROCESSES", f"workers {expected} have live processes but no running "
                  "container")
    ]  # fmt: skip
    empty = Observation({}, frozenset(), True, live_processes=frozenset({"ghost"}))
    assert only("INV-PROCESSES", violations(empty, contract)) == [
        Violation("INV-PROCESSES", "workers ['ghost'] have live processes but no running "
                  "container"),
        Violation("INV-PROCESSES", "kill switch engaged but ['ghost'] have live processes"),
    ]  # fmt: skip
    running = Observation({}, frozenset({"ghost"}), True, live_processes=frozenset({"ghost"}))
    assert only("INV-PROCESSES", violations(running, contract)) == [
        Violation("INV-PROCESSES", "kill switch engaged but ['ghost'] have live processes")
    ]


def test_a_violation_reads_as_its_id_and_message_and_each_invariant_has_its_rationale():
    assert str(Violation("INV-QUOTA", "9 workers registered > max_replicas 8")) == (
        "INV-QUOTA: 9 workers registered > max_replicas 8"
    )
    rationales = {invariant.id: invariant.rationale for invariant in INVARIANTS}
    assert rationales["INV-DEPTH"] == (
        "A lineage deeper than the contract allows is replication nobody sanctioned."
    )
    assert all(rationales.values())
    assert Invariant("INV-X", "nothing").rationale == ""
