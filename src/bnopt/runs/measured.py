"""Measurements made on finished runs (a trained network's Hessian spectrum, its landscape at one point), cached and
committed like the runs themselves, so that a build reads them instead of computing them.

A measurement is a named function of one run (its config, and its result where it needs the trained weights) and of
its parameters. Its entry is keyed by a hash of {measurement name, run key, parameters} and, where it reads the run's
result (its `reads_result(params)`), the digest of that result's bits (`meta.result_sha256`): the run key already
holds the run's full config and its data's fingerprint, and the digest tells apart two trainings of one config under
other rounding (a measurement of one is never read for the other). The entries live in a cache of their own
(`<data home>/measured/`, the run cache's class: atomic write-once entries, safe with several writers, a corrupt one
recomputed), apart from the runs, so that nothing that lists runs meets them. Each entry's meta records where it was computed (commit,
library versions, `bnopt.runs.numerics` and the thread count, which together fix its bits; wall time).

A measurement computed on another machine keeps that machine's rounding, as a committed run does: a build that reads
it prints the same number on every CPU. `recheck` computes an entry again and compares it with the stored one (bit
for bit under the same numerics, else within a relative tolerance on its summary numbers), which is how CI checks a
sample of the committed ones (`bnopt verify-runs`).

The functions themselves belong to the layer that defines them (the book's chapters register theirs with
`register`); this module only stores, finds and checks.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable

import torch

from bnopt.runs.cache import RunCache, provenance
from bnopt.runs.numerics import numerics, threads
from bnopt.runs.paths import data_home

MEASURED_DIR = "measured"        # <data home>/measured/<key>/: the entries
RTOL = 1e-3                      # [choice] relative tolerance of `recheck` under other numerics (float32 rounding
#                                  moves a spectrum's moments or a landscape's width by about 1e-6 relative)


class MeasurementError(ValueError):
    """An unknown measurement, or a stored one that a recomputation does not reproduce."""


@dataclass(frozen=True)
class Measurement:
    """compute(cfg, result, params) -> dict of tensors and numbers; summary(value) -> {name: float}, the numbers a
    recheck under other numerics compares; reads_result(params) -> whether `compute` reads the run's result (its
    trained weights) with these params, not only its config."""
    compute: Callable
    summary: Callable
    reads_result: Callable = lambda params: True


REGISTRY: dict[str, Measurement] = {}


def register(name: str, compute: Callable, summary: Callable, reads_result: Callable | None = None) -> None:
    """Make `name` a measurement that `measured` can cache and `recheck` can recompute (idempotent). `reads_result`
    (params -> bool; default: always) says when it reads the run's result, which puts the result's digest in its key."""
    REGISTRY[name] = Measurement(compute, summary, reads_result or (lambda params: True))


def measurement(name: str) -> Measurement:
    if name not in REGISTRY:
        raise MeasurementError(f"unknown measurement {name!r}: registered: {', '.join(sorted(REGISTRY)) or 'none'}")
    return REGISTRY[name]


def measure_cache(root=None) -> RunCache:
    """The cache of measurement entries (default `<data home>/measured/`)."""
    return RunCache(root or data_home() / MEASURED_DIR)


def material(name: str, run_key: str, params: dict, run_result: str | None = None) -> dict:
    """An entry's key material: what it is a function of (`run_result`: the digest of the run's result, where the
    measurement reads it)."""
    out = {"measurement": name, "run": run_key, "params": params}
    return {**out, "run_result": run_result} if run_result is not None else out


def measured_key(name: str, run_key: str, params: dict, run_result: str | None = None) -> str:
    """The cache key of measurement `name` with `params` on the run `run_key` (whose result has the digest
    `run_result`, where the measurement reads it).

    >>> a, b = measured_key("m", "abc", {"n": 1}), measured_key("m", "abc", {"n": 2})
    >>> len(a), a == measured_key("m", "abc", {"n": 1}), a == b, a == measured_key("m", "abc", {"n": 1}, "d1")
    (16, True, False, False)
    """
    return RunCache.key(material(name, run_key, params, run_result))


def key_material(name: str, result: dict, params: dict) -> dict:
    """The key material of measurement `name` with `params` on the run whose cached result is `result` (its meta
    names the run's key and its result's digest)."""
    m = measurement(name)
    meta = result.get("meta", {}) if isinstance(result, dict) else {}
    if "key" not in meta or "result_sha256" not in meta:
        raise MeasurementError(f"measurement {name!r} needs the run's cached result (its meta names the run key and "
                               f"the result's digest): run it with bnopt.runs.launch.run")
    return material(name, meta["key"], params, meta["result_sha256"] if m.reads_result(params) else None)


def _plain(value: dict) -> dict:
    return {k: v for k, v in value.items() if k != "meta"}


def measured(name: str, cfg, result: dict, params: dict, cache: RunCache | None = None) -> dict:
    """Measurement `name` with `params` on the run (`cfg`, and `result`: the run's cached result, whose meta names its
    key and digest; the measurement may read only its config, e.g. at initialisation): read from the cache, else
    computed and stored."""
    m, mat = measurement(name), key_material(name, result, params)
    cache = cache or measure_cache()
    key = RunCache.key(mat)
    hit = cache.load(key)
    if hit is not None:
        return _plain(hit)
    t0 = time.time()
    value = m.compute(cfg, result, params)
    meta = provenance(f"{name} on {result['meta'].get('description', mat['run'])}", t0, time.time() - t0,
                      run=mat["run"])
    cache.save(key, mat, value, meta)
    return value


def entries_of(run_keys, cache: RunCache | None = None) -> list[str]:
    """The measurement entries whose run is one of `run_keys`."""
    cache, runs = cache or measure_cache(), set(run_keys)
    out = []
    for k in cache.entries():
        try:
            if cache.material(k)["run"] in runs:
                out.append(k)
        except (OSError, ValueError, KeyError):
            continue
    return out


def _same(a, b) -> bool:
    """Bit-for-bit equality of two values made of tensors, numbers, strings, lists and dicts (NaN equals NaN).

    >>> nan = float("nan")
    >>> _same({"a": torch.tensor([1.0, nan]), "b": [nan, 2]}, {"a": torch.tensor([1.0, nan]), "b": [nan, 2]})
    True
    >>> _same(torch.tensor([1.0]), torch.tensor([1.0 + 1e-7])), _same(torch.tensor([1.0]), torch.tensor([1.0], dtype=torch.float64))
    (False, False)
    """
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.dtype == b.dtype
                and a.shape == b.shape and (torch.equal(a, b) or a.is_floating_point()    # NaN where NaN was
                                            and torch.allclose(a, b, rtol=0.0, atol=0.0, equal_nan=True)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def recheck(key: str, run_cfg, run_result: dict, cache: RunCache | None = None, rtol: float = RTOL) -> dict:
    """Compute the stored entry `key` again on its run and compare: {'key', 'measurement', 'mode': 'exact' or
    'tolerance', 'ok', 'why', 'seconds'}. 'exact' (bit for bit) where this machine's numerics are the ones the entry
    recorded (computed again with the thread count it recorded); elsewhere every summary number within `rtol` of the
    stored one."""
    cache = cache or measure_cache()
    stored, mat = cache.load(key), cache.material(key)
    if stored is None:
        raise MeasurementError(f"measurement entry {key} is not in {cache.root} (or is corrupt)")
    m = measurement(mat["measurement"])
    t0 = time.time()
    with threads(int(stored["meta"].get("threads", torch.get_num_threads()))):    # a CPU's bits: its ISA and threads
        again = m.compute(run_cfg, run_result, mat["params"])
    out = {"key": key, "measurement": mat["measurement"], "run": mat["run"], "seconds": time.time() - t0}
    if stored["meta"].get("numerics") == numerics():
        ok = _same(_plain(stored), again)
        return {**out, "mode": "exact", "ok": ok, "why": "" if ok else "differs from the stored value bit for bit"}
    a, b = m.summary(_plain(stored)), m.summary(again)
    bad = [f"{k}: {a[k]:.6g} stored, {b.get(k, float('nan')):.6g} now" for k in a
           if not math.isclose(a[k], b.get(k, float("nan")), rel_tol=rtol, abs_tol=0.0)
           and not (math.isnan(a[k]) and math.isnan(b.get(k, float("nan"))))]
    return {**out, "mode": "tolerance", "ok": not bad,
            "why": "; ".join(bad) if bad else f"every summary number within {rtol:g} relative"}
