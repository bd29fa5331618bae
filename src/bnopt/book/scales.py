"""The book at another scale: a committed snapshot of one profile's whole build (its raw ledger records and every
glued value), which a build at another profile reads to say what moved with scale.

    bnopt snapshot --stage _stage --out results/quick/book-snapshot.json   # after `make book PROFILE=quick`

A snapshot is of one profile throughout: `write` refuses a staged build whose claims came from several profiles
(a narrow build with chapters fallen back to quick, for example). The theory checks, whose scale names no profile
("float64, exact"), are exact statements and are not compared. The ledger compares, claim by claim, the verdicts
of this build with the snapshot's where a claim was measured at a different profile here; a chapter can quote one of
the snapshot's glued values (`glued_at`) beside its own.
"""
from __future__ import annotations

import json
import math
import re
import time
from pathlib import Path

from bnopt.book import claims
from bnopt.book.report import glued_values
from bnopt.book.status import SCALE_FILE
from bnopt.runs.cache import git_commit
from bnopt.runs.numerics import numerics
from bnopt.runs.paths import repo_root, write_text_atomic

SNAPSHOT_NAME = "book-snapshot.json"   # results/<profile>/book-snapshot.json


class SnapshotError(ValueError):
    """A staged build that cannot be a snapshot of one profile."""


def profile_of(scale: str) -> str:
    """The profile a claim record's scale names ('quick: VGG16 width 0.125, ...' -> 'quick').

    >>> profile_of("narrow: VGG16 width 0.125, 15,000 steps, 5 seeds"), profile_of("")
    ('narrow', '')
    """
    return scale.split(":", 1)[0].strip() if ":" in scale else ""


def snapshot(stage: str | Path, profile: str) -> dict:
    """The snapshot of a staged build at `profile`: provenance (commit, numerics, date), the raw claim records (the
    ledger corrects them within the snapshot's own family) and every glued value, {chapter: {name: text}}."""
    records = claims.load(stage)
    if not records:
        raise SnapshotError(f"{stage} holds no claim records: build the book first (make book PROFILE={profile})")
    other = sorted(k for k, r in records.items() if profile_of(r["scale"]) not in (profile, ""))   # "": exact
    if other:
        raise SnapshotError(f"a snapshot is of one profile: {len(other)} claims of {stage} were measured at another "
                            f"profile than {profile!r} ({', '.join(other[:5])}{', ...' if len(other) > 5 else ''}); "
                            f"build every chapter at {profile!r} (make book PROFILE={profile})")
    table = Path(stage) / SCALE_FILE
    runs = table.read_text() if table.is_file() else ""
    return {"profile": profile, "commit": git_commit(), "numerics": run_numerics(runs) or numerics(),
            "made": time.strftime("%Y-%m-%d"), "runs": runs, "records": records, "glued": glued_values(stage)}


def run_numerics(table: str) -> str:
    """The CPU numerics the build's runs were trained with, from its front-page table (`status.scale_table`).

    >>> run_numerics("| a | CPU (AuthenticAMD AVX2, torch 2.1) (4) |\\n| b | CPU (AuthenticAMD AVX2, torch 2.1) (2) |")
    'AuthenticAMD AVX2, torch 2.1'
    """
    return "; ".join(sorted(set(re.findall(r"CPU \(([^()]*)\)", table))))


def write(stage: str | Path, out: str | Path, profile: str) -> dict:
    """Write `snapshot(stage, profile)` to `out` (atomically); return it."""
    snap = snapshot(stage, profile)
    write_text_atomic(Path(out), json.dumps(snap, indent=1, sort_keys=True, default=float) + "\n")
    return snap


def load(path: str | Path) -> dict | None:
    """A snapshot, or None where there is none; a relative path is read from the repository root (the chapters
    execute in a staging folder)."""
    p = Path(path)
    if not p.is_absolute():
        p = (repo_root() or Path.cwd()) / p
    return json.loads(p.read_text()) if p.is_file() else None


def glued_at(snap: dict | None, chapter: str, name: str) -> str | None:
    """One glued value of the snapshot's build, or None."""
    return ((snap or {}).get("glued") or {}).get(chapter, {}).get(name)


def describe(snap: dict) -> str:
    """'`quick` (commit 844f282, 2026-12-06, AuthenticAMD AVX2, torch ...)': where a snapshot came from."""
    return f"`{snap['profile']}` (commit {snap['commit'][:7]}, {snap['made']}, {snap['numerics']})"


MOVES_HEADER = ["claim", "paper", "verdict at {other}", "verdict here", "effect at {other}", "effect here",
                "what changed"]


def _side(numbers: dict) -> int:
    """+1 where the effect is on the claim's side, -1 on the other, 0 for no effect or none measured (fewer than two
    seed pairs with a finite value, the verdict rule's 'not testable at this scale')."""
    e = numbers.get("effect", float("nan"))
    if (not isinstance(e, (int, float)) or not math.isfinite(e) or numbers.get("n", 2) < 2
            or numbers.get("scale") == "ratio" and e <= 0):
        return 0
    d = math.log(e) if numbers.get("scale") == "ratio" else e
    return 0 if d == 0 else (1 if (d < 0) == (numbers.get("claim") == "<") else -1)


def what_changed(there: dict, here: dict) -> str:
    """Why a verdict moved, read from the two sides' numbers: 'measured at one scale only' (no effect measured on one
    side, e.g. a threshold no network reached, or fewer than two seed pairs), 'the effect changed side', or, where the
    mean effect is on the same side at both scales (the claim's, or the other), how many seed pairs agreed out of how
    many and the raw p-values: then the seeds, or the size of the effect, decided.

    >>> what_changed({"claim": "<", "scale": "ratio", "effect": 0.5}, {"claim": "<", "scale": "ratio", "effect": 2.0})
    'the effect changed side'
    >>> what_changed({"claim": "<", "scale": "difference", "effect": -1.0, "n": 2, "agree": 2, "p": 0.2},
    ...              {"claim": "<", "scale": "difference", "effect": -0.5, "n": 5, "agree": 5, "p": 0.001})
    "same side (the claim's); pairs agreeing, raw p: 2/2, p 0.2 → 5/5, p 0.001"
    >>> what_changed({"claim": "<", "scale": "ratio", "effect": 300.0, "n": 3, "agree": 0},
    ...              {"claim": "<", "scale": "ratio", "effect": 1.4, "n": 5, "agree": 1})
    'same side (against the claim); pairs agreeing, raw p: 0/3 → 1/5'
    >>> three = {"claim": ">", "scale": "ratio", "effect": 3.0}
    >>> what_changed({**three, "effect": float("nan")}, three), what_changed({**three, "n": 1}, three)
    ('measured at one scale only', 'measured at one scale only')
    """
    a, b = _side(there), _side(here)
    if a == 0 or b == 0:
        return "measured at one scale only"
    if a != b:
        return "the effect changed side"
    def pairs(n: dict) -> str:
        p = n.get("p")
        finite = isinstance(p, float) and math.isfinite(p)
        return f"{n.get('agree')}/{n.get('n')}" + (f", p {p:.2g}" if finite else "")
    side = "the claim's" if a > 0 else "against the claim"
    return f"same side ({side}); pairs agreeing, raw p: {pairs(there)} → {pairs(here)}"


def moves(here: dict[str, dict], snap: dict | None) -> tuple[list[str], list[list[str]], dict[str, int]]:
    """(header, rows, counts) comparing, claim by claim, this build's corrected records with the snapshot's (corrected
    within the snapshot): every claim measured here at a profile other than the snapshot's. counts: 'compared',
    'same' (the same verdict), 'moved'."""
    if not snap:
        return [], [], {"compared": 0, "same": 0, "moved": 0}
    there = claims.corrected(snap["records"])
    other = snap["profile"]
    rows, same = [], 0
    for k in claims.BY_ID:
        if k not in here or k not in there or profile_of(here[k]["scale"]) in ("", other):
            continue
        a, b, c = there[k], here[k], claims.BY_ID[k]
        same += a["verdict"] == b["verdict"]
        mark = "" if a["verdict"] == b["verdict"] else " ⇐ moved"
        flag = " {bdg-light}`exploratory`" if b.get("exploratory") else ""
        rows.append([f"{c.text} ({{ref}}`{c.chapter} <{c.ref}>`)", c.source, claims.badge(a["verdict"]),
                     claims.badge(b["verdict"]) + flag + mark, claims.effect_text(a["numbers"]),
                     claims.effect_text(b["numbers"]),
                     "" if a["verdict"] == b["verdict"] else what_changed(a["numbers"], b["numbers"])])
    header = [h.format(other=other) for h in MOVES_HEADER]
    return header, rows, {"compared": len(rows), "same": same, "moved": len(rows) - same}


def moves_line(counts: dict[str, int], snap: dict | None) -> str:
    """The sentence above the comparison table."""
    if not snap:
        return "no snapshot of the book at another scale is committed: nothing to compare"
    if not counts["compared"]:
        return (f"no experimental claim of this build was measured at another profile than the snapshot's, "
                f"{describe(snap)} (or it is missing from one of the two builds), and the theory checks are exact: "
                f"nothing to compare")
    return (f"of the {counts['compared']} claims measured here at another profile than {describe(snap)}, "
            f"{counts['same']} keep the verdict they had there and {counts['moved']} moved")
