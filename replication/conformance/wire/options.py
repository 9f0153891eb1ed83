"""``--exec COMMAND``: the one way every command names an implementation spoken to over the wire.

``replication conformance``, ``explore``, ``vectors check`` and the pytest
plugin take ``--exec COMMAND`` beside their own way of naming a Python adapter;
each turns it into the target ``exec:COMMAND`` (specs/09, R-WIRE-1). After a
sequential run against such a target, :func:`after_run` prints the
implementation's stderr tail and writes the failing test case as protocol
messages for ``replication wire replay`` (R-WIRE-11).
"""

from __future__ import annotations

import contextlib
import io
import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replication.conformance.wire.client import EXEC_PREFIX, loaded, target_for, with_tail
from replication.conformance.wire.messages import PROTOCOL

if TYPE_CHECKING:
    import argparse

    from replication.conformance.reports.report import Report

__all__ = ["REPLAY_FORMAT", "add_exec_option", "after_run", "exec_target", "stderr_lines"]

#: The name and version of a replay file's format (its first line says it).
REPLAY_FORMAT = "replication.wire.replay/1"
#: Where a replay file goes unless ``--replay-file`` says otherwise.
DEFAULT_REPLAY_FILE = "replication-wire-replay.jsonl"
#: Divergences the shrunk program cannot be run again for without a time limit.
_NOT_REPLAYED = frozenset({"timeout", "flaky", "reference"})


def add_exec_option(parser: argparse.ArgumentParser, *, replay: bool = False) -> None:
    """Add ``--exec COMMAND`` (and, for a sequential run, ``--replay-file``) to ``parser``."""
    parser.add_argument(
        "--exec", dest="exec_command", metavar="COMMAND", default=None,
        help="check the implementation COMMAND runs, spoken to over the wire protocol "
        "(specs/09-wire-protocol.md), e.g. --exec \"node examples/js/impl.js\"",
    )  # fmt: skip
    if replay:
        parser.add_argument(
            "--replay-file", metavar="PATH", default=None,
            help=f"with --exec: where to write a divergence as protocol messages "
            f"(default: ./{DEFAULT_REPLAY_FILE})",
        )  # fmt: skip


def exec_target(command: str | None, other: str | None, *, other_option: str) -> str | None:
    """Return the target ``--exec`` names, or ``other``; refuse both at once (ValueError)."""
    if command is None:
        return other
    if other is not None:
        message = f"give either {other_option} or --exec, not both"
        raise ValueError(message)
    if not command.strip():
        message = "--exec needs a command, got an empty one"
        raise ValueError(message)
    return EXEC_PREFIX + command


def _transcript(target: str, program: str) -> list[dict[str, Any]] | None:
    """Run the shrunk ``program`` once more and return its requests and responses."""
    wire = target_for(target.removeprefix(EXEC_PREFIX))
    namespace: dict[str, Any] = {"__name__": "replication_wire_replay"}
    quiet = io.StringIO()
    with contextlib.redirect_stdout(quiet), contextlib.suppress(Exception):
        exec(compile(program, "<shrunk program>", "exec"), namespace)  # noqa: S102 - the kit's own
    connection = wire.connection
    return None if connection is None else list(connection.transcript)


def stderr_lines(target: str) -> list[str]:
    """Return the implementation's stderr tail, as lines to print after a report.

    The tail of the process when a request last failed, else of the last process.
    Nothing for a target that is not ``exec:``.
    """
    wire = loaded(target.removeprefix(EXEC_PREFIX)) if target.startswith(EXEC_PREFIX) else None
    if wire is None:
        return []
    if wire.failure_tail is not None:
        tail, whose = wire.failure_tail, "when it failed, the implementation's"
    else:
        tail, whose = wire.stderr_tail(), "the implementation's last process's"
    return with_tail("", tail, whose=whose).splitlines()[1:]


def after_run(target: str, report: Report, replay_file: str | None) -> list[str]:
    """Return the lines to print after a run against ``target`` (nothing unless ``exec:``).

    The stderr tail, and for a divergence the replay file written (R-WIRE-11).
    """
    lines = stderr_lines(target)
    if not lines or report.exit_code == 0:
        return []
    wire = target_for(target.removeprefix(EXEC_PREFIX))
    divergence = report.failures[0] if report.failures else None
    if divergence is None or divergence.program is None or divergence.kind in _NOT_REPLAYED:
        return lines
    transcript = _transcript(target, divergence.program)
    if not transcript:
        return lines
    path = Path(replay_file or DEFAULT_REPLAY_FILE)
    header = {
        "format": REPLAY_FORMAT,
        "protocol": PROTOCOL,
        "command": wire.command,
        "divergence": divergence.text.splitlines(),
    }
    text = "".join(json.dumps(entry, ensure_ascii=False) + "\n" for entry in [header, *transcript])
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        return [*lines, f"the replay file {path} could not be written: {error.strerror}"]
    return [
        *lines,
        f"the shrunk program as {len(transcript)} protocol exchanges: {path}",
        (
            f"replay it: replication wire replay {shlex.quote(str(path))} "
            f"--exec {shlex.quote(wire.command)}"
        ),
    ]
