"""``replication explore``: its verdict line, its exit codes, its files and its errors."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys

import pytest

from replication.cli import main
from replication.conformance.adapters.adapter import ReferenceImplementation
from replication.conformance.vectors.export import check_vectors
from replication.explore import trace as trace_module
from replication.explore.cli import EXIT_CODES
from tests import toy_implementation as toys
from tests.helpers import IGNORING_SIGINT

#: Arguments for a bound of one worker: explored in a blink.
ONE = ["--max-depth", "0", "--max-replicas", "1", "--max-issued", "1", "--expiration", "none",
       "--quiet"]  # fmt: skip
BROKEN = ["--transitions", "tests.broken_transitions:KILL_SWITCH_SURVIVOR"]
#: A tour of an adapter that crashes at its first registration.
CRASHES = ["--impl", "tests.unruly_adapters:CrashesOnRegister"]


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
            capsys, "--impl", "replication.conformance.adapters:ReferenceImplementation",
            "--max-issued", "1",
        )  # fmt: skip
        assert code == 0
        # One manifest drives no refusal that needs two: the verdict line says which.
        assert (
            out.rstrip("\n")
            .splitlines()[-1]
            .startswith("CONFORMANT on the tour bound; not driven: issue denied quota, ")
        )


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

    @pytest.mark.parametrize(
        ("arguments", "problem"),
        [
            (["--json", "{tmp}/missing/run.json"], "--json {tmp}/missing/run.json: the directory"),
            (["--program", "{tmp}"], "--program {tmp}: is a directory, not a file"),
            (["--export-vector", "{tmp}"], "--export-vector {tmp}: {tmp} is not empty"),
        ],
    )
    def test_output_paths_are_checked_before_the_search(self, capsys, tmp_path, arguments,
                                                        problem):  # fmt: skip
        """R-EXPLORE-12: a path that cannot be written stops the command before any work."""
        (tmp_path / "index.json").write_text("{}", encoding="utf-8")
        given = [argument.format(tmp=tmp_path) for argument in arguments]
        code, out, err = explore(capsys, *ONE, *BROKEN, *given)
        assert (code, out) == (2, "")
        assert len(err.splitlines()) == 1
        assert err.startswith(f"replication explore: {problem.format(tmp=tmp_path)}")

    def test_the_report_is_printed_before_the_files_are_written(self, capsys, monkeypatch,
                                                                tmp_path):  # fmt: skip
        """R-EXPLORE-12: a file that cannot be written loses nothing: the FAIL stands (exit 1)."""

        def full_disk(*_arguments, **_options):
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(trace_module, "write_vector", full_disk)
        code, out, err = explore(capsys, *ONE, *BROKEN, "--export-vector", str(tmp_path / "v"),
                                 "--json", str(tmp_path / "run.json"))  # fmt: skip
        assert code == 1
        assert "COUNTEREXAMPLE (INV-KILL-SWITCH, 4 steps, a shortest trace)" in out
        assert err == (
            "replication explore: --export-vector: nothing written: No space left on device\n"
        )
        assert json.loads((tmp_path / "run.json").read_text(encoding="utf-8"))["verdict"] == "FAIL"

    def test_a_crash_is_a_failure_with_its_program(self, capsys, tmp_path):
        """R-EXPLORE-7, R-EXPLORE-9: a transition that raises fails the run (1), with a program."""
        crashing = ["--transitions", "tests.broken_transitions:CRASHING_HEARTBEAT"]
        code, out, _ = explore(capsys, *ONE, *crashing, "--program", str(tmp_path / "crash.py"))
        assert code == 1
        assert out.rstrip("\n").splitlines()[-1].startswith("FAIL (CRASH after 3 steps): ")
        assert "assert crash is not None, 'heartbeat(w1) was expected to raise'" in out
        assert (tmp_path / "crash.py").read_text(encoding="utf-8") in out

    def test_nothing_to_write_is_said(self, capsys, tmp_path):
        """R-EXPLORE-12: a run without a counterexample says that --program wrote nothing."""
        code, _, err = explore(capsys, *ONE, "--program", str(tmp_path / "none.py"))
        assert code == 0
        assert err == "replication explore: no counterexample: --program wrote nothing\n"
        assert not (tmp_path / "none.py").exists()


class TestTour:
    def test_a_crashing_implementation_is_not_conformant(self, capsys):
        """R-EXPLORE-13: the implementation's crash is its divergence (exit 1), with the path."""
        code, out, err = explore(capsys, *ONE, *CRASHES)
        assert (code, err) == (1, "")
        assert "raised at tests/unruly_adapters.py:" in out
        assert (
            out.rstrip("\n")
            .splitlines()[-1]
            .startswith("NOT CONFORMANT: crash divergence at register_worker after ")
        )

    def test_a_report_that_cannot_be_encoded_is_printed_escaped(self, capsys):
        """R-EXPLORE-12: what the adapter said cannot cost the report (exit 1, not 2)."""
        code, out, _ = explore(capsys, *ONE, "--impl", "tests.unruly_adapters:CrashesUnprintably")
        assert code == 1
        assert "raised RuntimeError: bad \\ud800 byte" in out

    def test_a_hanging_implementation_is_stopped_by_the_timeout(self, capsys):
        """R-EXPLORE-13: --timeout limits each call; a hang is a divergence (exit 1)."""
        code, out, _ = explore(
            capsys, *ONE, "--impl", "tests.unruly_adapters:HangsInKill", "--timeout", "0.2"
        )
        assert code == 1
        assert "  - kill('w1') did not return within 0.2 s (--timeout)" in out.splitlines()

    @pytest.mark.parametrize(
        ("limit", "stopped"),
        [
            (["--max-time", "0.001"], "--max-time (0.001 s)"),
            (["--max-states", "3"], "--max-states (3)"),
        ],
    )
    def test_the_limits_make_a_tour_incomplete(self, capsys, limit, stopped):
        """R-EXPLORE-13: --max-time and --max-states bound the tour (exit 3)."""
        code, out, _ = explore(
            capsys, *ONE, "--impl", "replication.conformance.adapters:FacadeImplementation", *limit
        )
        assert code == 3
        assert out.rstrip("\n").splitlines()[-1].startswith(f"INCOMPLETE (stopped by {stopped}): ")

    def test_the_divergence_is_written_as_json_and_as_a_vector(self, capsys, tmp_path):
        """R-EXPLORE-13, R-EXPLORE-9: the divergent path replays as a test vector."""
        vector, report = tmp_path / "vector", tmp_path / "tour.json"
        code, _, _ = explore(
            capsys, *ONE, "--impl", "tests.toy_implementation:KillSwitchSurvivor",
            "--export-vector", str(vector), "--json", str(report),
        )  # fmt: skip
        assert code == 1
        data = json.loads(report.read_text(encoding="utf-8"))
        assert (data["verdict"], data["divergence"]["kind"]) == ("NOT CONFORMANT", "invariant")
        assert check_vectors(vector, ReferenceImplementation).ok
        assert not check_vectors(vector, toys.KillSwitchSurvivor).ok


class TestPipes:
    def test_a_reader_that_leaves_early_changes_nothing(self, monkeypatch, capsys):
        """R-EXPLORE-12: ``explore | head`` stops quietly with the verdict's exit code."""
        read, write = os.pipe()
        os.close(read)  # the reader is gone before the report is written
        with open(write, "w", buffering=1, encoding="utf-8") as stdout:  # noqa: PTH123 - a pipe
            monkeypatch.setattr(sys, "stdout", stdout)
            code = main(["explore", *ONE])
        assert (code, capsys.readouterr().err) == (0, "")


class TestErrors:
    @pytest.mark.parametrize(
        ("arguments", "message"),
        [
            (["--transitions", "tests.broken_transitions:NOPE"], "cannot load"),
            (["--impl", "tests.toy_implementation:NoSuchThing"], "cannot load"),
            (["--no-time-abstraction"], "max_ticks"),
            (["--transitions", "json"], "cannot load json: not a set of transitions: it lacks"),
            (["--transitions", "tests.no_such_module"], "ModuleNotFoundError"),
            (["--transitions", "tests.broken_transitions:EXITS.inner"], "SystemExit: 0"),
            (["--timeout", "3"], "--timeout does not apply without --impl"),
            ([*CRASHES, "--program", "p.py"], "--program does not apply with --impl"),
            ([*CRASHES, "--transitions", "replication.transitions"],
             "--transitions does not apply with --impl"),
        ],
    )  # fmt: skip
    def test_errors_are_one_line_with_exit_code_2(self, capsys, arguments, message):
        """R-EXPLORE-12: a command that cannot run says why in one line and exits with 2."""
        code, out, err = explore(capsys, *ONE, *arguments)
        assert code == 2
        assert out == ""
        assert len(err.strip().splitlines()) == 1
        assert err.startswith("replication explore: ")
        assert message in err

    @pytest.mark.parametrize(
        ("option", "value", "expected"),
        [
            ("--max-time", "nan", "a finite number of seconds above 0"),
            ("--max-time", "-1", "a finite number of seconds above 0"),
            ("--max-time", "0", "a finite number of seconds above 0"),
            ("--max-states", "0", "a whole number >= 1"),
            ("--max-states", "-5", "a whole number >= 1"),
            ("--processes", "0", "a whole number from 1 to 256"),
            ("--processes", "-3", "a whole number from 1 to 256"),
            ("--heartbeat-timeout", "99999999999999", "a whole number from 0 to 1,000,000"),
            ("--cooldown", "-1", "a whole number from 0 to 1,000,000"),
            ("--max-issued", "-1", "a whole number from 0 to 1,000,000"),
            ("--max-replicas", "0", "a whole number from 1 to 1,000,000"),
            ("--max-depth", "two", "a whole number, got 'two'"),
            ("--expiration", "0", "a whole number from 1 to 1,000,000"),
            ("--max-ticks", "0", "a whole number from 1 to 1,000,000"),
            ("--timeout", "inf", "a finite number of seconds above 0"),
        ],
    )
    def test_every_number_is_checked_when_the_arguments_are_parsed(
        self, capsys, option, value, expected
    ):
        """R-EXPLORE-12: a number out of range is refused at once, naming the option (exit 2)."""
        with pytest.raises(SystemExit) as stopped:
            main(["explore", *ONE, option, value])
        captured = capsys.readouterr()
        assert stopped.value.code == 2
        assert captured.out == ""
        assert f"argument {option}: expected {expected}" in captured.err

    def test_an_unexpected_error_is_one_line_unless_debug(self, capsys, monkeypatch):
        """R-EXPLORE-12: tracebacks only with --debug."""

        def broken(*_arguments, **_options):
            message = "a bug"
            raise RuntimeError(message)

        monkeypatch.setattr("replication.explore.search.explore", broken)
        code, _, err = explore(capsys, *ONE)
        assert code == 2
        assert err == "replication explore: RuntimeError: a bug (--debug shows where)\n"
        code, _, err = explore(capsys, *ONE, "--debug")
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


class TestCtrlC:
    """Ctrl-C stops `explore` with its partial report and exit code 130, however it was started."""

    # Spec: R-EXPLORE-12.
    def test_a_search_started_in_the_background_stops_with_its_partial_report(self, tmp_path):
        """SIGINT ignored at start (a script's background job): SIGINT still stops the search."""
        process = subprocess.Popen(  # noqa: S603 - our interpreter, our module
            [*IGNORING_SIGINT, "-m", "replication", "explore", "--processes", "1"],
            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert process.stderr is not None
        try:
            assert process.stderr.readline().startswith("explore: ")  # it searches
            process.send_signal(signal.SIGINT)
            out, err = process.communicate(timeout=120)
        finally:
            process.kill()
            process.wait()
        assert process.returncode == 130, out + err
        assert out.splitlines()[-1].startswith("INTERRUPTED (stopped by Ctrl-C): "), out
        assert "Traceback" not in out + err

    # Spec: R-EXPLORE-12.
    def test_a_tour_stops_with_its_partial_report(self, capsys):
        """Ctrl-C during a call into the adapter: what the tour took so far, exit code 130."""
        code, out, _ = explore(capsys, "--impl", "tests.unruly_adapters:PressesCtrlCOnRegister",
                               "--quiet")  # fmt: skip
        assert code == 130, out
        assert "  stopped by Ctrl-C: the edges not taken were not checked" in out
        assert out.splitlines()[-1].startswith("INTERRUPTED (stopped by Ctrl-C): "), out

    # Spec: R-EXPLORE-12.
    def test_the_message_starts_on_a_line_of_its_own(self, monkeypatch):
        """On a terminal the progress line is rewritten in place: it is ended before the message."""

        class Terminal(io.StringIO):
            def isatty(self) -> bool:
                return True

        def interrupted(*_arguments, progress, **_options):
            progress(10, 5, 1, 1.0)
            raise KeyboardInterrupt

        terminal = Terminal()
        monkeypatch.setattr(sys, "stderr", terminal)
        monkeypatch.setattr("replication.explore.search.explore", interrupted)
        assert main(["explore", *ONE[:-1]]) == 130
        line, message = terminal.getvalue().rsplit("\n", 2)[-3:-1]
        assert line.startswith("\rexplore: 10 states, frontier 5, depth 1")
        assert message == "replication: interrupted"
