"""The JavaScript sample (examples/js): conformant everywhere the kit looks, and its faults caught.

These tests need Node.js 18 or later (``node`` on the PATH); without it they
are skipped, and ``.ci/run`` says so before the tests start.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from replication.conformance.adapters.preflight import load_adapter
from replication.conformance.concurrent import run_concurrent
from replication.conformance.sequential.runner import run_conformance
from replication.conformance.vectors import check_vectors
from replication.conformance.wire.client import close_all
from replication.explore.tour import tour

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "js"
NODE = shutil.which("node")


def _node_major() -> int:
    if NODE is None:
        return 0
    version = subprocess.run(  # noqa: S603 - node, found on the PATH
        [NODE, "--version"], capture_output=True, text=True, check=False, timeout=30
    ).stdout
    found = re.match(r"v(\d+)\.", version)
    return int(found.group(1)) if found else 0


pytestmark = pytest.mark.skipif(
    _node_major() < 18,
    reason="Node.js 18 or later is not installed (`node` on the PATH): the JavaScript "
    "sample cannot run",
)


def sample(name: str = "impl.js") -> str:
    """Return the target that runs one of the sample's files."""
    return f"exec:node {EXAMPLES / name}"


@pytest.fixture(autouse=True)
def _stop_processes():
    yield
    close_all()


class TestSigning:
    # Spec: R-WIRE-8, R-SIGN-1, R-SIGN-3, R-SIGN-6.
    def test_the_worked_example_of_specs_03_byte_for_byte(self):
        """The sample's canonical JSON, PAE and Ed25519 give the spec's signature exactly."""
        script = """
        const { System, canonical } = require(process.argv[1]);
        const system = new System({
          contract: { max_depth: 1, max_replicas: 2, cooldown_seconds: 0,
                      expiration_seconds: null, clock_skew_seconds: 0, stop_conditions: [] },
          signing_key: Buffer.from([...Array(32).keys()]).toString("hex"),
          verifying_key: "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8",
        }, { canonical });
        const snapshot = JSON.parse(process.argv[2]);
        const manifest = system.sign({
          worker_id: "w\\u00f6rker-1", parent_id: "root", depth: 1, state_snapshot: snapshot,
          issued_at: "2026-01-01T12:00:00.500000Z",
          resources: { cpu_limit: 0.5, memory_limit_mb: 256,
                       network_policy: { allow_controller: true, allow_external: false } },
        });
        console.log(JSON.stringify([manifest.signature, system.verifies(manifest)]));
        """
        # As Python writes it: -0.0, 1e+21 and 1.0, which JavaScript reads as -0, 1e21 and 1.
        snapshot = json.dumps(
            {
                "task": "survey",
                "€": 1e21,
                "b": [1, 2.5, None, True],
                "a": -0.0,
                "\U0001f600": "ok",
                "\ufb01": 1.0,
            }
        )
        assert NODE is not None
        result = subprocess.run(  # noqa: S603 - node, found on the PATH
            [NODE, "-e", script, str(EXAMPLES / "impl.js"), snapshot],
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        )
        signature, verifies = json.loads(result.stdout)
        assert signature == (
            "ed25519:56475aa75463474c:"
            "400ab888ac003c4ce3f7b4cb2da5f006c2e49d425d9cdceadf41b67054d3467a"
            "e878bbea2b6b1237b9d42a13eea8c11fc328722b68bb4041cc722da23137e10e"
        )
        assert verifies is True


class TestConformant:
    # Spec: R-WIRE-2, R-KIT-5, R-KIT-6.
    def test_the_ci_profile_is_conformant(self):
        """The default run (ci profile): every witness reached, no divergence."""
        report = run_conformance(sample(), profile="ci", seed=11)
        assert report.verdict == "CONFORMANT", report.render()
        assert report.implementation_version == "1.0.0"

    # Spec: R-WIRE-4, R-LIN-1, R-LIN-7.
    def test_the_concurrent_mode_is_conformant(self):
        """Three client threads over one process: every history linearizable."""
        report = run_concurrent(sample(), threads=3, profile="ci", seed=11)
        assert report.conformant, report.render()

    # Spec: R-WIRE-3.
    def test_the_tour_takes_every_edge(self):
        """The transition tour drives the sample over every edge of the bounded graph."""
        result = tour(sample())
        assert result.verdict == "CONFORMANT", result.divergence

    # Spec: R-WIRE-8.
    def test_the_vectors_replay(self):
        """Every scenario of specs/vectors replays as recorded."""
        result = check_vectors(ROOT / "specs" / "vectors", load_adapter(sample()))
        assert result.ok, result.render()


#: The shrink budget of the runs whose program length is asserted: a safety net, not a
#: measure. Shrinking ends at its fixed point in seconds on a quiet machine; on a loaded one
#: an 8 s budget ran out before it (Python 3.13 beside two busy runs), and the claim is the
#: program's length, not the shrinker's speed.
SHRINK_NET = 120.0


class TestFaultyVariantsAreCaught:
    # Spec: R-HEARTBEAT-1, R-KIT-6.
    def test_a_heartbeat_from_an_unknown_worker_accepted(self):
        """NOT CONFORMANT: a decision divergence, shrunk to a fixed point of at most five steps
        (two, a heartbeat of an id nobody registered, on every seed tried). Seed 6: its first
        failing program is short, so shrinking over the pipe takes 8 s where seed 1 took 34 s."""
        report = run_conformance(
            sample("faulty/heartbeat-unknown.js"), profile="ci", seed=6, shrink_time=SHRINK_NET
        )
        assert report.verdict == "NOT CONFORMANT"
        assert report.failure_kind == "decision"
        assert "denied (unknown_worker)  | allowed" in (report.failure or "")
        assert report.failures[0].program_steps is not None
        assert report.failures[0].shrunk == "minimal"
        assert report.failures[0].program_steps <= 5, report.program

    # Spec: R-SIGN-3, R-WIRE-8.
    def test_a_body_that_is_not_canonical_json(self):
        """NOT CONFORMANT: the kit's signatures and the sample's disagree (INV-SIGNATURE)."""
        report = run_conformance(
            sample("faulty/unsorted-json.js"), profile="ci", seed=1, shrink_time=SHRINK_NET
        )
        assert report.verdict == "NOT CONFORMANT"
        assert "INV-SIGNATURE" in (report.failure or "") or "bad_signature" in (
            report.failure or ""
        ), report.failure
        assert report.failures[0].program_steps is not None
        assert report.failures[0].program_steps <= 3, report.program

    # Spec: R-LIN-7, INV-KILL-SWITCH.
    def test_a_kill_switch_that_races_is_caught_only_concurrently(self):
        """Sequentially the racy kill switch looks right; with overlapping calls it is not."""
        sequential = run_conformance(
            sample("faulty/racy-kill-switch.js"), profile="dev", max_examples=40, seed=2
        )
        assert sequential.exit_code == 0, sequential.render()
        concurrent = run_concurrent(
            sample("faulty/racy-kill-switch.js"), threads=3, histories=150, seed=1
        )
        assert not concurrent.conformant
        assert concurrent.failure is not None
        assert concurrent.failure.kind in {"not linearizable", "invariant"}
