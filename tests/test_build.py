import json
from pathlib import Path

import nbformat
import pytest

from bnopt.book import build as B
from bnopt.book import params as PM
from bnopt.book import status as ST
from bnopt.runs.paths import repo_root

ROOT = repo_root()
CHAPTERS = B.chapters(ROOT)


def test_toc_lists_chapters():
    assert [p.stem for p in CHAPTERS][:1] == ["training"] or "training" in [p.stem for p in CHAPTERS]
    for f in PM.toc_files(ROOT):
        assert (ROOT / "book" / f"{f}.md").exists() or (ROOT / "book" / f"{f}.ipynb").exists(), f


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.stem)
def test_committed_notebook_is_clean(nb_path):
    nb = json.loads(nb_path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in code), "outputs committed"
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    tagged = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1
    nbformat.validate(nbformat.reads(nb_path.read_text(), as_version=4))


@pytest.mark.parametrize("nb_path", CHAPTERS, ids=lambda p: p.stem)
def test_parameters_cell_fully_parsed(nb_path):
    """Every assignment in the parameters cell is a parameter (papermill's own parser can drop some)."""
    import ast
    nb = json.loads(nb_path.read_text())
    (cell,) = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    src = "".join(cell["source"])
    names = [n.targets[0].id for n in ast.parse(src).body]
    assert list(B.notebook_parameters(nb_path)) == names
    import papermill
    assert set(papermill.inspect_notebook(str(nb_path))) == set(names), "papermill cannot parse a line"


@pytest.mark.parametrize("profile", B.profiles(ROOT))
def test_every_profile_is_valid(profile):
    params = B.profile_parameters(ROOT, profile)
    assert set(params) == {p.stem for p in CHAPTERS}


def test_profiles_exist():
    assert {"quick", "paper", "tiny"} <= set(B.profiles(ROOT))


def test_unknown_profile_names_the_choices():
    with pytest.raises(B.BuildError, match="unknown profile 'fast'; valid choices: .*quick"):
        B.profile_parameters(ROOT, "fast")


def test_yaml_reads_exponents_as_floats(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("a: 1e-3\nb: 2.5E+2\nc: 0.1\nd: 10\ne: [1e-6, 1e-7]\nf: hello\n")
    d = PM.load_yaml(p)
    assert d == {"a": 1e-3, "b": 250.0, "c": 0.1, "d": 10, "e": [1e-6, 1e-7], "f": "hello"}
    assert isinstance(d["d"], int)


def _write_nb(path: Path, cells):
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, path)
    return path


def _params_cell(src):
    c = nbformat.v4.new_code_cell(src)
    c.metadata["tags"] = ["parameters"]
    return c


def test_unknown_parameter_is_an_error(tmp_path):
    nb = _write_nb(tmp_path / "ch.ipynb", [_params_cell("alpha = 1  # a = b")])
    assert B.notebook_parameters(nb) == {"alpha": 1}
    with pytest.raises(B.BuildError, match=r"unknown parameter\(s\) \['alhpa'\].*\['alpha'\]"):
        B.execute_chapter(nb, tmp_path / "out" / "ch.ipynb", {"alhpa": 2})


def test_parameters_cell_must_be_literals(tmp_path):
    nb = _write_nb(tmp_path / "ch.ipynb", [_params_cell("import os\nalpha = 1")])
    with pytest.raises(B.BuildError, match="only `name = literal`"):
        B.notebook_parameters(nb)


@pytest.mark.slow
def test_failing_chapter_leaves_no_executed_copy(tmp_path):
    nb = _write_nb(tmp_path / "ch.ipynb", [_params_cell("fail = True"),
                                           nbformat.v4.new_code_cell("assert not fail, 'boom'")])
    out = tmp_path / "stage" / "ch.ipynb"
    B.execute_chapter(nb, out, {"fail": False})
    assert out.exists()
    with pytest.raises(B.BuildError, match="boom"):
        B.execute_chapter(nb, out, {"fail": True})
    assert not out.exists() and list(out.parent.iterdir()) == []


def _fake_chapters(monkeypatch, tmp_path, fail=None):
    """stage_book with the real table of contents but a fake executor that records when each chapter ran."""
    import contextlib
    import threading
    import time

    log, lock = [], threading.Lock()

    def fake_execute(nb_path, out_path, parameters, cwd=None):
        with lock:
            log.append(("start", nb_path.stem, time.perf_counter(), dict(B.os.environ)))
        with contextlib.chdir(cwd):                  # as papermill starts its kernel
            time.sleep(0.1 + 0.1 * ([nb.stem for nb in CHAPTERS].index(nb_path.stem) % 2))
            with lock:
                log.append(("cwd", nb_path.stem, time.perf_counter(), B.os.getcwd()))
        time.sleep(0.1)
        if nb_path.stem == fail:
            raise B.BuildError(f"chapter {fail!r} failed: boom")
        out_path.write_text("{}")
        with lock:
            log.append(("end", nb_path.stem, time.perf_counter(), None))
        return 0.2

    monkeypatch.setattr(B, "execute_chapter", fake_execute)
    monkeypatch.setattr(B, "train_all", lambda *a, **k: {"trained": 0, "cached": 0, "workers": 1, "threads": 1})
    monkeypatch.setenv("BNOPT_PROGRESS", "off")
    return log


def test_chapters_execute_two_at_a_time_and_cost_and_ledger_alone_last(home, monkeypatch, tmp_path):
    log = _fake_chapters(monkeypatch, tmp_path)
    monkeypatch.setenv("BNOPT_CHAPTER_JOBS", "2")
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    timings = B.stage_book(ROOT, tmp_path / "stage", "tiny")
    stems = [nb.stem for nb in CHAPTERS]
    assert set(timings) == {"runs", *stems}
    starts = {s: t for kind, s, t, _ in log if kind == "start"}
    ends = {s: t for kind, s, t, _ in log if kind == "end"}
    together = [s for s in sorted(stems, key=lambda s: -B.TYPICAL_SECONDS.get(s, 0)) if s not in B.ALONE]
    assert [s for kind, s, _, _ in log if kind == "start"][:2] == together[:2]   # longest first: no timings here
    assert starts[together[1]] < ends[together[0]]                   # two chapters overlap
    assert starts["cost"] > max(ends[s] for s in together)           # cost runs alone, after them
    assert starts["ledger"] > ends["cost"]                           # the ledger reads every chapter
    env = {s: e for kind, s, _, e in log if kind == "start"}
    assert env[together[0]]["OMP_NUM_THREADS"] == str(max(1, (B.os.cpu_count() or 1) // 2))
    assert "OMP_NUM_THREADS" not in env["cost"] and "OMP_NUM_THREADS" not in B.os.environ   # restored
    # every kernel starts in the stage, although each chapter's chdir restores the folder it found
    assert {s: c for kind, s, _, c in log if kind == "cwd"} == {s: str(tmp_path / "stage") for s in stems}


def test_a_failing_chapter_stops_the_parallel_build(home, monkeypatch, tmp_path):
    stems = [nb.stem for nb in B.longest_first([nb for nb in CHAPTERS if nb.stem not in B.ALONE])]
    log = _fake_chapters(monkeypatch, tmp_path, fail=stems[0])
    monkeypatch.setenv("BNOPT_CHAPTER_JOBS", "1")
    with pytest.raises(B.BuildError, match=f"chapter '{stems[0]}' failed"):
        B.stage_book(ROOT, tmp_path / "stage", "tiny")
    assert [s for kind, s, _, _ in log if kind == "start"] == [stems[0]]   # nothing else started


def test_chapters_start_longest_first_by_this_machines_latest_timings(tmp_path):
    nbs = [Path(f"{s}.ipynb") for s in ("bn_math", "training", "smoothness", "norms")]
    assert [p.stem for p in B.longest_first(nbs, tmp_path / "none.jsonl")] == ["smoothness", "bn_math", "norms",
                                                                              "training"]   # no log: TYPICAL_SECONDS
    log = tmp_path / "build-times.jsonl"
    log.write_text("\n".join([json.dumps({"chapters": {"training": 500.0, "norms": 300.0}}),
                              '{"chapters": {"smoothness": 12',                   # a line cut by a killed build
                              json.dumps({"chapters": {"training": 5.0, "smoothness": 0.0, "bn_math": 200.0}})]))
    # training's latest time (5 s) replaces its earlier one; smoothness reused (0 s) keeps its typical 127 s
    assert [p.stem for p in B.longest_first(nbs, log)] == ["norms", "bn_math", "smoothness", "training"]


@pytest.mark.parametrize("value", ["0", "two", "-1"])
def test_bad_chapter_jobs_names_what_is_allowed(monkeypatch, value):
    monkeypatch.setenv("BNOPT_CHAPTER_JOBS", value)
    with pytest.raises(B.BuildError, match="allowed: an integer >= 1"):
        B.chapter_jobs()


def test_a_chapter_whose_runs_are_missing_or_lack_the_weights_it_reads_falls_back(home, tmp_path, monkeypatch):
    """plan_profiles: at a profile not trained here, a chapter executes there only when the run cache holds all
    its runs (and, for the chapters that rebuild trained networks, their final weights); the others fall back."""
    from bnopt.book.experiments import READS_WEIGHTS
    from bnopt.runs import bundle
    from bnopt.runs import launch as runs
    from bnopt.runs.cache import RunCache
    from bnopt.runs.config import dln_config
    cfg = lambda seed, **kw: dln_config(**{"optim.steps": 3, "seed": seed, **kw})
    kept = cfg(0, save_state=True)
    k = runs.run(kept)["meta"]["key"]
    bundle.export([k], tmp_path / "nw.tar", weights=False)
    runs.run(cfg(1))                                           # cached; cfg(2) is not
    grids = {"training": [kept, cfg(1)], "bn_math": [kept], "smoothness": [cfg(1), cfg(2)]}
    monkeypatch.setattr(ST, "chapter_configs", lambda stem, profile: grids.get(stem, []) if profile == "paper" else [])
    stems = ["training", "bn_math", "smoothness", "library", "cost"]
    assert ST.plan_profiles("paper", stems, None) == ({s: "paper" for s in stems}, {})
    assert ST.plan_profiles("paper", stems, "quick") == (
        {"training": "paper", "bn_math": "paper", "smoothness": "quick", "library": "quick", "cost": "paper"},
        {"smoothness": "at `paper`, 1 of its 2 runs are not in the run cache",
         "library": "it computes at `paper` scale itself, which this build does not"})
    import shutil
    shutil.rmtree(RunCache().path(k))                          # now the entry comes from the bundle, weightless
    bundle.install(tmp_path / "nw.tar")
    at, why = ST.plan_profiles("paper", stems, "quick")
    assert "bn_math" in READS_WEIGHTS and "training" not in READS_WEIGHTS
    assert at == {"training": "paper", "bn_math": "quick", "smoothness": "quick", "library": "quick", "cost": "paper"}
    assert why["bn_math"] == "at `paper`, 1 runs came without the final weights it reads"
    status = B.run_status({s: grids[s] for s in ("training", "smoothness")})
    from bnopt.runs.numerics import numerics
    here = f"CPU ({numerics()})"
    assert status["training"]["runs"] == 2 and status["training"]["devices"] == {here: 2}
    assert [c.seed for c in status["smoothness"]["missing"]] == [2] and status["training"]["weightless"] == []
    table = B.scale_table(at, status, why)
    assert f"| {{doc}}`smoothness` | `quick` * | 2 | 0 | 0 | {here} (1) |" in table
    assert "- \\* {doc}`smoothness` is at `quick`: at `paper`, 1 of its 2 runs are not in the run cache." in table
    # where nothing falls back, such runs stop the build before any chapter executes, naming them
    monkeypatch.setattr(B, "train_all", lambda root, prof, st, train, **k: {
        "trained": 0, "cached": 1, "workers": 1, "threads": 1, "chapters": B.run_status({"bn_math": grids["bn_math"]})})
    monkeypatch.setattr(B, "execute_chapter", lambda *a, **k: pytest.fail("a chapter executed"))
    with pytest.raises(B.BuildError, match=r"without their final weights .* bn_math at profile 'tiny': dln-d25 norm=none"):
        B.stage_book(ROOT, tmp_path / "stage", "tiny")


def test_chapters_at_two_profiles_execute_each_under_its_own(home, monkeypatch, tmp_path):
    """A fallback build: each chapter executes with its profile's parameters and is told that profile (its `profile`
    parameter), the cost and ledger chapters name the mix, the environment is left as it was, and the stage's scale
    table (on the front page) lists every chapter."""
    log = _fake_chapters(monkeypatch, tmp_path)
    seen, env = {}, dict(B.os.environ)
    monkeypatch.setattr(B, "execute_chapter", lambda nb, out, params, cwd=None: (
        seen.__setitem__(nb.stem, (params.get("profile"), {k: v for k, v in params.items() if k != "profile"})),
        out.write_text("{}"), 0.0)[-1])
    stems = [nb.stem for nb in CHAPTERS]
    at = {s: "quick" if s == "smoothness" else "paper" for s in stems}
    monkeypatch.setattr(B, "plan_profiles", lambda profile, st, fallback: (
        (at, {"smoothness": "at `paper`, 3 of its 9 runs are not in the run cache"}) if fallback else
        ({s: profile for s in st}, {})))
    trained = []
    monkeypatch.setattr(B, "train_all", lambda root, prof, st, train, **k: (trained.append((prof, st, train)) or
                        {"trained": 0, "cached": 0, "workers": 1, "threads": 1}))
    B.stage_book(ROOT, tmp_path / "stage", "paper", train=False, fallback="quick", fallback_train=True)
    assert log == [] and trained == [("paper", [s for s in stems if s != "smoothness"], False),
                                     ("quick", ["smoothness"], True)]
    quick, paper = B.profile_parameters(ROOT, "quick"), B.profile_parameters(ROOT, "paper")
    assert seen["smoothness"] == ("quick", quick["smoothness"]) and seen["training"] == ("paper", paper["training"])
    assert seen["ledger"][0] == "paper (smoothness at quick)" and dict(B.os.environ) == env
    table = (tmp_path / "stage" / B.SCALE_FILE).read_text()
    rows = [line for line in table.splitlines()[2:] if line.startswith("|")]
    assert [line.split("`")[1] for line in rows] == stems
    assert "| {doc}`smoothness` | `quick` * |" in table and "`smoothness` is at `quick`: at `paper`, 3 of its 9 runs" in table


def test_runs_trained_on_other_pixels_are_named_not_silently_dropped(home, monkeypatch):
    """A reader whose CIFAR-10 is not the JPEG copy the committed runs were trained on: the runs' keys differ (the key
    holds the data's fingerprint), so those chapters fall back, and the front page says why and how to use them."""
    import json

    from bnopt.runs import launch as runs
    from bnopt.runs.cache import RunCache, config_hash
    from bnopt.runs.config import dln_config
    cfgs = [dln_config(**{"optim.steps": 3, "seed": s}) for s in (0, 1)]
    runs.run(cfgs[0])
    material = {"config": cfgs[1].key_dict(), "data_fingerprint": "f00dfeed" * 8}     # as if trained on other pixels
    RunCache().write_entry(config_hash(material), {"config.json": json.dumps(material).encode(),
                                                   "meta.json": b"{}", "result.pt": b""})
    monkeypatch.setattr(ST, "chapter_configs", lambda stem, profile: cfgs if profile == "paper" and stem == "ics" else [])
    at, why = ST.plan_profiles("paper", ["ics"], "quick")
    assert at == {"ics": "quick"}
    assert why["ics"] == ("at `paper`, 1 of its 2 runs are not in the run cache and 1 of them are there for other "
                          "CIFAR-10 pixels (f00dfeedf00d: the committed runs were trained on the JPEG copy; DATA= "
                          "pointing at that copy builds from them)")


def test_a_warm_build_reuses_the_chapters_whose_inputs_are_unchanged(monkeypatch, tmp_path):
    """The second build of the same stage executes only the chapters that run alone; a changed parameter, a deleted
    claim record or --rerun executes a chapter again."""
    from bnopt.book import claims, reuse

    log = _fake_chapters(monkeypatch, tmp_path)
    monkeypatch.setenv("BNOPT_CHAPTER_JOBS", "1")
    stage = tmp_path / "stage"
    B.stage_book(ROOT, stage, "tiny")
    stems = [nb.stem for nb in CHAPTERS]
    started = lambda: [s for kind, s, _, _ in log if kind == "start"]
    assert sorted(started()) == sorted(stems)
    log.clear()
    timings = B.stage_book(ROOT, stage, "tiny")
    assert sorted(started()) == sorted(B.ALONE) and all(timings[s] == 0.0 for s in stems if s not in B.ALONE)
    assert json.loads((stage / ".build-times.json").read_text())["reused"] == sorted(set(stems) - set(B.ALONE))
    log.clear()
    B.stage_book(ROOT, stage, "tiny", rerun=True)
    assert sorted(started()) == sorted(stems)
    # a chapter's claim record gone or edited: that chapter executes again, the others are reused
    target = next(s for s in stems if s not in B.ALONE and any(c.chapter == s for c in claims.CLAIMS if c.id in claims.TESTS))
    cid = next(c.id for c in claims.CLAIMS if c.chapter == target and c.id in claims.TESTS)
    rec = claims.record(cid, claims.compare(cid, [1.0, 2.0], [1.5, 2.5]), "m", "tiny: x", stage)
    reuse.remember(stage, target, json.loads((stage / reuse.MARKS / f"{target}.json").read_text())["inputs"])
    log.clear()
    B.stage_book(ROOT, stage, "tiny")
    assert sorted(started()) == sorted(B.ALONE)                        # the record is the one it remembered
    (stage / claims.CLAIMS_DIR / f"{rec['id']}.json").unlink()
    log.clear()
    B.stage_book(ROOT, stage, "tiny")
    assert sorted(started()) == sorted([target, *B.ALONE])
    # a parameter of one chapter changed: only that one
    real = B.profile_parameters
    monkeypatch.setattr(B, "profile_parameters",
                        lambda root, prof: {**real(root, prof), target: {**real(root, prof)[target], "seeds": [7]}})
    log.clear()
    B.stage_book(ROOT, stage, "tiny")
    assert sorted(started()) == sorted([target, *B.ALONE])


def test_the_stage_mirrors_no_output_a_chapter_left_inside_book(monkeypatch, tmp_path):
    """A chapter executed by hand inside book/ leaves claim records and figures there; the build must not copy them
    over the stage's (a reused chapter's would be replaced by stale ones)."""
    import shutil

    _fake_chapters(monkeypatch, tmp_path)
    book = tmp_path / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("*.ipynb"))
    for rel in (".claims/fig1_speed.json", ".robust/a=1/.claims/fig1_speed.json", "_figures/fig.png"):
        (book / rel).parent.mkdir(parents=True, exist_ok=True)
        (book / rel).write_text("stale")
    monkeypatch.setattr(B, "book_dir", lambda root: book)
    B.stage_book(ROOT, tmp_path / "stage", "tiny")
    stage = tmp_path / "stage"
    assert (stage / "intro.md").is_file() and (stage / "references.bib").is_file()
    assert not (stage / ".claims" / "fig1_speed.json").exists() and not (stage / "_figures" / "fig.png").exists()
    assert not (stage / ".robust").exists()
