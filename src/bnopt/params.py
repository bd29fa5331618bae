"""Chapter parameters from the outside world, coerced to the types of the chapter's defaults.

One function, `coerce_parameters`, serves every path that sets a chapter's parameters: the book
build (profile YAML), the command line (`--set`) and the notebooks themselves (papermill `-p`/`-f`,
through `chapter_args`). The type of each parameter is the type of its default in the chapter's
`parameters` cell:

- float: numbers, and strings that are numbers ('1e-3' from YAML 1.1 or papermill) -> float;
- int: integers, integral floats and integer strings -> int; '1.5' or 'abc' are rejected;
- bool: true/false (and the strings 'true'/'false');
- str: strings only;
- list: a list is coerced element by element (element type from the default's elements); a scalar
  becomes a one-element list, so `-p seeds 0` is [0] and `-p norms batch` is ['batch'] (never
  ['b', 'a', ...]); a string that spells a list ('[0, 1]') is parsed.

Ranges are checked where the values become a run (`RunConfig`, which names the field, the value
and what is allowed). Unknown names are errors that list the chapter's parameters.
"""
from __future__ import annotations

import ast
import math
from pathlib import Path


class ParameterError(ValueError):
    """A chapter parameter is unknown or of the wrong type; the message names it and what is allowed."""


def _as_number(name: str, value, kind: type):
    what = "an integer" if kind is int else "a number"
    v = value
    if isinstance(v, str):
        try:
            v = float(v.strip().replace("_", ""))
        except ValueError:
            raise ParameterError(f"parameter {name!r} must be {what}, got {value!r}") from None
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ParameterError(f"parameter {name!r} must be {what}, got {value!r}")
    if kind is int:
        if isinstance(v, float) and not (math.isfinite(v) and v.is_integer()):
            raise ParameterError(f"parameter {name!r} must be an integer, got {value!r}")
        return int(v)
    return float(v)


def _scalar(name: str, value, default):
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        raise ParameterError(f"parameter {name!r} must be true or false, got {value!r}")
    if isinstance(default, int):
        return _as_number(name, value, int)
    if isinstance(default, float):
        return _as_number(name, value, float)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise ParameterError(f"parameter {name!r} must be a string, got {value!r}")
        return value
    return value                          # None or another type: taken as given


def coerce(name: str, value, default):
    """`value` as the type of `default` (see the module docstring), or ParameterError."""
    if isinstance(default, (list, tuple)):
        if isinstance(value, str) and value.strip().startswith("["):
            try:
                value = ast.literal_eval(value.strip())
            except (ValueError, SyntaxError):
                raise ParameterError(f"parameter {name!r} must be a list, got {value!r}") from None
        items = list(value) if isinstance(value, (list, tuple)) else [value]
        if not default:
            return items
        proto = 0.0 if any(isinstance(d, float) for d in default) else default[0]
        return [_scalar(f"{name}[{i}]", v, proto) for i, v in enumerate(items)]
    return _scalar(name, value, default)


def coerce_parameters(declared: dict, given: dict, where: str) -> dict:
    """`given` coerced to the types of `declared` (the chapter's defaults). Unknown names raise a
    ParameterError that lists the valid ones."""
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ParameterError(f"unknown parameter(s) {unknown} for {where}; its parameters: {sorted(declared)}")
    return {k: coerce(k, v, declared[k]) for k, v in given.items()}


def chapter_args(chapter: str, namespace: dict) -> dict:
    """In a chapter notebook, after papermill's injected cell: every declared parameter, coerced.
    Use as `globals().update(chapter_args("training", globals()))`."""
    from .build import book_dir, notebook_parameters
    from .paths import repo_root

    root = repo_root()
    if root is None:
        raise ParameterError("chapter_args needs the bnopt checkout (an editable install) to read the "
                             "chapter's declared parameters")
    declared = notebook_parameters(Path(book_dir(root)) / f"{chapter}.ipynb")
    return coerce_parameters(declared, {k: namespace[k] for k in declared if k in namespace}, f"chapter {chapter!r}")
