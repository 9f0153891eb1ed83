"""A process that misbehaves gets a clear verdict: exit code, first line, stderr tail, replay.

Each fake in tests/wire_fakes/fake.py is the reference served over the wire,
misbehaving one way (specs/09, R-WIRE-10): it exits or crashes, prints garbage
or a log line on stdout, answers the wrong id or twice, never answers, answers
an error, or speaks another protocol version.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
FAKE_SCRIPT = ROOT / "tests" / "wire_fakes" / "fake.py"
FAKE = f"{shlex.quote(sys.executable)} {shlex.quote(str(FAKE_SCRIPT))}"
SERVER = f"{shlex.quote(sys.executable)} -m replication.conformance.wire.serve"
RUN = ("--profile", "dev", "--seed", "1", "--max-examples", "5", "--quiet", "--shrink-time", "3")
CANNOT_RUN = "replication conformance: cannot run: "


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


def divergence_line(stdout: str) -> str:
    """Return the first line of the divergence the report describes."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("DIVERGENCE ("))
    return lines[header + 1]


class TestCannotRun:
    # Spec: R-WIRE-10, R-WIRE-2, R-KIT-1.
    @pytest.mark.parametrize(
        ("mode", "first", "logged"),
        [
            (
                "exit-at-once",
                CANNOT_RUN + "the handshake failed: the implementation exited with "
                "code 3 before answering #0 (hello)",
                "cannot open the database: no such file",
            ),
            (
                "banner",
                CANNOT_RUN + "the handshake failed: the implementation wrote a line that "
                "is not JSON on stdout: 'Listening on stdin...' (stdout carries only protocol "
                "messages: write logs to stderr)",
                "fake implementation, mode banner",
            ),
            (
                "version-2",
                CANNOT_RUN + "the implementation speaks protocol version 2, and the kit "
                "speaks version 1 (specs/09-wire-protocol.md, R-WIRE-2)",
                None,
            ),
            (
                "log-on-register",
                CANNOT_RUN + "the implementation wrote a line that is not JSON on "
                "stdout: 'DEBUG registering ",
                "fake implementation, mode log-on-register",
            ),
            (
                "garbage-on-register",
                CANNOT_RUN + "the implementation wrote a line that is not JSON "
                "on stdout: '\\x00\\x01 {not json'",
                "fake implementation, mode garbage-on-register",
            ),
        ],
    )
    def test_exit_code_2_and_what_was_received(self, tmp_path, mode, first, logged):
        """A process that breaks the protocol or the handshake cannot run: exit 2, one message."""
        result = replication(tmp_path, "conformance", "--exec", f"{FAKE} {mode}", *RUN)
        assert result.returncode == 2, result.stdout + result.stderr
        assert result.stdout == ""
        assert result.stderr.splitlines()[0].startswith(first), result.stderr
        assert "Traceback" not in result.stderr
        if logged is not None:
            assert f"stderr ends with:\n    fake implementation, mode {mode}" in result.stderr
            assert logged in result.stderr

    # Spec: R-WIRE-10, R-WIRE-4.
    def test_a_wrong_id_and_a_second_answer_are_told_apart(self, tmp_path):
        """Exit 2; the message says which: an id nobody waits for, or one already answered."""
        wrong = replication(tmp_path, "conformance", "--exec", f"{FAKE} wrong-id-on-register", *RUN)
        twice = replication(tmp_path, "conformance", "--exec", f"{FAKE} twice-on-register", *RUN)
        assert (wrong.returncode, twice.returncode) == (2, 2)
        assert re.match(
            CANNOT_RUN + r"the implementation answered request #\d+, which no request is waiting "
            r"for \(waiting: \[\d+\]\): '\{\"id\": \d+, \"status\": ",
            wrong.stderr,
        ), wrong.stderr
        assert re.match(
            CANNOT_RUN + r"the implementation answered request #\d+ a second time: '\{\"id\": \d+",
            twice.stderr,
        ), twice.stderr

    # Spec: R-WIRE-10.
    def test_a_command_that_does_not_exist(self, tmp_path):
        """No such program: exit 2, naming the command."""
        result = replication(tmp_path, "conformance", "--exec", "no-such-program-x --fast", *RUN)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            CANNOT_RUN + "cannot start 'no-such-program-x --fast': No such file or directory"
        ]


class TestNotConformant:
    # Spec: R-WIRE-10, R-KIT-6, R-KIT-7.
    @pytest.mark.parametrize(
        ("mode", "first", "details"),
        [
            (
                "exit-on-register",
                "crash divergence at register_worker (clock +0 s)",
                [
                    "raised WireCrash: the implementation exited with code 7 before answering #",
                    "    register: out of memory, giving up",
                ],
            ),
            (
                "crash-on-register",
                "crash divergence at register_worker (clock +0 s)",
                [
                    "the implementation exited with code 1 before answering #",
                    "    RuntimeError: register: the registry is corrupt",
                ],
            ),
            (
                "error-on-register",
                "crash divergence at register_worker (clock +0 s)",
                ["with an error (indefinite: it may have acted): the registry's disk is full"],
            ),
            ("hang-on-register", "timeout at register", ["did not return within 1 s (--timeout)"]),
        ],
    )
    def test_exit_code_1_with_the_divergence(self, tmp_path, mode, first, details):
        """Exiting, crashing, an error or silence during a call is a divergence: exit 1."""
        # A short limit only where the process never answers: a restart of a crashed
        # one (Python's start-up on a busy machine) runs under it too.
        limit = ("--timeout", "1") if mode == "hang-on-register" else ()
        result = replication(
            tmp_path, "conformance", "--exec", f"{FAKE} {mode}", *RUN, *limit, "--no-shrink"
        )
        assert result.returncode == 1, result.stdout + result.stderr
        assert first == divergence_line(result.stdout)
        for detail in details:
            assert detail in result.stdout
        assert result.stdout.rstrip().splitlines()[-1] != "CONFORMANT"
        assert "NOT CONFORMANT" in result.stdout.splitlines()
        assert "Traceback" not in result.stderr
        # The kit's own frames are not the implementation's: no "raised at" into the client.
        assert "wire/client.py" not in result.stdout

    # Spec: R-WIRE-10, R-LIN-7.
    def test_the_concurrent_mode_gives_the_same_verdicts(self, tmp_path):
        """With calls in flight: a crash is NOT CONFORMANT (1), a broken protocol cannot run (2)."""
        crash = replication(
            tmp_path,
            "conformance",
            "--exec",
            f"{FAKE} exit-on-register",
            "--concurrent",
            "--histories",
            "5",
            "--seed",
            "1",
        )
        assert crash.returncode == 1, crash.stdout + crash.stderr
        assert "CRASH: history 0 of seed 1" in crash.stdout.splitlines()
        assert "when it failed, the implementation's stderr ends with:" in crash.stdout
        assert "    register: out of memory, giving up" in crash.stdout.splitlines()
        broken = replication(
            tmp_path,
            "conformance",
            "--exec",
            f"{FAKE} log-on-register",
            "--concurrent",
            "--histories",
            "5",
            "--seed",
            "1",
            "--quiet",  # the concurrent mode's progress lines also go to stderr
        )
        assert broken.returncode == 2, broken.stdout + broken.stderr
        assert broken.stderr.startswith(
            CANNOT_RUN + "the implementation wrote a line that is not JSON on stdout: "
            "'DEBUG registering "
        )

    # Spec: R-WIRE-11.
    def test_the_crash_is_written_as_protocol_messages_and_replays(self, tmp_path):
        """The replay file ends with the request the process died on; replaying it reproduces."""
        command = f"{FAKE} crash-on-register"
        result = replication(tmp_path, "conformance", "--exec", command, *RUN)
        assert result.returncode == 1
        replay_line = result.stdout.splitlines()[-1]
        expected = "replay it: replication wire replay replication-wire-replay.jsonl --exec "
        assert replay_line == expected + shlex.quote(command)
        written = (tmp_path / "replication-wire-replay.jsonl").read_text(encoding="utf-8")
        assert '"format": "replication.wire.replay/1"' in written.splitlines()[0]
        last = written.splitlines()[-1]
        assert '"op": "register"' in last
        assert last.endswith('"response": null}')
        again = replication(
            tmp_path, "wire", "replay", "replication-wire-replay.jsonl", "--exec", command
        )
        assert again.returncode == 1
        assert "<- (no response) the implementation exited with code 1" in again.stdout
        assert "RuntimeError: register: the registry is corrupt" in again.stdout
        fixed = replication(
            tmp_path, "wire", "replay", "replication-wire-replay.jsonl", "--exec", SERVER
        )
        assert fixed.returncode == 0, fixed.stdout + fixed.stderr
        assert fixed.stdout.splitlines()[0] == "# crash divergence at register_worker (clock +0 s)"

    # Spec: R-WIRE-11.
    def test_a_replay_file_that_cannot_be_used(self, tmp_path):
        """A file that is not a replay: exit 2, one line naming the file."""
        (tmp_path / "x.jsonl").write_text('{"format": "other"}\n', encoding="utf-8")
        result = replication(tmp_path, "wire", "replay", "x.jsonl", "--exec", SERVER)
        assert result.returncode == 2
        assert result.stderr.splitlines() == [
            (
                'replication wire: x.jsonl:1: expected a header with "format": '
                '"replication.wire.replay/1"'
            )
        ]
