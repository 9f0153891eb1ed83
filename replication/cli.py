"""The ``replication`` command line (also ``python -m replication``)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["main"]


def _demo(_arguments: argparse.Namespace) -> int:
    from replication.demo import run_demo  # noqa: PLC0415 - keep start-up light

    return run_demo()


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
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    arguments = build_parser().parse_args(argv)
    return int(arguments.run(arguments))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
