"""The targets the results are judged against, and the text report of a run."""

from __future__ import annotations

import math
from typing import Any

from benchmarks.workloads import OPERATIONS

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
