"""The model: frozen records and the whole-system state they make up.

Everything here is immutable and validated at construction; a change is a new
value, made by the pure functions of :mod:`replication.transitions` or by
``attrs.evolve``. The whole system is one :class:`State`, composed of the
controller's part (:class:`ControllerState`) and the orchestrator's part
(:class:`OrchestratorState`). The records they hold are defined in
:mod:`replication._records` and re-exported here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import attrs
import immutables

from replication import _validation as v
from replication._exceptions import InvalidTypeError, InvalidValueError
from replication._records import (
    ContainerRecord,
    Effect,
    Event,
    Manifest,
    NetworkPolicy,
    RegistryEntry,
    ReplicationContext,
    ReplicationContract,
    ResourceSpec,
    StopCondition,
)
from replication.keys import VerifyingKey

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from replication._frozen import FrozenDict

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
# re-running a validated __init__ (see replication._outcome.replace_fields).

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


# What this module re-exports from the private modules that define it is shown
# under this public path (in tracebacks, reprs, pickles and the API reference),
# as it was before it moved there; httpx does the same for its private modules.
for _name in __all__:
    _value = globals()[_name]
    if getattr(_value, "__module__", "").startswith("replication._"):
        _value.__module__ = __name__
del _name, _value
