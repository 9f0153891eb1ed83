"""Every call into an adapter: under a time limit, its crashes located in the adapter's code.

The kit never trusts the code it drives. A call that does not return within
the time limit is stopped (:class:`CallTimeout`); a call that raises is a
crash whose report points at the adapter's own file and line
(:func:`locate`); a call that returns something the protocol does not allow
is a :class:`ContractViolation`, which says what was expected.

The time limit is kept by a watchdog thread that wakes a few times a second
and, when one call has run too long, interrupts the main thread with a signal
of its own (:data:`WATCHDOG_SIGNAL`, not ``SIGINT``), which also breaks a
blocking ``sleep`` or ``wait``. Its own signal and handler make the limit
independent of how the process was started: a process started in the
background without job control inherits ``SIGINT`` ignored, and an adapter may
take ``SIGINT`` for itself. A call costs two attribute writes, so the limit is
cheap enough to hold on every call. Off the main thread, where no signal can
interrupt it, an overlong call is reported when it finally returns.

A call's time is its own, not the machine's: where Linux reports it
(``/proc/self/task/<id>/schedstat``), the time the calling thread spent
runnable but waiting for a CPU, which only a busy machine adds, is not
counted against the limit. Otherwise a slow call on a loaded machine would be
taken for a hang, and the verdict would depend on the machine, not on the
implementation. A call that sleeps, blocks or spins still counts in full.
"""

from __future__ import annotations

import _thread
import contextlib
import inspect
import signal
import sys
import sysconfig
import threading
import time
import traceback
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

__all__ = [
    "DEFAULT_TIMEOUT",
    "WATCHDOG_SIGNAL",
    "CallTimeout",
    "ContractViolation",
    "RaisedBaseException",
    "Watchdog",
    "describe_call",
    "locate",
    "shown",
    "unwrapped",
    "waiting_for_cpu",
    "where_defined",
]

#: Seconds one call into the adapter may take, unless the user says otherwise.
DEFAULT_TIMEOUT = 5.0

#: This module and the machine that calls through it: frames a crash report skips
#: (paths relative to the kit's folder, ``replication/conformance``).
_KIT = Path(__file__).resolve().parent.parent
_STDLIB = Path(sysconfig.get_paths()["stdlib"]).resolve()
_INSTALLED = {Path(sysconfig.get_paths()[name]).resolve() for name in ("purelib", "platlib")}
_OWN_FILES = frozenset(
    {
        "adapters/calls.py",
        "adapters/preflight.py",
        "sequential/actions.py",
        "sequential/engine.py",
        "sequential/machine.py",
        "sequential/manifests.py",
        "vectors/check.py",
    }
)


#: Seconds between the watchdog's interrupts of a call that is still overdue.
_REFIRE = 1.0

#: The signal the watchdog interrupts an overdue call with: a real-time signal
#: near the top of the range, which neither a shell nor a library sends or
#: ignores, so its disposition is the kit's alone (``SIGUSR2`` where there are
#: none, as on macOS; ``SIGINT`` on Windows, which has neither).
WATCHDOG_SIGNAL: int = (
    signal.SIGRTMAX - 5
    if hasattr(signal, "SIGRTMAX")
    else getattr(signal, "SIGUSR2", signal.SIGINT)
)


class _Overdue(BaseException):
    """The watchdog's interrupt of an overdue call: :meth:`Watchdog.call` makes it a timeout."""


class RaisedBaseException(Exception):  # noqa: N818 - it names what the adapter did
    """The adapter raised a ``BaseException`` that is not an ``Exception``: a crash.

    ``SystemExit``, ``GeneratorExit``, or a ``KeyboardInterrupt`` of its own (not
    Ctrl-C, not the watchdog's): left to propagate, it would end the run without
    a verdict (``SystemExit(0)``: exit code 0) or as if the user had stopped it.
    """

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(f"{type(error).__name__}({error})" if str(error) else type(error).__name__)


def unwrapped(error: BaseException) -> BaseException:
    """Return what the adapter raised: ``error``, or what a :class:`RaisedBaseException` holds."""
    return error.error if isinstance(error, RaisedBaseException) else error


class CallTimeout(BaseException):
    """A call into the adapter did not return within the time limit.

    A ``BaseException``, like ``KeyboardInterrupt``: the run stops at once,
    without shrinking (every shrink attempt would hang as long again).
    """

    def __init__(self, call: str, seconds: float) -> None:
        self.call = call
        self.seconds = seconds
        super().__init__(f"{call} did not return within {seconds:g} s")


class ContractViolation(BaseException):
    """The adapter broke the protocol: the run cannot go on, and shrinking would not help."""

    def __init__(self, message: str, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(message if where is None else f"{message} ({where})")


def shown(path: str) -> str:
    """Return ``path`` relative to the current directory when it lies below it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return path


def where_defined(function: object) -> str | None:
    """Return ``file:line`` of a function's definition, or ``None`` if it has no source."""
    target: Any = getattr(function, "__func__", function)
    try:
        target = inspect.unwrap(target)
        path = inspect.getsourcefile(target)
        _, line = inspect.getsourcelines(target)
    except (OSError, TypeError):
        return None
    return f"{shown(path)}:{line}" if path else None


def _is_users(filename: str) -> bool:
    """Whether a frame is in code a user wrote or installed (not Python's own library)."""
    if filename.startswith("<"):
        return False
    path = Path(filename).resolve()
    if path.is_relative_to(_KIT) and path.relative_to(_KIT).as_posix() in _OWN_FILES:
        return False
    if path.parent == _KIT / "wire":  # the wire client: the implementation is another process
        return False
    installed = any(path.is_relative_to(directory) for directory in _INSTALLED)
    return installed or not path.is_relative_to(_STDLIB)


def locate(error: BaseException) -> list[str]:
    """Return where ``error`` was raised, and where it left the adapter, as report lines.

    The kit's own frames (its calls into the adapter) and Python's library are
    skipped: the first frame left is the adapter's method, the last the line of
    the user's code that raised (or called the library that raised).
    """
    frames = traceback.extract_tb(error.__traceback__)
    users = [frame for frame in frames if _is_users(frame.filename)]
    if not users:
        return []
    last = users[-1]
    lines = [f"raised at {shown(last.filename)}:{last.lineno}, in {last.name}"]
    if last.line:
        lines.append(f"    {last.line.strip()}")
    deepest = frames[-1]
    if deepest is not last:
        lines.append(f"(inside {shown(deepest.filename)}:{deepest.lineno}, in {deepest.name})")
    first = users[0]
    if first is not last:
        lines.append(f"called from {shown(first.filename)}:{first.lineno}, in {first.name}")
    return lines


def _short(value: object) -> str:
    """Return a compact, one-line ``repr`` of an argument for a report."""
    from replication.model import Manifest  # noqa: PLC0415 - the core loads after the kit's CLI

    if isinstance(value, Manifest):
        return (
            f"Manifest(worker_id={value.worker_id!r}, parent_id={value.parent_id!r}, "
            f"depth={value.depth}, issued_at={value.issued_at.isoformat()})"
        )
    if isinstance(value, timedelta):
        return f"timedelta(seconds={value.total_seconds():g})"
    if isinstance(value, datetime):
        return value.isoformat()
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def describe_call(method: str, *args: object) -> str:
    """Return ``method(arg, ...)`` as a report names a call."""
    return f"{method}({', '.join(_short(argument) for argument in args)})"


def waiting_for_cpu(thread: threading.Thread) -> Callable[[], float | None]:
    """Return a reader of ``thread``'s seconds spent runnable, waiting for a CPU, in all.

    Linux's scheduler statistics (the second field of ``schedstat``); the reader
    returns ``None`` where they are not kept, and the limit is then wall time.
    """
    path = Path(f"/proc/self/task/{thread.native_id}/schedstat")

    def read() -> float | None:
        try:
            return int(path.read_bytes().split()[1]) / 1e9
        except (OSError, ValueError, IndexError):
            return None

    return read


class Watchdog:
    """Runs calls into the adapter under a per-call time limit (``None``: no limit).

    Use it as a context manager: the watchdog thread lives inside the block.
    """

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        # Odd while a call runs; the watchdog compares it before and after it looks.
        self._serial = 0
        self._started = 0.0
        self._current: Callable[[], str] = lambda: "a call"
        self.fired: str | None = None
        #: Whether the user pressed Ctrl-C: ``None`` while no handler of ours tells
        #: (:meth:`handling_ctrl_c`), so any ``KeyboardInterrupt`` is taken for one.
        self.ctrl_c: bool | None = None
        # Our SIGINT handler while one is installed: put back after a call that replaced it.
        self._handler: Callable[[int, Any], None] | None = None
        self._fired_serial = -1
        self._fired_at = 0.0
        # The calling thread's time spent waiting for a CPU, when the watchdog first saw
        # the call it watches (serial): a call is not charged for the machine's load.
        self._waiting: Callable[[], float | None] = waiting_for_cpu(threading.main_thread())
        self._seen_serial = -1
        self._waited_before = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._interruptible = threading.current_thread() is threading.main_thread()
        # The handler of WATCHDOG_SIGNAL before ours, put back on leaving the block.
        self._previous: Any = None
        self._previous_hook: Callable[[Any], object] | None = None

    def __enter__(self) -> Watchdog:
        if self.timeout is not None and self._interruptible:
            self._previous = signal.signal(WATCHDOG_SIGNAL, self._on_signal)
            self._previous_hook = sys.unraisablehook
            sys.unraisablehook = self._unraisable
            self._thread = threading.Thread(
                target=self._watch, name="replication-watchdog", daemon=True
            )
            self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            # ``None``: the handler before ours was set from C; the default is the nearest.
            signal.signal(WATCHDOG_SIGNAL, self._previous or signal.SIG_DFL)
            if sys.unraisablehook == self._unraisable and self._previous_hook is not None:
                sys.unraisablehook = self._previous_hook

    def _unraisable(self, report: Any) -> None:
        """Drop an interrupt Python could not raise, and pass anything else on.

        The interrupt landed in a garbage-collector callback (Hypothesis's, say): the
        watchdog fires again a second later, so it is not lost, and it is not the
        user's to see as "Exception ignored".
        """
        if not isinstance(report.exc_value, _Overdue) and self._previous_hook is not None:
            self._previous_hook(report)

    def _on_signal(self, _signal: int, _frame: object) -> None:
        """Stop the call the watchdog found overdue, if it still runs (else it already returned)."""
        if self._serial % 2 and self._serial == self._fired_serial:
            raise _Overdue

    @contextlib.contextmanager
    def handling_ctrl_c(self, on_ctrl_c: Callable[[], None] | None = None) -> Iterator[None]:
        """Tell Ctrl-C from the watchdog's and the adapter's interrupts, and never lose it.

        Python drops an exception raised while a garbage-collector callback runs
        (Hypothesis installs one), so a Ctrl-C can vanish: the handler calls
        ``on_ctrl_c`` (the kit then stops at its next step) and sets
        :attr:`ctrl_c`, and the dropped exception is not printed as "ignored".
        Only on the main thread, and only over Python's own or a Python handler.
        """
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = signal.getsignal(signal.SIGINT)
        if previous is None:  # a handler installed from C: leave it alone
            yield
            return

        def on_sigint(_signal: int, _frame: object) -> None:
            self.ctrl_c = True
            if on_ctrl_c is not None:
                on_ctrl_c()
            raise KeyboardInterrupt

        def unraisable(report: Any) -> None:
            # A lost interrupt: remembered by the handler, not worth a traceback.
            if not isinstance(report.exc_value, KeyboardInterrupt):
                previous_hook(report)

        previous_hook = sys.unraisablehook
        signal.signal(signal.SIGINT, on_sigint)
        sys.unraisablehook = unraisable
        self.ctrl_c, self._handler = False, on_sigint
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, previous)
            sys.unraisablehook = previous_hook
            self.ctrl_c, self._handler = None, None

    def _watch(self) -> None:
        assert self.timeout is not None  # noqa: S101 - only started with a limit
        period = min(0.1, self.timeout / 4)
        main = threading.main_thread().ident
        # The calling thread's wait for a CPU at the watchdog's previous look: a call first
        # seen now began after it, so the wait since then covers all of the call's. (Read at
        # the look that first sees the call, it would miss the wait of a watchdog that was
        # itself kept from running, and charge a long call for the machine's load.)
        previous = self._waiting() or 0.0
        while not self._stop.wait(period):
            serial, started = self._serial, self._started
            waited = self._waiting() or 0.0
            if serial != self._seen_serial:
                self._seen_serial, self._waited_before = serial, previous
            previous = waited
            if not serial % 2:
                continue
            now = time.monotonic()
            # Wall time less the time the thread was runnable but not running.
            overdue = now - started - (waited - self._waited_before) > self.timeout
            if not (overdue and self._serial == serial):
                continue
            # The first interrupt of an overdue call, and again every second while it
            # still runs: Python drops an exception raised while a garbage-collector
            # callback runs, and a sleep interrupted that way simply resumes.
            first = self.fired is None
            if first or (self._fired_serial == serial and now - self._fired_at >= _REFIRE):
                if first:
                    self.fired = self._current()
                self._fired_serial, self._fired_at = serial, now
                if hasattr(signal, "pthread_kill") and main is not None:
                    # A real signal: it also breaks a sleep or a wait in the adapter.
                    signal.pthread_kill(main, WATCHDOG_SIGNAL)
                else:  # pragma: no cover - Windows
                    _thread.interrupt_main(signal.Signals(WATCHDOG_SIGNAL))

    def call(self, describe: Callable[[], str], function: Callable[..., Any], *args: Any) -> Any:
        """Return ``function(*args)``; raise :class:`CallTimeout` if it overran the limit.

        ``describe`` names the call for the report; it is only called when needed.
        """
        self._current = describe
        self._started = time.monotonic()
        self._serial += 1
        try:
            # The watchdog's interrupt can land after the call returned, up to the
            # moment the serial says so: the outer block catches it there too.
            try:
                result = function(*args)
            finally:
                self._serial += 1
        except _Overdue:
            raise CallTimeout(self.fired or describe(), self.timeout or 0.0) from None
        except KeyboardInterrupt as error:
            if self.ctrl_c is False:  # not Ctrl-C: the adapter's own
                raise RaisedBaseException(error).with_traceback(error.__traceback__) from error
            raise
        except (SystemExit, GeneratorExit) as error:
            raise RaisedBaseException(error).with_traceback(error.__traceback__) from error
        finally:
            self._restore_handlers()
        if self.timeout is not None and (
            self.fired is not None  # the adapter swallowed the interrupt, or has its own handler
            or (not self._interruptible and time.monotonic() - self._started > self.timeout)
        ):
            raise CallTimeout(self.fired or describe(), self.timeout)
        return result

    def _restore_handlers(self) -> None:
        """Put the kit's handlers back if the call replaced them (ignored its signal, say).

        Otherwise the next call the adapter makes could never be interrupted, by
        the watchdog or by Ctrl-C.
        """
        if self._handler is not None and signal.getsignal(signal.SIGINT) is not self._handler:
            signal.signal(signal.SIGINT, self._handler)
        if self._thread is not None and signal.getsignal(WATCHDOG_SIGNAL) != self._on_signal:
            signal.signal(WATCHDOG_SIGNAL, self._on_signal)
