"""The model: frozen records and the whole-system state they make up.

Everything here is immutable and validated at construction; a change is a new
value, made by the pure functions of :mod:`replication.transitions` or by
``attrs.evolve``. The whole system is one :class:`State`, composed of the
controller's part (:class:`ControllerState`) and the orchestrator's part
(:class:`OrchestratorState`).
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import attrs
import immutables

from replication import _validation as v
from replication.encoding import canonical_json, manifest_payload
from replication.errors import InvalidTypeError, InvalidValueError

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.signing import VerifyingKey

__all__ = [
    "ContainerRecord",
    "ControllerState",
    "Effect",
    "Event",
    "Manifest",
    "NetworkPolicy",
    "OrchestratorState",
    "RegistryEntry",
    "ReplicationContext",
    "ReplicationContract",
    "ResourceSpec",
    "State",
    "StopCondition",
]

# -- contract and manifest records ---------------------------------------------


@v.immutable
@attrs.frozen
class NetworkPolicy:
    """Network egress controls of a worker sandbox."""

    allow_controller: bool = attrs.field(default=True, validator=v.validator(v.check_bool))
    allow_external: bool = attrs.field(default=False, validator=v.validator(v.check_bool))


# Converters, one per field: each validates, names its field and normalises.


def _cpu_limit(value: object) -> float:
    return v.check_number("cpu_limit", value, minimum=0, inclusive=False)


def _state_snapshot(value: object) -> immutables.Map[str, v.FrozenJSON]:
    return v.freeze_json("state_snapshot", value)


def _issued_at(value: object) -> datetime:
    return v.check_aware_datetime("issued_at", value)


def _cooldown_seconds(value: object) -> float:
    return v.check_number("cooldown_seconds", value, minimum=0, inclusive=True)


def _clock_skew_seconds(value: object) -> float:
    return v.check_number("clock_skew_seconds", value, minimum=0, inclusive=True)


def _last_heartbeat(value: object) -> datetime:
    return v.check_aware_datetime("last_heartbeat", value)


def _registered_at(value: object) -> datetime:
    return v.check_aware_datetime("registered_at", value)


def _started_at(value: object) -> datetime:
    return v.check_aware_datetime("started_at", value)


@v.immutable
@attrs.frozen
class ResourceSpec:
    """CPU, memory and network limits of a worker sandbox."""

    cpu_limit: float = attrs.field(converter=_cpu_limit)
    memory_limit_mb: int = attrs.field(validator=v.validator(v.check_int, minimum=1))
    network_policy: NetworkPolicy = attrs.field(
        factory=NetworkPolicy, validator=v.instance_of(NetworkPolicy, "a NetworkPolicy")
    )


def _snapshot_key(snapshot: immutables.Map[str, v.FrozenJSON]) -> bytes:
    """Compare snapshots by canonical JSON: ``1`` equals ``1.0``, and ``true`` is not ``1``."""
    return canonical_json(v.thaw_json(snapshot))


@v.immutable
@attrs.frozen
class Manifest:
    """The signed record of one worker: who it is, where it sits, what it may use.

    ``state_snapshot`` is deep-frozen JSON; ``issued_at`` is stored in UTC. The
    signature covers every other field (see :mod:`replication.encoding`).
    """

    worker_id: str = attrs.field(validator=v.validator(v.check_identifier))
    parent_id: str | None = attrs.field(validator=v.optional_validator(v.check_identifier))
    depth: int = attrs.field(validator=v.validator(v.check_int, minimum=0))
    state_snapshot: immutables.Map[str, v.FrozenJSON] = attrs.field(
        converter=_state_snapshot, eq=_snapshot_key
    )
    issued_at: datetime = attrs.field(converter=_issued_at)
    resources: ResourceSpec = attrs.field(validator=v.instance_of(ResourceSpec, "a ResourceSpec"))
    signature: str = attrs.field(default="", validator=v.instance_of(str, "a string"))

    @property
    def is_root(self) -> bool:
        """Whether the worker has no parent."""
        return self.parent_id is None

    @functools.cached_property
    def signing_payload(self) -> bytes:
        """The exact bytes a signature over this manifest covers (computed once)."""
        return manifest_payload(self)


@v.immutable
@attrs.frozen
class ReplicationContext:
    """What a stop condition sees: the manifest being registered and the system around it."""

    manifest: Manifest = attrs.field(validator=v.instance_of(Manifest, "a Manifest"))
    active_count: int = attrs.field(validator=v.validator(v.check_int, minimum=0))
    contract: ReplicationContract = attrs.field(
        validator=lambda _instance, attribute, value: _check_contract(attribute.name, value)
    )


def _check_contract(field: str, value: object) -> None:
    # ReplicationContract is defined below; this runs only once it exists.
    if not isinstance(value, ReplicationContract):
        raise InvalidTypeError(field, "a ReplicationContract", value)


def _check_callable(_instance: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if not callable(value):
        raise InvalidTypeError(attribute.name, "a callable taking a ReplicationContext", value)


@v.immutable
@attrs.frozen
class StopCondition:
    """A named predicate that, when true at registration, denies it."""

    name: str = attrs.field(validator=v.validator(v.check_identifier))
    description: str = attrs.field(validator=v.instance_of(str, "a string"))
    predicate: Callable[[ReplicationContext], bool] = attrs.field(validator=_check_callable)

    def is_triggered(self, context: ReplicationContext) -> bool:
        """Return whether the condition fires for ``context``."""
        return bool(self.predicate(context))


def _to_stop_conditions(value: object) -> tuple[StopCondition, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidTypeError("stop_conditions", "an iterable of StopCondition", value)
    conditions = tuple(value)
    for index, condition in enumerate(conditions):
        if not isinstance(condition, StopCondition):
            raise InvalidTypeError(f"stop_conditions[{index}]", "a StopCondition", condition)
    names = [condition.name for condition in conditions]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise InvalidValueError("stop_conditions", "conditions with distinct names", duplicates)
    return conditions


def _optional_seconds(value: object) -> float | None:
    if value is None:
        return None
    return v.check_number("expiration_seconds", value, minimum=0, inclusive=False)


@v.immutable
@attrs.frozen
class ReplicationContract:
    """The authoritative policy: how deep, how many, how fast, how long.

    ``clock_skew_seconds`` is how far in the future a manifest's ``issued_at``
    may lie before registration refuses it as forged or replayed.
    """

    max_depth: int = attrs.field(validator=v.validator(v.check_int, minimum=0))
    max_replicas: int = attrs.field(validator=v.validator(v.check_int, minimum=0))
    cooldown_seconds: float = attrs.field(converter=_cooldown_seconds)
    stop_conditions: tuple[StopCondition, ...] = attrs.field(
        default=(), converter=_to_stop_conditions
    )
    expiration_seconds: float | None = attrs.field(default=None, converter=_optional_seconds)
    clock_skew_seconds: float = attrs.field(
        default=1.0,
        converter=_clock_skew_seconds,
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


@v.immutable
@attrs.frozen
class RegistryEntry:
    """A registered worker: its manifest, when it registered, when it last sent a heartbeat."""

    manifest: Manifest = attrs.field(validator=v.instance_of(Manifest, "a Manifest"))
    last_heartbeat: datetime = attrs.field(converter=_last_heartbeat)
    registered_at: datetime = attrs.field(
        converter=_registered_at,
        default=attrs.Factory(lambda self: self.last_heartbeat, takes_self=True),
    )

    @property
    def depth(self) -> int:
        """The worker's depth in its lineage (0 for a root)."""
        return self.manifest.depth


@v.immutable
@attrs.frozen
class ContainerRecord:
    """A running worker container."""

    manifest: Manifest = attrs.field(validator=v.instance_of(Manifest, "a Manifest"))
    resources: ResourceSpec = attrs.field(validator=v.instance_of(ResourceSpec, "a ResourceSpec"))
    status: str = attrs.field(validator=v.validator(v.check_reason))
    started_at: datetime = attrs.field(converter=_started_at)
    reason: str | None = attrs.field(default=None, validator=v.optional_validator(v.check_reason))


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


# -- the whole-system state ------------------------------------------------------


_MAP = v.instance_of(immutables.Map, "an immutables.Map")


# The three state containers are dict-backed rather than slotted: there are only
# a handful alive at once, and a transition copies one field dict instead of
# re-running a validated __init__ (see replication.transitions._replace).
@v.immutable
@attrs.frozen(slots=False)
class ControllerState:
    """The controller's part of the system: policy, key, registry and history."""

    contract: ReplicationContract = attrs.field(
        validator=v.instance_of(ReplicationContract, "a ReplicationContract")
    )
    verifying_key: VerifyingKey = attrs.field()
    #: Registered workers by id.
    registry: immutables.Map[str, RegistryEntry] = attrs.field(
        factory=immutables.Map, validator=_MAP
    )
    #: Parent id -> when its most recent child registered.
    spawn_times: immutables.Map[str, datetime] = attrs.field(factory=immutables.Map, validator=_MAP)
    #: Quarantined worker id -> when it was quarantined (always a subset of the registry).
    quarantined: immutables.Map[str, datetime] = attrs.field(factory=immutables.Map, validator=_MAP)
    #: Every id this controller ever issued a manifest for -> when.
    issued_ids: immutables.Map[str, datetime] = attrs.field(factory=immutables.Map, validator=_MAP)
    #: Every id ever registered -> when; a registered id can never register again.
    registered_ids: immutables.Map[str, datetime] = attrs.field(
        factory=immutables.Map, validator=_MAP
    )
    kill_switch_engaged: bool = attrs.field(default=False, validator=v.validator(v.check_bool))

    @verifying_key.validator
    def _check_verifying_key(self, attribute: attrs.Attribute[Any], value: object) -> None:
        from replication.signing import VerifyingKey  # noqa: PLC0415 - signing imports model

        if not isinstance(value, VerifyingKey):
            raise InvalidTypeError(attribute.name, "a replication.signing.VerifyingKey", value)


@v.immutable
@attrs.frozen(slots=False)
class OrchestratorState:
    """The orchestrator's part of the system: the running containers by worker id."""

    containers: immutables.Map[str, ContainerRecord] = attrs.field(
        factory=immutables.Map, validator=_MAP
    )


@v.immutable
@attrs.frozen(slots=False)
class State:
    """The whole system: the controller's part and the orchestrator's part."""

    controller: ControllerState = attrs.field(
        validator=v.instance_of(ControllerState, "a ControllerState")
    )
    orchestrator: OrchestratorState = attrs.field(
        factory=OrchestratorState,
        validator=v.instance_of(OrchestratorState, "an OrchestratorState"),
    )

    @classmethod
    def initial(cls, contract: ReplicationContract, verifying_key: VerifyingKey) -> State:
        """Return the state of a fresh system: nothing issued, registered or running."""
        return cls(ControllerState(contract=contract, verifying_key=verifying_key))

    @property
    def contract(self) -> ReplicationContract:
        """The controller's contract."""
        return self.controller.contract

    @property
    def registry(self) -> immutables.Map[str, RegistryEntry]:
        """Registered workers by id."""
        return self.controller.registry

    @property
    def containers(self) -> immutables.Map[str, ContainerRecord]:
        """Running containers by worker id."""
        return self.orchestrator.containers


# -- unchecked constructors, for the core only ------------------------------------
#
# Transitions build records from values that are already valid (a verified
# manifest, a checked ``now``), so re-running every validator would only cost
# time: these build the same objects without it, three times faster than the
# validated __init__ (measured by benchmarks/bench.py). They are private to the
# package; everything a user constructs goes through the validated path.

_new = object.__new__
_set = object.__setattr__
# The slots' own setters: one C call each, where object.__setattr__ looks the slot up.
_entry_manifest = RegistryEntry.manifest.__set__  # type: ignore[attr-defined]
_entry_heartbeat = RegistryEntry.last_heartbeat.__set__  # type: ignore[attr-defined]
_entry_registered = RegistryEntry.registered_at.__set__  # type: ignore[attr-defined]
_record_manifest = ContainerRecord.manifest.__set__  # type: ignore[attr-defined]
_record_resources = ContainerRecord.resources.__set__  # type: ignore[attr-defined]
_record_status = ContainerRecord.status.__set__  # type: ignore[attr-defined]
_record_started = ContainerRecord.started_at.__set__  # type: ignore[attr-defined]
_record_reason = ContainerRecord.reason.__set__  # type: ignore[union-attr]


def _manifest(  # noqa: PLR0917 - private, positional like the class itself
    worker_id: str,
    parent_id: str | None,
    depth: int,
    state_snapshot: immutables.Map[str, v.FrozenJSON],
    issued_at: datetime,
    resources: ResourceSpec,
) -> Manifest:
    manifest = _new(Manifest)
    _set(manifest, "worker_id", worker_id)
    _set(manifest, "parent_id", parent_id)
    _set(manifest, "depth", depth)
    _set(manifest, "state_snapshot", state_snapshot)
    _set(manifest, "issued_at", issued_at)
    _set(manifest, "resources", resources)
    _set(manifest, "signature", "")
    return manifest


def _registry_entry(
    manifest: Manifest, last_heartbeat: datetime, registered_at: datetime
) -> RegistryEntry:
    entry = _new(RegistryEntry)
    _entry_manifest(entry, manifest)
    _entry_heartbeat(entry, last_heartbeat)
    _entry_registered(entry, registered_at)
    return entry


def _container_record(manifest: Manifest, started_at: datetime) -> ContainerRecord:
    record = _new(ContainerRecord)
    _record_manifest(record, manifest)
    _record_resources(record, manifest.resources)
    _record_status(record, "running")
    _record_started(record, started_at)
    _record_reason(record, None)
    return record


def _event(  # noqa: PLR0917 - private and positional for speed
    action: str,
    at: datetime,
    allowed: bool,  # noqa: FBT001 - positional for speed, private
    reason: str,
    worker_id: str | None,
    effects: tuple[tuple[str, str], ...] = (),
    detail: str = "",
) -> Event:
    event = _new(Event)
    fields = event.__dict__
    fields["action"] = action
    fields["at"] = at
    fields["allowed"] = allowed
    fields["reason"] = reason
    fields["worker_id"] = worker_id
    fields["effects"] = effects
    fields["detail"] = detail
    return event
