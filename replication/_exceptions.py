"""The exceptions the ground floor raises: bad input, a frozen record, keys and signatures.

They sit below every other module (the validators, the frozen containers, the
records, the keys raise them), so they import nothing of ours. Import them from
:mod:`replication.errors`, which re-exports them and draws the whole tree.
"""

from __future__ import annotations

import attrs

__all__ = [
    "BadSignatureError",
    "ImmutableError",
    "InvalidInputError",
    "InvalidKeyError",
    "InvalidTypeError",
    "InvalidValueError",
    "ReplicationError",
    "SignatureError",
]


class ReplicationError(Exception):
    """The root of every exception ``replication`` raises."""


class InvalidInputError(ReplicationError):
    """Bad input: names the field, what was expected and what was received; changes nothing.

    The message reads ``cpu_limit must be > 0, got nan (a finite number)``:
    the field, the bound it missed, the value, and, when given, the ``kind``
    of value the field takes. The bound comes first so that the older API's
    phrases (``cpu_limit must be > 0``) still read as they did.
    """

    def __init__(self, field: str, expected: str, got: object, *, kind: str | None = None) -> None:
        self.field = field
        self.expected = expected
        self.got = got
        self.kind = kind
        message = f"{field} must be {expected}, got {got!r}"
        super().__init__(f"{message} ({kind})" if kind else message)


class InvalidValueError(InvalidInputError, ValueError):
    """A value of the right type but outside what the field accepts."""


class InvalidTypeError(InvalidInputError, TypeError):
    """A value of the wrong type."""


class ImmutableError(ReplicationError, attrs.exceptions.FrozenInstanceError):
    """An attempt to assign to a frozen record; the message names the copy-with way."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.args = (message,)
        self.msg = message

    def __str__(self) -> str:
        return self.msg


class SignatureError(ReplicationError):
    """A signing or verification problem."""


class InvalidKeyError(SignatureError, ValueError):
    """A key that must not be used: wrong type, wrong length, small order, off the curve."""


class BadSignatureError(SignatureError):
    """A signature that is malformed or does not verify under the given key."""
