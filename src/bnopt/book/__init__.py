"""bnopt.book."""
