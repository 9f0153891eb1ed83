"""Minimising a history that is not linearizable, and saying why no order explains it.

A recorded history can hold tens of calls, most of them beside the point. The
report shows a smaller one that fails for the same reason, found in two moves:

1. **The first failure.** The history is cut just after the earliest response
   that no order can explain: the shortest prefix of its events that is not
   linearizable (prefixes only get harder to explain, so a binary search finds
   it). Calls invoked before the cut but answered after it become pending. The
   call whose response ends the prefix is the *culprit*.
2. **Dropping calls.** Calls are dropped one at a time (observations first,
   then the latest invoked) while the history stays one that fails the same
   way. Merely "still not linearizable" would not do: drop the registration
   of a worker and its launch, answered "ok", becomes unexplainable for a
   trivial reason. So a call is dropped only if, afterwards,

   * the history is still not linearizable;
   * every response but the culprit's is still explained: with the culprit
     pending, the rest is linearizable (the culprit is still the first failure);
   * every fact of the culprit's response that some valid partial
     linearization explained before (``k1`` running, the kill switch engaged,
     "denied (quota)") is still explained by one: the calls that produced
     them stay;
   * two calls (not observations) of different clients still overlap, if
     they did: a lost update shows without the call that overwrote it, but
     the reader should see the concurrency that produced it.

The result is a sub-history of the recorded one (real calls, real responses,
real intervals) in which everything but the culprit is explained and each
part of the culprit's response is possible, but not all of it at once.
:func:`explain` then lists the dead ends of the search: after which calls,
the culprit or another call, got a response the model contradicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from replication.conformance.concurrent.linearizability import ModelSpec, project, search
from replication.invariants import WorkerView

if TYPE_CHECKING:
    from replication.conformance.concurrent.history import Call, History
    from replication.invariants import Observation
    from replication.model import State

__all__ = ["Reduction", "explain", "first_failure", "minimise"]

Fact = tuple[object, ...]


@attrs.frozen
class Reduction:
    """A minimised history that is not linearizable.

    ``culprit`` indexes ``history.calls``; ``recorded`` is how many calls the
    history (or its failing part) had before the reduction.
    """

    history: History
    culprit: int
    recorded: int
    explanation: tuple[str, ...]


def _linearizable(history: History, mode: str, keys: frozenset[str] | None) -> bool:
    return search(ModelSpec(history, mode, keys), history.calls).linearizable


def first_failure(
    history: History, mode: str, keys: frozenset[str] | None = None
) -> tuple[History, int]:
    """Return the shortest non-linearizable prefix of ``history`` and its culprit's index.

    ``history`` must not be linearizable.
    """
    events = history.events()
    returns = [position for position, (_, is_return) in enumerate(events) if is_return]

    def prefix(number: int) -> tuple[History, int]:
        upto = events[: returns[number] + 1]
        returned = {index for index, is_return in upto if is_return}
        kept = sorted({index for index, is_return in upto if not is_return})
        calls = tuple(history.calls[i] if i in returned else history.calls[i].cut() for i in kept)
        return history.with_calls(calls), kept.index(events[returns[number]][0])

    low, high = 0, len(returns) - 1
    while low < high:
        middle = (low + high) // 2
        if _linearizable(prefix(middle)[0], mode, keys):
            low = middle + 1
        else:
            high = middle
    return prefix(low)


def observation_facts(observation: Observation, reported: Observation) -> frozenset[Fact]:
    """Return the positive facts of ``observation``, in the data ``reported`` carries."""
    facts: set[Fact] = set()
    if observation.kill_switch_engaged:
        facts.add(("kill switch engaged",))
    for worker_id, view in observation.workers.items():
        like = reported.workers.get(worker_id)
        if like is not None:
            fields = tuple(
                (field.name, getattr(view, field.name))
                for field in attrs.fields(WorkerView)
                if getattr(like, field.name) is not None
            )
            facts.add(("worker", worker_id, fields))
    facts.update(("container", worker_id) for worker_id in observation.containers)
    if reported.quarantined is not None:
        facts.update(("quarantined", w) for w in observation.quarantined or ())
    if reported.registered_ever is not None:
        facts.update(("registered ever", w) for w in observation.registered_ever or ())
    return frozenset(facts)


def _facts(spec: ModelSpec, index: int, state: State | None = None) -> frozenset[Fact]:
    """Return the facts of call ``index``'s recorded response, or of the model's at ``state``."""
    call = spec.calls[index]
    reason_counts = spec.mode != "decision"
    if call.action == "observe":
        if call.observation is None:
            return frozenset()
        recorded = spec.project(call.observation)
        seen = recorded if state is None else spec.observed(state)
        return observation_facts(seen, recorded)
    if state is None:
        return frozenset({(call.outcome, call.reason if reason_counts else None)})
    _, decision, reason = spec.expected(state, index)
    return frozenset({(decision, reason if reason_counts else None)})


def _explained(spec: ModelSpec, index: int, states: tuple[State, ...]) -> frozenset[Fact]:
    """Return the facts of call ``index``'s response the model gives at one of ``states``."""
    wanted = _facts(spec, index)
    found: set[Fact] = set()
    for state in states:
        found |= wanted & _facts(spec, index, state)
        if found == wanted:
            break
    return frozenset(found)


def _concurrent(history: History) -> bool:
    """Whether two calls of different clients, neither an observation, overlap."""
    return any(
        "observe" not in {first.action, second.action} for first, second in history.overlapping()
    )


def _drop_order(calls: list[Call], culprit: Call) -> list[Call]:
    """Observations first, then every other call, the latest invoked first."""
    others = [c for c in calls if c is not culprit]
    others.sort(key=lambda c: (c.action != "observe", -c.invoked))
    return others


def _scope(calls: list[Call], keys: frozenset[str] | None) -> frozenset[str]:
    """Return the workers the calls (not observations) name, within ``keys`` if given."""
    named = {c.worker_id for c in calls if c.action != "observe"}
    named |= {c.parent_id for c in calls if c.action != "observe"}
    scope = frozenset(w for w in named if w is not None)
    return scope if keys is None else scope & keys


def _about(fact: Fact, scope: frozenset[str]) -> bool:
    """Whether ``fact`` is about the workers in ``scope`` (the kill switch is about all)."""
    return len(fact) < 2 or fact[0] not in _WORKER_FACTS or fact[1] in scope


_WORKER_FACTS = frozenset({"worker", "container", "quarantined", "registered ever"})


def minimise(history: History, mode: str, keys: frozenset[str] | None = None) -> Reduction:
    """Return a minimised form of ``history``, which must not be linearizable.

    Observations are compared only on the workers the remaining calls name:
    once every call about a worker is dropped, so is what observations say of
    it. (Unless the failure is a worker no call names, seen in an observation:
    then observations are compared whole.)
    """
    cut, position = first_failure(history, mode, keys)
    calls = list(cut.calls)
    culprit = calls[position]
    start = ModelSpec(cut, mode, keys)
    needed = _explained(start, position, search(start, cut.calls, collect=True).states)
    concurrent = _concurrent(cut)
    named = not _linearizable(cut, mode, _scope(calls, keys))

    def scope_of(trial: list[Call]) -> frozenset[str] | None:
        return _scope(trial, keys) if named else keys

    def still_fails(trial: list[Call]) -> bool:
        part = cut.with_calls(tuple(trial))
        if concurrent and not _concurrent(part):
            return False
        scope = scope_of(trial)
        spec = ModelSpec(part, mode, scope)
        result = search(spec, part.calls, collect=True)
        if result.linearizable:
            return False
        index = next(i for i, call in enumerate(trial) if call is culprit)
        wanted = {fact for fact in needed if scope is None or _about(fact, scope)}
        if not wanted <= _explained(spec, index, result.states):
            return False
        relaxed = tuple(call.cut() if call is culprit else call for call in trial)
        return _linearizable(cut.with_calls(relaxed), mode, scope)

    changed = True
    while changed:
        changed = False
        for candidate in _drop_order(calls, culprit):
            trial = [call for call in calls if call is not candidate]
            if still_fails(trial):
                calls, changed = trial, True
    scope = scope_of(calls)
    shown = tuple(
        attrs.evolve(call, observation=project(call.observation, scope))
        if call.observation is not None
        else call
        for call in calls
    )
    reduced = cut.with_calls(shown)
    index = next(i for i, call in enumerate(calls) if call is culprit)
    return Reduction(reduced, index, len(history.calls), tuple(explain(reduced, mode, scope)))


def numbering(history: History) -> dict[int, int]:
    """Return the number of each call: 1, 2, ... in the canonical order of invocations."""
    invocations = [index for index, is_return in history.events() if not is_return]
    return {index: number for number, index in enumerate(invocations, start=1)}


def explain(
    history: History, mode: str, keys: frozenset[str] | None = None, *, limit: int = 6
) -> list[str]:
    """Return the dead ends of the search: which response the model contradicts, after what.

    The longest dead ends come first; each call and difference is named once.
    """
    spec = ModelSpec(history, mode, keys)
    result = search(spec, history.calls, collect=True)
    numbers = numbering(history)
    lines: dict[tuple[int, str], str] = {}
    # The longest dead ends first, then by call number: the same history always reads the same.
    ends = sorted(
        result.dead_ends,
        key=lambda end: (-len(end[0]), numbers[end[1]], [numbers[i] for i in end[0]]),
    )
    for order, index in ends:
        state = spec.initial()
        for placed in order:
            call = history.calls[placed]
            after = spec.apply(state, placed) if call.pending else spec.step(state, placed)
            if after is None:  # pragma: no cover - a dead end's prefix is a valid order
                raise AssertionError("a dead end after an invalid order")
            state = after
        prefix = ", ".join(str(numbers[i]) for i in order) or "nothing"
        call = history.calls[index]
        for difference in spec.differences(state, index):
            lines.setdefault(
                (index, difference),
                f"after {prefix}: {numbers[index]} {call.request}: {difference}",
            )
    return list(lines.values())[:limit]
