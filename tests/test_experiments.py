"""The chapters' grids: declared for every profile, and the VGG runs shared between chapters."""
import pytest

from bnopt.book import experiments as E
from bnopt.book.build import profiles
from bnopt.runs.config import canonical_json
from bnopt.runs.paths import repo_root

CHAPTERS = sorted(E.GRIDS)


def keys(chapter, profile):
    grid = E.GRIDS[chapter](**E.chapter_parameters(chapter, profile))
    return {canonical_json(c.to_dict()) for c in E.grid_configs(grid)}, grid


@pytest.mark.parametrize("profile", profiles(repo_root()))
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_every_grid_builds_with_seeds_applied(chapter, profile):
    _, grid = keys(chapter, profile)
    assert grid
    for cfgs in grid.values():
        assert len({c.seed for c in cfgs}) == len(cfgs)       # one config per seed, distinct seeds


@pytest.mark.parametrize("profile", ["quick", "paper", "tiny"])
def test_reference_runs_are_shared_between_chapters(profile):
    """Same parameters give the same configs: the LR-0.1 VGG runs are trained once for four chapters
    (the BN-math chapter reads the ones of its seeds), the DLN runs once for two."""
    training, _ = keys("training", profile)
    ics, ics_grid = keys("ics", profile)
    smooth, _ = keys("smoothness", profile)
    bn_math, _ = keys("bn_math", profile)
    lr = E.chapter_parameters("ics", profile)["lrs"][0]
    shared_vgg = {canonical_json(c.to_dict()) for n in ("none", "batch") for c in ics_grid[("vgg", n, lr)]}
    assert shared_vgg <= training and shared_vgg <= smooth
    assert bn_math and bn_math <= shared_vgg | training       # tiny's ICS chapter has fewer seeds than Fig. 1
    shared_dln = {canonical_json(c.to_dict()) for n in ("none", "batch") for c in ics_grid[("dln", n, 1e-6)]}
    assert shared_dln <= smooth


def test_only_the_reference_runs_keep_weights():
    """The reference runs keep their final weights and sigma_j (for the BN-math chapter); the runs derived
    from them with fewer probes (other LRs, noisy BN, sweeps) keep neither."""
    for chapter in ("training", "ics", "smoothness"):
        p = E.chapter_parameters(chapter, "quick")
        for cfg in E.grid_configs(E.chapter_grid(chapter, p)):
            ref_lr = p["lrs"][0] if "lrs" in p else p["lr"]
            reference = (cfg.model.arch != "dln" and cfg.model.norm in ("none", "batch") and cfg.optim.lr == ref_lr
                         and cfg.optim.steps == p["steps"])
            assert cfg.save_state == reference, (chapter, cfg.model.norm, cfg.optim.lr)
            assert ("unit_std" in [pr.name for pr in cfg.probes]) == reference


def test_noise_norms_only_at_the_reference_lr():
    p = E.chapter_parameters("ics", "quick")
    grid = E.ics_grid(**p)
    noisy = [k for k in grid if k[1] in p["noise_norms"]]
    assert noisy and all(k[2] == p["lrs"][0] for k in noisy)
    assert all(c.model.norm in ("none", "batch") for k, cs in grid.items() if k[0] == "dln" for c in cs)


def test_book_probes_cover_what_the_chapters_plot():
    names = [p.name for p in E.book_probes(50, 250, E.VGG_RIDGE_LAYERS, E.scaled_etas(0.1, E.VGG_ETA_MULTIPLES))]
    assert names == ["activations", "ics", "landscape", "sharpness"]
    assert "sharpness" not in [p.name for p in E.book_probes(50, 0, E.VGG_RIDGE_LAYERS, E.scaled_etas(0.1, E.VGG_ETA_MULTIPLES))]
    for chapter, key in (("training", "ridge_layers"), ("ics", "ridge_layers")):
        assert set(E.chapter_parameters(chapter, None)[key]) <= set(E.VGG_RIDGE_LAYERS)


def test_check_layers_names_the_valid_choices():
    assert E.check_layers("ridge_layers", [3, 11], E.VGG_RIDGE_LAYERS) == [3, 11]
    with pytest.raises(ValueError, match=r"layers \[4\] are not recorded; valid choices: \[2, 3, 9, 11, 13\]"):
        E.check_layers("ridge_layers", [3, 4], E.VGG_RIDGE_LAYERS)


def test_sweep_runs_carry_the_landscape_after_step_zero_and_one_curvature_measurement():
    params = {**E.chapter_parameters("smoothness", "quick"), "sweep_probe_every": 40, "dln_sweep_probe_every": 250}
    grid = E.chapter_grid("smoothness", params)
    for kind, every, total in (("vgg_sweep", 40, params["sweep_steps"]), ("dln_sweep", 250, params["dln_sweep_steps"])):
        lr = params["sweep_lrs" if kind == "vgg_sweep" else "dln_sweep_lrs"][1]
        cfg = grid[(kind, "batch", lr)][0]
        probes = {p.name: p for p in cfg.probes}
        assert sorted(probes) == ["landscape", "sharpness"]
        assert list(probes["landscape"].steps(total)) == list(range(every, total, every))
        assert list(probes["sharpness"].steps(total)) == [list(range(every, total, every))[-1]]
        multiples = E.VGG_ETA_MULTIPLES if kind == "vgg_sweep" else E.DLN_ETA_MULTIPLES
        assert probes["landscape"].kwargs["etas"] == E.scaled_etas(lr, multiples)
    assert not grid[("vgg_sweep", "batch", params["sweep_lrs"][0])][0].data.eval_test
    with pytest.raises(ValueError, match="sweep_probe_every=120.*allowed: 0 to sweep_steps - 1"):
        E.chapter_grid("smoothness", {**params, "sweep_probe_every": params["sweep_steps"]})
    none = E.chapter_grid("smoothness", {**params, "sweep_probe_every": 0})
    assert all(not c.probes for c in none[("vgg_sweep", "none", params["sweep_lrs"][0])])


def test_weight_decay_runs_probe_at_the_reference_steps_and_are_checked():
    params = E.chapter_parameters("smoothness", "quick")
    grid = E.chapter_grid("smoothness", params)
    ref, wd = grid[("vgg", "batch", params["lr"])], grid[("vgg_wd", "batch", params["lr"])]
    assert [c.seed for c in wd] == params["wd_seeds"] and all(c.optim.weight_decay == params["weight_decay"] for c in wd)
    land = lambda c: next(p for p in c.probes if p.name == "landscape")
    assert land(wd[0]) == land(ref[0]) and wd[0].optim.steps == params["wd_steps"]
    assert sorted(p.name for p in wd[0].probes) == ["landscape", "weight_norm"] and not wd[0].save_state
    assert ("vgg_wd", "batch", params["lr"]) not in E.chapter_grid("smoothness", {**params, "weight_decay": 0.0})
    for bad in ({"wd_seeds": [7]}, {"wd_steps": params["steps"] + 1}, {"weight_decay": -1e-4}):
        with pytest.raises(ValueError, match="the weight-decay runs; allowed"):
            E.chapter_grid("smoothness", {**params, **bad})


def test_reads_weights_names_exactly_the_chapters_that_rebuild_trained_networks():
    """experiments.READS_WEIGHTS (which chapters a bundle without weights cannot serve) against the code: the
    chapter modules that call train.model_of(cfg, result), i.e. with a second argument, or measure a run at a point
    (`bnopt.book.measurements.point(name, cfg, result, ...)`: the trained network, where no measurement is
    committed)."""
    import ast
    from pathlib import Path

    import bnopt.book.chapters
    from bnopt.book.experiments import GRIDS, READS_WEIGHTS
    calls = set()
    folder = Path(bnopt.book.chapters.__file__).parent
    for path in folder.rglob("*.py"):               # a chapter is a module or a package of modules
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and (getattr(node.func, "id", None) == "model_of" and len(node.args) >= 2
                                               or getattr(node.func, "id", None) == "point" and len(node.args) >= 3):
                calls.add(path.relative_to(folder).parts[0].removesuffix(".py"))
    assert calls == set(READS_WEIGHTS) and calls <= set(GRIDS)


# What the two profiles' runs may differ in without changing a trajectory: the budget and what is recorded
# (test_train.py: test_probes_do_not_change_the_training_run, test_a_shorter_run_is_the_start_of_a_longer_one).
# The ledger's "What moved with scale" rests on this.
RECORDING_ONLY = ("optim.steps", "probes", "eval_every", "data.eval_train_subset")
QUICK_ONLY = {("norms", ("dln", "group", 1e-06))}   # quick keeps its degenerate DLN groups of two (its cache keys)


def _trajectory(cfg) -> str:
    d = cfg.to_dict()
    for path in RECORDING_ONLY:
        *outer, last = path.split(".")
        node = d
        for k in outer:
            node = node[k]
        node.pop(last)
    return canonical_json(d)


def test_quick_runs_are_the_first_steps_of_narrow_runs():
    """Every quick run has a narrow run that differs from it only in its budget (never shorter) and in what it
    records, so it follows the same trajectory: quick sees the first steps of narrow's training. The only exception
    is declared (QUICK_ONLY)."""
    narrow = {}
    for ch in CHAPTERS:
        for cfgs in E.chapter_grid(ch, E.chapter_parameters(ch, "narrow")).values():
            for c in cfgs:
                narrow.setdefault(_trajectory(c), []).append(c.optim.steps)
    missing = set()
    for ch in CHAPTERS:
        for key, cfgs in E.chapter_grid(ch, E.chapter_parameters(ch, "quick")).items():
            for c in cfgs:
                longer = [s for s in narrow.get(_trajectory(c), []) if s >= c.optim.steps]
                if not longer:
                    missing.add((ch, key))
    assert missing == QUICK_ONLY
