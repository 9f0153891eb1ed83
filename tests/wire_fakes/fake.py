"""An implementation that misbehaves on purpose, one way per mode (tests/test_wire_errors.py).

``python tests/wire_fakes/fake.py MODE``: the reference model served over the
wire protocol, correct until its first ``register`` request (or its handshake,
for the modes that break that), where it does what MODE says.
"""

from __future__ import annotations

import json
import sys
import time

from replication.conformance.adapters.adapter import ReferenceImplementation
from replication.conformance.wire.serve import Server, _answer


def main(mode: str) -> int:
    """Serve stdin until it closes, misbehaving as ``mode`` says."""
    server = Server(ReferenceImplementation, name=f"fake ({mode})")
    print(f"fake implementation, mode {mode}", file=sys.stderr, flush=True)
    if mode == "exit-at-once":
        print("cannot open the database: no such file", file=sys.stderr, flush=True)
        return 3
    if mode == "banner":
        print("Listening on stdin...", flush=True)
    held: dict | None = None
    for line in sys.stdin:
        request = json.loads(line)
        response = _answer(server, line)
        op = request.get("op")
        if op == "heartbeat" and mode == "out-of-order":
            if held is None:
                held = response
                continue
            print(json.dumps(response), flush=True)
            print(f"answered #{response['id']} before #{held['id']}", file=sys.stderr, flush=True)
            response, held = held, None
        if op == "hello" and mode == "version-2":
            response["protocol"] = 2
        if op == "register":
            if mode == "exit-on-register":
                print("register: out of memory, giving up", file=sys.stderr, flush=True)
                return 7
            if mode == "crash-on-register":
                raise RuntimeError("register: the registry is corrupt")
            if mode == "log-on-register":
                print(f"DEBUG registering {request['manifest']['worker_id']}", flush=True)
            if mode == "wrong-id-on-register":
                response["id"] += 1000
            if mode == "garbage-on-register":
                sys.stdout.write("\x00\x01 {not json\n")
            if mode == "hang-on-register":
                time.sleep(3600)
            if mode == "error-on-register":
                response = {"id": request["id"], "status": "error", "definite": False,
                            "message": "the registry's disk is full"}  # fmt: skip
            if mode == "twice-on-register":
                print(json.dumps(response), flush=True)
        print(json.dumps(response), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
