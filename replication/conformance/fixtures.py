"""What the kit's machine and its vectors share.

The test keys, the standard stop condition, the ways to tamper with a manifest,
the roles a worker can play, and the named moves of the clock.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

import attrs
from hypothesis import strategies as st

from replication.model import Manifest, ReplicationContext, ReplicationContract, StopCondition
from replication.signing import SigningKey

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.model import State

__all__ = [
    "CLOCK_STEPS",
    "KEY",
    "NO_EXTERNAL_NETWORK",
    "OTHER_KEY",
    "ROLES",
    "TAMPERABLE",
    "TICK",
    "contract_from",
    "pick",
    "roles",
    "tamper",
]

#: The controller's key in every run: fixed, public, for tests only.
KEY = SigningKey.from_seed(bytes(range(32)))
#: A key that is not the controller's.
OTHER_KEY = SigningKey.from_seed(bytes(range(1, 33)))
TICK = timedelta(microseconds=1)

#: Fields a manifest can be tampered in after signing.
TAMPERABLE = (
    "worker_id", "parent_id", "depth", "state_snapshot", "issued_at",
    "cpu_limit", "memory_limit_mb", "allow_controller", "allow_external",
)  # fmt: skip

#: Ways a rule names a registered worker without knowing its id in advance.
ROLES = ("newest", "oldest", "deepest", "quarantined", "latest parent")
roles = st.sampled_from(ROLES)


def asks_for_external_network(context: ReplicationContext) -> bool:
    """Fire when a worker asks for unrestricted network egress."""
    return context.manifest.resources.network_policy.allow_external


#: The standard stop condition the kit's contracts may carry.
NO_EXTERNAL_NETWORK = StopCondition(
    "no_external_network", "no unrestricted egress", asks_for_external_network
)

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
    stop = values.pop("stop_on_external_network")
    contract = ReplicationContract(**values, stop_conditions=[NO_EXTERNAL_NETWORK] if stop else [])
    return contract, timeout


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
