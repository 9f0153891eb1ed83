"""The messages of the wire protocol (specs/09-wire-protocol.md) and their JSON forms.

One JSON object per line, each side's messages checked against the protocol's
JSON Schema (``protocol.schema.json``, shipped beside this module: one
definition per message). The kit's values travel as plain JSON: times as
RFC 3339 in UTC with six fractional digits and a ``Z``, durations in seconds,
a manifest as its signed body (specs/03) plus ``"signature"``, a contract with
its stop conditions by name. What an implementation sends back is checked
against the schema first, then rebuilt into the kit's exact types, and a value
the kit cannot use is a :class:`WireViolation` naming the field.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from replication.conformance.adapters.calls import ContractViolation
from replication.conformance.fixtures import STOP_CONDITIONS
from replication.encoding import format_timestamp, manifest_body
from replication.errors import InvalidInputError
from replication.invariants import Observation, WorkerView
from replication.model import Manifest, NetworkPolicy, ReplicationContract, ResourceSpec

__all__ = [
    "OPS",
    "PROTOCOL",
    "SCHEMA_PATH",
    "WireViolation",
    "contract_to_wire",
    "manifest_from_wire",
    "manifest_to_wire",
    "observation_from_wire",
    "observation_to_wire",
    "parse_time",
    "resources_from_wire",
    "response_problem",
    "schema_problem",
]

#: A protocol timestamp, as R-SIGN-5 writes it.
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z\Z")
#: The version of the protocol the kit speaks (R-WIRE-2).
PROTOCOL = 1
#: The protocol's JSON Schema: ``$defs/<op>_request`` and ``$defs/<kind>_response``.
SCHEMA_PATH = Path(__file__).with_name("protocol.schema.json")

#: Every request, in the order of the specification; the value is the kind of
#: ``ok`` response it expects.
OPS: dict[str, str] = {
    "hello": "hello_ok",
    "start": "ok",
    "reset": "ok",
    "issue": "manifest_ok",
    "register": "ok",
    "launch": "ok",
    "heartbeat": "ok",
    "kill": "ok",
    "reap": "ok",
    "kill_switch": "ok",
    "quarantine": "ok",
    "release": "ok",
    "deregister": "ok",
    "expire": "ok",
    "observe": "observation_ok",
    "sign": "manifest_ok",
    "sign_with_another_key": "manifest_ok",
    "verify": "verify_ok",
}


class WireViolation(ContractViolation):
    """The implementation broke the protocol: the run cannot go on (exit code 2)."""


@cache
def _schema() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return loaded


@cache
def validator(definition: str) -> Any:
    """Return the compiled validator of one message's definition (``issue_request``, ...)."""
    schema = _schema()
    if definition not in schema["$defs"]:
        message = f"the protocol defines no message {definition!r}"
        raise KeyError(message)
    wrapped = {**schema, "$ref": f"#/$defs/{definition}"}
    return jsonschema_rs.Draft202012Validator(wrapped)


def schema_problem(definition: str, message: object) -> str | None:
    """Return why ``message`` does not match ``definition``, or ``None`` when it does."""
    error = next(iter(validator(definition).iter_errors(message)), None)
    if error is None:
        return None
    path = "/".join(str(part) for part in error.instance_path)
    return f"at /{path}: {error.message}" if path else str(error.message)


def response_problem(op: str, response: dict[str, Any]) -> str | None:
    """Return why ``response`` is no valid answer to an ``op`` request, or ``None``."""
    status = response.get("status")
    kind = {"denied": "denied", "error": "error"}.get(str(status), OPS[op])
    if op in {"hello", "start", "reset", "observe", "sign", "sign_with_another_key", "verify"} and (
        status == "denied"
    ):
        return f"{op} cannot be denied (status 'denied' is for the system's actions)"
    return schema_problem(f"{kind}_response", response)


# -- values to the wire -------------------------------------------------------------------


def manifest_to_wire(manifest: Manifest) -> dict[str, Any]:
    """Return a manifest as the protocol sends it: its signed body plus its signature."""
    return {**manifest_body(manifest), "signature": manifest.signature}


def contract_to_wire(contract: ReplicationContract) -> dict[str, Any]:
    """Return a contract as the protocol sends it; stop conditions by their names."""
    names = [condition.name for condition in contract.stop_conditions]
    unknown = [name for name in names if name not in STOP_CONDITIONS]
    if unknown:
        message = (
            f"the wire protocol carries only the named stop conditions {sorted(STOP_CONDITIONS)}, "
            f"and this contract has {unknown}"
        )
        raise ValueError(message)
    return {
        "max_depth": contract.max_depth,
        "max_replicas": contract.max_replicas,
        "cooldown_seconds": contract.cooldown_seconds,
        "expiration_seconds": contract.expiration_seconds,
        "clock_skew_seconds": contract.clock_skew_seconds,
        "stop_conditions": names,
    }


def contract_from_wire(data: dict[str, Any]) -> ReplicationContract:
    """Rebuild a contract, each stop condition made afresh (one with memory counts its own)."""
    return ReplicationContract(
        max_depth=data["max_depth"],
        max_replicas=data["max_replicas"],
        cooldown_seconds=float(data["cooldown_seconds"]),
        expiration_seconds=(
            None if data["expiration_seconds"] is None else float(data["expiration_seconds"])
        ),
        clock_skew_seconds=float(data["clock_skew_seconds"]),
        stop_conditions=[STOP_CONDITIONS[name]() for name in data["stop_conditions"]],
    )


def observation_to_wire(observation: Observation) -> dict[str, Any]:
    """Return an observation as the protocol sends it; ``null`` for what is not reported."""

    def time(moment: datetime | None) -> str | None:
        return None if moment is None else format_timestamp(moment)

    def fleet(ids: frozenset[str] | None) -> list[str] | None:
        return None if ids is None else sorted(ids)

    workers = {
        worker_id: {
            "parent_id": view.parent_id,
            "depth": view.depth,
            "registered_at": time(view.registered_at),
            "last_heartbeat": time(view.last_heartbeat),
            "last_child_registered_at": time(view.last_child_registered_at),
            "manifest": None if view.manifest is None else manifest_to_wire(view.manifest),
        }
        for worker_id, view in sorted(observation.workers.items())
    }
    return {
        "workers": workers,
        "containers": sorted(observation.containers),
        "kill_switch_engaged": observation.kill_switch_engaged,
        "quarantined": fleet(observation.quarantined),
        "registered_ever": fleet(observation.registered_ever),
        "live_processes": fleet(observation.live_processes),
    }


# -- values from the wire ------------------------------------------------------------------


@lru_cache(maxsize=4096)
def parse_time(text: str) -> datetime:
    """Parse a protocol timestamp (RFC 3339, UTC, six fractional digits, ``Z``).

    A run repeats a few instants many times (every request of a step carries
    the same ``now``): the parse is remembered.
    """
    if not _TIME.match(text):
        message = f"expected 'YYYY-MM-DDTHH:MM:SS.ffffffZ', got {text!r}"
        raise ValueError(message)
    return datetime.fromisoformat(text).astimezone(UTC)


def _time(text: str, field: str) -> datetime:
    try:
        return parse_time(text)
    except ValueError:
        message = f"{field} must be a real UTC time 'YYYY-MM-DDTHH:MM:SS.ffffffZ', got {text!r}"
        raise WireViolation(message) from None


def resources_from_wire(data: dict[str, Any]) -> ResourceSpec:
    """Rebuild the resources of a manifest or an ``issue`` request the schema accepted."""
    policy = data["network_policy"]
    return ResourceSpec(
        float(data["cpu_limit"]),
        data["memory_limit_mb"],
        NetworkPolicy(policy["allow_controller"], policy["allow_external"]),
    )


def manifest_from_wire(data: dict[str, Any], field: str = "manifest") -> Manifest:
    """Rebuild a manifest the schema accepted; a value the model refuses names its field."""
    try:
        return Manifest(
            worker_id=data["worker_id"],
            parent_id=data["parent_id"],
            depth=data["depth"],
            state_snapshot=data["state_snapshot"],
            issued_at=_time(data["issued_at"], f"{field}.issued_at"),
            resources=resources_from_wire(data["resources"]),
            signature=data["signature"],
        )
    except (InvalidInputError, TypeError, ValueError) as error:
        raise WireViolation(f"{field} cannot be a manifest: {error}") from None


class ManifestCache:
    """Manifests already rebuilt, by their JSON text: an observation repeats them every step.

    Manifests are immutable, so one built from the same JSON text is the same
    value; a bounded memory keeps a long run's from growing without end.
    """

    def __init__(self, *, size: int = 4096) -> None:
        self._known: dict[str, Manifest] = {}
        self._size = size

    def get(self, data: dict[str, Any], field: str) -> Manifest:
        """Return the manifest ``data`` describes, rebuilt once per distinct text."""
        key = json.dumps(data, sort_keys=True)
        found = self._known.get(key)
        if found is None:
            found = manifest_from_wire(data, field)
            if len(self._known) >= self._size:
                self._known.clear()
            self._known[key] = found
        return found


def observation_from_wire(data: dict[str, Any], manifests: ManifestCache) -> Observation:
    """Rebuild an observation the schema accepted."""

    def time(view: dict[str, Any], name: str, worker_id: str) -> datetime | None:
        text = view.get(name)
        return None if text is None else _time(text, f"observation.workers[{worker_id!r}].{name}")

    def fleet(name: str) -> frozenset[str] | None:
        ids = data.get(name)
        return None if ids is None else frozenset(ids)

    workers = {}
    for worker_id, view in data["workers"].items():
        manifest = view.get("manifest")
        workers[worker_id] = WorkerView(
            worker_id,
            view["parent_id"],
            view["depth"],
            registered_at=time(view, "registered_at", worker_id),
            last_heartbeat=time(view, "last_heartbeat", worker_id),
            last_child_registered_at=time(view, "last_child_registered_at", worker_id),
            manifest=(
                None
                if manifest is None
                else manifests.get(manifest, f"observation.workers[{worker_id!r}].manifest")
            ),
        )
    return Observation(
        workers,
        frozenset(data["containers"]),
        data["kill_switch_engaged"],
        quarantined=fleet("quarantined"),
        registered_ever=fleet("registered_ever"),
        live_processes=fleet("live_processes"),
    )
