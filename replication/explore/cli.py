"""``replication explore``: its arguments, its exit codes, and its one-line errors.

Exit codes: 0, every check held over the whole bound and every reason code the
bound allows was reached (with ``--impl``: the implementation took every edge
without a divergence); 1, a check failed (with ``--impl``: a divergence, a
crash or a hang of the implementation included); 2, the command cannot run (bad
arguments, an adapter or transitions that cannot be loaded, an output path
that cannot be written); 3, inconclusive (stopped by ``--max-states`` or
``--max-time``, or a reason code the bound allows was never reached); 130,
interrupted. Errors are one line on stderr; ``--debug`` shows the traceback.

Every option is checked before anything runs: numbers when the arguments are
parsed, options that do not apply (``--program`` and ``--transitions`` with
``--impl``, ``--timeout`` without it) and every output path before the
search. The report is printed before any file is written, so a failure is
never lost to a file that could not be written.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from replication._text import counted

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["EXIT_CODES", "add_explore_command", "run"]

#: What each exit code of ``replication explore`` means.
EXIT_CODES = {
    0: "every check held and every reachable reason code was covered (or: conformant)",
    1: "a check failed (or: the implementation diverged, crashed or hung)",
    2: "cannot run: bad arguments, an adapter or transitions that cannot be loaded, or an "
    "output path that cannot be written",
    3: "inconclusive: stopped by a limit, or a reason code the bound allows was never reached",
    130: "interrupted (Ctrl-C)",
}
_VERDICT_CODES = {
    "PASS": 0,
    "CONFORMANT": 0,
    "FAIL": 1,
    "NOT CONFORMANT": 1,
    "INCOMPLETE": 3,
    "INTERRUPTED": 130,
}
#: The transitions explored when ``--transitions`` is not given.
CORE = "replication.transitions"
#: The most worker processes ``--processes`` may ask for.
MAX_PROCESSES = 256


class _UsageError(Exception):
    """A bad argument the parser could not catch; reported in one line, exit code 2."""


def _whole(minimum: int, maximum: int | None = None) -> Callable[[str], int]:
    """Return an argparse type: a whole number from ``minimum`` (to ``maximum``)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if value < minimum or (maximum is not None and value > maximum):
            span = f">= {minimum}" if maximum is None else f"from {minimum} to {maximum:,}"
            raise argparse.ArgumentTypeError(f"expected a whole number {span}, got {text}")
        return value

    return parse


def _ticks(text: str) -> int | None:
    from replication.explore.bounds import MAX_TICKS  # noqa: PLC0415 - keep start-up light

    return None if text == "none" else _whole(1, MAX_TICKS)(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"expected a finite number of seconds above 0, got {text}")
    return value


def add_explore_command(commands: Any) -> None:
    """Add ``explore`` to the ``replication`` command's subparsers."""
    from replication.conformance.adapters.calls import DEFAULT_TIMEOUT  # noqa: PLC0415
    from replication.explore.bounds import BOUNDS, MAX_TICKS  # noqa: PLC0415

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
    count, ticks = _whole(0, MAX_TICKS), _whole(0, MAX_TICKS)
    parser.add_argument("--max-depth", type=count, help="override the contract's max_depth")
    parser.add_argument("--max-replicas", type=_whole(1, MAX_TICKS),
                        help="override the contract's max_replicas")  # fmt: skip
    parser.add_argument("--cooldown", type=ticks, help="override the cooldown, in ticks")
    parser.add_argument("--heartbeat-timeout", type=ticks,
                        help="override the reap timeout, in ticks")  # fmt: skip
    parser.add_argument(
        "--expiration",
        type=_ticks,
        default=argparse.SUPPRESS,
        help="override the expiration, in ticks, or 'none'",
    )
    parser.add_argument("--max-issued", type=count, help="override the bound on manifests issued")
    parser.add_argument("--max-ticks", type=_whole(1, MAX_TICKS),
                        help="stop the clock after this many ticks")  # fmt: skip
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
        type=_whole(1, MAX_PROCESSES),
        default=None,
        help="worker processes (default: one per core; 1: no workers)",
    )
    parser.add_argument(
        "--max-states", type=_whole(1), default=None, help="stop after this many states"
    )
    parser.add_argument(
        "--max-time", type=_seconds, default=None, help="stop after this many seconds"
    )
    parser.add_argument(
        "--impl",
        metavar="MODULE:FACTORY",
        default=None,
        help="tour this adapter's implementation over every edge of the graph",
    )
    from replication.conformance.wire.options import add_exec_option  # noqa: PLC0415

    add_exec_option(parser)
    parser.add_argument(
        "--timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="with --impl: the longest one call into the adapter may take (default: "
        f"{DEFAULT_TIMEOUT:g}, as `replication conformance`); a call that overruns is a divergence",
    )
    parser.add_argument(
        "--transitions",
        metavar="MODULE[:ATTRIBUTE]",
        default=None,
        help=f"explore these transitions instead of the core's ({CORE}); not with --impl",
    )
    parser.add_argument(
        "--program",
        metavar="PATH",
        default=None,
        help="also write the counterexample's program to PATH (not with --impl)",
    )
    parser.add_argument(
        "--export-vector",
        metavar="DIR",
        default=None,
        help="write the counterexample (with --impl: the divergent path) as a test-vector "
        "directory; DIR must be new or empty",
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


#: Options that apply only to an exploration, and only to a tour, with why.
_EXPLORATION_ONLY = {
    "transitions": "the tour compares the implementation with the reference core",
    "program": "a tour reports its divergent path; --export-vector replays it against the adapter",
}
_TOUR_ONLY = {"timeout": "it limits each call into an adapter"}


def _check_options(arguments: argparse.Namespace) -> None:
    """Refuse an option that does not apply, naming it."""
    touring = arguments.impl is not None
    wrong = _EXPLORATION_ONLY if touring else _TOUR_ONLY
    for name, why in wrong.items():
        if getattr(arguments, name) is not None:
            option = "--" + name.replace("_", "-")
            where = "with --impl" if touring else "without --impl"
            message = f"{option} does not apply {where} ({why})"
            raise _UsageError(message)


def _outputs(arguments: argparse.Namespace) -> None:
    """Check every output path before anything runs: a result is never lost to a bad path."""
    from replication.commandline import UsageError, writable  # noqa: PLC0415
    from replication.explore.trace import ExportError, fresh_directory  # noqa: PLC0415

    try:
        for option in ("json", "program"):
            path = getattr(arguments, option, None)
            if path is not None:
                writable(path, f"--{option}")
        if arguments.export_vector is not None:
            fresh_directory(arguments.export_vector)
    except UsageError as error:
        raise _UsageError(str(error)) from None
    except ExportError as error:
        raise _UsageError(f"--export-vector {arguments.export_vector}: {error}") from None


def _bound(arguments: argparse.Namespace) -> Any:
    import attrs  # noqa: PLC0415

    from replication.explore.bounds import BOUNDS  # noqa: PLC0415
    from replication.explore.tour import TOUR_BOUND  # noqa: PLC0415

    default = TOUR_BOUND if arguments.impl is not None else BOUNDS["default"]
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
        # Whether a line was rewritten in place and not ended yet.
        self.open = False

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
            f"explore: {counted(states, 'state')}, frontier {frontier:,}, depth {depth}, "
            f"{rate:,.0f} states/s"
        )
        if self.interactive:
            print(f"\r{line}\033[K", end="", file=sys.stderr, flush=True)
            self.open = True
        else:
            print(line, file=sys.stderr, flush=True)

    def finish(self, states: int, depth: int, seconds: float) -> None:
        """Print the final line, and end it."""
        self.show(states, 0, depth, seconds)
        self.close()

    def close(self) -> None:
        """End the line rewritten in place, so that what follows starts on a line of its own."""
        if self.open:
            print(file=sys.stderr, flush=True)
            self.open = False


def _explore(arguments: argparse.Namespace, progress: _Progress | None) -> int:
    from replication.explore.actions import resolve_transitions  # noqa: PLC0415
    from replication.explore.report import exploration_json, render_exploration  # noqa: PLC0415
    from replication.explore.search import explore  # noqa: PLC0415
    from replication.explore.trace import program, write_vector  # noqa: PLC0415

    _outputs(arguments)
    bound = _bound(arguments)
    reference = arguments.transitions or CORE
    try:
        transitions = resolve_transitions(reference)
    except ValueError as error:  # not a set of transitions
        raise _UsageError(f"cannot load {reference}: {error}") from None
    except KeyboardInterrupt:
        raise
    except BaseException as error:  # noqa: BLE001 - importing the user's code may raise anything
        # SystemExit included: a module that exits must not end the command with its code.
        message = f"cannot load {reference}: {type(error).__name__}: {error}"
        raise _UsageError(message) from None
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
    counterexample = exploration.counterexample
    source = None
    notes = []
    if counterexample is not None:
        try:
            source = program(bound, counterexample, reference, exploration.kinds)
        except Exception as error:  # noqa: BLE001 - the verdict stands without its program
            notes.append(f"no program: {type(error).__name__}: {error}")
    _print_report(render_exploration(exploration, source))
    writes: list[tuple[str, Callable[[], object]]] = []
    if counterexample is None:
        asked = [f"--{name.replace('_', '-')}" for name in ("program", "export_vector")
                 if getattr(arguments, name) is not None]  # fmt: skip
        if asked:
            notes.append(f"no counterexample: {' and '.join(asked)} wrote nothing")
    else:
        if arguments.program is not None and source is not None:
            path, text = Path(arguments.program), source
            writes.append(("--program", lambda: path.write_text(text, encoding="utf-8")))
        if arguments.export_vector is not None:
            writes.append((
                "--export-vector",
                lambda: write_vector(arguments.export_vector, bound, counterexample),
            ))  # fmt: skip
    if arguments.json is not None:
        data = json.dumps(exploration_json(exploration), indent=2) + "\n"
        writes.append(("--json", lambda: Path(arguments.json).write_text(data, encoding="utf-8")))
    return _finish(_VERDICT_CODES[exploration.verdict], writes, notes)


def _tour(arguments: argparse.Namespace, progress: _Progress | None) -> int:
    from replication.conformance.adapters.preflight import SetupError  # noqa: PLC0415
    from replication.explore.report import render_tour, tour_json  # noqa: PLC0415
    from replication.explore.results import Counterexample  # noqa: PLC0415
    from replication.explore.tour import DEFAULT_TIMEOUT, tour  # noqa: PLC0415
    from replication.explore.trace import write_vector  # noqa: PLC0415

    _outputs(arguments)
    bound = _bound(arguments)
    try:
        result = tour(
            arguments.impl,
            bound,
            timeout=arguments.timeout or DEFAULT_TIMEOUT,
            max_seconds=arguments.max_time,
            max_states=arguments.max_states,
            time_abstraction=not arguments.no_time_abstraction,
            symmetry=not arguments.no_symmetry,
            processes=arguments.processes,
            progress=progress,
        )
    except SetupError as error:
        where = f" (at {error.where})" if error.where else ""
        raise _UsageError(f"cannot load {arguments.impl}: {error.message}{where}") from None
    except ValueError as error:
        raise _UsageError(str(error)) from None
    if progress is not None:
        exploration = result.exploration
        progress.finish(exploration.states, exploration.diameter, exploration.seconds)
    _print_report(render_tour(result))
    writes: list[tuple[str, Callable[[], object]]] = []
    notes = []
    divergence = result.divergence
    if arguments.export_vector is not None:
        if divergence is None:
            notes.append("no divergence: --export-vector wrote nothing")
        elif not divergence.actions:
            notes.append("the divergence is at start(), before any step: --export-vector "
                         "wrote nothing")  # fmt: skip
        else:
            failure = divergence.failure
            trace = Counterexample(failure.kind, failure.got, divergence.actions, in_state=False)
            description = (
                f"A {failure.kind} divergence of {result.target} at {failure.action}, found by "
                f"the transition tour ({bound.describe()})."
            )
            writes.append((
                "--export-vector",
                lambda: write_vector(arguments.export_vector, bound, trace,
                                     description=description),
            ))  # fmt: skip
    if arguments.json is not None:
        data = json.dumps(tour_json(result), indent=2) + "\n"
        writes.append(("--json", lambda: Path(arguments.json).write_text(data, encoding="utf-8")))
    return _finish(_VERDICT_CODES[result.verdict], writes, notes)


def _print_report(text: str) -> None:
    """Print the report; if the reader has gone (``| head``), stop printing quietly.

    What an adapter or explored code said may hold what the output's encoding
    cannot (a lone surrogate): it is printed escaped, never at the report's cost.
    """
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    text = text.encode(encoding, "backslashreplace").decode(encoding)
    try:
        print(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # As Python's documentation advises: the rest of the output goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _finish(code: int, writes: list[tuple[str, Callable[[], object]]], notes: list[str]) -> int:
    """Write the files asked for, after the report; return the exit code.

    The verdict's code stands, so that a failure is never hidden; a file that
    could not be written turns only a pass (0) into 2.
    """
    from replication.explore.trace import ExportError  # noqa: PLC0415

    failed = False
    for option, write in writes:
        try:
            write()
        except (OSError, ExportError) as error:
            failed = True
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            notes.append(f"{option}: nothing written: {reason}")
    for note in notes:
        print(f"replication explore: {note}", file=sys.stderr)
    return 2 if failed and code == 0 else code


def run(arguments: argparse.Namespace) -> int:
    """Run ``replication explore``; return its exit code (see :data:`EXIT_CODES`)."""
    from replication.conformance.wire.options import exec_target  # noqa: PLC0415

    progress = None if arguments.quiet else _Progress()
    try:
        try:
            try:
                arguments.impl = exec_target(
                    arguments.exec_command, arguments.impl, other_option="--impl"
                )
            except ValueError as error:
                raise _UsageError(str(error)) from None
            _check_options(arguments)
            command = _tour if arguments.impl is not None else _explore
            return command(arguments, progress)
        finally:
            # Whatever is printed next (an error, "interrupted") starts on its own line.
            if progress is not None:
                progress.close()
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
