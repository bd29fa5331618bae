"""Chapter "The mathematics of BatchNorm, checked numerically": the checks of BN itself, the equal-moments
demonstration, scale invariance, Theorems 4.1, 4.2, 4.4 and Lemma 4.5 on real layers (float64), the
per-unit sigma_j of trained networks, and the theory claims of the ledger.

Each function returns what the chapter shows: tables as (header, rows), prose values as {glue name: text},
figures as closed matplotlib figures. The instances (shapes, seeds, the three-point data set) are the
defaults of the functions' arguments, so that no literal in the chapter changes a result.

A package of one module per part; every name is gathered here, so `bn_math.<name>` reads as before."""
from bnopt.book.chapters.bn_math.basics import EXACT, F64, bn_checks, moments_demo, rel_err, scale_invariance
from bnopt.book.chapters.bn_math.networks import (assumption_counts, fraction_text, networks, observation43_all,
                                                  observation43_report, theorem41_all, theorem41_figure,
                                                  theorem41_report, theorem42_all, theorem42_report, theory_batch)
from bnopt.book.chapters.bn_math.sigma import (gamma_sigma_report, gamma_sigma_series, gs_other_scale, sigma_report,
                                               sigma_table, tracking)
from bnopt.book.chapters.bn_math.theorem44 import (THREE_POINTS, lemma45_figure, lemma45_instance, lemma45_report,
                                                   theorem44_at_inputs, theorem44_report, vec)

__all__ = ["EXACT", "F64", "bn_checks", "moments_demo", "rel_err", "scale_invariance", "assumption_counts", "fraction_text", "networks", "observation43_all", "observation43_report", "theorem41_all", "theorem41_figure", "theorem41_report", "theorem42_all", "theorem42_report", "theory_batch", "THREE_POINTS", "lemma45_figure", "lemma45_instance", "lemma45_report", "theorem44_at_inputs", "theorem44_report", "vec", "gamma_sigma_report", "gamma_sigma_series", "gs_other_scale", "sigma_report", "sigma_table", "tracking"]
