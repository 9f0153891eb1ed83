"""What a transition tour drove: every (action, outcome) the adapter's vocabulary allows.

A tour is exhaustive over its bound, and its bound is small: a refusal that
needs a full registry at registration, or a chain as deep as ``max_depth``,
may never occur in it. So the tour reports its coverage: each adapter action
with each outcome the core can give it (allowed, or denied with each reason
code) is either *driven* (some edge the tour took had it) or *not driven*,
with the smallest named bound that would drive it, or why none does. The
verdict line says ``CONFORMANT`` only for what was driven
(specs/06-exploration.md, R-EXPLORE-15).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from replication.errors import ReasonCode as R
from replication.explore.actions import CORE_TRANSITION
from replication.explore.bounds import BOUNDS

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from replication.explore.bounds import Bound
    from replication.explore.expand import Edge

__all__ = [
    "ADAPTER_ACTION",
    "ALLOWED",
    "VOCABULARY",
    "driven",
    "not_driven",
    "phrase",
    "vocabulary",
]

ALLOWED: Final = "allowed"

#: The adapter's name of each core transition the tour drives.
ADAPTER_ACTION: Final = {
    "issue_manifest": "issue",
    "register_worker": "register",
    "launch_worker": "launch",
    "heartbeat": "heartbeat",
    "kill_worker": "kill",
    "reap_stale_workers": "reap",
    "engage_kill_switch": "kill_switch",
    "quarantine_worker": "quarantine",
    "release_worker": "release",
    "deregister_worker": "deregister",
    "expire_workers": "expire",
}

#: Every outcome the core gives each transition through the adapter's vocabulary
#: (specs/01-transitions.md; a claimed depth and resource enforcement are not in it).
_VOCABULARY: Final[dict[str, tuple[str, ...]]] = {
    "issue_manifest": (ALLOWED, R.KILL_SWITCH, R.QUOTA, R.PARENT_UNKNOWN,
                       R.PARENT_QUARANTINED, R.DEPTH_EXCEEDED, R.COOLDOWN, R.DUPLICATE_WORKER_ID),
    "register_worker": (ALLOWED, R.KILL_SWITCH, R.BAD_SIGNATURE, R.REPLAY, R.ISSUED_IN_FUTURE,
                        R.PARENT_UNKNOWN, R.PARENT_QUARANTINED, R.DEPTH_MISMATCH,
                        R.DEPTH_EXCEEDED, R.QUOTA, R.COOLDOWN, R.STOP_CONDITION),
    "launch_worker": (ALLOWED, R.KILL_SWITCH, R.UNKNOWN_WORKER, R.MANIFEST_MISMATCH,
                      R.QUARANTINED, R.ALREADY_RUNNING),
    "heartbeat": (ALLOWED, R.UNKNOWN_WORKER, R.QUARANTINED),
    "kill_worker": (ALLOWED,),
    "reap_stale_workers": (ALLOWED,),
    "engage_kill_switch": (ALLOWED,),
    "quarantine_worker": (ALLOWED, R.UNKNOWN_WORKER, R.ALREADY_QUARANTINED),
    "release_worker": (ALLOWED, R.UNKNOWN_WORKER, R.NOT_QUARANTINED),
    "deregister_worker": (ALLOWED, R.UNKNOWN_WORKER),
    "expire_workers": (ALLOWED,),
}  # fmt: skip
VOCABULARY: Final = {
    transition: tuple(str(getattr(outcome, "value", outcome)) for outcome in outcomes)
    for transition, outcomes in _VOCABULARY.items()
}

Outcome = tuple[str, str]


def vocabulary(kinds: Iterable[str]) -> frozenset[Outcome]:
    """Return every (transition, outcome) the explorer's ``kinds`` can drive at some bound."""
    transitions = {CORE_TRANSITION[kind] for kind in kinds if kind in CORE_TRANSITION}
    return frozenset(
        (transition, outcome)
        for transition in transitions
        if transition in VOCABULARY
        for outcome in VOCABULARY[transition]
    )


def driven(graph: Mapping[int, list[Edge]], taken: Iterable[tuple[int, int]]) -> frozenset[Outcome]:
    """Return the (transition, outcome) of every edge taken."""
    outcomes = set()
    for state, number in taken:
        kind, _, _, outcome = graph[state][number]
        transition = CORE_TRANSITION.get(kind)
        if transition is not None:
            outcomes.add((transition, outcome))
    return frozenset(outcomes)


def phrase(outcome: Outcome) -> str:
    """Return ``register denied quota`` for ``("register_worker", "quota")``."""
    transition, result = outcome
    action = ADAPTER_ACTION.get(transition, transition)
    return f"{action} {result}" if result == ALLOWED else f"{action} denied {result}"


def _workers(bound: Bound) -> int:
    return min(bound.max_replicas, bound.max_issued)


#: What a bound needs to drive an outcome, where it needs more than one worker: a
#: predicate over the bound, and the same in words.
_NEEDS: Final[dict[Outcome, tuple[Callable[[Bound], bool], str]]] = {
    ("register_worker", R.QUOTA.value): (
        lambda b: b.max_issued > b.max_replicas,
        "more manifests than places (max_issued > max_replicas)",
    ),
    ("issue_manifest", R.QUOTA.value): (
        lambda b: b.max_issued >= b.max_replicas,
        "max_issued >= max_replicas",
    ),
    ("register_worker", R.STOP_CONDITION.value): (
        lambda b: b.stop_on_external_network,
        "the stop condition",
    ),
    ("issue_manifest", R.DEPTH_EXCEEDED.value): (
        lambda b: _workers(b) >= b.max_depth + 1,
        "a chain of max_depth + 1 workers",
    ),
    ("register_worker", R.DEPTH_EXCEEDED.value): (
        lambda b: _workers(b) >= b.max_depth + 1,
        "a chain of max_depth + 1 workers",
    ),
    ("issue_manifest", R.COOLDOWN.value): (
        lambda b: b.max_depth >= 1 and _workers(b) >= 2 and b.cooldown >= 1,
        "a parent, a child and a cooldown of a tick or more",
    ),
    ("register_worker", R.COOLDOWN.value): (
        lambda b: (
            b.max_depth >= 1 and b.max_issued >= 3 and b.max_replicas >= 2 and b.cooldown >= 1
        ),
        "a parent, two children issued and a cooldown of a tick or more",
    ),
    ("issue_manifest", R.PARENT_QUARANTINED.value): (
        lambda b: b.max_replicas >= 2 and b.max_depth >= 1,
        "room for a child",
    ),
    ("register_worker", R.PARENT_UNKNOWN.value): (
        lambda b: b.max_issued >= 2 and b.max_replicas >= 2 and b.max_depth >= 1,
        "a child issued, its parent gone before it registers",
    ),
    ("register_worker", R.PARENT_QUARANTINED.value): (
        lambda b: b.max_issued >= 2 and b.max_replicas >= 2 and b.max_depth >= 1,
        "a parent and its child issued",
    ),
}

#: Outcomes no bound drives: the tour names only registered workers for these actions.
_NEVER: Final[frozenset[Outcome]] = frozenset(
    {
        ("quarantine_worker", R.UNKNOWN_WORKER.value),
        ("release_worker", R.UNKNOWN_WORKER.value),
        ("deregister_worker", R.UNKNOWN_WORKER.value),
    }
)


def reaching(outcome: Outcome) -> str:
    """Return how a tour would drive ``outcome``: the smallest named bound, or why none does."""
    if outcome in _NEVER:
        return "no bound (the tour names only registered workers here; the kit's runs do)"
    predicate, needs = _NEEDS.get(outcome, (lambda b: _workers(b) >= 1, "a worker"))
    for name in ("tiny", "small", "tour", "default"):
        if predicate(BOUNDS[name]):
            return f"--bound {name} ({needs})"
    return f"a bound with {needs}"


def not_driven(vocabulary_: frozenset[Outcome], driven_: frozenset[Outcome]) -> dict[str, str]:
    """Return each outcome of the vocabulary not driven, as a phrase, with what would drive it."""
    order = {transition: n for n, transition in enumerate(VOCABULARY)}
    missing = sorted(
        vocabulary_ - driven_,
        key=lambda o: (order[o[0]], VOCABULARY[o[0]].index(o[1])),
    )
    return {phrase(outcome): reaching(outcome) for outcome in missing}
