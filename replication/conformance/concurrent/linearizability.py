"""The linearizability checker: can some order of a concurrent history's calls explain it.

A history is *linearizable* (Herlihy & Wing 1990) when some total order of its
calls, consistent with real time (a call that returned before another was
invoked comes first), gives every call the response the sequential model gives
it. :func:`search` looks for such an order the way Wing & Gong (1993) do: it
repeatedly picks a call that may come next (one that no other unplaced call
finished before), applies it to the model, keeps it if the model's response is
the recorded one, and backtracks otherwise. Lowe (2017) made the search
practical by remembering every configuration already explored, the pair
(model state, set of calls already placed): reaching one again by another
order cannot succeed where the first visit failed. Model states are frozen
values, so a configuration is keyed by the state's fingerprint (a tuple of its
immutable maps, whose hashes are computed once) and a bit set of the placed
calls. A pending call (one with no response) may be placed anywhere after its
invocation, with the model's own response, or never.

Histories also split (Horn & Kroening 2015, *P-compositionality*, as
Porcupine does): calls that touch disjoint parts of the state commute, so the
history is linearizable exactly when each part of it is. :func:`split` groups
the calls by the worker ids they touch. It cannot split a history that holds a
call on the whole fleet: a kill switch or a reap (they touch every worker), an
issue or a registration while the quota can still bind (they read the size of
the registry), or an observation taken while calls were in flight (it reads
everything at one instant). An observation taken between rounds, with no call
in flight, is projected onto each part: with the parts independent, the state
at that moment is the product of theirs, so the projection loses nothing.

:class:`ModelSpec` binds the search to :mod:`replication.transitions`: each
call is replayed on the pure core with its round's ``now`` and compared by
the mode (``decision``, ``reason``, or ``observation``, where observations are
calls too, compared with
:func:`~replication.conformance.adapters.observations.compare_observations`).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

import attrs

from replication import transitions as core
from replication._text import decision_text
from replication.conformance.adapters.observations import compare_observations
from replication.conformance.concurrent.history import ALLOWED, DENIED, History, resources
from replication.conformance.fixtures import KEY, NO_EXTERNAL_NETWORK
from replication.errors import ReplicationDenied
from replication.invariants import Observation, observe
from replication.model import State

if TYPE_CHECKING:
    from collections.abc import Callable, Hashable, Sequence

    from replication.conformance.concurrent.history import Call
    from replication.model import Manifest
    from replication.transitions import Outcome

__all__ = ["ModelSpec", "Search", "Spec", "Verdict", "check", "project", "search", "split"]

S = TypeVar("S")

#: The key of the registry's size: issues and registrations share it while the quota can bind.
QUOTA = "<quota>"


class Timed(Protocol):
    """Anything with an invocation time and a return time (``None``: pending)."""

    @property
    def invoked(self) -> int: ...

    @property
    def returned(self) -> int | None: ...


class Spec(Protocol[S]):
    """A sequential specification of the calls of one history, by index."""

    def initial(self) -> S:
        """Return the model's state before the first call."""
        ...

    def fingerprint(self, state: S) -> Hashable:
        """Return a hashable key equal for two states exactly when they behave alike."""
        ...

    def step(self, state: S, index: int) -> S | None:
        """Apply call ``index``: the new state, or ``None`` if its response is not the model's."""
        ...

    def apply(self, state: S, index: int) -> S:
        """Apply pending call ``index`` with the model's own response."""
        ...


@attrs.frozen
class Search(Generic[S]):
    """What :func:`search` found.

    ``order`` is a linearization when there is one, else the longest partial
    one found. With ``collect``, ``states`` holds every state a valid partial
    linearization reached, ``ready`` those at which the call ``ready_for``
    could be placed next (every call that returned before it was invoked is
    placed), and ``dead_ends`` every (partial order, call) whose response the
    model contradicted there.
    """

    linearizable: bool
    order: tuple[int, ...]
    configurations: int
    states: tuple[S, ...] = ()
    dead_ends: tuple[tuple[tuple[int, ...], int], ...] = ()
    ready: tuple[S, ...] = ()


def search(
    spec: Spec[S],
    calls: Sequence[Timed],
    *,
    collect: bool = False,
    memo: bool = True,
    ready_for: int | None = None,
) -> Search[S]:
    """Look for a linearization of ``calls`` under ``spec`` (Wing & Gong, Lowe's memo).

    ``memo=False`` is plain Wing & Gong, the benchmark's baseline. With
    ``collect``, ``ready_for`` names the call whose ready states to collect.
    """
    count = len(calls)
    required = 0
    for index, call in enumerate(calls):
        if call.returned is not None:
            required |= 1 << index
    # before[i]: the calls that returned before call i was invoked, which must precede it.
    before = [
        sum(
            1 << other_index
            for other_index, other in enumerate(calls)
            if other.returned is not None and other.returned < call.invoked
        )
        for call in calls
    ]
    seen: set[tuple[Hashable, int]] = set()
    visits = 0
    states: dict[Hashable, S] = {}
    ready: dict[Hashable, S] = {}
    dead_ends: list[tuple[tuple[int, ...], int]] = []
    order: list[int] = []
    longest: list[int] = []

    def extend(state: S, placed: int) -> bool:
        nonlocal visits
        if placed & required == required:
            return True
        fingerprint = spec.fingerprint(state)
        if memo and (fingerprint, placed) in seen:
            return False
        seen.add((fingerprint, placed))
        visits += 1
        if collect:
            states.setdefault(fingerprint, state)
            placeable = ready_for is not None and not (placed >> ready_for) & 1
            if placeable and not before[ready_for] & ~placed:  # type: ignore[index]
                ready.setdefault(fingerprint, state)
        for index in range(count):
            bit = 1 << index
            if placed & bit or before[index] & ~placed:
                continue
            after = spec.step(state, index) if required & bit else spec.apply(state, index)
            if after is None:
                if collect:
                    dead_ends.append((tuple(order), index))
                continue
            order.append(index)
            if len(order) > len(longest):
                longest[:] = order
            if extend(after, placed | bit):
                return True
            order.pop()
        return False

    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 4 * count + 100))
    try:
        found = extend(spec.initial(), 0)
    finally:
        sys.setrecursionlimit(limit)
    return Search(
        linearizable=found,
        order=tuple(order if found else longest),
        configurations=visits,
        states=tuple(states.values()),
        dead_ends=tuple(dead_ends),
        ready=tuple(ready.values()),
    )


def split(keys: Sequence[frozenset[str] | None]) -> list[list[int]]:
    """Group call indices into independent parts: calls sharing a key share a part.

    A call whose keys are ``None`` touches the whole state: then there is one part.
    """
    if any(k is None for k in keys):
        return [list(range(len(keys)))]
    parent: dict[str, str] = {}

    def root(key: str) -> str:
        while parent.setdefault(key, key) != key:
            parent[key] = parent[parent[key]]
            key = parent[key]
        return key

    for call_keys in keys:
        assert call_keys is not None  # noqa: S101 - excluded above
        first, *rest = sorted(call_keys)
        for key in rest:
            parent[root(key)] = root(first)
    parts: dict[str, list[int]] = {}
    for index, call_keys in enumerate(keys):
        assert call_keys is not None  # noqa: S101
        parts.setdefault(root(min(call_keys)), []).append(index)
    return sorted(parts.values())


def project(observation: Observation, keys: frozenset[str] | None) -> Observation:
    """Return the part of ``observation`` about the workers ``keys`` (all of it for ``None``)."""
    if keys is None:
        return observation
    return Observation(
        workers={w: view for w, view in observation.workers.items() if w in keys},
        containers=observation.containers & keys,
        kill_switch_engaged=observation.kill_switch_engaged,
        quarantined=None if observation.quarantined is None else observation.quarantined & keys,
        registered_ever=(
            None if observation.registered_ever is None else observation.registered_ever & keys
        ),
    )


def _fingerprint(state: State) -> Hashable:
    """Key a state by what the kit's calls and observations can tell apart.

    The maps of times are hashed as they are (an ``immutables.Map`` computes
    its hash once). A registry entry is keyed by its worker, its times and
    the identity of its manifest (the kit registers one manifest object per
    worker id, so equal keys mean equal entries), a container by its worker
    alone (no call the kit makes, and no observation, reads more of it):
    hashing manifests by value would mean canonical JSON for every new state.
    """
    controller = state.controller
    registry = frozenset(
        (worker_id, id(entry.manifest), entry.last_heartbeat, entry.registered_at)
        for worker_id, entry in controller.registry.items()
    )
    return (
        registry,
        controller.spawn_times,
        controller.quarantined,
        controller.issued_ids,
        controller.registered_ids,
        controller.kill_switch_engaged,
        frozenset(state.orchestrator.containers),
    )


_TRANSITIONS: dict[str, Callable[[State, Call], Outcome[State]]] = {
    "issue": lambda state, call: core.issue_manifest(
        state, KEY, parent_id=call.parent_id, worker_id=call.worker_id,
        resources=resources(external=call.external), state_snapshot={}, now=call.now,
    ),
    "register": lambda state, call: core.register_worker(state, _manifest(call), now=call.now),
    "launch": lambda state, call: core.launch_worker(state, _manifest(call), now=call.now),
    "heartbeat": lambda state, call: core.heartbeat(state, str(call.worker_id), now=call.now),
    "kill": lambda state, call: core.kill_worker(
        state, str(call.worker_id), reason="conformance", now=call.now
    ),
    "reap": lambda state, call: core.reap_stale_workers(
        state, timeout=call.timeout, now=call.now  # type: ignore[arg-type]
    ),
    "kill_switch": lambda state, call: core.engage_kill_switch(state, now=call.now),
    "quarantine": lambda state, call: core.quarantine_worker(
        state, str(call.worker_id), reason="conformance", now=call.now
    ),
    "release": lambda state, call: core.release_worker(state, str(call.worker_id), now=call.now),
}  # fmt: skip


def _manifest(call: Call) -> Manifest:
    if call.manifest is None:
        message = f"a recorded {call.action} call carries no reference manifest"
        raise ValueError(message)
    return call.manifest


class ModelSpec:
    """The pure core as the sequential specification of one history (or one part of it).

    ``keys`` names the part's workers, onto which observations are projected
    (``None``: the whole history). Results are cached by (state, call): the
    search reaches one state by many orders, and a transition costs more than
    a dictionary lookup.
    """

    def __init__(self, history: History, mode: str, keys: frozenset[str] | None = None) -> None:
        self.calls = history.calls
        self.mode = mode
        self.keys = keys
        self.start = State.initial(history.contract, KEY.verifying_key)
        self._cache: dict[tuple[Hashable, int], State | None] = {}
        # Fingerprints by state object (the state is kept, so its id is not reused).
        self._prints: dict[int, tuple[State, Hashable]] = {}

    def initial(self) -> State:
        """Return the state of a fresh system under the history's contract."""
        return self.start

    def fingerprint(self, state: State) -> Hashable:
        """Return the state's fingerprint (computed once per state object)."""
        known = self._prints.get(id(state))
        if known is None:
            known = self._prints[id(state)] = (state, _fingerprint(state))
        return known[1]

    def expected(self, state: State, index: int) -> tuple[State, str, str | None]:
        """Return the state after call ``index`` and the model's decision and reason."""
        call = self.calls[index]
        if call.action == "observe":
            return state, "observed", None
        try:
            outcome = _TRANSITIONS[call.action](state, call)
        except ReplicationDenied as denied:
            return state, DENIED, denied.reason.value
        return outcome.state, ALLOWED, None

    def observed(self, state: State) -> Observation:
        """Return the model's observation of ``state``, projected onto this part."""
        return project(observe(state), self.keys)

    def project(self, observation: Observation) -> Observation:
        """Return the part of a recorded observation this spec compares."""
        return project(observation, self.keys)

    def differences(self, state: State, index: int) -> list[str]:
        """Return how call ``index``'s recorded response differs from the model's at ``state``."""
        return self._compare(state, index, self.expected(state, index))

    def _compare(
        self, state: State, index: int, expected: tuple[State, str, str | None]
    ) -> list[str]:
        call = self.calls[index]
        if call.action == "observe":
            if call.observation is None:
                return ["an observation that returned nothing"]
            return compare_observations(self.observed(state), self.project(call.observation))
        _, decision, reason = expected
        if decision == call.outcome and (
            self.mode == "decision" or decision != DENIED or reason == call.reason
        ):
            return []
        wanted = decision_text(decision == ALLOWED, reason)
        got = decision_text(call.outcome == ALLOWED, call.reason)
        return [f"expected {wanted}, got {got}"]

    def step(self, state: State, index: int) -> State | None:
        """Apply call ``index`` if the model gives its recorded response (cached)."""
        key = (self.fingerprint(state), index)
        if key not in self._cache:
            expected = self.expected(state, index)
            self._cache[key] = None if self._compare(state, index, expected) else expected[0]
        return self._cache[key]

    def apply(self, state: State, index: int) -> State:
        """Apply call ``index`` with the model's own response (a pending call)."""
        return self.expected(state, index)[0]


@attrs.frozen
class Verdict:
    """The check of one history: linearizable or not, and into how many parts it split.

    ``failing`` is the part that is not linearizable (with only the calls the
    mode checks), ``keys`` the workers it is about (``None``: the whole
    history), ``configurations`` how many the searches explored in all.
    """

    linearizable: bool
    parts: int
    configurations: int
    failing: History | None = None
    keys: frozenset[str] | None = None


def checked(history: History, mode: str) -> History:
    """Return the calls of ``history`` the mode checks: observations only in ``observation``."""
    if mode == "observation":
        return history
    return history.with_calls(tuple(c for c in history.calls if c.action != "observe"))


def _keys(call: Call, history: History, *, quota_binds: bool) -> frozenset[str] | None:
    if call.action in {"reap", "kill_switch", "observe"}:
        return None
    keys = {str(call.worker_id)}
    if call.parent_id is not None:
        keys.add(call.parent_id)
    if call.action in {"issue", "register"} and quota_binds:
        keys.add(QUOTA)
    if call.action == "register" and any(
        condition is not NO_EXTERNAL_NETWORK for condition in history.contract.stop_conditions
    ):
        return None  # an unknown stop condition may read anything (the registry's size)
    return frozenset(keys)


def parts_of(history: History) -> list[tuple[History, frozenset[str] | None]]:
    """Split ``history`` into independent parts, each with the workers it is about."""
    calls = history.calls
    registering = {c.worker_id for c in calls if c.action == "register"}
    # Fewer distinct registrations than the quota: no issue or registration is ever refused for it.
    quota_binds = len(registering) >= history.contract.max_replicas
    between = [c for c in calls if c.action == "observe" and not any(_overlap(c, o) for o in calls)]
    rest = [c for c in calls if not any(c is b for b in between)]
    keys = [_keys(c, history, quota_binds=quota_binds) for c in rest]
    known = [k for k in keys if k is not None]
    if not rest or len(known) < len(keys):
        return [(history, None)]
    parts: list[tuple[History, frozenset[str] | None]] = []
    for indices in split(known):
        part_keys = frozenset().union(*(known[i] for i in indices)) - {QUOTA}
        members = [rest[i] for i in indices] + between
        members.sort(key=lambda c: c.invoked)
        parts.append((history.with_calls(tuple(members)), part_keys))
    return parts


def _overlap(first: Call, second: Call) -> bool:
    return first is not second and not first.precedes(second) and not second.precedes(first)


def check(history: History, mode: str, *, memo: bool = True, parts: bool = True) -> Verdict:
    """Check ``history`` for linearizability against the pure model, part by part.

    ``memo=False`` and ``parts=False`` turn Lowe's memo and the splitting off
    (the benchmark's baselines).
    """
    history = checked(history, mode)
    pieces = parts_of(history) if parts else [(history, None)]
    configurations = 0
    for part, keys in pieces:
        result = search(ModelSpec(part, mode, keys), part.calls, memo=memo)
        configurations += result.configurations
        if not result.linearizable:
            return Verdict(
                linearizable=False, parts=len(pieces), configurations=configurations,
                failing=part, keys=keys,
            )  # fmt: skip
    return Verdict(linearizable=True, parts=len(pieces), configurations=configurations)
