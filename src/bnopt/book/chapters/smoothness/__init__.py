"""Chapter "Is the loss landscape smoother with BatchNorm?" (the paper's Figs 4, 10, 11): landscape
bands, gradient predictiveness, effective beta-smoothness, curvature, the learning-rate sweep, and
the claims.

`results` is `{(kind, norm, lr): [run result per seed]}` with kind in vgg, dln, vgg_sweep, dln_sweep.

A package of one module per part; every name is gathered here, so `smoothness.<name>` reads as before."""
from bnopt.book.chapters.smoothness.bands import (CURV_COLUMNS, SHORT, STAT_COLUMNS, C, band_series, beta_reading,
                                                  curvature_figure, curvature_stats, curvature_table, eos_text,
                                                  eta_figure, land_stats, landscape, landscape_figure, quiet_nan,
                                                  stats_table)
from bnopt.book.chapters.smoothness.matched import (MATCHED, MATCHED_CLAIMS, claim_scales, floor_reading, hidden_l2,
                                                    hidden_l2_figure,
                                                    hidden_l2_report, how_far, ics_cos, init_l2, matched_loss,
                                                    matched_pair, matched_report, spectrum_scale)
from bnopt.book.chapters.smoothness.points import (DIRECTION_COLUMNS, SPECTRUM_CASES, direction_landscape,
                                                   direction_report, hessian_spectra, point_scale, spectrum_case,
                                                   spectrum_report, sweep_figure, sweep_points, usable, usable_text)
from bnopt.book.chapters.smoothness.robust import vary_choices
from bnopt.book.chapters.smoothness.sweeps import (LANDSCAPE_CLAIMS, LR_CLAIMS, LR_FIELDS, READINGS, edge_glue,
                                                   largest_usable, loglog_slope, lr_bounds, lr_figure, lr_levels,
                                                   lr_ratio_table, lr_report, lr_slopes, measure_claims, on_edge_text,
                                                   sweep_claims)

__all__ = ["C", "CURV_COLUMNS", "SHORT", "STAT_COLUMNS", "band_series", "beta_reading", "curvature_figure", "curvature_stats", "curvature_table", "eos_text", "eta_figure", "land_stats", "landscape", "landscape_figure", "quiet_nan", "stats_table", "DIRECTION_COLUMNS", "SPECTRUM_CASES", "direction_landscape", "direction_report", "hessian_spectra", "point_scale", "spectrum_case", "spectrum_report", "sweep_figure", "sweep_points", "usable", "usable_text", "LANDSCAPE_CLAIMS", "LR_CLAIMS", "LR_FIELDS", "READINGS", "edge_glue", "largest_usable", "loglog_slope", "lr_bounds", "lr_figure", "lr_levels", "lr_ratio_table", "lr_report", "lr_slopes", "measure_claims", "on_edge_text", "sweep_claims", "MATCHED", "MATCHED_CLAIMS", "claim_scales", "floor_reading", "hidden_l2", "hidden_l2_figure", "hidden_l2_report", "how_far", "ics_cos", "init_l2", "matched_loss", "matched_pair", "matched_report", "spectrum_scale", "vary_choices"]
