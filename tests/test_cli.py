"""The command line and the bundled demo."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time

import pytest

from replication.cli import build_parser, main
from replication.demo import run_demo


def test_the_demo_ends_with_nothing_alive():
    lines: list[str] = []
    assert run_demo(lines.append) == 0
    text = "\n".join(lines)
    for reason in (
        "cooldown",
        "depth_exceeded",
        "quota",
        "stop_condition",
        "bad_signature",
        "replay",
        "kill_switch",
    ):
        assert reason in text
    assert lines[-1] == "nothing survived"
    assert "after: 0 containers, 0 registered workers" in text


def test_the_demo_is_deterministic():
    first: list[str] = []
    second: list[str] = []
    run_demo(first.append)
    run_demo(second.append)
    assert first == second


def test_python_dash_m_runs_the_demo():
    result = subprocess.run(
        [sys.executable, "-m", "replication", "demo"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("nothing survived\n")


def test_a_command_is_required(capsys):
    with pytest.raises(SystemExit) as caught:
        main([])
    assert caught.value.code == 2
    assert "COMMAND" in capsys.readouterr().err


class TestCtrlCHowever:
    """Every command stops on SIGINT with exit code 130, however the process was started."""

    @pytest.fixture
    def sigint_ignored(self):
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
        yield
        signal.signal(signal.SIGINT, previous)

    # Spec: R-KIT-6.
    @pytest.mark.parametrize(
        ("command", "arguments"),
        [
            ("demo", []),
            ("conformance", ["tests.toy_implementation:ToyImplementation"]),
            ("vectors", ["check", "vectors"]),
            ("explore", []),
            ("journal", ["show", "policy.db"]),
            ("trace", ["check", "trace.jsonl"]),
        ],
    )
    def test_sigint_stops_every_command(self, capsys, monkeypatch, sigint_ignored, command,
                                        arguments):  # fmt: skip
        """SIGINT ignored at start (a background job): the command still ends at Ctrl-C, 130."""
        parser = build_parser()

        def press_ctrl_c(_arguments):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(600)  # Ctrl-C interrupts the sleep; the test fails if it does not.
            return 0

        innermost = parser
        for word in (command, *arguments):  # down to the parser that sets `run`
            commands = [
                action for action in innermost._actions
                if isinstance(action, argparse._SubParsersAction)
            ]  # fmt: skip
            if not commands or word not in commands[0].choices:
                break
            innermost = commands[0].choices[word]
        innermost.set_defaults(run=press_ctrl_c)
        monkeypatch.setattr("replication.cli.build_parser", lambda: parser)
        started = time.monotonic()
        assert main([command, *arguments]) == 130
        assert time.monotonic() - started < 120  # a safety net: the sleep is 600 s
        assert capsys.readouterr().err == "replication: interrupted\n"
        assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN  # put back as found
