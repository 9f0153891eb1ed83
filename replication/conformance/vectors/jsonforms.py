"""The JSON forms of the records in test vectors: manifests, contracts, observations.

Times are RFC 3339 in UTC with six fractional digits and a ``Z``; a manifest is
its signed body (see :mod:`replication.encoding`) plus ``"signature"``; stop
conditions are named, and only the standard ones exist in vectors.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from replication.encoding import format_timestamp, manifest_body
from replication.invariants import Observation, WorkerView
from replication.model import Manifest, NetworkPolicy, ReplicationContract, ResourceSpec
from replication.stop_conditions import STANDARD_STOP_CONDITIONS

__all__ = [
    "FORMAT",
    "SCHEMA_PATH",
    "STANDARD_STOP_CONDITIONS",
    "contract_from_json",
    "contract_to_json",
    "manifest_from_json",
    "manifest_to_json",
    "observation_from_json",
    "observation_to_json",
    "parse_time",
]

#: The vector format's name and version.
FORMAT = "replication.vectors.v1"

#: The JSON Schema of the vector format, shipped with the kit.
SCHEMA_PATH = Path(__file__).with_name("vectors.schema.json")


def _time(moment: datetime) -> str:
    return format_timestamp(moment)


def parse_time(text: str) -> datetime:
    """Parse a vector timestamp (RFC 3339, UTC, six fractional digits, ``Z``)."""
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def manifest_to_json(manifest: Manifest) -> dict[str, Any]:
    """Return a manifest as JSON: the signed body plus the signature."""
    return {**manifest_body(manifest), "signature": manifest.signature}


def manifest_from_json(data: dict[str, Any]) -> Manifest:
    """Rebuild a manifest from :func:`manifest_to_json`'s form."""
    resources = data["resources"]
    policy = resources["network_policy"]
    return Manifest(
        worker_id=data["worker_id"],
        parent_id=data["parent_id"],
        depth=data["depth"],
        state_snapshot=data["state_snapshot"],
        issued_at=parse_time(data["issued_at"]),
        resources=ResourceSpec(
            resources["cpu_limit"],
            resources["memory_limit_mb"],
            NetworkPolicy(policy["allow_controller"], policy["allow_external"]),
        ),
        signature=data["signature"],
    )


def contract_to_json(contract: ReplicationContract) -> dict[str, Any]:
    """Return a contract as JSON; stop conditions by their standard names."""
    return {
        "max_depth": contract.max_depth,
        "max_replicas": contract.max_replicas,
        "cooldown_seconds": contract.cooldown_seconds,
        "expiration_seconds": contract.expiration_seconds,
        "clock_skew_seconds": contract.clock_skew_seconds,
        "stop_conditions": [condition.name for condition in contract.stop_conditions],
    }


def contract_from_json(data: dict[str, Any]) -> ReplicationContract:
    """Rebuild a contract; stop conditions must be standard ones."""
    return ReplicationContract(
        max_depth=data["max_depth"],
        max_replicas=data["max_replicas"],
        cooldown_seconds=data["cooldown_seconds"],
        expiration_seconds=data["expiration_seconds"],
        clock_skew_seconds=data["clock_skew_seconds"],
        stop_conditions=[STANDARD_STOP_CONDITIONS[name] for name in data["stop_conditions"]],
    )


def observation_to_json(observation: Observation) -> dict[str, Any]:
    """Return an observation as JSON (every optional datum the reference reports)."""

    def worker(view: WorkerView) -> dict[str, Any]:
        return {
            "parent_id": view.parent_id,
            "depth": view.depth,
            "registered_at": _time(view.registered_at) if view.registered_at else None,
            "last_heartbeat": _time(view.last_heartbeat) if view.last_heartbeat else None,
            "last_child_registered_at": (
                _time(view.last_child_registered_at) if view.last_child_registered_at else None
            ),
        }

    return {
        "workers": {wid: worker(view) for wid, view in sorted(observation.workers.items())},
        "containers": sorted(observation.containers),
        "kill_switch_engaged": observation.kill_switch_engaged,
        "quarantined": sorted(observation.quarantined or ()),
        "registered_ever": sorted(observation.registered_ever or ()),
    }


def observation_from_json(data: dict[str, Any]) -> Observation:
    """Rebuild an observation from its JSON form."""

    def optional_time(text: str | None) -> datetime | None:
        return parse_time(text) if text else None

    workers = {
        worker_id: WorkerView(
            worker_id,
            view["parent_id"],
            view["depth"],
            registered_at=optional_time(view["registered_at"]),
            last_heartbeat=optional_time(view["last_heartbeat"]),
            last_child_registered_at=optional_time(view["last_child_registered_at"]),
        )
        for worker_id, view in data["workers"].items()
    }
    return Observation(
        workers,
        frozenset(data["containers"]),
        data["kill_switch_engaged"],
        quarantined=frozenset(data["quarantined"]),
        registered_ever=frozenset(data["registered_ever"]),
    )
