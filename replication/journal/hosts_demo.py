"""``replication demo --hosts N``: several hosts sharing one quota and one kill switch.

Each host is a separate process with its own controller, all on one journal in
a PostgreSQL database. The server is the one ``--database URL`` names (the
demo makes a schema of its own there, ``replication_demo_<random>``, and drops
it at the end), else the one ``REPLICATION_DATABASE_URL`` names, else a
throwaway cluster the demo starts itself from the server binaries on ``PATH``
or in ``/usr/lib/postgresql/*/bin`` (as an unprivileged user when run as root)
and removes at the end. The hosts race for a quota of 5, one engages the kill
switch, and every other host's next action is refused; the journal is then
verified (specs/07-journal.md, R-STORE-1, R-STORE-2).
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import secrets
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse
    from collections.abc import Callable, Iterator

__all__ = ["add_hosts_options", "run_hosts_demo"]

#: Places the hosts race for.
QUOTA = 5
#: Registrations each host tries.
TRIES = 3


def add_hosts_options(
    demo: argparse.ArgumentParser, fallback: Callable[[argparse.Namespace], int]
) -> None:
    """Add ``--hosts N`` and ``--database URL`` to the ``demo`` command's parser."""
    demo.add_argument(
        "--hosts", type=int, metavar="N", default=None,
        help="N controller processes sharing one journal on PostgreSQL (2 to 16)",
    )  # fmt: skip
    demo.add_argument(
        "--database", metavar="URL", default=None,
        help="with --hosts: a postgresql:// URL to use (default: $REPLICATION_DATABASE_URL, "
        "else a throwaway local server the demo starts)",
    )  # fmt: skip

    def run(arguments: argparse.Namespace) -> int:
        if arguments.hosts is None:
            return fallback(arguments)
        return run_hosts_demo(arguments.hosts, database=arguments.database)

    demo.set_defaults(run=run)


def _host(url: str, host: int, commands: Any) -> None:
    """One host: answer each command with what the controller decided."""
    from replication import Controller  # noqa: PLC0415
    from replication.errors import ReplicationDenied  # noqa: PLC0415
    from replication.model import ReplicationContract  # noqa: PLC0415
    from replication.signing import SigningKey  # noqa: PLC0415

    contract = ReplicationContract(max_depth=1, max_replicas=QUOTA, cooldown_seconds=0)
    # The demo's key, the same on every host: in production it comes from the operator.
    key = SigningKey.from_seed(b"replication demo --hosts public!")
    controller = Controller(contract, key, journal=url)
    commands.send("ready")
    while True:
        command = commands.recv()
        if command == "quit":
            break
        try:
            if command == "kill_switch":
                controller.kill_switch()
            else:
                manifest = controller.issue_manifest(None, None, {"host": host}, _resources())
                controller.register_worker(manifest)
            commands.send(("allowed", None))
        except ReplicationDenied as denied:
            commands.send(("denied", denied.reason.value))
    controller.journal.close()  # type: ignore[union-attr]
    commands.send("closed")


def _resources() -> Any:
    from replication.model import ResourceSpec  # noqa: PLC0415

    return ResourceSpec(0.5, 256)


@contextlib.contextmanager
def _server(database: str | None, write: Callable[[str], object]) -> Iterator[str]:
    """Yield the URL of an empty schema on the server to use, and clean up after."""
    import psycopg  # noqa: PLC0415 - only the PostgreSQL demo needs it

    from replication.journal.stores import display_location  # noqa: PLC0415
    from replication.journal.stores.cluster import Cluster  # noqa: PLC0415

    given = database or os.environ.get("REPLICATION_DATABASE_URL")
    with contextlib.ExitStack() as stack:
        if given is None:
            cluster = stack.enter_context(Cluster())
            given = cluster.url()
            write(f"started a throwaway PostgreSQL server on 127.0.0.1:{cluster.port}")
        else:
            write(f"using the server at {display_location(given)}")
        schema = f"replication_demo_{secrets.token_hex(4)}"
        with psycopg.connect(given, autocommit=True) as connection:
            connection.execute(f"CREATE SCHEMA {schema}")
        try:
            separator = "&" if "?" in given else "?"
            yield f"{given}{separator}options=-csearch_path%3D{schema}"
        finally:
            with psycopg.connect(given, autocommit=True) as connection:
                connection.execute(f"DROP SCHEMA {schema} CASCADE")


def run_hosts_demo(
    hosts: int, *, database: str | None = None, write: Callable[[str], object] = print
) -> int:
    """Run the demo; return 0 when the quota and the kill switch held across every host."""
    if not 2 <= hosts <= 16:
        write(f"replication demo: --hosts must be from 2 to 16, got {hosts}")
        return 2
    from replication.journal import JournalError, verify_journal  # noqa: PLC0415
    from replication.journal.stores.cluster import ClusterError  # noqa: PLC0415

    try:
        with _server(database, write) as url:
            outcomes = _race(url, hosts, write)
            verified = verify_journal(url)
    except (ClusterError, JournalError, ImportError, OSError) as error:
        write(f"replication demo: cannot run against PostgreSQL: {error}")
        return 2
    except Exception as error:  # noqa: BLE001 - psycopg's own errors, one line
        write(f"replication demo: cannot run against PostgreSQL: {type(error).__name__}: {error}")
        return 2
    admitted, after = outcomes
    write(
        f"journal verified: {verified.head.sequence} rows, head {verified.head.hash[:16]}..., "
        f"{len(verified.state.registry)} workers registered, kill switch "
        f"{'engaged' if verified.state.controller.kill_switch_engaged else 'not engaged'}"
    )
    held = admitted == QUOTA and all(outcome == ("denied", "kill_switch") for outcome in after)
    write("every host shared one quota and one kill switch" if held else "the policy did NOT hold")
    return 0 if held else 1


def _race(url: str, hosts: int, write: Callable[[str], object]) -> tuple[int, list[Any]]:
    context = multiprocessing.get_context("spawn")
    pipes, children = [], []
    for host in range(hosts):
        mine, theirs = context.Pipe()
        child = context.Process(target=_host, args=(url, host, theirs), daemon=True)
        child.start()
        theirs.close()
        pipes.append(mine)
        children.append(child)
    try:
        for pipe in pipes:
            pipe.recv()
        write(f"{hosts} hosts (processes) on one journal; quota {QUOTA} workers in all")
        admitted = 0
        for attempt in range(TRIES):
            for pipe in pipes:
                pipe.send("register")
            for host, pipe in enumerate(pipes):
                decision, reason = pipe.recv()
                admitted += decision == "allowed"
                said = "admitted" if decision == "allowed" else f"refused ({reason})"
                write(f"  host {host}, registration {attempt + 1}: {said}")
        write(f"admitted across every host: {admitted} (the quota is {QUOTA})")
        pipes[0].send("kill_switch")
        switched = pipes[0].recv()[0] == "allowed"
        write(f"host 0 engages the kill switch: {'engaged' if switched else 'FAILED'}")
        after = []
        for host, pipe in enumerate(pipes[1:], start=1):
            pipe.send("register")
            outcome = pipe.recv()
            after.append(outcome)
            write(f"  host {host} tries again: {outcome[0]} ({outcome[1]})")
        for pipe in pipes:
            pipe.send("quit")
            pipe.recv()
    finally:
        for child in children:
            child.join(30)
            if child.is_alive():
                child.kill()
                child.join(5)
        for pipe in pipes:
            pipe.close()
    return admitted, after
