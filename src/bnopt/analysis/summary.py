"""Aggregating runs over seeds: curves with spread, final metrics, steps to a threshold."""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
from scipy import stats


def smooth(x, window: int) -> np.ndarray:
    """Trailing moving average over the last axis (pandas' `rolling`; NaN-aware: a window averages its finite values,
    the first points average what exists), NaN where x is NaN (diverged tails stay NaN).

    >>> smooth([1.0, 3.0, float("nan"), 5.0], 2).tolist()
    [1.0, 2.0, nan, 5.0]
    """
    x = np.asarray(x, dtype=float)
    if window <= 1:
        return x
    valid = np.isfinite(x)
    flat = np.where(valid, x, np.nan).reshape(-1, x.shape[-1]).T          # (steps, series)
    out = pd.DataFrame(flat).rolling(window, min_periods=1).mean().to_numpy().T.reshape(x.shape)
    return np.where(valid, out, np.nan)


def stack(results: list[dict], key: str) -> np.ndarray:
    """(seeds, steps) array of a per-step metric ('train_loss', 'train_acc')."""
    return np.stack([np.asarray(r[key], dtype=float) for r in results])


def eval_curve(results: list[dict], metric: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, (seeds, points)) of an eval metric; seeds that stopped early are NaN-padded."""
    steps = max((np.asarray(r["evals"].get("step", [])) for r in results), key=len)
    out = np.full((len(results), len(steps)), np.nan)
    for i, r in enumerate(results):
        v = np.asarray(r["evals"].get(metric, []), dtype=float)
        out[i, : len(v)] = v
    return steps, out


def mean_std(values) -> tuple[float, float, int]:
    """Mean and sample std (ddof=1; 0 for one value) of the finite values, and how many there were."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return math.nan, math.nan, 0
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0, len(v)


LAYER_AGGREGATES = ("mean", "median")


def over_layers(values, how: str) -> np.ndarray:
    """Aggregate over layers, the first axis (NaN-aware): 'mean' or 'median'. The one place every chapter's layer
    aggregation goes through, so that its label can name it.

    >>> over_layers([[1.0, 2.0], [2.0, 4.0], [6.0, 6.0]], "mean").tolist(), float(over_layers([1.0, 2.0, 9.0], "median"))
    ([3.0, 4.0], 2.0)
    """
    if how not in LAYER_AGGREGATES:
        raise ValueError(f"how must be one of {LAYER_AGGREGATES}, got {how!r}")
    v = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)          # a layer with no finite value stays NaN
        return (np.nanmean if how == "mean" else np.nanmedian)(v, axis=0)


def wilson(k: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a fraction k/n measured on n independent draws (scipy's `binomtest`).

    >>> [round(x, 4) for x in wilson(5, 10)]
    [0.2366, 0.7634]
    """
    if n <= 0:
        return math.nan, math.nan
    ci = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def final_eval(result: dict, metric: str) -> float:
    """The metric at the last evaluation of a run that did not diverge, else NaN."""
    v = result["evals"].get(metric)
    if result["diverged"] or v is None or len(v) == 0:
        return math.nan
    return float(v[-1])


def steps_to_threshold(curve, threshold: float) -> int | None:
    """First step (1-based count of steps taken) at which the curve reaches the threshold, or None."""
    hit = np.nonzero(np.asarray(curve) >= threshold)[0]
    return int(hit[0]) + 1 if len(hit) else None


def truncate(result: dict, steps: int) -> dict:
    """The run's record as if it had trained only its first `steps` steps: the training curves cut,
    the evaluations at steps <= `steps`, the probe records taken before step `steps` (a run of n steps
    probes at steps < n), no final weights. With a constant learning rate and a data order that does
    not depend on the run's length, this equals the shorter run exactly (tests/test_truncate.py).

    >>> r = {"steps": 4, "steps_done": 4, "diverged": False, "diverged_at": -1, "train_loss": [4, 3, 2, 1],
    ...      "evals": {"step": [2, 4], "test_acc": [0.5, 0.6]}, "probes": {"ics": [{"step": 0}, {"step": 2}]}}
    >>> t = truncate(r, 2)
    >>> t["train_loss"], t["evals"], [p["step"] for p in t["probes"]["ics"]], t["steps"]
    ([4, 3], {'step': [2], 'test_acc': [0.5]}, [0], 2)
    """
    if steps >= result["steps"]:
        return result
    out = dict(result, steps=steps, steps_done=min(result["steps_done"], steps), state_dict=None)
    for k in ("train_loss", "train_acc"):
        if result.get(k) is not None:
            out[k] = result[k][:steps]
    if result.get("diverged") and result.get("diverged_at", -1) >= steps:
        out.update(diverged=False, diverged_at=-1)
    ev = result.get("evals") or {}
    keep = [i for i, st in enumerate(ev.get("step", [])) if st <= steps]
    out["evals"] = {k: v[keep] if hasattr(v, "shape") else [v[i] for i in keep] for k, v in ev.items()}   # a tensor or array stays one
    out["probes"] = {k: [p for p in v if p["step"] < steps] for k, v in (result.get("probes") or {}).items()}
    return out


def pm(mean: float, std: float, digits: int = 1, scale: float = 1.0) -> str:
    """'m ± s' for prose; 'n/a' when there is no value."""
    if not np.isfinite(mean):
        return "n/a"
    return f"{mean * scale:.{digits}f} ± {std * scale:.{digits}f}"


def probe_series(results: list[dict], probe: str, fn) -> tuple[np.ndarray, np.ndarray]:
    """(steps, (seeds, points)) of fn(record data) over a probe's records, one row per seed; a run that
    stopped early (diverged) is NaN-padded to the longest run's steps."""
    steps = max((np.asarray([r["step"] for r in res["probes"].get(probe, [])]) for res in results), key=len)
    out = np.full((len(results), len(steps)), np.nan)
    for i, res in enumerate(results):
        v = [float(fn(r["data"])) for r in res["probes"].get(probe, [])]
        out[i, : len(v)] = v
    return steps, out


def at_layer(field: str, layer: int):
    """fn for probe_series: a per-layer probe field ('l2', 'cos', 'shift') at block #layer."""
    def get(d):
        return d[field][list(d["layers"]).index(layer)]
    return get


def runs_table(results: dict, label) -> str:
    """Markdown table of the runs behind a figure: seeds, mean wall time, cache hits, cache keys."""
    rows = ["| configuration | seeds | mean wall time per run (s) | from cache | cache keys |", "|---|---|---|---|---|"]
    for key, rs in results.items():
        walls = [r["meta"]["wall_time_s"] for r in rs]
        rows.append(f"| {label(key)} | {len(rs)} | {np.mean(walls):.0f} | "
                    f"{sum(r['meta']['from_cache'] for r in rs)} | {', '.join(r['meta']['key'] for r in rs)} |")
    return "\n".join(rows)

