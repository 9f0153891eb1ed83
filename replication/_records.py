"""The records the state is made of: contract, manifest, registry entry, container, event.

Each is frozen and validated at construction (:mod:`replication._validation`
converts every field to its exact built-in type), and a change is a new value.
:mod:`replication.model` composes them into the whole-system state and
re-exports every name here; import them from there.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import attrs

from replication import _validation as v
from replication._canonical import canonical_json, manifest_payload_of
from replication._exceptions import InvalidTypeError, InvalidValueError
from replication._frozen import FrozenDict, FrozenList, freeze_json, frozen_list, thaw_json

__all__ = [
    "ContainerRecord",
    "Effect",
    "Event",
    "Manifest",
    "NetworkPolicy",
    "RegistryEntry",
    "ReplicationContext",
    "ReplicationContract",
    "ResourceSpec",
    "StopCondition",
]

# -- contract and manifest records ---------------------------------------------


# Converters of NetworkPolicy's fields (named functions: mypy's attrs plugin needs them).


def _to_allow_controller(value: object) -> bool:
    return v.check_bool("allow_controller", value)


def _to_allow_external(value: object) -> bool:
    return v.check_bool("allow_external", value)


@v.immutable
@attrs.frozen
class NetworkPolicy:
    """Network egress controls of a worker sandbox."""

    allow_controller: bool = attrs.field(default=True, converter=_to_allow_controller)
    allow_external: bool = attrs.field(default=False, converter=_to_allow_external)


# Every field has a converter, never a bare validator: the record keeps the exact
# built-in value the check returns, not the caller's object (R-TRUST-1).


# Converters of ResourceSpec's fields (named functions: mypy's attrs plugin needs them).


def _to_cpu_limit(value: object) -> float:
    return v.check_number("cpu_limit", value, minimum=0, inclusive=False)


def _to_memory_limit_mb(value: object) -> int:
    return v.check_int("memory_limit_mb", value, minimum=1, bound="> 0")


def _to_network_policy(value: object) -> NetworkPolicy:
    return v.check_record("network_policy", value, NetworkPolicy, "a NetworkPolicy")  # type: ignore[no-any-return]


@v.immutable
@attrs.frozen
class ResourceSpec:
    """CPU, memory and network limits of a worker sandbox."""

    cpu_limit: float = attrs.field(converter=_to_cpu_limit)
    memory_limit_mb: int = attrs.field(converter=_to_memory_limit_mb)
    network_policy: NetworkPolicy = attrs.field(
        factory=NetworkPolicy,
        converter=_to_network_policy,
    )


def _snapshot_key(snapshot: FrozenDict) -> bytes:
    """Compare snapshots by canonical JSON: ``1`` equals ``1.0``, and ``true`` is not ``1``."""
    return canonical_json(thaw_json(snapshot))


# Converters of Manifest's fields (named functions: mypy's attrs plugin needs them).


def _to_worker_id(value: object) -> str:
    return v.check_identifier("worker_id", value)


def _to_parent_id(value: object) -> str | None:
    return v.optional(v.check_identifier, "parent_id", value)


def _to_depth(value: object) -> int:
    return v.check_int("depth", value, minimum=0)


def _to_state_snapshot(value: object) -> FrozenDict:
    return freeze_json("state_snapshot", value)


def _to_issued_at(value: object) -> datetime:
    return v.check_aware_datetime("issued_at", value)


def _to_resources(value: object) -> ResourceSpec:
    return v.check_record("resources", value, ResourceSpec, "a ResourceSpec")  # type: ignore[no-any-return]


def _to_signature(value: object) -> str:
    return v.exact_str("signature", value)


@v.immutable
@attrs.frozen
class Manifest:
    """The signed record of one worker: who it is, where it sits, what it may use.

    ``state_snapshot`` is deep-frozen JSON (a :class:`~replication._frozen.FrozenDict`,
    equal to the ``dict`` it froze); ``issued_at`` is stored in UTC. The
    signature covers every other field (see :mod:`replication.encoding`).
    """

    worker_id: str = attrs.field(converter=_to_worker_id)
    parent_id: str | None = attrs.field(converter=_to_parent_id)
    depth: int = attrs.field(converter=_to_depth)
    state_snapshot: FrozenDict = attrs.field(converter=_to_state_snapshot, eq=_snapshot_key)
    issued_at: datetime = attrs.field(converter=_to_issued_at)
    resources: ResourceSpec = attrs.field(converter=_to_resources)
    signature: str = attrs.field(default="", converter=_to_signature)

    @property
    def is_root(self) -> bool:
        """Whether the worker has no parent."""
        return self.parent_id is None

    @property
    def signing_payload(self) -> bytes:
        """The exact bytes a signature over this manifest covers, from its fields as they are now.

        The bytes are cached beside the objects they were computed from, and the
        cache is used only while every one of those objects is still in place
        (compared by identity): each is immutable (exact ``str``, ``int``,
        ``float``, ``bool``, ``datetime``, a :class:`~replication._frozen.FrozenDict`
        checked to be frozen all the way down), and the records holding them
        (the manifest, its ``ResourceSpec``, its ``NetworkPolicy``) are read
        field by field. So a field replaced behind the record's back (with
        ``object.__setattr__``) is seen, and its bytes are computed afresh
        (R-SIGN-9).
        """
        sources = _signed_sources(self)
        memo = self._payload_memo
        if memo is not None and _same_objects(memo[0], sources):
            return memo[1]
        payload = manifest_payload_of(*sources[:9])
        object.__setattr__(self, "_payload_memo", (sources, payload))
        return payload

    @functools.cached_property
    def _payload_memo(self) -> tuple[tuple[object, ...], bytes] | None:
        # A slot of its own (attrs turns a cached property into one); replaced by
        # ``signing_payload`` with (the objects the bytes came from, the bytes).
        return None


def _signed_sources(manifest: Manifest) -> tuple[object, ...]:
    """Every object a manifest's signed bytes are computed from, read once, in a fixed order."""
    resources = manifest.resources
    network = resources.network_policy
    return (
        manifest.worker_id,
        manifest.parent_id,
        manifest.depth,
        manifest.state_snapshot,
        manifest.issued_at,
        resources.cpu_limit,
        resources.memory_limit_mb,
        network.allow_controller,
        network.allow_external,
        # The records last: they are not encoded, only held so that their
        # identities are part of what the cache compares.
        resources,
        network,
    )


def _same_objects(first: tuple[object, ...], second: tuple[object, ...]) -> bool:
    return all(a is b for a, b in zip(first, second, strict=True))


# Converters of ReplicationContext's fields (named functions: mypy's attrs plugin needs them).


def _to_manifest(value: object) -> Manifest:
    return v.check_record("manifest", value, Manifest, "a Manifest")  # type: ignore[no-any-return]


def _to_active_count(value: object) -> int:
    return v.check_int("active_count", value, minimum=0)


@v.immutable
@attrs.frozen
class ReplicationContext:
    """What a stop condition sees: the manifest being registered and the system around it."""

    manifest: Manifest = attrs.field(converter=_to_manifest)
    active_count: int = attrs.field(converter=_to_active_count)
    contract: ReplicationContract = attrs.field(
        validator=lambda _instance, attribute, value: _check_contract(attribute.name, value)
    )


def _check_contract(field: str, value: object) -> None:
    # ReplicationContract is defined below; this runs only once it exists.
    v.check_record(field, value, ReplicationContract, "a ReplicationContract")


def _check_callable(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise InvalidTypeError(attribute.name, "a callable taking a ReplicationContext", value)


# Converters of StopCondition's fields (named functions: mypy's attrs plugin needs them).


def _to_name(value: object) -> str:
    return v.check_identifier("name", value)


def _to_description(value: object) -> str:
    return v.exact_str("description", value)


@v.immutable
@attrs.frozen
class StopCondition:
    """A named predicate that, when true at registration, denies it."""

    name: str = attrs.field(converter=_to_name)
    description: str = attrs.field(converter=_to_description)
    predicate: Callable[[ReplicationContext], bool] = attrs.field(validator=_check_callable)

    def is_triggered(self, context: ReplicationContext) -> bool:
        """Return whether the condition fires for ``context``."""
        return bool(self.predicate(context))


def _to_stop_conditions(value: object) -> FrozenList[StopCondition]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidTypeError("stop_conditions", "an iterable of StopCondition", value)
    try:
        conditions = frozen_list(list(value))
    except Exception as error:  # noqa: BLE001 - a caller's iterable may raise anything
        raise InvalidValueError(
            "stop_conditions", "an iterable that can be read", repr(error)
        ) from None
    for index, condition in enumerate(conditions):
        v.check_record(f"stop_conditions[{index}]", condition, StopCondition, "a StopCondition")
    names = [condition.name for condition in conditions]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidValueError("stop_conditions", "conditions with distinct names", duplicates)
    return conditions


# Converters of ReplicationContract's fields (named functions: mypy's attrs plugin needs them).


def _to_max_depth(value: object) -> int:
    return v.check_int("max_depth", value, minimum=0)


def _to_max_replicas(value: object) -> int:
    return v.check_int("max_replicas", value, minimum=1)


def _to_cooldown_seconds(value: object) -> float:
    return v.check_duration("cooldown_seconds", value, inclusive=True)


def _to_expiration_seconds(value: object) -> float | None:
    return v.optional(v.check_duration, "expiration_seconds", value, inclusive=False)


def _to_clock_skew_seconds(value: object) -> float:
    return v.check_duration("clock_skew_seconds", value, inclusive=True)


@v.immutable
@attrs.frozen
class ReplicationContract:
    """The authoritative policy: how deep, how many, how fast, how long.

    ``clock_skew_seconds`` is how far in the future a manifest's ``issued_at``
    may lie before registration refuses it as forged or replayed.
    """

    max_depth: int = attrs.field(converter=_to_max_depth)
    max_replicas: int = attrs.field(converter=_to_max_replicas)
    cooldown_seconds: float = attrs.field(converter=_to_cooldown_seconds)
    stop_conditions: FrozenList[StopCondition] = attrs.field(
        default=(), converter=_to_stop_conditions
    )
    expiration_seconds: float | None = attrs.field(
        default=None,
        converter=_to_expiration_seconds,
    )
    clock_skew_seconds: float = attrs.field(
        default=1.0,
        converter=_to_clock_skew_seconds,
    )

    @functools.cached_property
    def cooldown(self) -> timedelta:
        """``cooldown_seconds`` as a timedelta."""
        return timedelta(seconds=self.cooldown_seconds)

    @functools.cached_property
    def expiration(self) -> timedelta | None:
        """``expiration_seconds`` as a timedelta, or ``None`` when workers never expire."""
        if self.expiration_seconds is None:
            return None
        return timedelta(seconds=self.expiration_seconds)

    @functools.cached_property
    def clock_skew(self) -> timedelta:
        """``clock_skew_seconds`` as a timedelta."""
        return timedelta(seconds=self.clock_skew_seconds)

    def evaluate(self, context: ReplicationContext) -> StopCondition | None:
        """Return the first stop condition that fires for ``context``, or ``None``."""
        for condition in self.stop_conditions:
            if condition.is_triggered(context):
                return condition
        return None


# -- registry and containers ---------------------------------------------------


# Converters of RegistryEntry's fields (named functions: mypy's attrs plugin needs them).


def _to_last_heartbeat(value: object) -> datetime:
    return v.check_aware_datetime("last_heartbeat", value)


def _to_registered_at(value: object) -> datetime:
    return v.check_aware_datetime("registered_at", value)


@v.immutable
@attrs.frozen
class RegistryEntry:
    """A registered worker: its manifest, when it registered, when it last sent a heartbeat."""

    manifest: Manifest = attrs.field(converter=_to_manifest)
    last_heartbeat: datetime = attrs.field(converter=_to_last_heartbeat)
    registered_at: datetime = attrs.field(
        converter=_to_registered_at,
        default=attrs.Factory(lambda self: self.last_heartbeat, takes_self=True),
    )

    @property
    def depth(self) -> int:
        """The worker's depth in its lineage (0 for a root)."""
        return self.manifest.depth


# Converters of ContainerRecord's fields (named functions: mypy's attrs plugin needs them).


def _to_status(value: object) -> str:
    return v.check_reason("status", value)


def _to_started_at(value: object) -> datetime:
    return v.check_aware_datetime("started_at", value)


def _to_reason(value: object) -> str | None:
    return v.optional(v.check_reason, "reason", value)


@v.immutable
@attrs.frozen
class ContainerRecord:
    """A running worker container."""

    manifest: Manifest = attrs.field(converter=_to_manifest)
    resources: ResourceSpec = attrs.field(converter=_to_resources)
    status: str = attrs.field(converter=_to_status)
    started_at: datetime = attrs.field(converter=_to_started_at)
    reason: str | None = attrs.field(default=None, converter=_to_reason)


# -- audit events ---------------------------------------------------------------


class Effect(NamedTuple):
    """One per-worker change a transition made, e.g. ``("container_killed", "w3")``.

    Events carry effects as plain ``(kind, worker_id)`` tuples, which compare
    equal to ``Effect(kind, worker_id)``; wrap one as ``Effect(*pair)`` for named
    access. Plain tuples because the garbage collector stops tracking a tuple of
    strings and never a tuple subclass: a kill switch over 100,000 workers makes
    200,000 effects, and as named tuples they force a full collection (0.6 s
    instead of 0.04 s, measured by benchmarks/bench.py).
    """

    kind: str
    worker_id: str


@v.immutable
@attrs.frozen(slots=False)
class Event:
    """The audit record of one transition: exactly one per call, allowed or denied.

    ``reason`` is the reason code of a denial, or the reason an allowed change was
    made (the caller's kill reason, ``"heartbeat_timeout"`` for a reap, ``"ok"``
    when the action takes none). ``effects`` lists every per-worker change, in order.
    Events are outputs of the core, so they are not validated; there is one per
    transition, so they are dict-backed (cheaper to build than slots).
    """

    action: str
    at: datetime
    allowed: bool
    reason: str
    worker_id: str | None = None
    effects: tuple[tuple[str, str], ...] = ()
    detail: str = ""
