"""Breadth-first search of the reachable states, serial or on every core.

The search is level-synchronous, as TLC's and Stateright's breadth-first
checkers are in effect: the frontier of one depth is expanded (checked, every
action tried) before any state of the next depth, so the first violation
found lies at the least depth, and its trace is a shortest one. A level's
frontier is partitioned by state fingerprint; with several processes each
part is expanded in a worker forked from the search (so it inherits the
frontier instead of receiving it), and the parent merges the parts in a
fixed order: the successor kept for each new state is the one a serial
search would have met first (least frontier index, then least action
index). Serial and parallel searches therefore find the same states, the
same edges and the same traces. Only fingerprints, coverage counts and
findings travel back from the workers; the parent rebuilds each new state by
applying its one recorded action to its parent state.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import signal
import sys
import time
from collections import Counter
from typing import TYPE_CHECKING, Any

import attrs

from replication import transitions as core_transitions
from replication.conformance.sequential.witnesses import denial
from replication.explore.actions import KINDS, Action, World, apply, enabled_actions, initial_world
from replication.explore.bounds import DEFAULT
from replication.explore.canonical import Reductions, state_key
from replication.explore.expand import (
    ALLOWED,
    CHECK_ORDER,
    CRASH,
    ChunkResult,
    Config,
    check_state_of,
    expand_chunk,
)
from replication.explore.results import INTERRUPTED, Counterexample, Exploration

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from types import ModuleType

    from replication.explore.bounds import Bound
    from replication.explore.expand import Edge, Finding

__all__ = ["explore"]

#: Levels with fewer states than this are expanded in the parent: forking costs more.
PARALLEL_THRESHOLD = 256
#: Parts per process a level is cut into, so that uneven parts even out.
PARTS_PER_PROCESS = 4

# The level a forked worker expands: set in the parent just before it forks.
_LEVEL: tuple[Config, list[tuple[int, World]], list[list[int]], float | None] | None = None


def _expand_part(part: int) -> ChunkResult:
    """Expand one part of the level the parent set before forking (runs in a worker)."""
    if _LEVEL is None:  # pragma: no cover - the parent sets it before it forks
        message = "a worker started without its level"
        raise RuntimeError(message)
    config, frontier, parts, deadline = _LEVEL
    return expand_chunk(config, frontier, parts[part], deadline)


def _ignore_interrupts() -> None:
    """Start a worker deaf to Ctrl-C: the parent alone stops the pool, and says so in one line."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _fork_context() -> Any:
    try:
        return multiprocessing.get_context("fork")
    except ValueError:  # pragma: no cover - no fork on this platform: explore serially
        return None


@attrs.define
class _Search:
    """The parent's bookkeeping: every state's parent, the frontier, the totals."""

    config: Config
    processes: int
    parents: dict[int, tuple[int, Action] | None] = attrs.field(factory=dict)
    frontier: list[tuple[int, World]] = attrs.field(factory=list)
    depth: int = 0
    transitions: int = 0
    coverage: Counter[tuple[str, str]] = attrs.field(factory=Counter)
    witnesses: Counter[str] = attrs.field(factory=Counter)
    graph: dict[int, list[Edge]] = attrs.field(factory=dict)
    levels: list[int] = attrs.field(factory=list)
    violated: set[str] = attrs.field(factory=set)
    worlds: dict[int, World] = attrs.field(factory=dict)

    def run_level(
        self, deadline: float | None, report: Callable[[], None]
    ) -> tuple[list[ChunkResult], bool]:
        """Expand the whole frontier; return the parts' results and whether all finished."""
        count = self.processes * PARTS_PER_PROCESS
        parts: list[list[int]] = [[] for _ in range(count)]
        for index, (fingerprint, _) in enumerate(self.frontier):
            parts[fingerprint % count].append(index)
        context = _fork_context() if self.processes > 1 else None
        results: list[ChunkResult] = []
        if context is None or len(self.frontier) < PARALLEL_THRESHOLD:
            for indices in parts:
                results.append(expand_chunk(self.config, self.frontier, indices, deadline))
                self._absorb(results[-1])
                report()
        else:
            global _LEVEL  # noqa: PLW0603 - the one way to hand a forked worker its level
            _LEVEL = (self.config, self.frontier, parts, deadline)
            try:
                # Ctrl-C reaches the whole process group: the workers ignore it, and the
                # parent's KeyboardInterrupt leaves this block, which terminates them.
                with context.Pool(self.processes, initializer=_ignore_interrupts) as pool:
                    for part in pool.imap_unordered(_expand_part, range(count)):
                        results.append(part)
                        self._absorb(part)
                        report()
            finally:
                _LEVEL = None
        return results, all(part.complete for part in results)

    def _absorb(self, part: ChunkResult) -> None:
        self.transitions += part.transitions
        self.coverage.update(part.coverage)
        self.witnesses.update(part.witnesses)

    def next_frontier(self, results: Iterable[ChunkResult], room: int | None) -> bool:
        """Make the next frontier from the new successors; return ``False`` if ``room`` ran out."""
        first: dict[int, tuple[int, int]] = {}
        parents = self.parents
        edges: dict[int, list[Edge]] = {}
        for part in results:
            for index, successors in part.successors.items():
                for number, fingerprint in successors:
                    if fingerprint in parents:
                        continue
                    seen = first.get(fingerprint)
                    if seen is None or (index, number) < seen:
                        first[fingerprint] = (index, number)
            edges.update(part.edges)
        # In frontier order, whatever order the parts came back in.
        for index in sorted(edges):
            self.graph[self.frontier[index][0]] = edges[index]
        found = sorted(first.items(), key=lambda item: item[1])
        fits = room is None or len(found) <= room
        if not fits:
            found = found[: max(room or 0, 0)]
        actions: dict[int, list[Action]] = {}
        frontier: list[tuple[int, World]] = []
        for fingerprint, (index, number) in found:
            parent_fingerprint, world = self.frontier[index]
            if index not in actions:
                actions[index] = enabled_actions(world, self.config.bound, self.config.kinds)
            action = actions[index][number]
            successor = apply(world, action, self.config.bound, self.config.core).world
            parents[fingerprint] = (parent_fingerprint, action)
            frontier.append((fingerprint, successor))
            if self.config.record_graph:
                self.worlds[fingerprint] = successor
        self.frontier = frontier
        return fits

    def all_witnesses(self) -> dict[str, int]:
        """Return the witnesses reached: the allowed steps', and a refusal for each code."""
        witnesses = Counter(self.witnesses)
        for (_, verdict), count in self.coverage.items():
            if verdict != ALLOWED:
                witnesses[denial(verdict)] += count
        return dict(sorted(witnesses.items()))

    def path(self, fingerprint: int) -> list[Action]:
        """Return the actions from the initial state to the state ``fingerprint``."""
        actions: list[Action] = []
        link = self.parents[fingerprint]
        while link is not None:
            parent, action = link
            actions.append(action)
            link = self.parents[parent]
        actions.reverse()
        return actions

    def counterexample(self, findings: list[Finding]) -> Counterexample:
        """Return the trace to the first finding in search order, naming every check it fails.

        A step's trace ends with the step; the checks it fails are those of the
        step and those of the state it leads to (found a depth later otherwise).
        """
        first = min(findings, key=lambda f: (f.state, -1 if f.action is None else f.action))
        here = [f for f in findings if (f.state, f.action) == (first.state, first.action)]
        fingerprint, world = self.frontier[first.state]
        path = self.path(fingerprint)
        failed = [(f.check, f.message) for f in here]
        if first.action is not None:
            action = enabled_actions(world, self.config.bound, self.config.kinds)[first.action]
            path.append(action)
            if first.check != CRASH:
                after = apply(world, action, self.config.bound, self.config.core).world.state
                failed += [(v.invariant, v.message) for v in check_state_of(after, self.config)]
        order = {check: n for n, check in enumerate(CHECK_ORDER)}
        failed.sort(key=lambda pair: order.get(pair[0], len(order)))
        check, message = failed[0]
        return Counterexample(
            check=check,
            message=message,
            actions=tuple(path),
            in_state=first.action is None,
            others=tuple(dict.fromkeys(c for c, _ in failed[1:] if c != check)),
        )


def _peak_memory() -> tuple[int | None, int | None]:
    """Return the peak resident memory of this process and of its largest worker, in bytes."""
    scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss is in KiB on Linux
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * scale
    return own, children or None


def explore(
    bound: Bound = DEFAULT,
    *,
    time_abstraction: bool = True,
    symmetry: bool = True,
    processes: int | None = 1,
    max_states: int | None = None,
    max_seconds: float | None = None,
    kinds: Iterable[str] = KINDS,
    transitions: ModuleType | Any = core_transitions,
    record_graph: bool = False,
    stop_at_violation: bool = True,
    progress: Callable[[int, int, int, float], None] | None = None,
) -> Exploration:
    """Explore every state of ``bound`` reachable from the initial state, breadth first.

    ``processes`` is the number of worker processes (``None``: one per core;
    ``1``: in this process). ``transitions`` is the module (or any object with
    the same public functions) whose transitions are explored. The search
    stops at the end of the depth where a violation was found (unless
    ``stop_at_violation`` is false), or when ``max_states`` states are known or
    ``max_seconds`` have passed (the result then says it is incomplete). Ctrl-C
    stops it too: the result holds the levels finished so far, and its verdict
    is ``INTERRUPTED``.
    """
    if not time_abstraction and bound.max_ticks is None:
        message = "exploring without the time abstraction needs a bound with max_ticks set"
        raise ValueError(message)
    chosen = tuple(kind for kind in KINDS if kind in frozenset(kinds))
    unknown = sorted(frozenset(kinds) - frozenset(KINDS))
    if unknown:
        message = f"unknown action kinds {unknown}; the kinds are {list(KINDS)}"
        raise ValueError(message)
    reductions = Reductions.of(bound, time=time_abstraction, symmetry=symmetry)
    config = Config(bound, reductions, chosen, transitions, record_graph)
    search = _Search(config, processes=max(1, processes or os.cpu_count() or 1))
    started = time.monotonic()
    deadline = None if max_seconds is None else started + max_seconds
    world = initial_world(bound)
    fingerprint = hash(state_key(world, reductions))
    search.parents[fingerprint] = None
    search.frontier = [(fingerprint, world)]
    if record_graph:
        search.worlds[fingerprint] = world
    stopped: str | None = None
    counterexample: Counterexample | None = None
    last_report = [0.0]

    def report() -> None:
        now = time.monotonic()
        if progress is not None and now - last_report[0] >= 0.25:
            last_report[0] = now
            progress(len(search.parents), len(search.frontier), search.depth, now - started)

    try:
        while search.frontier:
            search.levels.append(len(search.frontier))
            results, finished = search.run_level(deadline, report)
            findings = [finding for part in results for finding in part.findings]
            search.violated.update(finding.check for finding in findings)
            if findings and counterexample is None:
                counterexample = search.counterexample(findings)
                if stop_at_violation:
                    break
            if not finished:
                stopped = f"--max-time ({max_seconds:g} s)"
                break
            room = None if max_states is None else max_states - len(search.parents)
            if not search.next_frontier(results, room):
                stopped = f"--max-states ({max_states:,})"
                break
            if search.frontier:
                search.depth += 1
    except KeyboardInterrupt:
        # What the finished levels found stands; the level cut short is left out.
        stopped = INTERRUPTED
    seconds = time.monotonic() - started
    if progress is not None:
        progress(len(search.parents), len(search.frontier), search.depth, seconds)
    own, workers = _peak_memory()
    return Exploration(
        bound=bound,
        time_abstraction=time_abstraction,
        symmetry=symmetry,
        kinds=chosen,
        processes=search.processes,
        states=len(search.parents),
        transitions=search.transitions,
        diameter=search.depth,
        levels=tuple(search.levels),
        seconds=seconds,
        coverage=dict(search.coverage),
        witnesses=search.all_witnesses(),
        counterexample=counterexample,
        stopped=stopped,
        peak_memory=own,
        peak_worker_memory=workers if search.processes > 1 else None,
        violated=frozenset(search.violated),
        graph=search.graph if record_graph else None,
        parents=search.parents if record_graph else None,
        worlds=search.worlds if record_graph else None,
    )
