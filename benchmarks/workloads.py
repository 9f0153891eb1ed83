"""The measured operations, on the core and on the mutable baseline, at one fleet size.

``bench_size`` builds a fleet of ``n`` workers through each implementation in
turn (only one in memory at a time), times every operation of ``OPERATIONS``
on it, and times raw Ed25519 sign + verify over a manifest's signing payload
as the other yardstick.
"""

from __future__ import annotations

import gc
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from benchmarks.fleet import (
    BASELINE_KEY,
    KEY,
    REASON,
    RESOURCES,
    SEED,
    STEP,
    T0,
    build_baseline,
    build_core,
    plan_fleet,
    restore_baseline,
    save_baseline,
)
from benchmarks.timing import measure, timed, traced
from replication.transitions import (
    engage_kill_switch,
    heartbeat,
    issue_manifest,
    kill_worker,
    launch_worker,
    reap_stale_workers,
    register_worker,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from benchmarks.config import Config

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

    elapsed = timed(body)
    log.clear()
    return elapsed, len(parents)


def _core_heartbeat(world: _World) -> tuple[int, int]:
    ids, now, log = world.live_ids, world.now, world.core_log

    def body() -> None:
        state = world.state
        for worker_id in ids:
            state, event, _ = heartbeat(state, worker_id, now=now)
            log.append(event)

    elapsed = timed(body)
    log.clear()
    return elapsed, len(ids)


def _core_kill(world: _World) -> tuple[int, int]:
    state, ids, now, log = world.state, world.kill_ids, world.now, world.core_log

    def body() -> None:
        for worker_id in ids:
            log.append(kill_worker(state, worker_id, reason=REASON, now=now).event)

    elapsed = timed(body)
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
    saved = save_baseline(system)

    def body() -> None:
        for parent in parents:
            manifest = system.issue_manifest(
                BASELINE_KEY, resources=RESOURCES, now=now, parent_id=parent
            )
            system.register_worker(manifest, now=now)
            system.launch_worker(manifest, now=now)

    elapsed = timed(body)
    restore_baseline(system, saved)
    return elapsed, len(parents)


def _base_heartbeat(world: _World) -> tuple[int, int]:
    system, ids, now = world.system, world.live_ids, world.now

    def body() -> None:
        for worker_id in ids:
            system.heartbeat(worker_id, now=now)

    elapsed = timed(body)
    system.audit.clear()
    return elapsed, len(ids)


def _base_kill(world: _World) -> tuple[int, int]:
    # Each kill must hit a running container: kill distinct ids, restoring between segments.
    system, now = world.system, world.now
    saved = save_baseline(system)
    elapsed = ops = 0
    ids = world.kill_ids
    while ops < len(ids):
        segment = list(dict.fromkeys(ids[ops:]))[: world.n]

        def body(segment: list[str] = segment) -> None:
            for worker_id in segment:
                system.kill_worker(worker_id, reason=REASON, now=now)

        elapsed += timed(body)
        ops += len(segment)
        restore_baseline(system, saved)
    return elapsed, ops


def _base_reap(world: _World) -> tuple[int, int]:
    system = world.system
    saved = save_baseline(system)
    elapsed = timed(
        lambda: system.reap_stale_workers(timeout=world.reap_timeout, now=world.reap_now)
    )
    reaped = sum(1 for kind, _ in system.audit[-1]["effects"] if kind == "worker_deregistered")
    if reaped != world.stale:
        raise AssertionError(f"baseline reaped {reaped} workers, expected {world.stale}")
    restore_baseline(system, saved)
    return elapsed, 1


def _base_kill_switch(world: _World) -> tuple[int, int]:
    system = world.system
    saved = save_baseline(system)
    elapsed = timed(lambda: system.engage_kill_switch(now=world.now, reason=REASON))
    if system.registry or len(system.audit[-1]["effects"]) != 2 * world.n:
        raise AssertionError("baseline kill switch left workers or missed effects")
    restore_baseline(system, saved)
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
