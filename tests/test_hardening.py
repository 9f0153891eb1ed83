"""Regressions: each way an attacker fooled the reference model or its facade, refused.

Every test here failed before the hardening it names (issue 10): a crafted
object bypassed replay or depth limits, a re-entrant call lost the kill switch,
a race launched a container after the kill switch, a changed field still
verified, and bad arguments crashed with untyped errors.
"""

from __future__ import annotations

import contextlib
import inspect
import threading
from datetime import UTC, datetime, timedelta, timezone

import attrs
import pytest

from replication import (
    Controller,
    ManualClock,
    SandboxOrchestrator,
    StopCondition,
    StructuredLogger,
    Worker,
    transitions,
)
from replication.errors import (
    AuditError,
    InvalidInputError,
    InvalidTypeError,
    InvalidValueError,
    ReasonCode,
    ReentrancyError,
    ReplicationDenied,
)
from replication.invariants import check_state
from replication.model import Manifest, ReplicationContract, ResourceSpec, State
from replication.signing import sign_manifest
from tests.helpers import KEY, RESOURCES, T0, fresh, spawn


class LyingStr(str):
    """Same characters, another hash and equality: a dict lookup misses."""

    __slots__ = ()

    def __hash__(self) -> int:
        return 7

    def __eq__(self, other: object) -> bool:
        return other is self


class ZeroSum(int):
    """An int whose sums are all 0: ``depth + 1`` would stay at the root's depth."""

    def __add__(self, other: object) -> int:
        return 0

    __radd__ = __add__


def facade(contract: ReplicationContract | None = None, **kwargs: object):
    clock = ManualClock(T0)
    orchestrator = SandboxOrchestrator(clock=clock)
    controller = Controller(
        contract or ReplicationContract(max_depth=2, max_replicas=10, cooldown_seconds=0),
        KEY,
        orchestrator=orchestrator,
        clock=clock,
        **kwargs,  # type: ignore[arg-type]
    )
    return controller, orchestrator, clock


class TestCraftedValues:
    # Spec: R-TRUST-1, R-REGISTER-3.
    def test_a_str_subclass_cannot_replay_a_registered_manifest(self):
        """The same signed manifest with a lying worker id is a replay, not a new worker."""
        controller, orchestrator, _ = facade()
        manifest = controller.issue_manifest(None, None, {}, RESOURCES)
        controller.start_worker(manifest)
        twin = Manifest(
            LyingStr(manifest.worker_id), None, 0, {}, manifest.issued_at, RESOURCES,
            manifest.signature,
        )  # fmt: skip
        with pytest.raises(ReplicationDenied) as denied:
            controller.start_worker(twin)
        assert denied.value.reason is ReasonCode.REPLAY
        assert list(controller.registry) == ["w1"]
        assert list(orchestrator.containers) == ["w1"]
        assert type(twin.worker_id) is str

    # Spec: R-TRUST-1, R-DEPTH-2.
    def test_an_int_subclass_cannot_flatten_a_lineage(self):
        """A depth whose arithmetic lies is read as its plain value; max_depth holds."""
        state = fresh(max_depth=1, cooldown_seconds=0)
        root = sign_manifest(Manifest("root", None, ZeroSum(0), {}, T0, RESOURCES), KEY)
        state, _, _ = transitions.register_worker(state, root, now=T0)
        parent = "root"
        refusals = []
        for _ in range(5):  # five more generations, if the limit were fooled
            try:
                state, manifest = spawn(state, parent)
            except ReplicationDenied as denial:
                refusals.append(denial.reason)
                continue
            parent = manifest.worker_id
        assert refusals == [ReasonCode.DEPTH_EXCEEDED] * 4
        assert max(entry.depth for entry in state.registry.values()) == 1
        assert check_state(state) == []
        assert type(root.depth) is int

    # Spec: R-SIGN-9, R-TRUST-2.
    @pytest.mark.parametrize(
        "tamper",
        [
            lambda m: object.__setattr__(m, "resources", ResourceSpec(64, 1 << 20)),
            lambda m: object.__setattr__(m.resources, "cpu_limit", 64.0),
            lambda m: object.__setattr__(m.resources.network_policy, "allow_external", True),
            lambda m: object.__setattr__(m, "state_snapshot", Manifest(
                "x", None, 0, {"escalate": True}, T0, RESOURCES).state_snapshot),
            lambda m: object.__setattr__(m, "issued_at", T0 + timedelta(days=1)),
        ],
        ids=["resources", "cpu_limit", "network", "snapshot", "issued_at"],
    )  # fmt: skip
    def test_a_field_changed_after_signing_no_longer_verifies(self, tamper):
        """Verification checks the fields as they are now, not bytes cached at signing."""
        state = fresh()
        own = ResourceSpec(1.0, 512)  # tampered below: not the shared RESOURCES
        state, _, manifest = transitions.issue_manifest(state, KEY, resources=own, now=T0)
        assert manifest.signing_payload  # the bytes are computed, and cached
        tamper(manifest)
        with pytest.raises(ReplicationDenied) as denied:
            transitions.register_worker(state, manifest, now=T0)
        assert denied.value.reason is ReasonCode.BAD_SIGNATURE

    # Spec: R-TRUST-2.
    def test_a_field_swapped_for_a_subclass_after_construction_is_bad_input(self):
        state = fresh()
        state, _, manifest = transitions.issue_manifest(state, KEY, resources=RESOURCES, now=T0)
        object.__setattr__(manifest, "worker_id", LyingStr(manifest.worker_id))
        with pytest.raises(InvalidTypeError) as error:
            transitions.register_worker(state, manifest, now=T0)
        assert error.value.field == "manifest"

    # Spec: R-TRUST-2.
    def test_subclasses_of_the_models_records_are_refused(self):
        class Sneaky(ResourceSpec):
            pass

        with pytest.raises(InvalidTypeError) as error:
            Manifest("w1", None, 0, {}, T0, Sneaky(1, 64))
        assert error.value.field == "resources"

    # Spec: R-ID-1, R-ID-2.
    @pytest.mark.parametrize(
        "spoof", ["w1\u202egnp.exe", "w1\u2028audit: ok", "w\u200b1", "w\u2066x", "\ufeffw"]
    )
    def test_ids_that_spoof_a_log_line_are_refused(self, spoof):
        with pytest.raises(InvalidValueError) as error:
            Manifest(spoof, None, 0, {}, T0, RESOURCES)
        assert error.value.field == "worker_id"
        with pytest.raises(InvalidValueError) as error:
            transitions.kill_worker(fresh(), "w1", reason=f"ok{spoof}", now=T0)
        assert error.value.field == "reason"

    # Spec: R-TRUST-4.
    def test_snapshot_keys_that_collide_as_plain_strings_are_refused(self):
        with pytest.raises(InvalidValueError) as error:
            Manifest("w1", None, 0, {LyingStr("k"): 1, LyingStr("k"): 2}, T0, RESOURCES)
        assert "distinct" in str(error.value)


class TestBoundsAtConstruction:
    # Spec: R-TRUST-3.
    @pytest.mark.parametrize("field", ["cooldown_seconds", "clock_skew_seconds"])
    def test_durations_beyond_datetimes_range_are_refused_naming_the_limit(self, field):
        arguments = {"max_depth": 1, "max_replicas": 1, "cooldown_seconds": 0, field: 1e14}
        with pytest.raises(InvalidValueError) as error:
            ReplicationContract(**arguments)  # type: ignore[arg-type]
        assert error.value.field == field
        assert "315537897600" in str(error.value)

    # Spec: R-TRUST-3.
    def test_the_longest_duration_allowed_still_decides_without_overflow(self):
        longest = 315_537_897_600
        state = fresh(cooldown_seconds=longest, clock_skew_seconds=longest)
        state, parent = spawn(state)
        state, _ = spawn(state, parent.worker_id)
        with pytest.raises(ReplicationDenied) as denied:
            spawn(state, parent.worker_id, now=datetime.max.replace(tzinfo=UTC))
        assert denied.value.reason is ReasonCode.COOLDOWN

    # Spec: R-TRUST-3.
    def test_a_resource_beyond_floats_is_refused(self):
        with pytest.raises(InvalidValueError) as error:
            ResourceSpec(10**400, 64)
        assert error.value.field == "cpu_limit"

    # Spec: R-TRUST-3, R-TIME-2.
    def test_a_time_whose_utc_reading_overflows_is_refused(self):
        behind = datetime.max.replace(tzinfo=timezone(timedelta(hours=-5)))
        with pytest.raises(InvalidValueError) as error:
            Manifest("w1", None, 0, {}, behind, RESOURCES)
        assert error.value.field == "issued_at"

    # Spec: R-TRUST-3.
    def test_a_manual_clock_refuses_to_leave_the_representable_range(self):
        clock = ManualClock(datetime(9999, 12, 31, tzinfo=UTC))
        for step in (2**60, timedelta(days=2)):
            with pytest.raises(InvalidValueError) as error:
                clock.advance(step)
            assert error.value.field == "by"
        assert clock() == datetime(9999, 12, 31, tzinfo=UTC)

    # Spec: R-TRUST-2, R-TRUST-3.
    @pytest.mark.parametrize("name", transitions.__all__[1:])
    def test_every_transition_refuses_what_is_not_a_state(self, name):
        transition = getattr(transitions, name)
        values = {"now": T0, "reason": "r", "timeout": timedelta(0), "key": KEY,
                  "resources": RESOURCES, "worker_id": "w1", "manifest": None}  # fmt: skip
        parameters = list(inspect.signature(transition).parameters.values())[1:]
        arguments = {p.name: values[p.name] for p in parameters if p.default is p.empty}
        with pytest.raises(InvalidTypeError) as error:
            transition(object(), **arguments)
        assert error.value.field in {"state", "orchestrator"}

    # Spec: R-TRUST-3.
    def test_verify_manifest_refuses_what_is_not_a_manifest(self):
        controller, _, _ = facade()
        with pytest.raises(InvalidTypeError) as error:
            controller.verify_manifest({"worker_id": "w1"})  # type: ignore[arg-type]
        assert error.value.field == "manifest"


class TestReentrancy:
    # Spec: R-FACADE-1, R-FACADE-2, R-KILLSWITCH-2.
    def test_a_predicate_that_engages_the_kill_switch_is_never_undone(self):
        """The outer registration is decided again over the engaged switch."""
        holder: dict[str, Controller] = {}

        def panic(context):
            holder["c"].kill_switch()
            return False

        contract = ReplicationContract(
            max_depth=2, max_replicas=5, cooldown_seconds=0,
            stop_conditions=[StopCondition("panic", "engage the switch", panic)],
        )  # fmt: skip
        controller, orchestrator, _ = facade(contract)
        holder["c"] = controller
        manifest = controller.issue_manifest(None, None, {}, RESOURCES)
        with pytest.raises(ReplicationDenied) as denied:
            controller.start_worker(manifest)
        assert denied.value.reason is ReasonCode.KILL_SWITCH
        assert controller.kill_switch_engaged
        assert not controller.registry
        assert not orchestrator.containers
        assert check_state(controller.state) == []

    # Spec: R-FACADE-2.
    def test_a_predicate_that_keeps_changing_the_state_gives_up_changing_nothing(self):
        holder: dict[str, Controller] = {}

        def meddle(context):
            holder["c"].issue_manifest(None, None, {}, RESOURCES)
            return False

        contract = ReplicationContract(
            max_depth=2, max_replicas=50, cooldown_seconds=0,
            stop_conditions=[StopCondition("meddle", "issue on every call", meddle)],
        )  # fmt: skip
        controller, _, _ = facade(contract)
        holder["c"] = controller
        manifest = controller.issue_manifest(None, None, {}, RESOURCES, worker_id="root")
        with pytest.raises(ReentrancyError):
            controller.register_worker(manifest)
        assert "root" not in controller.registry

    # Spec: R-FACADE-1, R-KILLSWITCH-2.
    def test_a_clock_that_engages_the_kill_switch_during_a_kill_resurrects_nothing(self):
        """A standalone kill reads its clock before the state it commits over."""
        holder: dict[str, Controller] = {}
        ticks = ManualClock(T0)

        def clock():
            if holder.pop("armed", None):
                holder["c"].kill_switch()
            return ticks()

        orchestrator = SandboxOrchestrator(clock=clock)
        controller = Controller(
            ReplicationContract(max_depth=1, max_replicas=5, cooldown_seconds=0),
            KEY,
            orchestrator=orchestrator,
            clock=ticks,
        )
        holder["c"] = controller
        for _ in range(2):
            controller.start_worker(controller.issue_manifest(None, None, {}, RESOURCES))
        holder["armed"] = controller  # the next orchestrator clock reading engages it
        orchestrator.kill_worker("w1", "done")
        assert controller.kill_switch_engaged
        assert not orchestrator.containers
        assert check_state(controller.state) == []

    # Spec: R-FACADE-2, R-REGISTER-5.
    def test_a_predicate_that_calls_back_without_end_gives_up_at_the_nesting_bound(self):
        """Each evaluation registers the same manifest again: the calls nest until the bound
        refuses one (ReentrancyError), and no decision rests on it, so nothing is registered
        and no RecursionError is ever taken for the predicate's answer."""
        holder: dict[str, object] = {}

        def again(context):
            with contextlib.suppress(ReplicationDenied):
                holder["c"].register_worker(holder["m"])  # type: ignore[attr-defined]
            return False

        contract = ReplicationContract(
            max_depth=2, max_replicas=5, cooldown_seconds=0,
            stop_conditions=[StopCondition("again", "registers again", again)],
        )  # fmt: skip
        controller, _, _ = facade(contract)
        holder["c"] = controller
        holder["m"] = controller.issue_manifest(None, None, {}, RESOURCES)
        with pytest.raises(ReentrancyError) as refused:
            controller.register_worker(holder["m"])  # type: ignore[arg-type]
        assert "calls nested 4 deep" in str(refused.value.__cause__ or refused.value)
        assert not controller.registry
        trail = controller.logger.trail
        assert [event.action for event in trail] == ["issue_manifest"]

    # Spec: R-REGISTER-5.
    @pytest.mark.parametrize("exhausted", [RecursionError, MemoryError])
    def test_a_predicate_that_runs_out_of_stack_or_memory_denies_nothing(self, exhausted):
        """Running out of stack or memory says nothing about the registration (replay, deeper
        or shallower, may not run out): it propagates, and nothing is decided or audited."""

        def exhausts(context):
            raise exhausted

        contract = ReplicationContract(
            max_depth=2, max_replicas=5, cooldown_seconds=0,
            stop_conditions=[StopCondition("exhausts", "runs out", exhausts)],
        )  # fmt: skip
        controller, _, _ = facade(contract)
        manifest = controller.issue_manifest(None, None, {}, RESOURCES)
        with pytest.raises(exhausted):
            controller.register_worker(manifest)
        assert not controller.registry
        assert [event.action for event in controller.logger.trail] == ["issue_manifest"]
        with pytest.raises(exhausted):
            transitions.register_worker(
                State.initial(contract, KEY.verifying_key), manifest, now=T0
            )


class TestBinding:
    # Spec: R-FACADE-4.
    def test_a_launch_racing_the_first_bind_and_the_kill_switch_leaves_nothing(self):
        """The binding is read under the orchestrator's lock, so the launch is the controller's."""
        clock = ManualClock(T0)
        orchestrator = SandboxOrchestrator(clock=clock)
        controller = Controller(
            ReplicationContract(max_depth=1, max_replicas=5, cooldown_seconds=0), KEY, clock=clock
        )
        manifest = sign_manifest(Manifest("w1", None, 0, {}, T0, RESOURCES), KEY)
        with orchestrator._lock:  # the launch below must wait for the lock ...
            racer = threading.Thread(target=_launch_quietly, args=(orchestrator, manifest))
            racer.start()
            racer.join(0.2)  # ... after it has read what it reads without it
            controller._bind(orchestrator)
            controller.kill_switch()
        racer.join()
        assert controller.kill_switch_engaged
        assert not orchestrator.containers

    # Spec: R-FACADE-4, INV-NO-ORPHANS.
    def test_an_orchestrator_running_containers_is_not_bound(self):
        clock = ManualClock(T0)
        orchestrator = SandboxOrchestrator(clock=clock)
        orchestrator.launch_worker(sign_manifest(Manifest("w9", None, 0, {}, T0, RESOURCES), KEY))
        with pytest.raises(InvalidValueError) as error:
            Controller(
                ReplicationContract(max_depth=1, max_replicas=5, cooldown_seconds=0),
                KEY,
                orchestrator=orchestrator,
                clock=clock,
            )
        assert error.value.got == ["w9"]
        assert orchestrator._controller is None


class TestAuditSink:
    # Spec: R-FACADE-3.
    def test_a_failing_sink_reports_an_applied_issue_and_then_the_duplicate(self):
        controller, _, _ = facade(logger=FailingLogger())
        with pytest.raises(AuditError) as first:
            controller.issue_manifest(None, None, {}, RESOURCES, worker_id="w7")
        assert first.value.applied
        assert first.value.outcome.manifest.worker_id == "w7"
        assert "w7" in controller.controller_state.issued_ids
        with pytest.raises(AuditError) as retry:
            controller.issue_manifest(None, None, {}, RESOURCES, worker_id="w7")
        assert not retry.value.applied
        assert retry.value.denial.reason is ReasonCode.DUPLICATE_WORKER_ID
        assert "duplicate_worker_id" in str(retry.value)

    # Spec: R-FACADE-3, R-KILLSWITCH-2.
    def test_a_failing_sink_never_undoes_the_kill_switch(self):
        controller, _, _ = facade(logger=FailingLogger())
        with pytest.raises(AuditError):
            controller.kill_switch()
        assert controller.kill_switch_engaged


class TestWorker:
    # Spec: R-FACADE-3.
    def test_a_worker_whose_start_cannot_complete_is_not_left_running(self):
        logger = StructuredLogger()
        controller, orchestrator, _ = facade(logger=logger)
        manifest = controller.issue_manifest(None, None, {}, RESOURCES)

        def broken_log(event, **fields):
            if event == "worker_started":
                raise RuntimeError("disk full")
            StructuredLogger.log(logger, event, **fields)

        logger.log = broken_log  # type: ignore[method-assign]
        with pytest.raises(RuntimeError):
            Worker(manifest, controller.contract, controller, orchestrator)
        assert not orchestrator.containers
        assert not controller.registry

    # Spec: R-TRUST-3.
    def test_an_expiry_beyond_the_last_instant_does_not_crash_a_start(self):
        contract = ReplicationContract(
            max_depth=1, max_replicas=2, cooldown_seconds=0, expiration_seconds=1e9
        )
        clock = ManualClock(datetime(9999, 12, 1, tzinfo=UTC))
        orchestrator = SandboxOrchestrator(clock=clock)
        controller = Controller(contract, KEY, orchestrator=orchestrator, clock=clock)
        manifest = controller.issue_manifest(None, None, {}, RESOURCES)
        worker = Worker(manifest, contract, controller, orchestrator)
        assert worker.state.expires_at == datetime.max.replace(tzinfo=UTC)


class FailingLogger(StructuredLogger):
    def record(self, event, before=None, after=None):
        raise OSError("the audit disk is full")


def _launch_quietly(orchestrator: SandboxOrchestrator, manifest: Manifest) -> None:
    with contextlib.suppress(ReplicationDenied, InvalidInputError):
        orchestrator.launch_worker(manifest)


def test_states_built_by_hand_are_checked_as_a_whole():
    """A registry entry filed under another worker's id is refused (R-TRUST-1)."""
    state, manifest = spawn(fresh())
    entry = state.registry[manifest.worker_id]
    with pytest.raises(InvalidValueError) as error:
        attrs.evolve(state.controller, registry=state.registry.set("w2", entry))
    assert error.value.field == "registry['w2']"
    assert isinstance(State(state.controller), State)
