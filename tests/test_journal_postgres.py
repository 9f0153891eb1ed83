"""The journal on PostgreSQL: the same format as on SQLite, and failures that fail closed.

Every test talks to a real server (tests/postgres_support.py starts one per test
process, and gives each test an empty schema of its own). Hosts in network
namespaces, racing and killed, are in tests/test_journal_hosts.py.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from replication import Controller, ManualClock
from replication.cli import main
from replication.errors import ReasonCode, ReplicationDenied
from replication.journal import (
    JournalCorruptError,
    JournalLockedError,
    JournalMismatchError,
    JournalUnavailableError,
    verify_journal,
)
from replication.journal.replay import load_json
from replication.journal.stores import display_location
from replication.journal.stores.postgres import PostgresStore
from replication.journal.stores.postgres_sql import key as lock_key
from replication.journal.verify import reading
from tests import journal_support
from tests.helpers import KEY, RESOURCES, T0, make_contract
from tests.journal_support import hand_signed
from tests.postgres_support import admin, fresh_schema
from tests.test_journal_speed import Decisions


@pytest.fixture
def opened():
    """Make journal-backed controllers; close every journal at the end."""
    yield from journal_support.controllers_opened()


def bodies(location) -> list[dict]:
    with reading(location) as (_, stored):
        return [load_json(row.body) for row in stored]


def program(controller: Controller) -> None:
    """A short history with growth, a denial of each kind it can reach, and the switch."""
    controller.register_worker(hand_signed("a"))
    controller.start_worker(hand_signed("b", "a", 1))
    with pytest.raises(ReplicationDenied):
        controller.register_worker(hand_signed("a"))  # a replay
    controller.heartbeat("a")
    controller.issue_manifest(None, None, {}, RESOURCES)
    controller.kill_switch()
    with pytest.raises(ReplicationDenied):
        controller.register_worker(hand_signed("c"))


def forget_chain(row: dict) -> dict:
    """A row without its link: two journals have two genesis hashes, hence two chains."""
    return {key: value for key, value in row.items() if key != "prev"}


class TestOneFormatTwoStores:
    # Spec: R-STORE-1, R-JOURNAL-2.
    def test_the_same_calls_write_the_same_rows_on_postgresql_as_on_sqlite(
        self, opened, pg_url, tmp_path
    ):
        """One program on an SQLite file and on a PostgreSQL schema: row for row the same
        bodies (but the link, which starts from each journal's own genesis), and each verifies
        to the same state."""
        on_sqlite = opened(tmp_path / "j.db", checkpoint_interval=3)
        on_postgres = opened(pg_url, checkpoint_interval=3)
        program(on_sqlite)
        program(on_postgres)
        expected = [forget_chain(row) for row in bodies(tmp_path / "j.db")]
        assert expected == [forget_chain(row) for row in bodies(pg_url)]
        verified = verify_journal(pg_url)
        assert verified.state == on_postgres.state == on_sqlite.state
        assert (verified.head.sequence, verified.checkpoints) == (7, 2)  # rows 3 and 6

    # Spec: R-STORE-1, R-JOURNAL-9.
    def test_a_controller_started_on_a_postgresql_journal_has_the_state_it_records(
        self, opened, pg_url
    ):
        first = opened(pg_url, checkpoint_interval=2)
        program(first)
        again = opened(pg_url)
        assert first.state == again.state
        assert first.journal.head == again.journal.head

    # Spec: R-JOURNAL-9.
    def test_a_postgresql_journal_of_another_contract_is_refused(self, opened, pg_url):
        opened(pg_url).register_worker(hand_signed("a"))
        with pytest.raises(JournalMismatchError) as refused:
            opened(pg_url, make_contract(max_replicas=2))
        assert refused.value.field == "contract"


class TestSharedPolicy:
    # Spec: R-JOURNAL-6, R-STORE-2.
    def test_a_kill_switch_engaged_through_one_controller_refuses_the_next_action_of_another(
        self, opened, pg_url
    ):
        one, other = opened(pg_url), opened(pg_url)
        one.register_worker(hand_signed("a"))
        other.kill_switch()
        with pytest.raises(ReplicationDenied) as refused:
            one.register_worker(hand_signed("b"))
        assert refused.value.reason == ReasonCode.KILL_SWITCH
        assert one.state == other.state == verify_journal(pg_url).state

    # Spec: R-JOURNAL-6, R-STORE-2.
    def test_the_quota_counts_what_every_controller_admitted(self, opened, pg_url):
        contract = make_contract(max_replicas=2, cooldown_seconds=0)
        one, other = opened(pg_url, contract), opened(pg_url, contract)
        one.register_worker(hand_signed("a"))
        other.register_worker(hand_signed("b"))
        with pytest.raises(ReplicationDenied) as refused:
            one.register_worker(hand_signed("c"))
        assert refused.value.reason == ReasonCode.QUOTA

    # Spec: R-JOURNAL-22, R-STORE-1.
    def test_catch_up_decides_another_hosts_grant_again_and_trusts_its_denial(
        self, opened, pg_url, monkeypatch
    ):
        """On PostgreSQL as on SQLite, a running controller's catch-up decides again the
        registration another controller admitted, not the one it denied (quota full), and
        reaches the same state."""
        contract = make_contract(max_replicas=2, cooldown_seconds=0)
        one, other = opened(pg_url, contract), opened(pg_url, contract)
        one.register_worker(hand_signed("a"))
        other.register_worker(hand_signed("b"))
        with pytest.raises(ReplicationDenied):
            other.register_worker(hand_signed("c"))
        decisions = Decisions(monkeypatch)
        one.heartbeat("a")
        assert decisions.actions == ["register_worker"]
        assert one.state == other.state == verify_journal(pg_url).state


class TestSession:
    # Spec: R-STORE-2, R-STORE-3.
    def test_every_commit_is_synchronous_and_every_wait_bounded_whatever_the_url_says(
        self, opened, pg_url
    ):
        """The URL asks for asynchronous commits: the journal's session commits synchronously
        anyway; with no timeouts set, idle-in-transaction and statement timeouts are its own
        (lock_timeout, six times it) and lock_timeout is the journal's."""
        location = f"{pg_url}%20-csynchronous_commit%3Doff"
        controller = opened(location, lock_timeout=1.5)
        controller.register_worker(hand_signed("a"))
        connection = controller.journal._store._connection
        settings = {
            name: connection.execute(f"SHOW {name}").fetchone()[0]
            for name in (
                "synchronous_commit",
                "lock_timeout",
                "idle_in_transaction_session_timeout",
                "statement_timeout",
            )
        }
        assert settings == {
            "synchronous_commit": "on",
            "lock_timeout": "1500ms",
            "idle_in_transaction_session_timeout": "1500ms",
            "statement_timeout": "9s",
        }


class TestFailClosed:
    def assert_unchanged_and_journaled(self, controller, before, location):
        assert controller.controller_state is before
        assert verify_journal(location).state == controller.state

    # Spec: R-STORE-3.
    def test_a_server_that_cannot_be_reached_fails_the_start_naming_the_connection(self):
        """Nothing listens on the port: the journal cannot open, and says it could not
        connect (with the URL's password withheld)."""
        with pytest.raises(JournalUnavailableError) as failed:
            Controller(make_contract(), KEY, journal="postgresql://me:hunter2@127.0.0.1:1/db")
        assert failed.value.code == "connection"
        assert failed.value.operation == "connect to the server"
        assert "hunter2" not in str(failed.value)

    # Spec: R-STORE-3, R-JOURNAL-5.
    def test_a_server_down_fails_the_action_and_once_it_is_back_the_chain_continues(
        self, opened, pg_url, postgres_cluster
    ):
        controller = opened(pg_url)
        controller.register_worker(hand_signed("a"))
        before = controller.controller_state
        postgres_cluster.stop()
        try:
            with pytest.raises(JournalUnavailableError) as failed:
                controller.register_worker(hand_signed("b"))
            assert failed.value.code == "connection"
            assert controller.controller_state is before
        finally:
            postgres_cluster.start()
        self.assert_unchanged_and_journaled(controller, before, pg_url)
        controller.register_worker(hand_signed("c"))
        assert {"a", "c"} == set(verify_journal(pg_url).state.registry)

    # Spec: R-STORE-3, R-JOURNAL-5.
    @pytest.mark.parametrize("cut", ["pg_terminate_backend", "restart"])
    def test_a_connection_cut_mid_transaction_fails_the_action_and_changes_nothing(
        self, opened, pg_url, postgres_cluster, cut
    ):
        """While the decision is made (the clock is read inside the write transaction), the
        backend is terminated, or the whole server restarted: the action fails naming what
        happened, nothing is stored or applied, and the next action reconnects."""
        clock = ManualClock(T0)
        controller = opened(pg_url, clock=clock)
        controller.register_worker(hand_signed("a"))
        before = controller.controller_state
        backend = controller.journal._store._connection.info.backend_pid

        def cutting() -> object:
            if cut == "restart":
                postgres_cluster.restart()
            else:
                with admin(postgres_cluster) as connection:
                    connection.execute("SELECT pg_terminate_backend(%s)", (backend,))
            return T0

        controller.clock = cutting
        with pytest.raises(JournalUnavailableError) as failed:
            controller.register_worker(hand_signed("b"))
        assert failed.value.code in {"57P01", "connection"}
        assert failed.value.operation == "append row 2"
        controller.clock = clock
        self.assert_unchanged_and_journaled(controller, before, pg_url)
        controller.register_worker(hand_signed("c"))
        assert {"a", "c"} == set(verify_journal(pg_url).state.registry)

    # Spec: R-STORE-3.
    def test_a_lock_held_beyond_the_timeout_fails_the_action_and_changes_nothing(
        self, opened, pg_url, postgres_cluster
    ):
        controller = opened(pg_url, lock_timeout=0.2)
        controller.register_worker(hand_signed("a"))
        before = controller.controller_state
        store = controller.journal._store
        with admin(postgres_cluster) as holder:
            holder.execute("SELECT pg_advisory_lock(%s)", (lock_key(store._namespace),))
            with pytest.raises(JournalLockedError) as locked:
                controller.register_worker(hand_signed("b"))
        assert (locked.value.code, locked.value.timeout) == ("55P03", 0.2)
        self.assert_unchanged_and_journaled(controller, before, pg_url)
        controller.register_worker(hand_signed("b"))

    # Spec: R-STORE-3.
    def test_a_statement_timeout_fails_the_action_and_changes_nothing(
        self, opened, pg_url, postgres_cluster
    ):
        """The URL sets a statement timeout of 300 ms (kept: the journal sets its own only
        when none is set); the tables are held by another session: the action fails naming
        the timeout (57014)."""
        location = f"{pg_url}%20-cstatement_timeout%3D300"
        controller = opened(location, lock_timeout=30)
        controller.register_worker(hand_signed("a"))
        before = controller.controller_state
        with admin(postgres_cluster) as holder, holder.transaction():
            schema = pg_url.rpartition("%3D")[2]
            holder.execute(f"LOCK TABLE {schema}.journal_rows IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(JournalUnavailableError) as failed:
                controller.register_worker(hand_signed("b"))
        assert failed.value.code == "57014"
        assert "statement timeout" in str(failed.value)
        self.assert_unchanged_and_journaled(controller, before, location)

    # Spec: R-STORE-3.
    def test_a_serialization_failure_is_a_journal_error_naming_it(self, pg_url):
        """The server answers 40001 (raised by the server itself, through the store's one
        path for every statement): JournalUnavailableError naming a serialization failure,
        and the connection is usable again."""
        store = PostgresStore(pg_url, lock_timeout=1)
        try:
            store.begin_read()
            with pytest.raises(JournalUnavailableError) as failed:
                store._execute(
                    "read the rows",
                    "DO $$ BEGIN RAISE EXCEPTION USING ERRCODE = '40001', "
                    "MESSAGE = 'could not serialize access'; END $$",
                )
            assert failed.value.code == "40001"
            assert "serialization failure" in str(failed.value)
            assert not store.in_transaction
            assert store._execute("check", "SELECT 1") == [(1,)]
        finally:
            store.close()

    # Spec: R-STORE-1, R-JOURNAL-1.
    def test_a_trigger_planted_on_the_rows_refuses_the_next_action(
        self, opened, pg_url, postgres_cluster
    ):
        """A trigger that would make acknowledged rows vanish: the writer checks the schema
        in every transaction, after locking it, and refuses naming the header."""
        controller = opened(pg_url)
        controller.register_worker(hand_signed("a"))
        before = controller.controller_state
        schema = pg_url.rpartition("%3D")[2]
        with admin(postgres_cluster) as connection:
            connection.execute(
                f"CREATE FUNCTION {schema}.vanish() RETURNS trigger LANGUAGE plpgsql "
                "AS $$ BEGIN RETURN NULL; END $$"
            )
            connection.execute(
                f"CREATE TRIGGER vanish BEFORE INSERT ON {schema}.journal_rows "
                f"FOR EACH ROW EXECUTE FUNCTION {schema}.vanish()"
            )
        with pytest.raises(JournalCorruptError) as refused:
            controller.register_worker(hand_signed("b"))
        assert refused.value.sequence == 0
        assert "trigger 'vanish'" in str(refused.value)
        assert controller.controller_state is before

    # Spec: R-STORE-1.
    def test_tables_named_like_a_journals_that_are_not_one_are_refused_and_left_alone(
        self, pg_url, postgres_cluster
    ):
        schema = pg_url.rpartition("%3D")[2]
        with admin(postgres_cluster) as connection:
            connection.execute(f"CREATE TABLE {schema}.journal_meta(name text)")
        with pytest.raises(JournalMismatchError) as refused:
            Controller(make_contract(), KEY, journal=pg_url)
        assert refused.value.field == "format"
        with admin(postgres_cluster) as connection:
            found = connection.execute(
                "SELECT count(*) FROM pg_tables WHERE schemaname = %s", (schema,)
            ).fetchone()
        assert found == (1,)


class TestLocation:
    # Spec: R-STORE-1.
    def test_a_password_never_appears_in_what_the_journal_shows(self):
        """The URL's password (in the authority or as a parameter) is withheld."""
        shown = display_location(
            "postgresql://me:hunter2@db.example:5432/j?password=x2&sslmode=require"
        )
        assert shown == "postgresql://me:***@db.example:5432/j?password=***&sslmode=require"

    # Spec: R-STORE-1.
    def test_an_sqlite_journal_never_imports_psycopg(self, tmp_path):
        """psycopg is imported only when a postgresql:// URL is given."""
        path = str(tmp_path / "j.db")
        code = (
            "import sys\n"
            "from replication import Controller\n"
            "from tests.helpers import KEY, make_contract\n"
            f"Controller(make_contract(), KEY, journal={path!r}).journal.close()\n"
            "from replication.journal import verify_journal\n"
            f"verify_journal({path!r})\n"
            "assert 'psycopg' not in sys.modules, 'psycopg was imported'\n"
        )
        done = subprocess.run(  # noqa: S603 - this interpreter, our own code
            [sys.executable, "-c", code], capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr


class TestCommands:
    """``replication journal verify|show|export|copy`` on a PostgreSQL URL."""

    @pytest.fixture
    def written(self, opened, pg_url):
        controller = opened(pg_url, checkpoint_interval=2, snapshot_interval=3)
        program(controller)
        return pg_url

    # Spec: R-STORE-4, R-JOURNAL-13.
    def test_verify_show_and_export_read_a_postgresql_journal(self, written, capsys):
        assert main(["journal", "verify", written]) == 0
        said = capsys.readouterr().out
        assert "verified" in said
        assert "rows: 7," in said
        assert main(["journal", "show", written, "--worker", "b"]) == 0
        shown = capsys.readouterr().out.splitlines()
        # Its start, and the kill switch that killed its container.
        assert [line.split()[2] for line in shown] == ["start_worker", "engage_kill_switch:"]
        assert main(["journal", "export", written]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert [load_json(line) for line in lines[1:]] == bodies(written)

    # Spec: R-STORE-4.
    def test_copy_moves_a_journal_to_sqlite_and_back_keeping_its_chain(
        self, written, tmp_path, postgres_cluster, capsys
    ):
        """SQLite <- PostgreSQL -> a second PostgreSQL schema: the same bytes, head and
        checkpoints everywhere, each copy verified; a controller goes on on the last one."""
        path = str(tmp_path / "copy.db")
        assert main(["journal", "copy", written, path]) == 0
        assert "copied" in capsys.readouterr().out
        back = fresh_schema(postgres_cluster)
        assert main(["journal", "copy", path, back]) == 0
        heads = [verify_journal(where).head for where in (written, path, back)]
        assert heads[0] == heads[1] == heads[2]
        assert bodies(back) == bodies(written)
        assert verify_journal(back).snapshots == 1  # row 6 (the latest is kept), copied, checked
        controller = Controller(
            make_contract(cooldown_seconds=0), KEY, clock=ManualClock(T0), journal=back
        )
        with pytest.raises(ReplicationDenied) as refused:
            controller.register_worker(hand_signed("late"))
        controller.journal.close()
        assert refused.value.reason == ReasonCode.KILL_SWITCH

    # Spec: R-STORE-4.
    def test_copy_into_a_journal_is_refused_and_changes_nothing(self, written, tmp_path, capsys):
        path = str(tmp_path / "copy.db")
        assert main(["journal", "copy", written, path]) == 0
        before = Path(path).read_bytes()
        assert main(["journal", "copy", written, path]) == 2
        assert "destination must be 'an empty file or schema'" in capsys.readouterr().err
        assert Path(path).read_bytes() == before

    # Spec: R-STORE-4.
    def test_copy_of_a_journal_that_does_not_verify_writes_nothing(
        self, written, tmp_path, postgres_cluster, capsys
    ):
        schema = written.rpartition("%3D")[2]
        with admin(postgres_cluster) as connection:
            connection.execute(f"DELETE FROM {schema}.journal_rows WHERE sequence = 4")  # noqa: S608
        path = tmp_path / "copy.db"
        assert main(["journal", "copy", written, str(path)]) == 1
        assert "row 4" in capsys.readouterr().err
        assert not path.exists()

    # Spec: R-STORE-4, R-STORE-3.
    def test_a_server_that_cannot_be_reached_is_one_line_and_exit_2(self, capsys):
        assert main(["journal", "verify", "postgresql://me:hunter2@127.0.0.1:1/db"]) == 2
        error = capsys.readouterr().err
        assert error.count("\n") == 1
        assert "could not connect to the server" in error
        assert "hunter2" not in error


class TestDemo:
    # Spec: R-STORE-2.
    def test_the_hosts_demo_shows_one_quota_and_one_switch_across_processes(self, postgres_cluster):
        """``replication demo --hosts 2`` on the test server: 5 admitted across both hosts,
        the other host refused by the switch, the journal verified, exit 0; its schema is
        dropped at the end."""
        from replication.journal.hosts_demo import run_hosts_demo

        lines: list[str] = []
        assert run_hosts_demo(2, database=postgres_cluster.url(), write=lines.append) == 0
        assert "admitted across every host: 5 (the quota is 5)" in lines
        assert "  host 1 tries again: denied (kill_switch)" in lines
        assert lines[-1] == "every host shared one quota and one kill switch"
        with admin(postgres_cluster) as connection:
            left = connection.execute(
                "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'replication_demo_%'"
            ).fetchone()
        assert left == (0,)

    def test_a_host_count_out_of_range_is_refused_with_exit_2(self):
        lines: list[str] = []
        from replication.journal.hosts_demo import run_hosts_demo

        assert run_hosts_demo(1, write=lines.append) == 2
        assert "--hosts must be from 2 to 16" in lines[0]
