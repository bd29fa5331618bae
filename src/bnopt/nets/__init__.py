"""bnopt.nets."""
