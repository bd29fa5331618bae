"""`make bench`: what a run of the book costs on the machine at hand, and where the time goes.

    bnopt bench [--quick] [--profile quick] [--out data/bench/bench.json]

Writes a JSON file and prints a short table:
  (a) the wall time of a plain training step (data gather + forward + backward + SGD update) and, as
      multiples of it, of the data gather, each probe (activations, ICS, landscape, sharpness) and
      the evaluation; then the instrumented/plain ratio of a whole run at the book's cadence, for the
      VGG without BN, with BN, with noisy BN, and the deep linear network (DLN) without and with BN.
      `estimated` composes the per-call costs with the cadence; the full bench also `measured` it
      by training a short run with and without probes at the same cadence (every probe fires the
      same number of times per step as in the book).
  (b) the FLOP/s a training step achieves (torch.utils.flop_counter.FlopCounterMode) against the
      machine's measured peak: a large matmul, same precision, same thread count;
  (c) throughput of one process using every core against N single-threaded processes side by side
      (N = cores), in training steps per second;
  (d) `make book` wall time per stage, cold and warm, from the build's own log (data/build-times.jsonl).

All timings run in one process with the repetitions of every component interleaved (so a slow
spell of the machine hits all of them alike), medians reported; the thread count is set explicitly.
The models are the book's (the profile's VGG width and the paper's 25 x 10 DLN) on synthetic data
of CIFAR-10's shapes, so the bench needs no dataset. `--quick` (what the book's cost page and
`make bench QUICK=1` run) uses one round, times the evaluation on a fifth of the images (scaled up),
skips the measured whole runs and takes under a minute on 2 cores.

A package of one module per part; every name is gathered here, so `bench.<name>` reads as before."""
from bnopt.book.bench.costs import (KINDS, book_settings, component_costs, describe_kind, flops_of_step, kind_config,
                                    machine, matmul_peak, measured_ratio, run_ratio, run_seconds, run_throughput,
                                    saved_bench, setup_step, step_flops, synthetic_task)
from bnopt.book.bench.pages import (RATIO_TARGET, bench, chapter_values, default_out, headline, load_or_run, main,
                                    report_tables, save, table)
from bnopt.book.bench.throughput import build_times, throughput

__all__ = ["KINDS", "book_settings", "component_costs", "describe_kind", "flops_of_step", "kind_config", "machine", "matmul_peak", "measured_ratio", "run_ratio", "run_seconds", "run_throughput", "saved_bench", "setup_step", "step_flops", "synthetic_task", "build_times", "throughput", "RATIO_TARGET", "bench", "chapter_values", "default_out", "headline", "load_or_run", "main", "report_tables", "save", "table"]
