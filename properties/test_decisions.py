"""What one facade action decides (``replication.decisions``), pinned to the transitions.

The facade commits a :class:`~replication.decisions.Decision`, and a journal
records and replays it, so a decision must carry exactly what the transitions
it composes gave: the state (``None`` when nothing changes), every audit event
in order, the outcome of an allowed action and the denial of a refused one.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from replication import transitions as core
from replication.conformance.fixtures import KEY
from replication.conformance.strategies import CLOCK_START
from replication.decisions import Decision, decide, decide_on_containers, decide_start
from replication.errors import ReasonCode, ReplicationDenied
from replication.model import ReplicationContract, ResourceSpec, State

RESOURCES = ResourceSpec(0.5, 256)
TICK = timedelta(seconds=1)


def fleet(workers: int, launched: int) -> tuple[State, list[str]]:
    """A state with ``workers`` registered roots, the first ``launched`` of them running."""
    state = State.initial(ReplicationContract(2, 8, 0.0), KEY.verifying_key)
    ids = []
    for number in range(workers):
        state, _, manifest = core.issue_manifest(state, KEY, resources=RESOURCES, now=CLOCK_START)
        assert manifest is not None
        state = core.register_worker(state, manifest, now=CLOCK_START).state
        if number < launched:
            state = core.launch_worker(state, manifest, now=CLOCK_START).state
        ids.append(manifest.worker_id)
    return state, ids


#: The orchestrator's own transitions, as the facade's bound orchestrator applies them.
CONTAINER_ACTIONS = {
    "kill_container": (core.kill_container, lambda worker: {"worker_id": worker, "reason": "x"}),
    "kill_all_containers": (core.kill_all_containers, lambda worker: {"reason": "x"}),
    "enforce_container_bounds": (core.enforce_container_bounds,
                                 lambda worker: {"worker_id": worker}),
}  # fmt: skip


# Spec: R-FACADE-1, R-AUDIT-1.
@given(
    st.integers(0, 3),
    st.integers(0, 3),
    st.sampled_from(sorted(CONTAINER_ACTIONS)),
    st.integers(0, 4),
    st.integers(0, 100),
)
def test_a_decision_on_containers_carries_what_the_orchestrators_transition_gave(
    workers: int, launched: int, action: str, target: int, seconds: int
):
    """The orchestrator's part changed: the whole state with it, the controller's part as it
    was; refused: no state, the denial and its event; unchanged: the state as it was."""
    state, ids = fleet(workers, min(launched, workers))
    worker = ids[target] if target < len(ids) else "nobody"
    now = CLOCK_START + seconds * TICK
    transition, arguments = CONTAINER_ACTIONS[action]
    decision = decide_on_containers(transition, state, now, arguments(worker))
    try:
        outcome = transition(state.orchestrator, **arguments(worker), now=now)
    except ReplicationDenied as denied:
        assert decision.state is None
        assert decision.outcome is None
        assert decision.denial is not None
        assert (decision.denial.reason, decision.denial.event) == (denied.reason, denied.event)
        assert decision.events == (denied.event,)
        assert decision.events[0].at == now
        return
    assert decision.denial is None
    assert decision.outcome == outcome
    assert decision.events == (outcome.event,)
    assert decision.state is not None
    assert decision.state.controller is state.controller
    assert decision.state.orchestrator == outcome.state
    if outcome.state == state.orchestrator:
        assert decision.state == state


def launched_elsewhere(workers: int) -> tuple[State, object]:
    """A state whose orchestrator already runs a container for the next manifest's worker."""
    state, _ = fleet(workers, 0)
    state, _, manifest = core.issue_manifest(state, KEY, resources=RESOURCES, now=CLOCK_START)
    assert manifest is not None
    orchestrator = core.launch_container(state.orchestrator, manifest, now=CLOCK_START).state
    return State(state.controller, orchestrator), manifest


# Spec: R-FACADE-1, R-LAUNCH-1.
@given(st.integers(0, 3), st.integers(0, 100), st.booleans())
def test_a_start_whose_launch_is_refused_releases_the_worker_and_says_so(
    workers: int, seconds: int, refused: bool
):
    """Registered, then refused at launch: a denial that changes the state, the worker
    deregistered (``launch_failed``) with its id spent, three events in order; launched: the
    registration's and the launch's events, the launch's outcome, no denial."""
    now = CLOCK_START + seconds * TICK
    if refused:
        state, manifest = launched_elsewhere(workers)
    else:
        state, _ = fleet(workers, 0)
        state, _, manifest = core.issue_manifest(state, KEY, resources=RESOURCES, now=now)
    decision = decide_start(state, now, manifest)
    worker = manifest.worker_id
    actions = [(event.action, event.allowed, event.at) for event in decision.events]
    if not refused:
        assert decision.denial is None
        assert decision.outcome is not None
        assert decision.state == decision.outcome.state
        assert worker in decision.state.orchestrator.containers
        assert actions == [("register_worker", True, now), ("launch_worker", True, now)]
        return
    assert decision.denial is not None
    assert decision.denial.reason is ReasonCode.ALREADY_RUNNING
    assert decision.outcome is None
    assert decision.state is not None
    assert worker not in decision.state.registry
    assert worker in decision.state.controller.registered_ids
    assert actions == [
        ("register_worker", True, now), ("launch_worker", False, now),
        ("deregister_worker", True, now),
    ]  # fmt: skip
    released = decision.events[-1]
    assert (released.worker_id, released.reason) == (worker, "launch_failed")
    assert decision.events[1] == decision.denial.event


# Spec: R-FACADE-1, R-AUDIT-1.
@given(st.integers(0, 2), st.booleans())
def test_a_refused_start_or_decision_is_a_denial_that_changes_nothing(workers: int, engaged: bool):
    """A registration refused at the start of a start, or any refused transition: no state,
    no outcome, the denial and its one event."""
    state, _ = fleet(workers, 0)
    state, _, manifest = core.issue_manifest(state, KEY, resources=RESOURCES, now=CLOCK_START)
    if engaged:
        state = core.engage_kill_switch(state, now=CLOCK_START).state
    else:
        state = core.register_worker(state, manifest, now=CLOCK_START).state  # a replay next
    for decision in (
        decide_start(state, CLOCK_START, manifest),
        decide(core.register_worker, state, CLOCK_START, {"manifest": manifest}),
    ):
        assert isinstance(decision, Decision)
        assert (decision.state, decision.outcome) == (None, None)
        assert decision.denial is not None
        expected = ReasonCode.KILL_SWITCH if engaged else ReasonCode.REPLAY
        assert decision.denial.reason is expected
        assert decision.events == (decision.denial.event,)


# Spec: R-FACADE-1, R-AUDIT-1.
@given(st.sampled_from(sorted(ReasonCode)), st.booleans())
def test_a_denial_without_an_event_decides_no_event(reason: ReasonCode, on_containers: bool):
    """A denial raised without an audit event (by a user's own code, never the core's) is
    decided as a denial with no event at all, not as an event that is ``None``."""

    def refuse(state: object, **_arguments: object) -> object:
        raise ReplicationDenied(reason)

    state, _ = fleet(1, 1)
    decider = decide_on_containers if on_containers else decide
    decision = decider(refuse, state, CLOCK_START, {})  # type: ignore[operator]
    assert decision.denial is not None
    assert (decision.state, decision.events, decision.outcome) == (None, (), None)
    assert decision.denial.reason is reason
