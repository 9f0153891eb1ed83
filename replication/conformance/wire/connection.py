"""One implementation process spoken to over the wire: its pipes, its requests in flight.

Requests go out on the process's stdin, one JSON line each, with a fresh id;
a reader thread takes every line of its stdout and hands each response to the
request with its id, so several requests may be in flight at once and their
responses may come in any order (R-WIRE-4). Another thread keeps the tail of
its stderr, the implementation's log, for the report. Whatever breaks the
protocol (a line that is not a message, an id no request is waiting for, a
second answer, a response its schema refuses) breaks the connection: every
waiting request, and every later one, raises :class:`WireViolation` naming
what was received. A process that exits fails its waiting requests with
:class:`WireCrash`, naming its exit code.
"""

from __future__ import annotations

import collections
import contextlib
import json
import shlex
import subprocess
import threading
import time
from typing import IO, Any

from replication.conformance.wire.messages import WireViolation, response_problem

__all__ = ["Connection", "WireCrash"]

#: Lines of the implementation's stderr kept for the report.
STDERR_LINES = 20
#: The longest text of a received line a message quotes.
QUOTED = 200


class WireCrash(Exception):  # noqa: N818 - it names what the implementation did
    """The implementation failed a request: it answered ``error``, or exited while it ran."""


def _quoted(text: str) -> str:
    return repr(text if len(text) <= QUOTED else text[:QUOTED] + "...")


class _Slot:
    """One request waiting for its response."""

    __slots__ = ("event", "op", "response")

    def __init__(self, op: str) -> None:
        self.op = op
        self.event = threading.Event()
        self.response: dict[str, Any] | None = None


class Connection:
    """A running implementation process and the requests it has not answered yet."""

    def __init__(self, command: str) -> None:
        self.command = command
        self.process = subprocess.Popen(  # noqa: S603 - the user's own command, as given
            shlex.split(command),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._lock = threading.Lock()
        self._next_id = 0
        self._pending: dict[int, _Slot] = {}
        self._answered: collections.deque[int] = collections.deque(maxlen=1024)
        self._stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        #: Why the connection cannot be used any more (a violation, an exit), once it cannot.
        self.broken: BaseException | None = None
        #: Every request and its response since the last ``start`` (for a replay), when recording.
        self.transcript: list[dict[str, Any]] = []
        self.recording = True
        self._threads = [
            threading.Thread(target=self._read, name="replication-wire-stdout", daemon=True),
            threading.Thread(target=self._drain, name="replication-wire-stderr", daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    # -- the two reader threads --------------------------------------------------------------

    def _drain(self) -> None:
        stream = self.process.stderr
        assert stream is not None  # noqa: S101 - opened as a pipe
        for raw in stream:
            self._stderr.append(raw.decode("utf-8", "replace").rstrip("\n"))

    def _read(self) -> None:
        stream = self.process.stdout
        assert stream is not None  # noqa: S101 - opened as a pipe
        for raw in stream:
            try:
                self._receive(raw)
            except WireViolation as violation:
                self._fail(violation)
                return
        self._fail(self._exited())

    def _receive(self, raw: bytes) -> None:
        try:
            line = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            message = (
                f"the implementation wrote a line that is not UTF-8 on stdout: {raw[:QUOTED]!r}"
            )
            raise WireViolation(message) from None
        try:
            message = json.loads(line)
        except ValueError:
            hint = " (stdout carries only protocol messages: write logs to stderr)"
            raise WireViolation(
                f"the implementation wrote a line that is not JSON on stdout: {_quoted(line)}{hint}"
            ) from None
        ident = message.get("id") if isinstance(message, dict) else None
        if type(ident) is not int:
            raise WireViolation(
                f"the implementation wrote a message without an integer id: {_quoted(line)}"
            )
        with self._lock:
            slot: _Slot | None = self._pending.pop(ident, None)
            if slot is None:
                if ident in self._answered:
                    twice = f"answered request #{ident} a second time: {_quoted(line)}"
                    raise WireViolation(f"the implementation {twice}")
                waiting = sorted(self._pending) or "none"
                raise WireViolation(
                    f"the implementation answered request #{ident}, which no request is "
                    f"waiting for (waiting: {waiting}): {_quoted(line)}"
                )
            self._answered.append(ident)
        problem = response_problem(slot.op, message)
        if problem is not None:
            raise WireViolation(
                f"the implementation's response to #{ident} ({slot.op}) is not valid: {problem}; "
                f"received {_quoted(line)}"
            )
        slot.response = message
        slot.event.set()

    def _exited(self) -> WireCrash:
        code = self.process.poll()
        deadline = time.monotonic() + 2.0
        while code is None and time.monotonic() < deadline:
            time.sleep(0.01)
            code = self.process.poll()
        how = "closed its stdout" if code is None else _exit_text(code)
        return WireCrash(f"the implementation {how}")

    def _fail(self, error: BaseException) -> None:
        with self._lock:
            if self.broken is None:
                self.broken = error
            waiting = list(self._pending.values())
            self._pending.clear()
        for slot in waiting:
            slot.event.set()

    # -- requests ----------------------------------------------------------------------------

    def stderr_tail(self, *, wait: bool = False) -> list[str]:
        """Return the last lines the implementation wrote on stderr.

        With ``wait``, a process that is ending is given a moment to exit, so
        that the lines it wrote last (often the reason it failed) are read too.
        """
        if wait:
            try:
                self.process.wait(1.0)
            except subprocess.TimeoutExpired:
                pass
            else:
                self._threads[1].join(1.0)
        return list(self._stderr)

    def _raise_broken(self, op: str, ident: int | None) -> None:
        broken = self.broken
        assert broken is not None  # noqa: S101 - only called once broken
        request = f"#{ident} ({op})" if ident is not None else op
        if isinstance(broken, WireViolation):
            raise WireViolation(broken.message)
        raise WireCrash(f"{broken} before answering {request}")

    def request(self, op: str, fields: dict[str, Any], *, errors: bool = True) -> dict[str, Any]:
        """Send one request and return its response (``ok`` or ``denied``).

        Raises :class:`WireCrash` for an ``error`` response (returned instead
        when ``errors`` is false) or a process that
        exited, :class:`WireViolation` when the protocol was broken. Interrupted
        while waiting (the kit's time limit, Ctrl-C), it ends the process: a
        late answer could only be mistaken for another's.
        """
        slot = _Slot(op)
        with self._lock:
            if self.broken is not None:
                ident = None
            else:
                ident = self._next_id
                self._next_id += 1
                self._pending[ident] = slot
        if ident is None:
            self._raise_broken(op, None)
        message = {"id": ident, "op": op, **fields}
        exchange: dict[str, Any] = {"request": message, "response": None}
        if self.recording:
            # Recorded when sent: a request the process died on belongs in a replay too.
            self.transcript.append(exchange)
        line = (json.dumps(message, ensure_ascii=False) + "\n").encode("utf-8")
        try:
            stdin: IO[bytes] | None = self.process.stdin
            assert stdin is not None  # noqa: S101 - opened as a pipe
            stdin.write(line)
            stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            # The reader thread says why (an exit, a violation) once it sees the end.
            slot.event.wait(2.0)
            self._fail(self._exited())
        try:
            while not slot.event.wait(1.0):
                pass
        except BaseException:
            self.kill()
            raise
        response = slot.response
        if response is None:
            self._raise_broken(op, ident)
        assert response is not None  # noqa: S101 - set with the event
        exchange["response"] = response
        if errors and response["status"] == "error":
            nature = (
                "definite: it did nothing"
                if response["definite"]
                else ("indefinite: it may have acted")
            )
            raise WireCrash(
                f"the implementation answered #{ident} ({op}) with an error ({nature}): "
                f"{response['message']}"
            )
        return response

    # -- the end -----------------------------------------------------------------------------

    def kill(self) -> None:
        """End the process at once; every waiting request fails."""
        if self.process.poll() is None:
            self.process.kill()
        self.close()

    def close(self, *, grace: float = 2.0) -> None:
        """Close stdin (the implementation's signal to exit), wait for it, then kill it."""
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                stdin.close()
        try:
            self.process.wait(grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for thread in self._threads:
            thread.join(grace)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        self._fail(WireCrash("the implementation was stopped by the kit"))


def _exit_text(code: int) -> str:
    if code < 0:
        return f"was killed by signal {-code}"
    return f"exited with code {code}"
