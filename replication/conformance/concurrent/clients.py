"""Client processes: the concurrent mode's calls made from several processes at once.

An implementation that lives outside one Python process (a service, a shared
database, a journal on disk) is shared by the clients of several processes;
so, for it, the kit makes its calls from several processes. Two optional
adapter methods make this possible:

* ``connection()``, called in the kit's process on the adapter that started
  the system, returns a picklable token saying how to reach that system (a
  path, an address);
* ``attach(connection, clock)``, called in each client process on a fresh
  adapter from the same factory, joins the system the token names (it does
  not start a new one), reading the time from ``clock``.

Each client process runs one client (``p1``, ``p2``, ...): for every round it
receives its program, the round's ``now`` (its clock returns it), the
manifests issued so far, reports that it is ready, waits for the signal that
releases every client at once, runs the program with
:func:`~replication.conformance.concurrent.programs.perform`, and sends back its calls.
The processes are started once per run (with the ``spawn`` method: no
inherited locks or threads) and stopped at its end.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import traceback
from typing import TYPE_CHECKING, Any

from replication.conformance.adapters.preflight import load_factory
from replication.conformance.concurrent.programs import perform

if TYPE_CHECKING:
    from datetime import datetime, timedelta
    from multiprocessing.connection import Connection

    from replication.conformance.concurrent.history import Call
    from replication.conformance.concurrent.programs import Manifests, Step

__all__ = ["ClientError", "ProcessClients", "RoundClock"]


class ClientError(Exception):
    """A client process failed, or did not answer in time."""


class RoundClock:
    """The clock the kit gives an implementation: frozen during a round, moved between rounds."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        """Return the current round's time."""
        return self.now


def _serve(connection: Connection, target: str, name: str) -> None:
    """Serve the kit as one client process: attach, then play rounds until told to stop."""
    factory = load_factory(target)
    implementation: Any = None
    clock: RoundClock | None = None
    while True:
        message = connection.recv()
        try:
            if message[0] == "stop":
                return
            if message[0] == "attach":
                _, token, now = message
                clock = RoundClock(now)
                implementation = factory()
                implementation.attach(token, clock)
                connection.send(("ok",))
            elif message[0] == "round":
                _, number, steps, now, manifests, reap_timeout = message
                assert clock is not None  # noqa: S101 - the kit attaches first
                clock.now = now
                connection.send(("ready",))
                if connection.recv()[0] != "go":  # pragma: no cover - the kit always says go
                    return
                calls, issued = perform(
                    implementation, name, number, steps,
                    now=now, manifests=manifests, reap_timeout=reap_timeout,
                )  # fmt: skip
                connection.send(("done", calls, issued))
        except Exception:  # noqa: BLE001 - reported to the kit, which stops the run
            connection.send(("error", traceback.format_exc()))


class ProcessClients:
    """``count`` client processes for the adapter factory ``target``."""

    def __init__(self, target: str, count: int, *, timeout: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.timeout = timeout
        self.names = [f"p{number}" for number in range(1, count + 1)]
        self._connections: list[Connection] = []
        self._processes: list[Any] = []
        for name in self.names:
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve, args=(theirs, target, name), daemon=True)
            process.start()
            self._connections.append(ours)
            self._processes.append(process)

    def _receive(self, connection: Connection, name: str) -> tuple[Any, ...]:
        try:
            if not connection.poll(self.timeout):
                message = f"client process {name} did not answer within {self.timeout:g} s"
                raise ClientError(message)
            reply: tuple[Any, ...] = connection.recv()
        except (EOFError, OSError) as error:
            message = f"client process {name} is gone ({type(error).__name__}: {error})"
            raise ClientError(message) from error
        if reply[0] == "error":
            message = f"client process {name} failed:\n{reply[1]}"
            raise ClientError(message)
        return reply

    def attach(self, token: object, now: datetime) -> None:
        """Have every client join the system ``token`` names."""
        for connection in self._connections:
            connection.send(("attach", token, now))
        for connection, name in zip(self._connections, self.names, strict=True):
            self._receive(connection, name)

    def start_round(
        self,
        number: int,
        programs: tuple[tuple[Step, ...], ...],
        *,
        now: datetime,
        manifests: Manifests,
        reap_timeout: timedelta,
    ) -> None:
        """Hand out one round's programs, then release every client at once.

        A round with fewer programs than clients leaves the others idle.
        """
        programs += ((),) * (len(self.names) - len(programs))
        pairs = list(zip(self._connections, self.names, strict=True))
        for (connection, _), steps in zip(pairs, programs, strict=True):
            connection.send(("round", number, steps, now, manifests, reap_timeout))
        for connection, name in pairs:
            self._receive(connection, name)
        for connection, _ in pairs:
            connection.send(("go",))

    def finish_round(self) -> tuple[list[Call], Manifests]:
        """Collect every client's calls and issued manifests for the round."""
        calls: list[Call] = []
        issued: Manifests = {}
        for connection, name in zip(self._connections, self.names, strict=True):
            _, mine, theirs = self._receive(connection, name)
            calls += mine
            issued.update(theirs)
        return calls, issued

    def close(self) -> None:
        """Stop every client process."""
        for connection in self._connections:
            with contextlib.suppress(BrokenPipeError, OSError):
                connection.send(("stop",))
        for process in self._processes:
            process.join(timeout=5)
            if process.is_alive():  # pragma: no cover - a client stuck in a call
                process.kill()
                process.join()
        for connection in self._connections:
            connection.close()
