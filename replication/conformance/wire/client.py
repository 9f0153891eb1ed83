"""The kit's adapter for an implementation in any language: the protocol over a subprocess.

``--exec "node impl.js"`` on the command line (the target ``exec:node impl.js``
in Python) names a :class:`WireTarget`: loading it starts the command and makes
the handshake (R-WIRE-2), so a process that does not start, exits, or speaks
another version cannot run (:class:`WireStartError`, which the preflight turns
into its ``SetupError``: exit code 2). Calling it returns a
:class:`WireImplementation`, the
:class:`~replication.conformance.adapters.adapter.Implementation` protocol spoken over
the wire: every method one request carrying the kit's clock, a ``denied``
response raised as :class:`~replication.conformance.adapters.adapter.Denied`, an
``error`` or an exit raised as a crash, a broken protocol as a
:class:`~replication.conformance.adapters.calls.ContractViolation`. One process serves a
whole run: every ``start`` begins a fresh system in it (R-WIRE-3), and a
process that died or was stopped is started again for the next test case.
Methods are safe to call from several threads at once (the concurrent mode).
"""

from __future__ import annotations

import atexit
import threading
from typing import TYPE_CHECKING, Any

from replication.conformance.adapters.adapter import Denied
from replication.conformance.wire.connection import Connection, WireCrash
from replication.conformance.wire.messages import (
    PROTOCOL,
    ManifestCache,
    WireViolation,
    contract_to_wire,
    manifest_to_wire,
    observation_from_wire,
)
from replication.encoding import format_timestamp

if TYPE_CHECKING:
    from collections.abc import Mapping
    from datetime import timedelta

    from replication.conformance.adapters.adapter import Clock
    from replication.invariants import Observation
    from replication.model import Manifest, ReplicationContract, ResourceSpec
    from replication.signing import SigningKey

__all__ = ["EXEC_PREFIX", "WireImplementation", "WireStartError", "WireTarget", "target_for"]


class WireStartError(Exception):
    """The implementation cannot be run: it does not start, or fails the handshake.

    The preflight turns it into its ``SetupError`` (exit code 2); it is its own
    class so that this package does not import the preflight, which imports it.
    """

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


#: A target string ``exec:COMMAND`` names the implementation COMMAND runs (``--exec COMMAND``).
EXEC_PREFIX = "exec:"

#: Every target loaded in this process, by command: one process each, stopped at exit.
_TARGETS: dict[str, WireTarget] = {}
_TARGETS_LOCK = threading.Lock()


def target_for(command: str) -> WireTarget:
    """Return the target of ``command``, started, past its handshake; or raise WireStartError."""
    with _TARGETS_LOCK:
        target = _TARGETS.get(command)
        if target is None:
            target = _TARGETS[command] = WireTarget(command)
    target.failure_tail = None  # a new run: what an earlier one saw is not this one's
    target.connect()
    return target


def loaded(command: str) -> WireTarget | None:
    """Return the target of ``command`` if this process loaded it, as it is (no new start)."""
    with _TARGETS_LOCK:
        return _TARGETS.get(command)


@atexit.register
def close_all() -> None:
    """Stop every implementation process this process started (the next load starts anew)."""
    with _TARGETS_LOCK:
        targets = list(_TARGETS.values())
        _TARGETS.clear()
    for target in targets:
        target.close()


def with_tail(message: str, tail: list[str], *, whose: str = "the implementation's") -> str:
    """Return ``message`` followed by the implementation's last stderr lines, if it wrote any."""
    if not tail:
        return f"{message}\n  ({whose} stderr is empty)"
    lines = "\n".join(f"    {line}" for line in tail)
    return f"{message}\n  {whose} stderr ends with:\n{lines}"


class WireTarget:
    """A command that runs an implementation speaking the protocol: the adapter factory."""

    def __init__(self, command: str) -> None:
        if not command.strip():
            message = "--exec needs a command, got an empty one"
            raise WireStartError(message)
        self.command = command
        self.name = EXEC_PREFIX + command
        self.connection: Connection | None = None
        self.hello: dict[str, Any] = {}
        self.manifests = ManifestCache()
        #: The stderr tail of the process when a request last failed, in this run.
        self.failure_tail: list[str] | None = None
        self._lock = threading.Lock()

    def connect(self) -> Connection:
        """Return the running connection, starting the process and shaking hands if needed."""
        with self._lock:
            if self.connection is not None and self.connection.broken is None:
                return self.connection
            if self.connection is not None:
                self.connection.kill()
            try:
                connection = Connection(self.command)
            except OSError as error:
                message = f"cannot start {self.command!r}: {error.strerror or error}"
                raise WireStartError(message) from None
            self.connection = connection
            self.hello = self._handshake(connection)
            return connection

    def _handshake(self, connection: Connection) -> dict[str, Any]:
        try:
            hello = connection.request("hello", {"protocol": PROTOCOL})
        except (WireCrash, WireViolation) as error:
            text = error.message if isinstance(error, WireViolation) else str(error)
            tail = connection.stderr_tail(wait=True)
            connection.kill()
            raise WireStartError(with_tail(f"the handshake failed: {text}", tail)) from None
        if hello["protocol"] != PROTOCOL:
            connection.kill()
            message = (
                f"the implementation speaks protocol version {hello['protocol']}, and the kit "
                f"speaks version {PROTOCOL} (specs/09-wire-protocol.md, R-WIRE-2)"
            )
            raise WireStartError(message)
        return hello

    def __call__(self) -> WireImplementation:
        """Return an adapter on the running process (started again if it died)."""
        try:
            connection = self.connect()
        except WireStartError as error:
            raise WireCrash(error.message) from None
        kind = SigningWireImplementation if self.hello.get("signs") else WireImplementation
        return kind(self, connection)

    def stderr_tail(self) -> list[str]:
        """Return the last stderr lines of the current (or last) process."""
        return [] if self.connection is None else self.connection.stderr_tail()

    def close(self) -> None:
        """Stop the process (stdin closed, then killed if it lingers)."""
        with self._lock:
            if self.connection is not None:
                self.connection.close()


class WireImplementation:
    """The adapter protocol, each method one request to the implementation's process."""

    def __init__(self, target: WireTarget, connection: Connection) -> None:
        self.target = target
        self.connection = connection
        hello = target.hello
        self.gaps = frozenset(hello.get("gaps", ()))
        unreported = hello.get("unreported")
        self.unreported = None if unreported is None else frozenset(unreported)
        self.version = hello.get("version")
        self.name = hello.get("name")
        self.clock: Clock | None = None

    def _now(self) -> str:
        assert self.clock is not None  # noqa: S101 - the kit starts before it acts
        return format_timestamp(self.clock())

    def _send(self, op: str, fields: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self.connection.request(op, fields)
        except WireCrash as crash:
            # One line here (a report may draw it in a timeline); the whole tail is
            # kept for the lines printed after the report.
            tail = self.target.failure_tail = self.connection.stderr_tail(wait=True)
            last = f"; its stderr ends with {tail[-1]!r}" if tail else "; its stderr is empty"
            raise WireCrash(f"{crash}{last}") from None
        except WireViolation as violation:
            tail = self.target.failure_tail = self.connection.stderr_tail(wait=True)
            raise WireViolation(with_tail(violation.message, tail)) from None
        if response["status"] == "denied":
            raise Denied(response["reason"])
        return response

    def _act(self, op: str, **fields: Any) -> dict[str, Any]:
        return self._send(op, {"now": self._now(), **fields})

    def _manifest(self, response: dict[str, Any], op: str) -> Manifest:
        return self.target.manifests.get(response["manifest"], f"the {op} response's manifest")

    def start(self, contract: ReplicationContract, key: SigningKey, clock: Clock) -> None:
        """Begin a fresh system in the process (R-WIRE-3)."""
        self.clock = clock
        self.connection.transcript = []
        self._act(
            "start",
            contract=contract_to_wire(contract),
            signing_key=key.private_key.private_bytes_raw().hex(),
            verifying_key=key.verifying_key.raw.hex(),
        )

    def issue(
        self,
        parent_id: str | None,
        worker_id: str | None,
        resources: ResourceSpec,
        state_snapshot: Mapping[str, Any],
    ) -> Manifest:
        """Ask for a signed manifest."""
        policy = resources.network_policy
        response = self._act(
            "issue",
            parent_id=parent_id,
            worker_id=worker_id,
            resources={
                "cpu_limit": resources.cpu_limit,
                "memory_limit_mb": resources.memory_limit_mb,
                "network_policy": {
                    "allow_controller": policy.allow_controller,
                    "allow_external": policy.allow_external,
                },
            },
            state_snapshot=_plain(state_snapshot),
        )
        return self._manifest(response, "issue")

    def register(self, manifest: Manifest) -> None:
        """Register the worker ``manifest`` describes."""
        self._act("register", manifest=manifest_to_wire(manifest))

    def launch(self, manifest: Manifest) -> None:
        """Launch a registered worker's container."""
        self._act("launch", manifest=manifest_to_wire(manifest))

    def heartbeat(self, worker_id: str) -> None:
        """Record a heartbeat."""
        self._act("heartbeat", worker_id=worker_id)

    def kill(self, worker_id: str) -> None:
        """Kill a worker's container."""
        self._act("kill", worker_id=worker_id)

    def reap(self, timeout: timedelta) -> None:
        """Reap workers silent for longer than ``timeout``."""
        self._act("reap", timeout_seconds=timeout.total_seconds())

    def kill_switch(self) -> None:
        """Engage the kill switch."""
        self._act("kill_switch")

    def quarantine(self, worker_id: str) -> None:
        """Quarantine a worker."""
        self._act("quarantine", worker_id=worker_id)

    def release(self, worker_id: str) -> None:
        """Release a worker from quarantine."""
        self._act("release", worker_id=worker_id)

    def deregister(self, worker_id: str) -> None:
        """Deregister a worker."""
        self._act("deregister", worker_id=worker_id)

    def expire(self) -> None:
        """Expire workers older than the contract's expiration."""
        self._act("expire")

    def observe(self) -> Observation:
        """Return the implementation's observation, rebuilt in the kit's types."""
        response = self._act("observe")
        return observation_from_wire(response["observation"], self.target.manifests)


class SigningWireImplementation(WireImplementation):
    """An implementation that declared ``signs``: the kit makes its manifests through it."""

    def sign(self, manifest: Manifest) -> Manifest:
        """Return ``manifest``'s fields signed by the controller's key."""
        response = self._act("sign", manifest=manifest_to_wire(manifest))
        return self._manifest(response, "sign")

    def sign_with_another_key(self, manifest: Manifest) -> Manifest:
        """Return ``manifest``'s fields signed by a key that is not the controller's."""
        response = self._act("sign_with_another_key", manifest=manifest_to_wire(manifest))
        return self._manifest(response, "sign_with_another_key")

    def verify(self, manifest: Manifest) -> bool:
        """Return whether ``manifest`` carries the controller's valid signature."""
        response = self._act("verify", manifest=manifest_to_wire(manifest))
        return bool(response["valid"])


def _plain(value: Any) -> Any:
    """Return a snapshot as plain JSON (the model's frozen mappings and lists thawed)."""
    if isinstance(value, str | bool | int | float) or value is None:
        return value
    if hasattr(value, "items"):
        return {str(key): _plain(item) for key, item in value.items()}
    return [_plain(item) for item in value]
