"""Experiments declared as data: each chapter's grid of run configurations, built from its parameters.

A chapter notebook calls `grid = experiments.chapter_grid(name, params)` and `run_grid(grid)`. The
same grid can be run without Jupyter (on a GPU machine, in parallel processes) so that the book then
reads every run from the cache:

    bnopt train training --profile paper --workers 6

The parameters are the chapter's `parameters` cell, overridden by the profile's YAML section, so the
CLI and the book always declare the same runs.
"""
from __future__ import annotations

import dataclasses

from bnopt.book.params import book_dir, notebook_parameters, profile_parameters
from bnopt.measure.probes import ActivationSampler
from bnopt.nets.models import VGG_LAYOUTS
from bnopt.runs.config import ModelConfig, ProbeSpec, RunConfig, canonical_json, dln_config, vgg_config
from bnopt.runs.executor import ensure
from bnopt.runs.launch import run
from bnopt.runs.paths import repo_root

# The probes every run of the book carries, so that the chapters share runs: the Fig. 1 runs at LR 0.1
# are also the ICS chapter's and the smoothness chapter's. A probe costs time, never changes training.
# The landscape probe's step sizes are multiples of the run's own learning rate (eta = multiple x LR), so
# a run at another LR is probed over the same range relative to its step; the chapters' parameters
# `eta_multiples`, `dln_eta_multiples` and `hessian_iters` default to these.
VGG_RIDGE_LAYERS = (2, 3, 9, 11, 13)        # Fig. 1c: #3, #11; Figs 2 and 8: #2, #9, #13
VGG_ETA_MULTIPLES = (0.5, 1.0, 2.0, 4.0)    # Fig. 4 step sizes 0.05..0.4 at the reference LR 0.1
DLN_RIDGE_LAYERS = (1, 11, 24)              # Fig. 9
DLN_ETA_MULTIPLES = (0.01, 0.1, 1.0, 10.0, 30.0)   # Fig. 10 step sizes 1e-8..3e-5 at the reference LR 1e-6
HESSIAN_ITERS = 20                          # Lanczos steps (HVPs) for the extreme Hessian eigenvalues


def scaled_etas(lr: float, multiples) -> list[float]:
    """The landscape step sizes of a run at `lr` (rounded to 12 significant digits, so that the same
    step sizes always give the same config hash).

    >>> scaled_etas(0.1, VGG_ETA_MULTIPLES), scaled_etas(1e-6, DLN_ETA_MULTIPLES)
    ([0.05, 0.1, 0.2, 0.4], [1e-08, 1e-07, 1e-06, 1e-05, 3e-05])
    """
    return [float(f"{lr * m:.12g}") for m in multiples]


def at_lr(cfg: RunConfig, lr: float, eta_multiples, **changes) -> RunConfig:
    """`cfg` at learning rate `lr`, its landscape probe's step sizes scaled to that LR (and other changes)."""
    probes = [dataclasses.replace(p, kwargs={**p.kwargs, "etas": scaled_etas(lr, eta_multiples)})
              if p.name == "landscape" else p for p in cfg.probes]
    return cfg.replace(**{"optim.lr": lr, "probes": probes, **changes})


BOOK_PROBES = ("activations", "ics", "landscape", "sharpness")


# How the per-unit records are stored (`storage_kwargs`): these defaults keep every record at full size (the
# quick profile's runs and their keys); the chapters' defaults thin them (the paper-length runs' records).
FULL_RECORDS = {"detail_every": 0, "activation_samples": 2048, "sample_dtype": "float32"}


def storage_kwargs(detail_every: int = 0, activation_samples: int = 2048, sample_dtype: str = "float32") -> dict:
    """The probes' storage options as kwargs, {probe name: kwargs}, with only the options that differ from
    FULL_RECORDS (so that a full-size run keeps its cache key). `detail_every`: steps between the kept
    per-unit records (activation samples, ICS input moments; 0: at every measurement); `activation_samples`:
    values kept per sampled unit; `sample_dtype`: their storage type. No scalar a chapter reads changes.

    >>> storage_kwargs(), storage_kwargs(1000, 1024, "bfloat16")
    ({}, {'activations': {'values_every': 1000, 'max_samples': 1024, 'values_dtype': 'bfloat16'}, 'ics': {'moments_every': 1000}})
    """
    act = {k: v for k, v, d in (("values_every", detail_every, 0), ("max_samples", activation_samples, 2048),
                                ("values_dtype", sample_dtype, "float32")) if v != d}
    out = {"activations": act} if act else {}
    if detail_every:
        out["ics"] = {"moments_every": detail_every}
    return out


def book_probes(probe_every: int, curvature_every: int, ridge_layers, etas,
                only=BOOK_PROBES, hessian_iters: int = HESSIAN_ITERS, curvature_extra=(),
                storage: dict | None = None) -> list[ProbeSpec]:
    """Activation samples, ICS (Definition 2.1, every layer), the landscape along the gradient, all
    every `probe_every` steps; the top Hessian eigenvalue every `curvature_every` steps (0 = never) and
    at the steps `curvature_extra` besides (densely early, where the loss falls fastest). `storage`: the
    probes' storage options (`storage_kwargs`).

    The reference runs of every chapter (VGG at the reference LR, DLN at the reference LR) carry all
    of them, so that the chapters share those runs. A run that only one chapter reads carries only
    the probes that chapter plots (`only`): a probe costs time and never changes training."""
    unknown = sorted(set(only) - set(BOOK_PROBES))
    if unknown:
        raise ValueError(f"unknown book probes {unknown}; valid choices: {', '.join(BOOK_PROBES)}")
    storage = storage or {}
    probes = [ProbeSpec("activations", every=probe_every,
                        kwargs={"layers": list(ridge_layers), **storage.get("activations", {})}),
              ProbeSpec("ics", every=probe_every, kwargs=dict(storage.get("ics", {}))),
              ProbeSpec("landscape", every=probe_every, kwargs={"etas": list(etas)})]
    if curvature_every:
        probes.append(ProbeSpec("sharpness", every=curvature_every, kwargs={"iters": hessian_iters},
                                extra=list(curvature_extra)))
    return [p for p in probes if p.name in only]


def with_probes(cfg: RunConfig, only) -> RunConfig:
    """The same run carrying only the named probes of its book probe set (and not keeping its weights:
    only the reference runs do)."""
    return cfg.replace(probes=[p for p in cfg.probes if p.name in only], save_state=False)


def check_layers(name: str, layers, valid) -> list[int]:
    """A chapter's choice of layers to show, checked against what the runs record."""
    bad = [l for l in layers if l not in valid]
    if bad:
        raise ValueError(f"{name}={list(layers)}: layers {bad} are not recorded; valid choices: {list(valid)}")
    return list(layers)


def seeded(cfg: RunConfig, seeds) -> list[RunConfig]:
    return [cfg.replace(seed=int(s)) for s in seeds]


def vgg_base(arch: str, width: float, steps: int, batch_size: int, eval_every: int, eval_train_subset: int,
             probe_every: int, curvature_every: int, precision: str = "fp32",
             hessian_iters: int = HESSIAN_ITERS, curvature_extra=(), sigma_every: int = 0, **storage) -> RunConfig:
    """The book's reference VGG/CIFAR-10 run, with every probe (landscape step sizes set by `at_lr`).
    It also keeps its final weights and records the per-unit sigma_j (every `sigma_every` steps; 0: every
    `probe_every`), so that the BN-math chapter checks the theorems on these same runs (no training of its
    own). `storage`: the options of `storage_kwargs`."""
    return vgg_config(**{
        "model.arch": arch, "model.width": width, "optim.steps": steps, "optim.batch_size": batch_size,
        "eval_every": eval_every, "data.eval_train_subset": eval_train_subset, "precision": precision,
        "save_state": True,
        "probes": book_probes(probe_every, curvature_every, VGG_RIDGE_LAYERS, VGG_ETA_MULTIPLES,
                              hessian_iters=hessian_iters, curvature_extra=curvature_extra,
                              storage=storage_kwargs(**storage))
        + [ProbeSpec("unit_std", every=sigma_every or probe_every)],
    })


def dln_base(dln_steps: int, dln_probe_every: int, dln_curvature_every: int,
             hessian_iters: int = HESSIAN_ITERS, dln_curvature_extra=(), **storage) -> RunConfig:
    """The book's deep-linear-network run (full-batch GD on 1000 fixed points), with every probe
    (landscape step sizes set by `at_lr`). `storage`: the options of `storage_kwargs`."""
    return dln_config(**{"optim.steps": dln_steps, "probes": book_probes(
        dln_probe_every, dln_curvature_every, DLN_RIDGE_LAYERS, DLN_ETA_MULTIPLES, hessian_iters=hessian_iters,
        curvature_extra=dln_curvature_extra, storage=storage_kwargs(**storage))})


STORAGE_PARAMS = tuple(FULL_RECORDS)


def _vgg(params: dict) -> RunConfig:
    keys = ("arch", "width", "steps", "batch_size", "eval_every", "eval_train_subset", "probe_every",
            "curvature_every", "precision", "hessian_iters", "curvature_extra", "sigma_every") + STORAGE_PARAMS
    return vgg_base(**{k: params[k] for k in keys if k in params})


def _dln(params: dict) -> RunConfig:
    keys = ("dln_steps", "dln_probe_every", "dln_curvature_every", "hessian_iters",
            "dln_curvature_extra") + STORAGE_PARAMS
    return dln_base(**{k: params[k] for k in keys if k in params})


def _etas(params: dict, net: str) -> tuple:
    """The chapter's landscape step-size multiples for `net` ('vgg' or 'dln'), else the book's defaults."""
    return tuple(params.get("eta_multiples", VGG_ETA_MULTIPLES)) if net == "vgg" else \
        tuple(params.get("dln_eta_multiples", DLN_ETA_MULTIPLES))


def training_grid(lrs, norms, seeds, other_seeds=None, **params) -> dict[tuple, list[RunConfig]]:
    """Figure 1: VGG with each normalization at each learning rate. {(norm, lr): [config per seed]}: `seeds` at
    the reference LR lrs[0], `other_seeds` (default: the same) at the others."""
    base, etas = _vgg(params), _etas(params, "vgg")
    plain = with_probes(base, ())     # only the reference LR's activations are plotted here
    other = seeds if other_seeds is None else other_seeds
    return {(norm, lr): seeded(at_lr(base if lr == lrs[0] else plain, lr, etas, **{"model.norm": norm}),
                               seeds if lr == lrs[0] else other)
            for norm in norms for lr in lrs}


def ics_grid(lrs, norms, noise_norms, seeds, dln_lrs, dln_seeds, other_seeds=None,
             **params) -> dict[tuple, list[RunConfig]]:
    """The ICS chapter. ('vgg', norm, lr): Figs 2, 3a, 8 (noisy norms at the reference LR lrs[0]
    only); ('dln', norm, lr): Figs 3b, 9. `seeds` for standard and BN at the reference LR, `other_seeds`
    (default: the same) for the other LRs and the noisy norms."""
    # Reference-LR runs carry every probe (shared with the other chapters); the others carry what
    # this chapter plots: ICS at every LR, activation samples of the noisy-BN runs.
    vgg, etas, dln, dln_etas = _vgg(params), _etas(params, "vgg"), _dln(params), _etas(params, "dln")
    vgg_ics, vgg_noisy = with_probes(vgg, ("ics",)), with_probes(vgg, ("activations", "ics"))
    other = seeds if other_seeds is None else other_seeds
    grid = {("vgg", n, lr): seeded(at_lr(vgg if lr == lrs[0] else vgg_ics, lr, etas, **{"model.norm": n}),
                                   seeds if lr == lrs[0] else other)
            for n in norms for lr in lrs}
    grid.update({("vgg", n, lrs[0]): seeded(at_lr(vgg_noisy, lrs[0], etas, **{"model.norm": n}), other)
                 for n in noise_norms})
    dln_ics = with_probes(dln, ("ics",))
    grid.update({("dln", n, lr): seeded(at_lr(dln if lr == dln_lrs[0] else dln_ics, lr, dln_etas,
                                              **{"model.norm": n}), dln_seeds) for n in norms for lr in dln_lrs})
    return grid


def sweep_probes(cfg: RunConfig, steps: int, every: int, fixed_etas=None) -> list[ProbeSpec]:
    """The probes of a learning-rate sweep run of `steps` steps: the landscape along the gradient every
    `every` steps from step `every` on (after the first updates: at step 0 every LR sees the same network),
    and the extreme Hessian eigenvalues once, at the last of those steps. None when `every` is 0. With
    `fixed_etas`, a second landscape probe ('landscape_fixed_eta') measures at the same step sizes at every LR,
    so that a level that follows the LR is not read off step sizes that follow it too.

    >>> [(p.record, list(p.steps(120))) for p in sweep_probes(vgg_base("vgg16", 0.125, 120, 128, 0, 0, 50, 250), 120, 30)]
    [('landscape', [30, 60, 90]), ('sharpness', [90])]
    >>> [(p.record, p.kwargs["etas"]) for p in sweep_probes(vgg_base("vgg16", 0.125, 120, 128, 0, 0, 50, 250), 120, 30,
    ...                                                    fixed_etas=[0.05, 0.4]) if "etas" in p.kwargs]
    [('landscape', [0.5, 1.0, 2.0, 4.0]), ('landscape_fixed_eta', [0.05, 0.4])]
    """
    if not every:
        return []
    last = (steps - 1) // every * every
    probes = [dataclasses.replace(p, start=every, every=every, extra=[]) if p.name == "landscape" else
              dataclasses.replace(p, start=last, every=steps, extra=[])
              for p in cfg.probes if p.name in ("landscape", "sharpness")]
    if fixed_etas:
        land = next(p for p in probes if p.name == "landscape")
        probes.insert(1, dataclasses.replace(land, label="landscape_fixed_eta",
                                             kwargs={**land.kwargs, "etas": [float(e) for e in fixed_etas]}))
    return probes


def weight_decay_runs(vgg: RunConfig, lr: float, etas, norms, weight_decay: float, wd_steps: int,
                      wd_seeds) -> dict[tuple, list[RunConfig]]:
    """('vgg_wd', norm, lr): the reference VGG protocol with SGD weight decay `weight_decay` for its first
    `wd_steps` steps, carrying the landscape probe at the reference runs' steps (so a reference run cut to
    `wd_steps` is the comparison without weight decay) and the squared parameter norms (`weight_norm`) there.
    None when weight_decay is 0."""
    if not weight_decay:
        return {}
    every = next(p.every for p in vgg.probes if p.name == "landscape")
    base = with_probes(vgg, ("landscape",))
    base = base.replace(probes=base.probes + [ProbeSpec("weight_norm", every=every)])
    return {("vgg_wd", n, lr): seeded(at_lr(base, lr, etas, **{
        "model.norm": n, "optim.weight_decay": weight_decay, "optim.steps": wd_steps, "eval_every": 0,
        "data.eval_train_subset": 0, "data.eval_test": False}), wd_seeds) for n in norms}


def smoothness_grid(lr, norms, seeds, dln_lr, dln_seeds, sweep_lrs, sweep_steps, sweep_seeds, dln_sweep_lrs,
                    dln_sweep_steps, sweep_probe_every=0, dln_sweep_probe_every=0, weight_decay=0.0, wd_steps=0,
                    wd_seeds=(), sweep_fixed_etas=False, **params) -> dict[tuple, list[RunConfig]]:
    """The smoothness chapter. ('vgg', norm, lr) and ('dln', norm, lr): Figs 4, 10, 11 and the
    curvature; ('vgg_sweep' | 'dln_sweep', norm, lr): short runs over a log grid of LRs that carry only
    the landscape and curvature probes (`sweep_probes`, step sizes scaled to each LR) and are read for
    their training loss (no test-set evaluation). With `sweep_fixed_etas` the sweep runs also measure the
    landscape at the reference LR's step sizes, the same at every LR of the grid (`sweep_probes`)."""
    vgg, etas, dln, dln_etas = _vgg(params), _etas(params, "vgg"), _dln(params), _etas(params, "dln")
    fixed = scaled_etas(lr, etas) if sweep_fixed_etas else None
    dln_fixed = scaled_etas(dln_lr, dln_etas) if sweep_fixed_etas else None
    grid = {}
    for n in norms:
        grid[("vgg", n, lr)] = seeded(at_lr(vgg, lr, etas, **{"model.norm": n}), seeds)
        grid[("dln", n, dln_lr)] = seeded(at_lr(dln, dln_lr, dln_etas, **{"model.norm": n}), dln_seeds)
        for s_lr in sweep_lrs:
            cfg = at_lr(vgg, s_lr, etas)
            grid[("vgg_sweep", n, s_lr)] = seeded(with_probes(cfg, ()).replace(**{
                "model.norm": n, "optim.steps": sweep_steps,
                "probes": sweep_probes(cfg, sweep_steps, sweep_probe_every, fixed),
                "eval_every": 0, "data.eval_train_subset": 0, "data.eval_test": False}), sweep_seeds)
        for s_lr in dln_sweep_lrs:
            cfg = at_lr(dln, s_lr, dln_etas)
            grid[("dln_sweep", n, s_lr)] = seeded(cfg.replace(**{
                "model.norm": n, "optim.steps": dln_sweep_steps,
                "probes": sweep_probes(cfg, dln_sweep_steps, dln_sweep_probe_every, dln_fixed)}), dln_seeds)
    grid.update(weight_decay_runs(vgg, lr, etas, norms, weight_decay, wd_steps, wd_seeds))
    return grid


def bn_math_grid(lr: float, seeds, **params) -> dict[str, list[RunConfig]]:
    """The BN-math chapter: the reference VGG runs with and without BN (the same configurations as the
    other chapters', so they are trained once), which keep their final weights for the theorem checks
    on trained layers and record the per-unit sigma_j over training."""
    vgg = _vgg(params)
    return {norm: seeded(at_lr(vgg, lr, _etas(params, "vgg"), **{"model.norm": norm}), seeds)
            for norm in ("none", "batch")}


def norms_grid(lr, norms, seeds, dln_lr, dln_seeds, norm_steps, norm_dln_steps, dln_group_min_size=2,
               **params) -> dict[tuple, list[RunConfig]]:
    """The normalizations chapter: ('vgg', norm, lr) and ('dln', norm, dln_lr) for every norm.

    Standard and BN are the book's reference runs (shared with the other chapters, full length). The
    other normalizations carry the same probes and train the first `norm_steps` VGG steps
    (`norm_dln_steps` DLN steps) of the same protocol; the chapter compares all of them over that
    window (`bnopt.analysis.summary.truncate`: a shorter run is exactly the prefix of the longer one). In the DLN
    (10 features), group norm has groups of at least `dln_group_min_size` features: with 2, five groups of
    two, each normalized to ±1 per sample, which cannot fit a regression [choice]."""
    vgg, etas, dln, dln_etas = _vgg(params), _etas(params, "vgg"), _dln(params), _etas(params, "dln")
    grid = {}
    for n in norms:
        ref = n in ("none", "batch")
        grid[("vgg", n, lr)] = seeded(at_lr(vgg if ref else with_probes(vgg, BOOK_PROBES), lr, etas, **{
            "model.norm": n, "optim.steps": vgg.optim.steps if ref else norm_steps}), seeds)
        group = {"model.norm_kwargs": {"min_group_size": int(dln_group_min_size)}} \
            if n == "group" and int(dln_group_min_size) != 2 else {}          # 2: the key of the runs before
        grid[("dln", n, dln_lr)] = seeded(at_lr(dln, dln_lr, dln_etas, **{
            "model.norm": n, "optim.steps": dln.optim.steps if ref else norm_dln_steps, **group}), dln_seeds)
    return grid


GRIDS = {"training": training_grid, "bn_math": bn_math_grid, "ics": ics_grid, "smoothness": smoothness_grid,
         "norms": norms_grid}
# Chapters that rebuild trained networks from their runs' final weights (`train.model_of(cfg, result)`); a run
# imported without weights (bundle export --no-weights) serves every other chapter.
# Chapter parameters that only name things (the profile that claims and provenance name): no grid reads them.
NOT_GRID = ("profile",)
READS_WEIGHTS = ("bn_math", "smoothness")


def check_chapter(chapter: str, params: dict) -> None:
    """The layer choices a chapter plots, checked before anything trains (the chapters check them
    again against what the runs recorded). Raises ValueError naming the parameter and valid layers."""

    def vgg_layers():
        return list(range(1, sum(1 for c in VGG_LAYOUTS[params.get("arch", "vgg16")] if c != "M") + 1))
    checks = {"training": [("ridge_layers", VGG_RIDGE_LAYERS)],
              "ics": [("ridge_layers", VGG_RIDGE_LAYERS), ("ics_layers", None), ("dln_ics_layers", "dln")],
              "bn_math": [("hvp_layers", None)], "norms": [("act_layer", VGG_RIDGE_LAYERS)]}
    for name in ("eta_multiples", "dln_eta_multiples", "etas"):
        if name in params and (not params[name] or any(not m > 0 for m in params[name])):
            what = "the landscape step sizes" + ("" if name == "etas" else " as multiples of the run's learning rate")
            raise ValueError(f"{name}={list(params[name])}: {what}; allowed: a non-empty list of positive numbers")
    for name, total in (("norm_steps", "steps"), ("norm_dln_steps", "dln_steps")):
        if name in params and not 1 <= params[name] <= params.get(total, params[name]):
            raise ValueError(f"{name}={params[name]}: the window of steps the normalizations are compared over; "
                             f"allowed: 1 to {total} ({params.get(total)})")
    for name, total in (("sweep_probe_every", "sweep_steps"), ("dln_sweep_probe_every", "dln_sweep_steps")):
        if name in params and not 0 <= params[name] < params.get(total, params[name] + 1):
            raise ValueError(f"{name}={params[name]}: steps between the landscape measurements of a sweep run "
                             f"(0: none); allowed: 0 to {total} - 1 ({params.get(total, 1) - 1})")
    if "other_seeds" in params and not (params["other_seeds"] and list(params["other_seeds"]) ==
                                        list(params.get("seeds", []))[:len(params["other_seeds"])]):
        raise ValueError(f"other_seeds={list(params['other_seeds'])}: the seeds of the runs off the reference pair, "
                         f"compared seed by seed with it; allowed: the first seeds of seeds={list(params.get('seeds', []))}")
    for name in ("detail_every", "sigma_every"):
        if name in params and params[name] < 0:
            raise ValueError(f"{name}={params[name]}: steps between the kept per-unit records; allowed: an "
                             f"integer >= 0 (0: at every measurement)")
    if "activation_samples" in params and params["activation_samples"] < 1:
        raise ValueError(f"activation_samples={params['activation_samples']}: values kept per sampled unit; "
                         f"allowed: an integer >= 1")
    if "sample_dtype" in params and params["sample_dtype"] not in ActivationSampler.DTYPES:
        raise ValueError(f"sample_dtype={params['sample_dtype']!r}: how the activation samples are stored; "
                         f"valid choices: {', '.join(ActivationSampler.DTYPES)}")
    if "match_tolerance" in params and not 0 < params["match_tolerance"] < 1:
        raise ValueError(f"match_tolerance={params['match_tolerance']}: the relative loss difference within which "
                         f"two measurements count as at matched loss; allowed: a number in (0, 1)")
    if "match_window" in params and params["match_window"] < 1:
        raise ValueError(f"match_window={params['match_window']}: steps of the trailing mean of the training loss; "
                         f"allowed: an integer >= 1")
    if "weight_decay" in params and (params["weight_decay"] < 0 or params["weight_decay"] > 0 and not (
            1 <= params.get("wd_steps", 1) <= params.get("steps", 1) and params.get("wd_seeds")
            and set(params["wd_seeds"]) <= set(params.get("seeds", params["wd_seeds"])))):
        raise ValueError(f"weight_decay={params['weight_decay']}, wd_steps={params.get('wd_steps')}, "
                         f"wd_seeds={params.get('wd_seeds')}: the weight-decay runs; allowed: weight_decay >= 0 "
                         f"(0: none), wd_steps from 1 to steps ({params.get('steps')}), wd_seeds a non-empty subset "
                         f"of seeds={params.get('seeds')}")
    if "edge_tolerance" in params and not params["edge_tolerance"] > 1:
        raise ValueError(f"edge_tolerance={params['edge_tolerance']}: the factor within which a level counts as "
                         f"at 2/LR; allowed: a number > 1")
    if "track_threshold" in params and not 0 < params["track_threshold"] <= 1:
        raise ValueError(f"track_threshold={params['track_threshold']}: the |Spearman rho| every seed must reach "
                         f"for 'tracks'; allowed: a number in (0, 1]")
    if "point_seeds" in params and (not params["point_seeds"] or not set(params["point_seeds"]) <= set(params["seeds"])):
        raise ValueError(f"point_seeds={list(params['point_seeds'])}: the runs measured at single points "
                         f"(Hessian spectra, random directions); "
                         f"allowed: a non-empty subset of seeds={list(params['seeds'])}")
    for name, least, what in (("hessian_iters", 1, "Lanczos steps per extreme-eigenvalue measurement"),
                              ("slq_iters", 2, "Lanczos steps per start vector"), ("slq_vectors", 1, "start vectors"),
                              ("slq_batch", 2, "images in the Hessian's batch"), ("batch", 2, "images in the batch"),
                              ("point_batches", 1, "batches per point"), ("calibration_batches", 1, "batches")):
        if name in params and params[name] < least:
            raise ValueError(f"{name}={params[name]}: {what}; allowed: an integer >= {least}")
    for name, valid in checks.get(chapter, []):
        if name in params:
            valid = vgg_layers() if valid is None else \
                list(range(1, ModelConfig().depth + 1)) if valid == "dln" else valid
            value = params[name]
            check_layers(name, value if isinstance(value, (list, tuple)) else [value], valid)


def chapter_grid(chapter: str, params: dict) -> dict[tuple, list[RunConfig]]:
    """A chapter's grid from its parameters (all of them: the grid takes what it needs), after checking
    them: the one path from parameters to runs for the notebooks, the build and the CLI."""
    if chapter not in GRIDS:
        raise ValueError(f"unknown chapter {chapter!r}; chapters with runs: {', '.join(sorted(GRIDS))}")
    check_chapter(chapter, params)
    return GRIDS[chapter](**{k: v for k, v in params.items() if k not in NOT_GRID})


def run_grid(grid: dict, workers: int | None = None, threads: int | None = None) -> dict:
    """{key: [result per seed]}: the runs the cache lacks are trained first in parallel workers
    (`executor.ensure`, the same path as the book build and the CLI), then every result is read."""
    ensure(grid_configs(grid), workers, threads, label="grid")
    return {key: [run(cfg) for cfg in cfgs] for key, cfgs in grid.items()}


def grid_configs(grid: dict) -> list[RunConfig]:
    """Every distinct configuration of a grid, in order (chapters may list a run under two keys)."""
    seen, out = set(), []
    for cfgs in grid.values():
        for cfg in cfgs:
            k = canonical_json(cfg.to_dict())
            if k not in seen:
                seen.add(k)
                out.append(cfg)
    return out


def chapter_parameters(chapter: str, profile: str | None) -> dict:
    """The chapter's parameters-cell defaults overridden by the profile's section."""

    root = repo_root()
    params = notebook_parameters(book_dir(root) / f"{chapter}.ipynb")
    if profile:
        params.update(profile_parameters(root, profile).get(chapter, {}))   # coerced and checked there
    return params


def profile_configs(profile: str) -> list[RunConfig]:
    """The run configurations of every chapter with runs at `profile` (what a profile's bundle holds)."""
    return [cfg for chapter in sorted(GRIDS)
            for cfg in grid_configs(chapter_grid(chapter, chapter_parameters(chapter, profile)))]
