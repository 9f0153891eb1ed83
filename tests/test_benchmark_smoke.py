"""The benchmark runs, and its mutable baseline decides exactly as the core does.

Structure only: no figure here is compared with a time limit (the targets are
ratios the benchmark prints, measured in one run).
"""

from __future__ import annotations

import gc
import json
import math
import re
from datetime import timedelta
from typing import Any

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from benchmarks import bench, heartbeat_floor
from benchmarks.machines import discover_machines
from benchmarks.mutable_baseline import (
    BaselineDenied,
    BaselineKey,
    BaselineSystem,
    StopRule,
    signing_payload,
)
from replication import transitions as core
from replication.errors import ReasonCode, ReplicationDenied
from replication.model import ReplicationContract, State, StopCondition
from replication.signing import sign_manifest
from tests.helpers import KEY, OTHER_KEY, RESOURCES, T0, seconds
from tests.process_helpers import needs_full_isolation

# -- the benchmark runs and reports every figure --------------------------------------------


class TinyMachine(RuleBasedStateMachine):
    """A throwaway machine: the benchmark's step counter must work with any machine."""

    @initialize()
    def start(self):
        self.total = 0

    @rule(amount=st.integers(0, 3))
    def add(self, amount):
        self.total += amount

    @rule()
    def reset(self):
        self.total = 0

    @invariant()
    def never_negative(self):
        assert self.total >= 0


MACHINE = f"{__name__}:TinyMachine"


@pytest.fixture(autouse=True, scope="module")
def _a_heap_of_our_own():
    """The benchmark collects garbage before each of its ~300 measurements; in a test
    worker whose heap holds every earlier test's objects each collection took ~0.1 s
    (41 s for the quick run, 2.6 s in a fresh process). Freeze what was there before:
    collections then look only at what this module makes."""
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(scope="module")
def quick_results() -> dict[str, Any]:
    return bench.run_benchmark(bench.Config.quick(sizes=(20, 100), machines=(MACHINE,)))


def positive(value: object) -> bool:
    return isinstance(value, float | int) and math.isfinite(value) and value > 0


def test_every_operation_is_measured_with_finite_positive_ratios(quick_results):
    assert quick_results["sizes"] == [20, 100]
    for size in quick_results["per_size"]:
        assert set(size["operations"]) == set(bench.OPERATIONS)
        assert positive(size["ed25519"]["sign_verify"]["median_us"])
        assert positive(size["ed25519"]["payload_bytes"])
        for row in size["operations"].values():
            for side in ("core", "baseline", "core_gc_off", "baseline_gc_off"):
                assert positive(row[side]["median_us"])
            assert positive(row["ratio_to_ed25519"])
            assert positive(row["ratio_to_baseline"])
        memory = size["memory"]
        assert positive(memory["core_per_worker"])
        assert positive(memory["baseline_per_worker"])
        assert positive(memory["ratio_to_baseline"])


def test_every_target_has_a_verdict(quick_results):
    targets = quick_results["targets"]
    names = " ".join(target["target"] for target in targets)
    for fragment in (
        "Ed25519",
        "heartbeat",
        "kill_worker",
        "reap",
        "kill switch",
        "memory",
        "steps/s",
    ):
        assert fragment in names
    for target in targets:
        assert target["verdict"] in {"PASS", "MISS"}
        assert positive(target["measured"]) or target["measured"] == 0


def test_the_state_machine_steps_are_counted(quick_results):
    (machine,) = quick_results["machines"]
    assert machine["status"] == "ok"
    assert machine["steps"] > 0
    assert positive(machine["steps_per_second"])


def test_a_missing_machine_is_reported_not_raised():
    result = bench.run_machine("no_such_module_anywhere:Machine", steps=10, step_count=5)
    assert result["status"] == "n/a (no machine)"


def test_the_property_suites_machines_are_found_and_timed():
    found = discover_machines()
    assert "properties.reference_machine:ReferenceMachine" in found
    result = bench.run_machine(
        "properties.reference_machine:ReferenceMachine", steps=5, step_count=5
    )
    assert result["status"] == "ok"
    assert positive(result["steps_per_second"])


def test_the_heartbeat_floor_prints_every_part_as_a_ratio(capsys):
    assert heartbeat_floor.main(["--size", "30", "--batch", "20", "--reps", "1"]) == 0
    out = capsys.readouterr().out
    for part in ("whole heartbeat", "registry.set", "audit event", "floor: sum", "target"):
        assert part in out
    assert len(re.findall(r"\d\.\d\dx baseline$", out, flags=re.MULTILINE)) == 8


def test_the_table_prints_and_the_results_are_json(quick_results):
    report = bench.format_report(quick_results)
    for label in bench.OPERATIONS.values():
        assert label in report
    for text in ("CPU:", "Python", "cryptography", "Ed25519 raw sign+verify", "Targets", "MISS"):
        assert text in report
    assert json.loads(json.dumps(quick_results, default=str))["sizes"] == [20, 100]


def test_the_command_line_prints_and_writes_json(tmp_path, capsys):
    path = tmp_path / "results.json"
    argv = ["--quick", "--sizes", "10,30", "--no-gc-off", "--json", str(path)]
    assert bench.main([*argv, "--machine", "no_such_module_anywhere:Machine"]) == 0
    out = capsys.readouterr().out
    assert "n/a (no machine)" in out
    assert "Targets" in out
    assert json.loads(path.read_text(encoding="utf-8"))["sizes"] == [10, 30]


# -- the mutable baseline makes the same decisions as the core ----------------------------------

BASE_KEY = BaselineKey(bytes(range(32)))
BASE_OTHER_KEY = BaselineKey(bytes(range(1, 33)))


def _halt_core(context):
    return "halt" in context.manifest.state_snapshot


def _boom_core(context):
    if "boom" in context.manifest.state_snapshot:
        raise RuntimeError("boom")
    return False


def _halt_base(context):
    return "halt" in context["manifest"]["state_snapshot"]


def _boom_base(context):
    if "boom" in context["manifest"]["state_snapshot"]:
        raise RuntimeError("boom")
    return False


CONTRACT = {"max_depth": 2, "max_replicas": 7, "cooldown_seconds": 10}


def _normal(
    *, action, at, allowed, reason, worker_id, effects, detail
) -> tuple[object, ...]:  # effects compared as a multiset: map iteration orders differ
    return (action, at, allowed, reason, worker_id, sorted(map(tuple, effects)), detail)


class CoreSide:
    """The scripted actions on the pure core; each returns the audit record it produced."""

    def __init__(self) -> None:
        conditions = (
            StopCondition("halt", "a snapshot asks to halt", _halt_core),
            StopCondition("boom", "a predicate that raises", _boom_core),
        )
        contract = ReplicationContract(**CONTRACT, stop_conditions=conditions)
        self.state = State.initial(contract, KEY.verifying_key)

    def _apply(self, call):
        try:
            outcome = call(self.state)
        except ReplicationDenied as denied:
            return _normal(**attrs.asdict(denied.event, recurse=False)), None
        self.state = outcome.state
        return _normal(**attrs.asdict(outcome.event, recurse=False)), outcome.manifest

    def issue(self, now, **kwargs):
        return self._apply(
            lambda s: core.issue_manifest(s, KEY, resources=RESOURCES, now=now, **kwargs)
        )

    def register(self, manifest, now):
        return self._apply(lambda s: core.register_worker(s, manifest, now=now))[0]

    def launch(self, manifest, now):
        return self._apply(lambda s: core.launch_worker(s, manifest, now=now))[0]

    def heartbeat(self, worker_id, now):
        return self._apply(lambda s: core.heartbeat(s, worker_id, now=now))[0]

    def kill(self, worker_id, now, reason="test"):
        return self._apply(lambda s: core.kill_worker(s, worker_id, reason=reason, now=now))[0]

    def reap(self, timeout, now):
        return self._apply(lambda s: core.reap_stale_workers(s, timeout=timeout, now=now))[0]

    def deregister(self, worker_id, now):
        return self._apply(lambda s: core.deregister_worker(s, worker_id, reason="gone", now=now))[
            0
        ]

    def quarantine(self, worker_id, now):
        return self._apply(lambda s: core.quarantine_worker(s, worker_id, reason="odd", now=now))[0]

    def release(self, worker_id, now):
        return self._apply(lambda s: core.release_worker(s, worker_id, now=now))[0]

    def kill_switch(self, now):
        return self._apply(lambda s: core.engage_kill_switch(s, now=now))[0]

    @staticmethod
    def forged(manifest):
        return sign_manifest(manifest, OTHER_KEY)

    @staticmethod
    def tampered(manifest):
        return attrs.evolve(manifest, state_snapshot={"changed": True})

    @staticmethod
    def worker_id(manifest):
        return manifest.worker_id


class BaselineSide:
    """The same actions on the mutable baseline."""

    def __init__(self) -> None:
        self.system = BaselineSystem(
            **CONTRACT,
            public_key_raw=BASE_KEY.public_raw,
            stop_conditions=(StopRule("halt", _halt_base), StopRule("boom", _boom_base)),
        )

    def _apply(self, call):
        before = len(self.system.audit)
        try:
            result = call(self.system)
        except BaselineDenied as denied:
            record, result = denied.record, None
        else:
            record = self.system.audit[-1]
        assert len(self.system.audit) == before + 1, "exactly one audit record per decision"
        return _normal(**record), result

    def issue(self, now, **kwargs):
        return self._apply(
            lambda s: s.issue_manifest(BASE_KEY, resources=RESOURCES, now=now, **kwargs)
        )

    def register(self, manifest, now):
        return self._apply(lambda s: s.register_worker(manifest, now=now))[0]

    def launch(self, manifest, now):
        return self._apply(lambda s: s.launch_worker(manifest, now=now))[0]

    def heartbeat(self, worker_id, now):
        return self._apply(lambda s: s.heartbeat(worker_id, now=now))[0]

    def kill(self, worker_id, now, reason="test"):
        return self._apply(lambda s: s.kill_worker(worker_id, reason=reason, now=now))[0]

    def reap(self, timeout, now):
        return self._apply(lambda s: s.reap_stale_workers(timeout=timeout, now=now))[0]

    def deregister(self, worker_id, now):
        return self._apply(lambda s: s.deregister_worker(worker_id, reason="gone", now=now))[0]

    def quarantine(self, worker_id, now):
        return self._apply(lambda s: s.quarantine_worker(worker_id, reason="odd", now=now))[0]

    def release(self, worker_id, now):
        return self._apply(lambda s: s.release_worker(worker_id, now=now))[0]

    def kill_switch(self, now):
        return self._apply(lambda s: s.engage_kill_switch(now=now))[0]

    @staticmethod
    def forged(manifest):
        copy = dict(manifest)
        signature = BASE_OTHER_KEY.private.sign(signing_payload(copy))
        copy["signature"] = f"ed25519:{BASE_OTHER_KEY.key_id}:{signature.hex()}"
        return copy

    @staticmethod
    def tampered(manifest):
        return {**manifest, "state_snapshot": {"changed": True}}

    @staticmethod
    def worker_id(manifest):
        return manifest["worker_id"]


def script(side) -> list[tuple[object, ...]]:
    """One story through every rule; returns every audit record, in order."""
    log: list[tuple[object, ...]] = []

    def at(n: float):
        return T0 + seconds(n)

    def issue(now, **kwargs):
        record, manifest = side.issue(now, **kwargs)
        log.append(record)
        return manifest

    def do(record):
        log.append(record)

    root = issue(at(0))
    do(side.register(root, at(0)))
    do(side.launch(root, at(0)))
    do(side.launch(root, at(0)))  # already_running
    child = issue(at(0), parent_id="w1")
    do(side.register(child, at(0)))
    issue(at(5), parent_id="w1")  # cooldown at issue
    late = issue(at(10), parent_id="w1")
    early = issue(at(10), parent_id="w1")
    do(side.register(late, at(10)))
    do(side.register(early, at(15)))  # cooldown at registration
    do(side.launch(early, at(15)))  # unknown_worker (never registered)
    grandchild = issue(at(20), parent_id="w2")
    do(side.register(grandchild, at(20)))
    issue(at(20), parent_id=side.worker_id(grandchild))  # depth_exceeded
    issue(at(20), parent_id="ghost")  # parent_unknown
    issue(at(20), worker_id="w1")  # duplicate_worker_id
    issue(at(20), depth=3)  # depth_mismatch
    do(side.register(child, at(21)))  # replay
    do(side.register(side.forged(issue(at(21))), at(21)))  # bad_signature (other key)
    do(side.register(side.tampered(issue(at(21))), at(21)))  # bad_signature (changed)
    do(side.register(issue(at(30)), at(21)))  # issued_in_future
    do(side.register(issue(at(21), state_snapshot={"halt": 1}), at(21)))  # stop_condition
    do(side.register(issue(at(21), state_snapshot={"boom": [1.5]}), at(21)))  # fails closed
    do(side.launch(side.tampered(child), at(22)))  # manifest_mismatch
    do(side.launch(child, at(22)))
    do(side.quarantine("w3", at(23)))
    do(side.quarantine("w3", at(23)))  # already_quarantined
    do(side.heartbeat("w3", at(23)))  # quarantined
    do(side.launch(late, at(23)))  # quarantined
    issue(at(40), parent_id="w3")  # parent_quarantined
    do(side.release("w3", at(24)))
    do(side.release("w3", at(24)))  # not_quarantined
    do(side.heartbeat("ghost", at(24)))  # unknown_worker
    do(side.heartbeat("w2", at(55)))
    do(side.kill("w1", at(50)))
    do(side.kill("w1", at(50)))  # container_kill_skipped
    do(side.quarantine("w1", at(50)))
    pending = issue(at(50))
    for n in range(3):  # fill the registry to max_replicas
        filler = issue(at(51 + n))
        do(side.register(filler, at(51 + n)))
        do(side.launch(filler, at(51 + n)))
    issue(at(60))  # quota at issue
    do(side.register(pending, at(60)))  # quota at registration
    do(side.reap(timedelta(seconds=29), at(80)))  # w1 (quarantined), w3, w5; fillers at the bound
    do(side.reap(timedelta(seconds=29), at(80)))  # nothing stale
    do(side.deregister("w2", at(81)))
    do(side.deregister("w2", at(81)))  # unknown_worker
    do(side.register(pending, at(82)))
    do(side.kill_switch(at(90)))
    do(side.kill_switch(at(91)))
    issue(at(92))  # kill_switch
    do(side.register(pending, at(92)))  # kill_switch
    do(side.launch(pending, at(92)))  # kill_switch
    return log


def test_the_baseline_decides_exactly_as_the_core():
    core_log = script(CoreSide())
    baseline_log = script(BaselineSide())
    assert len(core_log) == len(baseline_log)
    for step, (expected, got) in enumerate(zip(core_log, baseline_log, strict=True)):
        assert got == expected, f"step {step}"
    reasons = {record[3] for record in core_log if not record[2]}
    unreachable_here = {ReasonCode.EXPIRED, ReasonCode.NOT_RUNNING}
    assert reasons == {code.value for code in ReasonCode} - {c.value for c in unreachable_here}
    effects = {kind for record in core_log for kind, _ in record[5]}
    assert {"container_kill_skipped", "container_killed", "worker_deregistered"} <= effects


def test_the_baseline_signs_the_same_bytes_as_the_core():
    _, manifest = CoreSide().issue(T0, state_snapshot={"a": [1, 2.5, "x"], "b": None})
    _, copy = BaselineSide().issue(T0, state_snapshot={"a": [1, 2.5, "x"], "b": None})
    assert signing_payload(copy) == manifest.signing_payload
    assert copy["signature"] == manifest.signature  # Ed25519 is deterministic


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda side: side.heartbeat("w1", T0.replace(tzinfo=None)), ValueError),
        (lambda side: side.heartbeat(1, T0), TypeError),
        (lambda side: side.kill("w1", T0, reason=""), ValueError),
        (lambda side: side.reap(timedelta(seconds=-1), T0), ValueError),
        (lambda side: side.issue(T0, parent_id=""), ValueError),
        (lambda side: side.issue(T0, depth=True), TypeError),
        (lambda side: side.issue(T0, state_snapshot={"x": math.nan}), ValueError),
    ],
)
def test_the_baseline_refuses_the_same_bad_input(call, error):
    for side in (CoreSide(), BaselineSide()):
        with pytest.raises(error):
            call(side)


# -- the process backend's benchmark ----------------------------------------------------------


@needs_full_isolation
def test_the_process_benchmark_runs_and_leaves_nothing_alive(tmp_path, capsys):
    """`benchmarks/processes.py --quick` reports every figure and counts no survivor."""
    from benchmarks import processes

    assert processes.main(["--quick", "--json", str(tmp_path / "figures.json")]) == 0
    figures = json.loads((tmp_path / "figures.json").read_text())
    assert set(figures) == {"isolation", "load_before", "rates", "kill_switch", "faults",
                            "load_after"}  # fmt: skip
    assert figures["kill_switch"]["processes_after"] == 0
    # Nine daemonising workers of six processes each (bwrap, its init, two shells, two
    # sleeps), and a fork bomb.
    assert figures["kill_switch"]["processes_before"] >= 9 * 6
    assert figures["faults"]["processes_left_alive"] == 0
    assert all(rate > 0 for rate in figures["rates"].values())
    assert "previous_design_launches_per_second" in figures["rates"]
    assert "kill switch over 10 hostile workers" in capsys.readouterr().out
