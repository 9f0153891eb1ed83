"""What the kit's machine and its vectors share.

The test keys, the stop conditions a contract may carry (a plain one, one that
raises, one with memory), hostile worker ids and snapshots, the ways to tamper
with a manifest, the roles a worker can play, and the named moves of the clock.
"""

from __future__ import annotations

import itertools
from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs
from hypothesis import strategies as st

from replication.model import Manifest, ReplicationContext, ReplicationContract, StopCondition
from replication.signing import SigningKey
from replication.stop_conditions import NO_EXTERNAL_NETWORK

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.model import State

__all__ = [
    "CLOCK_STEPS",
    "HOSTILE_IDS",
    "HOSTILE_SNAPSHOTS",
    "KEY",
    "NO_EXTERNAL_NETWORK",
    "OTHER_KEY",
    "ROLES",
    "STOP_CONDITION_SETS",
    "TAMPERABLE",
    "TICK",
    "contract_from",
    "is_hostile",
    "pick",
    "roles",
    "tamper",
]

#: The controller's key in every run: fixed, public, for tests only.
KEY = SigningKey.from_seed(bytes(range(32)))
#: A key that is not the controller's.
OTHER_KEY = SigningKey.from_seed(bytes(range(1, 33)))
TICK = timedelta(microseconds=1)

#: Fields a manifest can be tampered in after signing. ``id boundary`` moves
#: text across the worker id / parent id boundary (``a:b`` and no parent become
#: ``a`` and parent ``b:None``; no parent becomes the parent ``"None"``): the
#: same bytes for a scheme that joins fields with ``:``, a different manifest.
TAMPERABLE = (
    "worker_id", "parent_id", "depth", "state_snapshot", "issued_at",
    "cpu_limit", "memory_limit_mb", "allow_controller", "allow_external", "id boundary",
)  # fmt: skip

#: Worker ids a careless implementation confuses: ``:`` and ``|`` (delimiters
#: an encoding may join fields with), the string ``"None"`` (what ``f"{None}"``
#: prints), and look-alikes (a Cyrillic a, U+0430, for a Latin one; a fullwidth
#: k, U+FF4B; é composed and decomposed).
HOSTILE_IDS = ("a:b", "k1:k2", "None", "a|b", "k\u0430", "\uff4b1", "\u00e9", "e\u0301")

#: Snapshots at the edges of what RFC 8785 signs: delimiters and "None" in keys,
#: keys that normalise to the same text, integers at 2**53 - 1, -0.0, 1e21, 1e-7,
#: an empty key, nesting.
HOSTILE_SNAPSHOTS: tuple[dict[str, Any], ...] = (
    {"a:b": "c:d", "None": None},
    {"\u212b": 1, "\u00c5": 2, "A\u030a": 3},
    {"big": 9007199254740991, "neg": -9007199254740991, "zero": -0.0, "e21": 1e21, "e": 1e-7},
    {"": "", "nested": {"list": [[], {}, [None, True, 0.5]]}},
)


def is_hostile(worker_id: str) -> bool:
    """Whether ``worker_id`` is one a careless implementation confuses (see ``HOSTILE_IDS``)."""
    return ":" in worker_id or "|" in worker_id or worker_id == "None" or not worker_id.isascii()


#: Ways a rule names a registered worker without knowing its id in advance.
ROLES = ("newest", "oldest", "deepest", "quarantined", "latest parent")
roles = st.sampled_from(ROLES)


def understands_roots_only(context: ReplicationContext) -> bool:
    """Raise on a child's manifest: a predicate that fails, which must count as fired."""
    if context.manifest.parent_id is not None:
        message = "this condition was written for roots only"
        raise RuntimeError(message)
    return False


def every_third() -> StopCondition:
    """Return a condition with memory: it fires on every third registration it is asked about.

    An implementation that asks its stop conditions at another point of the
    checks than R-REGISTER-1 says, or more than once, makes it fire elsewhere.
    """
    asked = itertools.count(1)
    return StopCondition(
        "every_third", "fires on every third evaluation", lambda _context: next(asked) % 3 == 0
    )


#: The stop conditions a run's contract may carry, by name (built afresh for
#: each side of each run, so that one with memory counts only its own side).
STOP_CONDITIONS: dict[str, Callable[[], StopCondition]] = {
    "no_external_network": lambda: NO_EXTERNAL_NETWORK,
    "roots_only": lambda: StopCondition(
        "roots_only", "raises on a child's manifest", understands_roots_only
    ),
    "every_third": every_third,
}

#: The sets of stop conditions a run's contract is drawn with.
STOP_CONDITION_SETS: tuple[tuple[str, ...], ...] = (
    (), (), ("no_external_network",), ("roots_only",), ("every_third",),
    ("no_external_network", "every_third"),
)  # fmt: skip

#: How far ``advance_clock`` may move, by name: near every boundary of the contract.
CLOCK_STEPS: dict[str, Callable[[ReplicationContract, timedelta], timedelta]] = {
    "1us": lambda contract, timeout: TICK,
    "1s": lambda contract, timeout: timedelta(seconds=1),
    "cooldown-1us": lambda contract, timeout: contract.cooldown - TICK,
    "cooldown": lambda contract, timeout: contract.cooldown,
    "cooldown+1us": lambda contract, timeout: contract.cooldown + TICK,
    "heartbeat timeout": lambda contract, timeout: timeout,
    "heartbeat timeout+1us": lambda contract, timeout: timeout + TICK,
    "expiration+1us": lambda contract, timeout: (contract.expiration or timeout) + TICK,
}


def contract_from(parameters: dict[str, Any]) -> tuple[ReplicationContract, timedelta]:
    """Build the contract and heartbeat timeout a run's ``start`` parameters describe."""
    values = dict(parameters)
    timeout = timedelta(seconds=values.pop("heartbeat_timeout_seconds"))
    # The concurrent mode's programs name the one standard condition by a flag.
    external = values.pop("stop_on_external_network", None)
    names = ("no_external_network",) if external else values.pop("stop_conditions", ())
    conditions = [STOP_CONDITIONS[name]() for name in names]
    return ReplicationContract(**values, stop_conditions=conditions), timeout


def tamper(manifest: Manifest, field: str) -> Manifest:
    """Return ``manifest`` with one field changed and its signature kept."""
    resources, policy = manifest.resources, manifest.resources.network_policy
    if field in {"allow_controller", "allow_external"}:
        flipped = attrs.evolve(policy, **{field: not getattr(policy, field)})
        return attrs.evolve(manifest, resources=attrs.evolve(resources, network_policy=flipped))
    if field == "cpu_limit":
        return attrs.evolve(
            manifest, resources=attrs.evolve(resources, cpu_limit=resources.cpu_limit * 2)
        )
    if field == "id boundary":
        worker, separator, rest = manifest.worker_id.rpartition(":")
        if separator and worker:
            return attrs.evolve(
                manifest, worker_id=worker, parent_id=f"{rest}:{manifest.parent_id}"
            )
        if manifest.parent_id is None:
            return attrs.evolve(manifest, parent_id="None")
        return attrs.evolve(manifest, worker_id=f"{manifest.worker_id}:{manifest.parent_id}")
    if field == "memory_limit_mb":
        return attrs.evolve(
            manifest,
            resources=attrs.evolve(resources, memory_limit_mb=resources.memory_limit_mb + 1),
        )
    changed: dict[str, Any] = {
        "worker_id": manifest.worker_id + "-x",
        "parent_id": None if manifest.parent_id else "w1",
        "depth": manifest.depth + 1,
        "state_snapshot": {**manifest.state_snapshot, "tampered": True},
        "issued_at": manifest.issued_at - TICK,
    }
    return attrs.evolve(manifest, **{field: changed[field]})


def pick(state: State, role: str) -> str | None:
    """Return the registered worker playing ``role`` in ``state``, or ``None``."""
    registry = state.registry
    if not registry:
        return None
    by_age = sorted(registry, key=lambda w: (registry[w].registered_at, w))
    if role == "newest":
        return by_age[-1]
    if role == "oldest":
        return by_age[0]
    if role == "deepest":
        return max(by_age, key=lambda w: registry[w].depth)
    times = state.controller.quarantined if role == "quarantined" else state.controller.spawn_times
    return max(times, key=lambda w: (times[w], w)) if times else None
