#!/usr/bin/env bash
# One GPU loan, prepared: train as much of the `paper` profile as BUDGET_S allows, chapter by chapter, and bring
# back a results bundle without weights, per-run wall times and achieved FLOP/s against the GPU's measured peak.
#
# Here, once (the packed images travel with the working tree: 55 MB of the device tool's 64 MiB; .devdata/ is
# git-ignored):
#     python tools/imagefolder_pack.py pack ../shared/data/cifar10-jpeg .devdata/cifar10.npz
# Then one device call (`run`, carry [".devdata"], timeout_s 560):
#     BUDGET_S=420 bash tools/gpu_paper_session.sh
# It uses the machine's own python3 and PyTorch (nothing can be installed there; bnopt runs from src/). What it
# writes under $OUT comes back: paper-runs.tar (`bnopt bundle import`, then commit under results/paper/),
# runs.jsonl (one line per run: steps, wall time, FLOP per step, achieved FLOP/s, fraction of peak), peak.json,
# precision.json (TF32 against FP32 on the same seeds) and log.txt.
#
# Order: the precision check first (a short TF32/FP32 pair: the paper profile trains in TF32, and that choice must
# be checked on this GPU before its runs are trusted), then the chapters whose runs are cheapest in all, so that a
# loan that runs out still brings whole chapters back. Runs finished before the budget ends stay in the bundle.
#
# Rehearse it here first, on the CPU and the tiny profile (minutes; nothing is carried or unpacked):
#     DEVICE=cpu PROFILE=tiny CHECK_STEPS=3 CHECK_WIDTH=0.0625 MATMUL_N=512 BUDGET_S=300 WORKERS=2 \
#       OUT=/tmp/dry BNOPT_DATA=../shared/data/cifar10-jpeg bash tools/gpu_paper_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/gpu-out}; BUDGET_S=${BUDGET_S:-420}; WORKERS=${WORKERS:-6}
DEVICE=${DEVICE:-cuda}; PROFILE=${PROFILE:-paper}
CHECK_STEPS=${CHECK_STEPS:-300}; CHECK_WIDTH=${CHECK_WIDTH:-1.0}; MATMUL_N=${MATMUL_N:-8192}
CHAPTERS=${CHAPTERS:-"training ics norms smoothness bn_math"}
mkdir -p "$OUT"
export PYTHONPATH=$PWD/src PYTHONUNBUFFERED=1 BNOPT_HOME=${BNOPT_HOME:-/tmp/bnopt-home} BNOPT_PROGRESS=off
export BNOPT_DEVICE=$DEVICE DEVICE PROFILE CHECK_STEPS CHECK_WIDTH MATMUL_N
exec > >(tee -a "$OUT/log.txt") 2>&1
t0=$SECONDS
left() { echo $((BUDGET_S - (SECONDS - t0))); }

command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ -z "${BNOPT_DATA:-}" ]; then
  export BNOPT_DATA=/tmp/cifar10
  python3 tools/imagefolder_pack.py unpack .devdata/cifar10.npz "$BNOPT_DATA" || exit 1
fi

python3 - "$OUT" <<'EOF'
# The device's measured matrix-product peaks (the ceilings the runs' FLOP/s are read against), and TF32 against FP32
# on the same seed: CHECK_STEPS steps of the paper's BN and standard VGG-16; the loss curves' gap is reported.
import json, os, sys, torch
from bnopt.runs.config import vgg_config
from bnopt.book.bench import matmul_peak
from bnopt.runs.train import train
out, dev = sys.argv[1], os.environ["DEVICE"]
steps, width, n = int(os.environ["CHECK_STEPS"]), float(os.environ["CHECK_WIDTH"]), int(os.environ["MATMUL_N"])
p = {"fp32": matmul_peak(n, 10, dev), "tf32": matmul_peak(n, 10, dev, tf32=True),
     "bf16": matmul_peak(n, 10, dev, torch.bfloat16),
     "device": torch.cuda.get_device_name() if dev == "cuda" else "cpu", "torch": torch.__version__, "matmul_n": n}
json.dump(p, open(f"{out}/peak.json", "w"), indent=1)
print("peak FLOP/s:", {k: f"{v:.3g}" for k, v in p.items() if isinstance(v, float)})
# TF32 against FP32 on the same seed, beside FP32 against FP32 on another seed (the noise TF32 must stay within)
rows = []
for norm in ("batch", "none"):
    curves = {}
    for prec, seed in (("fp32", 0), ("tf32", 0), ("fp32", 1)):
        cfg = vgg_config(**{"model.norm": norm, "model.width": width, "optim.steps": steps, "precision": prec,
                            "eval_every": 0, "seed": seed})
        r = train(cfg, device=dev)
        curves[prec, seed] = r["train_loss"]
        rows.append({"norm": norm, "precision": prec, "seed": seed, "wall_s": r["wall_time_s"],
                     "final_loss_mean_last_fifth": float(r["train_loss"][-max(1, steps // 5):].mean())})
    gap = lambda a, b: float((curves[a] - curves[b]).abs().mean())
    rows.append({"norm": norm, "mean_abs_loss_gap_tf32_vs_fp32_same_seed": gap(("tf32", 0), ("fp32", 0)),
                 "mean_abs_loss_gap_fp32_seed0_vs_seed1": gap(("fp32", 1), ("fp32", 0))})
json.dump(rows, open(f"{out}/precision.json", "w"), indent=1)
print(json.dumps(rows, indent=1))
EOF

for ch in $CHAPTERS; do
  l=$(left); if [ "$l" -lt 45 ]; then echo "[gpu] budget spent: $ch and the rest not started"; break; fi
  echo "[gpu] chapter $ch, ${l}s left"
  timeout "$l" python3 -m bnopt train "$ch" --profile "$PROFILE" --workers "$WORKERS" || echo "[gpu] $ch stopped (rc $?)"
done

python3 -m bnopt bundle export --profile "$PROFILE" --partial --no-weights "$OUT/$PROFILE-runs.tar"
python3 - "$OUT" <<'EOF'
# One line per run in the cache (bnopt.book.bench.run_throughput): steps, wall time, FLOP per plain step, achieved FLOP/s
# and its fraction of the measured TF32 (or FP32) peak.
import json, sys
from bnopt.book.bench import run_throughput
out = sys.argv[1]
rows = run_throughput(json.load(open(f"{out}/peak.json")))
open(f"{out}/runs.jsonl", "w").write("".join(json.dumps(r) + "\n" for r in rows))
for r in rows:
    print(f"{r['run']:45s} {r['steps']:6d} steps {r['wall_s']:7.1f} s {r['achieved_flop_s'] / 1e12:6.1f} TFLOP/s "
          f"({100 * r['fraction_of_peak']:.0f} % of peak)")
EOF
echo "[gpu] done in $((SECONDS - t0))s"
