"""Minimising a history that is not linearizable, and saying why no order explains it.

A recorded history can hold tens of calls, most of them beside the point. The
report shows a smaller one that fails for the same reason, found in two moves:

1. **The first failure.** The history is cut just after the earliest response
   that no order can explain: the shortest prefix of its events that is not
   linearizable (prefixes only get harder to explain, so a binary search finds
   it). Calls invoked before the cut but answered after it become pending. The
   call whose response ends the prefix is the *culprit*.
2. **Dropping calls.** Every call about one worker is dropped at once (the
   worker last named first), then calls one at a time (observations first,
   then the latest invoked), while the history stays one that fails the same
   way: a registration and its launch go together or not at all. Merely
   "still not linearizable" would not do: drop the registration of a worker
   and its launch, answered "ok", becomes unexplainable for a trivial reason.
   So a call is dropped only if, afterwards,

   * the history is still not linearizable;
   * every response but the culprit's is still explained: with the culprit
     pending, the rest is linearizable (the culprit is still the first failure);
   * every fact of the culprit's response that some valid partial
     linearization explained before (``k1`` running, the kill switch engaged,
     "denied (quota)", and what is absent: no worker ``k1``, no container
     ``k2``) is still explained by one: the calls that produced them stay, the
     kill that removed a worker as well as the launch that started it;
   * two calls (not observations) of different clients still overlap, if
     they did: a lost update shows without the call that overwrote it, but
     the reader should see the concurrency that produced it.

The result is a sub-history of the recorded one (real calls, real responses,
real intervals) in which everything but the culprit is explained and each
part of the culprit's response is possible, but not all of it at once.

The culprit may also be chosen: an observation that broke an invariant is the
violation that explains the history, so the history is cut at its response
and minimised around it (:func:`minimise` with ``culprit``).
:func:`explain` then lists the dead ends of the search: after which calls,
the culprit or another call, got a response the model contradicts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from replication.conformance.concurrent.linearizability import ModelSpec, Search, project, search
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


def _prefix(history: History, end: int) -> tuple[History, int]:
    """Return ``history`` up to its event ``end`` (a response) and that call's new index.

    Calls invoked before it and answered after it become pending.
    """
    events = history.events()
    upto = events[: end + 1]
    returned = {index for index, is_return in upto if is_return}
    kept = sorted({index for index, is_return in upto if not is_return})
    calls = tuple(history.calls[i] if i in returned else history.calls[i].cut() for i in kept)
    return history.with_calls(calls), kept.index(events[end][0])


def first_failure(
    history: History, mode: str, keys: frozenset[str] | None = None
) -> tuple[History, int]:
    """Return the shortest non-linearizable prefix of ``history`` and its culprit's index.

    ``history`` must not be linearizable.
    """
    events = history.events()
    returns = [position for position, (_, is_return) in enumerate(events) if is_return]

    def prefix(number: int) -> tuple[History, int]:
        return _prefix(history, returns[number])

    low, high = 0, len(returns) - 1
    while low < high:
        middle = (low + high) // 2
        if _linearizable(prefix(middle)[0], mode, keys):
            low = middle + 1
        else:
            high = middle
    return prefix(low)


def observation_facts(
    observation: Observation, reported: Observation, universe: frozenset[str] = frozenset()
) -> frozenset[Fact]:
    """Return the facts of ``observation``, in the data ``reported`` carries.

    The positive facts (a worker and its fields, a container, the kill switch
    engaged), and the negative ones about the workers of ``universe``: no
    worker ``k1``, no container ``k2``. Without them, the call that removed a
    worker could be dropped, and the observation that no longer shows it be
    left with nothing to explain it.
    """
    facts: set[Fact] = set()
    facts.update(("no worker", w) for w in universe - observation.workers.keys())
    facts.update(("no container", w) for w in universe - observation.containers)
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


def _facts(
    spec: ModelSpec, index: int, state: State | None = None, universe: frozenset[str] = frozenset()
) -> frozenset[Fact]:
    """Return the facts of call ``index``'s recorded response, or of the model's at ``state``."""
    call = spec.calls[index]
    reason_counts = spec.mode != "decision"
    if call.action == "observe":
        if call.observation is None:
            return frozenset()
        recorded = spec.project(call.observation)
        seen = recorded if state is None else spec.observed(state)
        return observation_facts(seen, recorded, universe)
    if state is None:
        return frozenset({(call.outcome, call.reason if reason_counts else None)})
    _, decision, reason = spec.expected(state, index)
    return frozenset({(decision, reason if reason_counts else None)})


def _explained(
    spec: ModelSpec, index: int, result: Search[State], universe: frozenset[str]
) -> frozenset[Fact]:
    """Return the facts of call ``index``'s response the model gives in some valid order.

    A positive fact (``k1`` running) is explained by any state a valid partial
    order reaches: some call produced it. A negative one (no worker ``k1``) only
    by a state at which the call could be placed: before ``k1`` registered it
    was trivially true, and it is the call that removed ``k1`` that explains it.
    """
    wanted = _facts(spec, index, universe=universe)
    negative = {fact for fact in wanted if fact[0] in _NEGATIVE_FACTS}
    found: set[Fact] = set()
    for state in result.states:
        found |= (wanted - negative) & _facts(spec, index, state, universe)
    for state in result.ready:
        found |= negative & _facts(spec, index, state, universe)
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


def _groups(calls: list[Call], culprit: Call) -> list[list[Call]]:
    """Return what to try dropping: every call about one worker, then each call alone.

    A worker's calls (those naming it, a child's included), the worker named
    last first; then the single calls in :func:`_drop_order`. The culprit never.
    """
    others = [c for c in calls if c is not culprit and c.action != "observe"]
    last: dict[str, int] = {}
    for call in others:
        for worker_id in (call.worker_id, call.parent_id):
            if worker_id is not None:
                last[worker_id] = max(last.get(worker_id, call.invoked), call.invoked)
    workers = sorted(last, key=lambda w: -last[w])
    groups = [[c for c in others if w in {c.worker_id, c.parent_id}] for w in workers]
    return [group for group in groups if len(group) > 1] + [
        [call] for call in _drop_order(calls, culprit)
    ]


def _scope(calls: list[Call], keys: frozenset[str] | None) -> frozenset[str]:
    """Return the workers the calls (not observations) name, within ``keys`` if given."""
    named = {c.worker_id for c in calls if c.action != "observe"}
    named |= {c.parent_id for c in calls if c.action != "observe"}
    scope = frozenset(w for w in named if w is not None)
    return scope if keys is None else scope & keys


def _about(fact: Fact, scope: frozenset[str]) -> bool:
    """Whether ``fact`` is about the workers in ``scope`` (the kill switch is about all)."""
    return len(fact) < 2 or fact[0] not in _WORKER_FACTS or fact[1] in scope


_NEGATIVE_FACTS = frozenset({"no worker", "no container"})
_WORKER_FACTS = frozenset({"worker", "container", "quarantined", "registered ever"}) | (
    _NEGATIVE_FACTS
)


def _cut_at(history: History, culprit: int) -> tuple[History, int]:
    """Return ``history`` up to call ``culprit``'s response, and its index there."""
    end = history.events().index((culprit, True))
    return _prefix(history, end)


def minimise(
    history: History, mode: str, keys: frozenset[str] | None = None, *, culprit: int | None = None
) -> Reduction:
    """Return a minimised form of ``history``, which must not be linearizable.

    Observations are compared only on the workers the remaining calls name:
    once every call about a worker is dropped, so is what observations say of
    it. (Unless the failure is a worker no call names, seen in an observation:
    then observations are compared whole.) ``culprit`` chooses the call to
    minimise around (an observation that broke an invariant, say), instead of
    the first response no order explains; the history up to its response must
    not be linearizable either.
    """
    if culprit is None:
        cut, position = first_failure(history, mode, keys)
    else:
        cut, position = _cut_at(history, culprit)
    calls = list(cut.calls)
    target = calls[position]
    universe = _scope(calls, keys)
    start = ModelSpec(cut, mode, keys)
    found = search(start, cut.calls, collect=True, ready_for=position)
    needed = _explained(start, position, found, universe)
    concurrent = _concurrent(cut)
    named = not _linearizable(cut, mode, _scope(calls, keys))
    # Every other response explained with the culprit pending: kept so if it held.
    rest_explained = _linearizable(_relaxed(cut, target), mode, keys)

    def scope_of(trial: list[Call]) -> frozenset[str] | None:
        return _scope(trial, keys) if named else keys

    def still_fails(trial: list[Call]) -> bool:
        part = cut.with_calls(tuple(trial))
        if concurrent and not _concurrent(part):
            return False
        scope = scope_of(trial)
        spec = ModelSpec(part, mode, scope)
        index = next(i for i, call in enumerate(trial) if call is target)
        result = search(spec, part.calls, collect=True, ready_for=index)
        if result.linearizable:
            return False
        wanted = {fact for fact in needed if scope is None or _about(fact, scope)}
        if not wanted <= _explained(spec, index, result, universe):
            return False
        return not rest_explained or _linearizable(_relaxed(part, target), mode, scope)

    changed = True
    while changed:
        changed = False
        for group in _groups(calls, target):
            trial = [call for call in calls if not any(call is c for c in group)]
            if trial != calls and still_fails(trial):
                calls, changed = trial, True
    scope = scope_of(calls)
    shown = tuple(
        attrs.evolve(call, observation=project(call.observation, scope))
        if call.observation is not None
        else call
        for call in calls
    )
    reduced = cut.with_calls(shown)
    index = next(i for i, call in enumerate(calls) if call is target)
    return Reduction(reduced, index, len(history.calls), tuple(explain(reduced, mode, scope)))


def _relaxed(history: History, culprit: Call) -> History:
    """Return ``history`` with ``culprit`` pending: what the rest of the responses must explain."""
    return history.with_calls(tuple(c.cut() if c is culprit else c for c in history.calls))


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
