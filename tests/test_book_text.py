"""The book-checks' readers of the built book's text (tests/book_text.py), on cases whose answer is known."""
from __future__ import annotations

import pytest
from book_text import findings, numbers_as_slots, readme_quotes, verdict_tags


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


def test_verdict_tags_read_the_word_before_each_tag():
    text = ("BN ends lower (`0.07 ± 0.01`, reproduced<!-- ledger: fig1_final_train -->), is `not testable at this "
            "scale`<!-- ledger: fig1_speed --> by steps; at quick it was reproduced<!-- ledger quick: fig1_speed -->. "
            "The DLN's is not\n  reproduced<!-- ledger: fig3_dln_ics -->; the other three are consistent but\n"
            "  underpowered<!-- ledger: lr_beta_vgg lr_eig_vgg  lr_beta_dln -->.")
    tagged, untagged, orphans = verdict_tags(text)
    assert tagged == [("reproduced", None, ["fig1_final_train"]), ("not testable at this scale", None, ["fig1_speed"]),
                      ("reproduced", "quick", ["fig1_speed"]), ("not reproduced", None, ["fig3_dln_ics"]),
                      ("consistent but underpowered", None, ["lr_beta_vgg", "lr_eig_vgg", "lr_beta_dln"])]
    assert untagged == [] and orphans == []


def test_verdict_tags_find_untagged_words_and_tags_without_a_word():
    text = ("`39 claims measured: 12 reproduced, 6 not reproduced` and what *consistent but underpowered* says. "
            "It is contradicted here; reproducible<!-- ledger: fig4_beta --> is no verdict, nor is "
            "(`1.2 ± 0.1`)<!-- ledger: fig4_beta_flat -->.")
    tagged, untagged, orphans = verdict_tags(text)
    assert tagged == []
    assert len(untagged) == 1 and "It is contradicted here" in untagged[0]
    assert len(orphans) == 2 and "reproducible" in orphans[0] and "1.2 ± 0.1" in orphans[1]


def test_the_readme_tags_every_verdict_it_states_with_known_claims():
    """Every verdict word in the README's findings names the ledger claims it reports (`make check-book` then
    compares each with the built ledger); the tags name claims of the catalogue and profiles with a snapshot."""
    from bnopt.book import claims, scales
    from bnopt.runs.paths import repo_root

    root = repo_root()
    tagged, untagged, orphans = verdict_tags(findings((root / "README.md").read_text()))
    assert not untagged, f"verdict words with no <!-- ledger: id --> tag: {untagged}"
    assert not orphans, f"tags with no verdict word before them: {orphans}"
    assert len(tagged) >= 10
    unknown = [i for _, _, ids in tagged for i in ids if i not in claims.BY_ID]
    assert not unknown and all(ids for _, _, ids in tagged), f"tags naming no claim of the catalogue: {unknown}"
    for profile in {p for _, p, _ in tagged if p}:
        assert (root / "results" / profile / scales.SNAPSHOT_NAME).is_file(), f"no snapshot of the book at {profile}"


def test_readme_quotes_mark_the_ones_computed_at_build_time():
    text = "BN `0.57 ± 0.0027` (n seeds), twin to `8.4e-15`<!-- build -->, in `bnopt bench`, `0 of 3,151 cases`<!--build-->."
    assert readme_quotes(text) == [("0.57 ± 0.0027", False), ("8.4e-15", True), ("0 of 3,151 cases", True)]
