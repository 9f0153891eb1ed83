"""The ``replication`` command line (also ``python -m replication``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _demo(_arguments: argparse.Namespace) -> int:
    from replication.demo import run_demo  # noqa: PLC0415 - keep start-up light

    return run_demo()


def _conformance(arguments: argparse.Namespace) -> int:
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
    print(report.render())
    if arguments.json:
        Path(arguments.json).write_text(json.dumps(report.to_json(), indent=2) + "\n")
    return 0 if report.conformant else 1


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
    conformance.set_defaults(run=_conformance)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    arguments = build_parser().parse_args(argv)
    return int(arguments.run(arguments))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
