"""The book-checks' readers of the built book's text (tests/book_text.py), on cases whose answer is known."""
from __future__ import annotations

import pytest
from book_text import book_numerics, numbers_as_slots


@pytest.mark.parametrize("quote, form", [
    ("306 ± 3 steps (3/3 seeds)", "# ± # steps (#/# seeds)"),
    ("A/B = 0.44 (95 % CI −0.43 to 1.2e-05), 1,584 units", "A/B = # (# % CI # to #), # units"),
    ("ℓ1 1.6e+02 ± 31, ℓ2 1.4e+02 ± 9, ℓ∞ 2e+02", "ℓ# # ± #, ℓ# # ± #, ℓ∞ #"),     # the comma after an integer
    ("ℓ1 1.6e+02 ± 32, ℓ2 1.4e+02 ± 8.1, ℓ∞ 2e+02", "ℓ# # ± #, ℓ# # ± #, ℓ∞ #"),   # ... and after a decimal
    ("> 200 (1 of 2 seeds reached); p < 0.01, +3.5 and -2", "> # (# of # seeds reached); p < #, # and #"),
    ("12,345,678 steps; seeds 0,1,2; 1,23", "# steps; seeds #,#,#; #,#"),          # no separator without 3 digits
    ("94.044 ± 29.637. Then 30 reproduced, 0 partly", "# ± #. Then # reproduced, # partly"),
])
def test_number_slots_keep_a_quotes_form(quote, form):
    assert numbers_as_slots(quote) == form


def test_quotes_that_differ_only_in_their_numbers_share_a_form():
    here, there = "ℓ1 1.6e+02 ± 31, ℓ2 1.4e+02 ± 9, ℓ∞", "ℓ1 1.6e+02 ± 32, ℓ2 1.4e+02 ± 8.1, ℓ∞"
    assert numbers_as_slots(here) == numbers_as_slots(there)
    assert numbers_as_slots("> 200 (no seed reached)") != numbers_as_slots("1.1e+02 ± 14")   # censoring is form


def test_book_numerics_reads_the_front_page_form():
    assert book_numerics("CPU (AuthenticAMD AVX512, torch 2.14.1+cu130) (109)") == {"AuthenticAMD AVX512, torch 2.14.1+cu130"}
    assert book_numerics("NVIDIA H200 (12)") == set()
    assert book_numerics("| ics | quick | 30 | CPU (AuthenticAMD AVX2, torch 2.14.1) (30) | CPU (GenuineIntel AVX2 "
                         "(oneDNN AVX512, MKL auto), torch 2.14.1) (2), NVIDIA H200 (1)") == \
        {"AuthenticAMD AVX2, torch 2.14.1", "GenuineIntel AVX2 (oneDNN AVX512, MKL auto), torch 2.14.1"}
