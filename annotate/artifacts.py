"""Our own JSON files read back (``metrics.json``, ``curve.json``, apply's manifest, agreement figures).

Each artifact has one shape, kept next to its writer, and one reader that checks a file against it
before anything uses a value: a list where a mapping belongs, a key missing, text where a number
belongs, JSON nested past Python's limit is one :class:`InputError` naming the file and the key,
never an ``AttributeError`` three calls later. A shape is written as the data it describes:

- ``int``, ``float`` (any JSON number), ``str``, ``bool``: a value of that type (``true`` is no number);
- ``{"key": shape, ...}``: an object with at least these keys; :class:`Maybe` marks a key that may be
  absent or ``null``;
- ``[shape]``: a list of such values; ``(a, b)`` a list of exactly these; :class:`Each` an object whose
  every value is such;
- ``object``: anything.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from annotate.errors import AnnotateError, InputError
from annotate.targets import os_reason


@dataclass(frozen=True)
class Maybe:
    """A key that may be absent, or a value that may be ``null``."""

    shape: object


@dataclass(frozen=True)
class Each:
    """An object of any keys whose every value has ``shape``."""

    shape: object


_NAMES = {int: "an integer", float: "a number", str: "text", bool: "true or false", dict: "an object", list: "a list"}


def _found(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return _NAMES[type(value)]
    if isinstance(value, str):
        return "text"
    return f"{value!r}"


def shape_problem(value: object, shape: object, where: str = "") -> str:
    """Where and how ``value`` departs from ``shape`` ("" when it fits): ``systems.ner.labels: expected a list, …``."""
    here = where or "the top level"
    if isinstance(shape, Maybe):
        return "" if value is None else shape_problem(value, shape.shape, where)
    if shape is object:
        return ""
    if shape in (int, float, str, bool):
        fits = isinstance(value, shape) if shape in (str, bool) else _is_number(value, integer=shape is int)
        return "" if fits else f"{here}: expected {_NAMES[shape]}, found {_found(value)}"
    if isinstance(shape, (dict, Each)):
        if not isinstance(value, dict):
            return f"{here}: expected an object, found {_found(value)}"
        keys = shape.items() if isinstance(shape, dict) else ((key, shape.shape) for key in value)
        for key, inner in keys:
            inside = f"{where}.{key}" if where else str(key)
            if key not in value and not isinstance(inner, Maybe):
                return f"{here}: no {key!r}"
            problem = shape_problem(value.get(key), inner, inside)
            if problem:
                return problem
        return ""
    if isinstance(shape, (list, tuple)):
        if not isinstance(value, list):
            return f"{here}: expected a list, found {_found(value)}"
        if isinstance(shape, tuple) and len(value) != len(shape):
            return f"{here}: expected {len(shape)} values, found {len(value)}"
        for number, item in enumerate(value):
            inner = shape[number] if isinstance(shape, tuple) else shape[0]
            problem = shape_problem(item, inner, f"{where}[{number}]")
            if problem:
                return problem
        return ""
    raise TypeError(f"not a shape: {shape!r}")


def _is_number(value: object, *, integer: bool) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if integer else isinstance(value, (int, float))


def read_artifact(
    path: str | Path, shape: object, what: str, *, error: type[AnnotateError] = InputError, hint: str = ""
) -> dict:
    """The JSON object in ``path`` if it has ``shape``; otherwise one ``error`` naming the file, the key and ``what``
    (with its article: "a metrics file of annotate").

    ``hint`` (the command that writes the file again) ends the line of a file that is absent or malformed.
    """
    path = Path(path)
    tail = f"; {hint}" if hint else ""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise error(f"{path}: no such file{tail}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read the {what} ({os_reason(exc)})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not {what} (not valid UTF-8 at byte {exc.start}){tail}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not {what} (invalid JSON: {exc.msg} at line {exc.lineno}){tail}") from None
    except RecursionError:
        raise error(f"{path}: not {what} (JSON nested too deeply){tail}") from None
    try:
        problem = shape_problem(data, shape)
    except RecursionError:
        problem = "nested too deeply"
    if problem:
        raise error(f"{path}: not {what} ({problem}){tail}")
    return data
