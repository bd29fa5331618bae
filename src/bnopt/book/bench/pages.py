"""The bench, part 3: the whole bench, its terminal table, the saved bench, and the cost chapter's tables and
headline values (`bnopt bench`)."""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

from bnopt._version import __version__
from bnopt.book.bench.costs import (KINDS, book_settings, component_costs, default_out, flops_of_step, machine,
                                    matmul_peak, measured_ratio)
from bnopt.book.bench.throughput import build_times, throughput
from bnopt.book.experiments import HESSIAN_ITERS
from bnopt.book.report import table as md_table
from bnopt.runs.numerics import threads as numerics_threads
from bnopt.runs.paths import write_text_atomic

# --------------------------------------------------------------------------------------------------

def bench(profile: str = "quick", quick: bool = False, threads: int | None = None, kinds=None) -> dict:
    """The whole bench with `threads` PyTorch threads (default: every core), restored afterwards."""
    threads = threads or os.cpu_count() or 1
    with numerics_threads(threads):
        return _bench(profile, quick, threads, kinds)


def _bench(profile: str, quick: bool, threads: int, kinds) -> dict:
    s = book_settings(profile)
    kinds = list(kinds or KINDS)
    t0 = time.perf_counter()
    out = {"profile": profile, "quick": quick, "machine": machine(), "settings": s, "bnopt": __version__,
           "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    out["components"] = {k: component_costs(k, s, reps=1 if quick else 7, probe_reps=1 if quick else 3,
                                            eval_fraction=0.2 if quick else 1.0) for k in kinds}
    if not quick:
        for k in kinds:
            steps = 2 * s["curvature_every"] if k.startswith("vgg") else 2 * s["dln_curvature_every"]
            out["components"][k]["ratio_measured"] = measured_ratio(k, s, steps)
    peak = matmul_peak()
    fl = {k: flops_of_step(k, s) for k in ("vgg", "vgg_bn")}
    for k, f in fl.items():
        f["achieved_flops_per_s"] = f["flops_per_step"] / out["components"][k]["plain_step_s"] \
            if k in out["components"] else None
        f["fraction_of_peak"] = f["achieved_flops_per_s"] / peak if f["achieved_flops_per_s"] else None
    out["flops"] = {"matmul_peak_flops_per_s": peak, "threads": threads, "steps": fl}
    out["throughput"] = throughput(("vgg_bn", "dln_bn"), s, 1.0 if quick else 10.0)
    out["build"] = build_times(profile)
    out["bench_seconds"] = time.perf_counter() - t0
    return out


def table(b: dict) -> str:
    lines = [f"bnopt bench ({'quick' if b['quick'] else 'full'}, profile {b['profile']}) on "
             f"{b['machine']['cpu']}, {b['machine']['cores']} cores, torch {b['machine']['torch']}",
             "", "(a) cost per call in plain steps; run ratio = instrumented / plain at the book's cadence"]
    cols = ["data", "activations", "ics", "landscape", "sharpness", "eval"]
    lines.append(f"{'kind':14s} {'step ms':>8s} " + " ".join(f"{c:>11s}" for c in cols)
                 + f" {'ratio est':>9s} {'measured':>8s}")
    for k, c in b["components"].items():
        meas = c.get("ratio_measured", {}).get("ratio")
        lines.append(f"{k:14s} {1e3 * c['plain_step_s']:8.1f} "
                     + " ".join(f"{c['x_plain'].get(col, float('nan')):11.2f}" for col in cols)
                     + f" {c['ratio_estimated']:9.2f} " + (f"{meas:8.2f}" if meas else f"{'-':>8s}"))
    f = b["flops"]
    lines += ["", f"(b) matmul peak {f['matmul_peak_flops_per_s'] / 1e9:.1f} GFLOP/s at {f['threads']} threads"]
    for k, v in f["steps"].items():
        if v["achieved_flops_per_s"]:
            lines.append(f"    {k}: {v['flops_per_step'] / 1e9:.2f} GFLOP/step, "
                         f"{v['achieved_flops_per_s'] / 1e9:.1f} GFLOP/s = {100 * v['fraction_of_peak']:.0f} % of peak")
    lines.append("")
    lines.append("(c) steps/s: one process x all threads vs N processes x 1 thread")
    for k, v in b["throughput"].items():
        lines.append(f"    {k}: {v['one_process_all_threads']['steps_per_s']:.1f} vs "
                     f"{v['n_single_thread_processes']['steps_per_s']:.1f} ({v['parallel_speedup']:.2f}x)")
    lines.append("")
    for which in ("cold", "warm"):
        r = b["build"][which]
        if r:
            per = ", ".join(f"{k} {v:.0f}s" for k, v in {"runs": r.get("runs", 0), **r.get("chapters", {}),
                                                         "html": r.get("html", 0)}.items())
            lines.append(f"(d) {which} make book ({r['started']}): {r.get('total', 0):.0f}s = {per}")
        else:
            lines.append(f"(d) {which} make book: no build of this profile recorded yet")
    return "\n".join(lines)


def load_or_run(quick: bool = True, profile: str = "quick", rerun: bool = False) -> dict:
    """The machine's saved bench (data/bench/), or a new one when there is none for this machine,
    profile and bnopt version (so a warm book build does not pay for the bench again)."""
    path = default_out(quick)
    if path.exists() and not rerun:
        try:
            b = json.loads(path.read_text())
            m = machine()
            if (b.get("profile") == profile and b.get("bnopt") == __version__
                    and all(b["machine"].get(k) == m[k] for k in ("cpu", "cores", "torch"))):
                return b
        except (OSError, ValueError, KeyError):
            pass
    b = bench(profile, quick)
    save(b, path)
    return b


def save(b: dict, path: Path) -> None:
    write_text_atomic(path, json.dumps(b, indent=1))


def report_tables(b: dict, current_build: dict | None = None) -> dict[str, str]:
    """Markdown for the book's cost page: {name: text} for the machine and parts (a)-(d)."""
    m = b["machine"]
    t = {"machine": f"{m['cpu']}, {m['cores']} cores ({m['cpu_capability']}), {m['platform']}; Python "
                    f"{m['python']}, torch {m['torch']}; measured {b['created']} "
                    f"({'quick' if b['quick'] else 'full'} bench, {b['bench_seconds']:.0f} s)"}
    cols = ["data", "activations", "ics", "landscape", "sharpness", "eval"]
    rows = []
    for k, c in b["components"].items():
        meas = c.get("ratio_measured", {}).get("ratio")
        rows.append([f"`{k}`", f"{1e3 * c['plain_step_s']:.1f}"]
                    + [f"{c['x_plain'][col]:.2f} × {c['calls_per_run'].get(col, 0)}" if col in c["x_plain"] else "–"
                       for col in cols]
                    + [f"{c['ratio_estimated']:.2f}" + (f" ({meas:.2f})" if meas else "")])
    t["components"] = md_table(["run kind", "plain step (ms)", "data gather", "activations", "ICS", "landscape",
                                 "sharpness", "evaluation", "instrumented / plain: estimated (measured)"], rows)
    f = b["flops"]
    t["flops"] = md_table(["run kind", "GFLOP per step", "achieved GFLOP/s", "matmul peak GFLOP/s", "fraction of peak"],
                           [[f"`{k}`", f"{v['flops_per_step'] / 1e9:.2f}", f"{v['achieved_flops_per_s'] / 1e9:.1f}",
                             f"{f['matmul_peak_flops_per_s'] / 1e9:.1f}", f"{100 * v['fraction_of_peak']:.0f} %"]
                            for k, v in f["steps"].items() if v.get("achieved_flops_per_s")])
    t["throughput"] = md_table(["run kind", "1 process × all threads (steps/s)", "N processes × 1 thread (steps/s)",
                                 "speed-up"],
                                [[f"`{k}`", f"{v['one_process_all_threads']['steps_per_s']:.1f}",
                                  f"{v['n_single_thread_processes']['steps_per_s']:.1f} (N = {v['cores']})",
                                  f"{v['parallel_speedup']:.2f}×"] for k, v in b["throughput"].items()])
    builds = [("this build (so far)", current_build)] if current_build else []
    builds += [(f"last {w} build", r) for w, r in build_times(b["profile"]).items() if r]
    stages = []
    for _, r in builds:
        stages += [k for k in ["runs", *r.get("chapters", {}), "html", "total"] if k not in stages]

    def cell(r, k):
        if k in r.get("reused", []):
            return "reused"                        # inputs unchanged: the executed copy of an earlier build
        v = r.get("chapters", {}).get(k, r.get(k))
        return f"{v:.0f}" if isinstance(v, (int, float)) else "–"
    t["build"] = md_table(["stage", *[name for name, _ in builds]],          # one column per build: it fits the page
                           [["started", *[r.get("started", "?") for _, r in builds]],
                            ["runs trained / cached", *[f"{r.get('runs_trained', '?')} / {r.get('runs_cached', '?')}"
                                                        for _, r in builds]],
                            *[[f"{k} (s)", *[cell(r, k) for _, r in builds]] for k in stages]]) if builds else \
        "No build of this profile has been recorded on this machine yet."
    return t


RATIO_TARGET = 1.3   # issue target: instrumented / plain at the book's cadence, every run kind


def headline(b: dict) -> dict[str, str]:
    """Sentences for the cost page, computed from the bench: the range of the instrumented/plain
    ratio over run kinds, and whether every kind meets RATIO_TARGET (by how much it misses)."""
    ratios = {k: c.get("ratio_measured", {}).get("ratio") or c["ratio_estimated"]
              for k, c in b["components"].items()}
    lo, hi = min(ratios.values()), max(ratios.values())
    over = {k: r for k, r in ratios.items() if r > RATIO_TARGET}
    verdict = ("met by every run kind" if not over else
               "missed by " + ", ".join(f"`{k}` ({r:.2f}, {100 * (r / RATIO_TARGET - 1):.0f} % over)"
                                        for k, r in sorted(over.items(), key=lambda kv: -kv[1])))
    return {"ratio_range": f"{lo:.2f} to {hi:.2f}", "ratio_verdict": verdict,
            "hessian_iters": f"{HESSIAN_ITERS}"}




def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="bnopt bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the reduced bench (under a minute)")
    ap.add_argument("--profile", default="quick", help="whose run settings to time (default: quick)")
    ap.add_argument("--threads", type=int, default=None, help="PyTorch threads (default: every core)")
    ap.add_argument("--out", default=None, help="JSON output (default: data/bench/bench[-quick].json)")
    a = ap.parse_args(argv)
    b = bench(a.profile, a.quick, a.threads)
    out = Path(a.out) if a.out else default_out(a.quick)
    out.parent.mkdir(parents=True, exist_ok=True)
    save(b, out)
    print(table(b))
    print(f"\nwritten {out} in {b['bench_seconds']:.0f}s")
    return 0




def chapter_values(quick: bool, profile: str, rerun: bool = False, record_path: str = ".build-times.json") -> dict:
    """{glue name: text} of the cost chapter: the saved (or a fresh) bench of this machine, with this
    build's stage timings so far (`record_path`, written by bnopt.book.build) in table (d)."""
    from pathlib import Path

    b = load_or_run(quick=quick, profile=profile, rerun=rerun)
    record = Path(record_path)
    tables = report_tables(b, json.loads(record.read_text()) if record.exists() else None)
    return {f"cost_{name}": text for name, text in {**tables, **headline(b)}.items()}
