"""Smoke execution of every chapter at the `tiny` profile, on a tiny image-folder dataset."""
import json

import pytest

from bnopt import build as B
from bnopt.paths import repo_root

ROOT = repo_root()


@pytest.mark.slow
@pytest.mark.parametrize("nb_path", B.chapters(ROOT), ids=lambda p: p.stem)
def test_chapter_executes_at_tiny_profile(nb_path, tiny_data, tmp_path, monkeypatch):
    params = B.profile_parameters(ROOT, "tiny")[nb_path.stem]
    out = tmp_path / "stage" / nb_path.name
    B.execute_chapter(nb_path, out, params, cwd=tmp_path)
    nb = json.loads(out.read_text())
    errors = [o for c in nb["cells"] for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    glued = [o for c in nb["cells"] for o in c.get("outputs", [])
             if "application/papermill.record+json" in o.get("data", {}) or
             o.get("metadata", {}).get("scrapbook")]
    assert glued, "the chapter glued no values for the text"
