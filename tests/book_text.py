"""How the book-checks read the built book's text and the README: numbers as slots, quotes, verdict tags.
Plain functions, tested in `make test` (tests/test_book_text.py) and used by `make check-book` (tests/test_book_html.py)."""
from __future__ import annotations

import re

from bnopt.analysis.verdict import VERDICTS

# A number as the book prints it: a sign, thousands separators (a comma before exactly three digits), a decimal part,
# an exponent. Censoring marks (`> 200`) and units stay text: they are part of a quote's form.
NUMBER = re.compile(r"[-+−]?(?:\d{1,3}(?:,\d{3}(?!\d))+|\d+)(?:\.\d+)?(?:e[-+−]?\d+)?")


def numbers_as_slots(text: str) -> str:
    """The text with every number replaced by '#': what a quote says, whatever its values."""
    return NUMBER.sub("#", text)


def findings(readme: str) -> str:
    """The README's '## Findings' section (up to the next '## ' heading)."""
    section = re.search(r"^## Findings.*?(?=^## )", readme, flags=re.S | re.M)
    assert section, "README.md has no '## Findings' section"
    return section.group(0)


# The ledger's verdict words, longest first so that "not reproduced" is never read as "reproduced". A phrase may break
# across lines, as the README's prose wraps.
VERDICT_WORDS = tuple(sorted(VERDICTS, key=len, reverse=True))
VERDICT = re.compile(r"(?<![\w-])(" + "|".join(w.replace(" ", r"\s+") for w in VERDICT_WORDS) + r")(?!\w)", re.I)
# `<!-- ledger: id id -->` (this build's ledger) or `<!-- ledger quick: id -->` (the committed snapshot of the book at
# that profile), right after the verdict it tags (closing backticks and emphasis aside); invisible where Markdown renders.
TAG = re.compile(r"<!--\s*ledger(?:\s+(\w+))?:\s*([\w\s]*?)\s*-->")


def verdict_tags(text: str) -> tuple[list[tuple[str, str | None, list[str]]], list[str], list[str]]:
    """How the README's prose states the ledger's verdicts: (tagged, untagged, orphans).

    tagged: [(verdict word as the prose says it, profile or None for this build, [claim ids])] for each tag;
    untagged: the context of every verdict word that no tag follows, except inside a quote with digits (a count line,
    `12 reproduced, ...`) or in *emphasis* (a definition); orphans: each tag with no verdict word right before it."""
    quoted = [m.span() for m in re.finditer(r"`[^`\n]*\d[^`\n]*`|(?<!\*)\*[^*\n]+\*(?!\*)", text)]
    tagged, untagged, used = [], [], set()
    for m in VERDICT.finditer(text):
        tag = TAG.match(text, re.match(r"[`*]*\s*", text[m.end():]).end() + m.end())
        if tag:
            ids = tag.group(2).split()
            tagged.append((" ".join(m.group(1).lower().split()), tag.group(1), ids))
            used.add(tag.start())
        elif not any(a <= m.start() < b for a, b in quoted):
            untagged.append(" ".join(text[max(0, m.start() - 40): m.end() + 20].split()))
    orphans = [" ".join(text[max(0, t.start() - 40): t.end()].split()) for t in TAG.finditer(text) if t.start() not in used]
    return tagged, untagged, orphans


def readme_quotes(text: str) -> list[tuple[str, bool]]:
    """[(quote, computed at build time)] of every backtick quote with a digit: the README's numbers. A quote followed
    by `<!-- build -->` is one the book computes when it is built, not one read from the runs."""
    return [(m.group(1), bool(m.group(2))) for m in re.finditer(r"`([^`\n]*\d[^`\n]*)`(<!--\s*build\s*-->)?", text)]
