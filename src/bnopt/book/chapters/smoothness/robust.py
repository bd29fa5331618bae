"""The smoothness chapter's claims re-derived with each analysis choice varied alone (the ledger's robustness column):
the early window of Figs 4 and 10, the usable-LR threshold and final-loss window of the sweep, and the matched-loss
average and tolerance."""
from __future__ import annotations

from bnopt.book.chapters.common import vary
from bnopt.book.chapters.smoothness.bands import land_stats
from bnopt.book.chapters.smoothness.matched import matched_loss, matched_report
from bnopt.book.chapters.smoothness.points import sweep_figure
from bnopt.book.chapters.smoothness.sweeps import measure_claims, sweep_claims


def vary_choices(results: dict, land: dict, lrs: dict, sweeps: list, norms: list, scales: dict, early_fraction: float,
                 usable_fraction: float, final_fraction: float, match_window: int, match_tolerance: float,
                 folder=".") -> list[str]:
    """land = {'vgg': landscape(...) per norm, 'dln': ...} (the figures' data), lrs = {'vgg': lr, 'dln': dln_lr},
    sweeps = [(kind, lrs)]. Returns the variations done."""
    def derive(folder, early_fraction, usable_fraction, final_fraction, match_window, match_tolerance):
        measure_claims({k: land_stats(v, early_fraction) for k, v in land.items()}, scales, folder)
        _, usable = sweep_figure(results, sweeps, norms, usable_fraction, final_fraction)
        sweep_claims(results, sweeps, usable, final_fraction, scales, folder)
        matched_report({k: matched_loss(results, k, lr, match_window, match_tolerance) for k, lr in lrs.items()},
                       scales, folder)

    return vary({"early_fraction": early_fraction, "usable_fraction": usable_fraction, "final_fraction": final_fraction,
                 "match_window": match_window, "match_tolerance": match_tolerance}, derive, folder)
