"""The ``replication`` command line (also ``python -m replication``).

Every path ends with its documented exit code and one clear message:
``conformance`` exits 0 (conformant), 1 (not conformant, or inconclusive),
2 (the adapter or the options cannot be run, said in one or two lines, with the
adapter's file and line when there is one) or 130 (Ctrl-C, after the partial
report). Tracebacks only with ``--debug``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from replication import __version__
from replication._text import counted
from replication.commandline import UsageError, writable

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Sequence

__all__ = ["main"]

EXIT_CANNOT_RUN = 2
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_CANNOT_RUN, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _clients(text: str) -> int:
    """Parse a number of clients: at least two, or no calls of two clients could overlap."""
    value = _positive_int(text)
    if value < 2:
        message = f"must be at least 2 (one client's calls never overlap), got {value}"
        raise argparse.ArgumentTypeError(message)
    return value


#: The concurrent mode's own options, refused without --concurrent.
_CONCURRENT_ONLY = ("threads", "processes", "histories")


def _seconds(*, zero: bool) -> Callable[[str], float]:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"expected a number of seconds, got {text!r}"
            ) from None
        if not (value >= 0 if zero else value > 0) or not math.isfinite(value):
            bound = "0 or more" if zero else "above 0"
            raise argparse.ArgumentTypeError(
                f"must be a finite number of seconds {bound}, got {text}"
            )
        return value

    return parse


def _cannot_run(command: str, error: BaseException, *, debug: bool) -> int:
    where = getattr(error, "where", None)
    message = getattr(error, "message", None) or str(error)
    print(f"replication {command}: cannot run: {message}", file=sys.stderr)
    if where:
        print(f"  at {where}", file=sys.stderr)
    if debug and (error.__cause__ is not None or error.__traceback__ is not None):
        cause = error.__cause__ or error
        traceback.print_exception(type(cause), cause, cause.__traceback__, file=sys.stderr)
    return EXIT_CANNOT_RUN


# -- demo ---------------------------------------------------------------------------------


def _demo(_arguments: argparse.Namespace) -> int:
    from replication.demo import run_demo  # noqa: PLC0415 - keep start-up light

    return run_demo()


# -- conformance ----------------------------------------------------------------------------


def _target(arguments: argparse.Namespace) -> str:
    """Return the target: ``--exec COMMAND`` (specs/09), the positional one, or the default."""
    from replication.conformance.sequential.runner import DEFAULT_TARGET  # noqa: PLC0415
    from replication.conformance.wire.options import exec_target  # noqa: PLC0415

    try:
        chosen = exec_target(arguments.exec_command, arguments.target, other_option="a target")
    except ValueError as error:
        raise UsageError(str(error)) from None
    return chosen or DEFAULT_TARGET


def _conformance(arguments: argparse.Namespace) -> int:
    if arguments.concurrent:
        return _concurrent(arguments)
    for name in _CONCURRENT_ONLY:
        if getattr(arguments, name) is not None:
            message = (
                f"--{name} does not apply without --concurrent (the sequential kit makes one "
                "call at a time)"
            )
            raise UsageError(message)
    target = _target(arguments)
    from replication.conformance.reports.known import KnownDivergences  # noqa: PLC0415
    from replication.conformance.reports.progress import Progress  # noqa: PLC0415
    from replication.conformance.sequential.runner import SetupError, run_conformance  # noqa: PLC0415

    json_path = writable(arguments.json, "--json") if arguments.json else None
    try:
        known = KnownDivergences.load(Path(arguments.known)) if arguments.known else None
        report = run_conformance(
            target,
            mode=arguments.mode,
            profile=arguments.profile,
            seed=arguments.seed,
            max_examples=arguments.max_examples,
            strict=arguments.strict,
            shrink=not arguments.no_shrink,
            timeout=arguments.timeout,
            max_time=arguments.max_time,
            shrink_time=arguments.shrink_time,
            keep_going=arguments.keep_going,
            known=known,
            progress=None if arguments.quiet else Progress(),
        )
    except SetupError as error:
        return _cannot_run("conformance", error, debug=arguments.debug)
    print(report.render(debug=arguments.debug))
    from replication.conformance.wire.options import after_run  # noqa: PLC0415

    for line in after_run(target, report, arguments.replay_file):
        print(line)
    if json_path is not None:
        try:
            json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
        except OSError as error:
            print(f"replication conformance: cannot write --json {json_path}: {error.strerror}",
                  file=sys.stderr)  # fmt: skip
            return EXIT_CANNOT_RUN
    return report.exit_code


def _concurrent(arguments: argparse.Namespace) -> int:
    """Run the concurrent mode (R-LIN-*): overlapping calls, histories checked."""
    from replication.conformance.adapters.calls import ContractViolation  # noqa: PLC0415
    from replication.conformance.adapters.preflight import SetupError  # noqa: PLC0415
    from replication.conformance.concurrent.runner import run_concurrent  # noqa: PLC0415
    from replication.conformance.reports.progress import Progress  # noqa: PLC0415

    json_path = writable(arguments.json, "--json") if arguments.json else None
    target = _target(arguments)
    try:
        report = run_concurrent(
            target, mode=arguments.mode, threads=arguments.threads or 3,
            processes=arguments.processes or 0, profile=arguments.profile, seed=arguments.seed,
            histories=arguments.histories, progress=None if arguments.quiet else Progress(),
        )  # fmt: skip
    except (SetupError, ImportError, AttributeError, ValueError, TypeError) as error:
        return _cannot_run("conformance", error, debug=arguments.debug)
    except ContractViolation as violation:  # an implementation that broke the protocol
        return _cannot_run("conformance", violation, debug=arguments.debug)
    print(report.render())
    if not report.conformant:
        from replication.conformance.wire.options import stderr_lines  # noqa: PLC0415

        for line in stderr_lines(target):
            print(line)
    if json_path is not None:
        json_path.write_text(json.dumps(report.to_json(), indent=2) + "\n", encoding="utf-8")
    return 0 if report.conformant else 1


# -- vectors --------------------------------------------------------------------------------


def _vectors_export(arguments: argparse.Namespace) -> int:
    from replication.conformance.vectors.export import export_vectors  # noqa: PLC0415

    directory = Path(arguments.directory)
    if directory.exists() and not directory.is_dir():
        raise UsageError(f"{directory} exists and is not a directory")
    try:
        written = export_vectors(directory)
    except OSError as error:
        raise UsageError(f"cannot write into {directory}: {error.strerror}") from None
    print(f"wrote {counted(len(written), 'file')} to {directory}")
    return 0


def _vectors_check(arguments: argparse.Namespace) -> int:
    from replication.conformance.adapters.preflight import SetupError, load_adapter  # noqa: PLC0415
    from replication.conformance.vectors.export import VectorError, check_vectors  # noqa: PLC0415

    try:
        from replication.conformance.wire.options import exec_target  # noqa: PLC0415

        try:
            target = exec_target(arguments.exec_command, arguments.impl, other_option="--impl")
        except ValueError as error:
            raise UsageError(str(error)) from None
        adapter = load_adapter(target) if target else None
        result = check_vectors(Path(arguments.directory), adapter)
    except (SetupError, VectorError) as error:
        return _cannot_run("vectors", error, debug=arguments.debug)
    print(result.render())
    if result.interrupted:
        return EXIT_INTERRUPTED
    return 0 if result.ok else 1


# -- the parser -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``replication`` command."""
    parser = _Parser(
        prog="replication",
        description="Reference model and conformance kit for self-replicating AI workers.",
    )
    parser.add_argument("--version", action="version", version=f"replication {__version__}")
    _add_debug(parser, top=True)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                     parser_class=_Parser)  # fmt: skip
    demo = commands.add_parser(
        "demo", help="grow a replication tree, show denials, engage the kill switch"
    )
    demo.set_defaults(run=_demo)
    _add_conformance(commands)
    from replication.processes.demo import add_demo_options  # noqa: PLC0415

    add_demo_options(demo, fallback=_demo)  # --processes: the process backend's own demo
    from replication.journal.hosts_demo import add_hosts_options  # noqa: PLC0415

    add_hosts_options(demo, fallback=demo.get_default("run"))  # --hosts: PostgreSQL

    vectors = commands.add_parser(
        "vectors", help="export or check language-neutral test vectors"
    ).add_subparsers(dest="vectors_command", required=True, metavar="ACTION",
                     parser_class=_Parser)  # fmt: skip
    export = vectors.add_parser("export", help="write the vectors, their index and schema")
    export.add_argument("directory")
    _add_debug(export)
    export.set_defaults(run=_vectors_export)
    check = vectors.add_parser(
        "check",
        help="verify a vector directory and replay it against an implementation",
        description="Validate every file against the shipped JSON Schema, check the index, "
        "the signing vectors, and with --impl replay every scenario. Exit code 0: every "
        "vector checks out; 1: a vector fails; 2: the directory or the adapter cannot be used.",
    )
    check.add_argument("directory")
    check.add_argument("--impl", metavar="MODULE:FACTORY", default=None,
                       help="replay the scenarios against this adapter (default: only verify "
                       "the index and the signing vectors)")  # fmt: skip
    from replication.conformance.wire.options import add_exec_option  # noqa: PLC0415
    from replication.conformance.wire.replay import add_wire_command  # noqa: PLC0415

    add_exec_option(check)
    _add_debug(check)
    check.set_defaults(run=_vectors_check)
    add_wire_command(commands, _Parser)

    from replication.explore.cli import add_explore_command  # noqa: PLC0415

    add_explore_command(commands)
    from replication.journal.cli import add_journal_commands  # noqa: PLC0415

    add_journal_commands(commands)
    return parser


def _add_conformance(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from replication.conformance.sequential.runner import (  # noqa: PLC0415
        DEFAULT_SHRINK_TIME,
        DEFAULT_TARGET,
        DEFAULT_TIMEOUT,
    )

    conformance = commands.add_parser(
        "conformance",
        help="check an implementation against the reference model",
        description="Drive an implementation and the reference model through the same "
        "random programs and report the first divergence. Exit code 0: conformant (or, "
        "with --profile dev, no divergence found); 1: not conformant, or inconclusive (a "
        "required situation, a witness, was never reached); 2: the adapter or the options "
        "cannot be used; 130: interrupted (the partial report is printed).",
    )
    conformance.add_argument(
        "target", nargs="?", default=None,
        help="the adapter factory, 'package.module:factory' "
        f"(default: {DEFAULT_TARGET}, the bundled seed facade, checked against the pure core)",
    )  # fmt: skip
    from replication.conformance.wire.options import add_exec_option  # noqa: PLC0415

    add_exec_option(conformance, replay=True)
    conformance.add_argument(
        "--mode", choices=("decision", "reason", "observation"), default="observation",
        help="what must agree: decisions, decisions and reason codes, or also the "
        "observed state (default: observation)",
    )  # fmt: skip
    conformance.add_argument(
        "--profile", choices=("dev", "ci", "deep"), default="ci",
        help="how long to search: dev is a quick check (60 programs) that does not "
        "enforce witnesses, so it ends NO DIVERGENCE FOUND (exit 0) rather than "
        "CONFORMANT; ci (400 programs, the default) and deep (5000) give a verdict",
    )  # fmt: skip
    conformance.add_argument(
        "--seed", type=int, default=None,
        help="repeat a search: the same seed finds the same divergence (shrinking is "
        "time-boxed, so the printed steps before it may differ); the report shows its seed",
    )  # fmt: skip
    conformance.add_argument(
        "--max-examples", type=_positive_int, default=None, metavar="N",
        help="override the profile's number of programs",
    )  # fmt: skip
    conformance.add_argument(
        "--strict", action="store_true",
        help="certification run: declared gaps are an error, unreported fields must be "
        "declared, and the --known file is ignored",
    )  # fmt: skip
    conformance.add_argument(
        "--timeout", type=_seconds(zero=False), default=DEFAULT_TIMEOUT, metavar="SECONDS",
        help=f"the longest one call into the adapter may take (default: {DEFAULT_TIMEOUT:g})",
    )  # fmt: skip
    conformance.add_argument(
        "--max-time", type=_seconds(zero=False), default=None, metavar="SECONDS",
        help="stop searching after this long (a run stopped early is inconclusive); "
        "shrinking a divergence found by then still takes up to --shrink-time",
    )  # fmt: skip
    conformance.add_argument(
        "--shrink-time", type=_seconds(zero=True), default=DEFAULT_SHRINK_TIME,
        metavar="SECONDS",
        help=f"how long to shrink a divergence (default: {DEFAULT_SHRINK_TIME:g})",
    )  # fmt: skip
    conformance.add_argument(
        "--no-shrink", action="store_true",
        help="report a divergence as found, without shrinking it (faster, longer program)",
    )  # fmt: skip
    conformance.add_argument(
        "--keep-going", action="store_true",
        help="after a divergence, set it aside and search on; end with a table of every "
        "distinct divergence",
    )  # fmt: skip
    conformance.add_argument(
        "--known", metavar="FILE",
        help="divergences to set aside without failing the run, one per line as "
        "--keep-going prints them; lines that match nothing are reported as stale",
    )  # fmt: skip
    conformance.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    conformance.add_argument("--quiet", action="store_true",
                             help="no progress on stderr")  # fmt: skip
    _add_debug(conformance)
    concurrent = conformance.add_argument_group(
        "concurrent mode", "overlapping calls from several clients, checked for linearizability"
    )
    concurrent.add_argument(
        "--concurrent", action="store_true",
        help="drive the implementation from several clients at once and check every history "
        "for linearizability against the model",
    )  # fmt: skip
    concurrent.add_argument(
        "--threads", type=_clients, default=None, metavar="N",
        help="client threads, at least 2 (default: 3)",
    )  # fmt: skip
    concurrent.add_argument(
        "--processes", type=_clients, default=None, metavar="N",
        help="make the calls from N client processes instead of threads, at least 2 (the "
        "adapter needs connection() and attach())",
    )  # fmt: skip
    concurrent.add_argument(
        "--histories", type=_positive_int, default=None, metavar="N",
        help="override the profile's history count",
    )  # fmt: skip
    conformance.set_defaults(run=_conformance)


def _add_debug(parser: argparse.ArgumentParser, *, top: bool = False) -> None:
    # Accepted before and after the command; a subcommand's default must not
    # undo the top level's ``--debug``.
    parser.add_argument(
        "--debug", action="store_true", default=False if top else argparse.SUPPRESS,
        help="show tracebacks (the adapter's too)",
    )  # fmt: skip


def _private_hypothesis_storage() -> Path | None:
    """Keep Hypothesis's files out of the user's directory: a temporary one, removed after."""
    if os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
        return None
    from hypothesis.configuration import set_hypothesis_home_dir  # noqa: PLC0415

    directory = Path(tempfile.mkdtemp(prefix="replication-hypothesis-"))
    set_hypothesis_home_dir(directory)
    return directory


@contextlib.contextmanager
def ctrl_c_honoured() -> Iterator[None]:
    """Let Ctrl-C (``SIGINT``) stop the command however the process was started.

    A shell without job control starts a background command with ``SIGINT``
    ignored, and a child inherits that: the command would then run on past a
    ``kill -INT``, and never print its partial report or exit 130. Inside the
    block ``SIGINT`` raises ``KeyboardInterrupt``; the disposition found is put
    back after.
    """
    found = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is not threading.main_thread() or found not in (
        signal.SIG_IGN,
        signal.SIG_DFL,
    ):
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, found)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    with ctrl_c_honoured():
        return _main(argv)


def _main(argv: Sequence[str] | None) -> int:
    arguments = build_parser().parse_args(argv)
    storage = _private_hypothesis_storage() if arguments.command == "conformance" else None
    try:
        return int(arguments.run(arguments))
    except UsageError as error:
        print(f"replication {arguments.command}: {error}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    except KeyboardInterrupt:
        print("replication: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as Python's docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except Exception as error:
        if arguments.debug:
            raise
        print(
            f"replication {arguments.command}: internal error: {type(error).__name__}: {error} "
            "(a bug in replication: run again with --debug and report the traceback)",
            file=sys.stderr,
        )
        return EXIT_CANNOT_RUN
    finally:
        if storage is not None:
            from hypothesis.configuration import set_hypothesis_home_dir  # noqa: PLC0415

            set_hypothesis_home_dir(None)
            shutil.rmtree(storage, ignore_errors=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
