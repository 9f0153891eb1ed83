"""Why an immutable heartbeat cannot reach 3x a mutable one: its allocation floor, measured.

``python benchmarks/heartbeat_floor.py [--size N]`` builds one fleet through the
core and one through the mutable baseline, then times, in the same run and with
the same primitives as ``bench.py``:

* the baseline's whole heartbeat (checks, an in-place update, an audit record);
* the core's whole heartbeat;
* each allocation the core's heartbeat cannot avoid while it returns a new
  immutable state and an audit event: the new registry entry, the HAMT path of
  ``registry.set``, the new controller part, the new whole-system state, the
  event. Their sum is the floor: no check, no lookup, no logic.

Every figure is printed as a ratio to the baseline's heartbeat.
"""

from __future__ import annotations

import argparse
import sys
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in {None, ""}:  # run as a script: make ``benchmarks`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.fleet import T0, build_baseline, build_core, plan_fleet
from benchmarks.timing import measure, timed
from replication import model
from replication import transitions as core
from replication._outcome import with_field

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


def _batch(call: Callable[[], object], batch: int) -> Callable[[], tuple[int, int]]:
    def run() -> tuple[int, int]:
        def body() -> None:
            for _ in range(batch):
                call()

        return timed(body), batch

    return run


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="fleet size (default 10^5)")
    parser.add_argument("--batch", type=int, default=20_000, help="calls per timed batch")
    parser.add_argument("--reps", type=int, default=7, help="timed batches per figure")
    args = parser.parse_args(argv)
    n, batch, reps = args.size, args.batch, args.reps
    parents, _ = plan_fleet(n)
    state = build_core(parents)
    system = build_baseline(parents)
    worker_id = f"w{n // 2 + 1}"
    now = T0 + timedelta(days=1)
    controller = state.controller
    entry = controller.registry[worker_id]
    effects = (("heartbeat", worker_id),)

    rows: list[tuple[str, Callable[[], object]]] = [
        ("baseline: whole heartbeat", lambda: system.heartbeat(worker_id, now=now)),
        ("core: whole heartbeat", lambda: core.heartbeat(state, worker_id, now=now)),
        (
            "floor: new registry entry",
            lambda: model._registry_entry(entry.manifest, now, entry.registered_at),
        ),
        ("floor: registry.set (HAMT path)", lambda: controller.registry.set(worker_id, entry)),
        (
            "floor: new controller part",
            lambda: with_field(controller, "registry", controller.registry),
        ),
        (
            "floor: new whole-system state",
            lambda: model._compose(controller, state.orchestrator),
        ),
        (
            "floor: audit event",
            lambda: model._event("heartbeat", now, True, "ok", worker_id, effects),  # noqa: FBT003
        ),
    ]
    print(f"fleet of {n:,} workers; median of {reps} batches of {batch:,}; collector on")
    times = {name: measure(_batch(call, batch), reps)["median_us"] for name, call in rows}
    system.audit.clear()
    baseline = times["baseline: whole heartbeat"]
    floor = sum(us for name, us in times.items() if name.startswith("floor:"))
    width = max(map(len, times)) + 2
    for name, us in [*times.items(), ("floor: sum", floor)]:
        print(f"{name:<{width}} {us:7.3f} us  {us / baseline:5.2f}x baseline")
    print(f"{'target: 3x baseline':<{width}} {3 * baseline:7.3f} us")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
