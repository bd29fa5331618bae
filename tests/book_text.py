"""How the book-checks read the built book's text: numbers as slots, and the numerics its runs were trained with.
Plain functions, tested in `make test` (tests/test_book_text.py) and used by `make check-book` (tests/test_book_html.py)."""
from __future__ import annotations

import re

# A number as the book prints it: a sign, thousands separators (a comma before exactly three digits), a decimal part,
# an exponent. Censoring marks (`> 200`) and units stay text: they are part of a quote's form.
NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3}(?!\d))+|\d+)(?:\.\d+)?(?:e[-+−]?\d+)?")


def numbers_as_slots(text: str) -> str:
    """The text with every number replaced by '#': what a quote says, whatever its values."""
    return NUMBER.sub("#", text)


def book_numerics(intro_text: str) -> set[str]:
    """The numerics of the CPU runs the book was built from, as its front page names them ('CPU (<numerics>)')."""
    return {f"{m.group(1)}, torch {m.group(2)}" for m in re.finditer(r"CPU \((.+?), torch ([^\s)]+)\)", intro_text)}
