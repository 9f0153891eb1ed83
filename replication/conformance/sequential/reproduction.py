"""The printed program, made minimal and annotated: no step that the divergence does not need.

Hypothesis shrinks a failing program, but under a time budget it may stop with
steps left that the divergence does not need (a rule that did nothing, a clock
move nothing depends on). :func:`minimise` replays the program one statement
at a time and tries to delete each step, last to first, keeping a deletion
when the same divergence still occurs, pass after pass until a pass deletes
nothing (a fixed point) or the budget runs out, and says which; it stops at
the failing step, and annotates every step with the clock it ran at, so the
reader sees the times the rules compare. A hang is not shrunk:
:func:`hang_program` lists the calls that led to it.
"""

from __future__ import annotations

import ast
import contextlib
import time
from typing import TYPE_CHECKING, Any

import attrs

from replication.conformance.adapters.calls import describe_call
from replication.conformance.sequential.results import ConformanceFailure, clock_offset

if TYPE_CHECKING:
    from collections.abc import Callable

    from replication.conformance.adapters.adapter import Implementation
    from replication.conformance.sequential.results import RunStats

__all__ = ["Minimised", "hang_program", "minimise"]


def hang_program(stats: RunStats, hanging: str) -> list[str]:
    """Return the report's lines on the program that hung: its contract and every call made.

    A hang is not shrunk (each attempt would hang as long), so the program is
    the one that ran: the contract ``start`` was given, then each call into the
    adapter with its clock, the hanging one last.
    """
    if not stats.contract:
        return []
    lines = [
        "  the program up to the hanging call (every call into the adapter, with its clock):",
        f"    start(contract={stats.contract!r})",
    ]
    calls = [describe_call(*call) for call, _ in stats.calls]
    lines += [
        f"    {text}  # clock {clock_offset(now)}"
        for text, (_, now) in zip(calls, stats.calls, strict=True)
    ]
    if calls and calls[-1] == hanging:
        lines[-1] += "  <- did not return"
    else:  # a call outside an action (observe, sign): it was not logged before it hung
        lines.append(f"    {hanging}  <- did not return")
    return lines


def _statements(program: str) -> tuple[list[str], list[str]]:
    """Split ``program`` into its set-up statements (through ``state.start``) and its steps."""
    tree = ast.parse(program)
    texts = [ast.get_source_segment(program, node) or "" for node in tree.body]
    starts = [i for i, text in enumerate(texts) if text.startswith("state.start(")]
    if not starts:
        message = "the program never starts the machine"
        raise SyntaxError(message)
    cut = starts[0] + 1
    steps = [text for text in texts[cut:] if not text.startswith("state.teardown(")]
    return texts[:cut], steps


class _Replay:
    """Runs a program's statements one by one against a given factory."""

    def __init__(
        self,
        setup: list[str],
        factory: Callable[[], Implementation],
        signature: tuple[str, str, str, str],
    ) -> None:
        self.setup = [line for line in setup if not line.startswith(("from ", "import "))]
        self.factory = factory
        self.signature = signature

    def run(self, steps: list[str]) -> tuple[int | None, list[Any], ConformanceFailure | None]:
        """Run ``steps`` and return how they ended.

        That is the index of the step that diverged as expected (or ``None``),
        the clock after each step run, and the divergence.
        """
        # The machine imports the runner's neighbours; imported here, no cycle.
        from replication.conformance.sequential.machine import differential_machine  # noqa: PLC0415

        factory = self.factory
        namespace: dict[str, Any] = {
            "differential_machine": differential_machine,
            "load_factory": lambda _target: factory,
        }
        clocks: list[Any] = []
        try:
            for line in self.setup:
                exec(compile(line, "<program>", "exec"), namespace)  # noqa: S102 - our program
            for index, line in enumerate(steps):
                try:
                    exec(compile(line, "<program>", "exec"), namespace)  # noqa: S102
                except ConformanceFailure as failure:
                    clocks.append(namespace["state"].now)
                    if failure.signature != self.signature:
                        return None, clocks, None
                    return index, clocks, failure
                clocks.append(namespace["state"].now)
        except Exception:  # noqa: BLE001 - a candidate that breaks does not reproduce
            return None, clocks, None
        finally:
            state = namespace.get("state")
            if state is not None:
                with contextlib.suppress(Exception):  # a broken candidate's teardown
                    state.teardown()
        return None, clocks, None


@attrs.frozen
class Minimised:
    """A program after minimising: the program, how it ends, and whether it is minimal."""

    program: str
    #: The divergence the program ends with (``None``: it did not reproduce as printed).
    failure: ConformanceFailure | None
    #: Whether no single step can be removed any more (a fixed point was reached).
    minimal: bool
    #: Complete passes over the steps (the last one removed nothing, if ``minimal``).
    passes: int
    #: Why minimising stopped before a fixed point, if it did.
    stopped: str | None = None


def minimise(
    program: str,
    factory: Callable[[], Implementation],
    signature: tuple[str, str, str, str],
    *,
    budget: float,
) -> Minimised:
    """Return ``program`` without the steps its divergence does not need, and how it ends.

    Passes over the steps, last to first, deleting each step whose deletion keeps
    the same divergence, until a pass deletes nothing (a fixed point: no single
    step can go) or ``budget`` seconds run out (then :attr:`Minimised.stopped`
    says so). The steps kept are annotated with the clock; the divergence
    returned is the one the smaller program ends with (``None``, and the program
    unchanged, if the program does not reproduce as printed).
    """
    try:
        setup, steps = _statements(program)
    except SyntaxError:
        return Minimised(program, None, minimal=False, passes=0,
                         stopped="the program could not be parsed")  # fmt: skip
    replay = _Replay(setup, factory, signature)
    failing, _, _ = replay.run(steps)
    if failing is None:
        why = "the program did not reproduce the divergence when replayed"
        return Minimised(program, None, minimal=False, passes=0, stopped=why)
    kept = steps[: failing + 1]
    deadline = time.monotonic() + budget
    passes, stopped = 0, None
    while True:
        removed = False
        index = len(kept) - 2  # the failing step itself stays
        while index >= 0:
            if time.monotonic() >= deadline:
                stopped = f"the shrink budget ({budget:.0f} s) ran out in pass {passes + 1}"
                break
            candidate = kept[:index] + kept[index + 1 :]
            reproduced, _, _ = replay.run(candidate)
            if reproduced is not None:
                kept = candidate[: reproduced + 1]
                removed = True
            index -= 1
        if stopped is not None:
            break
        passes += 1
        if not removed:
            break
    _, clocks, failure = replay.run(kept)
    annotated = [
        f"{line}  # clock {clock_offset(clock)}" if clock is not None else line
        for line, clock in zip(kept, clocks + [None] * (len(kept) - len(clocks)), strict=True)
    ]
    imports = [line for line in setup if line.startswith(("from ", "import "))]
    rest = setup[len(imports) :]
    text = "\n".join([*imports, "", *rest, *annotated, "state.teardown()"])
    return Minimised(text, failure, minimal=stopped is None, passes=passes, stopped=stopped)
