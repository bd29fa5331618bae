"""Prose helpers for the chapters: numbers glued into the text (myst-nb `glue`) and their formatting."""
from __future__ import annotations

import numpy as np


class GluedText:
    """Text glued as Markdown (for {glue:md} in its own chapter) whose plain form is the same text without
    Markdown marks (for {glue}`chapter.ipynb::name` on another page, which myst-nb renders as plain text).

    >>> repr(GluedText("profile `quick`, **3** seeds"))
    'profile quick, 3 seeds'
    """

    def __init__(self, text):
        self.text = str(text)

    def __repr__(self) -> str:
        return self.text.replace("`", "").replace("**", "")

    def _repr_markdown_(self) -> str:
        return self.text


def gmd(name: str, text) -> None:
    """Glue `text` as Markdown under `name`, for {glue:md}`name` in the chapter's prose."""
    from myst_nb import glue

    glue(name, GluedText(text), display=False)


FIGURES_DIR = "_figures"


def gfig(name: str, fig, keep: bool = False) -> None:
    """Glue a matplotlib figure under `name` (for a {glue:figure} directive) without showing it here.
    keep=True also writes it to `_figures/<name>.png` beside the executing chapter, for the front page
    (myst-nb cannot glue a figure into another page)."""
    from pathlib import Path

    from myst_nb import glue

    if keep:
        Path(FIGURES_DIR).mkdir(exist_ok=True)
        fig.savefig(Path(FIGURES_DIR) / f"{name}.png", dpi=90)
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


def gmd_all(texts: dict) -> None:
    """Glue every {name: text} as Markdown."""
    for name, text in texts.items():
        gmd(name, text)


def show(markdown: str) -> None:
    """Display Markdown as the cell's output (parsed as MyST: tables, roles and dropdowns render)."""
    from IPython.display import Markdown, display

    display(Markdown(markdown))


def table(header: list[str], rows: list[list]) -> str:
    """A Markdown pipe table (rendered as a table: the book parses Markdown outputs as MyST).

    >>> print(table(["a", "b"], [[1, "x|y"]]))
    | a | b |
    |---|---|
    | 1 | x\\|y |
    """
    def cell(v):
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(cell, header)) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(map(cell, r)) + " |" for r in rows])


def show_table(header: list[str], rows: list[list]) -> None:
    """Display `table(header, rows)` as the cell's output."""
    show(table(header, rows))


def data_source() -> str:
    """The data copy the runs read, named without the building machine's path."""
    import os
    from pathlib import Path

    src = os.environ.get("BNOPT_DATA", "").strip()
    return f"the CIFAR-10 image-folder copy `{Path(src).name}` (BNOPT_DATA)" if src else "torchvision's CIFAR-10 download"


def provenance(results: dict, profile: str) -> str:
    """A collapsed block (MyST dropdown) with the provenance of a chapter's runs: profile (the chapter's `profile`
    parameter), commits, device, library versions, dates and wall time, read from the runs' cache metadata."""

    metas = [r["meta"] for rs in results.values() for r in rs if r.get("meta")]
    if not metas:
        return ""
    commits = sorted({m.get("git_commit", "unknown")[:12] for m in metas})
    devices = sorted({m.get("device_name", "?") for m in metas})
    dates = sorted(m.get("created", "") for m in metas)
    versions = metas[0].get("versions", {})
    wall = sum(m.get("wall_time_s", 0.0) for m in metas)
    lines = [f"- profile: `{profile}`",
             f"- runs: {len(metas)}, {wall / 3600:.2f} h of training wall time in all",
             f"- trained at commit(s): {', '.join(f'`{c}`' for c in commits)}",
             f"- device: {', '.join(devices)}; threads per run: "
             f"{', '.join(sorted({str(m.get('threads', '?')) for m in metas}))}",
             f"- trained between {dates[0]} and {dates[-1]}",
             "- versions: " + ", ".join(f"{k} {v}" for k, v in versions.items()),
             f"- data: {data_source()}"]
    return ":::{dropdown} Provenance of this chapter's runs\n" + "\n".join(lines) + "\n:::"


def show_provenance(results: dict, profile: str) -> None:
    show(provenance(results, profile))


def glued_values(stage) -> dict:
    """{chapter: {name: text}} of every value glued in the executed notebooks of a staging tree
    (Markdown as its text, figures as '<figure>'), to compare two builds number by number:
    bnopt glued _stage > glued.json"""
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
