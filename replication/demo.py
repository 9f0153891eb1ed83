"""The bundled demo: grow a tree, show the refusals, engage the kill switch.

It grows a replication tree under a contract, shows the policy refusing what it
must, engages the kill switch and checks that nothing survives.

Deterministic: a manual clock and a fixed demo key (never use it for anything
else), so the output is the same on every run.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

from replication.clock import ManualClock
from replication.controller import Controller
from replication.errors import ReplicationDenied, StopConditionTriggered
from replication.model import NetworkPolicy, ReplicationContract, ResourceSpec, StopCondition
from replication.observability import StructuredLogger
from replication.orchestrator import SandboxOrchestrator
from replication.signing import SigningKey
from replication.worker import Worker

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["run_demo"]

#: A fixed, public key seed so the demo is reproducible. Public, so worthless as a secret.
DEMO_KEY_SEED = bytes(range(32))


def run_demo(write: Callable[[str], object] = print) -> int:
    """Run the demo, writing lines with ``write``; return 0 if nothing survived the kill switch."""
    clock = ManualClock()
    logger = StructuredLogger(clock=clock)
    contract = ReplicationContract(
        max_depth=2,
        max_replicas=5,
        cooldown_seconds=30,
        stop_conditions=[
            StopCondition(
                "no_external_network",
                "a worker may not ask for unrestricted network egress",
                lambda context: context.manifest.resources.network_policy.allow_external,
            )
        ],
    )
    orchestrator = SandboxOrchestrator(logger, clock=clock)
    controller = Controller(
        contract,
        SigningKey.from_seed(DEMO_KEY_SEED),
        logger,
        orchestrator=orchestrator,
        clock=clock,
    )
    resources = ResourceSpec(cpu_limit=0.5, memory_limit_mb=256)

    write(
        f"contract: max_depth={contract.max_depth} max_replicas={contract.max_replicas} "
        f"cooldown={contract.cooldown_seconds:g}s, stop condition 'no_external_network'"
    )
    write(f"controller key id {controller.verifying_key.key_id}")
    write("")

    def attempt(label: str, parent: Worker) -> Worker | None:
        child = parent.maybe_replicate(label, {"task": label})
        if child is None:
            denial = next(e for e in reversed(logger.events) if e["event"] == "replication_denied")
            write(f"  {parent.worker_id} -> DENIED  {denial['code']:<16} {denial['detail']}")
        else:
            write(f"  {parent.worker_id} -> {child.worker_id} (depth {child.manifest.depth})")
        return child

    write(f"t={_t(clock)}  root")
    root = Worker(
        controller.issue_manifest(None, 0, {"task": "survey"}, resources),
        contract,
        controller,
        orchestrator,
    )
    write(f"  root {root.worker_id} (depth 0)")
    a = attempt("explore", root)
    attempt("explore-again", root)
    clock.advance(29.999)
    write(f"t={_t(clock)}  (cooldown not yet over)")
    attempt("explore-again", root)
    clock.advance(0.001)
    write(f"t={_t(clock)}  (exactly at the cooldown: allowed)")
    b = attempt("explore-again", root)
    grandchild = attempt("dig", a) if a is not None else None
    if a is None or b is None or grandchild is None:
        write("FAILED: the policy refused a spawn it must allow")
        return 1
    attempt("dig-deeper", grandchild)
    clock.advance(30)
    write(f"t={_t(clock)}")
    open_network = ResourceSpec(0.5, 256, NetworkPolicy(allow_external=True))
    try:
        Worker(
            controller.issue_manifest(b.worker_id, None, {}, open_network),
            contract,
            controller,
            orchestrator,
        )
        write(f"  {b.worker_id} -> child with external network: ACCEPTED (this is a bug)")
    except StopConditionTriggered as denied:
        write(
            f"  {b.worker_id} -> DENIED  {denied.reason.value:<16} {denied.condition} "
            "(child asked for external network)"
        )
    attempt("fill", b)
    attempt("one-too-many", a)

    write("")
    write("forgery and replay:")
    genuine = controller.registry[b.worker_id].manifest
    for label, manifest in [
        (
            "more CPU after signing",
            attrs.evolve(genuine, worker_id="w-forged", resources=ResourceSpec(8.0, 65536)),
        ),
        ("the seed's placeholder signature", attrs.evolve(genuine, signature="signed")),
        ("replay of a registered manifest", genuine),
    ]:
        try:
            controller.register_worker(manifest)
            write(f"  {label}: ACCEPTED (this is a bug)")
        except ReplicationDenied as denied:
            write(f"  {label}: DENIED  {denied.reason.value}")

    write("")
    write(
        f"running: {len(orchestrator.containers)} containers, "
        f"{len(controller.registry)} registered workers"
    )
    write("engaging the kill switch")
    controller.kill_switch(orchestrator)
    try:
        controller.issue_manifest(None, 0, {}, resources)
        write("  issue after the kill switch: ACCEPTED (this is a bug)")
    except ReplicationDenied as denied:
        write(f"  issue after the kill switch: DENIED  {denied.reason.value}")
    survivors = len(orchestrator.containers) + len(controller.registry)
    write(
        f"after: {len(orchestrator.containers)} containers, "
        f"{len(controller.registry)} registered workers"
    )
    write(
        f"audit trail: {len(logger.trail)} decisions, "
        f"{sum(not e.allowed for e in logger.trail)} denials"
    )
    write("nothing survived" if survivors == 0 else f"FAILED: {survivors} survived")
    return 0 if survivors == 0 else 1


def _t(clock: ManualClock) -> str:
    return clock().strftime("%H:%M:%S.%f")[:-3]
