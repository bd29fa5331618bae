"""`python -m bnopt`: the `bnopt` command (bnopt.book.cli) where the package is not installed."""
import sys

from bnopt.book.cli import main

sys.exit(main())
