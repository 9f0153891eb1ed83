"""Shared helpers for the example-based tests: a fixed key, a fixed time, small fleets."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

from replication.model import ReplicationContract, ResourceSpec, State
from replication.signing import SigningKey
from replication.transitions import issue_manifest, launch_worker, register_worker

T0 = datetime(2026, 1, 1, tzinfo=UTC)
KEY = SigningKey.from_seed(bytes(range(32)))
OTHER_KEY = SigningKey.from_seed(bytes(range(1, 33)))
RESOURCES = ResourceSpec(cpu_limit=1.0, memory_limit_mb=512)


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)


def make_contract(**overrides: object) -> ReplicationContract:
    values: dict[str, object] = {"max_depth": 2, "max_replicas": 10, "cooldown_seconds": 10.0}
    values.update(overrides)
    return ReplicationContract(**values)  # type: ignore[arg-type]


def fresh(**overrides: object) -> State:
    return State.initial(make_contract(**overrides), KEY.verifying_key)


def spawn(state: State, parent: str | None = None, *, now: datetime = T0, **kwargs: object):
    """Issue and register one worker; return (state, manifest)."""
    state, _, manifest = issue_manifest(
        state, KEY, parent_id=parent, resources=RESOURCES, now=now, **kwargs
    )
    state, _, _ = register_worker(state, manifest, now=now)
    return state, manifest


def run(state: State, parent: str | None = None, *, now: datetime = T0, **kwargs: object):
    """Issue, register and launch one worker; return (state, manifest)."""
    state, manifest = spawn(state, parent, now=now, **kwargs)
    state, _, _ = launch_worker(state, manifest, now=now)
    return state, manifest


#: The command prefix that runs Python as a script backgrounded without job
#: control is run: with ``SIGINT`` ignored, a disposition ``exec`` keeps.
IGNORING_SIGINT = (
    sys.executable,
    "-c",
    (
        "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    ),
)
