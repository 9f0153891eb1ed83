"""The reductions are sound: exploring with and without each finds the same states, edges and bugs.

Each test explores a small bound twice, once with the reduction and once
without it, maps every state and every edge found without it through the
reduction's state identity, and compares: the same states, the same edges
(state, action kind, verdict, successor), the same failed checks and the same
shortest counterexample length, for the core and for broken copies of it.
"""

from __future__ import annotations

import attrs
import pytest

from replication.explore import Bound, explore, labelling, state_key
from replication.explore.actions import KINDS, Action, apply, initial_world
from replication.explore.bounds import EPOCH, TICK
from replication.explore.canonical import Reductions
from tests.broken_transitions import IGNORES_COOLDOWN, KILL_SWITCH_SURVIVOR, QUARANTINED_HEARTBEAT

#: One worker, with an expiration: every age the time abstraction caps is in play.
ONE = Bound(
    max_depth=0, max_replicas=1, cooldown=1, heartbeat_timeout=1, expiration=2, max_issued=1
)
#: A parent and a child: a cooldown (longer than the timeout, so a reaped child leaves its
#: parent cooling down), and ids the symmetry reduction can swap.
TWO = Bound(
    max_depth=1, max_replicas=2, cooldown=2, heartbeat_timeout=0, expiration=None, max_issued=2
)
#: The moves that read or write a time, for the two-worker proof without the time abstraction.
TIMED = ("issue", "register", "register_future", "heartbeat", "reap", "deregister", "tick")


def graph_through(exploration, reductions):
    """Map the states and edges of ``exploration`` through another state identity."""
    identity = {
        fingerprint: hash(state_key(world, reductions))
        for fingerprint, world in exploration.worlds.items()
    }
    edges = {
        (identity[source], kind, None if target is None else identity[target], verdict)
        for source, out in exploration.graph.items()
        for kind, _, target, verdict in out
    }
    return set(identity.values()), edges


def own_edges(exploration):
    """The edges of ``exploration`` in its own state identity, without canonical names."""
    return {
        (source, kind, target, verdict)
        for source, out in exploration.graph.items()
        for kind, _, target, verdict in out
    }


def horizon(exploration):
    """The latest clock among the states found with the time abstraction, plus one tick."""
    return 1 + max((world.now - EPOCH) // TICK for world in exploration.worlds.values())


class TestTimeAbstraction:
    @pytest.mark.parametrize(("bound", "kinds"), [(ONE, KINDS), (TWO, TIMED)], ids=["one", "two"])
    def test_the_same_states_and_edges_with_and_without_it(self, bound, kinds):
        """R-EXPLORE-3, R-EXPLORE-5: the states with exact times map onto the states with ages."""
        reduced = explore(bound, symmetry=False, kinds=kinds, record_graph=True)
        exact = explore(
            attrs.evolve(bound, max_ticks=horizon(reduced)),
            time_abstraction=False,
            symmetry=False,
            kinds=kinds,
            record_graph=True,
        )
        reductions = Reductions.of(bound, symmetry=False)
        states, edges = graph_through(exact, reductions)
        assert set(reduced.graph) == states
        assert own_edges(reduced) == edges
        assert reduced.coverage.keys() == exact.coverage.keys()
        assert exact.states > 5 * reduced.states  # and it is worth having

    def test_worlds_shifted_in_time_are_one_state(self):
        """R-EXPLORE-3: a tick of an idle system, and ages past every cap, change nothing."""
        reductions = Reductions.of(ONE)
        world = initial_world(ONE)
        for action in (Action("issue"), Action("register", "w1"), Action("launch", "w1")):
            world = apply(world, action, ONE).world
        later = world
        for _ in range(5):
            later = apply(later, Action("tick"), ONE).world
        much_later = apply(later, Action("tick"), ONE).world
        assert state_key(world, reductions) != state_key(later, reductions)
        assert state_key(later, reductions) == state_key(much_later, reductions)
        exact = Reductions.of(ONE, time=False)
        assert state_key(later, exact) != state_key(much_later, exact)


class TestSymmetry:
    def test_the_same_states_and_edges_with_and_without_it(self):
        """R-EXPLORE-4, R-EXPLORE-5: relabelling ids canonically loses no state and no edge."""
        reduced = explore(TWO, record_graph=True)
        plain = explore(TWO, symmetry=False, record_graph=True)
        states, edges = graph_through(plain, Reductions.of(TWO))
        assert set(reduced.graph) == states
        assert own_edges(reduced) == edges
        assert reduced.coverage.keys() == plain.coverage.keys()
        assert plain.states > reduced.states

    def test_renamed_worlds_are_one_state_and_names_follow_the_structure(self):
        """R-EXPLORE-4: two roots registered in either order are one state; names are canonical."""
        reductions = Reductions.of(TWO)
        world = initial_world(TWO)
        for action in (Action("issue"), Action("issue")):
            world = apply(world, action, TWO).world
        first = apply(world, Action("register", "w1"), TWO).world
        second = apply(world, Action("register", "w2"), TWO).world
        assert state_key(first, reductions) == state_key(second, reductions)
        assert labelling(first, reductions)["w1"] == labelling(second, reductions)["w2"]
        plain = Reductions.of(TWO, symmetry=False)
        assert state_key(first, plain) != state_key(second, plain)


class TestBrokenCopiesUnderEveryReduction:
    @pytest.mark.parametrize(
        ("transitions", "check", "length"),
        [
            (KILL_SWITCH_SURVIVOR, "INV-KILL-SWITCH", 4),
            (QUARANTINED_HEARTBEAT, "INV-QUARANTINE", 4),
            (IGNORES_COOLDOWN, "INV-COOLDOWN", 6),
        ],
        ids=["kill-switch", "quarantine", "cooldown"],
    )
    def test_the_same_shortest_counterexample_with_and_without_each(
        self, transitions, check, length
    ):
        """R-EXPLORE-5: each reduction finds the same failure at the same least depth."""
        bound = attrs.evolve(TWO, max_replicas=3, max_issued=3, max_ticks=3)
        for time_abstraction, symmetry in ((True, True), (True, False), (False, False)):
            result = explore(
                bound,
                time_abstraction=time_abstraction,
                symmetry=symmetry,
                transitions=transitions,
            )
            counterexample = result.counterexample
            assert (check, length) == (counterexample.check, len(counterexample.actions)), (
                time_abstraction,
                symmetry,
            )
