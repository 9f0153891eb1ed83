"""The model: frozen records and the whole-system state they make up.

Everything here is immutable and validated at construction; a change is a new
value, made by the pure functions of :mod:`replication.transitions` or by
``attrs.evolve``. The whole system is one :class:`State`, composed of the
controller's part (:class:`ControllerState`) and the orchestrator's part
(:class:`OrchestratorState`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any, NamedTuple

import attrs
import immutables

from replication import _validation as v
from replication._canonical import canonical_json, manifest_payload_of
from replication._exceptions import InvalidTypeError, InvalidValueError
from replication._frozen import FrozenDict, FrozenList, freeze_json, frozen_list, thaw_json
from replication.keys import VerifyingKey

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


# -- the whole-system state ------------------------------------------------------


def _map_of(
    field: str, value: object, value_check: Callable[[str, object], object]
) -> immutables.Map[str, Any]:
    """Check a state map: an ``immutables.Map`` with exact ``str`` keys.

    Each value passes ``value_check(path, value)``; a key that is a ``str``
    subclass, or a value the check converts, makes a new map of plain twins
    (R-TRUST-1).
    """
    if type(value) is not immutables.Map:
        raise InvalidTypeError(field, "an immutables.Map", value)
    plain: dict[str, Any] = {}
    changed = False
    for key, item in immutables.Map.items(value):
        text = v.check_identifier(f"{field} key", key)
        if text in plain:
            raise InvalidValueError(f"{field} key", "keys that are distinct strings", text)
        checked = plain[text] = value_check(f"{field}[{text!r}]", item)
        changed = changed or text is not key or checked is not item
    return immutables.Map(plain) if changed else value


def _entry(path: str, value: object) -> object:
    return v.check_record(path, value, RegistryEntry, "a RegistryEntry")


def _container(path: str, value: object) -> object:
    return v.check_record(path, value, ContainerRecord, "a ContainerRecord")


def _times(path: str, value: object) -> datetime:
    return v.check_aware_datetime(path, value)


def _check_keys_name_their_records(
    field: str, records: immutables.Map[str, Any], name: Callable[[Any], str]
) -> None:
    for key, record in records.items():
        if name(record) != key:
            raise InvalidValueError(
                f"{field}[{key!r}]", f"a record for {key!r}", f"one for {name(record)!r}"
            )


# The three state containers are dict-backed rather than slotted: there are only
# a handful alive at once, and a transition copies one field dict instead of
# re-running a validated __init__ (see replication.transitions._replace).

# Converters of ControllerState's fields (named functions: mypy's attrs plugin needs them).


def _to_contract(value: object) -> ReplicationContract:
    return v.check_record("contract", value, ReplicationContract, "a ReplicationContract")  # type: ignore[no-any-return]


def _to_registry(value: object) -> immutables.Map[str, RegistryEntry]:
    return _map_of("registry", value, _entry)


def _to_spawn_times(value: object) -> immutables.Map[str, datetime]:
    return _map_of("spawn_times", value, _times)


def _to_quarantined(value: object) -> immutables.Map[str, datetime]:
    return _map_of("quarantined", value, _times)


def _to_issued_ids(value: object) -> immutables.Map[str, datetime]:
    return _map_of("issued_ids", value, _times)


def _to_registered_ids(value: object) -> immutables.Map[str, datetime]:
    return _map_of("registered_ids", value, _times)


def _to_kill_switch_engaged(value: object) -> bool:
    return v.check_bool("kill_switch_engaged", value)


@v.immutable
@attrs.frozen(slots=False)
class ControllerState:
    """The controller's part of the system: policy, key, registry and history.

    Built by hand, it is checked as a whole: every key is an exact ``str``, each
    registry entry is filed under its own worker id, and the quarantined are
    registered. Transitions build their results without re-checking.
    """

    contract: ReplicationContract = attrs.field(converter=_to_contract)
    verifying_key: VerifyingKey = attrs.field()
    #: Registered workers by id.
    registry: immutables.Map[str, RegistryEntry] = attrs.field(
        factory=immutables.Map, converter=_to_registry
    )
    #: Parent id -> when its most recent child registered.
    spawn_times: immutables.Map[str, datetime] = attrs.field(
        factory=immutables.Map, converter=_to_spawn_times
    )
    #: Quarantined worker id -> when it was quarantined (always a subset of the registry).
    quarantined: immutables.Map[str, datetime] = attrs.field(
        factory=immutables.Map, converter=_to_quarantined
    )
    #: Every id this controller ever issued a manifest for -> when.
    issued_ids: immutables.Map[str, datetime] = attrs.field(
        factory=immutables.Map, converter=_to_issued_ids
    )
    #: Every id ever registered -> when; a registered id can never register again.
    registered_ids: immutables.Map[str, datetime] = attrs.field(
        factory=immutables.Map, converter=_to_registered_ids
    )
    kill_switch_engaged: bool = attrs.field(default=False, converter=_to_kill_switch_engaged)

    @verifying_key.validator
    def _check_verifying_key(self, attribute: attrs.Attribute[Any], value: object) -> None:
        v.check_record(attribute.name, value, VerifyingKey, "a replication.signing.VerifyingKey")

    def __attrs_post_init__(self) -> None:
        _check_keys_name_their_records(
            "registry", self.registry, lambda entry: entry.manifest.worker_id
        )
        stray = sorted(set(self.quarantined) - set(self.registry))
        if stray:
            raise InvalidValueError("quarantined", "ids of registered workers", stray)


# Converters of OrchestratorState's fields (named functions: mypy's attrs plugin needs them).


def _to_containers(value: object) -> immutables.Map[str, ContainerRecord]:
    return _map_of("containers", value, _container)


@v.immutable
@attrs.frozen(slots=False)
class OrchestratorState:
    """The orchestrator's part of the system: the running containers by worker id."""

    containers: immutables.Map[str, ContainerRecord] = attrs.field(
        factory=immutables.Map, converter=_to_containers
    )

    def __attrs_post_init__(self) -> None:
        _check_keys_name_their_records(
            "containers", self.containers, lambda record: record.manifest.worker_id
        )


# Converters of State's fields (named functions: mypy's attrs plugin needs them).


def _to_controller(value: object) -> ControllerState:
    return v.check_record("controller", value, ControllerState, "a ControllerState")  # type: ignore[no-any-return]


def _to_orchestrator(value: object) -> OrchestratorState:
    return v.check_record("orchestrator", value, OrchestratorState, "an OrchestratorState")  # type: ignore[no-any-return]


@v.immutable
@attrs.frozen(slots=False)
class State:
    """The whole system: the controller's part and the orchestrator's part."""

    controller: ControllerState = attrs.field(converter=_to_controller)
    orchestrator: OrchestratorState = attrs.field(
        factory=OrchestratorState,
        converter=_to_orchestrator,
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
    state_snapshot: FrozenDict,
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


def _compose(controller: ControllerState, orchestrator: OrchestratorState) -> State:
    """Return the whole-system state of two parts already checked."""
    state = _new(State)
    fields = state.__dict__
    fields["controller"] = controller
    fields["orchestrator"] = orchestrator
    return state


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
