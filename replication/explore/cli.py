"""``replication explore``: its arguments, its exit codes, and its one-line errors.

Exit codes: 0, every check held over the whole bound and every reason code the
bound allows was reached (with ``--impl``: the implementation took every edge
without a divergence); 1, a check failed (with ``--impl``: a divergence); 2,
the command cannot run (bad arguments, an adapter or transitions that cannot
be loaded); 3, inconclusive (stopped by ``--max-states`` or ``--max-time``, or a
reason code the bound allows was never reached). Errors are one line on
stderr; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

__all__ = ["EXIT_CODES", "add_explore_command", "run"]

#: What each exit code of ``replication explore`` means.
EXIT_CODES = {
    0: "every check held and every reachable reason code was covered (or: conformant)",
    1: "a check failed (or: the implementation diverged)",
    2: "cannot run: bad arguments, or an adapter or transitions that cannot be loaded",
    3: "inconclusive: stopped by a limit, or a reason code the bound allows was never reached",
}
_VERDICT_CODES = {"PASS": 0, "CONFORMANT": 0, "FAIL": 1, "NOT CONFORMANT": 1, "INCOMPLETE": 3}


class _UsageError(Exception):
    """A bad argument the parser could not catch; reported in one line, exit code 2."""


def _ticks(text: str) -> int | None:
    if text == "none":
        return None
    value = int(text)
    if value < 1:
        message = f"expected a number of ticks >= 1 or 'none', got {text}"
        raise argparse.ArgumentTypeError(message)
    return value


def add_explore_command(commands: Any) -> None:
    """Add ``explore`` to the ``replication`` command's subparsers."""
    from replication.explore.bounds import BOUNDS  # noqa: PLC0415 - keep start-up light

    codes = "; ".join(f"{code}: {meaning}" for code, meaning in EXIT_CODES.items())
    parser = commands.add_parser(
        "explore",
        help="model-check the transitions exhaustively, or tour an implementation over every edge",
        description="Explore every state of a bounded configuration breadth first, checking "
        "every invariant in every state and step, and report coverage and the shortest "
        "counterexample; with --impl, drive an implementation over every edge of the "
        f"explored graph. Exit codes: {codes}.",
    )
    parser.add_argument(
        "--bound",
        choices=sorted(BOUNDS),
        default=None,
        help="a named bound (default: 'default'; with --impl: 'tour')",
    )
    parser.add_argument("--max-depth", type=int, help="override the contract's max_depth")
    parser.add_argument("--max-replicas", type=int, help="override the contract's max_replicas")
    parser.add_argument("--cooldown", type=int, help="override the cooldown, in ticks")
    parser.add_argument("--heartbeat-timeout", type=int, help="override the reap timeout, in ticks")
    parser.add_argument(
        "--expiration",
        type=_ticks,
        default=argparse.SUPPRESS,
        help="override the expiration, in ticks, or 'none'",
    )
    parser.add_argument("--max-issued", type=int, help="override the bound on manifests issued")
    parser.add_argument("--max-ticks", type=int, help="stop the clock after this many ticks")
    parser.add_argument(
        "--no-stop-condition",
        action="store_true",
        help="a contract without the no_external_network stop condition",
    )
    parser.add_argument(
        "--no-time-abstraction",
        action="store_true",
        help="identify states by absolute times (needs --max-ticks)",
    )
    parser.add_argument(
        "--no-symmetry",
        action="store_true",
        help="identify states by worker ids, without canonical relabelling",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=None,
        help="worker processes (default: one per core; 1: no workers)",
    )
    parser.add_argument("--max-states", type=int, default=None, help="stop after this many states")
    parser.add_argument("--max-time", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--impl",
        metavar="MODULE:FACTORY",
        default=None,
        help="tour this adapter's implementation over every edge of the graph",
    )
    parser.add_argument(
        "--transitions",
        metavar="MODULE[:ATTRIBUTE]",
        default="replication.transitions",
        help="explore these transitions instead of the core's (same public functions)",
    )
    parser.add_argument(
        "--program",
        metavar="PATH",
        default=None,
        help="also write the counterexample's program to PATH",
    )
    parser.add_argument(
        "--export-vector",
        metavar="DIR",
        default=None,
        help="write the counterexample as a test-vector directory",
    )
    parser.add_argument(
        "--json",
        metavar="PATH",
        default=None,
        help="also write the figures and the verdict as JSON",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress line on stderr")
    # Accepted before and after the command: the top level's default stands.
    parser.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS, help="show tracebacks of errors"
    )
    parser.set_defaults(run=run)  # fmt: skip


def _bound(arguments: argparse.Namespace) -> Any:
    import attrs  # noqa: PLC0415

    from replication.explore.bounds import BOUNDS  # noqa: PLC0415
    from replication.explore.tour import TOUR_BOUND  # noqa: PLC0415

    default = TOUR_BOUND if arguments.impl else BOUNDS["default"]
    bound = BOUNDS[arguments.bound] if arguments.bound else default
    changes: dict[str, Any] = {
        name: getattr(arguments, name)
        for name in ("max_depth", "max_replicas", "cooldown", "heartbeat_timeout",
                     "max_issued", "max_ticks")
        if getattr(arguments, name) is not None
    }  # fmt: skip
    if hasattr(arguments, "expiration"):
        changes["expiration"] = arguments.expiration
    if arguments.no_stop_condition:
        changes["stop_on_external_network"] = False
    try:
        return attrs.evolve(bound, **changes)
    except ValueError as error:
        raise _UsageError(str(error)) from None


class _Progress:
    """The progress line on stderr: rewritten in place on a terminal, a line per 5 s in a log."""

    def __init__(self) -> None:
        self.interactive = sys.stderr.isatty()
        self.last = 0.0

    def __call__(self, states: int, frontier: int, depth: int, seconds: float) -> None:
        now = time.monotonic()
        if not self.interactive and now - self.last < 5:
            return
        self.last = now
        self.show(states, frontier, depth, seconds)

    def show(self, states: int, frontier: int, depth: int, seconds: float) -> None:
        """Print the line now."""
        rate = states / seconds if seconds > 0 else 0.0
        line = (
            f"explore: {states:,} states, frontier {frontier:,}, depth {depth}, "
            f"{rate:,.0f} states/s"
        )
        if self.interactive:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)

    def finish(self, states: int, depth: int, seconds: float) -> None:
        """Print the final line, and end it."""
        self.show(states, 0, depth, seconds)
        if self.interactive:
            print(file=sys.stderr)


def _explore(arguments: argparse.Namespace) -> int:
    from replication.explore.actions import resolve_transitions  # noqa: PLC0415
    from replication.explore.report import exploration_json, render_exploration  # noqa: PLC0415
    from replication.explore.search import explore  # noqa: PLC0415
    from replication.explore.trace import ExportError, program, write_vector  # noqa: PLC0415

    bound = _bound(arguments)
    try:
        transitions = resolve_transitions(arguments.transitions)
    except (ImportError, AttributeError, ValueError) as error:
        raise _UsageError(f"cannot load {arguments.transitions}: {error}") from None
    progress = None if arguments.quiet else _Progress()
    try:
        exploration = explore(
            bound,
            time_abstraction=not arguments.no_time_abstraction,
            symmetry=not arguments.no_symmetry,
            processes=arguments.processes,
            max_states=arguments.max_states,
            max_seconds=arguments.max_time,
            transitions=transitions,
            progress=progress,
        )
    except ValueError as error:
        raise _UsageError(str(error)) from None
    if progress is not None:
        progress.finish(exploration.states, exploration.diameter, exploration.seconds)
    source = None
    counterexample = exploration.counterexample
    if counterexample is not None:
        source = program(bound, counterexample, arguments.transitions)
        if arguments.program:
            Path(arguments.program).write_text(source, encoding="utf-8")
        if arguments.export_vector:
            try:
                write_vector(Path(arguments.export_vector), bound, counterexample)
            except ExportError as error:
                print(f"replication explore: no vector written: {error}", file=sys.stderr)
    if arguments.json:
        Path(arguments.json).write_text(
            json.dumps(exploration_json(exploration), indent=2) + "\n", encoding="utf-8"
        )
    print(render_exploration(exploration, source))
    return _VERDICT_CODES[exploration.verdict]


def _tour(arguments: argparse.Namespace) -> int:
    from replication.conformance.preflight import SetupError, load_adapter  # noqa: PLC0415
    from replication.explore.report import render_tour  # noqa: PLC0415
    from replication.explore.tour import tour  # noqa: PLC0415

    try:
        adapter = load_adapter(arguments.impl)
    except SetupError as error:
        where = f" (at {error.where})" if error.where else ""
        raise _UsageError(f"cannot load {arguments.impl}: {error.message}{where}") from None
    if adapter.signs:
        # The tour hands the implementation manifests signed with the explorer's
        # Ed25519 key (tampered, forged and future ones included); an adapter that
        # signs with its own scheme is checked by `replication conformance`.
        message = (
            f"{arguments.impl} signs with its own scheme (sign, verify); the tour drives "
            "manifests signed with the reference's Ed25519 key: use `replication conformance`"
        )
        raise _UsageError(message)
    try:
        result = tour(
            adapter.factory,
            _bound(arguments),
            target=arguments.impl,
            time_abstraction=not arguments.no_time_abstraction,
            symmetry=not arguments.no_symmetry,
            processes=arguments.processes,
            unreported=adapter.unreported,
        )
    except ValueError as error:
        raise _UsageError(str(error)) from None
    print(render_tour(result))
    return _VERDICT_CODES[result.verdict]


def run(arguments: argparse.Namespace) -> int:
    """Run ``replication explore``; return its exit code (see :data:`EXIT_CODES`)."""
    try:
        return _tour(arguments) if arguments.impl else _explore(arguments)
    except _UsageError as error:
        print(f"replication explore: {error}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as error:  # noqa: BLE001 - one line, or the traceback with --debug
        if arguments.debug:
            traceback.print_exc()
        else:
            print(
                f"replication explore: {type(error).__name__}: {error} (--debug shows where)",
                file=sys.stderr,
            )
        return 2
