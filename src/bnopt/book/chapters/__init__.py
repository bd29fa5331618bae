"""The chapters' analysis: one module per chapter holding its aggregations, figures and claim
measurements, so that the notebooks are prose, a `parameters` cell and calls (and every function here
is tested on synthetic runs with known answers in tests/test_chapters.py)."""
