"""The book at another scale (bnopt.book.scales): snapshots of one profile, and the claim-by-claim comparison."""
import json

import pytest

from bnopt.analysis.verdict import Comparison, TheoryCheck
from bnopt.book import claims, scales
from bnopt.runs.paths import repo_root


def _stage(tmp_path, profile_of_claim: dict[str, str], ratios: dict[str, list[float]]):
    """A staged build whose claims were measured at the given profiles, with per-seed ratios A/B (A = ratio · B)."""
    for cid, prof in profile_of_claim.items():
        b = [1.0] * len(ratios[cid])
        c = claims.compare(cid, [r * x for r, x in zip(ratios[cid], b)], b)
        claims.record(cid, c, "a measurement", f"{prof}: VGG16 width 0.125", tmp_path)
    return tmp_path


def test_a_snapshot_is_of_one_profile(tmp_path):
    ids = [k for k in claims.BY_ID if k in claims.TESTS][:2]
    stage = _stage(tmp_path, {ids[0]: "quick", ids[1]: "narrow"}, {ids[0]: [0.5, 0.6], ids[1]: [0.5, 0.6]})
    with pytest.raises(scales.SnapshotError, match=f"another profile than 'quick'.*{ids[1]}"):
        scales.snapshot(stage, "quick")
    exact = _stage(tmp_path / "exact", {ids[0]: "quick"}, {ids[0]: [0.5, 0.6]})
    claims.record("lemma45", TheoryCheck(None, 1, 1, "statement incorrect"), "m", "float64, exact",
                  exact)
    assert set(scales.snapshot(exact, "quick")["records"]) == {ids[0], "lemma45"}     # exact checks name no profile
    with pytest.raises(scales.SnapshotError, match="no claim records"):
        scales.snapshot(tmp_path / "empty", "quick")


def test_moves_compares_only_claims_measured_at_another_profile(tmp_path):
    """Two claims: one measured here at narrow whose verdict moved, one still at the snapshot's profile (skipped)."""
    ids = [k for k in claims.BY_ID if k in claims.TESTS and claims.TESTS[k].magnitude is None][:2]
    side = {k: claims.TESTS[k].side for k in ids}
    agree = {k: [0.5, 0.55, 0.6, 0.52, 0.58] if side[k] == "<" else [2.0, 1.8, 1.9, 2.1, 2.2] for k in ids}
    against = {k: [1 / x for x in v] for k, v in agree.items()}
    snap_stage = _stage(tmp_path / "q", {k: "quick" for k in ids}, agree)
    snap = scales.write(snap_stage, tmp_path / "snap.json", "quick")
    assert json.loads((tmp_path / "snap.json").read_text())["profile"] == "quick"
    here_stage = _stage(tmp_path / "n", {ids[0]: "narrow", ids[1]: "quick"}, against)
    here = claims.corrected(claims.load(here_stage))
    header, rows, counts = scales.moves(here, scales.load(tmp_path / "snap.json"))
    assert counts == {"compared": 1, "same": 0, "moved": 1}
    assert header[2] == "verdict at quick" and len(rows) == 1 and rows[0][0].startswith(claims.BY_ID[ids[0]].text)
    assert "`reproduced`" in rows[0][2] and "`contradicted`" in rows[0][3] and rows[0][3].endswith("⇐ moved")
    assert header[-1] == "what changed" and rows[0][-1] == "the effect changed side"     # per-seed ratios inverted
    assert scales.moves_line(counts, snap).endswith("0 keep the verdict they had there and 1 moved")
    assert scales.moves({}, None)[2]["compared"] == 0 and "nothing to compare" in scales.moves_line({}, None)
    assert "nothing to compare" in scales.moves_line({"compared": 0, "same": 0, "moved": 0}, snap)


def test_a_snapshot_carries_its_glued_values_and_provenance(tmp_path):
    cid = next(k for k in claims.BY_ID if k in claims.TESTS)
    stage = _stage(tmp_path, {cid: "quick"}, {cid: [0.5, 0.6]})
    nb = {"cells": [{"cell_type": "code", "outputs": [{"data": {"text/markdown": "**tracks**"},
                                                        "metadata": {"scrapbook": {"name": "gs_verdict"}}}]}]}
    (stage / "bn_math.ipynb").write_text(json.dumps(nb))
    snap = scales.snapshot(stage, "quick")
    assert scales.glued_at(snap, "bn_math", "gs_verdict") == "**tracks**"
    assert scales.glued_at(snap, "bn_math", "other") is None and scales.glued_at(None, "bn_math", "x") is None
    assert snap["commit"] and snap["numerics"] and scales.describe(snap).startswith("`quick` (commit ")
    assert scales.load(tmp_path / "absent.json") is None


def test_the_committed_snapshots_are_of_known_claims_at_their_own_profile():
    """Each committed snapshot names only claims the ledger knows, all measured at the snapshot's profile (its folder)."""
    found = sorted((repo_root() / "results").glob(f"*/{scales.SNAPSHOT_NAME}"))
    for path in found:
        snap = json.loads(path.read_text())
        assert snap["profile"] == path.parent.name
        assert set(snap["records"]) <= set(claims.BY_ID)
        assert {scales.profile_of(r["scale"]) for r in snap["records"].values()} == {snap["profile"], ""}   # "": exact
        for r in snap["records"].values():
            if "p" in r["numbers"]:
                Comparison.from_dict(r["numbers"])          # readable by this version's verdict code
