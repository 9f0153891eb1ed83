"""The transition tour: every edge of the explored graph, driven through an adapter."""

from __future__ import annotations

import pytest

from replication.conformance.adapter import FacadeImplementation, ReferenceImplementation
from replication.explore import Bound
from replication.explore.tour import TOUR_BOUND, plan_paths, reference_graph, tour, tour_kinds
from tests import toy_implementation as toys

#: A smaller graph for the tours that must take every edge.
SMALL = Bound(
    max_depth=1, max_replicas=2, cooldown=2, heartbeat_timeout=0, expiration=None, max_issued=1
)


@pytest.fixture(scope="module")
def graph():
    """The reference graph of the tour bound in the whole adapter vocabulary (explored once)."""
    return reference_graph(TOUR_BOUND)


def covers_every_edge(edges, initial, paths):
    taken = set()
    for path in paths:
        state = initial
        for source, number in path:
            assert source == state, "a path must be walkable from the initial state"
            taken.add((source, number))
            state = edges[source][number][2]
    return taken == {(s, n) for s, out in edges.items() for n in range(len(out))}


class TestPlanning:
    def test_the_paths_take_every_edge_of_a_small_graph(self):
        """R-EXPLORE-13: a diamond with a self-loop and a dead end, every edge taken."""
        edges = {
            0: [("a", None, 1, "allowed"), ("b", None, 2, "allowed"), ("c", None, 0, "x")],
            1: [("d", None, 3, "allowed")],
            2: [("e", None, 3, "allowed"), ("f", None, None, "allowed")],
            3: [("g", None, 3, "x")],
        }
        parents = {0: None, 1: (0, "a"), 2: (0, "b"), 3: (1, "d")}
        assert covers_every_edge(edges, 0, list(plan_paths(edges, 0, parents)))

    def test_the_paths_take_every_edge_of_the_tour_graph(self, graph):
        """R-EXPLORE-13: walkable from the initial state, and covering the whole graph."""
        initial = next(state for state, link in graph.parents.items() if link is None)
        assert covers_every_edge(
            graph.graph, initial, plan_paths(graph.graph, initial, graph.parents)
        )


class TestFaultyImplementations:
    @pytest.mark.parametrize(
        ("factory", "kind", "action"),
        [
            (toys.KillSwitchSurvivor, "invariant", "engage_kill_switch"),
            (toys.DepthOffByOne, "decision", "issue_manifest"),
            (toys.IgnoresCooldown, "decision", "issue_manifest"),
            (toys.ReapLeavesContainer, "invariant", "reap_stale_workers"),
            (toys.QuarantinedHeartbeat, "decision", "heartbeat"),
            (toys.DuplicateLaunchReplaces, "decision", "launch_worker"),
        ],
        ids=lambda value: getattr(value, "__name__", str(value)),
    )
    def test_each_faulty_implementation_is_caught(self, graph, factory, kind, action):
        """R-EXPLORE-13: the tour finds each fault, with the path that leads to it."""
        result = tour(factory, explored=graph)
        assert result.verdict == "NOT CONFORMANT"
        divergence = result.divergence
        assert (kind, action) == (divergence.failure.kind, divergence.failure.action)
        assert divergence.steps == result.steps
        assert divergence.actions[0] == "issue"


class TestConformingImplementations:
    @pytest.mark.parametrize(
        "factory", [ReferenceImplementation, FacadeImplementation, toys.ToyImplementation]
    )
    def test_a_correct_implementation_takes_every_edge(self, factory):
        """R-EXPLORE-13: no divergence, and every edge of the graph taken, with restarts."""
        result = tour(factory, SMALL)
        assert result.verdict == "CONFORMANT"
        assert result.covered == result.edges
        assert result.paths > 1
        assert result.steps >= result.edges - result.exploration.states

    def test_declared_gaps_leave_their_actions_out_of_the_graph(self):
        """R-EXPLORE-13, R-KIT-4: without quarantine, no quarantine or release edge is explored."""
        assert not {"quarantine", "release"} & set(tour_kinds(toys.WithoutQuarantine()))
        result = tour(toys.WithoutQuarantine, SMALL)
        assert result.verdict == "CONFORMANT"
        assert not {"quarantine", "release"} & set(result.exploration.kinds)

    def test_a_graph_explored_for_another_vocabulary_is_refused(self, graph):
        with pytest.raises(ValueError, match="vocabulary"):
            tour(toys.WithoutQuarantine, explored=graph)

    def test_unknown_gaps_are_refused(self):
        class Flying(ReferenceImplementation):
            gaps = frozenset({"fly"})

        with pytest.raises(ValueError, match="gaps may only name"):
            tour(Flying, SMALL)
