"""The transition tour: every edge of the explored graph, driven through an adapter."""

from __future__ import annotations

import pytest

from replication.conformance.adapters.adapter import FacadeImplementation, ReferenceImplementation
from replication.conformance.adapters.preflight import SetupError, load_adapter
from replication.conformance.sequential.witnesses import required_for_kit
from replication.explore import Bound
from replication.explore.coverage import driven, vocabulary
from replication.explore.report import render_tour, tour_json
from replication.explore.tour import (
    FULL_REGISTRY,
    FULL_REGISTRY_KINDS,
    TOUR_BOUND,
    plan_paths,
    reference_graph,
    tour,
    tour_kinds,
)
from tests import toy_implementation as toys
from tests import unruly_adapters as unruly

#: A smaller graph for the tours that must take every edge.
SMALL = Bound(
    max_depth=1, max_replicas=2, cooldown=2, heartbeat_timeout=0, expiration=None, max_issued=1
)


@pytest.fixture(scope="module")
def graph():
    """The reference graph of the tour bound in the whole adapter vocabulary (explored once)."""
    return reference_graph(TOUR_BOUND)


@pytest.fixture(scope="module")
def full_registry():
    """The graph the tour drives after the tour bound's: a third manifest, a full registry."""
    return reference_graph(
        FULL_REGISTRY, tuple(kind for kind in tour_kinds() if kind in FULL_REGISTRY_KINDS)
    )


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
            (toys.QuotaCheckedAtIssueOnly, "decision", "register_worker"),
            (toys.CooldownEndsLate, "decision", "issue_manifest"),
            (toys.ReapsAtTheBoundary, "observation", "reap_stale_workers"),
            (toys.ExpiresAtTheBoundary, "observation", "expire_workers"),
            (toys.SkewBoundaryRefused, "reason", "register_worker"),
        ],
        ids=lambda value: getattr(value, "__name__", str(value)),
    )
    def test_each_faulty_implementation_is_caught(self, graph, factory, kind, action):
        """R-EXPLORE-13: the tour finds each fault, with the path that leads to it: a time rule
        off by one at its boundary instant and a quota not checked at registration included."""
        result = tour(factory, explored=graph)
        assert result.verdict == "NOT CONFORMANT"
        divergence = result.divergence
        assert (kind, action) == (divergence.failure.kind, divergence.failure.action)
        assert divergence.steps == result.steps
        assert divergence.actions[0].kind.startswith("issue")


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
        gaps = load_adapter(toys.WithoutQuarantine).gaps
        assert not {"quarantine", "release"} & set(tour_kinds(gaps))
        result = tour(toys.WithoutQuarantine, SMALL)
        assert result.verdict == "CONFORMANT"
        assert not {"quarantine", "release"} & set(result.exploration.kinds)

    def test_a_graph_explored_for_another_vocabulary_is_refused(self, graph):
        with pytest.raises(ValueError, match="vocabulary"):
            tour(toys.WithoutQuarantine, explored=graph)

    def test_unknown_gaps_are_refused(self):
        """R-EXPLORE-13: the kit's preflight loads the adapter, and refuses unknown gaps."""

        class Flying(ReferenceImplementation):
            gaps = frozenset({"fly"})

        with pytest.raises(SetupError, match="gaps may only name"):
            tour(Flying, SMALL)
        with pytest.raises(ValueError, match="gaps may only name"):
            tour_kinds({"fly"})


class TestCoverage:
    """R-EXPLORE-15: a tour says which outcomes of the adapter's vocabulary it drove."""

    def test_the_tour_bound_drives_every_reason_code_the_kits_witnesses_name(
        self, graph, full_registry
    ):
        """Every outcome but three the tour cannot name, a quota refused at registration too."""
        outcomes = frozenset()
        for part in (graph, full_registry):
            every_edge = [(s, n) for s, edges in part.graph.items() for n in range(len(edges))]
            outcomes |= driven(part.graph, every_edge)
        assert ("register_worker", "quota") in outcomes
        assert ("register_worker", "cooldown") in outcomes
        codes = {outcome for _, outcome in outcomes}
        named = {n.removeprefix("denied: ") for n in required_for_kit() if n.startswith("denied: ")}
        assert named <= codes
        assert sorted(vocabulary(graph.kinds) - outcomes) == [
            ("deregister_worker", "unknown_worker"),
            ("quarantine_worker", "unknown_worker"),
            ("release_worker", "unknown_worker"),
        ]

    def test_the_default_tour_drives_every_outcome_a_tour_can_name(self):
        """The tour bound, then a full registry on a third manifest: one tour, one coverage
        report, only the three outcomes no tour names left undriven."""
        result = tour(ReferenceImplementation)
        assert result.verdict == "CONFORMANT"
        assert result.supplement is not None
        assert (result.supplement.bound, result.supplement.complete) == (FULL_REGISTRY, True)
        assert result.covered == result.edges
        assert list(result.not_driven) == [
            "quarantine denied unknown_worker",
            "release denied unknown_worker",
            "deregister denied unknown_worker",
        ]
        text = render_tour(result)
        assert "  then a full registry: 3 manifests, actions issue, register, " in text
        assert text.splitlines()[-1].startswith(
            "CONFORMANT on the tour bound; not driven: quarantine denied unknown_worker, "
        )
        assert tour_json(result)["supplement"]["reference_states"] == result.supplement.states

    def test_a_tour_is_conformant_only_on_what_it_drove(self):
        """The verdict line lists what the bound never drove; the report says what would."""
        result = tour(toys.ToyImplementation, SMALL)
        assert result.verdict == "CONFORMANT"
        assert result.not_driven["register denied quota"] == (
            "--bound small (more manifests than places (max_issued > max_replicas))"
        )
        text = render_tour(result)
        verdict = text.splitlines()[-1]
        assert verdict.startswith("CONFORMANT on the tour bound; not driven: ")
        assert "register denied quota" in verdict
        assert "issue denied quota" in verdict
        assert "  register denied quota: --bound small (more manifests than places" in text
        assert tour_json(result)["not_driven"] == result.not_driven


#: The smallest bound with a kill, a heartbeat and a second path: the unruly adapters'.
ONE = Bound(
    max_depth=0, max_replicas=1, cooldown=1, heartbeat_timeout=0, expiration=None, max_issued=1
)


class TestUnrulyImplementations:
    """R-EXPLORE-13: whatever the adapter does, the verdict is the implementation's."""

    @pytest.mark.parametrize(
        ("factory", "kind", "action", "got"),
        [
            (unruly.CrashesOnRegister, "crash", "register_worker", "raised KeyError: 'boom'"),
            (unruly.ExitsOnKill, "crash", "kill_worker", "kill('w1') raised SystemExit: 0"),
            (unruly.InterruptsOnRegister, "crash", "register_worker", "raised KeyboardInterrupt"),
            (unruly.IssuesAString, "protocol", "issue_manifest", "a protocol violation"),
            (unruly.ObservesNothingLater, "protocol", "register_worker", "a protocol violation"),
            (unruly.DeniesWithoutACode, "protocol", "register_worker", "a protocol violation"),
            (unruly.StartFailsLater, "crash", "start", "raised RuntimeError: start failed"),
            (unruly.AbortsOnHeartbeat, "crash", "heartbeat", "heartbeat('w1') raised Abort: w1"),
            (unruly.DeniesWhenObserved, "crash", "register_worker", "observe() raised Denied"),
        ],
        ids=lambda value: getattr(value, "__name__", None),
    )
    def test_a_misbehaving_adapter_is_not_conformant(self, factory, kind, action, got):
        """A crash, an exit, a wrong return type, a failing start(): a divergence, with its path."""
        result = tour(factory, ONE)
        assert result.verdict == "NOT CONFORMANT"
        failure = result.divergence.failure
        assert (kind, action) == (failure.kind, failure.action)
        assert got in failure.got
        if action == "start":
            assert result.divergence.actions == ()
            assert result.divergence.path == 2
        else:
            assert str(result.divergence.actions[-1]).startswith(action.split("_")[0])

    def test_a_crash_is_located_in_the_adapter(self):
        """R-EXPLORE-13: the report points at the adapter's own line, as the kit's does."""
        failure = tour(unruly.CrashesOnRegister, ONE).divergence.failure
        assert failure.details[0].startswith("raised at tests/unruly_adapters.py:")
        assert failure.details[1].strip() == 'raise KeyError("boom")'

    def test_a_hang_is_a_timeout_divergence(self):
        """R-EXPLORE-13: every call runs under the kit's per-call time limit."""
        result = tour(unruly.HangsInKill, ONE, timeout=0.2)
        assert result.verdict == "NOT CONFORMANT"
        failure = result.divergence.failure
        assert (failure.kind, failure.action) == ("timeout", "kill_worker")
        assert failure.details == ["kill('w1') did not return within 0.2 s (--timeout)"]

    def test_max_time_stops_the_tour_inconclusive(self):
        """R-EXPLORE-13: --max-time bounds the exploration and the tour; the verdict says so."""
        result = tour(FacadeImplementation, SMALL, max_seconds=0.001)
        assert result.verdict == "INCOMPLETE"
        assert result.stopped == "--max-time (0.001 s)"
        assert (
            render_tour(result)
            .splitlines()[-1]
            .startswith("INCOMPLETE (stopped by --max-time (0.001 s)): ")
        )

    def test_an_adapter_before_deregister_is_toured_without_it(self):
        """R-EXPLORE-13, R-KIT-4: actions not provided are gaps, and the report says so."""
        result = tour(unruly.BeforeDeregister, ONE)
        assert result.verdict == "CONFORMANT"
        assert {"deregister", "expire"} <= result.not_provided
        assert not {"deregister", "expire"} & set(result.exploration.kinds)
        report = render_tour(result)
        assert "; not provided: deregister, expire" in report
        assert "(left out: not provided deregister, expire" in report.splitlines()[-1]

    def test_gaps_and_unreported_fields_are_reported(self):
        """R-EXPLORE-13, R-KIT-4: a conformant tour says what it left out, in its verdict line."""

        class Sparse(toys.ToyImplementation):
            gaps = frozenset({"kill_switch", "quarantine", "release"})
            unreported = frozenset({"manifest"})

        result = tour(Sparse, ONE)
        assert result.verdict == "CONFORMANT"
        lines = render_tour(result).splitlines()
        gaps = "kill_switch, quarantine, release"
        assert f"  declared gaps: {gaps} (their actions are not in the graph)" in lines
        assert "  not reported (declared): manifest" in lines
        assert lines[-1].startswith("CONFORMANT on the tour bound; not driven: ")
        assert (
            " (left out: declared gaps kill_switch, quarantine, release; not reported manifest): "
            in lines[-1]
        )
        data = tour_json(result)
        assert (data["gaps"], data["unreported"]) == (["kill_switch", "quarantine", "release"],
                                                      ["manifest"])  # fmt: skip

    def test_an_adapter_that_signs_is_refused(self):
        """R-EXPLORE-13: the tour's manifests are signed with the reference's key."""
        with pytest.raises(SetupError, match="signs with its own scheme"):
            tour(toys.HmacSigning, ONE)
