"""The ``replication`` command line (also ``python -m replication``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

    from replication.conformance.concurrent_report import ConcurrentReport
    from replication.conformance.runner import Report

__all__ = ["main"]


def _demo(_arguments: argparse.Namespace) -> int:
    from replication.demo import run_demo  # noqa: PLC0415 - keep start-up light

    return run_demo()


def _conformance(arguments: argparse.Namespace) -> int:
    if arguments.concurrent:
        return _concurrent(arguments)
    from replication.conformance.runner import SetupError, run_conformance  # noqa: PLC0415

    try:
        report = run_conformance(
            arguments.target,
            mode=arguments.mode,
            profile=arguments.profile,
            seed=arguments.seed,
            max_examples=arguments.max_examples,
            strict=arguments.strict,
            shrink=not arguments.no_shrink,
        )
    except SetupError as error:
        print(f"replication conformance: {error}", file=sys.stderr)
        return 2
    return _emit(report, arguments.json)


def _emit(report: Report | ConcurrentReport, json_path: str | None) -> int:
    """Print a conformance report (and write it as JSON); return the exit code."""
    if json_path:
        Path(json_path).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    print(report.render())
    return 0 if report.conformant else 1


def _concurrent(arguments: argparse.Namespace) -> int:
    from replication.conformance.concurrent import run_concurrent  # noqa: PLC0415

    try:
        report = run_concurrent(
            arguments.target, mode=arguments.mode, threads=arguments.threads,
            processes=arguments.processes, profile=arguments.profile, seed=arguments.seed,
            histories=arguments.histories,
        )  # fmt: skip
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        print(f"replication conformance: {error}", file=sys.stderr)
        return 2
    return _emit(report, arguments.json)


def _vectors_export(arguments: argparse.Namespace) -> int:
    from replication.conformance.vectors import export_vectors  # noqa: PLC0415

    written = export_vectors(Path(arguments.directory))
    print(f"wrote {len(written)} files to {arguments.directory}")
    return 0


def _vectors_check(arguments: argparse.Namespace) -> int:
    from replication.conformance.adapter import load_factory  # noqa: PLC0415
    from replication.conformance.vectors import check_vectors  # noqa: PLC0415

    try:
        factory = load_factory(arguments.impl) if arguments.impl else None
    except (ImportError, AttributeError, ValueError, TypeError) as error:
        print(f"replication vectors: cannot load {arguments.impl}: {error}", file=sys.stderr)
        return 2
    result = check_vectors(Path(arguments.directory), factory)
    print(result.render())
    return 0 if result.ok else 1


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of the ``replication`` command."""
    parser = argparse.ArgumentParser(
        prog="replication",
        description="Reference model and conformance kit for self-replicating AI workers.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo", help="grow a replication tree, show denials, engage the kill switch"
    )
    demo.set_defaults(run=_demo)
    from replication.processes.demo import add_demo_options  # noqa: PLC0415

    add_demo_options(demo, fallback=_demo)  # --processes: the process backend's own demo

    from replication.conformance.runner import DEFAULT_TARGET  # noqa: PLC0415

    conformance = commands.add_parser(
        "conformance",
        help="check an implementation against the reference model",
        description="Drive an implementation and the reference model through the same "
        "random programs and report the first divergence. Exit code 0: conformant; "
        "1: not conformant, or inconclusive (a witness was never reached); 2: cannot run.",
    )
    conformance.add_argument(
        "target", nargs="?", default=DEFAULT_TARGET,
        help="the adapter factory, 'package.module:factory' "
        "(default: the bundled seed facade, checked against the pure core)",
    )  # fmt: skip
    conformance.add_argument(
        "--mode", choices=("decision", "reason", "observation"), default="observation",
        help="what must agree: decisions, decisions and reason codes, or also the "
        "observed state (default: observation)",
    )  # fmt: skip
    conformance.add_argument(
        "--profile", choices=("dev", "ci", "deep"), default="ci",
        help="how long to search (default: ci)",
    )  # fmt: skip
    conformance.add_argument("--seed", type=int, default=None, help="make the run repeatable")
    conformance.add_argument(
        "--max-examples", type=int, default=None, help="override the profile's example count"
    )
    conformance.add_argument(
        "--strict", action="store_true",
        help="certification run: declared gaps are an error",
    )  # fmt: skip
    conformance.add_argument(
        "--no-shrink", action="store_true",
        help="report a divergence as found, without shrinking it (faster, longer program)",
    )  # fmt: skip
    conformance.add_argument("--json", metavar="PATH", help="also write the report as JSON")
    concurrent = conformance.add_argument_group(
        "concurrent mode", "overlapping calls from several clients, checked for linearizability"
    )
    concurrent.add_argument(
        "--concurrent", action="store_true",
        help="drive the implementation from several clients at once and check every history "
        "for linearizability against the model",
    )  # fmt: skip
    concurrent.add_argument("--threads", type=int, default=3, help="client threads (default: 3)")
    concurrent.add_argument(
        "--processes", type=int, default=0, metavar="N",
        help="make the calls from N client processes instead of threads (the adapter needs "
        "connection() and attach())",
    )  # fmt: skip
    concurrent.add_argument(
        "--histories", type=int, default=None, help="override the profile's history count"
    )
    conformance.set_defaults(run=_conformance)

    vectors = commands.add_parser(
        "vectors", help="export or check language-neutral test vectors"
    ).add_subparsers(dest="vectors_command", required=True, metavar="ACTION")
    export = vectors.add_parser("export", help="write the vectors, their index and schema")
    export.add_argument("directory")
    export.set_defaults(run=_vectors_export)
    check = vectors.add_parser(
        "check", help="verify a vector directory and replay it against an implementation"
    )
    check.add_argument("directory")
    check.add_argument("--impl", metavar="MODULE:FACTORY", default=None,
                       help="replay the scenarios against this adapter (default: only verify "
                       "the index and the signing vectors)")  # fmt: skip
    check.set_defaults(run=_vectors_check)

    from replication.journal.cli import add_journal_commands  # noqa: PLC0415

    add_journal_commands(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    arguments = build_parser().parse_args(argv)
    try:
        return int(arguments.run(arguments))
    except BrokenPipeError:
        # The reader went away (``| head``): stop quietly, as Python's docs advise.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
