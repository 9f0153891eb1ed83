"""Counterexamples replay: as steps, as a runnable program, and as a test vector."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

from replication.conformance.adapters.adapter import ReferenceImplementation
from replication.conformance.vectors.export import check_vectors
from replication.explore import Bound, Counterexample, explore, program, replay, write_vector
from replication.explore.actions import Action, resolve_transitions
from replication.explore.trace import ExportError, vector_scenario
from tests.broken_transitions import (
    CRASHING_HEARTBEAT,
    EXITING_HEARTBEAT,
    IGNORES_COOLDOWN,
    KILL_SWITCH_SURVIVOR,
    MALFORMED_HEARTBEAT,
    QUARANTINED_HEARTBEAT,
    REFUSES_ALL,
    STATELESS_HEARTBEAT,
    STUCK_AFTER_ISSUE,
)

ROOT = Path(__file__).resolve().parent.parent
ONE = Bound(
    max_depth=0, max_replicas=1, cooldown=1, heartbeat_timeout=1, expiration=None, max_issued=1
)
#: A parent with two children in flight: the cooldown at registration is reachable.
FAMILY = Bound(
    max_depth=1, max_replicas=3, cooldown=2, heartbeat_timeout=0, expiration=None, max_issued=3
)
BROKEN = {
    "KILL_SWITCH_SURVIVOR": (KILL_SWITCH_SURVIVOR, ONE, "INV-KILL-SWITCH"),
    "QUARANTINED_HEARTBEAT": (QUARANTINED_HEARTBEAT, ONE, "INV-QUARANTINE"),
    "IGNORES_COOLDOWN": (IGNORES_COOLDOWN, FAMILY, "INV-COOLDOWN"),
}


@pytest.fixture(scope="module")
def found():
    return {
        name: explore(bound, transitions=transitions)
        for name, (transitions, bound, _) in BROKEN.items()
    }


def run_program(source: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "counterexample.py"
    path.write_text(source, encoding="utf-8")
    # The program imports the broken fixtures from tests/: on the path however the
    # project was installed (editable or not).
    environment = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(  # noqa: S603 - our own interpreter on a file we just wrote
        [sys.executable, str(path)], capture_output=True, text=True, cwd=ROOT, check=False,
        env=environment,
    )  # fmt: skip


class BrokenHeartbeat(ReferenceImplementation):
    """The reference adapter over the broken copy whose heartbeat ignores quarantine."""

    def heartbeat(self, worker_id):
        self._apply(QUARANTINED_HEARTBEAT.heartbeat, worker_id)


class TestCounterexamples:
    @pytest.mark.parametrize("name", sorted(BROKEN))
    def test_each_broken_copy_is_caught_with_its_invariant(self, found, name):
        """R-EXPLORE-7, R-EXPLORE-8: the broken rule is reported under the invariant it breaks."""
        check = BROKEN[name][2]
        assert found[name].verdict == "FAIL"
        assert check == found[name].counterexample.check

    def test_the_traces_are_the_shortest(self, found):
        """R-EXPLORE-8: the least number of steps that reach each violation."""
        lengths = {name: len(found[name].counterexample.actions) for name in BROKEN}
        assert (lengths) == {
            "KILL_SWITCH_SURVIVOR": 4,
            "QUARANTINED_HEARTBEAT": 4,
            "IGNORES_COOLDOWN": 6,
        }

    @pytest.mark.parametrize("name", sorted(BROKEN))
    def test_a_trace_replays_to_the_same_violation(self, found, name):
        """R-EXPLORE-9: replaying the actions reproduces the step that breaks the invariant."""
        transitions, bound, _ = BROKEN[name]
        counterexample = found[name].counterexample
        steps = replay(bound, counterexample.actions, transitions)
        assert list(counterexample.actions) == [step.action for step in steps]
        assert all(step.result.allowed for step in steps[:-1])
        honest = replay(bound, counterexample.actions[:-1])
        assert [s.result.reason for s in honest] == [s.result.reason for s in steps[:-1]]


class TestPrograms:
    def test_the_program_runs_on_its_own(self, found, tmp_path):
        """R-EXPLORE-9: the printed program is a script that python runs to show the violation."""
        name = "KILL_SWITCH_SURVIVOR"
        source = program(ONE, found[name].counterexample, f"tests.broken_transitions:{name}")
        result = run_program(source, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "INV-KILL-SWITCH: kill switch engaged but containers ['w1'] run" in result.stdout

    @pytest.mark.parametrize("name", sorted(BROKEN))
    def test_the_program_reproduces_the_violation(self, found, name, capsys):
        """R-EXPLORE-9: each program, run against the public API, shows its violation."""
        _, bound, check = BROKEN[name]
        source = program(bound, found[name].counterexample, f"tests.broken_transitions:{name}")
        exec(compile(source, "counterexample.py", "exec"), {"__name__": "__main__"})  # noqa: S102
        assert f"{check}:" in capsys.readouterr().out

    def test_the_program_fails_against_the_correct_core(self, found):
        """R-EXPLORE-9: the same program run on the core asserts, so it proves something."""
        source = program(ONE, found["KILL_SWITCH_SURVIVOR"].counterexample)
        with pytest.raises(AssertionError, match="INV-KILL-SWITCH was expected to fail"):
            exec(compile(source, "counterexample.py", "exec"), {"__name__": "__main__"})  # noqa: S102

    @pytest.mark.parametrize(
        ("name", "transitions", "shown", "refuted"),
        [
            ("CRASHING_HEARTBEAT", CRASHING_HEARTBEAT, "raised: RuntimeError('boom')",
             "heartbeat(w1) was expected to raise"),
            ("MALFORMED_HEARTBEAT", MALFORMED_HEARTBEAT, "raised: TypeError(",
             "heartbeat(w1) was expected to raise"),
            ("EXITING_HEARTBEAT", EXITING_HEARTBEAT, "raised: SystemExit(0)",
             "heartbeat(w1) was expected to raise"),
            ("STATELESS_HEARTBEAT", STATELESS_HEARTBEAT, "raised: TypeError('not an outcome",
             "heartbeat(w1) was expected to raise"),
            ("REFUSES_ALL", REFUSES_ALL, "allowed in this state: []",
             "every transition was expected to be refused"),
            ("STUCK_AFTER_ISSUE", STUCK_AFTER_ISSUE, "allowed in this state: []",
             "every transition was expected to be refused"),
        ],
    )  # fmt: skip
    def test_crashes_and_deadlocks_in_a_state_have_their_own_program(
        self, name, transitions, shown, refuted, capsys
    ):
        """R-EXPLORE-9: a crash, and a state where nothing is allowed (even the first), replay.

        Each program shows its violation on the broken copy, and asserts on the core.
        """
        counterexample = explore(ONE, transitions=transitions).counterexample
        source = program(ONE, counterexample, f"tests.broken_transitions:{name}")
        exec(compile(source, "counterexample.py", "exec"), {"__name__": "__main__"})  # noqa: S102
        assert shown in capsys.readouterr().out
        on_the_core = source.replace(
            f"from tests.broken_transitions import {name} as transitions",
            "from replication import transitions",
        )
        with pytest.raises(AssertionError, match=re.escape(refuted)):
            exec(compile(on_the_core, "counterexample.py", "exec"), {"__name__": "__main__"})  # noqa: S102

    def test_a_dotted_attribute_is_imported_then_looked_up(self, found, capsys):
        """R-EXPLORE-9: ``module:Holder.inner`` imports the module, then takes the attribute."""
        reference = "tests.broken_transitions:Nested.inner"
        source = program(ONE, found["KILL_SWITCH_SURVIVOR"].counterexample, reference)
        assert "transitions = getattr(transitions, 'Nested')" in source
        exec(compile(source, "counterexample.py", "exec"), {"__name__": "__main__"})  # noqa: S102
        assert "INV-KILL-SWITCH:" in capsys.readouterr().out

    def test_any_message_makes_a_program(self, found):
        """R-EXPLORE-9: what the explored code said is a comment; quotes, NUL, surrogates too."""
        actions = found["KILL_SWITCH_SURVIVOR"].counterexample.actions
        said = 'raised Error("""\\N\x00\ud800\n""")'
        counterexample = Counterexample("INV-KILL-SWITCH", said, actions, in_state=False)
        source = program(ONE, counterexample, "tests.broken_transitions:KILL_SWITCH_SURVIVOR")
        compile(source.encode(), "counterexample.py", "exec")
        assert "\\x00\\ud800" in source

    def test_a_module_without_the_transitions_is_refused(self):
        """R-EXPLORE-1: what is explored must have every transition the explorer calls."""
        with pytest.raises(ValueError, match="not a set of transitions: it lacks deregister_"):
            resolve_transitions("json")


class TestVectors:
    def test_a_counterexample_becomes_a_vector_directory_that_validates(self, found, tmp_path):
        """R-EXPLORE-9, R-VECTOR-1: every file of the export validates against the schema."""
        written = write_vector(tmp_path, ONE, found["QUARANTINED_HEARTBEAT"].counterexample)
        schema = json.loads((tmp_path / "schema.json").read_text(encoding="utf-8"))
        assert {"scenarios/counterexample.json", "signing.json", "index.json", "schema.json"} <= {
            path.relative_to(tmp_path).as_posix() for path in written
        }
        for path in written:
            if path.name != "schema.json":
                jsonschema.validate(json.loads(path.read_text(encoding="utf-8")), schema)

    def test_the_reference_passes_the_vector_and_the_broken_copy_fails_it(self, found, tmp_path):
        """R-EXPLORE-9, R-VECTOR-3: the expectations are the reference core's."""
        write_vector(tmp_path, ONE, found["QUARANTINED_HEARTBEAT"].counterexample)
        assert check_vectors(tmp_path, ReferenceImplementation).ok
        broken = check_vectors(tmp_path, BrokenHeartbeat)
        assert not broken.ok
        assert (
            "step 3 (heartbeat): expected denied (quarantined), got allowed" in (broken.failures[0])
        )

    def test_deregister_and_expire_become_vector_steps_the_reference_passes(self, tmp_path):
        """R-EXPLORE-9: the vector format has deregister and expire; the reference replays them."""
        actions = (Action("issue"), Action("register", "w1"), Action("deregister", "w1"),
                   Action("expire"))  # fmt: skip
        scenario = vector_scenario(ONE, Counterexample("INV-AUDIT", "made up", actions, False))
        assert [step["action"] for step in scenario["steps"]][-2:] == ["deregister", "expire"]
        write_vector(tmp_path, ONE, Counterexample("INV-AUDIT", "made up", actions, False))
        assert check_vectors(tmp_path, ReferenceImplementation).ok

    def test_a_directory_in_use_is_refused(self, found, tmp_path):
        """R-EXPLORE-9: a vector directory is written whole, never into another one."""
        (tmp_path / "index.json").write_text("{}", encoding="utf-8")
        with pytest.raises(ExportError, match="is not empty"):
            write_vector(tmp_path, ONE, found["QUARANTINED_HEARTBEAT"].counterexample)
        assert [path.name for path in tmp_path.iterdir()] == ["index.json"]

    def test_an_empty_directory_is_filled_whole(self, found, tmp_path):
        """R-EXPLORE-9: an empty directory becomes the vector; nothing is left beside it."""
        target = tmp_path / "vector"
        target.mkdir()
        written = write_vector(target, ONE, found["QUARANTINED_HEARTBEAT"].counterexample)
        assert {path.parent for path in written} <= {target, target / "scenarios"}
        assert [path.name for path in tmp_path.iterdir()] == ["vector"]
        assert check_vectors(target, ReferenceImplementation).ok

    def test_actions_vectors_cannot_express_are_refused(self):
        """R-EXPLORE-9: enforce and claimed depths have no vector form."""
        counterexample = Counterexample(
            "INV-AUDIT", "made up", (Action("issue"), Action("enforce", "w1")), False
        )
        with pytest.raises(ExportError, match="enforce"):
            vector_scenario(ONE, counterexample)
