"""Every known-answer example in the package's docstrings runs (doctest) and passes."""
from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import bnopt

MODULES = sorted(m.name for m in pkgutil.walk_packages(bnopt.__path__, "bnopt.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    res = doctest.testmod(importlib.import_module(name))
    assert res.failed == 0, f"{res.failed} of {res.attempted} doctest examples failed in {name}"


def test_doctests_exist_where_metrics_live():
    attempted = {n: doctest.testmod(importlib.import_module(n)).attempted
                 for n in ("bnopt.book.chapters.smoothness.sweeps", "bnopt.book.chapters.common", "bnopt.analysis.verdict", "bnopt.book.report")}
    assert all(a > 0 for a in attempted.values()), attempted
