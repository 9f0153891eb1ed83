"""The linearizability checker, its parts and its minimiser, on histories built by hand."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from replication.conformance.concurrent.history import ALLOWED, DENIED, OBSERVED, Call, History
from replication.conformance.concurrent.linearizability import (
    ModelSpec,
    check,
    parts_of,
    project,
    search,
    split,
)
from replication.conformance.concurrent.minimise import explain, first_failure, minimise
from replication.conformance.concurrent.programs import reference_manifest
from replication.conformance.fixtures import contract_from
from replication.conformance.strategies import CLOCK_START
from replication.invariants import Observation, WorkerView

PARAMETERS = {
    "max_depth": 2, "max_replicas": 3, "cooldown_seconds": 0.0, "expiration_seconds": None,
    "clock_skew_seconds": 1.0, "stop_on_external_network": False, "heartbeat_timeout_seconds": 5.0,
}  # fmt: skip


def manifest(worker_id: str, parent: str | None = None) -> Any:
    parent_manifest = reference_manifest(parent, None, parent_id=None, external=False,
                                         now=CLOCK_START) if parent else None  # fmt: skip
    return reference_manifest(
        worker_id, parent_manifest, parent_id=parent, external=False, now=CLOCK_START
    )


def call(  # noqa: PLR0917 - a test helper, positional like Call itself
    client: str,
    action: str,
    invoked: int,
    returned: int | None,
    outcome: str | None = ALLOWED,
    reason: str | None = None,
    **fields: Any,
) -> Call:
    if action in {"register", "launch"} and "manifest" not in fields:
        fields["manifest"] = manifest(fields["worker_id"], fields.get("parent_id"))
    return Call(client, fields.pop("round", 0), action, CLOCK_START, invoked, returned, outcome,
                reason, **fields)  # fmt: skip


def seen(*workers: str, containers: tuple[str, ...] = (), killed: bool = False) -> Observation:
    views = {w: WorkerView(w, None, 0) for w in workers}
    return Observation(views, frozenset(containers), killed)


def history(*calls: Call, **overrides: Any) -> History:
    contract, timeout = contract_from({**PARAMETERS, **overrides})
    return History(contract, timeout, tuple(calls))


def linearizable(h: History, mode: str = "reason") -> bool:
    return check(h, mode).linearizable


def commuting_heartbeats(count: int) -> History:
    """``count`` concurrent heartbeats (they commute), then an observation no order explains."""
    return history(
        call("t0", "register", 0, 1, worker_id="k1"),
        *[call(f"t{i}", "heartbeat", 2, 3, worker_id="k1") for i in range(1, count + 1)],
        call("kit", "observe", 4, 5, OBSERVED, observation=seen()),
    )


class TestSearch:
    """Wing & Gong's search with Lowe's memo, on the pure model."""

    # Spec: R-LIN-1.
    def test_a_sequential_history_of_model_responses_is_linearizable(self):
        h = history(
            call("t1", "register", 0, 1, worker_id="k1"),
            call("t1", "launch", 2, 3, worker_id="k1"),
            call("t1", "heartbeat", 4, 5, worker_id="k1"),
        )
        assert linearizable(h)

    # Spec: R-LIN-1.
    def test_real_time_order_binds_calls_that_did_not_overlap(self):
        """A launch invoked after the registration returned must see the worker registered."""
        registered_first = history(
            call("t1", "register", 0, 1, worker_id="k1"),
            call("t2", "launch", 2, 3, DENIED, "unknown_worker", worker_id="k1"),
        )
        overlapping = history(
            call("t1", "register", 0, 3, worker_id="k1"),
            call("t2", "launch", 1, 2, DENIED, "unknown_worker", worker_id="k1"),
        )
        assert not linearizable(registered_first)
        assert linearizable(overlapping)

    # Spec: R-LIN-1.
    def test_two_registrations_for_the_last_slot_cannot_both_win(self):
        both = history(
            call("t1", "register", 0, 2, worker_id="k1"),
            call("t2", "register", 1, 3, worker_id="k2"),
            max_replicas=1,
        )
        one = history(
            call("t1", "register", 0, 2, worker_id="k1"),
            call("t2", "register", 1, 3, DENIED, "quota", worker_id="k2"),
            max_replicas=1,
        )
        loser_first = history(
            call("t1", "register", 0, 2, DENIED, "quota", worker_id="k1"),
            call("t2", "register", 1, 3, worker_id="k2"),
            max_replicas=1,
        )
        assert not linearizable(both)
        assert linearizable(one)
        assert linearizable(loser_first)

    # Spec: R-LIN-1.
    def test_a_pending_call_may_take_effect_or_not(self):
        """A call with no response is placed after its invocation, or never."""
        took_effect = history(
            call("t1", "register", 0, None, None, worker_id="k1"),
            call("t2", "launch", 1, 2, worker_id="k1"),
        )
        never = history(
            call("t1", "register", 0, None, None, worker_id="k1"),
            call("t2", "launch", 1, 2, DENIED, "unknown_worker", worker_id="k1"),
        )
        assert linearizable(took_effect)
        assert linearizable(never)

    # Spec: R-LIN-4.
    def test_the_mode_decides_what_must_agree(self):
        wrong_reason = history(call("t1", "heartbeat", 0, 1, DENIED, "quarantined", worker_id="k9"))
        assert linearizable(wrong_reason, "decision")
        assert not linearizable(wrong_reason, "reason")
        wrong_view = history(
            call("t1", "register", 0, 1, worker_id="k1"),
            call("kit", "observe", 2, 3, OBSERVED, observation=seen()),
        )
        assert linearizable(wrong_view, "reason")
        assert not linearizable(wrong_view, "observation")

    # Spec: R-LIN-5.
    def test_the_memo_explores_subsets_not_orders(self):
        """Eight concurrent calls that commute: 2**8 configurations at most, not 8! orders."""
        h = commuting_heartbeats(8)
        result = search(ModelSpec(h, "observation"), h.calls)
        assert not result.linearizable
        assert result.configurations <= 2 + 2**8

    # Spec: R-LIN-5.
    def test_without_the_memo_the_search_walks_every_order(self):
        """The baseline the benchmark measures: plain Wing & Gong tries all 6! orders."""
        h = commuting_heartbeats(6)
        with_memo = search(ModelSpec(h, "observation"), h.calls)
        without = search(ModelSpec(h, "observation"), h.calls, memo=False)
        assert (with_memo.linearizable, without.linearizable) == (False, False)
        assert with_memo.configurations <= 2 + 2**6 < 720 <= without.configurations

    def test_a_failed_search_reports_its_longest_partial_order(self):
        h = history(
            call("t1", "register", 0, 1, worker_id="k1"),
            call("t1", "launch", 2, 3, DENIED, "unknown_worker", worker_id="k1"),
        )
        result = search(ModelSpec(h, "reason"), h.calls, collect=True)
        assert result.order == (0,)
        assert ((0,), 1) in result.dead_ends


class TestSplit:
    """P-compositionality: independent parts are checked apart, and only when that is sound."""

    def test_calls_sharing_a_key_share_a_part(self):
        assert split([frozenset({"a"}), frozenset({"b"}), frozenset({"a", "c"})]) == [[0, 2], [1]]
        assert split([frozenset({"a"}), None, frozenset({"b"})]) == [[0, 1, 2]]

    # Spec: R-LIN-5.
    def test_workers_that_never_meet_are_separate_parts(self):
        h = history(
            call("t1", "register", 0, 2, worker_id="k1"),
            call("t2", "register", 1, 3, worker_id="k2"),
            call("t1", "register", 4, 5, worker_id="k3", parent_id="k1",
                 manifest=manifest("k3", "k1")),
            call("kit", "observe", 6, 7, OBSERVED, observation=Observation(
                {**seen("k1", "k2").workers, "k3": WorkerView("k3", "k1", 1)}, frozenset(), False,
            )),
            max_replicas=5,
        )  # fmt: skip
        parts = parts_of(h)
        assert [frozenset({"k1", "k3"}), frozenset({"k2"})] == [keys for _, keys in parts]
        assert all(part.calls[-1].action == "observe" for part, _ in parts)
        verdict = check(h, "observation")
        assert (verdict.linearizable, verdict.parts) == (True, 2)

    # Spec: R-LIN-5.
    @pytest.mark.parametrize(
        ("extra", "why"),
        [
            (call("t3", "kill_switch", 1, 2), "the kill switch touches every worker"),
            (call("t3", "reap", 1, 2, timeout=timedelta(seconds=5)), "a reap reads every worker"),
            (call("obs", "observe", 1, 2, OBSERVED, observation=seen()), "read at one instant"),
        ],
    )
    def test_a_call_on_the_whole_fleet_keeps_one_part(self, extra, why):
        h = history(
            call("t1", "register", 0, 3, worker_id="k1"),
            call("t2", "register", 0, 3, worker_id="k2"),
            extra,
            max_replicas=5,
        )
        assert len(parts_of(h)) == 1, why

    # Spec: R-LIN-5.
    def test_a_quota_that_can_bind_keeps_one_part(self):
        calls = (
            call("t1", "register", 0, 2, worker_id="k1"),
            call("t2", "register", 1, 3, worker_id="k2"),
        )
        assert len(parts_of(history(*calls, max_replicas=2))) == 1
        assert len(parts_of(history(*calls, max_replicas=3))) == 2

    # Spec: R-LIN-5.
    def test_a_split_history_gets_the_verdict_of_the_whole(self):
        """One part fails; the verdict, found part by part, is the whole history's."""
        h = history(
            call("t1", "register", 0, 1, worker_id="k1"),
            call("t2", "register", 0, 1, worker_id="k2"),
            call("t2", "launch", 2, 3, DENIED, "unknown_worker", worker_id="k2"),
            max_replicas=5,
        )
        verdict = check(h, "reason")
        whole = search(ModelSpec(h, "reason"), h.calls)
        assert (verdict.linearizable, whole.linearizable) == (False, False)
        assert verdict.parts == 2
        assert verdict.keys == frozenset({"k2"})

    def test_projection_keeps_the_named_workers_and_the_switch(self):
        observation = Observation(
            {"a": WorkerView("a", None, 0), "b": WorkerView("b", None, 0)},
            frozenset({"a", "b"}), True, quarantined=frozenset({"b"}),
        )  # fmt: skip
        assert project(observation, frozenset({"a"})) == Observation(
            {"a": WorkerView("a", None, 0)}, frozenset({"a"}), True, quarantined=frozenset()
        )
        assert project(observation, None) is observation


def kill_switch_race(*noise: Call) -> History:
    """The kill switch race as recorded, with ``noise`` beside it."""
    return history(
        call("t1", "register", 0, 1, worker_id="k1"),
        call("t2", "register", 0, 1, worker_id="k2"),
        call("t1", "kill_switch", 2, 5, round=1),
        call("t2", "launch", 3, 4, worker_id="k1", round=1),
        *noise,
        call("kit", "observe", 6, 7, OBSERVED, round=1,
             observation=seen(containers=("k1",), killed=True)),
        max_replicas=5,
    )  # fmt: skip


class TestMinimise:
    """The minimiser keeps a history that fails the same way, and says why."""

    # Spec: R-LIN-6.
    def test_the_first_failure_is_the_earliest_unexplainable_response(self):
        h = history(
            call("t1", "register", 0, 1, worker_id="k1"),
            call("t1", "launch", 2, 3, DENIED, "unknown_worker", worker_id="k1"),
            call("t2", "heartbeat", 2, 6, DENIED, "unknown_worker", worker_id="k1"),
            call("t1", "kill", 4, 5, worker_id="k1"),
        )
        cut, culprit = first_failure(h, "reason")
        assert cut.calls[culprit].action == "launch"
        assert [c.action for c in cut.calls] == ["register", "launch", "heartbeat"]
        assert cut.calls[2].pending  # invoked before the culprit returned, answered after

    # Spec: R-LIN-6.
    def test_the_kill_switch_race_minimises_to_its_four_calls(self):
        noise = (
            call("t3", "heartbeat", 2, 3, DENIED, "unknown_worker", worker_id="k9", round=1),
            call("t3", "heartbeat", 3, 4, worker_id="k2", round=1),
        )
        reduction = minimise(kill_switch_race(*noise), "observation")
        kept = [(c.client, c.request) for c in reduction.history.calls]
        assert kept == [("t1", "register k1"), ("t1", "kill_switch"), ("t2", "launch k1"),
                ("kit", "observe")]  # fmt: skip
        assert reduction.recorded == 7
        assert reduction.history.calls[reduction.culprit].action == "observe"

    # Spec: R-LIN-6.
    def test_a_call_whose_effect_is_needed_is_never_dropped(self):
        """Without the registration, the launch would fail for a trivial reason: it stays."""
        reduction = minimise(kill_switch_race(), "observation")
        assert "register k1" in [c.request for c in reduction.history.calls]
        # ... and without the launch, nothing would explain the container: it stays too.
        assert "launch k1" in [c.request for c in reduction.history.calls]

    # Spec: R-LIN-6.
    def test_the_explanation_lists_each_dead_end(self):
        reduction = minimise(kill_switch_race(), "observation")
        assert list(reduction.explanation) == [
            "after 1, 3, 2: 4 observe: running containers: expected [], got ['k1']",
            "after 1, 2: 3 launch k1: expected denied (kill_switch), got allowed",
        ]
        assert reduction.explanation == tuple(explain(reduction.history, "observation",
                                                      frozenset({"k1"})))  # fmt: skip

    # Spec: R-LIN-6.
    def test_a_worker_from_nowhere_stays_in_the_observation(self):
        """Observations are cut down to the named workers, unless the failure is an unnamed one."""
        h = history(
            call("t1", "register", 0, 1, worker_id="k1"),
            call("t2", "heartbeat", 0, 1, DENIED, "unknown_worker", worker_id="k2"),
            call("kit", "observe", 2, 3, OBSERVED, observation=seen("k1", "k9")),
        )
        reduction = minimise(h, "observation")
        shown = reduction.history.calls[reduction.culprit].observation
        assert shown is not None
        assert sorted(shown.workers) == ["k1", "k9"]
        assert reduction.explanation[0].endswith(
            "observe: registered workers: expected ['k1'], got ['k1', 'k9']"
        )
