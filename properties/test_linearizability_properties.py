"""The linearizability checker, by property: it agrees with brute force, split or whole.

* On a read/write register, the Wing & Gong search with Lowe's memo finds a
  linearization exactly when trying every order (and every subset of the
  pending calls) finds one, and the order it returns is one.
* On the replication model, histories whose calls touch disjoint workers get
  the same verdict checked part by part (P-compositionality) as checked whole.
"""

from __future__ import annotations

import itertools
from typing import TYPE_CHECKING

import attrs
from hypothesis import given
from hypothesis import strategies as st

from replication import transitions as core
from replication.conformance.concurrent.history import ALLOWED, DENIED, Call, History
from replication.conformance.concurrent.linearizability import ModelSpec, check, search
from replication.conformance.concurrent.programs import reference_manifest
from replication.conformance.fixtures import KEY, contract_from
from replication.conformance.strategies import CLOCK_START
from replication.errors import ReplicationDenied
from replication.model import State

if TYPE_CHECKING:
    from collections.abc import Sequence


@attrs.frozen
class Op:
    """A register call: ``write(value)`` returns nothing, ``read()`` returns ``value``."""

    invoked: int
    returned: int | None
    kind: str
    value: int


class RegisterSpec:
    """A register holding an int, 0 at first."""

    def __init__(self, ops: Sequence[Op]) -> None:
        self.ops = ops

    def initial(self) -> int:
        return 0

    def fingerprint(self, state: int) -> int:
        return state

    def step(self, state: int, index: int) -> int | None:
        op = self.ops[index]
        if op.kind == "write":
            return op.value
        return state if op.value == state else None

    def apply(self, state: int, index: int) -> int:
        op = self.ops[index]
        return op.value if op.kind == "write" else state


def respects_real_time(order: Sequence[int], ops: Sequence[Op]) -> bool:
    for position, first in enumerate(order):
        for second in order[position + 1 :]:
            returned = ops[second].returned
            if returned is not None and returned < ops[first].invoked:
                return False
    return True


def replays(order: Sequence[int], ops: Sequence[Op], completed: set[int]) -> bool:
    spec, state = RegisterSpec(ops), 0
    for index in order:
        if index in completed:
            after = spec.step(state, index)
            if after is None:
                return False
            state = after
        else:
            state = spec.apply(state, index)
    return True


def brute_force(ops: Sequence[Op]) -> bool:
    completed = {i for i, op in enumerate(ops) if op.returned is not None}
    pending = [i for i in range(len(ops)) if i not in completed]
    for size in range(len(pending) + 1):
        for chosen in itertools.combinations(pending, size):
            for order in itertools.permutations([*completed, *chosen]):
                if respects_real_time(order, ops) and replays(order, ops, completed):
                    return True
    return False


@st.composite
def register_histories(draw: st.DrawFn) -> list[Op]:
    ops = []
    for _ in range(draw(st.integers(0, 5))):
        invoked = draw(st.integers(0, 12))
        length = draw(st.one_of(st.none(), st.integers(1, 6)))
        kind = draw(st.sampled_from(["read", "write"]))
        ops.append(Op(invoked, None if length is None else invoked + length, kind,
                      draw(st.integers(0, 2))))  # fmt: skip
    return ops


# Spec: R-LIN-1, R-LIN-5.
@given(register_histories())
def test_the_search_agrees_with_brute_force(ops):
    result = search(RegisterSpec(ops), ops)
    assert brute_force(ops) == result.linearizable
    if result.linearizable:
        completed = {i for i, op in enumerate(ops) if op.returned is not None}
        assert completed <= set(result.order)
        assert respects_real_time(result.order, ops)
        assert replays(result.order, ops, completed)


PARAMETERS = {
    "max_depth": 2, "max_replicas": 8, "cooldown_seconds": 0.0, "expiration_seconds": None,
    "clock_skew_seconds": 1.0, "stop_on_external_network": False, "heartbeat_timeout_seconds": 5.0,
}  # fmt: skip
WORKERS = ("k1", "k2", "k3")
MANIFESTS = {
    w: reference_manifest(w, None, parent_id=None, external=False, now=CLOCK_START) for w in WORKERS
}
ACTIONS = {
    "register": lambda s, w: core.register_worker(s, MANIFESTS[w], now=CLOCK_START),
    "launch": lambda s, w: core.launch_worker(s, MANIFESTS[w], now=CLOCK_START),
    "heartbeat": lambda s, w: core.heartbeat(s, w, now=CLOCK_START),
    "kill": lambda s, w: core.kill_worker(s, w, reason="conformance", now=CLOCK_START),
    "quarantine": lambda s, w: core.quarantine_worker(s, w, reason="conformance", now=CLOCK_START),
    "release": lambda s, w: core.release_worker(s, w, now=CLOCK_START),
}


@st.composite
def per_worker_histories(draw: st.DrawFn) -> History:
    """A history with a known linearization (then, perhaps, one response falsified)."""
    contract, timeout = contract_from(PARAMETERS)
    state = State.initial(contract, KEY.verifying_key)
    calls = []
    for point in range(draw(st.integers(1, 6))):
        action = draw(st.sampled_from(sorted(ACTIONS)))
        worker = draw(st.sampled_from(WORKERS))
        try:
            state = ACTIONS[action](state, worker).state
            outcome, reason = ALLOWED, None
        except ReplicationDenied as denied:
            outcome, reason = DENIED, denied.reason.value
        # The call's interval holds its point in the known order, so that order respects it.
        invoked = 10 * point - draw(st.integers(1, 15))
        returned = 10 * point + draw(st.integers(1, 15))
        client = f"t{draw(st.integers(1, 3))}"
        calls.append(Call(client, 0, action, CLOCK_START, invoked, returned, outcome, reason,
                          worker_id=worker, manifest=MANIFESTS[worker]))  # fmt: skip
    if draw(st.booleans()):
        index = draw(st.integers(0, len(calls) - 1))
        flipped = calls[index]
        calls[index] = (
            attrs.evolve(flipped, outcome=DENIED, reason="unknown_worker")
            if flipped.outcome == ALLOWED
            else attrs.evolve(flipped, outcome=ALLOWED, reason=None)
        )
    return History(contract, timeout, tuple(calls))


# Spec: R-LIN-5.
@given(per_worker_histories())
def test_a_history_checked_by_parts_gets_the_verdict_of_the_whole(history):
    whole = search(ModelSpec(history, "reason"), history.calls)
    assert whole.linearizable == check(history, "reason").linearizable
