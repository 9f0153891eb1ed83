"""The benchmark's fixed world, and the fleets built in it.

One key, one resource spec, one contract and one clock for every run; a fleet
is planned once per size (``plan_fleet``) and built through the pure core
(``build_core``) or through the mutable baseline (``build_baseline``). The
baseline mutates in place, so its measured operations save and restore it
around each repetition (``save_baseline``, ``restore_baseline``), untimed.
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from benchmarks.mutable_baseline import BaselineKey, BaselineSystem
from replication.model import ReplicationContract, ResourceSpec, State
from replication.signing import SigningKey
from replication.transitions import issue_manifest, launch_worker, register_worker

if TYPE_CHECKING:
    from collections.abc import Sequence

# -- the fixed world ------------------------------------------------------------------

SEED = bytes(range(32))
KEY = SigningKey.from_seed(SEED)
BASELINE_KEY = BaselineKey(SEED)
RESOURCES = ResourceSpec(cpu_limit=1.0, memory_limit_mb=512)
T0 = datetime(2026, 1, 1, tzinfo=UTC)
STEP = timedelta(milliseconds=1)
MAX_DEPTH = 64
MAX_REPLICAS = 10_000_000
COOLDOWN_SECONDS = 0
MAX_ROOTS = 300
GRANDCHILD_EVERY = 10
REASON = "benchmark"


# -- fleets ------------------------------------------------------------------------------


def plan_fleet(n: int) -> tuple[list[str | None], list[int]]:
    """Parent id and depth of worker ``i`` (its id is ``w{i+1}``, the core's generated id).

    ``min(300, n // 10)`` roots come first; then every tenth worker is a child of
    the worker just before it when that one sits at depth 1 (so depth 2), and every
    other worker is a child of a root, round-robin (depth 1). Cooldown is 0, so a
    parent may register a child every millisecond.
    """
    roots = min(MAX_ROOTS, max(1, n // 10))
    parents: list[str | None] = []
    depths: list[int] = []
    for i in range(n):
        if i < roots:
            parents.append(None)
            depths.append(0)
        elif i % GRANDCHILD_EVERY == 0 and depths[i - 1] == 1:
            parents.append(f"w{i}")
            depths.append(2)
        else:
            parents.append(f"w{i % roots + 1}")
            depths.append(1)
    return parents, depths


def contract() -> ReplicationContract:
    return ReplicationContract(
        max_depth=MAX_DEPTH, max_replicas=MAX_REPLICAS, cooldown_seconds=COOLDOWN_SECONDS
    )


def build_core(parents: Sequence[str | None]) -> State:
    state = State.initial(contract(), KEY.verifying_key)
    for i, parent in enumerate(parents):
        now = T0 + i * STEP
        state, _, manifest = issue_manifest(
            state, KEY, resources=RESOURCES, now=now, parent_id=parent
        )
        state, _, _ = register_worker(state, manifest, now=now)  # type: ignore[arg-type]
        state, _, _ = launch_worker(state, manifest, now=now)  # type: ignore[arg-type]
    return state


def new_baseline() -> BaselineSystem:
    return BaselineSystem(
        max_depth=MAX_DEPTH,
        max_replicas=MAX_REPLICAS,
        cooldown_seconds=COOLDOWN_SECONDS,
        public_key_raw=BASELINE_KEY.public_raw,
    )


def build_baseline(parents: Sequence[str | None]) -> BaselineSystem:
    system = new_baseline()
    for i, parent in enumerate(parents):
        now = T0 + i * STEP
        manifest = system.issue_manifest(
            BASELINE_KEY, resources=RESOURCES, now=now, parent_id=parent
        )
        system.register_worker(manifest, now=now)
        system.launch_worker(manifest, now=now)
    system.audit.clear()
    return system


_BASELINE_FIELDS = ("registry", "containers", "quarantined", "spawn_times", "issued_ids")
_BASELINE_FIELDS += ("registered_ids",)


def save_baseline(system: BaselineSystem) -> dict[str, Any]:
    saved: dict[str, Any] = {name: getattr(system, name).copy() for name in _BASELINE_FIELDS}
    saved["kill_switch_engaged"] = system.kill_switch_engaged
    _age()
    return saved


def restore_baseline(system: BaselineSystem, saved: dict[str, Any]) -> None:
    for name in _BASELINE_FIELDS:
        setattr(system, name, saved[name].copy())
    system.kill_switch_engaged = saved["kill_switch_engaged"]
    system.audit.clear()
    _age()


def _age() -> None:
    """Move the dicts just copied out of the young generations (untimed).

    Left young, a copied 100,000-entry dict would be traversed by every young
    collection during the next timed batch: a cost of the benchmark's own
    save/restore, not of the baseline (whose registry, in real use, is old).
    """
    gc.collect(1)
