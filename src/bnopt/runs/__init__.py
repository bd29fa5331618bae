"""bnopt.runs."""
