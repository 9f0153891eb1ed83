"""``replication explore``: its verdict line, its exit codes, its files and its errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from replication.cli import main
from replication.explore.cli import EXIT_CODES

#: Arguments for a bound of one worker: explored in a blink.
ONE = ["--max-depth", "0", "--max-replicas", "1", "--max-issued", "1", "--expiration", "none",
       "--quiet"]  # fmt: skip
BROKEN = ["--transitions", "tests.broken_transitions:KILL_SWITCH_SURVIVOR"]


def explore(capsys, *arguments):
    code = main(["explore", *arguments])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


class TestVerdicts:
    def test_an_exhaustive_clean_run_passes_with_the_verdict_line_last(self, capsys):
        """R-EXPLORE-12: PASS, exit 0, and a last line with states, transitions, coverage, time."""
        code, out, _ = explore(capsys, *ONE)
        assert code == 0
        last = out.rstrip("\n").splitlines()[-1]
        assert last.startswith("PASS: 24 states, 460 transitions, diameter 7, ")
        assert "coverage 17/17 reason codes and 14/14 actions" in last
        assert last.endswith(" s")

    def test_a_violation_fails_with_exit_code_1_and_its_program(self, capsys):
        """R-EXPLORE-9, R-EXPLORE-12: FAIL, exit 1, the trace and the program in the report."""
        code, out, _ = explore(capsys, *ONE, *BROKEN)
        assert code == 1
        assert "COUNTEREXAMPLE (INV-KILL-SWITCH, 4 steps, a shortest trace)" in out
        assert "from tests.broken_transitions import KILL_SWITCH_SURVIVOR as transitions" in out
        assert (
            out.rstrip("\n").splitlines()[-1].startswith("FAIL (INV-KILL-SWITCH after 4 steps): ")
        )

    def test_a_limit_makes_the_run_incomplete_with_exit_code_3(self, capsys):
        """R-EXPLORE-12: stopped by --max-states, the verdict is INCOMPLETE and the code 3."""
        code, out, _ = explore(capsys, *ONE, "--max-states", "5")
        assert code == 3
        assert "INCOMPLETE (stopped by --max-states (5)): " in out
        assert "held to depth" in out

    def test_the_exit_codes_are_documented_in_the_help(self, capsys):
        with pytest.raises(SystemExit):
            main(["explore", "--help"])
        help_text = " ".join(capsys.readouterr().out.split())
        for code, meaning in EXIT_CODES.items():
            assert f"{code}: {' '.join(meaning.split())}" in help_text

    def test_the_tour_reports_a_divergence_with_exit_code_1(self, capsys):
        """R-EXPLORE-13: --impl tours the adapter; a faulty one is NOT CONFORMANT."""
        code, out, _ = explore(capsys, "--impl", "tests.toy_implementation:QuarantinedHeartbeat")
        assert code == 1
        assert "FIRST DIVERGENCE" in out
        assert (
            out.rstrip("\n")
            .splitlines()[-1]
            .startswith("NOT CONFORMANT: decision divergence at heartbeat after ")
        )

    def test_the_tour_of_a_correct_adapter_exits_0(self, capsys):
        """R-EXPLORE-13: every edge taken without a divergence."""
        code, out, _ = explore(
            capsys, "--impl", "replication.conformance.adapter:ReferenceImplementation",
            "--max-issued", "1",
        )  # fmt: skip
        assert code == 0
        assert out.rstrip("\n").splitlines()[-1].startswith("CONFORMANT: ")


class TestFiles:
    def test_the_program_vector_and_json_are_written(self, capsys, tmp_path):
        """R-EXPLORE-9: --program, --export-vector and --json write what the report says."""
        code, out, _ = explore(
            capsys, *ONE, *BROKEN, "--program", str(tmp_path / "trace.py"),
            "--export-vector", str(tmp_path / "vector"), "--json", str(tmp_path / "run.json"),
        )  # fmt: skip
        assert code == 1
        assert (tmp_path / "trace.py").read_text(encoding="utf-8") in out
        assert (tmp_path / "vector" / "scenarios" / "counterexample.json").exists()
        report = json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))
        assert report["verdict"] == "FAIL"
        assert report["counterexample"]["check"] == "INV-KILL-SWITCH"


class TestErrors:
    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            (["--transitions", "tests.broken_transitions:NOPE"], "cannot load"),
            (["--impl", "tests.toy_implementation:NoSuchThing"], "cannot load"),
            (["--no-time-abstraction"], "max_ticks"),
            (["--max-issued", "-1"], "max_issued must be an int >= 0"),
        ],
    )
    def test_errors_are_one_line_with_exit_code_2(self, capsys, arguments, message):
        """R-EXPLORE-12: a command that cannot run says why in one line and exits with 2."""
        code, out, err = explore(capsys, *ONE, *arguments)
        assert code == 2
        assert out == ""
        assert len(err.strip().splitlines()) == 1
        assert err.startswith("replication explore: ")
        assert message in err

    def test_an_unexpected_error_is_one_line_unless_debug(self, capsys, tmp_path):
        """R-EXPLORE-12: tracebacks only with --debug."""
        unwritable = str(tmp_path / "missing" / "trace.py")
        code, _, err = explore(capsys, *ONE, *BROKEN, "--program", unwritable)
        assert code == 2
        assert "FileNotFoundError" in err
        assert "Traceback" not in err
        code, _, err = explore(capsys, *ONE, *BROKEN, "--program", unwritable, "--debug")
        assert code == 2
        assert "Traceback (most recent call last)" in err

    def test_the_progress_line_goes_to_stderr(self):
        """R-EXPLORE-12: states, frontier, depth and states per second, on stderr."""
        result = subprocess.run(  # noqa: S603 - our own interpreter and module
            [sys.executable, "-m", "replication", "explore", *ONE[:-1]],
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert "explore: 24 states, frontier 0, depth 7, " in result.stderr
        assert " states/s" in result.stderr
