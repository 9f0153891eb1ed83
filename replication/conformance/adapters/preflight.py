"""The adapter contract, checked before the run: load, construct, start, observe.

Everything that would make a run meaningless is found here, before the first
example, and raised as :class:`SetupError` with one or two lines saying what
is wrong and where (the adapter's file and line, when there is one): a target
that does not import (a missing module, a syntax error), a factory that raises,
methods missing without being declared gaps, unknown gaps or unreported fields,
and a ``start`` or ``observe`` that fails or returns what the protocol does not
allow. The command line turns a :class:`SetupError` into exit code 2.
"""

from __future__ import annotations

import traceback
from collections.abc import Set
from typing import TYPE_CHECKING, Any

import attrs

from replication._resolve import UnresolvedNameError, resolve
from replication.conformance.adapters.adapter import (
    LATER_ACTIONS,
    OPTIONAL_ACTIONS,
    SIGNING_METHODS,
    Implementation,
)
from replication.conformance.adapters.calls import (
    CallTimeout,
    ContractViolation,
    Watchdog,
    locate,
    shown,
    where_defined,
)
from replication.conformance.adapters.observations import OPTIONAL_FIELDS, checked_observation
from replication.conformance.fixtures import KEY, contract_from
from replication.conformance.strategies import CLOCK_START
from replication.model import Manifest, ResourceSpec

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["Adapter", "SetupError", "load_adapter", "load_factory"]

#: Every method an adapter must have unless it declares the action a gap.
REQUIRED_METHODS = ("start", "issue", "register", "launch", "observe")

#: The contract of the probe: small, and with nothing unusual in it.
_PROBE_CONTRACT = {
    "max_depth": 2,
    "max_replicas": 4,
    "cooldown_seconds": 1.0,
    "expiration_seconds": None,
    "clock_skew_seconds": 0.0,
    "stop_conditions": (),
    "heartbeat_timeout_seconds": 30.0,
}


class SetupError(Exception):
    """The implementation cannot be run at all: one or two lines saying what and where.

    ``cause`` is the exception behind it, if any (``--debug`` prints its traceback).
    """

    def __init__(self, message: str, *, where: str | None = None) -> None:
        self.message = message
        self.where = where
        super().__init__(message if where is None else f"{message}\n  at {where}")


@attrs.frozen
class Adapter:
    """An adapter that passed the preflight, and what it declared."""

    name: str
    factory: Callable[[], Implementation]
    #: Every action the kit leaves out: declared gaps, and later actions not provided.
    gaps: frozenset[str]
    #: The optional fields it declares unreported; ``None`` when it declares nothing.
    unreported: frozenset[str] | None
    version: str | None
    #: The later actions (see ``LATER_ACTIONS``) it neither provides nor declares.
    not_provided: frozenset[str] = frozenset()
    #: Whether it signs with its own scheme (``sign``, ``sign_with_another_key``, ``verify``).
    signs: bool = False


def _import_error(module_name: str, error: BaseException) -> SetupError:
    if isinstance(error, SyntaxError):
        where = f"{shown(error.filename)}:{error.lineno}" if error.filename else None
        return SetupError(
            f"cannot import {module_name}: {type(error).__name__}: {error.msg}", where=where
        )
    lines = locate(error)
    where = lines[0].removeprefix("raised at ") if lines else None
    return SetupError(
        f"importing {module_name} raised {type(error).__name__}: {error}", where=where
    )


def load_factory(target: str) -> Callable[[], Implementation]:
    """Return the factory named by ``"package.module:attribute"``, or raise :class:`SetupError`.

    ``"exec:COMMAND"`` names an implementation COMMAND runs, spoken to over the
    wire protocol (``--exec COMMAND`` on the command line).

    The name is resolved as every module argument is (:func:`replication._resolve.resolve`):
    the current directory is searched too, as ``python -m`` and pytest do, so an
    adapter in a file next to the user works from the console script as well.
    """
    if target.startswith("exec:"):
        # An implementation in any language, spoken to over the wire (specs/09).
        from replication.conformance.wire.client import WireStartError, target_for  # noqa: PLC0415

        try:
            return target_for(target.removeprefix("exec:"))  # type: ignore[return-value]
        except WireStartError as error:
            raise SetupError(error.message) from None
    module_name, separator, attribute = target.partition(":")
    if not separator or not module_name or not attribute:
        message = f"an implementation must be named 'package.module:factory', got {target!r}"
        raise SetupError(message)
    try:
        found = resolve(target)
    except UnresolvedNameError as error:
        raise SetupError(str(error)) from None
    except Exception as error:
        raise _import_error(module_name, error) from error
    if not callable(found):
        message = f"{target} must be a class or a zero-argument function, got {found!r}"
        raise SetupError(message)
    return found  # type: ignore[no-any-return]


def _called(what: str, error: BaseException) -> SetupError:
    lines = locate(error)
    where = lines[0].removeprefix("raised at ") if lines else None
    return SetupError(f"{what} raised {type(error).__name__}: {error}", where=where)


def _names(adapter: object, attribute: str, allowed: frozenset[str]) -> frozenset[str] | None:
    value = getattr(adapter, attribute, None)
    if value is None:
        return None
    where = where_defined(type(adapter))
    if isinstance(value, str) or not isinstance(value, Set | list | tuple):
        message = f"the adapter's {attribute} must be a frozenset of names, got {value!r}"
        raise SetupError(message, where=where)
    names = frozenset(str.__str__(name) for name in value if isinstance(name, str))
    unknown = sorted({repr(name) for name in value} - {repr(name) for name in names}) + sorted(
        names - allowed
    )
    if unknown:
        message = f"the adapter's {attribute} may only name {sorted(allowed)}, got {unknown}"
        raise SetupError(message, where=where)
    return names


def _check_methods(adapter: object, gaps: frozenset[str]) -> frozenset[str]:
    """Raise if a method is missing; return the later actions the adapter does not provide."""
    absent = {
        name
        for name in (*REQUIRED_METHODS, *sorted(OPTIONAL_ACTIONS - {"generated_ids"}))
        if name not in gaps and not callable(getattr(adapter, name, None))
    }
    later = frozenset(absent & LATER_ACTIONS)
    missing = [
        name for name in (*REQUIRED_METHODS, *sorted(OPTIONAL_ACTIONS)) if name in absent - later
    ]
    if missing:
        optional = [name for name in missing if name in OPTIONAL_ACTIONS]
        message = f"the adapter lacks {missing}: implement them"
        if optional:
            message += f", or declare {optional} as gaps (gaps = frozenset({{...}}))"
        raise SetupError(message, where=where_defined(type(adapter)))
    return later


def _signs(adapter: object) -> bool:
    provided = [name for name in SIGNING_METHODS if callable(getattr(adapter, name, None))]
    if provided and len(provided) < len(SIGNING_METHODS):
        lacking = [name for name in SIGNING_METHODS if name not in provided]
        message = (
            f"an adapter that signs with its own scheme provides {list(SIGNING_METHODS)}; "
            f"this one has {provided} but lacks {lacking}"
        )
        raise SetupError(message, where=where_defined(type(adapter)))
    return bool(provided)


def _generates_ids(adapter: Implementation, watchdog: Watchdog) -> bool:
    """Whether ``issue(..., worker_id=None)`` gives a manifest (an older adapter may not)."""
    try:
        issued = watchdog.call(lambda: "issue(None, None, ...)", adapter.issue, None, None,
                               ResourceSpec(0.5, 256), {})  # fmt: skip
    except CallTimeout as timeout:
        message = f"issue() did not return within {timeout.seconds:g} s (--timeout)"
        raise SetupError(message, where=where_defined(adapter.issue)) from None
    except Exception:  # noqa: BLE001 - an adapter without generated ids may fail any way
        return False
    return isinstance(issued, Manifest)


def _probe_call(watchdog: Watchdog, name: str, method: Callable[..., Any], *args: Any) -> Any:
    """Call ``method`` before the run: a hang or a crash means the adapter cannot run."""
    try:
        return watchdog.call(lambda: f"{name}()", method, *args)
    except CallTimeout as timeout:
        message = f"{name}() did not return within {timeout.seconds:g} s (--timeout)"
        raise SetupError(message, where=where_defined(method)) from None
    except Exception as error:
        raise _called(f"{name}()", error) from error


def _probe(adapter: Implementation, watchdog: Watchdog) -> None:
    """Start a system and observe it once, as every test case will."""
    contract, _ = contract_from(_PROBE_CONTRACT)
    _probe_call(watchdog, "start", adapter.start, contract, KEY, lambda: CLOCK_START)
    observed = _probe_call(watchdog, "observe", adapter.observe)
    try:
        initial = checked_observation(observed)
    except ContractViolation as violation:
        raise SetupError(violation.message, where=where_defined(adapter.observe)) from None
    if initial.workers or initial.containers or initial.kill_switch_engaged:
        raise SetupError(
            "observe() right after start() must show an empty system (no workers, no "
            f"containers, kill switch off), got {len(initial.workers)} workers, "
            f"{len(initial.containers)} containers, kill switch {initial.kill_switch_engaged}",
            where=where_defined(adapter.observe),
        )


def load_adapter(
    target: str | Callable[[], Implementation],
    *,
    strict: bool = False,
    watchdog: Watchdog | None = None,
) -> Adapter:
    """Load, construct and probe an adapter; raise :class:`SetupError` if it cannot be run."""
    if isinstance(target, str):
        name, factory = target, load_factory(target)
    else:
        name = f"{target.__module__}:{target.__qualname__}"
        factory = target
    guard = watchdog or Watchdog(None)
    try:
        probe = guard.call(lambda: f"{name}()", factory)
    except CallTimeout as timeout:
        message = f"constructing the adapter ({name}()) did not return within {timeout.seconds:g} s"
        raise SetupError(message, where=where_defined(factory)) from None
    except Exception as error:
        raise _called(f"constructing the adapter ({name}())", error) from error
    gaps = _names(probe, "gaps", OPTIONAL_ACTIONS) or frozenset()
    if strict and gaps:
        message = f"strict mode forbids declared gaps, and this adapter declares {sorted(gaps)}"
        raise SetupError(message, where=where_defined(type(probe)))
    not_provided = _check_methods(probe, gaps)
    unreported = _names(probe, "unreported", OPTIONAL_FIELDS)
    signs = _signs(probe)
    _probe(probe, guard)
    if "generated_ids" not in gaps and not _generates_ids(probe, guard):
        not_provided |= {"generated_ids"}
    if strict and not_provided:
        message = (
            f"strict mode needs every action, and this adapter does not provide "
            f"{sorted(not_provided)} (added to the protocol after its first version)"
        )
        raise SetupError(message, where=where_defined(type(probe)))
    version = getattr(probe, "version", None)
    return Adapter(name, factory, gaps | not_provided, unreported,
                   None if version is None else str(version), not_provided, signs)  # fmt: skip


def format_traceback(error: BaseException) -> str:
    """Return the whole traceback of ``error`` (``--debug``)."""
    return "".join(traceback.format_exception(type(error), error, error.__traceback__))
