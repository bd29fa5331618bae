"""What sets a CPU run's rounding, and how to pin it.

Two machines follow different SGD trajectories from the same seed when their kernels use different vector
instruction sets (ISA): an AVX-512 reduction adds in another order than an AVX2 one. Three libraries inside
PyTorch choose an ISA, each on its own, when the process first uses them:

  ATen (element-wise and reduction kernels)  ATEN_CPU_CAPABILITY      reported by torch
  oneDNN (convolutions)                       ONEDNN_MAX_CPU_ISA       reported by oneDNN's verbose log
  MKL (matrix products)                       MKL_ENABLE_INSTRUCTIONS  requested only (MKL reports nothing on AMD)

The variables only act when set before the process starts, so the pin is applied by whoever starts it: the
Makefile exports `pin_env(BNOPT_ISA)` for `make book`, `make test`, `make check-book`, CI and the campaign
(`BNOPT_ISA=avx2` is the default there; `BNOPT_ISA=native` leaves every library to choose). Pinned to AVX2, an
AMD AVX-512 machine printed every number of a book built on AMD AVX2 machines digit for digit (engineering
notes, +8 % training time). This module only reports: `numerics()` names the ISA in force, and every run
records it in its meta.
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import re
import sys
import tempfile
from pathlib import Path

import torch

# The three libraries' variables for each pin ('native': none set, every library picks the machine's best).
PINS: dict[str, dict[str, str]] = {
    "avx2": {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"},
    "native": {},
}


def pin_env(isa: str) -> dict[str, str]:
    """The environment variables that pin `isa` for a process started with them.

    >>> pin_env("avx2")["ONEDNN_MAX_CPU_ISA"], pin_env("native")
    ('AVX2', {})
    >>> pin_env("avx512")
    Traceback (most recent call last):
    ...
    ValueError: unknown ISA pin 'avx512'; choose one of: avx2, native
    """
    if isa not in PINS:
        raise ValueError(f"unknown ISA pin {isa!r}; choose one of: {', '.join(PINS)}")
    return dict(PINS[isa])


def cpu_info() -> dict:
    """{'model': ..., 'vendor': ..., 'flags': [...]} of this machine's CPU from /proc/cpuinfo (empty where it
    cannot be read)."""
    out = {"model": "", "vendor": "", "flags": []}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            for key, field in (("model", "model name"), ("vendor", "vendor_id"), ("flags", "flags")):
                if line.startswith(field) and not out[key]:
                    value = line.split(":", 1)[1].strip()
                    out[key] = value.split() if key == "flags" else value
    except OSError:
        pass
    return out


def native_isa(flags) -> str:
    """The ISA that ATen picks on a CPU with these flags when nothing is pinned (its AVX512 level needs F, BW, VL
    and DQ).

    >>> native_isa(["avx2", "avx512f", "avx512bw", "avx512vl", "avx512dq"]), native_isa(["avx2", "avx512f"])
    ('AVX512', 'AVX2')
    >>> native_isa(["sse4_2"])
    'DEFAULT'
    """
    f = set(flags)
    if {"avx512f", "avx512bw", "avx512vl", "avx512dq"} <= f:
        return "AVX512"
    return "AVX2" if "avx2" in f else "DEFAULT"


ONEDNN_NAMES = {"AVX-512": "AVX512", "AVX2": "AVX2", "AVX": "AVX", "SSE4.1": "SSE41"}


def onednn_isa_name(verbose_line: str) -> str:
    """oneDNN's name of its ISA, shortened to torch's spelling.

    >>> onednn_isa_name("onednn_verbose,v1,info,cpu,isa:Intel AVX-512 with Intel DL Boost and bfloat16 support")
    'AVX512'
    >>> onednn_isa_name("onednn_verbose,v1,info,cpu,isa:Intel AVX2"), onednn_isa_name("no isa here")
    ('AVX2', 'unknown')
    """
    m = re.search(r"isa:(?:Intel )?(\S+)", verbose_line)
    return ONEDNN_NAMES.get(m.group(1), m.group(1)) if m else "unknown"


@functools.lru_cache(maxsize=1)
def onednn_isa() -> str:
    """The ISA oneDNN uses in this process, read from the info line of its verbose log during one small
    convolution (oneDNN writes it to the C-level stdout, captured here; about 10 ms, once per process).
    'unavailable' when PyTorch has no oneDNN, 'unknown' when the line could not be read."""
    if not torch.backends.mkldnn.is_available():
        return "unavailable"
    libc = ctypes.CDLL(None)
    sys.stdout.flush()
    libc.fflush(None)
    saved = os.dup(1)
    with tempfile.TemporaryFile() as f:
        os.dup2(f.fileno(), 1)
        try:
            with torch.no_grad(), torch.backends.mkldnn.verbose(torch.backends.mkldnn.VERBOSE_ON):
                torch.nn.functional.conv2d(torch.ones(8, 8, 16, 16), torch.ones(8, 8, 3, 3), padding=1)
        finally:
            libc.fflush(None)
            os.dup2(saved, 1)
            os.close(saved)
        f.seek(0)
        log = f.read().decode(errors="replace")
    line = next((ln for ln in log.splitlines() if ",isa:" in ln), "")
    return onednn_isa_name(line)


def in_force() -> dict[str, str]:
    """The ISA each library uses in this process: ATen's and oneDNN's as they report it, MKL's as requested
    ('auto' when nothing was requested)."""
    return {"aten": torch.backends.cpu.get_cpu_capability(), "onednn": onednn_isa(),
            "mkl": os.environ.get("MKL_ENABLE_INSTRUCTIONS", "auto")}


def describe(vendor: str, isa: dict[str, str], torch_version: str, native: str = "") -> str:
    """One line for a run's meta and the front page: vendor, ATen's ISA, then oneDNN's and MKL's only where they
    differ from ATen's (MKL 'auto' is the machine's native ISA).

    >>> describe("AuthenticAMD", {"aten": "AVX2", "onednn": "AVX2", "mkl": "AVX2"}, "2.14.1", "AVX512")
    'AuthenticAMD AVX2, torch 2.14.1'
    >>> describe("AuthenticAMD", {"aten": "AVX512", "onednn": "AVX512", "mkl": "auto"}, "2.14.1", "AVX512")
    'AuthenticAMD AVX512, torch 2.14.1'
    >>> describe("GenuineIntel", {"aten": "AVX2", "onednn": "AVX512", "mkl": "auto"}, "2.14.1", "AVX512")
    'GenuineIntel AVX2 (oneDNN AVX512, MKL auto), torch 2.14.1'
    """
    aten, onednn, mkl = isa["aten"], isa["onednn"], isa["mkl"]
    same = onednn in (aten, "unavailable") and (mkl if mkl != "auto" else native or aten) == aten
    detail = "" if same else f" (oneDNN {onednn}, MKL {mkl})"
    return f"{vendor or 'unknown vendor'} {aten}{detail}, torch {torch_version}"


def numerics() -> str:
    """What sets a CPU run's rounding, beyond its config and thread count: the CPU vendor, the ISA that PyTorch's
    kernels use, and the PyTorch build, e.g. 'AuthenticAMD AVX2, torch 2.14.1+cu130'. Two machines that differ
    here follow different SGD trajectories from the same seed (seed-to-seed noise in every aggregate). Every run
    records it in its meta."""
    info = cpu_info()
    return describe(info["vendor"], in_force(), torch.__version__, native_isa(info["flags"]))


@contextlib.contextmanager
def threads(n: int):
    """PyTorch's intra-op thread count set to `n` inside the block and restored after it: a function that
    needs a thread count says so here instead of leaving the process changed (a run's bits depend on it).

    >>> before = torch.get_num_threads()
    >>> with threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
    """
    if not isinstance(n, int) or n < 1:
        raise ValueError(f"threads needs an integer >= 1, got {n!r}")
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)
