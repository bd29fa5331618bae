"""bnopt.analysis."""
