"""`make verify-runs` (bnopt.runs.verify): committed runs retrained for their first steps match their records bit for bit
under the numerics they recorded; a record that does not reproduce fails naming the run; elsewhere a tolerance."""
import json

import pytest
import torch

from bnopt.runs import bundle
from bnopt.runs import launch as runs
from bnopt.runs import verify as V
from bnopt.runs.cache import RunCache
from bnopt.runs.config import dln_config


def committed_folder(tmp_path, change=None):
    """A repository root whose results/tiny/ holds a bundle of 3 short DLN runs (BN seeds 0 and 1, standard seed 0),
    the first run's training loss passed through `change` before it is exported."""
    cfgs = [dln_config(**{"optim.steps": 6, "model.norm": n, "seed": s}) for n, s in (("batch", 0), ("batch", 1), ("none", 0))]
    keys = [runs.run(c)["meta"]["key"] for c in cfgs]
    if change:
        cache = RunCache()
        r = cache.load(keys[0])
        meta = {k: v for k, v in r.pop("meta").items() if k not in ("key", "result_sha256")}
        files, _ = RunCache.encode(keys[0], cache.material(keys[0]), {**r, "train_loss": change(r["train_loss"])}, meta)
        for name, data in files.items():
            (cache.path(keys[0]) / name).write_bytes(data)
    bundle.export(keys, tmp_path / "results" / "tiny" / "tiny-1.tar.xz", profile="tiny")
    return tmp_path, keys


def test_committed_runs_retrain_bit_for_bit_and_the_outcome_is_recorded(home, tmp_path):
    root, keys = committed_folder(tmp_path)
    o = V.verify("tiny", steps=4, workers=1, root=root)
    assert o["passed"] and [e["kind"] for e in o["checked"]] == ["BN DLN", "other", "other"]
    assert all(e["mode"] == "exact" and e["identical"] and e["steps"] == 4 for e in o["checked"])
    assert o["missing_kinds"] == ["standard VGG", "BN VGG", "lp VGG"]
    saved = json.loads((V.data_home() / V.OUTCOME_FILE).read_text())
    assert saved["passed"] and len(saved["checked"]) == 3
    line = V.outcome_line("tiny", set(keys))
    assert line.startswith("`make verify-runs` passed on ") and line.count("bit-identical") == 3
    assert "were not verified" in V.outcome_line("narrow", set(keys))
    assert V.outcome_line("tiny", set()) == "No `tiny` runs are committed: nothing to verify."


def test_a_record_that_does_not_reproduce_fails_naming_the_run(home, tmp_path):
    def one_ulp(loss):                                        # the smallest change a float32 can make, at step 2
        out = loss.clone()
        out[2] = torch.nextafter(out[2], torch.tensor(float("inf")))
        return out
    root, keys = committed_folder(tmp_path, change=one_ulp)
    with pytest.raises(V.VerifyError, match=rf"dln-d25 norm=batch lr=1e-06 seed=0 \[{keys[0]}\] \(BN DLN\): "
                                            r"differs at result.train_loss"):
        V.verify("tiny", steps=4, workers=1, root=root)
    assert not json.loads((V.data_home() / V.OUTCOME_FILE).read_text())["passed"]


def test_under_other_numerics_a_tolerance_from_the_seed_spread_decides(home, tmp_path, monkeypatch):
    """Another vendor's rounding: a difference far below the seed-to-seed spread passes, a large one fails."""
    monkeypatch.setattr(V, "numerics", lambda: "GenuineIntel AVX2, torch 0")
    root, keys = committed_folder(tmp_path, change=lambda loss: loss * (1 + 1e-6))
    o = V.verify("tiny", steps=4, workers=1, root=root)
    first = o["checked"][0]
    assert first["mode"] == "tolerance" and not first["identical"] and first["gap"] <= first["allowed"]
    assert "the std over 2 committed seeds" in first["tolerance"]
    assert o["checked"][1]["identical"]                       # an untouched record still matches bit for bit
    root2, _ = committed_folder(tmp_path / "b", change=lambda loss: loss * 3)
    with pytest.raises(V.VerifyError, match=r"mean loss over its last 100 steps moved"):
        V.verify("tiny", steps=4, workers=1, root=root2)


def test_nothing_committed_is_nothing_to_verify(home, tmp_path, capsys, monkeypatch):
    o = V.verify("tiny", root=tmp_path)
    assert o["checked"] == [] and o["committed"] == 0 and o["passed"]
