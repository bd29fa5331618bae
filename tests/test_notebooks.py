"""Smoke execution of every chapter at the `tiny` profile, on a tiny image-folder dataset."""
import json

import pytest

from bnopt.book import build as B
from bnopt.runs.paths import repo_root

ROOT = repo_root()


def _outputs(nb_path):
    nb = json.loads(nb_path.read_text())
    return [o for c in nb["cells"] for o in c.get("outputs", [])]


@pytest.mark.slow
def test_every_chapter_executes_at_tiny_profile(tiny_data, tmp_path, monkeypatch, capfd):
    """The build's staging step, as `make book` runs it: every chapter executes, glues values for
    its text, and training progress reaches the terminal but not the book."""
    monkeypatch.delenv("BNOPT_PROGRESS", raising=False)
    stage = tmp_path / "stage"
    stage.mkdir()
    leftover = stage / ".training.executing.ipynb"     # what a killed build of the old layout left
    leftover.write_text("{}")
    timings = B.stage_book(ROOT, stage, "tiny")
    assert not leftover.exists()
    assert list(B.executing_dir(stage).glob("*.ipynb")) == []  # nothing half-executed anywhere
    assert set(timings) == {"runs", *(p.stem for p in B.chapters(ROOT))}   # runs: the parallel pool first
    record = json.loads((stage / ".build-times.json").read_text())
    assert record["runs_trained"] > 0 and set(record["chapters"]) == {p.stem for p in B.chapters(ROOT)}
    for nb_path in B.chapters(ROOT):
        outs = _outputs(stage / nb_path.name)
        assert [o for o in outs if o.get("output_type") == "error"] == []
        assert any(o.get("metadata", {}).get("scrapbook") for o in outs), f"{nb_path.stem} glued nothing"
        streams = "".join("".join(o.get("text", "")) for o in outs if o.get("output_type") == "stream")
        assert "[bnopt]" not in streams, f"progress leaked into {nb_path.stem}"
        assert "Warning" not in streams, f"a warning is printed in {nb_path.stem}: {streams[:300]}"
    assert "[bnopt] training" in capfd.readouterr().err


@pytest.mark.parametrize("nb_path", B.chapters(ROOT), ids=lambda p: p.stem)
def test_chapters_are_thin(nb_path):
    """Chapters are prose, one parameters cell and short calls into bnopt: no function or class is
    defined in a cell, no code cell but the parameters cell is longer than 15 lines, nothing draws
    or displays outside the package's helpers."""
    import ast

    nb = json.loads(nb_path.read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(params) == 1, f"{nb_path.stem}: {len(params)} parameters cells"
    for c in code:
        src = "".join(c["source"])
        tree = ast.parse(src)
        defs = [n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.ClassDef, ast.Lambda))
                and hasattr(n, "name")]
        assert not defs, f"{nb_path.stem} defines {defs} in a cell"
        if c not in params:
            assert len(src.strip().splitlines()) <= 15, f"{nb_path.stem}: a cell of {len(src.splitlines())} lines"
            for banned in ("plt.", "display(", "Markdown(", "np.", "torch."):
                assert banned not in src, f"{nb_path.stem}: {banned!r} in a cell (it belongs in bnopt)"


@pytest.mark.parametrize("nb_path", B.chapters(ROOT), ids=lambda p: p.stem)
def test_block_values_are_pasted_as_blocks(nb_path):
    """A glued value that stands alone on its line is a block (a table, a list): pasted with the inline
    {glue:md} role, it becomes a paragraph of raw text (a table's `|---|` row shows as `|—|`). It needs the
    directive: ```{glue:md} name / :format: myst```."""
    import re

    nb = json.loads(nb_path.read_text())
    for c in nb["cells"]:
        if c["cell_type"] == "markdown":
            alone = re.findall(r"^\s*\{glue:md\}`[^`]+`\s*$", "".join(c["source"]), flags=re.M)
            assert not alone, f"{nb_path.stem}: {alone} pasted inline; use the {{glue:md}} directive"
