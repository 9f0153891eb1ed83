"""The transition tour: bounded, exhaustive conformance of an implementation.

The adapter is loaded and probed by the kit's preflight
(:func:`~replication.conformance.adapters.preflight.load_adapter`), which also says
what it leaves out: the actions it declares as gaps, the later actions it
does not provide, the observation fields it does not report. The reference
graph is explored next (in the adapter's vocabulary, less those actions);
then the implementation is driven along paths from the initial state that
together take every edge of the reachable, reduced graph at least once,
restarted with ``start()`` between paths, and compared with the reference at
every step (:mod:`replication.explore.driver`), every call under the kit's
per-call time limit. Every edge: every allowed action and every refusal, in
every reachable state, up to the bound.

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

from replication.conformance.adapters.adapter import OPTIONAL_ACTIONS
from replication.conformance.adapters.calls import DEFAULT_TIMEOUT, Watchdog, where_defined
from replication.conformance.adapters.observations import OPTIONAL_FIELDS
from replication.conformance.adapters.preflight import Adapter, SetupError, load_adapter
from replication.conformance.sequential.results import ConformanceFailure
from replication.explore.actions import ADAPTER_KINDS, KINDS
from replication.explore.bounds import BOUNDS
from replication.explore.canonical import Reductions
from replication.explore.coverage import driven, not_driven, vocabulary
from replication.explore.driver import GAP_KINDS, Driver
from replication.explore.results import INTERRUPTED
from replication.explore.search import explore

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Mapping

    from replication.conformance.adapters.adapter import Implementation
    from replication.explore.actions import Action
    from replication.explore.bounds import Bound
    from replication.explore.expand import Edge
    from replication.explore.results import Exploration

__all__ = [
    "DEFAULT_TIMEOUT",
    "FULL_REGISTRY",
    "FULL_REGISTRY_KINDS",
    "TOUR_BOUND",
    "Divergence",
    "Tour",
    "plan_paths",
    "reference_graph",
    "tour",
    "tour_kinds",
]

#: The bound ``replication explore --impl`` tours by default: large enough to hold every
#: rule an adapter can be asked to follow and each time rule at its boundary instant.
TOUR_BOUND = BOUNDS["tour"]
#: What two manifests cannot reach, a registration that meets a full registry or a
#: sibling's cooldown, toured after the tour bound on a third manifest, in the actions
#: that fill and empty the registry only: the whole vocabulary on three manifests
#: made seven times the edges (docs/figures/kit.md).
FULL_REGISTRY = attrs.evolve(TOUR_BOUND, max_issued=3)
FULL_REGISTRY_KINDS = frozenset(
    {"issue", "register", "kill", "deregister", "reap", "expire", "tick"}
)
#: How far the planner looks for an edge not yet taken before it restarts.
NEAR = 4


@attrs.frozen
class Divergence:
    """The first step at which the implementation and the reference differ."""

    failure: ConformanceFailure
    #: Implementation steps driven up to and including the divergent one.
    steps: int
    path: int
    #: The concrete actions of the divergent path, from the initial state, the divergent
    #: one last (none when ``start()`` itself failed).
    actions: tuple[Action, ...]


@attrs.frozen
class Tour:
    """The outcome of a transition tour, and what the adapter left out of it."""

    target: str
    exploration: Exploration
    edges: int
    covered: int
    paths: int
    steps: int
    seconds: float
    divergence: Divergence | None
    #: The actions the tour left out: declared gaps and, among them, the later
    #: actions the adapter does not provide (R-KIT-4).
    gaps: frozenset[str] = frozenset()
    not_provided: frozenset[str] = frozenset()
    #: The optional observation fields never compared when the implementation said
    #: ``None``: declared (``unreported_declared``) or learnt at first sight.
    unreported: frozenset[str] = frozenset()
    unreported_declared: bool = True
    #: The optional fields the reference never had a value for (so never compared).
    unseen: frozenset[str] = frozenset()
    #: Why the tour stopped before taking every edge (``--max-time``), if it did.
    stopped: str | None = None
    #: Every (transition, outcome) the adapter's vocabulary allows, and those the tour drove.
    vocabulary: frozenset[tuple[str, str]] = frozenset()
    driven: frozenset[tuple[str, str]] = frozenset()
    #: The graph toured after the bound's own (:data:`FULL_REGISTRY`), if any: its edges,
    #: paths and steps are counted in the tour's.
    supplement: Exploration | None = None

    @property
    def explored_seconds(self) -> float:
        """Seconds spent exploring the reference graphs (the supplement's included)."""
        extra = 0.0 if self.supplement is None else self.supplement.seconds
        return self.exploration.seconds + extra

    @property
    def not_driven(self) -> dict[str, str]:
        """Each outcome of the vocabulary the tour never drove, with the bound that would."""
        return not_driven(self.vocabulary, self.driven)

    @property
    def verdict(self) -> str:
        """``NOT CONFORMANT``, ``INCOMPLETE`` (stopped, or a partial graph) or ``CONFORMANT``.

        ``INTERRUPTED`` when Ctrl-C stopped the exploration or the tour.

        ``CONFORMANT`` is over the vocabulary the adapter supports: a tour with
        gaps may be conformant, as a kit run may (R-KIT-4), and its report and
        verdict line say what was left out (:attr:`left_out`), and what the
        bound did not drive (:attr:`not_driven`): it is conformant on what it drove.
        """
        supplement = None if self.supplement is None else self.supplement.stopped
        if INTERRUPTED in (self.stopped, self.exploration.stopped, supplement):
            return "INTERRUPTED"
        if self.divergence is not None:
            return "NOT CONFORMANT"
        if self.stopped is not None or not self.exploration.complete:
            return "INCOMPLETE"
        if self.supplement is not None and not self.supplement.complete:
            return "INCOMPLETE"
        if self.covered != self.edges:
            return "INCOMPLETE"
        return "CONFORMANT"

    @property
    def left_out(self) -> tuple[str, ...]:
        """What the verdict does not cover, one phrase each (empty: nothing)."""
        declared = sorted(self.gaps - self.not_provided)
        phrases = []
        if declared:
            phrases.append(f"declared gaps {', '.join(declared)}")
        if self.not_provided:
            phrases.append(f"not provided {', '.join(sorted(self.not_provided))}")
        if self.unreported:
            phrases.append(f"not reported {', '.join(sorted(self.unreported))}")
        return tuple(phrases)


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


def tour_kinds(gaps: Iterable[str] = ()) -> tuple[str, ...]:
    """Return the explorer's kinds an adapter with ``gaps`` can be driven with.

    ``gaps`` are the actions the preflight found left out (``Adapter.gaps``:
    declared gaps and later actions not provided).
    """
    gaps = frozenset(gaps)
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
    max_states: int | None = None,
    max_seconds: float | None = None,
    progress: Callable[[int, int, int, float], None] | None = None,
) -> Exploration:
    """Explore ``bound`` in ``kinds`` (the whole adapter vocabulary by default), recording edges."""
    return explore(
        bound,
        time_abstraction=time_abstraction,
        symmetry=symmetry,
        processes=processes,
        kinds=kinds or tuple(kind for kind in KINDS if kind in ADAPTER_KINDS),
        record_graph=True,
        max_states=max_states,
        max_seconds=max_seconds,
        progress=progress,
    )


def _load(target: str | Callable[[], Implementation], timeout: float | None) -> Adapter:
    """Run the kit's preflight on ``target`` under the per-call time limit."""
    with Watchdog(timeout) as watchdog:
        return load_adapter(target, watchdog=watchdog)


def tour(
    target: Adapter | str | Callable[[], Implementation],
    bound: Bound = TOUR_BOUND,
    *,
    timeout: float | None = DEFAULT_TIMEOUT,
    max_seconds: float | None = None,
    max_states: int | None = None,
    time_abstraction: bool = True,
    symmetry: bool = True,
    processes: int | None = 1,
    explored: Exploration | None = None,
    progress: Callable[[int, int, int, float], None] | None = None,
) -> Tour:
    """Explore ``bound`` in the adapter's vocabulary, then drive the implementation over every edge.

    ``target`` is an adapter the preflight passed, or what to load
    (``"module:factory"`` or the factory): it is loaded with the kit's
    preflight, which raises :class:`~replication.conformance.adapters.preflight.SetupError`
    for an adapter that cannot be run (as for one that signs with its own
    scheme: the tour hands it manifests signed with the reference's key).
    ``timeout`` is the longest one call into the adapter may take (``None``: no
    limit), ``max_seconds`` the longest the whole tour may take (exploration
    included; the tour is then ``INCOMPLETE``), ``max_states`` a limit on the
    reference graph. ``explored`` is an exploration to reuse instead (one
    made by :func:`reference_graph` for the same bound and vocabulary). Stops at
    the first divergence; a crash, a hang or a protocol violation of the
    implementation is a divergence, never an exception.
    """
    started = time.monotonic()
    deadline = None if max_seconds is None else started + max_seconds
    adapter = target if isinstance(target, Adapter) else _load(target, timeout)
    if adapter.signs:
        message = (
            "the adapter signs with its own scheme (sign, verify); the tour drives manifests "
            "signed with the reference's Ed25519 key: use `replication conformance`"
        )
        raise SetupError(message, where=where_defined(adapter.factory))
    kinds = tour_kinds(adapter.gaps)
    exploration = explored or reference_graph(
        bound, kinds, time_abstraction=time_abstraction, symmetry=symmetry, processes=processes,
        max_states=max_states, max_seconds=max_seconds, progress=progress,
    )  # fmt: skip
    if exploration.graph is None or (exploration.bound, exploration.kinds) != (bound, kinds):
        message = "the graph given was not explored for this bound and this adapter's vocabulary"
        raise ValueError(message)
    # The tour bound's registrations never meet a full registry: a third manifest does,
    # toured on its own graph in the actions that fill and empty the registry.
    supplement = None
    if bound == TOUR_BOUND and exploration.stopped is None:
        remaining = None if deadline is None else max(deadline - time.monotonic(), 0.001)
        supplement = reference_graph(
            FULL_REGISTRY, tuple(kind for kind in kinds if kind in FULL_REGISTRY_KINDS),
            time_abstraction=time_abstraction, symmetry=symmetry, processes=processes,
            max_states=max_states, max_seconds=remaining,
        )  # fmt: skip
    parts = [exploration] if supplement is None else [exploration, supplement]
    driving = time.monotonic()
    progress_ = _Driving()
    # The adapter's own KeyboardInterrupt is its crash; only Ctrl-C stops the tour.
    with Watchdog(timeout) as watchdog, watchdog.handling_ctrl_c():
        driver = None
        for part in parts:
            driver = Driver(adapter.factory, part.bound, Reductions.of(
                part.bound, time=part.time_abstraction, symmetry=part.symmetry
            ), unreported=adapter.unreported, watchdog=watchdog, previous=driver)  # fmt: skip
            # A graph Ctrl-C cut short is not driven: the report says what was explored.
            if part.stopped != INTERRUPTED:
                _drive_graph(driver, part, progress_, deadline, max_seconds)
            if progress_.divergence is not None or progress_.stopped is not None:
                break
    assert driver is not None  # noqa: S101 - parts holds the bound's own exploration
    divergence, stopped = progress_.divergence, progress_.stopped
    outcomes: frozenset[tuple[str, str]] = frozenset()
    for part, taken in zip(parts, progress_.taken, strict=False):
        assert part.graph is not None  # noqa: S101 - explored with record_graph=True
        outcomes |= driven(part.graph, taken)
    edges = sum(len(out) for part in parts if part.graph for out in part.graph.values())
    reporting = driver.reporting
    return Tour(
        target=adapter.name,
        exploration=exploration,
        edges=edges,
        covered=sum(len(taken) for taken in progress_.taken),
        paths=progress_.paths,
        steps=progress_.steps,
        seconds=time.monotonic() - driving,
        divergence=divergence,
        gaps=adapter.gaps,
        not_provided=adapter.not_provided,
        unreported=frozenset(OPTIONAL_FIELDS - reporting.reported - reporting.unseen),
        unreported_declared=reporting.declared,
        unseen=reporting.unseen,
        stopped=stopped
        or exploration.stopped
        or (None if supplement is None else supplement.stopped),
        vocabulary=vocabulary(kinds),
        driven=outcomes,
        supplement=supplement,
    )


class _Driving:
    """What driving the implementation over the graphs has done so far."""

    def __init__(self) -> None:
        self.taken: list[set[tuple[int, int]]] = []
        self.paths = 0
        self.steps = 0
        self.divergence: Divergence | None = None
        self.stopped: str | None = None


def _drive_graph(
    driver: Driver,
    exploration: Exploration,
    progress: _Driving,
    deadline: float | None,
    max_seconds: float | None,
) -> None:
    """Drive the implementation along paths that take every edge of ``exploration``'s graph."""
    graph, parents = exploration.graph, exploration.parents
    if graph is None or parents is None:  # pragma: no cover - record_graph=True records both
        message = "the exploration recorded no graph"
        raise RuntimeError(message)
    initial = next(state for state, link in parents.items() if link is None)
    taken: set[tuple[int, int]] = set()
    progress.taken.append(taken)
    steps_before = driver.steps
    try:
        for path in plan_paths(graph, initial, parents):
            progress.paths += 1
            actions: list[Action] = []
            try:
                driver.start()
                for state, number in path:
                    if deadline is not None and time.monotonic() > deadline:
                        progress.stopped = f"--max-time ({max_seconds:g} s)"
                        return
                    kind, name, successor, _ = graph[state][number]
                    action = driver.action(kind, name)
                    actions.append(action)
                    driver.take(action, successor)
                    taken.add((state, number))
            except ConformanceFailure as failure:
                steps = progress.steps + driver.steps - steps_before
                progress.divergence = Divergence(failure, steps, progress.paths, tuple(actions))
                return
            except KeyboardInterrupt:
                # Ctrl-C (the watchdog has its own signal): the report shows what ran.
                progress.stopped = INTERRUPTED
                return
    finally:
        progress.steps += driver.steps - steps_before
