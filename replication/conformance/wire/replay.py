"""``replication wire replay FILE --exec COMMAND``: a recorded divergence, sent again.

The file is what a run against ``--exec`` wrote for its divergence (R-WIRE-11):
a first line naming the command and the divergence, then one exchange a line,
the request the kit sent and the response it received. The replay starts the
command afresh, makes the handshake, sends every request in order (with fresh
ids), prints each exchange, and marks each response that differs from the one
recorded (ids aside). Exit code 0: every response as recorded; 1: one differs;
2: the file or the process cannot be used.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from replication.conformance.wire.client import WireStartError, WireTarget, with_tail
from replication.conformance.wire.connection import WireCrash
from replication.conformance.wire.messages import WireViolation

__all__ = ["ReplayError", "add_wire_command", "load_replay", "replay"]

#: The format a replay file's first line names.
FORMAT = "replication.wire.replay/1"


class ReplayError(Exception):
    """The replay file cannot be used: one line saying why."""


def load_replay(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Return a replay file's header and its exchanges, or raise :class:`ReplayError`."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        why = getattr(error, "strerror", None) or error
        raise ReplayError(f"cannot read {path}: {why}") from None
    entries = []
    for number, line in enumerate(lines, start=1):
        try:
            entry = json.loads(line)
        except ValueError:
            raise ReplayError(f"{path}:{number}: not a JSON line") from None
        if not isinstance(entry, dict):
            raise ReplayError(f"{path}:{number}: expected a JSON object")
        entries.append(entry)
    if not entries or entries[0].get("format") != FORMAT:
        raise ReplayError(f'{path}:1: expected a header with "format": "{FORMAT}"')
    exchanges = entries[1:]
    for number, entry in enumerate(exchanges, start=2):
        request = entry.get("request")
        if not isinstance(request, dict) or not isinstance(request.get("op"), str):
            raise ReplayError(f'{path}:{number}: expected {{"request": {{"op": ...}}, ...}}')
    return entries[0], exchanges


def _without_id(message: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in message.items() if key != "id"}


def replay(path: Path, command: str, out: TextIO) -> int:
    """Send the file's requests to ``command``; print the exchanges; return the exit code."""
    header, exchanges = load_replay(path)
    for line in header.get("divergence", []):
        print(f"# {line}", file=out)
    target = WireTarget(command)
    connection = target.connect()
    differ = 0
    try:
        for entry in exchanges:
            request = _without_id(entry["request"])
            op = request.pop("op")
            print(f"-> {json.dumps({'op': op, **request}, ensure_ascii=False)}", file=out)
            try:
                got = _without_id(connection.request(op, request, errors=False))
            except (WireCrash, WireViolation) as error:
                text = error.message if isinstance(error, WireViolation) else str(error)
                print(with_tail(f"<- (no response) {text}", connection.stderr_tail(wait=True)),
                      file=out)  # fmt: skip
                return 1
            print(f"<- {json.dumps(got, ensure_ascii=False)}", file=out)
            recorded = entry.get("response")
            if isinstance(recorded, dict) and _without_id(recorded) != got:
                differ += 1
                print(f"   differs from the recording: {json.dumps(_without_id(recorded))}",
                      file=out)  # fmt: skip
    finally:
        target.close()
    print(f"{len(exchanges)} requests sent, {differ} responses differ from the recording",
          file=out)  # fmt: skip
    return 1 if differ else 0


def _run(arguments: argparse.Namespace) -> int:
    try:
        return replay(Path(arguments.file), arguments.exec_command, sys.stdout)
    except (ReplayError, WireStartError) as error:
        message = error.message if isinstance(error, WireStartError) else str(error)
        print(f"replication wire: {message}", file=sys.stderr)
        return 2


def add_wire_command(
    commands: argparse._SubParsersAction,  # type: ignore[type-arg]
    parser_class: type[argparse.ArgumentParser],
) -> None:
    """Add ``replication wire replay FILE --exec COMMAND``."""
    wire = commands.add_parser(
        "wire", help="the wire protocol (specs/09): replay a recorded divergence"
    ).add_subparsers(dest="wire_command", required=True, metavar="ACTION",
                     parser_class=parser_class)  # fmt: skip
    replay_command = wire.add_parser(
        "replay",
        help="send a recorded program's requests to a process again",
        description="Send the requests of a replay file (written by a run with --exec) to "
        "a fresh process, print every exchange and mark the responses that differ from the "
        "recording. Exit code 0: every response as recorded; 1: one differs; 2: the file or "
        "the process cannot be used.",
    )
    replay_command.add_argument("file")
    replay_command.add_argument("--exec", dest="exec_command", metavar="COMMAND", required=True,
                                help="the command that runs the implementation")  # fmt: skip
    # Accepted after the command too; the top level's default must stand.
    replay_command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)
    replay_command.set_defaults(run=_run)
