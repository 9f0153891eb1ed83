"""The sample traces of specs/vectors/traces/: how they are made, and what checking them finds.

The good traces are a journaled controller's own history, exported and
stripped of the chain's fields (which depend on the journal's random id), so
they read as any implementation would write them. Each bad trace is a good
one up to a step whose outcome a faulty implementation recorded instead.

Regenerate them (and review the diff) with::

    python -m tests.trace_samples specs/vectors/traces
"""

from __future__ import annotations

import sys
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, NamedTuple

from replication import Controller, ManualClock, SandboxOrchestrator
from replication.encoding import canonical_json
from replication.errors import ReplicationDenied
from replication.journal import Journal
from replication.journal.codec import contract_to_json, manifest_to_json
from replication.journal.replay import load_json
from replication.journal.trace import trace_header
from replication.journal.verify import reading
from replication.model import Manifest, ReplicationContract
from replication.signing import sign_manifest
from tests.helpers import KEY, OTHER_KEY, RESOURCES, T0

CONTRACT = ReplicationContract(max_depth=1, max_replicas=2, cooldown_seconds=10)
DIRECTORY = Path(__file__).resolve().parent.parent / "specs" / "vectors" / "traces"


class Sample(NamedTuple):
    """A sample trace and what checking it must find: ``None``, or (step, words of the problem)."""

    lines: list[dict[str, Any]]
    divergence: tuple[int, str] | None
    description: str


def lifecycle() -> list[dict[str, Any]]:
    """A journaled controller's history: growth, every kind of refusal, reaping, the switch."""
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "journal.db"
        clock = ManualClock(T0)
        orchestrator = SandboxOrchestrator(clock=clock)
        controller = Controller(
            CONTRACT, KEY, orchestrator=orchestrator, clock=clock, journal=Journal(path)
        )

        def attempt(call, *args, **kwargs) -> Any:
            try:
                return call(*args, **kwargs)
            except ReplicationDenied:
                return None

        root = controller.issue_manifest(None, None, {"task": "root"}, RESOURCES)
        controller.start_worker(root)
        child = controller.issue_manifest("w1", None, {"task": "child"}, RESOURCES)
        controller.register_worker(child)
        controller.launch_worker(child)
        clock.advance(1)
        attempt(controller.issue_manifest, "w1", None, {}, RESOURCES)  # quota
        clock.advance(4)
        controller.heartbeat("w1")
        controller.quarantine("w2", "suspect")
        attempt(controller.heartbeat, "w2")  # quarantined
        controller.release("w2")
        orchestrator.kill_worker("w2", "done")
        controller.deregister("w2", "done")
        clock.advance(1)
        attempt(controller.issue_manifest, "w1", None, {}, RESOURCES)  # cooldown
        clock.advance(54)
        controller.reap_stale_workers(timedelta(seconds=30))
        controller.kill_switch()
        attempt(controller.register_worker, root)  # kill switch
        controller.journal.close()  # type: ignore[union-attr]
        with reading(path) as (_, rows):
            steps = [load_json(row.body) for row in rows]
    header = trace_header(contract_to_json(CONTRACT), KEY.verifying_key)
    return [header] + [
        {key: value for key, value in step.items() if key not in {"prev", "sequence"}}
        for step in steps
    ]


def decisions_only(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The same history as an implementation that reports only its decisions would write it."""
    return [lines[0]] + [
        {
            **step,
            "outcome": {
                "decision": step["outcome"]["decision"],
                "reason": step["outcome"]["reason"],
            },
        }
        for step in lines[1:]
    ]


def recorded_instead(
    lines: list[dict[str, Any]], step: int, outcome: dict[str, Any]
) -> list[dict[str, Any]]:
    """The trace up to ``step`` (counted from 1), whose outcome is replaced by ``outcome``."""
    return [*lines[:step], {**lines[step], "outcome": outcome}]


def allowed(step: dict[str, Any], effects: list[list[str]]) -> dict[str, Any]:
    """What a faulty implementation that allowed ``step`` would record."""
    worker = effects[0][1]
    event = {
        "action": step["action"], "allowed": True, "at": step["now"], "detail": "",
        "effects": effects, "reason": "ok", "worker_id": worker,
    }  # fmt: skip
    return {"decision": "allowed", "events": [event], "reason": None}


def samples() -> dict[str, Sample]:
    """Every sample trace by file name."""
    good = lifecycle()
    quota_step = next(
        number
        for number, step in enumerate(good)
        if number and step["outcome"]["reason"] == "quota"
    )
    ignored_quota = recorded_instead(
        good, quota_step, allowed(good[quota_step], [["manifest_issued", "w3"]])
    )
    forged = sign_manifest(Manifest("intruder", None, 0, {}, T0, RESOURCES), OTHER_KEY)
    forged_step = {
        "action": "register_worker",
        "args": {"manifest": manifest_to_json(forged)},
        "now": good[1]["now"],
    }
    forged_registration = [
        good[0],
        {**forged_step, "outcome": allowed(forged_step, [["worker_registered", "intruder"]])},
    ]
    last = len(good) - 1
    switch_ignored = recorded_instead(
        good, last, allowed(good[last], [["worker_registered", "w1"]])
    )
    return {
        "lifecycle.jsonl": Sample(
            good, None, "growth, every kind of refusal, reaping and the kill switch"
        ),
        "decisions-only.jsonl": Sample(
            decisions_only(good), None, "the same history, with decisions and reasons only"
        ),
        "quota-ignored.jsonl": Sample(
            ignored_quota,
            (quota_step, "recorded allowed, the model gives denied (quota"),
            "an implementation that issued a manifest beyond max_replicas",
        ),
        "forged-registration.jsonl": Sample(
            forged_registration,
            (1, "recorded allowed, the model gives denied (bad_signature"),
            "an implementation that registered a manifest signed by another key",
        ),
        "kill-switch-ignored.jsonl": Sample(
            switch_ignored,
            (last, "recorded allowed, the model gives denied (kill_switch"),
            "an implementation that registered a worker after the kill switch",
        ),
    }


def render(lines: list[dict[str, Any]]) -> bytes:
    """A trace's bytes: one canonical JSON object per line."""
    return b"".join(canonical_json(line) + b"\n" for line in lines)


def write_samples(directory: Path) -> None:
    """Write every sample trace into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    for name, sample in samples().items():
        (directory / name).write_bytes(render(sample.lines))


if __name__ == "__main__":
    write_samples(Path(sys.argv[1]) if len(sys.argv) > 1 else DIRECTORY)
