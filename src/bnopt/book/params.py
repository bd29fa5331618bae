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

The book's own files are read here too: the table of contents (`_toc.yml`), the profiles
(`book/params/<profile>.yaml`, {chapter: {parameter: value}}) and each chapter's one cell tagged
`parameters`. An unknown profile, chapter or parameter is a BuildError naming the valid ones.
"""
from __future__ import annotations

import ast
import json
import math
import re
from pathlib import Path

import yaml

from bnopt.runs.paths import repo_root


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

    root = repo_root()
    if root is None:
        raise ParameterError("chapter_args needs the bnopt checkout (an editable install) to read the "
                             "chapter's declared parameters")
    declared = notebook_parameters(Path(book_dir(root)) / f"{chapter}.ipynb")
    return coerce_parameters(declared, {k: namespace[k] for k in declared if k in namespace}, f"chapter {chapter!r}")


class BuildError(RuntimeError):
    pass


class _Loader(yaml.SafeLoader):
    """YAML 1.1 reads '1e-3' as a string; this loader reads it as the float it obviously is."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)$|^[-+]?(?:\d+\.\d*|\.\d+)$"),
    list("-+0123456789."))


def _no_duplicate_keys(loader, node, deep=False):
    """A mapping whose explicit keys are unique (keys merged in with `<<:` may be overridden)."""
    seen = {}
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
            continue
        key = key_node.value
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first at line {seen[key] + 1})", key_node.start_mark)
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node, deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicate_keys)


def load_yaml(path: Path) -> dict:
    """A YAML file as a dict; a syntax error or a duplicate key raises BuildError naming the file
    and line (YAML would otherwise keep the last of two equal keys silently)."""
    try:
        data = yaml.load(Path(path).read_text(), Loader=_Loader) or {}
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        raise BuildError(f"{where}: {getattr(e, 'problem', None) or e}") from None
    if not isinstance(data, dict):
        raise BuildError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def book_dir(root: Path) -> Path:
    return root / "book"


def profiles(root: Path) -> list[str]:
    return sorted(p.stem for p in (book_dir(root) / "params").glob("*.yaml"))


def toc_files(root: Path) -> list[str]:
    """Every file named in _toc.yml, in order."""
    toc = load_yaml(root / "_toc.yml")
    out = [toc["root"]]

    def walk(entries):
        for e in entries or []:
            if "file" in e:
                out.append(e["file"])
            walk(e.get("sections"))
            for part in e.get("chapters", []) or []:
                walk([part])

    for part in toc.get("parts", []):
        walk(part.get("chapters"))
    walk(toc.get("chapters"))
    return out


def chapters(root: Path) -> list[Path]:
    """The notebooks of the table of contents, in order."""
    return [book_dir(root) / f"{f}.ipynb" for f in toc_files(root)
            if (book_dir(root) / f"{f}.ipynb").exists()]


def notebook_parameters(nb_path: Path) -> dict:
    """{name: default} of the chapter's one cell tagged 'parameters' (NAME = literal lines only).

    Parsed with `ast`, not papermill's line regex (which drops a parameter whose comment has '=').
    """
    nb = json.loads(Path(nb_path).read_text())
    cells = [c for c in nb.get("cells", []) if "parameters" in c.get("metadata", {}).get("tags", [])]
    if len(cells) != 1:
        raise BuildError(f"{nb_path}: needs exactly one cell tagged 'parameters', found {len(cells)}")
    src = cells[0]["source"]
    src = "".join(src) if isinstance(src, list) else src
    params = {}
    for node in ast.parse(src).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else \
            node.target if isinstance(node, ast.AnnAssign) else None
        if not isinstance(target, ast.Name) or node.value is None:
            raise BuildError(f"{nb_path}: the parameters cell may hold only `name = literal` lines; "
                             f"line {node.lineno} is not one")
        try:
            params[target.id] = ast.literal_eval(node.value)
        except ValueError:
            raise BuildError(f"{nb_path}: parameter {target.id!r} (line {node.lineno}) is not a literal") from None
    return params


def profile_parameters(root: Path, profile: str) -> dict[str, dict]:
    """{chapter stem: {param: value}} for a profile, checked against the chapters' parameter cells."""
    valid = profiles(root)
    if profile not in valid:
        raise BuildError(f"unknown profile {profile!r}; valid choices: {', '.join(valid)} "
                         f"(files in {book_dir(root) / 'params'})")
    params = load_yaml(book_dir(root) / "params" / f"{profile}.yaml")
    # Top-level keys starting with '_' only hold YAML anchors (values several chapters share).
    params = {k: v for k, v in params.items() if not str(k).startswith("_")}
    nbs = {p.stem: p for p in chapters(root)}
    unknown_ch = sorted(set(params) - set(nbs))
    if unknown_ch:
        raise BuildError(f"profile {profile!r} names chapters not in _toc.yml: {unknown_ch}; "
                         f"chapters: {sorted(nbs)}")
    out = {}
    for stem in nbs:
        values = params.get(stem) or {}
        if not isinstance(values, dict):
            raise BuildError(f"profile {profile!r}: section {stem!r} must be a mapping of parameters, got {values!r}")
        out[stem] = check_parameters(nbs[stem], values, f"chapter {stem!r} (profile {profile!r})")
    return out


def check_parameters(nb_path: Path, values: dict, where: str | None = None) -> dict:
    """`values` coerced to the chapter's declared parameter types (bnopt.book.params), or BuildError."""
    try:
        return coerce_parameters(notebook_parameters(nb_path), values, where or f"chapter {nb_path.stem!r}")
    except ParameterError as e:
        raise BuildError(str(e)) from None
