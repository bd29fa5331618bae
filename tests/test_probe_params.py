"""The probes' settings are chapter parameters: the landscape step sizes scale with each run's learning rate,
the chapters sharing runs declare the same defaults, and a bad value is named before anything trains."""
from __future__ import annotations

import pytest

from bnopt.book import experiments as E
from bnopt.book.build import book_dir, notebook_parameters
from bnopt.runs.paths import repo_root


def landscape_etas(cfg):
    return next(p.kwargs["etas"] for p in cfg.probes if p.name == "landscape")


def test_step_sizes_scale_with_the_run_lr():
    base = E.vgg_base("vgg16", 0.125, 10, 8, 0, 0, 5, 0)
    assert landscape_etas(E.at_lr(base, 0.1, E.VGG_ETA_MULTIPLES)) == [0.05, 0.1, 0.2, 0.4]
    assert landscape_etas(E.at_lr(base, 0.01, E.VGG_ETA_MULTIPLES)) == [0.005, 0.01, 0.02, 0.04]
    assert E.at_lr(base, 0.01, [1.0]).optim.lr == 0.01


def test_grids_use_the_chapter_multiples_and_iters():
    params = {**E.chapter_parameters("smoothness", "tiny"), "eta_multiples": [1.0, 3.0], "hessian_iters": 7}
    grid = E.chapter_grid("smoothness", params)
    cfg = grid[("vgg", "batch", params["lr"])][0]
    assert landscape_etas(cfg) == pytest.approx([params["lr"], 3 * params["lr"]])
    assert next(p.kwargs["iters"] for p in cfg.probes if p.name == "sharpness") == 7
    dln = grid[("dln", "batch", params["dln_lr"])][0]
    assert landscape_etas(dln) == pytest.approx([m * params["dln_lr"] for m in params["dln_eta_multiples"]])


def test_chapters_sharing_runs_declare_the_same_probe_defaults():
    book = book_dir(repo_root())
    for chapter in ("training", "ics", "smoothness"):
        p = notebook_parameters(book / f"{chapter}.ipynb")
        assert p["eta_multiples"] == list(E.VGG_ETA_MULTIPLES), chapter
        assert p["hessian_iters"] == E.HESSIAN_ITERS, chapter
        if chapter != "training":
            assert p["dln_eta_multiples"] == list(E.DLN_ETA_MULTIPLES), chapter


@pytest.mark.parametrize("name, value, allowed", [("eta_multiples", [0.5, -1.0], "positive numbers"),
                                                  ("dln_eta_multiples", [], "positive numbers"),
                                                  ("hessian_iters", 0, "integer >= 1")])
def test_bad_probe_settings_are_named_before_training(name, value, allowed):
    params = {**E.chapter_parameters("smoothness", "tiny"), name: value}
    with pytest.raises(ValueError, match=f"{name}=.*{allowed}"):
        E.chapter_grid("smoothness", params)


@pytest.mark.parametrize("value", [0.0, 1.5, -0.5])
def test_bad_tracking_threshold_is_named_before_anything_runs(value):
    params = {**E.chapter_parameters("bn_math", "tiny"), "track_threshold": value}
    with pytest.raises(ValueError, match=r"track_threshold=.*allowed: a number in \(0, 1\]"):
        E.chapter_grid("bn_math", params)
