"""The command line and the bundled demo."""

from __future__ import annotations

import subprocess
import sys

import pytest

from replication.cli import main
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
