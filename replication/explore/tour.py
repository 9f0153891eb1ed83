"""The transition tour: bounded, exhaustive conformance of an implementation.

The reference graph is explored first (in the adapter's vocabulary, less the
actions the implementation declares as gaps); then the implementation is
driven along paths from the initial state that together take every edge of
the reachable, reduced graph at least once, restarted with ``start()``
between paths, and compared with the reference at every step
(:mod:`replication.explore.driver`). Every edge: every allowed action and
every refusal, in every reachable state, up to the bound.

The paths are planned greedily: from the current state take an edge not yet
taken (of the kind of action taken least so far, so that every kind is met
early; a self-loop before an edge that leaves); when none is left here, walk
to the nearest state that has one (a breadth-first search of a few steps);
when none is near, restart, and follow the search tree to the shallowest
state that still has an edge not taken. The tour guarantees every edge; it
is not tuned to meet a fault soon (the random kit, steered by its witnesses,
often meets one in fewer steps).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import TYPE_CHECKING

import attrs

from replication.conformance.adapter import OPTIONAL_ACTIONS
from replication.conformance.results import ConformanceFailure
from replication.explore.actions import ADAPTER_KINDS, KINDS
from replication.explore.bounds import BOUNDS
from replication.explore.canonical import Reductions
from replication.explore.driver import GAP_KINDS, Driver
from replication.explore.search import explore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator, Mapping

    from replication.conformance.adapter import Implementation
    from replication.explore.bounds import Bound
    from replication.explore.expand import Edge
    from replication.explore.results import Exploration

__all__ = [
    "TOUR_BOUND",
    "Divergence",
    "Tour",
    "plan_paths",
    "reference_graph",
    "tour",
    "tour_kinds",
]

#: The bound ``replication explore --impl`` tours by default: small enough to take every
#: edge in seconds, large enough to hold every rule an adapter can be asked to follow.
TOUR_BOUND = BOUNDS["tour"]
#: How far the planner looks for an edge not yet taken before it restarts.
NEAR = 4


@attrs.frozen
class Divergence:
    """The first step at which the implementation and the reference differ."""

    failure: ConformanceFailure
    #: Implementation steps driven up to and including the divergent one.
    steps: int
    path: int
    #: The concrete actions of the divergent path, from the initial state.
    actions: tuple[str, ...]


@attrs.frozen
class Tour:
    """The outcome of a transition tour."""

    target: str
    exploration: Exploration
    edges: int
    covered: int
    paths: int
    steps: int
    seconds: float
    divergence: Divergence | None

    @property
    def verdict(self) -> str:
        """``CONFORMANT`` (every edge taken, no difference) or ``NOT CONFORMANT``."""
        if self.divergence is None and self.covered == self.edges:
            return "CONFORMANT"
        return "NOT CONFORMANT"


def plan_paths(
    graph: Mapping[int, list[Edge]],
    initial: int,
    parents: Mapping[int, tuple[int, object] | None],
) -> Iterator[list[tuple[int, int]]]:
    """Yield paths from ``initial`` (as state and edge index pairs) that take every edge.

    ``parents`` is the search tree (each state's parent, breadth first), used
    to reach the shallowest state with an edge left when a path restarts.
    """
    left = {state: list(range(len(edges))) for state, edges in graph.items() if edges}
    taken: Counter[str] = Counter()

    def choose(state: int) -> int:
        # The kind of action taken least so far (so that every kind is reached
        # early, and a fault in any of them is met soon), then a self-loop (taken
        # without leaving the state), then the order of the actions.
        edges = graph[state]
        return min(left[state], key=lambda n: (taken[edges[n][0]], edges[n][2] != state, n))

    order = sorted(graph, key=lambda s: _depth(s, parents))
    cursor = 0
    while left:
        while order[cursor] not in left:
            cursor += 1
        path = _tree_path(graph, parents, order[cursor])
        here: int | None = graph[path[-1][0]][path[-1][1]][2] if path else initial
        for source, number in path:
            _take(left, source, number)
            taken[graph[source][number][0]] += 1
        while here is not None and here in graph:
            if here not in left:
                detour = _nearest(graph, left, here)
                if detour is None:
                    break
                for source, number in detour:
                    _take(left, source, number)
                    taken[graph[source][number][0]] += 1
                path += detour
                here = graph[detour[-1][0]][detour[-1][1]][2]
                continue
            number = choose(here)
            _take(left, here, number)
            taken[graph[here][number][0]] += 1
            path.append((here, number))
            here = graph[here][number][2]
        yield path


def _take(left: dict[int, list[int]], state: int, number: int) -> None:
    numbers = left.get(state)
    if numbers is not None and number in numbers:
        numbers.remove(number)
        if not numbers:
            del left[state]


def _depth(state: int, parents: Mapping[int, tuple[int, object] | None]) -> int:
    depth = 0
    link = parents.get(state)
    while link is not None:
        depth += 1
        link = parents.get(link[0])
    return depth


def _tree_path(
    graph: Mapping[int, list[Edge]], parents: Mapping[int, tuple[int, object] | None], target: int
) -> list[tuple[int, int]]:
    """Return the search tree's path from the initial state to ``target``, as edges."""
    path: list[tuple[int, int]] = []
    state = target
    link = parents.get(state)
    while link is not None:
        parent = link[0]
        number = next(n for n, edge in enumerate(graph[parent]) if edge[2] == state)
        path.append((parent, number))
        state = parent
        link = parents.get(state)
    path.reverse()
    return path


def _nearest(
    graph: Mapping[int, list[Edge]], left: dict[int, list[int]], start: int
) -> list[tuple[int, int]] | None:
    """Return a shortest walk (at most :data:`NEAR` edges) to a state with an edge left."""
    previous: dict[int, tuple[int, int] | None] = {start: None}
    queue = deque([(start, 0)])
    while queue:
        state, distance = queue.popleft()
        if state in left:
            walk = []
            link = previous[state]
            while link is not None:
                walk.append(link)
                link = previous[link[0]]
            walk.reverse()
            return walk
        if distance == NEAR:
            continue
        for number, edge in enumerate(graph.get(state, ())):
            successor = edge[2]
            if successor is not None and successor not in previous and successor in graph:
                previous[successor] = (state, number)
                queue.append((successor, distance + 1))
    return None


def tour_kinds(implementation: object) -> tuple[str, ...]:
    """Return the explorer's kinds an implementation can be driven with (its gaps left out)."""
    gaps = frozenset(getattr(implementation, "gaps", frozenset()))
    unknown = gaps - OPTIONAL_ACTIONS
    if unknown:
        message = f"gaps may only name {sorted(OPTIONAL_ACTIONS)}, got {sorted(unknown)}"
        raise ValueError(message)
    excluded = frozenset().union(*(GAP_KINDS[gap] for gap in gaps))
    return tuple(kind for kind in KINDS if kind in ADAPTER_KINDS - excluded)


def reference_graph(
    bound: Bound = TOUR_BOUND,
    kinds: tuple[str, ...] | None = None,
    *,
    time_abstraction: bool = True,
    symmetry: bool = True,
    processes: int | None = 1,
) -> Exploration:
    """Explore ``bound`` in ``kinds`` (the whole adapter vocabulary by default), recording edges."""
    return explore(
        bound,
        time_abstraction=time_abstraction,
        symmetry=symmetry,
        processes=processes,
        kinds=kinds or tuple(kind for kind in KINDS if kind in ADAPTER_KINDS),
        record_graph=True,
    )


def tour(
    factory: Callable[[], Implementation],
    bound: Bound = TOUR_BOUND,
    *,
    target: str | None = None,
    time_abstraction: bool = True,
    symmetry: bool = True,
    processes: int | None = 1,
    explored: Exploration | None = None,
    unreported: frozenset[str] | None = None,
) -> Tour:
    """Explore ``bound`` in the adapter's vocabulary, then drive the implementation over every edge.

    ``explored`` is an exploration to reuse instead (one made by :func:`reference_graph`
    for an implementation with the same gaps). ``unreported`` names the optional
    observation fields the adapter does not report (``None``: learnt at first
    sight, as the differential kit does). Stops at the first divergence.
    Raises ``ValueError`` for an adapter that declares unknown gaps, or a graph
    explored for another bound or vocabulary.
    """
    kinds = tour_kinds(factory())
    exploration = explored or reference_graph(
        bound, kinds, time_abstraction=time_abstraction, symmetry=symmetry, processes=processes
    )
    if exploration.graph is None or (exploration.bound, exploration.kinds) != (bound, kinds):
        message = "the graph given was not explored for this bound and this adapter's vocabulary"
        raise ValueError(message)
    graph, parents = exploration.graph, exploration.parents
    if graph is None or parents is None:  # pragma: no cover - record_graph=True records both
        message = "the exploration recorded no graph"
        raise RuntimeError(message)
    initial = next(state for state, link in parents.items() if link is None)
    reductions = Reductions.of(
        bound, time=exploration.time_abstraction, symmetry=exploration.symmetry
    )
    driver = Driver(factory, bound, reductions, unreported=unreported)
    started = time.monotonic()
    taken: set[tuple[int, int]] = set()
    paths = 0
    divergence = None
    for path in plan_paths(graph, initial, parents):
        paths += 1
        driver.start()
        actions: list[str] = []
        try:
            for state, number in path:
                kind, name, successor, _ = graph[state][number]
                actions.append(str(driver.step(kind, name, successor)))
                taken.add((state, number))
        except ConformanceFailure as failure:
            divergence = Divergence(failure, driver.steps, paths, tuple(actions))
            break
    return Tour(
        target=target or f"{factory.__module__}:{getattr(factory, '__qualname__', factory)}",
        exploration=exploration,
        edges=sum(len(edges) for edges in graph.values()),
        covered=len(taken),
        paths=paths,
        steps=driver.steps,
        seconds=time.monotonic() - started,
        divergence=divergence,
    )
