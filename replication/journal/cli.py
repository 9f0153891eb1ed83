"""``replication journal verify|show|export|copy`` and ``replication trace check``.

Every ``journal`` command takes an SQLite file or a ``postgresql://`` URL
(shown without its password).

Exit codes: 0, the journal verifies (or the trace's every step is one the
model gives; ``show`` and ``export`` read every row); 1, a row, checkpoint or
step fails, named in one line, or ``show --worker ID`` found no row naming
the worker; 2, the command cannot run (no such file, not a regular file, a
file or line too large, not a journal or a trace, a stop condition it cannot
evaluate, a bad option).
Errors are one line on stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import sys
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.model import ReplicationContract
    from replication.signing import VerifyingKey

__all__ = ["EXIT_CODES", "add_journal_commands"]

#: What each exit code means.
EXIT_CODES = {
    0: "verified (every step is the model's)",
    1: "a row, checkpoint or step fails, and the first is named (show --worker: no row "
    "names the worker)",
    2: "cannot run: no such file, not a regular file, too large, not a journal or trace, or "
    "an unusable option",
}


class _UsageError(Exception):
    """An option that cannot be used: one line, exit code 2."""


def _load_contract(spec: str | None) -> ReplicationContract | None:
    """Load ``module:attribute``, a ReplicationContract carrying stop conditions' predicates."""
    if spec is None:
        return None
    from replication.model import ReplicationContract  # noqa: PLC0415 - keep start-up light

    module, _, attribute = spec.partition(":")
    if not module or not attribute:
        message = f"--contract must be 'module:attribute', got {spec!r}"
        raise _UsageError(message)
    from replication._resolve import UnresolvedNameError, resolve  # noqa: PLC0415

    try:
        contract = resolve(spec)
    except Exception as error:  # noqa: BLE001 - the user's module may raise anything on import
        message = (
            f"--contract {spec}: {error}"
            if isinstance(error, UnresolvedNameError)
            else (f"--contract {spec}: {type(error).__name__}: {error}")
        )
        raise _UsageError(message) from None
    if type(contract) is not ReplicationContract:
        message = f"--contract {spec} is a {type(contract).__name__}, not a ReplicationContract"
        raise _UsageError(message)
    return contract


def _load_key(path: str | None) -> VerifyingKey | None:
    if path is None:
        return None
    from replication._files import InputFileError, read_regular_file  # noqa: PLC0415
    from replication.errors import InvalidKeyError  # noqa: PLC0415
    from replication.signing import VerifyingKey  # noqa: PLC0415

    try:
        return VerifyingKey.from_pem(read_regular_file(path, limit=_PEM_LIMIT))
    except (OSError, InvalidKeyError, InputFileError) as error:
        message = f"--key {path}: {error}"
        raise _UsageError(message) from None


def _anchor(text: str) -> tuple[int, str]:
    sequence, _, digest = text.partition(":")
    if not (sequence.isdecimal() and sequence.isascii() and int(sequence) >= 1) or not (
        len(digest) == _DIGEST_LENGTH and all(c in "0123456789abcdef" for c in digest)
    ):
        message = (
            f"expected SEQUENCE:HASH (a row number >= 1 and its 64 lowercase hex digits, as "
            f"verify prints them), got {text!r}"
        )
        raise argparse.ArgumentTypeError(message)
    return int(sequence), digest


#: What a journal argument may be.
_WHERE = "an SQLite journal file, or a postgresql:// URL of the database holding one"
#: The most a PEM key file may hold: an Ed25519 key's PEM is about 120 bytes.
_PEM_LIMIT = 64 * 1024
#: Hex digits of a row's SHA-256 hash.
_DIGEST_LENGTH = 64


def _verify(arguments: argparse.Namespace) -> int:
    from replication.journal.verify import verify_journal  # noqa: PLC0415

    verified = verify_journal(
        arguments.path,
        checkpoint_key=_load_key(arguments.key),
        contract=_load_contract(arguments.contract),
        anchor=arguments.head,
    )
    head, state, header = verified.head, verified.state, verified.header
    pinned = (
        "given with --key"
        if verified.key_pinned
        else "named by the journal's own header; pass --key to pin it"
    )
    switch = "engaged" if state.controller.kill_switch_engaged else "not engaged"
    print(f"journal {_shown(arguments.path)}: verified")
    print(f"  header: journal {header['journal_id']}, signed with the checkpoint key")
    print(f"  rows: {head.sequence}, head {head.hash}")
    if arguments.head is not None:
        print(f"  anchor: row {arguments.head[0]} holds the anchored hash")
    print(
        f"  checkpoints: {verified.checkpoints}, one every {header['checkpoint_interval']} rows, "
        f"under key {_key_id(header)} ({pinned})"
    )
    print(f"  snapshots: {verified.snapshots}, each the state replay gives at its row")
    print("  replay: every decision and event is the one the model gives")
    print(
        f"  state: {len(state.registry)} registered, {len(state.containers)} containers, "
        f"kill switch {switch}"
    )
    return 0


def _shown(location: str) -> str:
    """Return a path as given, a URL without its password."""
    from replication.journal.stores import display_location  # noqa: PLC0415

    return display_location(location)


def _copy(arguments: argparse.Namespace) -> int:
    from replication.journal.copy import copy_journal  # noqa: PLC0415

    copied = copy_journal(
        arguments.source,
        arguments.destination,
        checkpoint_key=_load_key(arguments.key),
        contract=_load_contract(arguments.contract),
    )
    print(f"journal {_shown(arguments.source)} -> {_shown(arguments.destination)}: copied")
    print(f"  rows: {copied.head.sequence}, head {copied.head.hash} (the same in both)")
    print(f"  checkpoints: {copied.checkpoints}, snapshots: {copied.snapshots}")
    print("  verified: the source before the copy, the copy after it")
    return 0


def _snapshot(arguments: argparse.Namespace) -> int:
    from replication._files import InputFileError, read_regular_file  # noqa: PLC0415
    from replication.errors import InvalidKeyError  # noqa: PLC0415
    from replication.journal.verify import write_snapshot  # noqa: PLC0415
    from replication.signing import SigningKey  # noqa: PLC0415

    try:
        key = SigningKey.from_pem(read_regular_file(arguments.key, limit=_PEM_LIMIT))
    except (OSError, InvalidKeyError, InputFileError, ValueError, TypeError) as error:
        message = f"--key {arguments.key}: {error} (the checkpoint key's private PEM)"
        raise _UsageError(message) from None
    snapshot = write_snapshot(arguments.path, key, contract=_load_contract(arguments.contract))
    print(
        f"journal {_shown(arguments.path)}: snapshot of row {snapshot.sequence} written and signed"
    )
    print("  the journal was verified from its first row before it was written")
    return 0


def _key_id(header: dict[str, Any]) -> str:
    from replication.signing import VerifyingKey  # noqa: PLC0415

    return VerifyingKey(bytes.fromhex(header["checkpoint_key"])).key_id


def _mentions(row: dict[str, Any], worker_id: str) -> bool:
    """Whether a row's arguments or events name ``worker_id``."""
    args = row.get("args")
    if isinstance(args, dict):
        manifest = args.get("manifest")
        named = {args.get("worker_id"), args.get("parent_id")}
        if isinstance(manifest, dict):
            named |= {manifest.get("worker_id"), manifest.get("parent_id")}
        if worker_id in named:
            return True
    outcome = row.get("outcome")
    events = outcome.get("events", []) if isinstance(outcome, dict) else []
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict):
            continue
        effects = event.get("effects") or []
        if event.get("worker_id") == worker_id or any(
            isinstance(effect, list) and worker_id in effect[1:] for effect in effects
        ):
            return True
    return False


def _show_row(row: dict[str, Any]) -> str:
    """One line for a row of the schema's shape (:func:`~replication.journal.verify.read_row`)."""
    outcome: dict[str, Any] = row["outcome"]
    decision = outcome["decision"]
    said = "allowed" if decision == "allowed" else f"{decision} ({outcome['reason']})"
    effects = [
        f"{kind} {worker}"
        for event in outcome.get("events", [])
        for kind, worker in event["effects"]
    ]
    args: dict[str, Any] = row["args"]
    manifest = args.get("manifest")
    subject = args.get("worker_id") or (manifest["worker_id"] if manifest else "")
    shown = ", ".join(effects[:6]) + (f", ... {len(effects) - 6} more" if len(effects) > 6 else "")
    return (
        f"#{row.get('sequence')} {row.get('now')} {row.get('action')} {subject}".rstrip()
        + f": {said}"
        + (f" [{shown}]" if shown else "")
    )


def _show(arguments: argparse.Namespace) -> int:
    from replication.journal.verify import read_row, reading  # noqa: PLC0415

    shown = 0
    with reading(arguments.path) as (_, rows):
        for row in rows:
            body = read_row(arguments.path, row)
            if arguments.worker is None or _mentions(body, arguments.worker):
                print(_show_row(body))
                shown += 1
    if arguments.worker is not None and shown == 0:
        # As grep: nothing matched is exit 1, so a script can ask whether a worker appears.
        print(
            f"replication journal: no row of {arguments.path} names worker {arguments.worker!r}",
            file=sys.stderr,
        )
        return 1
    return 0


def _export(arguments: argparse.Namespace) -> int:
    from replication.encoding import canonical_json  # noqa: PLC0415
    from replication.journal.trace import trace_header  # noqa: PLC0415
    from replication.journal.verify import read_row, reading_signed  # noqa: PLC0415
    from replication.signing import VerifyingKey  # noqa: PLC0415

    out = sys.stdout.buffer
    with reading_signed(arguments.path) as (header, signature, rows):
        key = VerifyingKey(bytes.fromhex(header["verifying_key"]))
        signed = signature if type(signature) is str else None
        line = trace_header(header["contract"], key, header, signed)
        out.write(canonical_json(line) + b"\n")
        for row in rows:
            read_row(arguments.path, row)  # a trace's step: what is not one is not exported
            out.write(row.body + b"\n")
    out.flush()
    return 0


def _trace_check(arguments: argparse.Namespace) -> int:
    from replication.journal.trace import check_trace  # noqa: PLC0415

    report = check_trace(arguments.path, contract=_load_contract(arguments.contract))
    print(report.render())
    if report.interrupted:
        return 130
    return 0 if report.ok else 1


def _guarded(command: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Run ``command``, turning every known failure into one line and its exit code."""

    def run(arguments: argparse.Namespace) -> int:
        from replication.errors import ReplicationError  # noqa: PLC0415
        from replication.journal.errors import JournalCorruptError  # noqa: PLC0415

        try:
            code = command(arguments)
            # Written now, not at exit: a reader that went away (| head) is seen here.
            sys.stdout.flush()
        except BrokenPipeError:
            raise  # the reader went away (| head): the command line stops quietly
        except (JournalCorruptError, _UsageError, ReplicationError, OSError) as error:
            if arguments.debug:
                traceback.print_exc()
            code = 1 if isinstance(error, JournalCorruptError) else 2
            print(f"replication {arguments.command}: {error}", file=sys.stderr)
            return code
        return code

    return run


def add_journal_commands(commands: Any) -> None:
    """Add ``journal`` and ``trace`` to the ``replication`` command's subparsers."""
    codes = "; ".join(f"{code}: {meaning}" for code, meaning in EXIT_CODES.items())
    journal = commands.add_parser(
        "journal",
        help="verify, show or export a durable journal",
        description=f"Read a controller's journal (specs/07-journal.md). Exit codes: {codes}.",
    ).add_subparsers(dest="journal_command", required=True, metavar="ACTION")

    def command(parser: argparse.ArgumentParser, run: Callable[[argparse.Namespace], int]) -> None:
        # Accepted before and after the command: the top level's default stands.
        parser.add_argument(
            "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks"
        )
        parser.set_defaults(run=_guarded(run))

    verify = journal.add_parser(
        "verify",
        help="check the chain, the checkpoints and that replay reproduces every decision",
    )
    verify.add_argument("path", help=_WHERE)
    verify.add_argument(
        "--key", metavar="PEM", help="the checkpoint key's public PEM (pins it; default: the "
        "key the journal's header names)",
    )  # fmt: skip
    verify.add_argument(
        "--contract", metavar="MODULE:ATTR", help="a ReplicationContract whose stop conditions' "
        "predicates replay needs",
    )  # fmt: skip
    verify.add_argument(
        "--head", metavar="SEQUENCE:HASH", type=_anchor, default=None,
        help="a head kept elsewhere (as verify prints it): the journal must still hold that "
        "row with that hash, so a journal cut short or replaced is caught",
    )  # fmt: skip
    command(verify, _verify)
    snapshot = journal.add_parser(
        "snapshot",
        help="verify the journal, then store a signed snapshot of the state at its head",
    )
    snapshot.add_argument("path")
    snapshot.add_argument(
        "--key", metavar="PEM", required=True,
        help="the checkpoint key's private PEM (unencrypted): the key the header names",
    )  # fmt: skip
    snapshot.add_argument(
        "--contract", metavar="MODULE:ATTR", help="a ReplicationContract whose stop conditions' "
        "predicates replay needs",
    )  # fmt: skip
    command(snapshot, _snapshot)
    show = journal.add_parser("show", help="what happened, in order, to one worker or all")
    show.add_argument("path", help=_WHERE)
    show.add_argument("--worker", metavar="ID", help="only the rows that name this worker")
    command(show, _show)
    export = journal.add_parser("export", help="write the journal as a trace (JSON Lines)")
    export.add_argument("path", help=_WHERE)
    command(export, _export)
    copy = journal.add_parser(
        "copy",
        help="copy a journal into an empty SQLite file or PostgreSQL schema, and verify the copy",
    )
    copy.add_argument("source", metavar="SRC")
    copy.add_argument("destination", metavar="DST")
    copy.add_argument("--key", metavar="PEM", help="pin the checkpoint key (as for verify)")
    copy.add_argument(
        "--contract", metavar="MODULE:ATTR", help="a ReplicationContract whose stop conditions' "
        "predicates replay needs",
    )  # fmt: skip
    command(copy, _copy)

    trace = commands.add_parser(
        "trace",
        help="check a recorded trace of any implementation against the model",
        description=f"Check a JSON Lines trace step by step. Exit codes: {codes}.",
    ).add_subparsers(dest="trace_command", required=True, metavar="ACTION")
    check = trace.add_parser("check", help="report the first step the model would not give")
    check.add_argument("path")
    check.add_argument(
        "--contract", metavar="MODULE:ATTR", help="a ReplicationContract whose stop conditions' "
        "predicates the check needs",
    )  # fmt: skip
    command(check, _trace_check)
