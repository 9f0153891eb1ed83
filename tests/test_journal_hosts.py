"""Several hosts, one policy: controllers in network namespaces sharing a PostgreSQL journal.

Each host is a real process in a network namespace of its own, with its own
address on a bridge this module makes (tests/netns_support.py), talking to a
real PostgreSQL server over TCP; the only address it can reach is the bridge's.
A partition takes a host's link down. Every wait is bounded; what each host
acknowledged is checked against the journal independently (the head it
reported after each call must be a row of the journal, with that hash).
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from replication.journal import verify_journal
from replication.journal.stores.cluster import Cluster, find_binaries
from replication.journal.verify import reading
from tests.netns_support import Network, NetworkUnavailable
from tests.postgres_support import admin, fresh_schema

#: Bound on any answer from a host, in seconds.
PATIENCE = 60
ROOT = Path(__file__).resolve().parent.parent
HOSTS = 4


@pytest.fixture(scope="module")
def network():
    if find_binaries() is None:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    try:
        made = Network(HOSTS)
        made.create()
    except NetworkUnavailable as error:
        pytest.skip(f"cannot make network namespaces here: {error}")
    try:
        yield made
    finally:
        made.remove()


@pytest.fixture(scope="module")
def server(network):
    """A cluster listening on the bridge too, letting the hosts' subnet in."""
    with Cluster(
        extra_listen=(network.server_address,), trusted_networks=(str(network.subnet),)
    ) as cluster:
        yield cluster


class Host:
    """A controller process inside one namespace, spoken to in JSON lines."""

    def __init__(self, network: Network, index: int, url: str, lock_timeout: float = 10) -> None:
        self.index = index
        self.process = subprocess.Popen(  # noqa: S603 - this interpreter, our agent
            network.command(
                index, sys.executable, "-m", "tests.host_agent", url, str(lock_timeout)
            ),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            text=True,
        )

    def wait_ready(self) -> None:
        """Return once the host's controller has opened the journal."""
        ready = self.read()
        assert ready.get("ready"), ready

    def send(self, **command: object) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(command) + "\n")
        self.process.stdin.flush()

    def read(self, patience: float = PATIENCE) -> dict:
        assert self.process.stdout is not None
        ready, _, _ = select.select([self.process.stdout], [], [], patience)
        if not ready:
            pytest.fail(f"host {self.index} said nothing within {patience}s")
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(5)
            stderr = self.process.stderr.read() if self.process.stderr else ""
            pytest.fail(f"host {self.index} ended ({self.process.returncode}): {stderr[-2000:]}")
        return json.loads(line)

    def ask(self, **command: object) -> dict:
        self.send(**command)
        return self.read()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.send(op="quit")
                self.process.wait(10)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait(10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()


@pytest.fixture
def hosts(network, server):
    """Start hosts on a fresh journal; every one is stopped at the end."""
    started: list[Host] = []
    url = fresh_schema(server).replace("127.0.0.1", network.server_address)

    def start(count: int = HOSTS, lock_timeout: float = 10) -> list[Host]:
        # All start at once, then each is waited for: their interpreters start side by side.
        started.extend(Host(network, index, url, lock_timeout) for index in range(count))
        for host in started:
            host.wait_ready()
        return started

    start.url = url
    yield start
    for host in started:
        host.close()


def journal_rows(url: str) -> dict[int, tuple[str, dict]]:
    from replication.journal.replay import load_json

    with reading(url) as (_, rows):
        return {row.sequence: (row.hash, load_json(row.body)) for row in rows}


def assert_acknowledged_in_journal(acks, url) -> None:
    """Every head a host reported after a call returned is a row of the journal, that hash."""
    rows = journal_rows(url)
    missing = [ack for ack in acks if rows.get(ack[0], (None,))[0] != ack[1]]
    assert missing == [], f"acknowledged but not in the journal: {missing[:5]}"


class TestRace:
    # Spec: R-JOURNAL-6, R-STORE-2.
    def test_four_hosts_racing_fifty_registrations_admit_exactly_the_quota(self, hosts):
        """4 hosts x 50 registrations against max_replicas=10, sent to all at once: exactly
        10 admitted in all, every admission in the journal, which verifies."""
        started = hosts()
        for host in started:
            host.send(op="race", prefix=f"h{host.index}-", count=50)
        outcomes = [outcome for host in started for outcome in host.read()["outcomes"]]
        assert [o for o in outcomes if "error" in o] == []
        admitted = [o for o in outcomes if o["decision"] == "allowed"]
        assert len(admitted) == 10
        assert {o["reason"] for o in outcomes if o["decision"] == "denied"} == {"quota"}
        assert_acknowledged_in_journal([o["ack"] for o in outcomes], hosts.url)
        verified = verify_journal(hosts.url)
        assert (verified.head.sequence, len(verified.state.registry)) == (200, 10)


class TestKillSwitch:
    # Spec: R-JOURNAL-6, R-STORE-2.
    def test_a_kill_switch_on_one_host_stops_the_launches_of_every_other(self, hosts):
        """Three hosts launch and release as fast as they can; a fourth engages the kill
        switch: each of the three stops on a kill_switch refusal, and no launch is allowed
        in the journal after the switch's row."""
        started = hosts()
        for host in started[1:]:
            host.send(op="grow", prefix=f"g{host.index}-")
        time.sleep(0.5)
        switched = started[0].ask(op="kill_switch")
        assert switched["decision"] == "allowed", switched
        stops = [host.read() for host in started[1:]]
        assert [stop["stopped"].get("reason") for stop in stops] == ["kill_switch"] * 3
        assert_acknowledged_in_journal(
            [switched["ack"]] + [ack for stop in stops for ack in stop["acks"]], hosts.url
        )
        rows = journal_rows(hosts.url)
        after = [
            body
            for sequence, (_, body) in rows.items()
            if sequence > switched["ack"][0] and body["outcome"]["decision"] == "allowed"
        ]
        assert after == []
        state = verify_journal(hosts.url).state
        assert state.controller.kill_switch_engaged
        assert all(container.status != "running" for container in state.containers.values())


class TestCrash:
    # Spec: R-JOURNAL-5, R-STORE-3.
    def test_a_host_killed_mid_decision_loses_no_acknowledged_row_and_blocks_no_one(self, hosts):
        """A host registering and releasing as fast as it can is SIGKILLed: every row it
        acknowledged is in the journal, the journal verifies, and another host decides at
        once (the server ended the dead host's transaction and its lock)."""
        started = hosts(2)
        victim, survivor = started
        victim.send(op="churn", prefix="v")
        acks = [victim.read()["ack"] for _ in range(30)]
        os.kill(victim.process.pid, signal.SIGKILL)
        victim.process.wait(PATIENCE)
        assert victim.process.stdout is not None
        acks += [json.loads(line)["ack"] for line in victim.process.stdout.read().splitlines()]
        began = time.monotonic()
        answer = survivor.ask(op="register", id="after")
        assert answer["decision"] == "allowed", answer
        assert time.monotonic() - began < PATIENCE
        assert_acknowledged_in_journal(acks, hosts.url)
        assert "after" in verify_journal(hosts.url).state.registry


class TestPartition:
    # Spec: R-STORE-3, R-JOURNAL-6.
    def test_a_partitioned_host_fails_closed_and_after_healing_obeys_the_switch(
        self, hosts, network
    ):
        """Host 0 cut off: its next action fails with a JournalError (never allowed); host 1
        engages the kill switch meanwhile; healed, host 0's next action is refused by it."""
        cut, other = hosts(2)
        assert cut.ask(op="register", id="a")["decision"] == "allowed"
        network.partition(0)
        try:
            failed = cut.ask(op="register", id="b")
            assert failed.get("error") == "JournalUnavailableError", failed
            assert other.ask(op="kill_switch")["decision"] == "allowed"
        finally:
            network.heal(0)
        refused = cut.ask(op="register", id="c")
        assert (refused.get("decision"), refused.get("reason")) == ("denied", "kill_switch")
        assert "b" not in verify_journal(hosts.url).state.registry

    # Spec: R-STORE-3.
    def test_a_host_cut_off_while_holding_the_lock_holds_up_the_others_a_bounded_time(
        self, hosts, network, server
    ):
        """Host 0 (lock_timeout 2 s, so the server ends its transaction after 2 s idle) is
        cut off inside its write transaction: host 1 still decides, once the server ended
        host 0's session; healed, host 0's action has failed, not been acknowledged."""
        cut, other = hosts(2, lock_timeout=2)
        cut.send(op="register_slowly", id="slow", pause=1.0)
        assert cut.read().get("holding")
        time.sleep(0.3)  # inside the transaction, sleeping in the clock
        network.partition(0)
        try:
            answer = other.ask(op="register", id="other")
            assert answer["decision"] == "allowed", answer
            failed = cut.read()
        finally:
            network.heal(0)
        assert failed.get("error") == "JournalUnavailableError", failed
        registry = verify_journal(hosts.url).state.registry
        assert ("other" in registry, "slow" in registry) == (True, False)
        with admin(server) as connection:
            connection.execute("SELECT 1")
