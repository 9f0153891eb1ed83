"""The JSON forms of what a journal row and a trace step hold.

Times are RFC 3339 in UTC with six fractional digits and a ``Z``
(:func:`replication.encoding.format_timestamp`); a manifest is its signed body
(:func:`replication.encoding.manifest_body`) plus ``"signature"``; a contract
names its stop conditions; a duration is a number of seconds. These are the
forms of the test vectors (specs/05-vectors.md), so one implementation's
vectors and traces read alike.

Encoding takes the arguments a transition accepted and converts them with the
same checks (:mod:`replication._validation`), so what is recorded is exactly
what was decided on. Decoding is strict: every field present, of its exact
JSON type, nothing extra; a bad value raises
:class:`~replication.errors.InvalidInputError` naming its path
(``args.manifest.depth``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from replication import _validation as v
from replication._frozen import freeze_json, thaw_json
from replication.encoding import format_timestamp, manifest_body
from replication.errors import InvalidTypeError, InvalidValueError
from replication.model import Manifest, NetworkPolicy, ReplicationContract, ResourceSpec

if TYPE_CHECKING:
    from replication.decisions import Decision

__all__ = [
    "ACTION_ARGUMENTS",
    "contract_to_json",
    "decode_arguments",
    "encode_arguments",
    "event_to_json",
    "manifest_from_json",
    "manifest_to_json",
    "outcome_of",
    "parse_time",
    "same_events",
    "stop_condition_names",
]

_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z")

#: An action's JSON arguments: name -> (encode the accepted value, decode the JSON value).
Codec = tuple[Callable[[str, Any], Any], Callable[[str, Any], Any]]


# -- scalars ------------------------------------------------------------------------------


def parse_time(field: str, value: object) -> datetime:
    """Read a time written as ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (UTC)."""
    if type(value) is not str:
        raise InvalidTypeError(field, "a time as 'YYYY-MM-DDTHH:MM:SS.ffffffZ'", value)
    if _TIME.fullmatch(value) is None:
        raise InvalidValueError(field, "a time as 'YYYY-MM-DDTHH:MM:SS.ffffffZ'", value)
    try:
        # The pattern above is the exact form; fromisoformat (which reads "Z" as UTC
        # since Python 3.11) only parses it, a hundred times faster than strptime.
        return datetime.fromisoformat(value)
    except ValueError:
        raise InvalidValueError(field, "a real calendar time", value) from None


def _object(field: str, value: object, keys: tuple[str, ...]) -> dict[str, Any]:
    """Return ``value`` if it is a JSON object with exactly ``keys``."""
    if type(value) is not dict:
        raise InvalidTypeError(field, f"an object with {', '.join(keys) or 'no fields'}", value)
    if len(value) == len(keys) and all(key in value for key in keys):
        return value
    missing = [key for key in keys if key not in value]
    if missing:
        raise InvalidValueError(field, f"an object with {', '.join(keys)}", f"no {missing[0]!r}")
    extra = sorted(set(value) - set(keys))
    if extra:
        raise InvalidValueError(field, f"an object with only {', '.join(keys)}", extra)
    return value


def _exact(kind: type, expected: str) -> Callable[[str, Any], Any]:
    def check(field: str, value: object) -> Any:
        if type(value) is not kind:
            raise InvalidTypeError(field, expected, value)
        return value

    return check


def _nullable(check: Callable[[str, Any], Any]) -> Callable[[str, Any], Any]:
    return lambda field, value: None if value is None else check(field, value)


_json_str = _exact(str, "a string")
_json_bool = _exact(bool, "a boolean")


def _json_int(field: str, value: object) -> int:
    # JSON has one number type: 512 and 512.0 are the same number (RFC 8785 writes 512).
    if type(value) is float and value.is_integer():
        value = int(value)
    return v.check_int(field, _exact(int, "an integer")(field, value), minimum=0)


def _json_number(field: str, value: object) -> float:
    if type(value) not in {int, float}:
        raise InvalidTypeError(field, "a number", value)
    return v.check_number(field, value, minimum=0, inclusive=True)


# -- records ------------------------------------------------------------------------------

_RESOURCE_KEYS = ("cpu_limit", "memory_limit_mb", "network_policy")
_NETWORK_KEYS = ("allow_controller", "allow_external")
_MANIFEST_KEYS = (
    "depth", "issued_at", "parent_id", "resources", "signature", "state_snapshot", "worker_id",
)  # fmt: skip
_CONTRACT_KEYS = (
    "clock_skew_seconds", "cooldown_seconds", "expiration_seconds", "max_depth",
    "max_replicas", "stop_conditions",
)  # fmt: skip


def resources_to_json(resources: ResourceSpec) -> dict[str, Any]:
    """Return resource limits as JSON."""
    network = resources.network_policy
    return {
        "cpu_limit": resources.cpu_limit,
        "memory_limit_mb": resources.memory_limit_mb,
        "network_policy": {
            "allow_controller": network.allow_controller,
            "allow_external": network.allow_external,
        },
    }


def resources_from_json(field: str, value: object) -> ResourceSpec:
    """Read resource limits; the record's own checks apply."""
    data = _object(field, value, _RESOURCE_KEYS)
    network = _object(f"{field}.network_policy", data["network_policy"], _NETWORK_KEYS)
    return ResourceSpec(
        _json_number(f"{field}.cpu_limit", data["cpu_limit"]),
        _json_int(f"{field}.memory_limit_mb", data["memory_limit_mb"]),
        NetworkPolicy(
            _json_bool(f"{field}.network_policy.allow_controller", network["allow_controller"]),
            _json_bool(f"{field}.network_policy.allow_external", network["allow_external"]),
        ),
    )


def manifest_to_json(manifest: Manifest) -> dict[str, Any]:
    """Return a manifest as its signed body plus its signature."""
    return {**manifest_body(manifest), "signature": manifest.signature}


def manifest_from_json(field: str, value: object) -> Manifest:
    """Rebuild a manifest from :func:`manifest_to_json`'s form; the record's checks apply."""
    data = _object(field, value, _MANIFEST_KEYS)
    snapshot = data["state_snapshot"]
    if type(snapshot) is not dict:
        raise InvalidTypeError(f"{field}.state_snapshot", "an object", snapshot)
    try:
        return Manifest(
            worker_id=_json_str(f"{field}.worker_id", data["worker_id"]),
            parent_id=_nullable(_json_str)(f"{field}.parent_id", data["parent_id"]),
            depth=_json_int(f"{field}.depth", data["depth"]),
            state_snapshot=snapshot,
            issued_at=parse_time(f"{field}.issued_at", data["issued_at"]),
            resources=resources_from_json(f"{field}.resources", data["resources"]),
            signature=_json_str(f"{field}.signature", data["signature"]),
        )
    except (InvalidTypeError, InvalidValueError) as error:
        if error.field.startswith(field):
            raise
        raise type(error)(f"{field}.{error.field}", error.expected, error.got) from None


def stop_condition_names(contract: ReplicationContract) -> list[str]:
    """Return the names of a contract's stop conditions, in order."""
    return [condition.name for condition in contract.stop_conditions]


def contract_to_json(contract: ReplicationContract) -> dict[str, Any]:
    """Return a contract as JSON, its stop conditions by name."""
    return {
        "clock_skew_seconds": contract.clock_skew_seconds,
        "cooldown_seconds": contract.cooldown_seconds,
        "expiration_seconds": contract.expiration_seconds,
        "max_depth": contract.max_depth,
        "max_replicas": contract.max_replicas,
        "stop_conditions": stop_condition_names(contract),
    }


def contract_fields(field: str, value: object) -> dict[str, Any]:
    """Check a contract's JSON form; return it, for :func:`contract_from_json`."""
    data = _object(field, value, _CONTRACT_KEYS)
    names = data["stop_conditions"]
    if type(names) is not list or any(type(name) is not str for name in names):
        raise InvalidTypeError(f"{field}.stop_conditions", "a list of names", names)
    return data


def contract_from_json(
    field: str, value: object, stop_conditions: Mapping[str, Any]
) -> ReplicationContract:
    """Rebuild a contract; each named stop condition must be in ``stop_conditions``."""
    data = contract_fields(field, value)
    unknown = [name for name in data["stop_conditions"] if name not in stop_conditions]
    if unknown:
        raise InvalidValueError(
            f"{field}.stop_conditions", "stop conditions whose predicates are known", unknown
        )
    try:
        return ReplicationContract(
            max_depth=_json_int(f"{field}.max_depth", data["max_depth"]),
            max_replicas=_json_int(f"{field}.max_replicas", data["max_replicas"]),
            cooldown_seconds=_json_number(f"{field}.cooldown_seconds", data["cooldown_seconds"]),
            expiration_seconds=_nullable(_json_number)(
                f"{field}.expiration_seconds", data["expiration_seconds"]
            ),
            clock_skew_seconds=_json_number(
                f"{field}.clock_skew_seconds", data["clock_skew_seconds"]
            ),
            stop_conditions=[stop_conditions[name] for name in data["stop_conditions"]],
        )
    except (InvalidTypeError, InvalidValueError) as error:
        if error.field.startswith(field):
            raise
        raise type(error)(f"{field}.{error.field}", error.expected, error.got) from None


def event_to_json(event: Any) -> dict[str, Any]:
    """Return an audit event as JSON; ``effects`` are ``[kind, worker_id]`` pairs."""
    return {
        "action": event.action,
        "allowed": event.allowed,
        "at": format_timestamp(event.at),
        "detail": event.detail,
        "effects": [[kind, worker_id] for kind, worker_id in event.effects],
        "reason": event.reason,
        "worker_id": event.worker_id,
    }


def same_events(recorded: object, events: tuple[Any, ...], now: datetime, at: str) -> bool:
    """Whether recorded events (JSON) are ``events``: all but ``detail``, effects in any order.

    ``detail`` is for humans only (R-AUDIT-1). The order of effects among
    workers is not normative (R-AUDIT-3 orders only one worker's kill before its
    deregistration), and the model's follows the iteration order of its maps,
    which changes with Python's per-process string hashing: effects are
    compared as a multiset. Field by field, without building the events' JSON
    forms: replay compares every row's events, and this is most of a
    heartbeat's replay. ``at`` is ``now`` as recorded: every event of a step
    happens at its ``now``.
    """
    if type(recorded) is not list or len(recorded) != len(events):
        return False
    for found, event in zip(recorded, events, strict=True):
        if (
            type(found) is not dict
            or found.get("action") != event.action
            or found.get("allowed") is not event.allowed
            or found.get("reason") != event.reason
            or found.get("worker_id") != event.worker_id
            or found.get("at") != (at if event.at == now else format_timestamp(event.at))
            or set(found) != _EVENT_KEYS
            or type(found["detail"]) is not str
        ):
            return False
        effects = found["effects"]
        if type(effects) is not list or len(effects) != len(event.effects):
            return False
        pairs = [tuple(effect) if type(effect) is list else None for effect in effects]
        if pairs != list(event.effects) and sorted(map(str, pairs)) != sorted(
            map(str, event.effects)
        ):
            return False
    return True


_EVENT_KEYS = {"action", "allowed", "at", "detail", "effects", "reason", "worker_id"}


# -- action arguments -------------------------------------------------------------------


def _seconds_to_json(field: str, value: object) -> float:
    delta = v.check_timedelta(field, value)
    seconds = delta.total_seconds()
    try:
        exact = timedelta(seconds=seconds) == delta
    except OverflowError:  # rounded up past timedelta.max
        exact = False
    if not exact:
        raise InvalidValueError(
            field, "a duration a journal records exactly (at most 2**53 - 1 microseconds)", delta
        )
    return seconds


def _seconds_from_json(field: str, value: object) -> timedelta:
    seconds = _json_number(field, value)
    try:
        return timedelta(seconds=seconds)
    except OverflowError:
        raise InvalidValueError(field, "a duration datetime can represent", value) from None


def _snapshot_to_json(field: str, value: object) -> object:
    return None if value is None else thaw_json(freeze_json(field, value))


def _snapshot_from_json(field: str, value: object) -> object:
    if value is None:
        return None
    if type(value) is not dict:
        raise InvalidTypeError(field, "an object or null", value)
    return freeze_json(field, value)


def _manifest_to_json(field: str, value: object) -> dict[str, Any]:
    return manifest_to_json(v.check_record(field, value, Manifest, "a Manifest"))


def _resources_to_json(field: str, value: object) -> dict[str, Any]:
    return resources_to_json(v.check_record(field, value, ResourceSpec, "a ResourceSpec"))


_WORKER: Codec = (v.exact_str, _json_str)
_REASON: Codec = (v.check_reason, v.check_reason)
_MANIFEST: Codec = (_manifest_to_json, manifest_from_json)
_ID: Codec = (
    lambda field, value: v.optional(v.check_identifier, field, value),
    lambda field, value: v.optional(v.check_identifier, field, _nullable(_json_str)(field, value)),
)

#: Every action a journal records and a trace may hold, with its arguments by name.
ACTION_ARGUMENTS: dict[str, dict[str, Codec]] = {
    "issue_manifest": {
        "depth": (
            lambda field, value: v.optional(v.check_int, field, value, minimum=0),
            _nullable(_json_int),
        ),
        "parent_id": _ID,
        "resources": (_resources_to_json, resources_from_json),
        "state_snapshot": (_snapshot_to_json, _snapshot_from_json),
        "worker_id": _ID,
    },
    "may_spawn": {"parent_id": _ID},
    "register_worker": {"manifest": _MANIFEST},
    "launch_worker": {"manifest": _MANIFEST},
    "start_worker": {"manifest": _MANIFEST},
    "heartbeat": {"worker_id": _WORKER},
    "release_worker": {"worker_id": _WORKER},
    "enforce_resource_bounds": {"worker_id": _WORKER},
    "enforce_container_bounds": {"worker_id": _WORKER},
    "kill_worker": {"reason": _REASON, "worker_id": _WORKER},
    "kill_container": {"reason": _REASON, "worker_id": _WORKER},
    "deregister_worker": {"reason": _REASON, "worker_id": _WORKER},
    "quarantine_worker": {"reason": _REASON, "worker_id": _WORKER},
    "kill_all_containers": {"reason": _REASON},
    "engage_kill_switch": {"reason": _REASON},
    "reap_stale_workers": {"timeout_seconds": (_seconds_to_json, _seconds_from_json)},
    "expire_workers": {},
}

#: Arguments a facade call may leave out, with the value the transition then uses.
_DEFAULTS: dict[str, dict[str, object]] = {
    "issue_manifest": {"depth": None, "parent_id": None, "state_snapshot": None, "worker_id": None},
    "engage_kill_switch": {"reason": "kill_switch"},
    "may_spawn": {"parent_id": None},
}
#: Python keyword -> JSON name, where they differ.
_RENAMED = {"timeout": "timeout_seconds"}


def encode_arguments(action: str, arguments: Mapping[str, object]) -> dict[str, Any]:
    """Return an action's arguments, as the transition accepted them, in their JSON form.

    Arguments left to their defaults are written out; the controller's signing
    key, which ``issue_manifest`` takes, is never recorded.
    """
    given = {_RENAMED.get(name, name): value for name, value in arguments.items() if name != "key"}
    complete = {**_DEFAULTS.get(action, {}), **given}
    codecs = ACTION_ARGUMENTS[action]
    return {name: codecs[name][0](name, complete[name]) for name in sorted(codecs)}


def decode_arguments(action: str, value: object) -> dict[str, Any]:
    """Return an action's JSON arguments as the keyword arguments of its transition."""
    codecs = ACTION_ARGUMENTS[action]
    data = _object("args", value, tuple(sorted(codecs)))
    keywords = {json: python for python, json in _RENAMED.items()}
    return {
        keywords.get(name, name): decode(f"args.{name}", data[name])
        for name, (_, decode) in codecs.items()
    }


def outcome_of(action: str, decision: Decision) -> dict[str, Any]:
    """Return what a row records of a decision."""
    denial = decision.denial
    outcome: dict[str, Any] = {
        "decision": "allowed" if denial is None else "denied",
        "events": [event_to_json(event) for event in decision.events],
        "reason": None if denial is None else denial.reason.value,
    }
    if action == "issue_manifest" and denial is None:
        outcome["manifest"] = manifest_to_json(decision.outcome.manifest)
    return outcome
