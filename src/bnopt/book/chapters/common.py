"""Helpers the chapter modules share: the scale tag of a claim, per-seed values of a run list."""
from __future__ import annotations

import numpy as np

from bnopt.book import claims, declared
from bnopt.book.experiments import scaled_etas


def scale_tag(profile: str, *parts: str) -> str:
    """The profile (the chapter's `profile` parameter, which the build sets) and run size a claim's measurement
    came from.

    >>> scale_tag("quick", "VGG-16 w0.25", "700 steps", "")
    'quick: VGG-16 w0.25, 700 steps'
    """
    return f"{profile}: " + ", ".join(p for p in parts if p)


def net_label(arch: str, width: float) -> str:
    """The VGG's name in a claim's scale.

    >>> net_label("vgg16", 0.125)
    'VGG16 width 0.125'
    """
    return f"{arch.upper()} width {width:g}"


PAPER_STEPS = 15000       # the paper's VGG budget, at batch 128 (Appendix A.1)
PAPER_DLN_STEPS = 10000   # the paper's deep linear network budget, full-batch


def budget_note(steps: int, dln_steps: int | None = None) -> str:
    """What a chapter's budget lets its numbers say, from its VGG and DLN step counts (glued, never typed for one
    profile).

    >>> budget_note(700, 10000)
    "The VGG runs take 700 of the paper's 15,000 steps, so their numbers describe the early phase of training; the deep linear network runs the paper's full 10,000 steps"
    >>> budget_note(15000)
    "The VGG runs take the paper's full 15,000 steps"
    """
    vgg = (f"The VGG runs take {steps:,} of the paper's {PAPER_STEPS:,} steps, so their numbers describe the early "
           f"phase of training" if steps < PAPER_STEPS else f"The VGG runs take the paper's full {PAPER_STEPS:,} steps")
    if dln_steps is None:
        return vgg
    dln = (f"the deep linear network runs the paper's full {PAPER_DLN_STEPS:,} steps" if dln_steps >= PAPER_DLN_STEPS
           else f"the deep linear network runs {dln_steps:,} of the paper's {PAPER_DLN_STEPS:,} steps")
    return f"{vgg}; {dln}"


def device_name(results: dict) -> str:
    """The device the first run of a results dict trained on."""
    return next(iter(results.values()))[0]["meta"]["device_name"]


def seed_pairs(*per_seed):
    """Per-seed value lists of runs with different seed counts, cut to the seeds they share. A grid's `other_seeds`
    are the first seeds of its `seeds` (checked by `experiments.check_chapter`), so position i is the same seed in
    every list and the common prefix pairs runs seed by seed.

    >>> seed_pairs([1.0, 2.0, 3.0, 4.0, 5.0], [7.0, 8.0, 9.0])
    ([1.0, 2.0, 3.0], [7.0, 8.0, 9.0])
    """
    n = min(len(v) for v in per_seed)
    return tuple(list(v)[:n] for v in per_seed)


def last_fraction_mean(curve, fraction: float) -> float:
    """Mean of the last `fraction` of a curve (at least one point), ignoring NaN.

    >>> last_fraction_mean([4.0, 3.0, 2.0, 1.0], 0.5)
    1.5
    """
    c = np.asarray(curve, dtype=float)
    k = max(1, int(len(c) * fraction + 1e-9))
    with np.errstate(all="ignore"):
        return float(np.nanmean(c[-k:]))


def probe_settings(lr: float, eta_multiples, dln_lr: float, dln_eta_multiples, hessian_iters: int) -> dict:
    """Glue text of the probes' settings: the landscape step sizes at the reference LRs and their multiples.

    >>> probe_settings(0.1, [0.5, 4.0], 1e-6, [0.01, 30.0], 20)["etas_dln"]
    '1e-08, 3e-05'
    """
    fmt = lambda xs: ", ".join(f"{x:g}" for x in xs)
    return {"etas_vgg": fmt(scaled_etas(lr, eta_multiples)), "etas_dln": fmt(scaled_etas(dln_lr, dln_eta_multiples)),
            "eta_multiples": fmt(eta_multiples), "dln_eta_multiples": fmt(dln_eta_multiples),
            "hessian_iters": f"{hessian_iters}"}


def vary(choices: dict, derive, folder=".") -> list[str]:
    """Re-derive a chapter's claims with each analysis choice varied alone over its stated range
    (`declared.variations`): `derive(folder=..., **choices)` records the claims under
    `claims.variant_folder(folder, name, value)`, for the ledger's robustness column. Returns the variations done."""
    done = []
    for name, value in choices.items():
        for v in declared.variations(name, value):
            derive(folder=claims.variant_folder(folder, name, v), **{**choices, name: v})
            done.append(f"{name}={v:g}")
    return done
