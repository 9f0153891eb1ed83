"""The printed program, made minimal and annotated: no step that the divergence does not need.

Hypothesis shrinks a failing program, but under a time budget it may stop with
steps left that the divergence does not need (a rule that did nothing, a clock
move nothing depends on), or with a step that makes more calls than the
divergence needs (a worker started through a departed sibling where a plain
start would do). :func:`minimise` replays the program one statement at a time
and tries, in turn, to delete each step (last to first), to replace a step
that starts or issues a worker by a plainer one (a root or a child started,
issued, or issued and registered without a launch), and to delete each pair
of steps; it keeps a change when the same divergence still occurs with fewer
calls into the adapter, or as many in fewer steps, and starts again, until
no change helps (a fixed point) or the budget runs out, and says which. It
stops at the failing step, and annotates every step with the clock it ran at,
so the reader sees the times the rules compare. A hang is not shrunk:
:func:`hang_program` lists the calls that led to it.
"""

from __future__ import annotations

import ast
import contextlib
import itertools
import re
import time
from typing import TYPE_CHECKING, Any

import attrs

from replication.conformance.adapters.calls import describe_call
from replication.conformance.sequential.results import ConformanceFailure, clock_offset

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

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
        self.calls = 0

    def run(self, steps: list[str]) -> tuple[int | None, list[Any], ConformanceFailure | None]:
        """Run ``steps`` and return how they ended.

        That is the index of the step that diverged as expected (or ``None``),
        the clock after each step run, and the divergence. :attr:`calls` is then
        the number of calls into the adapter the steps made.
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
            machine = namespace.get("DifferentialMachine")
            stats = getattr(machine, "stats", None)
            self.calls = len(getattr(stats, "calls", ()))
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
    """Return ``program`` without the steps and calls its divergence does not need.

    Tries each change of :func:`_candidates` in turn and keeps the first that
    keeps the same divergence with fewer calls into the adapter (or as many in
    fewer steps), then starts again, until no change helps (a fixed point: no
    step or pair of steps can go, no step can be made plainer) or ``budget``
    seconds run out (then :attr:`Minimised.stopped` says so). The steps kept are
    annotated with the clock; the divergence returned is the one the smaller
    program ends with (``None``, and the program unchanged, if the program does
    not reproduce as printed).
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
    cost = (replay.calls, len(kept))
    deadline = time.monotonic() + budget
    passes, stopped = 0, None
    while stopped is None:
        improved = False
        for candidate in _candidates(kept):
            if time.monotonic() >= deadline:
                stopped = f"the shrink budget ({budget:.0f} s) ran out in pass {passes + 1}"
                break
            reproduced, _, _ = replay.run(candidate)
            if reproduced is None:
                continue
            shorter = candidate[: reproduced + 1]
            # Fewer calls into the adapter first (the unit a reader follows), then fewer steps.
            if (replay.calls, len(shorter)) < cost:
                kept, cost, improved = shorter, (replay.calls, len(shorter)), True
                break
        if stopped is not None:
            break
        passes += 1
        if not improved:
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


#: A step that stores what it returns in a bundle: ``worker_ids_3 = state.rule(...)``.
_ASSIGNED = re.compile(r"^(?P<target>(?P<bundle>worker_ids|issued)_\w+) = state\.")
_ROOT = "state.issue_root(external_network=False, snapshot={}, worker_id='new')"
_START = "state.start_worker(parent={parent}, external_network=False, name='new', snapshot={{}})"


def _plainer(step: str, earlier: list[str], number: int) -> Iterator[list[str]]:
    """Yield plainer replacements of ``step`` (one or two steps), given the bundles before it.

    A worker started or registered by any rule may be a root or a child of an
    earlier worker started plainly (issue, register and launch), or issued and
    registered without a launch; an issued manifest may be a root's or a
    child's, issued plainly.
    """
    match = _ASSIGNED.match(step)
    if match is None:
        return
    target, bundle = match["target"], match["bundle"]
    parents = ["None", *earlier]
    if bundle == "issued":
        yield [f"{target} = {_ROOT}"]
        for parent in earlier:
            yield [f"{target} = state.issue_child(parent={parent}, external_network=False)"]
        return
    for parent in parents:
        yield [f"{target} = {_START.format(parent=parent)}"]
    spare = f"issued_plain{number}"
    yield [f"{spare} = {_ROOT}", f"{target} = state.register(issued={spare})"]
    for parent in earlier:
        issue = f"{spare} = state.issue_child(parent={parent}, external_network=False)"
        yield [issue, f"{target} = state.register(issued={spare})"]


def _candidates(kept: list[str]) -> Iterator[list[str]]:
    """Yield the programs one change away from ``kept``, the cheapest to try first.

    Each step deleted (last to first), each step made plainer (:func:`_plainer`),
    then each pair of steps deleted; the failing step (the last) always stays.
    """
    last = len(kept) - 1
    for index in range(last - 1, -1, -1):
        yield kept[:index] + kept[index + 1 :]
    for index in range(last):
        earlier = [
            found["target"]
            for line in kept[:index]
            if (found := _ASSIGNED.match(line)) and found["bundle"] == "worker_ids"
        ]
        for replacement in _plainer(kept[index], earlier, index):
            if replacement != [kept[index]]:
                yield kept[:index] + replacement + kept[index + 1 :]
    for first, second in itertools.combinations(range(last), 2):
        yield [line for n, line in enumerate(kept) if n not in {first, second}]
