"""The training loop: plain SGD at a fixed learning rate, per-step metrics, probes, divergence as a result.

`train(cfg)` runs one configuration and returns a result dict of tensors and numbers (what the run
cache stores). A run whose loss becomes non-finite or blows up stops there and is recorded as
diverged, never raised: at LR 0.5 the paper's network without BN does not train, and the book shows it.

Given `Checkpoints`, a run saves its whole state (weights, optimizer, the batch sampler and every random stream,
the records so far, the step) atomically as it trains, and a later call with the same checkpoint path resumes from
it: the result is bit-identical to an uninterrupted run on the same machine and numerics (tested by killing a run
with SIGKILL). Checkpointing never changes a run's bits.
"""
from __future__ import annotations

import contextlib
import math
import os
import time
import warnings
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from bnopt.measure.catalog import build_probe
from bnopt.measure.probes import ProbeContext, full_precision
from bnopt.nets.models import build_model
from bnopt.runs.cache import from_packed, packed_bytes
from bnopt.runs.config import PRECISIONS, OptimConfig, RunConfig, config_hash
from bnopt.runs.data import BatchSampler, Split, Task, prepare
from bnopt.runs.progress import Progress


def half_sse(out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1/2 * sum of squared errors over the whole batch (TF's l2_loss; the paper's DLN scale)."""
    return 0.5 * (out - target).pow(2).sum()


LOSSES = {"cross_entropy": F.cross_entropy, "half_sse": half_sse}


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """Explicit device, else BNOPT_DEVICE, else CUDA when available, else CPU. A device that does
    not exist here raises ValueError naming where it came from and the valid choices."""
    env = os.environ.get("BNOPT_DEVICE", "").strip()
    source = "device" if device is not None else "BNOPT_DEVICE"
    device = device or env or None
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    valid = ["cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(torch.cuda.device_count())]
                       if torch.cuda.is_available() else [])
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"{source}={device!r} is not a device; valid choices here: {', '.join(valid)}") from None
    if dev.type not in ("cpu", "cuda") or (dev.type == "cuda" and (
            not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count())):
        raise ValueError(f"{source}={device!r} is not available on this machine; valid choices here: "
                         f"{', '.join(valid)}")
    return dev


@contextlib.contextmanager
def precision(name: str, device: torch.device):
    """Inside the block, CUDA's matmul and convolution flags for the run's precision (`fp32`, `tf32`, `bf16`),
    restored after it; yields the autocast context factory for forward passes (bf16 on CUDA; a no-op otherwise)."""
    if name not in PRECISIONS:
        raise ValueError(f"unknown precision {name!r}; valid choices: {', '.join(PRECISIONS)}")
    if device.type != "cuda":
        yield nullcontext
        return
    flags = [(torch.backends.cuda.matmul, "allow_tf32", name != "fp32"), (torch.backends.cudnn, "allow_tf32", name != "fp32"),
             (torch.backends.cudnn, "benchmark", False), (torch.backends.cudnn, "deterministic", True)]
    before = [getattr(obj, attr) for obj, attr, _ in flags]
    for obj, attr, value in flags:
        setattr(obj, attr, value)
    try:
        yield (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if name == "bf16" else nullcontext
    finally:
        for (obj, attr, _), value in zip(flags, before):
            setattr(obj, attr, value)


def make_optimizer(model: torch.nn.Module, cfg: OptimConfig) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                           weight_decay=cfg.weight_decay)


def sgd_step(model, opt, loss_fn, x, y, autocast=nullcontext):
    """One optimizer step on (x, y); returns (loss, output) of the forward pass before the update."""
    opt.zero_grad(set_to_none=True)
    with autocast():
        out = model(x)
    loss = loss_fn(full_precision(out), y)
    loss.backward()
    opt.step()
    return loss, out


@torch.no_grad()
def evaluate(model: torch.nn.Module, split: Split, loss_fn, chunk: int = 250) -> dict:
    """Loss and accuracy over a split in eval mode (BN uses its running statistics)."""
    was_training = model.training
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(split), chunk):
        idx = slice(start, start + chunk)
        out = model(split.inputs(idx)).float()
        y = split.y[idx]
        total_loss += float(F.cross_entropy(out, y, reduction="sum"))
        correct += int((out.argmax(1) == y).sum())
    model.train(was_training)
    n = len(split)
    return {"loss": total_loss / n, "acc": correct / n}


def _first_bad(losses: torch.Tensor, limit: float) -> int:
    """Index of the first non-finite or over-limit loss in a window, or -1."""
    bad = ~torch.isfinite(losses) | (losses > limit)
    return int(bad.nonzero()[0]) if bool(bad.any()) else -1


def model_of(cfg: RunConfig, result: dict | None = None, **model_changes) -> torch.nn.Module:
    """A run's network on the CPU: at initialisation (the weights `train` starts from) or, given the run's
    result, with its final weights. `model_changes` replace fields of the ModelConfig that do not change
    the weights (e.g. memory_format="contiguous")."""
    import dataclasses

    torch.manual_seed(cfg.seed)
    model = build_model(dataclasses.replace(cfg.model, **model_changes) if model_changes else cfg.model)
    if result is not None:
        if result.get("state_dict") is None:
            meta = result.get("meta", {})
            why = ("it was imported from a results bundle exported without weights (bundle export --no-weights)"
                   if meta.get("weights_dropped") else "its config does not keep them (save_state: false)")
            raise WeightsMissing(f"run {meta.get('key', '?')} ({meta.get('description', cfg.model.arch)}) has no final "
                                 f"weights: {why}")
        model.load_state_dict(result["state_dict"])
    return model


class WeightsMissing(LookupError):
    """A run's result holds no final weights, and the trained network was asked for."""


@dataclass(frozen=True)
class Checkpoints:
    """Where a run keeps its checkpoint, and when it writes it: at a step that is a multiple of `every`, once at
    least `min_interval_s` seconds have passed since the run started or last saved. A killed run loses at most
    about `min_interval_s` plus `every` steps; a run shorter than `min_interval_s` never writes one."""
    path: Path
    every: int
    min_interval_s: float = 0.0

    def __post_init__(self):
        if int(self.every) < 1:
            raise ValueError(f"Checkpoints.every={self.every!r}: it must be a whole number of steps, at least 1")
        if not self.min_interval_s >= 0:
            raise ValueError(f"Checkpoints.min_interval_s={self.min_interval_s!r}: it must be 0 or more seconds")


class RunStopped(Exception):
    """A run reached its `stop_at` time: it saved its checkpoint at `step` and stopped (a later call resumes it)."""

    def __init__(self, step: int, path: Path):
        super().__init__(f"stopped at step {step}; its checkpoint is {path}")
        self.step, self.path = step, path


def _rng_states(device: torch.device) -> dict:
    return {"cpu": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}


def _set_rng_states(states: dict) -> None:
    torch.set_rng_state(states["cpu"])
    if states["cuda"]:
        torch.cuda.set_rng_state_all(states["cuda"])


def save_checkpoint(path: Path, state: dict) -> None:
    """Write `state` (tensors packed into one buffer per dtype) to `path` atomically: a temporary file in the same
    folder, then one rename, so a kill at any moment leaves the previous checkpoint or the new one, whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(packed_bytes(state))
    os.replace(tmp, path)


def load_checkpoint(path: Path, run_id: str) -> dict | None:
    """The state saved at `path` for the run `run_id`, or None (no checkpoint; or an unreadable one, or one of
    another run: both are reported and ignored, and the run starts from step 0)."""
    if not path.is_file():
        return None
    try:
        state = from_packed(torch.load(path, weights_only=True))
        if state["run_id"] != run_id:
            raise ValueError(f"it belongs to run {state['run_id']}, not {run_id}")
    except Exception as e:
        warnings.warn(f"checkpoint {path} is not usable ({type(e).__name__}: {e}); the run starts from step 0")
        return None
    return state


def train(cfg: RunConfig, task: Task | None = None, device: str | torch.device | None = None,
          label: str = "run", checkpoints: Checkpoints | None = None, stop_at: float | None = None) -> dict:
    """Train `cfg` and return its result. With `checkpoints`, save the run's state as `Checkpoints` says and resume
    from a saved one. With `stop_at` (a time.time() value; needs `checkpoints`), the first step that
    ends after it saves the state and raises RunStopped."""
    if stop_at is not None and checkpoints is None:
        raise ValueError("stop_at needs checkpoints: a run stopped without one would lose every step it made")
    device = resolve_device(device)
    with precision(cfg.precision, device) as autocast:
        return _train(cfg, task, device, label, checkpoints, stop_at, autocast)


def _train(cfg: RunConfig, task: Task | None, device: torch.device, label: str, checkpoints: Checkpoints | None,
           stop_at: float | None, autocast) -> dict:
    """`train`'s loop, inside the run's precision flags."""
    steps = cfg.optim.steps
    model = model_of(cfg).to(device)
    task = task if task is not None else prepare(cfg.data, device)
    loss_fn = LOSSES[task.loss]
    classify = task.loss == "cross_entropy"
    opt = make_optimizer(model, cfg.optim)
    sampler = BatchSampler(len(task.train), cfg.optim.batch_size, seed=cfg.seed,
                           augment=cfg.data.augment)
    probes = [(spec, build_probe(spec.name, model, **spec.kwargs)) for spec in cfg.probes]
    probe_records = {spec.record: [] for spec, _ in probes}

    losses = torch.full((steps,), math.nan, device=device)
    accs = torch.full((steps,), math.nan, device=device) if classify else None
    evals: dict[str, list] = {"step": []}
    check_every = 1 if device.type == "cpu" else 16   # CUDA: check in windows, avoid a sync per step
    limit, checked, diverged_at = math.inf, 0, -1
    progress = Progress(label, steps)

    def run_evals(step: int) -> None:
        if not task.evals:
            return
        evals["step"].append(step)
        for name, split in task.evals.items():
            for metric, value in evaluate(model, split, loss_fn).items():
                evals.setdefault(f"{name}_{metric}", []).append(value)

    start, elapsed = 0, 0.0
    run_id = config_hash(cfg.key_dict())
    saved = load_checkpoint(checkpoints.path, run_id) if checkpoints else None
    if saved is not None:                 # resume: every piece of state the loop below reads or writes
        model.load_state_dict(saved["model"])
        opt.load_state_dict(saved["optimizer"])
        sampler.load_state(saved["sampler"])
        _set_rng_states(saved["rng"])
        start, elapsed, limit, checked = saved["step"], saved["elapsed_s"], saved["limit"], saved["checked"]
        losses[:start] = saved["train_loss"][:start].to(device)
        if classify:
            accs[:start] = saved["train_acc"][:start].to(device)
        evals, probe_records = saved["evals"], saved["probes"]
        progress.resumed(start)

    def save_state(step: int) -> None:
        save_checkpoint(checkpoints.path, {
            "run_id": run_id, "step": step, "elapsed_s": elapsed + time.perf_counter() - t0, "limit": limit,
            "checked": checked, "model": model.state_dict(), "optimizer": opt.state_dict(),
            "sampler": sampler.state(), "rng": _rng_states(device), "train_loss": losses[:step].cpu(),
            "train_acc": accs[:step].cpu() if classify else None, "evals": evals, "probes": probe_records})

    t0 = last_save = time.perf_counter()
    model.train()
    for t in range(start, steps):
        x, y = sampler.batch(task.train)
        for spec, probe in probes:
            if spec.due(t):
                ctx = ProbeContext(t, model, x, y, opt, loss_fn)
                probe_records[spec.record].append({"step": t, "data": probe(ctx)})
        loss, out = sgd_step(model, opt, loss_fn, x, y, autocast)
        losses[t] = loss.detach()
        if classify:
            accs[t] = (out.detach().argmax(1) == y).float().mean()
        if t == 0:
            limit = cfg.divergence_factor * max(float(losses[0]), 1.0)
        if (t + 1 - checked) >= check_every or t + 1 == steps:
            bad = _first_bad(losses[checked: t + 1], limit)
            if bad >= 0:
                diverged_at = checked + bad
                break
            checked = t + 1
        if cfg.eval_every and (t + 1) % cfg.eval_every == 0 and t + 1 < steps:
            run_evals(t + 1)
        progress.update(t + 1, lambda t=t: {"loss": float(losses[t])})
        if checkpoints and t + 1 < steps:
            if stop_at is not None and time.time() >= stop_at:
                save_state(t + 1)
                progress.done(f"stopped at step {t + 1} (time budget); resumes from its checkpoint")
                raise RunStopped(t + 1, checkpoints.path)
            if (t + 1) % checkpoints.every == 0 and time.perf_counter() - last_save >= checkpoints.min_interval_s:
                save_state(t + 1)
                last_save = time.perf_counter()

    if diverged_at >= 0:
        keep = [i for i, s in enumerate(evals["step"]) if s <= diverged_at]
        evals = {k: [v[i] for i in keep] for k, v in evals.items()}
        losses[diverged_at:] = math.nan
        if classify:
            accs[diverged_at:] = math.nan
        progress.done(f"diverged at step {diverged_at}")
    else:
        run_evals(steps)
        progress.done("done")
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = elapsed + time.perf_counter() - t0
    return {
        "steps": steps,
        "steps_done": diverged_at if diverged_at >= 0 else steps,
        "diverged": diverged_at >= 0,
        "diverged_at": diverged_at,
        "train_loss": losses.cpu(),
        "train_acc": accs.cpu() if classify else None,
        "evals": {k: torch.tensor(v, dtype=torch.float64) for k, v in evals.items()},
        "probes": probe_records,
        "wall_time_s": wall,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "num_params": sum(p.numel() for p in model.parameters()),
        "state_dict": ({k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
                       if cfg.save_state else None),
    }
