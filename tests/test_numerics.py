"""What sets a CPU run's rounding (bnopt.runs.numerics), and the one switch that pins it (BNOPT_ISA in the Makefile)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from bnopt.runs import numerics as N
from bnopt.runs.paths import repo_root

ROOT = repo_root()


def _numerics_in_child(env: dict) -> str:
    code = "from bnopt.runs.numerics import numerics, in_force; print(numerics()); print(in_force())"
    base = {k: v for k, v in os.environ.items() if k not in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA",
                                                            "MKL_ENABLE_INSTRUCTIONS")}
    out = subprocess.run([sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True, check=True)
    return out.stdout


def test_the_makefile_pins_exactly_the_avx2_variables():
    """The Makefile repeats the pin (it runs before the environment exists): it must say what PINS says."""
    make = (ROOT / "Makefile").read_text()
    block = make[make.index("ifeq ($(BNOPT_ISA),avx2)"): make.index("else ifneq ($(BNOPT_ISA),native)")]
    exported = dict(re.findall(r"export (\w+) := (\S+)", block))
    assert exported == N.pin_env("avx2")
    out = subprocess.run(["make", "-n", "test", "BNOPT_ISA=avx512"], cwd=ROOT, capture_output=True, text=True)
    assert out.returncode != 0 and "choose avx2 or native" in out.stderr


@pytest.mark.skipif("avx2" not in N.cpu_info()["flags"], reason="this CPU has no AVX2")
def test_the_avx2_pin_is_what_every_library_reports_in_a_new_process():
    pinned = _numerics_in_child(N.pin_env("avx2"))
    assert pinned.splitlines()[0].split(",")[0].endswith(" AVX2"), pinned       # no '(oneDNN ..., MKL ...)' detail
    assert "'aten': 'AVX2', 'onednn': 'AVX2', 'mkl': 'AVX2'" in pinned
    half = _numerics_in_child({"ATEN_CPU_CAPABILITY": "avx2"})
    if N.native_isa(N.cpu_info()["flags"]) != "AVX2":          # a half pin is named as such on a wider machine
        assert "(oneDNN" in half, half


def test_the_recorded_numerics_name_this_process():
    here = N.numerics()
    assert here.startswith(N.cpu_info()["vendor"] or "unknown vendor") and f"torch {N.torch.__version__}" in here
