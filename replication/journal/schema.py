"""Strict JSON, and the shipped JSON Schema every trace line and journal row must follow.

Nothing reads a line of a trace or a row of a journal before it passes here:

* :func:`load_json` parses strictly: UTF-8 only, no duplicate keys, no NaN,
  no infinities (``1e999`` included), no lone surrogates (I-JSON, RFC 7493,
  which RFC 8785 canonical bytes need), nesting at most :data:`MAX_DEPTH`
  levels deep (a snapshot's own limit, ``MAX_JSON_DEPTH``, plus the levels
  around it). Whatever it returns, every later step (decoding, hashing,
  rendering, canonical bytes) can handle without a ``RecursionError`` or a
  ``UnicodeEncodeError``.
* :func:`step_problem`, :func:`header_problem` and
  :func:`journal_header_problem` validate a value against the definitions of
  ``trace.schema.json`` (JSON Schema 2020-12), the format's documentation for
  every implementation (specs/07-journal.md, R-TRACE-1, R-JOURNAL-1).
  ``jsonschema-rs`` validates a line in microseconds, so every line and every
  row is validated, not a sample.
* :func:`same_json` compares two JSON values as their canonical bytes would:
  ``false`` is not ``0``, ``true`` is not ``1``, while ``512`` and ``512.0``
  are one number.
"""

from __future__ import annotations

import json
import math
import re
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema_rs

from replication._validation import MAX_JSON_DEPTH
from replication.encoding import canonical_json

__all__ = [
    "MAX_DEPTH",
    "SCHEMA_PATH",
    "canonical_bytes",
    "header_problem",
    "journal_header_problem",
    "load_json",
    "same_json",
    "step_problem",
]

#: The JSON Schema every line of a trace follows (and every row of a journal, as a step).
SCHEMA_PATH = Path(__file__).with_name("trace.schema.json")
#: How deeply a line or row may nest: a snapshot's own limit plus the levels around it.
MAX_DEPTH = MAX_JSON_DEPTH + 8
#: A code point JSON can escape but UTF-8 cannot carry: a surrogate left alone.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: How much of a schema error's message a one-line report keeps.
_MESSAGE_LIMIT = 160


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        keys = [key for key, _ in pairs]
        duplicated = sorted({key for key in keys if keys.count(key) > 1})
        raise ValueError(f"duplicate keys {duplicated}")
    return result


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text[:20]} is beyond the range of a double")
    return value


def load_json(text: str | bytes, *, strict_keys: bool = True) -> Any:
    """Parse JSON strictly (see the module's docstring); raise ``ValueError`` naming why.

    ``strict_keys=False`` skips the check for duplicate keys, which costs a
    Python call per object: for a controller replaying its own journal, whose
    every row is under the hash chain. Every other check stays.
    """
    if isinstance(text, bytes):
        text = text.decode("utf-8")  # a UnicodeDecodeError is a ValueError
    try:
        value = json.loads(
            text,
            object_pairs_hook=_refuse_duplicates if strict_keys else None,
            parse_constant=_refuse_constant,
            parse_float=_finite,
        )
    except RecursionError:
        raise ValueError(f"nesting too deep: more than {MAX_DEPTH} levels") from None
    # Each walk only when the text could hold what it looks for: both are rare.
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _check_depth(value)
    if "\\u" in text:
        _check_strings(value)
    return value


def _check_depth(value: object) -> None:
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        children = item.values() if type(item) is dict else item if type(item) is list else ()
        for child in children:
            if type(child) in {dict, list}:
                if depth >= MAX_DEPTH:
                    raise ValueError(f"nesting too deep: more than {MAX_DEPTH} levels")
                pending.append((child, depth + 1))


def _check_strings(value: object) -> None:
    pending = [value]
    while pending:
        item = pending.pop()
        if type(item) is dict:
            pending.extend(item)
            pending.extend(item.values())
        elif type(item) is list:
            pending.extend(item)
        elif type(item) is str and _SURROGATE.search(item):
            raise ValueError(f"a lone surrogate in {item[:40]!r} (not Unicode text)")


def canonical_bytes(value: object) -> bytes:
    """Return the RFC 8785 canonical bytes of a JSON value, Python's encoder when it can.

    :func:`~replication.encoding.canonical_json`, which takes Python's encoder
    for the values it writes exactly as RFC 8785 does (ASCII keys, integers
    within 2^53, floats with a fraction and no exponent), the ``rfc8785``
    package for anything else.
    """
    return canonical_json(value)


def same_json(left: object, right: object) -> bool:
    """Whether two JSON values are the same value: what their canonical bytes compare.

    Unlike ``==``, a boolean is never a number (``False == 0`` in Python);
    numbers compare by value, as RFC 8785 writes ``512.0`` as ``512``.
    """
    pending: list[tuple[Any, Any]] = [(left, right)]
    while pending:
        a, b = pending.pop()
        kind, other = type(a), type(b)
        if kind is dict:
            if other is not dict or a.keys() != b.keys():
                return False
            pending.extend((a[key], b[key]) for key in a)
        elif kind is list:
            if other is not list or len(a) != len(b):
                return False
            pending.extend(zip(a, b, strict=True))
        elif kind in {int, float} and other in {int, float}:
            if a != b:
                return False
        elif kind is not other or a != b:  # str, bool, None: only their own kind
            return False
    return True


# -- the schema ----------------------------------------------------------------------------


@cache
def _validator(definition: str) -> jsonschema_rs.Draft202012Validator:
    """Return a validator of one definition of the shipped schema (and those it names)."""
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return jsonschema_rs.Draft202012Validator(
        {"$schema": schema["$schema"], "$defs": schema["$defs"], "$ref": f"#/$defs/{definition}"}
    )


def _problem(definition: str, value: object) -> str | None:
    validator = _validator(definition)
    if validator.is_valid(value):
        return None
    error = next(iter(validator.iter_errors(value)))
    where = "/".join(str(part) for part in error.instance_path)
    message = error.message
    if len(message) > _MESSAGE_LIMIT:
        message = message[: _MESSAGE_LIMIT - 3] + "..."
    return f"{where or 'the line'}: {message} (trace.schema.json, $defs/{definition})"


def step_problem(value: object) -> str | None:
    """Why ``value`` is not a step of the schema (a trace's step, a journal's row), or ``None``."""
    return _problem("step", value)


def header_problem(value: object) -> str | None:
    """Why ``value`` is not a trace's header line, or ``None``."""
    return _problem("header", value)


def journal_header_problem(value: object) -> str | None:
    """Why ``value`` is not a journal's header, or ``None``."""
    return _problem("journal_header", value)
