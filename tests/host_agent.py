"""One host's controller, driven by the tests through JSON lines on stdin and stdout.

Run as ``python -m tests.host_agent URL LOCK_TIMEOUT`` (inside a network
namespace, by tests/test_journal_hosts.py and benchmarks/postgres.py). It opens
a controller on the journal at URL, says ``{"ready": ...}``, then answers each
command line. Every acknowledgement carries the journal's head right after the
call returned, ``[sequence, hash]``: the row that call committed, which the
test then looks for in the journal (an independent check of what was
acknowledged).
"""

from __future__ import annotations

import json
import os
import sys
import time
from functools import partial
from typing import TYPE_CHECKING, Any

from replication import Controller, SandboxOrchestrator
from replication.errors import ReplicationDenied
from replication.journal import Journal, JournalError
from tests.helpers import KEY
from tests.journal_support import RACE_CONTRACT, hand_signed

if TYPE_CHECKING:
    from collections.abc import Callable


def say(message: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def head(controller: Controller) -> list[Any]:
    journal = controller.journal
    assert journal is not None
    return [journal.head.sequence, journal.head.hash]


def attempt(controller: Controller, call: Callable[[], object]) -> dict[str, Any]:
    """Run one call; say what came of it, with the head when it was acknowledged."""
    try:
        call()
    except ReplicationDenied as denied:
        return {"decision": "denied", "reason": denied.reason.value, "ack": head(controller)}
    except JournalError as error:
        code = getattr(error, "code", None)
        return {"error": type(error).__name__, "code": code, "message": str(error)}
    return {"decision": "allowed", "ack": head(controller)}


def register(controller: Controller, worker: str) -> dict[str, Any]:
    return attempt(controller, partial(controller.register_worker, hand_signed(worker)))


def register_slowly(controller: Controller, worker: str, pause: float) -> None:
    """Register while the clock, read inside the write transaction, holds the lock ``pause``."""
    clock = controller.clock

    def slow() -> Any:
        time.sleep(pause)
        return clock()

    controller.clock = slow
    say({"holding": True})
    result = register(controller, worker)
    controller.clock = clock
    say(result)


def grow(controller: Controller, prefix: str) -> None:
    """Launch and deregister, again and again, until a refusal (or a failure) stops it."""
    launched, acks = 0, []
    result: dict[str, Any] = {}
    for i in range(100_000):
        worker = f"{prefix}{i}"
        result = attempt(controller, partial(controller.start_worker, hand_signed(worker)))
        if result.get("decision") != "allowed":
            break
        launched += 1
        acks.append(result["ack"])
        attempt(controller, partial(controller.deregister, worker, "done"))
    say({"launched": launched, "acks": acks, "stopped": result})


def churn(controller: Controller, prefix: str) -> None:
    """Register and deregister until killed, acknowledging every committed row as it returns."""
    for i in range(10_000_000):
        worker = f"{prefix}{i}"
        for call in (
            partial(controller.register_worker, hand_signed(worker)),
            partial(controller.deregister, worker, "done"),
        ):
            result = attempt(controller, call)
            if "ack" in result:
                say({"ack": result["ack"]})


def main() -> None:
    url, lock_timeout = sys.argv[1], float(sys.argv[2])
    controller = Controller(
        RACE_CONTRACT,
        KEY,
        orchestrator=SandboxOrchestrator(),
        journal=Journal(url, lock_timeout=lock_timeout),
    )
    say({"ready": True, "pid": os.getpid()})
    for line in sys.stdin:
        command = json.loads(line)
        op = command["op"]
        if op == "register":
            say(register(controller, command["id"]))
        elif op == "kill_switch":
            say(attempt(controller, controller.kill_switch))
        elif op == "register_slowly":
            register_slowly(controller, command["id"], command["pause"])
        elif op == "race":
            prefix = command["prefix"]
            say(
                {
                    "outcomes": [
                        register(controller, f"{prefix}{i}") for i in range(command["count"])
                    ]
                }
            )
        elif op == "grow":
            grow(controller, command["prefix"])
        elif op == "churn":
            churn(controller, command["prefix"])
        elif op == "quit":
            break
    controller.journal.close()  # type: ignore[union-attr]


if __name__ == "__main__":
    main()
