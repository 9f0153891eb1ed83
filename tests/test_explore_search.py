"""The explorer's search: exhaustive, breadth first, every action and check, serial or parallel."""

from __future__ import annotations

import os
import signal
import threading
import time

import attrs
import pytest

from replication.errors import BadSignatureError, ReasonCode
from replication.explore import BOUNDS, DEFAULT, KINDS, Bound, explore
from replication.explore import search as search_module
from replication.explore.actions import HOSTILE_KINDS, NORMAL, initial_world
from replication.explore.bounds import MAX_TICKS
from replication.explore.crypto import KEY, VERIFICATION_CACHED, VERIFYING_KEY, cache_sizes
from replication.explore.expand import ALLOWED
from replication.model import Manifest
from replication.signing import SigningKey, sign_manifest, verify_manifest
from tests.broken_transitions import (
    EXITING_HEARTBEAT,
    KILL_SWITCH_SURVIVOR,
    QUARANTINED_HEARTBEAT,
    STATELESS_HEARTBEAT,
)

#: One worker at most: 20 states, explored in a blink.
ONE = Bound(
    max_depth=0, max_replicas=1, cooldown=1, heartbeat_timeout=1, expiration=None, max_issued=1
)
#: Two workers, a parent and a child, a cooldown longer than the timeout.
TWO = Bound(
    max_depth=1, max_replicas=2, cooldown=2, heartbeat_timeout=0, expiration=None, max_issued=2
)


@pytest.fixture(scope="module")
def tiny():
    return explore(BOUNDS["tiny"])


def _interrupted_part(part):
    """A worker's part, as Ctrl-C at a terminal meets it: SIGINT, then (ignored) work."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(2)
    return _EXPAND_PART(part)


_EXPAND_PART = search_module._expand_part


def counts(exploration, kind):
    return sum(n for (k, _), n in exploration.coverage.items() if k == kind)


class TestExhaustiveSearch:
    def test_the_tiny_bound_is_exhausted_and_every_check_holds(self, tiny):
        """R-EXPLORE-7, R-EXPLORE-14: every invariant holds in every state and step of `tiny`."""
        assert tiny.verdict == "PASS"
        assert tiny.complete
        assert tiny.violated == frozenset()
        assert (tiny.states, tiny.transitions, tiny.diameter) == (1806, 54520, 13)

    def test_every_reason_code_the_bound_allows_is_reached(self, tiny):
        """R-EXPLORE-10: every code but the facade's `expired` is reached in `tiny`."""
        assert set(ReasonCode) - {ReasonCode.EXPIRED} == tiny.expected_codes
        assert tiny.expected_codes == tiny.reached_codes
        assert tiny.missing_codes == ()
        assert tiny.never_allowed == ()

    def test_every_action_is_tried_in_every_state(self, tiny):
        """R-EXPLORE-2: the moves on the whole system are tried once in each state."""
        for kind in ("reap", "expire", "kill_switch", "tick", "register_future"):
            assert tiny.states == counts(tiny, kind), kind
        # Issues are tried in every state, with a root and each registered parent.
        assert counts(tiny, "issue") >= tiny.states

    def test_hostile_moves_are_always_refused(self, tiny):
        """R-EXPLORE-2, R-EXPLORE-7: no hostile move is ever allowed by the core."""
        for kind in HOSTILE_KINDS:
            assert tiny.coverage.get((kind, ALLOWED), 0) == 0, kind
            assert counts(tiny, kind) > 0, kind

    def test_the_search_is_breadth_first(self, tiny):
        """R-EXPLORE-8: states are counted depth by depth, from the initial state alone."""
        assert tiny.levels[0] == 1
        assert tiny.states == sum(tiny.levels)
        assert tiny.diameter == len(tiny.levels) - 1

    def test_the_witnesses_are_reached(self, tiny):
        """The kit's situations (Stateright's `sometimes` properties) occur within the bound."""
        for witness in (
            "kill switch engaged with at least two containers running",
            "a reap removed a worker with a running container",
            "the registry filled to max_replicas (>= 2)",
            "denied: quota",
        ):
            assert tiny.witnesses.get(witness, 0) > 0, witness

    def test_the_initial_world_is_empty_and_deterministic(self):
        """R-EXPLORE-1: the same bound starts from the same world, with nothing in it."""
        first, second = initial_world(DEFAULT), initial_world(DEFAULT)
        assert first.now == second.now
        assert first.manifests == ()
        assert first.state.controller.registry == second.state.controller.registry


class TestBrokenTransitions:
    def test_a_broken_kill_switch_is_found_at_the_least_depth(self):
        """R-EXPLORE-8: the counterexample is the first failure in breadth-first order."""
        result = explore(ONE, transitions=KILL_SWITCH_SURVIVOR)
        assert result.verdict == "FAIL"
        counterexample = result.counterexample
        assert counterexample.check == "INV-KILL-SWITCH"
        assert [str(action) for action in counterexample.actions] == [
            "issue",
            "register(w1)",
            "launch(w1)",
            "kill_switch",
        ]
        assert {"INV-NO-ORPHANS", "INV-AUDIT"} <= set(counterexample.others)
        assert not result.complete

    @pytest.mark.parametrize("broken", [EXITING_HEARTBEAT, STATELESS_HEARTBEAT],
                             ids=["exits", "stateless"])  # fmt: skip
    def test_a_transition_that_exits_or_returns_no_outcome_is_a_crash(self, broken):
        """R-EXPLORE-7: whatever the explored code raises or returns, it is a CRASH finding."""
        result = explore(ONE, transitions=broken, processes=1)
        assert result.verdict == "FAIL"
        assert result.counterexample.check == "CRASH"
        assert [str(action) for action in result.counterexample.actions][-1] == "heartbeat(w1)"

    def test_going_on_after_a_violation_collects_every_failed_check(self):
        """R-EXPLORE-8: unless asked to stop, the search goes on and reports every failed check."""
        result = explore(ONE, transitions=QUARANTINED_HEARTBEAT, stop_at_violation=False)
        assert result.stopped is None
        assert {"INV-QUARANTINE"} == result.violated
        assert result.counterexample.check == "INV-QUARANTINE"


class TestParallel:
    @pytest.mark.parametrize("transitions", [None, KILL_SWITCH_SURVIVOR], ids=["core", "broken"])
    def test_parallel_exploration_finds_what_serial_finds(self, monkeypatch, transitions):
        """R-EXPLORE-11: two processes find the same states, coverage, witnesses and trace."""
        monkeypatch.setattr(search_module, "PARALLEL_THRESHOLD", 1)
        options = {} if transitions is None else {"transitions": transitions}
        serial = explore(TWO, processes=1, **options)
        parallel = explore(TWO, processes=2, **options)
        assert parallel.processes == 2
        for field in ("states", "transitions", "levels", "coverage", "witnesses", "violated"):
            assert getattr(serial, field) == getattr(parallel, field), field
        assert serial.counterexample == parallel.counterexample

    def test_ctrl_c_stops_the_workers_without_a_word(self, monkeypatch, capfd, ctrl_c_raises):
        """R-EXPLORE-12: Ctrl-C reaches every worker; they ignore it, the parent stops them.

        Each worker is sent SIGINT as a terminal's Ctrl-C would, and so is the
        parent a moment later: the search ends ``INTERRUPTED`` with what it found
        so far (the command prints it and exits 130), and no worker prints a
        traceback. Each part sleeps 2 s, so the level outlasts the 0.5 s however
        busy the machine is.
        """
        monkeypatch.setattr(search_module, "PARALLEL_THRESHOLD", 1)
        monkeypatch.setattr(search_module, "_expand_part", _interrupted_part)
        ctrl_c = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        ctrl_c.start()
        try:
            result = explore(ONE, processes=2)
        finally:
            ctrl_c.cancel()
        assert (result.verdict, result.stopped) == ("INTERRUPTED", "Ctrl-C")
        assert "Traceback" not in capfd.readouterr().err


class TestLimits:
    def test_max_states_stops_the_search_as_incomplete(self):
        """R-EXPLORE-12: a search stopped by --max-states is INCOMPLETE, not PASS."""
        result = explore(TWO, max_states=50)
        assert result.verdict == "INCOMPLETE"
        assert result.states == 50
        assert "max-states" in result.stopped

    def test_max_seconds_stops_the_search_as_incomplete(self):
        """R-EXPLORE-12: a search stopped by --max-time is INCOMPLETE, not PASS."""
        result = explore(TWO, max_seconds=0.0)
        assert result.verdict == "INCOMPLETE"
        assert "max-time" in result.stopped

    def test_a_vocabulary_missing_an_action_leaves_its_codes_unreached(self):
        """R-EXPLORE-10: a reachable code never reached is reported, and the run is INCOMPLETE."""
        result = explore(ONE, kinds=[kind for kind in KINDS if kind != "enforce"])
        assert result.missing_codes == ("not_running",)
        assert result.verdict == "INCOMPLETE"

    def test_without_the_time_abstraction_a_clock_horizon_is_required(self):
        """R-EXPLORE-3: time unabstracted is infinite, so max_ticks must bound it."""
        with pytest.raises(ValueError, match="max_ticks"):
            explore(ONE, time_abstraction=False)

    def test_unknown_action_kinds_are_refused(self):
        with pytest.raises(ValueError, match="unknown action kinds"):
            explore(ONE, kinds=["issue", "fly"])


class TestBounds:
    def test_the_default_bound_allows_every_core_reason_code(self):
        """R-EXPLORE-10: the default bound allows all 19 codes the core produces."""
        assert set(ReasonCode) - {ReasonCode.EXPIRED} == DEFAULT.reachable_codes()

    @pytest.mark.parametrize(
        ("changes", "ruled_out"),
        [
            ({"stop_on_external_network": False}, {"stop_condition"}),
            ({"max_replicas": 4}, {"quota"}),
            ({"max_depth": 3}, {"depth_exceeded"}),
            ({"cooldown": 0}, {"cooldown"}),
            (
                {"max_depth": 0, "max_replicas": 1, "max_issued": 1},
                {"cooldown", "parent_quarantined"},
            ),
        ],
    )
    def test_a_bound_rules_out_the_codes_whose_preconditions_it_lacks(self, changes, ruled_out):
        """R-EXPLORE-10: each rule of the allowed codes, one at a time."""
        allowed = attrs.evolve(DEFAULT, **changes).reachable_codes()
        assert ruled_out == {code.value for code in DEFAULT.reachable_codes() - allowed}

    def test_a_bound_without_workers_allows_only_the_codes_of_empty_systems(self):
        """R-EXPLORE-10: with no manifest issuable, only four codes remain."""
        codes = attrs.evolve(DEFAULT, max_issued=0).reachable_codes()
        assert {"kill_switch", "parent_unknown", "depth_mismatch", "issued_in_future"} == {
            code.value for code in codes
        }

    def test_bounds_refuse_negative_sizes(self):
        with pytest.raises(ValueError, match="max_issued must be an int >= 0"):
            Bound(max_issued=-1)
        with pytest.raises(ValueError, match="expiration must be None or an int from 1 to "):
            Bound(expiration=0)
        with pytest.raises(ValueError, match="max_replicas must be an int >= 1"):
            Bound(max_replicas=0)

    @pytest.mark.parametrize("field", ["cooldown", "heartbeat_timeout", "expiration", "clock_skew",
                                       "max_ticks"])  # fmt: skip
    def test_bounds_refuse_durations_the_clock_cannot_hold(self, field):
        """R-EXPLORE-1: a duration of more than MAX_TICKS ticks is refused, naming it."""
        assert attrs.evolve(DEFAULT, **{field: MAX_TICKS})
        with pytest.raises(ValueError, match=f"{field} must be .*an int from [01] to 1000000"):
            attrs.evolve(DEFAULT, **{field: 99_999_999_999_999})


class TestCachedKey:
    def test_the_caches_are_in_place_and_used(self, tiny):
        """R-EXPLORE-6: the explorer's key memoises, and exploring fills both caches."""
        assert VERIFICATION_CACHED
        assert KEY.verifying_key is VERIFYING_KEY
        signatures, verdicts = cache_sizes()
        assert signatures > 0
        assert verdicts > 0

    def test_cached_signatures_are_the_plain_key_signatures(self):
        """R-EXPLORE-6: the cached key signs exactly what the plain key signs."""
        plain = SigningKey.from_seed(bytes(range(32)))
        manifest = Manifest("w1", None, 0, {}, initial_world(ONE).now, NORMAL)
        assert sign_manifest(manifest, plain).signature == sign_manifest(manifest, KEY).signature
        assert sign_manifest(manifest, KEY).signature == sign_manifest(manifest, KEY).signature
        assert plain.verifying_key == KEY.verifying_key

    def test_cached_verdicts_are_the_plain_verdicts(self):
        """R-EXPLORE-6: a good signature verifies and a tampered manifest fails, cached or not."""
        manifest = sign_manifest(Manifest("w2", None, 0, {}, initial_world(ONE).now, NORMAL), KEY)
        for _ in range(2):
            verify_manifest(manifest, KEY.verifying_key)
        forged = attrs.evolve(manifest, depth=1)
        for _ in range(2):
            with pytest.raises(BadSignatureError, match="does not verify"):
                verify_manifest(forged, KEY.verifying_key)
