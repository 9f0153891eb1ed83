"""Benchmark of the reference model at fleets of up to 100,000 workers.

Run from the repository root::

    python benchmarks/bench.py                 # sizes 100,1000,10000,100000 (a few minutes)
    python benchmarks/bench.py --quick         # a tiny run, a few seconds
    python benchmarks/bench.py --json out.json  # also write every figure as JSON
    python benchmarks/bench.py --machine properties.reference_machine:ReferenceMachine

Every figure is measured in the same run as its two baselines and printed both
as an absolute time and as ratios to them:

* raw Ed25519 sign + verify (``cryptography``) over a payload of the size of a
  manifest's ``signing_payload``;
* ``benchmarks/mutable_baseline.py``, a plain mutable-dict implementation of
  the same rules (same checks in the same order, same input validation, one
  audit record per decision, manifests signed and verified over the same
  canonical bytes).

Fleets are built through the pure core (``issue_manifest``, ``register_worker``,
``launch_worker``) with a fixed key and explicit ``now`` datetimes. Single
operations are timed against a fixed pre-built state (the transitions are pure,
so each is applied to the same state, or chained where the operation is one a
live system chains), in batches that amortise the timer, and the median of the
repetitions is reported. The garbage collector stays enabled, as in real use;
the figure with it disabled is printed alongside. The targets are ratios
measured in this run; nothing here is a timed assertion.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import gc
import importlib
import itertools
import json
import math
import os
import platform
import random
import statistics
import sys
import time
import tracemalloc
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # run as a script: make `replication` and `benchmarks` importable
    sys.path.insert(0, str(ROOT))

import attrs  # noqa: E402
import cryptography  # noqa: E402
import immutables  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from benchmarks.mutable_baseline import BaselineKey, BaselineSystem  # noqa: E402
from replication.model import ReplicationContract, ResourceSpec, State  # noqa: E402
from replication.signing import SigningKey  # noqa: E402
from replication.transitions import (  # noqa: E402
    engage_kill_switch,
    heartbeat,
    issue_manifest,
    kill_worker,
    launch_worker,
    reap_stale_workers,
    register_worker,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = [
    "OPERATIONS",
    "Config",
    "format_report",
    "main",
    "run_benchmark",
    "run_machine",
]

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

#: Operation keys, in table order, with their labels.
OPERATIONS: dict[str, str] = {
    "issue_register_launch": "issue+register+launch",
    "heartbeat": "heartbeat",
    "kill_worker": "kill_worker (running)",
    "reap_per_worker": "reap, per reaped worker",
    "reap_per_call": "reap, per call (1% stale)",
    "kill_switch": "kill switch, whole fleet",
    "kill_switch_per_worker": "kill switch, per worker",
}
#: Operations whose cost at the largest size must stay within SCALING_LIMIT of the smallest.
#: A reap call does work proportional to the fleet by construction (1% of it is stale), so
#: its per-reaped-worker cost is the per-operation figure; likewise the kill switch.
SCALED = ("issue_register_launch", "heartbeat", "kill_worker", "reap_per_worker")
SCALED_ALSO = ("kill_switch_per_worker",)
SIGN_VERIFY_LIMIT = 1.2
SCALING_LIMIT = 1.5
BASELINE_LIMIT = 3.0
KILL_SWITCH_SECONDS = 1.0
MEMORY_LIMIT_BYTES = 2048
STEPS_PER_SECOND = 2000.0


@dataclass(frozen=True)
class Config:
    """What to run; ``Config.quick()`` is the few-seconds variant the smoke test uses."""

    sizes: tuple[int, ...] = (100, 1_000, 10_000, 100_000)
    reps: int = 7
    #: issue+register+launch cycles per timed batch.
    create_batch: int = 40
    #: heartbeats / kills per timed batch.
    op_batch: int = 4000
    #: Ed25519 sign+verify pairs per timed batch.
    crypto_batch: int = 100
    #: Repetitions of the whole-fleet operations (reap, kill switch).
    fleet_reps: int = 7
    gc_off: bool = True
    memory: bool = True
    #: "module:Class" state machines to time; None discovers them under properties/.
    machines: tuple[str, ...] | None = None
    machine_steps: int = 3000
    machine_step_count: int = 50
    seed: int = 20260101

    @classmethod
    def quick(cls, sizes: Sequence[int] = (20, 100), **overrides: Any) -> Config:
        values: dict[str, Any] = {
            "sizes": tuple(sizes),
            "reps": 3,
            "create_batch": 5,
            "op_batch": 200,
            "crypto_batch": 10,
            "fleet_reps": 3,
            "machine_steps": 100,
            "machine_step_count": 20,
        }
        values.update(overrides)
        return cls(**values)


# -- machine description ---------------------------------------------------------------


def describe_machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        with Path("/proc/cpuinfo").open(encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:
        usable = os.cpu_count() or 0
    try:
        load = os.getloadavg()
    except OSError:
        load = (math.nan, math.nan, math.nan)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cryptography": cryptography.__version__,
        "attrs": attrs.__version__,
        "immutables": immutables.__version__,
        "platform": platform.platform(),
        "load_average_at_start": [round(x, 2) for x in load],
    }


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


def traced(build: Callable[[], Any], *, memory: bool) -> tuple[Any, int | None]:
    """Run ``build``; with ``memory``, also return the bytes it left allocated (tracemalloc)."""
    if not memory:
        return build(), None
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        result = build()
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    return result, after - before


_BASELINE_FIELDS = ("registry", "containers", "quarantined", "spawn_times", "issued_ids")
_BASELINE_FIELDS += ("registered_ids",)


def _save(system: BaselineSystem) -> dict[str, Any]:
    saved: dict[str, Any] = {name: getattr(system, name).copy() for name in _BASELINE_FIELDS}
    saved["kill_switch_engaged"] = system.kill_switch_engaged
    _age()
    return saved


def _restore(system: BaselineSystem, saved: dict[str, Any]) -> None:
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


# -- timing ------------------------------------------------------------------------------


class _GcWatch:
    """Counts the collections of each generation, and the time they take, while installed."""

    def __init__(self) -> None:
        self.counts = [0, 0, 0]
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.counts[info["generation"]] += 1
            self.seconds += time.perf_counter() - self._started

    def __enter__(self) -> _GcWatch:
        gc.callbacks.append(self)
        return self

    def __exit__(self, *_exc: object) -> None:
        gc.callbacks.remove(self)


def measure(
    run: Callable[[], tuple[int, int]], reps: int, *, gc_enabled: bool = True
) -> dict[str, Any]:
    """Time ``run`` (which returns ``(elapsed ns, operations)``) after one warm-up.

    Returns the median, min and max of the per-operation time in microseconds,
    and the collections the garbage collector made during the timed repetitions
    (with the time they took, untimed regions included).
    """
    gc.collect()
    samples: list[float] = []
    watch = _GcWatch()
    for rep in range(reps + 1):
        enabled = gc.isenabled()
        if not gc_enabled:
            gc.disable()
        try:
            if rep:
                with watch:
                    elapsed, ops = run()
            else:
                elapsed, ops = run()
        finally:
            if enabled:
                gc.enable()
        if rep:
            samples.append(elapsed / ops / 1000.0)
    return {
        "median_us": statistics.median(samples),
        "min_us": min(samples),
        "max_us": max(samples),
        "reps": reps,
        "gc_collections": watch.counts,
        "gc_ms": watch.seconds * 1000.0,
    }


def _timed(body: Callable[[], object]) -> int:
    start = time.perf_counter_ns()
    body()
    return time.perf_counter_ns() - start


@dataclass
class _World:
    """One fleet size: the core state, the baseline system and the workload inputs."""

    n: int
    parents_for_new: list[str]
    live_ids: list[str]
    kill_ids: list[str]
    stale: int
    reap_now: datetime
    reap_timeout: timedelta
    now: datetime
    state: Any = None
    system: Any = None
    core_log: list[Any] = field(default_factory=list)


def _make_world(n: int, depths: list[int], config: Config) -> _World:
    rng = random.Random(config.seed + n)
    spawners = [f"w{i + 1}" for i, depth in enumerate(depths) if depth < 2]
    stale = max(1, n // 100)
    end = T0 + n * STEP
    # Worker i last heard from at T0 + i ms: exactly the first `stale` are silent longer
    # than the timeout at reap_now. Heartbeats go to the others only, so that the
    # baseline (which updates entries in place) keeps the same stale set.
    reap_now = end + timedelta(seconds=1)
    timeout = reap_now - (T0 + stale * STEP)
    batch = config.op_batch
    return _World(
        n=n,
        parents_for_new=[rng.choice(spawners) for _ in range(config.create_batch)],
        live_ids=[f"w{rng.randrange(stale, n) + 1}" if n > stale else "w1" for _ in range(batch)],
        kill_ids=[f"w{rng.randrange(n) + 1}" for _ in range(batch)],
        stale=stale,
        reap_now=reap_now,
        reap_timeout=timeout,
        now=end + timedelta(seconds=2),
    )


# core operations -------------------------------------------------------------------------


# The core returns each audit event; the caller keeps it (the facade's logger does). The
# loops append every event to a list, as the baseline appends its audit records, and the
# list is emptied between repetitions, untimed, as the baseline's is.


def _core_create(world: _World) -> tuple[int, int]:
    state, now, parents, log = world.state, world.now, world.parents_for_new, world.core_log

    def body() -> None:
        for parent in parents:
            new, event, manifest = issue_manifest(
                state, KEY, resources=RESOURCES, now=now, parent_id=parent
            )
            log.append(event)
            new, event, _ = register_worker(new, manifest, now=now)  # type: ignore[arg-type]
            log.append(event)
            log.append(launch_worker(new, manifest, now=now).event)  # type: ignore[arg-type]

    elapsed = _timed(body)
    log.clear()
    return elapsed, len(parents)


def _core_heartbeat(world: _World) -> tuple[int, int]:
    ids, now, log = world.live_ids, world.now, world.core_log

    def body() -> None:
        state = world.state
        for worker_id in ids:
            state, event, _ = heartbeat(state, worker_id, now=now)
            log.append(event)

    elapsed = _timed(body)
    log.clear()
    return elapsed, len(ids)


def _core_kill(world: _World) -> tuple[int, int]:
    state, ids, now, log = world.state, world.kill_ids, world.now, world.core_log

    def body() -> None:
        for worker_id in ids:
            log.append(kill_worker(state, worker_id, reason=REASON, now=now).event)

    elapsed = _timed(body)
    log.clear()
    return elapsed, len(ids)


def _core_reap(world: _World) -> tuple[int, int]:
    start = time.perf_counter_ns()
    outcome = reap_stale_workers(world.state, timeout=world.reap_timeout, now=world.reap_now)
    elapsed = time.perf_counter_ns() - start
    reaped = sum(1 for effect in outcome.event.effects if effect[0] == "worker_deregistered")
    if reaped != world.stale:
        raise AssertionError(f"core reaped {reaped} workers, expected {world.stale}")
    del outcome  # freed outside the timed region, as the baseline's audit record is
    return elapsed, 1


def _core_kill_switch(world: _World) -> tuple[int, int]:
    start = time.perf_counter_ns()
    outcome = engage_kill_switch(world.state, now=world.now, reason=REASON)
    elapsed = time.perf_counter_ns() - start
    if len(outcome.state.registry) or len(outcome.event.effects) != 2 * world.n:
        raise AssertionError("core kill switch left workers or missed effects")
    del outcome
    return elapsed, 1


# baseline operations -----------------------------------------------------------------------


def _base_create(world: _World) -> tuple[int, int]:
    system, now, parents = world.system, world.now, world.parents_for_new
    saved = _save(system)

    def body() -> None:
        for parent in parents:
            manifest = system.issue_manifest(
                BASELINE_KEY, resources=RESOURCES, now=now, parent_id=parent
            )
            system.register_worker(manifest, now=now)
            system.launch_worker(manifest, now=now)

    elapsed = _timed(body)
    _restore(system, saved)
    return elapsed, len(parents)


def _base_heartbeat(world: _World) -> tuple[int, int]:
    system, ids, now = world.system, world.live_ids, world.now

    def body() -> None:
        for worker_id in ids:
            system.heartbeat(worker_id, now=now)

    elapsed = _timed(body)
    system.audit.clear()
    return elapsed, len(ids)


def _base_kill(world: _World) -> tuple[int, int]:
    # Each kill must hit a running container: kill distinct ids, restoring between segments.
    system, now = world.system, world.now
    saved = _save(system)
    elapsed = ops = 0
    ids = world.kill_ids
    while ops < len(ids):
        segment = list(dict.fromkeys(ids[ops:]))[: world.n]

        def body(segment: list[str] = segment) -> None:
            for worker_id in segment:
                system.kill_worker(worker_id, reason=REASON, now=now)

        elapsed += _timed(body)
        ops += len(segment)
        _restore(system, saved)
    return elapsed, ops


def _base_reap(world: _World) -> tuple[int, int]:
    system = world.system
    saved = _save(system)
    elapsed = _timed(
        lambda: system.reap_stale_workers(timeout=world.reap_timeout, now=world.reap_now)
    )
    reaped = sum(1 for kind, _ in system.audit[-1]["effects"] if kind == "worker_deregistered")
    if reaped != world.stale:
        raise AssertionError(f"baseline reaped {reaped} workers, expected {world.stale}")
    _restore(system, saved)
    return elapsed, 1


def _base_kill_switch(world: _World) -> tuple[int, int]:
    system = world.system
    saved = _save(system)
    elapsed = _timed(lambda: system.engage_kill_switch(now=world.now, reason=REASON))
    if system.registry or len(system.audit[-1]["effects"]) != 2 * world.n:
        raise AssertionError("baseline kill switch left workers or missed effects")
    _restore(system, saved)
    return elapsed, 1


def _ed25519(payload: bytes, batch: int) -> Callable[[], tuple[int, int]]:
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    public = private.public_key()

    def run() -> tuple[int, int]:
        start = time.perf_counter_ns()
        for _ in range(batch):
            public.verify(private.sign(payload), payload)
        return time.perf_counter_ns() - start, batch

    return run


def _ed25519_parts(payload: bytes, batch: int) -> tuple[Callable[[], tuple[int, int]], ...]:
    private = Ed25519PrivateKey.from_private_bytes(SEED)
    public = private.public_key()
    signature = private.sign(payload)

    def sign() -> tuple[int, int]:
        start = time.perf_counter_ns()
        for _ in range(batch):
            private.sign(payload)
        return time.perf_counter_ns() - start, batch

    def verify() -> tuple[int, int]:
        start = time.perf_counter_ns()
        for _ in range(batch):
            public.verify(signature, payload)
        return time.perf_counter_ns() - start, batch

    return sign, verify


def _loop_overhead(batch: int) -> float:
    ids = [f"w{i}" for i in range(batch)]

    def run() -> tuple[int, int]:
        start = time.perf_counter_ns()
        for _worker_id in ids:
            pass
        return time.perf_counter_ns() - start, batch

    return measure(run, 5)["median_us"] * 1000.0


# -- one fleet size ---------------------------------------------------------------------------


_CORE_OPS: dict[str, Callable[[_World], tuple[int, int]]] = {
    "issue_register_launch": _core_create,
    "heartbeat": _core_heartbeat,
    "kill_worker": _core_kill,
    "reap_per_call": _core_reap,
    "kill_switch": _core_kill_switch,
}
_BASELINE_OPS: dict[str, Callable[[_World], tuple[int, int]]] = {
    "issue_register_launch": _base_create,
    "heartbeat": _base_heartbeat,
    "kill_worker": _base_kill,
    "reap_per_call": _base_reap,
    "kill_switch": _base_kill_switch,
}
_WHOLE_FLEET = ("reap_per_call", "kill_switch")


def _measure_side(
    operations: dict[str, Callable[[_World], tuple[int, int]]],
    world: _World,
    config: Config,
    side: str,
) -> dict[str, dict[str, Any]]:
    """Every operation of one implementation, gc enabled then (optionally) disabled."""
    rows: dict[str, dict[str, Any]] = {}
    for op, run in operations.items():
        reps = config.fleet_reps if op in _WHOLE_FLEET else config.reps
        rows[op] = {side: measure(lambda run=run: run(world), reps)}
        if config.gc_off:
            rows[op][f"{side}_gc_off"] = measure(lambda run=run: run(world), reps, gc_enabled=False)
    return rows


def _scaled(row: dict[str, Any], divisor: float) -> dict[str, Any]:
    scaled = {}
    for key, value in row.items():
        scaled[key] = {
            name: (figure / divisor if name.endswith("_us") else figure)
            for name, figure in value.items()
        }
    return scaled


def _built(build: Callable[[], Any], config: Config) -> tuple[Any, int | None, float]:
    gc.collect()
    started = time.perf_counter()
    built, allocated = traced(build, memory=config.memory)
    return built, allocated, time.perf_counter() - started


def bench_size(n: int, config: Config, log: Callable[[str], None]) -> dict[str, Any]:
    """Measure one fleet size: the core phase, then the baseline phase.

    Each implementation is timed with only its own fleet in memory, so that the
    garbage collector's full collections walk only the heap that implementation
    would have in real use.
    """
    parents, depths = plan_fleet(n)
    world = _make_world(n, depths, config)

    # Core phase.
    state, core_bytes, core_build = _built(lambda: build_core(parents), config)
    if len(state.registry) != n or len(state.containers) != n:
        raise AssertionError("core fleet not fully built")
    log(f"  core fleet of {n:,} built in {core_build:.1f} s")
    world.state = state
    # A manifest issued on this fleet: its payload sizes the Ed25519 baseline.
    _, _, sample = issue_manifest(state, KEY, resources=RESOURCES, now=world.now, parent_id="w1")
    payload = sample.signing_payload  # type: ignore[union-attr]
    crypto = measure(_ed25519(payload, config.crypto_batch), config.reps)
    sign, verify = _ed25519_parts(payload, config.crypto_batch)
    crypto_sign = measure(sign, config.reps)
    crypto_verify = measure(verify, config.reps)
    ops = _measure_side(_CORE_OPS, world, config, "core")
    world.state = None
    del state, sample
    gc.collect()

    # Baseline phase.
    system, base_bytes, base_build = _built(lambda: build_baseline(parents), config)
    if len(system.registry) != n or len(system.containers) != n:
        raise AssertionError("baseline fleet not fully built")
    log(f"  mutable baseline fleet of {n:,} built in {base_build:.1f} s")
    world.system = system
    for op, row in _measure_side(_BASELINE_OPS, world, config, "baseline").items():
        ops[op].update(row)
    world.system = None
    del system
    gc.collect()

    ops["reap_per_worker"] = _scaled(ops["reap_per_call"], world.stale)
    ops["kill_switch_per_worker"] = _scaled(ops["kill_switch"], n)
    crypto_us = crypto["median_us"]
    for row in ops.values():
        core_us = row["core"]["median_us"]
        row["ratio_to_ed25519"] = core_us / crypto_us
        row["ratio_to_baseline"] = core_us / row["baseline"]["median_us"]
    memory = None
    if core_bytes is not None and base_bytes is not None:
        memory = {
            "core_bytes": core_bytes,
            "baseline_bytes": base_bytes,
            "core_per_worker": core_bytes / n,
            "baseline_per_worker": base_bytes / n,
            "ratio_to_baseline": core_bytes / base_bytes,
        }
    depth_counts = {str(d): depths.count(d) for d in sorted(set(depths))}
    return {
        "n": n,
        "roots": depths.count(0),
        "depth_counts": depth_counts,
        "stale": world.stale,
        "ed25519": {
            "payload_bytes": len(payload),
            "sign_verify": crypto,
            "sign": crypto_sign,
            "verify": crypto_verify,
        },
        "operations": ops,
        "memory": memory,
        "build_seconds": {"core": core_build, "baseline": base_build},
    }


# -- property-suite state machines ---------------------------------------------------------------


def _load_machine(spec: str | type) -> type:
    if not isinstance(spec, str):
        return spec
    module_name, _, class_name = spec.partition(":")
    module = importlib.import_module(module_name)
    machine = getattr(module, class_name)
    # Accept the machine or its generated TestCase.
    return getattr(machine, "_state_machine", None) or machine


def discover_machines(root: Path = ROOT) -> list[str]:
    """``module:Class`` of every RuleBasedStateMachine subclass defined under properties/."""
    from hypothesis.stateful import RuleBasedStateMachine

    found = []
    for path in sorted((root / "properties").glob("*.py")):
        if path.stem in {"__init__", "conftest"}:
            continue
        module_name = f"properties.{path.stem}"
        try:
            module = importlib.import_module(module_name)
        except Exception:  # noqa: BLE001, S112 - an unimportable module has no machine to time
            continue
        for name, value in vars(module).items():
            if (
                isinstance(value, type)
                and issubclass(value, RuleBasedStateMachine)
                and value is not RuleBasedStateMachine
                and value.__module__ == module_name
            ):
                found.append(f"{module_name}:{name}")
    return found


def run_machine(spec: str | type, *, steps: int, step_count: int) -> dict[str, Any]:
    """Run a RuleBasedStateMachine for about ``steps`` steps; report steps per second.

    Every rule (and initialize rule) the machine defines is wrapped, for the
    duration of the run, in a counter; the machine runs through
    ``run_state_machine_as_test`` with generation only, no database, no deadline.
    The time includes Hypothesis's own work (drawing data, invariants), as in a
    real property-suite run.
    """
    name = spec if isinstance(spec, str) else f"{spec.__module__}:{spec.__qualname__}"
    try:
        machine = _load_machine(spec)
    except (ImportError, AttributeError) as error:
        return {"machine": name, "status": "n/a (no machine)", "error": repr(error)}
    from hypothesis import HealthCheck, Phase, settings
    from hypothesis.stateful import run_state_machine_as_test

    counter = [0]

    def counted(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            counter[0] += 1
            return function(*args, **kwargs)

        return wrapper

    setup = machine.setup_state()
    rules = [*setup.rules, *setup.initializers]
    originals = [rule.function for rule in rules]
    examples = max(1, math.ceil(steps / step_count))
    chosen = settings(
        max_examples=examples,
        stateful_step_count=step_count,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    for rule in rules:
        rule.function = counted(rule.function)
    try:
        start = time.perf_counter()
        run_state_machine_as_test(machine, settings=chosen)
        elapsed = time.perf_counter() - start
    except Exception as error:  # noqa: BLE001 - reported, not raised: a failing machine
        return {"machine": name, "status": f"error: {error!r}"[:300], "steps": counter[0]}
    finally:
        for rule, function in zip(rules, originals, strict=True):
            rule.function = function
    return {
        "machine": name,
        "status": "ok",
        "steps": counter[0],
        "examples": examples,
        "seconds": elapsed,
        "steps_per_second": counter[0] / elapsed if elapsed else math.inf,
    }


# -- targets ------------------------------------------------------------------------------------


def _target(name: str, measured: float | None, limit: float, *, at_most: bool = True) -> dict:
    if measured is None or not math.isfinite(measured):
        verdict = "n/a"
    else:
        verdict = "PASS" if (measured <= limit if at_most else measured >= limit) else "MISS"
    return {"target": name, "measured": measured, "limit": limit, "verdict": verdict}


def evaluate_targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    sizes = results["sizes"]
    small, large = sizes[0], sizes[-1]
    by_n = {size["n"]: size for size in results["per_size"]}
    targets = []
    for n in sizes:
        ratio = by_n[n]["operations"]["issue_register_launch"]["ratio_to_ed25519"]
        targets.append(
            _target(f"issue+register+launch <= 1.2x Ed25519 sign+verify @ {n:,}", ratio, 1.2)
        )
    if len(sizes) > 1:
        for op in (*SCALED, *SCALED_ALSO):
            ratio = (
                by_n[large]["operations"][op]["core"]["median_us"]
                / by_n[small]["operations"][op]["core"]["median_us"]
            )
            targets.append(
                _target(
                    f"{OPERATIONS[op]}: cost @ {large:,} <= 1.5x cost @ {small:,}",
                    ratio,
                    SCALING_LIMIT,
                )
            )
    top = by_n[large]["operations"]
    for op in ("heartbeat", "kill_worker"):
        targets.append(
            _target(
                f"{OPERATIONS[op]} <= 3x mutable baseline @ {large:,}",
                top[op]["ratio_to_baseline"],
                BASELINE_LIMIT,
            )
        )
    targets.append(
        _target(
            f"kill switch over {large:,} workers < 1 s (seconds)",
            top["kill_switch"]["core"]["median_us"] / 1e6,
            KILL_SWITCH_SECONDS,
        )
    )
    targets.append(
        _target(
            f"kill switch <= 3x mutable baseline @ {large:,}",
            top["kill_switch"]["ratio_to_baseline"],
            BASELINE_LIMIT,
        )
    )
    memory = by_n[large]["memory"]
    targets.append(
        _target(
            f"memory <= 2 KiB ({MEMORY_LIMIT_BYTES} B) per registered worker @ {large:,} (bytes)",
            memory["core_per_worker"] if memory else None,
            MEMORY_LIMIT_BYTES,
        )
    )
    machines = results["machines"] or [{"machine": None, "status": "n/a (no machine)"}]
    for machine in machines:
        targets.append(
            _target(
                f"state machine {machine['machine'] or ''} >= 2,000 steps/s".replace("  ", " "),
                machine.get("steps_per_second"),
                STEPS_PER_SECOND,
                at_most=False,
            )
        )
    return targets


# -- the run ------------------------------------------------------------------------------------


def run_benchmark(config: Config, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run every measurement of ``config``; return the results (what ``--json`` writes)."""
    log = log or (lambda _message: None)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "machine": describe_machine(),
        "config": {
            "sizes": list(config.sizes),
            "reps": config.reps,
            "fleet_reps": config.fleet_reps,
            "create_batch": config.create_batch,
            "op_batch": config.op_batch,
            "crypto_batch": config.crypto_batch,
            "gc": "enabled (gc-off figures alongside)" if config.gc_off else "enabled",
            "contract": {
                "max_depth": MAX_DEPTH,
                "max_replicas": MAX_REPLICAS,
                "cooldown_seconds": COOLDOWN_SECONDS,
                "clock_skew_seconds": 1.0,
            },
            "fleet": (
                f"min({MAX_ROOTS}, n/10) roots at depth 0; then every {GRANDCHILD_EVERY}th "
                "worker a child of the depth-1 worker before it (depth 2), the others children "
                "of the roots round-robin (depth 1); all launched; worker i issued, registered "
                "and launched at T0 + i ms; empty state snapshots; ResourceSpec(1.0, 512)"
            ),
        },
        "sizes": sorted(config.sizes),
        "loop_overhead_ns": _loop_overhead(config.op_batch),
        "per_size": [],
    }
    for n in sorted(config.sizes):
        log(f"size {n:,}")
        results["per_size"].append(bench_size(n, config, log))
        gc.collect()
    memory_rows = [size for size in results["per_size"] if size["memory"]]
    for previous, current in itertools.pairwise(memory_rows):
        span = current["n"] - previous["n"]
        current["memory"]["core_marginal_per_worker"] = (
            current["memory"]["core_bytes"] - previous["memory"]["core_bytes"]
        ) / span
        current["memory"]["baseline_marginal_per_worker"] = (
            current["memory"]["baseline_bytes"] - previous["memory"]["baseline_bytes"]
        ) / span
    specs: Sequence[str] = config.machines if config.machines is not None else discover_machines()
    results["machines"] = []
    for spec in specs:
        log(f"state machine {spec}")
        results["machines"].append(
            run_machine(spec, steps=config.machine_steps, step_count=config.machine_step_count)
        )
    results["targets"] = evaluate_targets(results)
    with contextlib.suppress(OSError):
        results["machine"]["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results["seconds"] = time.perf_counter() - started
    return results


# -- the report -----------------------------------------------------------------------------------


def _us(value: float) -> str:
    if value >= 100_000:
        return f"{value / 1000:,.1f} ms"
    if value >= 100:
        return f"{value:,.0f} us"
    if value >= 10:
        return f"{value:.1f} us"
    return f"{value:.2f} us"


def format_report(results: dict[str, Any]) -> str:
    machine = results["machine"]
    config = results["config"]
    load_start = " ".join(map(str, machine["load_average_at_start"]))
    load_end = " ".join(map(str, machine.get("load_average_at_end", [])))
    contract_config = config["contract"]
    lines = ["replication benchmark", "====================="]
    lines.append(
        f"CPU: {machine['cpu']}; {machine['cores']} cores ({machine['usable_cores']} usable); "
        f"load average {load_start} at start, {load_end} at end"
    )
    lines.append(
        f"Python {machine['python']} ({machine['implementation']}); cryptography "
        f"{machine['cryptography']}; immutables {machine['immutables']}; attrs {machine['attrs']}"
    )
    lines.append(
        f"Contract: max_depth={contract_config['max_depth']}, "
        f"max_replicas={contract_config['max_replicas']:,}, "
        f"cooldown_seconds={contract_config['cooldown_seconds']}, "
        f"clock_skew_seconds={contract_config['clock_skew_seconds']}"
    )
    lines.append(f"Fleet: {config['fleet']}.")
    lines.append(
        f"Timing: median of {config['reps']} repetitions ({config['fleet_reps']} for whole-fleet "
        f"operations) after a warm-up; batches of {config['create_batch']} creations, "
        f"{config['op_batch']} heartbeats/kills, {config['crypto_batch']} sign+verify; "
        f"gc {config['gc']}; loop overhead {results['loop_overhead_ns']:.0f} ns/op (included)."
    )
    lines.append(
        "Core ops apply to the same pre-built state (heartbeats chained), their events kept "
        "in a list as the baseline keeps its audit records; the mutable baseline is restored "
        "between repetitions (untimed). 'full gcs': generation-2 collections during the timed "
        "repetitions (core/mutable), untimed parts included."
    )
    lines.append("")
    header = (
        f"{'operation':<28}{'core':>12}{'mutable':>12}{'x mutable':>11}{'x Ed25519':>11}"
        f"{'core gc-off':>13}{'mutable gc-off':>16}{'full gcs':>10}"
    )
    for size in results["per_size"]:
        crypto = size["ed25519"]
        depth_counts = ", ".join(f"{d}: {c:,}" for d, c in size["depth_counts"].items())
        lines.append(
            f"-- {size['n']:,} workers (workers per depth {depth_counts}; "
            f"{size['stale']:,} stale for the reap) --"
        )
        lines.append(
            f"Ed25519 raw sign+verify, {crypto['payload_bytes']} B payload: "
            f"{_us(crypto['sign_verify']['median_us'])} "
            f"(sign {_us(crypto['sign']['median_us'])}, "
            f"verify {_us(crypto['verify']['median_us'])})"
        )
        lines.append(header)
        for op, label in OPERATIONS.items():
            row = size["operations"][op]
            gc_off = (
                f"{_us(row['core_gc_off']['median_us']):>13}"
                f"{_us(row['baseline_gc_off']['median_us']):>16}"
                if "core_gc_off" in row
                else f"{'':>29}"
            )
            full = f"{row['core']['gc_collections'][2]}/{row['baseline']['gc_collections'][2]}"
            lines.append(
                f"{label:<28}{_us(row['core']['median_us']):>12}"
                f"{_us(row['baseline']['median_us']):>12}"
                f"{row['ratio_to_baseline']:>10.2f}x{row['ratio_to_ed25519']:>10.3f}x{gc_off}"
                f"{full:>10}"
            )
        memory = size["memory"]
        if memory:
            marginal = ""
            if "core_marginal_per_worker" in memory:
                marginal = (
                    f"; marginal since previous size: core "
                    f"{memory['core_marginal_per_worker']:,.0f} B, mutable "
                    f"{memory['baseline_marginal_per_worker']:,.0f} B"
                )
            lines.append(
                f"{'memory per worker':<28}{memory['core_per_worker']:>10,.0f} B"
                f"{memory['baseline_per_worker']:>10,.0f} B"
                f"{memory['ratio_to_baseline']:>10.2f}x{marginal}"
            )
        lines.append("")
    sizes = results["sizes"]
    if len(sizes) > 1:
        first = results["per_size"][0]["operations"]
        for side, name in (("core", "core"), ("baseline", "mutable baseline")):
            lines.append(f"Scaling: {name} cost per operation relative to {sizes[0]:,} workers")
            lines.append(f"{'operation':<28}" + "".join(f"{n:>12,}" for n in sizes))
            for op, label in OPERATIONS.items():
                base = first[op][side]["median_us"]
                lines.append(
                    f"{label:<28}"
                    + "".join(
                        f"{size['operations'][op][side]['median_us'] / base:>11.2f}x"
                        for size in results["per_size"]
                    )
                )
            lines.append("")
    lines.append("State machines (property suite)")
    if not results["machines"]:
        lines.append("  n/a (no machine)")
    for machine_result in results["machines"]:
        if machine_result["status"] == "ok":
            lines.append(
                f"  {machine_result['machine']}: {machine_result['steps']:,} steps in "
                f"{machine_result['seconds']:.2f} s = "
                f"{machine_result['steps_per_second']:,.0f} steps/s"
            )
        else:
            lines.append(f"  {machine_result['machine']}: {machine_result['status']}")
    lines.append("")
    lines.append("Targets")
    for target in results["targets"]:
        measured = target["measured"]
        shown = "n/a" if measured is None else f"{measured:,.3f}"
        lines.append(
            f"  {target['verdict']:<5} {target['target']}: measured {shown} "
            f"(limit {target['limit']:,})"
        )
    lines.append(f"\nTotal run time {results['seconds']:.0f} s")
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------


def _sizes(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part.replace("_", "")) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of sizes: {text!r}") from None
    if not sizes or min(sizes) < 2:
        raise argparse.ArgumentTypeError("sizes must be integers >= 2")
    return sizes


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=_sizes, default=None, help="default 100,1000,10000,100000")
    parser.add_argument("--quick", action="store_true", help="a tiny run of a few seconds")
    parser.add_argument("--reps", type=int, default=None, help="repetitions per measurement")
    parser.add_argument(
        "--machine",
        action="append",
        default=None,
        metavar="MODULE:CLASS",
        help="a RuleBasedStateMachine to time (repeatable); default: those under properties/",
    )
    parser.add_argument("--machine-steps", type=int, default=None)
    parser.add_argument("--no-memory", action="store_true", help="skip tracemalloc")
    parser.add_argument("--no-gc-off", action="store_true", help="skip the gc-disabled figures")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH")
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> Config:
    config = Config.quick() if args.quick else Config()
    changes: dict[str, Any] = {}
    if args.sizes:
        changes["sizes"] = args.sizes
    if args.reps:
        changes["reps"] = args.reps
        changes["fleet_reps"] = args.reps
    if args.machine is not None:
        changes["machines"] = tuple(args.machine)
    if args.machine_steps:
        changes["machine_steps"] = args.machine_steps
    if args.no_memory:
        changes["memory"] = False
    if args.no_gc_off:
        changes["gc_off"] = False
    return replace(config, **changes)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    config = config_from_args(args)
    results = run_benchmark(config, log=lambda message: print(message, file=sys.stderr))
    print(format_report(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
