"""The wire protocol (specs/09): its messages, the Python server, the kit's client, --exec."""

from __future__ import annotations

import io
import json
import os
import re
import shlex
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from benchmarks import wire as benchmark
from replication.conformance.adapters.adapter import Denied, ReferenceImplementation
from replication.conformance.adapters.preflight import SetupError, load_adapter
from replication.conformance.fixtures import KEY, contract_from
from replication.conformance.sequential.runner import run_conformance
from replication.conformance.vectors import check_vectors
from replication.conformance.wire.client import WireTarget, close_all
from replication.conformance.wire.messages import (
    SCHEMA_PATH,
    contract_to_wire,
    manifest_from_wire,
    manifest_to_wire,
    schema_problem,
)
from replication.conformance.wire.serve import Server, serve
from replication.model import Manifest, ReplicationContract, ResourceSpec, StopCondition
from replication.signing import sign_manifest

ROOT = Path(__file__).resolve().parent.parent
SERVER = f"{shlex.quote(sys.executable)} -m replication.conformance.wire.serve"
FAKE_SCRIPT = ROOT / "tests" / "wire_fakes" / "fake.py"
FAKE = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_SCRIPT))}"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
RESOURCES = ResourceSpec(0.5, 256)
CONTRACT, _ = contract_from(
    {
        "max_depth": 2,
        "max_replicas": 4,
        "cooldown_seconds": 1.0,
        "expiration_seconds": None,
        "clock_skew_seconds": 0.0,
        "stop_conditions": ("every_third",),
        "heartbeat_timeout_seconds": 5.0,
    }
)


@pytest.fixture(autouse=True)
def _stop_processes():
    yield
    close_all()


def replication(tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(  # noqa: S603 - our interpreter, our command line
        [sys.executable, "-m", "replication", *arguments],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env=environment,
        timeout=300,
    )


def started(command: str = SERVER):
    target = WireTarget(command)
    target.connect()
    adapter = target()
    adapter.start(CONTRACT, KEY, lambda: T0)
    return target, adapter


class TestMessages:
    # Spec: R-WIRE-7.
    def test_every_message_of_a_session_matches_its_schema(self):
        """Each request the client sends and each response the server gives passes its schema."""
        target, adapter = started()
        root = adapter.issue(None, "root", RESOURCES, {"task": "survey"})
        adapter.register(root)
        adapter.launch(root)
        adapter.heartbeat("root")
        with pytest.raises(Denied):
            adapter.release("root")
        adapter.observe()
        adapter.reap(timedelta(seconds=5))
        adapter.kill_switch()
        transcript = target.connection.transcript
        assert [entry["request"]["op"] for entry in transcript] == [
            "start",
            "issue",
            "register",
            "launch",
            "heartbeat",
            "release",
            "observe",
            "reap",
            "kill_switch",
        ]
        kinds = {"issue": "manifest_ok", "observe": "observation_ok"}
        for entry in transcript:
            request, response = entry["request"], entry["response"]
            assert schema_problem(f"{request['op']}_request", request) is None
            kind = "denied" if response["status"] == "denied" else kinds.get(request["op"], "ok")
            assert schema_problem(f"{kind}_response", response) is None
        target.close()

    # Spec: R-WIRE-7.
    def test_a_malformed_message_is_named_by_its_path(self):
        """schema_problem says where the first bad value is, and the schema ships with the kit."""
        assert SCHEMA_PATH.is_file()
        problem = schema_problem(
            "reap_request",
            {"id": 1, "op": "reap", "now": "2026-01-01T00:00:00.000000Z", "timeout_seconds": "5"},
        )
        assert problem is not None
        assert problem.startswith("at /timeout_seconds:")

    # Spec: R-WIRE-8, R-SIGN-8.
    def test_a_manifest_travels_as_its_signed_body_and_comes_back_equal(self):
        """Edge-case numbers arrive in any JSON spelling and rebuild the same manifest."""
        snapshot = {"zero": -0.0, "e21": 1e21, "big": 2**53 - 1, "\U0001f600": [1.0, None]}
        signed = sign_manifest(Manifest("a:b", None, 0, snapshot, T0, RESOURCES), KEY)
        sent = json.loads(json.dumps(manifest_to_wire(signed)))
        assert set(sent) == {
            "worker_id",
            "parent_id",
            "depth",
            "state_snapshot",
            "issued_at",
            "resources",
            "signature",
        }
        assert signed == manifest_from_wire(sent)
        # A JavaScript implementation writes -0 as 0 and 1.0 as 1: the same manifest.
        sent["state_snapshot"] = {"zero": 0, "e21": 1e21, "big": 2**53 - 1, "\U0001f600": [1, None]}
        assert signed == manifest_from_wire(sent)

    # Spec: R-WIRE-8.
    def test_only_named_stop_conditions_travel(self):
        """A contract whose stop condition the protocol cannot name is refused, naming it."""
        assert contract_to_wire(CONTRACT)["stop_conditions"] == ["every_third"]
        mine = StopCondition("mine", "x", lambda _c: False)
        custom = ReplicationContract(1, 2, 0.0, stop_conditions=[mine])
        with pytest.raises(ValueError, match=r"\['mine'\]"):
            contract_to_wire(custom)


class TestServer:
    def answers(self, *requests: dict) -> list[dict]:
        stdin = io.StringIO("".join(json.dumps(request) + "\n" for request in requests))
        stdout = io.StringIO()
        serve(Server(ReferenceImplementation, name="reference"), stdin, stdout)
        return [json.loads(line) for line in stdout.getvalue().splitlines()]

    # Spec: R-WIRE-2.
    def test_the_handshake_declares_the_adapter_and_refuses_another_version(self):
        """hello answers name, gaps and signing; another version is a definite error."""
        ok, other = self.answers(
            {"id": 0, "op": "hello", "protocol": 1}, {"id": 1, "op": "hello", "protocol": 2}
        )
        assert ok == {
            "id": 0,
            "status": "ok",
            "protocol": 1,
            "name": "reference",
            "version": None,
            "gaps": [],
            "signs": False,
        }
        assert (other["status"], other["definite"]) == ("error", True)

    # Spec: R-WIRE-3, R-WIRE-6.
    def test_start_reset_and_the_three_statuses(self):
        """An action before start or after reset is a definite error; a refusal is denied."""
        now = "2026-01-01T00:00:00.000000Z"
        start = {
            "id": 1,
            "op": "start",
            "now": now,
            "contract": contract_to_wire(CONTRACT),
            "signing_key": bytes(range(32)).hex(),
            "verifying_key": KEY.verifying_key.raw.hex(),
        }
        responses = self.answers(
            {"id": 0, "op": "heartbeat", "now": now, "worker_id": "a"},
            start,
            {"id": 2, "op": "heartbeat", "now": now, "worker_id": "a"},
            {"id": 3, "op": "reset"},
            {"id": 4, "op": "kill_switch", "now": now},
            {"id": 5, "op": "launch", "now": now, "manifest": {"worker_id": "a"}},
            {"id": 6, "op": "fly", "now": now},
        )
        assert [r["status"] for r in responses] == [
            "error",
            "ok",
            "denied",
            "ok",
            "error",
            "error",
            "error",
        ]
        assert responses[2]["reason"] == "unknown_worker"
        assert responses[0]["message"] == "heartbeat before start: there is no system"
        assert responses[5]["message"].startswith("malformed launch request: at /manifest:")
        assert responses[6]["message"] == "unknown op 'fly'"
        assert all(r["definite"] for r in responses if r["status"] == "error")


class TestClient:
    # Spec: R-WIRE-4.
    def test_responses_in_any_order_are_matched_by_id(self):
        """Two requests in flight, answered in reverse order, each get their own response."""
        target, adapter = started(f"{FAKE} out-of-order")
        root = adapter.issue(None, "root", RESOURCES, {})
        adapter.register(root)
        results: dict[str, object] = {}

        def beat(worker_id: str) -> None:
            try:
                adapter.heartbeat(worker_id)
                results[worker_id] = "ok"
            except Denied as denied:
                results[worker_id] = denied.reason

        threads = [threading.Thread(target=beat, args=(w,)) for w in ("root", "ghost")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert results == {"root": "ok", "ghost": "unknown_worker"}
        # The fake logs the reordering before it sends the held answer, but the kit reads its
        # stderr on a thread of its own, which may not have read that line yet.
        deadline = time.monotonic() + 60
        while not any(line.startswith("answered") for line in target.stderr_tail()):
            assert time.monotonic() < deadline, "the fake did not answer out of order"
            time.sleep(0.01)
        target.close()

    # Spec: R-WIRE-5.
    def test_every_action_carries_the_kit_clock(self):
        """The time the kit's clock gives is the request's now, to the microsecond."""
        target, adapter = started()
        moments = iter([T0 + timedelta(microseconds=7), T0 + timedelta(seconds=1)])
        adapter.clock = lambda: next(moments)
        with pytest.raises(Denied):
            adapter.heartbeat("nobody")
        observed = adapter.observe()
        sent = [entry["request"]["now"] for entry in target.connection.transcript[1:]]
        assert sent == ["2026-01-01T00:00:00.000007Z", "2026-01-01T00:00:01.000000Z"]
        assert observed.workers == {}
        target.close()

    # Spec: R-WIRE-3.
    def test_one_process_serves_every_system_and_a_dead_one_is_started_again(self):
        """start begins a fresh system in the same process; after a death, a new process."""
        target, adapter = started()
        adapter.register(adapter.issue(None, "root", RESOURCES, {}))
        first = target.connection.process.pid
        adapter.start(CONTRACT, KEY, lambda: T0)
        assert adapter.observe().workers == {}
        assert first == target.connection.process.pid
        target.connection.process.kill()
        target.connection.process.wait()
        with pytest.raises(Exception, match="was killed by signal 9"):
            adapter.observe()
        again = target()
        again.start(CONTRACT, KEY, lambda: T0)
        assert again.observe().workers == {}
        assert first != target.connection.process.pid
        target.close()

    # Spec: R-WIRE-9, R-KIT-1.
    def test_an_implementation_that_signs_with_its_own_scheme(self):
        """signs: true in the handshake: the kit makes every manifest through sign and verify."""
        hmac = f"exec:{SERVER} tests.toy_implementation:HmacSigning"
        report = run_conformance(hmac, profile="dev", seed=4, max_examples=20, shrink=False)
        assert report.adapter_signs
        assert report.exit_code == 0, report.render()
        # Its signature joins fields with ':': the kit's manifests, made through the
        # wire's sign, catch it as in-process (tests/test_conformance.py).
        joined = f"exec:{SERVER} tests.toy_implementation:HmacColonJoined"
        report = run_conformance(joined, profile="ci", seed=2, shrink=False)
        assert report.verdict == "NOT CONFORMANT"
        assert "denied (bad_signature)  | denied (parent_unknown)" in (report.failure or "")

    # Spec: R-WIRE-2.
    def test_a_wire_target_loads_like_any_adapter(self):
        """exec:COMMAND passes the kit's preflight with what the handshake declared."""
        adapter = load_adapter(f"exec:{SERVER}")
        assert adapter.name == f"exec:{SERVER}"
        assert (adapter.gaps, adapter.signs, adapter.not_provided) == (
            frozenset(),
            False,
            frozenset(),
        )

    # Spec: R-WIRE-2.
    def test_a_command_that_cannot_start_cannot_run(self):
        """A missing program is a SetupError naming the command."""
        with pytest.raises(SetupError, match=r"cannot start 'no-such-program-x --flag'"):
            load_adapter("exec:no-such-program-x --flag")


class TestCommandLine:
    # Spec: R-WIRE-1.
    def test_exec_and_a_target_together_are_refused(self, tmp_path):
        """One way to name the implementation at a time: exit 2, one line."""
        result = replication(
            tmp_path, "conformance", "tests.toy_implementation:ToyImplementation", "--exec", SERVER
        )
        assert result.returncode == 2
        assert (
            result.stderr == "replication conformance: give either a target or --exec, not both\n"
        )

    # Spec: R-WIRE-1, R-WIRE-3.
    def test_conformance_and_vectors_check_take_exec(self, tmp_path):
        """The reference behind the server: no divergence, and every vector replays."""
        result = replication(
            tmp_path,
            "conformance",
            "--exec",
            SERVER,
            "--profile",
            "dev",
            "--max-examples",
            "15",
            "--seed",
            "2",
            "--quiet",
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.splitlines()[0] == f"replication conformance 0.1.0: exec:{SERVER}"
        assert result.stdout.rstrip().endswith("NO DIVERGENCE FOUND")
        result = replication(
            tmp_path, "vectors", "check", str(ROOT / "specs" / "vectors"), "--exec", SERVER
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.splitlines()[-1] == "OK"

    # Spec: R-WIRE-4.
    def test_the_concurrent_mode_takes_exec(self, tmp_path):
        """Several threads' calls in flight over one process, histories checked: no crash, no
        hang, every history linearizable. Whether six histories also reach the rarer witnesses
        (a kill switch overlapping a launch) is the scheduler's call: on a busy machine they
        may not, and the verdict is then INCONCLUSIVE, saying so, never NOT CONFORMANT."""
        result = replication(
            tmp_path,
            "conformance",
            "--exec",
            SERVER,
            "--concurrent",
            "--histories",
            "6",
            "--seed",
            "3",
        )
        lines = result.stdout.splitlines()
        # The verdict's line may be followed by the implementation's stderr, or a word on it.
        verdicts = {"CONFORMANT": 0, "INCONCLUSIVE": 1, "NOT CONFORMANT": 1}
        verdict = next((line for line in reversed(lines) if line in verdicts), None)
        assert verdict in {"CONFORMANT", "INCONCLUSIVE"}, result.stdout
        assert verdicts[verdict] == result.returncode, result.stdout
        assert "  [pass] no call crashed and no client hung" in lines, result.stdout
        assert "  [pass] every history is linearizable (observation mode)" in lines
        overlapped = re.search(
            r"^  \[ *(\d+)\] calls of two clients overlapped$", result.stdout, re.M
        )
        assert overlapped is not None, result.stdout
        assert int(overlapped.group(1)) > 0
        if verdict == "INCONCLUSIVE":
            assert "some witnesses were never reached" in result.stdout

    # Spec: R-WIRE-1.
    def test_the_pytest_plugin_takes_exec(self, tmp_path):
        """--replication-exec adds one item per command, named after it."""
        environment = {**os.environ, "PYTHONPATH": str(ROOT)}
        result = subprocess.run(  # noqa: S603 - our interpreter, pytest
            [
                sys.executable,
                "-m",
                "pytest",
                "-p",
                "no:cacheprovider",
                "-p",
                "no:randomly",
                "-n",
                "0",
                "-ra",
                f"--replication-exec={SERVER}",
                "--replication-profile=dev",
                "--replication-max-examples=10",
                "--replication-seed=1",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=tmp_path,
            env=environment,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        assert "collected 1 item" in result.stdout
        assert "1 passed" in result.stdout

    def test_the_vectors_api_takes_a_wire_adapter(self):
        """check_vectors replays through a loaded exec: adapter as through any other."""
        result = check_vectors(ROOT / "specs" / "vectors", load_adapter(f"exec:{SERVER}"))
        assert result.ok


class TestBenchmark:
    def test_the_benchmark_runs_and_reports_its_targets(self, tmp_path, capsys):
        """benchmarks/wire.py --quick measures both sides and says whether the target is met."""
        written = tmp_path / "wire.json"
        assert benchmark.main(["--quick", "--json", str(written)]) == 0
        figures = json.loads(written.read_text(encoding="utf-8"))
        steps = figures["steps per second (median)"]
        assert steps["in-process"] > 0
        assert steps["over the wire"] > 0
        ratio = steps["over the wire"] / steps["in-process"]
        assert figures["over the wire / in-process"] == pytest.approx(ratio)
        assert figures["target met (over the wire >= 50% of in-process)"] is (ratio >= 0.5)
        assert "over the wire / in-process:" in capsys.readouterr().out
