"""A server of the wire protocol around any Python adapter.

``python -m replication.conformance.wire.serve [module:factory]``.

It reads requests on stdin, one JSON object per line, calls the adapter named
on its command line (``module:factory``; by default the bundled reference, the
pure core) and writes each response on stdout. So a Python implementation can
be driven over the wire exactly as one in another language is, and the
protocol's overhead can be measured against the same adapter in-process
(benchmarks/wire.py). Requests are answered one at a time, in the order they
arrive.
"""

from __future__ import annotations

import functools
import json
import sys
from datetime import timedelta
from typing import IO, TYPE_CHECKING, Any

from replication.conformance.adapters.adapter import Denied
from replication.conformance.adapters.preflight import SetupError, load_factory
from replication.conformance.wire.messages import (
    OPS,
    PROTOCOL,
    ManifestCache,
    contract_from_wire,
    manifest_to_wire,
    observation_to_wire,
    parse_time,
    resources_from_wire,
    schema_problem,
)
from replication.errors import ReplicationDenied
from replication.signing import SigningKey

if TYPE_CHECKING:
    from collections.abc import Callable
    from datetime import datetime

    from replication.conformance.adapters.adapter import Implementation

__all__ = ["DEFAULT_ADAPTER", "Server", "main"]

#: What the server wraps when given no adapter: the pure core.
DEFAULT_ADAPTER = "replication.conformance.adapters:ReferenceImplementation"

#: Requests that name one worker, and the adapter method each calls with it.
_ON_WORKER = ("heartbeat", "kill", "quarantine", "release", "deregister")
#: Requests that take nothing but the time.
_BARE = ("kill_switch", "expire")


class Server:
    """Answers protocol requests by calling a Python adapter (one system at a time)."""

    def __init__(self, factory: Callable[[], Implementation], *, name: str) -> None:
        self.factory = factory
        self.name = name
        self.probe: Any = factory()
        self.adapter: Any = None
        self.now: datetime | None = None
        self.manifests = ManifestCache()

    def _clock(self) -> datetime:
        assert self.now is not None  # noqa: S101 - set before every call
        return self.now

    def hello(self) -> dict[str, Any]:
        """Return the handshake's answer: what the adapter declares."""
        signs = all(
            callable(getattr(self.probe, name, None))
            for name in ("sign", "sign_with_another_key", "verify")
        )
        version = getattr(self.probe, "version", None)
        unreported = getattr(self.probe, "unreported", None)
        answer: dict[str, Any] = {
            "protocol": PROTOCOL,
            "name": self.name,
            "version": None if version is None else str(version),
            "gaps": sorted(getattr(self.probe, "gaps", None) or ()),
            "signs": signs,
        }
        if unreported is not None:  # absent: the kit learns each field at first sight
            answer["unreported"] = sorted(unreported)
        return answer

    def handle(self, request: dict[str, Any]) -> dict[str, Any]:
        """Return the response to one request (already checked against its schema)."""
        op = request["op"]
        if op == "hello":
            if request["protocol"] != PROTOCOL:
                return _error(f"this server speaks protocol {PROTOCOL} only", definite=True)
            return {"status": "ok", **self.hello()}
        if op == "reset":
            self.adapter = None
            return {"status": "ok"}
        self.now = parse_time(request["now"])
        if op == "start":
            key = _signing_key(request["signing_key"])
            if key.verifying_key.raw.hex() != request["verifying_key"]:
                return _error("verifying_key is not the key of signing_key", definite=True)
            self.adapter = self.factory()
            self.adapter.start(contract_from_wire(request["contract"]), key, self._clock)
            return {"status": "ok"}
        if self.adapter is None:
            return _error(f"{op} before start: there is no system", definite=True)
        try:
            return self._act(op, request)
        except (Denied, ReplicationDenied) as denied:
            reason = denied.reason
            return {"status": "denied", "reason": None if reason is None else str(reason)}

    def _act(self, op: str, request: dict[str, Any]) -> dict[str, Any]:
        adapter = self.adapter
        if op in _ON_WORKER:
            getattr(adapter, op)(request["worker_id"])
        elif op in _BARE:
            getattr(adapter, op)()
        elif op == "reap":
            adapter.reap(timedelta(seconds=request["timeout_seconds"]))
        elif op in {"register", "launch"}:
            getattr(adapter, op)(self.manifests.get(request["manifest"], "manifest"))
        elif op == "issue":
            made = adapter.issue(
                request["parent_id"],
                request["worker_id"],
                resources_from_wire(request["resources"]),
                request["state_snapshot"],
            )
            return {"status": "ok", "manifest": manifest_to_wire(made)}
        elif op in {"sign", "sign_with_another_key"}:
            made = getattr(adapter, op)(self.manifests.get(request["manifest"], "manifest"))
            return {"status": "ok", "manifest": manifest_to_wire(made)}
        elif op == "verify":
            return {
                "status": "ok",
                "valid": bool(adapter.verify(self.manifests.get(request["manifest"], "manifest"))),
            }
        elif op == "observe":
            return {"status": "ok", "observation": observation_to_wire(adapter.observe())}
        return {"status": "ok"}


@functools.lru_cache(maxsize=16)
def _signing_key(seed: str) -> SigningKey:
    """Return the key of a hex seed; the same one for every ``start`` (its checks cost)."""
    return SigningKey.from_seed(bytes.fromhex(seed))


def _error(message: str, *, definite: bool) -> dict[str, Any]:
    return {"status": "error", "definite": definite, "message": message}


def _answer(server: Server, line: str) -> dict[str, Any]:
    try:
        request = json.loads(line)
    except ValueError as error:
        return {"id": None, **_error(f"not a JSON line: {error}", definite=True)}
    ident = request.get("id") if isinstance(request, dict) else None
    ident = ident if type(ident) is int else None
    op = request.get("op") if isinstance(request, dict) else None
    if op not in OPS:
        return {"id": ident, **_error(f"unknown op {op!r}", definite=True)}
    problem = schema_problem(f"{op}_request", request)
    if problem is not None:
        return {"id": ident, **_error(f"malformed {op} request: {problem}", definite=True)}
    try:
        return {"id": ident, **server.handle(request)}
    except Exception as error:  # noqa: BLE001 - the adapter's crash is the response
        # Indefinite: the adapter may have changed its state before it raised.
        return {"id": ident, **_error(f"{type(error).__name__}: {error}", definite=False)}


def serve(server: Server, stdin: IO[str], stdout: IO[str]) -> None:
    """Answer every request line of ``stdin`` on ``stdout`` until it closes."""
    for line in stdin:
        if not line.strip():
            continue
        stdout.write(json.dumps(_answer(server, line)) + "\n")
        stdout.flush()


def main(argv: list[str] | None = None) -> int:
    """Serve the adapter named by the first argument (default: the reference); return 0."""
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) > 1 or (arguments and arguments[0].startswith("-")):
        print("usage: python -m replication.conformance.wire.serve [module:factory]",
              file=sys.stderr)  # fmt: skip
        return 2
    target = arguments[0] if arguments else DEFAULT_ADAPTER
    try:
        server = Server(load_factory(target), name=target)
    except SetupError as error:
        print(f"serve: cannot load {target}: {error}", file=sys.stderr)
        return 2
    try:
        serve(server, sys.stdin, sys.stdout)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
