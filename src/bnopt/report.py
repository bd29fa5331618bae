"""Prose helpers for the chapters: numbers glued into the text (myst-nb `glue`) and their formatting."""
from __future__ import annotations

import numpy as np


def gmd(name: str, text) -> None:
    """Glue `text` as Markdown under `name`, for {glue:md}`name` in the chapter's prose."""
    from IPython.display import Markdown
    from myst_nb import glue

    glue(name, Markdown(str(text)), display=False)


def gfig(name: str, fig) -> None:
    """Glue a matplotlib figure under `name` (for a {glue:figure} directive) without showing it here."""
    from myst_nb import glue

    glue(name, fig, display=False)


def sci(x, digits: int = 1) -> str:
    """A float for prose, e.g. 3.2e-15; 'n/a' when missing."""
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}e}"


def num(x, digits: int = 3) -> str:
    """A float for prose with `digits` significant digits; 'n/a' when missing."""
    return "n/a" if x is None or not np.isfinite(x) else f"{x:.{digits}g}"


def pm_g(values, digits: int = 2) -> str:
    """'mean ± std (n seeds)' of per-seed values, significant digits; 'n/a' when none are finite."""
    v = np.asarray([x for x in values if x is not None and np.isfinite(x)], dtype=float)
    if len(v) == 0:
        return "n/a"
    s = v.std(ddof=1) if len(v) > 1 else 0.0
    return f"{v.mean():.{digits}g} ± {s:.2g}"


def glued_values(stage) -> dict:
    """{chapter: {name: text}} of every value glued in the executed notebooks of a staging tree
    (Markdown as its text, figures as '<figure>'), to compare two builds number by number:
    python -m bnopt.report _stage > glued.json"""
    import json
    from pathlib import Path

    out = {}
    for nb_path in sorted(Path(stage).glob("*.ipynb")):
        if nb_path.name.startswith("."):
            continue
        values = {}
        for cell in json.loads(nb_path.read_text()).get("cells", []):
            for o in cell.get("outputs", []):
                book = o.get("metadata", {}).get("scrapbook", {})
                if book.get("name"):
                    prefix = book.get("mime_prefix", "")
                    data = {k.removeprefix(prefix): v for k, v in o.get("data", {}).items()}
                    text = data.get("text/markdown", data.get("text/plain"))
                    if "image/png" in data or text is None:
                        text = "<figure>"
                    values[book["name"]] = "".join(text) if isinstance(text, list) else text
        out[nb_path.stem] = values
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(glued_values(sys.argv[1] if len(sys.argv) > 1 else "_stage"), indent=1, sort_keys=True))
