# Two commands do all set-up:  `make book`  and  `make test`.  Both create .venv when it is missing.
#   make book [PROFILE=narrow|quick|paper|tiny] [DATA=/path/to/image-folder] [TRAIN=yes|no]   -> _build/html/index.html
#   make test                                                           -> pytest
#   make check-book                                                     -> the built book, tested in a browser
#   make verify-runs [PROFILE=narrow]   retrain the first 300 steps of 4 committed runs, compare with their records
#   make bench [QUICK=1]     cost of a run and of each probe on this machine -> data/bench/*.json
#   make campaign PROFILE=narrow BUDGET=150m [WORKERS=1] [RESULTS=dir]   train in priority order, export a new bundle
#   BNOPT_ISA=avx2|native     the CPU instruction set every target pins (default avx2: the same bits on every machine)
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
BNOPT := $(VENV)/bin/bnopt
PROFILE ?=
DATA ?=
ifneq ($(strip $(DATA)),)
export BNOPT_DATA := $(abspath $(DATA))
endif
# The vector instruction set (ISA) of PyTorch's CPU kernels, pinned for every command below (bnopt.runs.numerics): the
# ISA decides how SGD rounds, so with the pin every machine of this kind trains the same bits. avx2 (default;
# +8 % training time on an AVX-512 machine) or native (each library picks the machine's best).
BNOPT_ISA ?= avx2
ifeq ($(BNOPT_ISA),avx2)
export ATEN_CPU_CAPABILITY := avx2
export ONEDNN_MAX_CPU_ISA := AVX2
export MKL_ENABLE_INSTRUCTIONS := AVX2
else ifneq ($(BNOPT_ISA),native)
$(error BNOPT_ISA=$(BNOPT_ISA) is not a pin: choose avx2 or native)
endif
export BNOPT_ISA
# The machine's pip config adds local indexes that print one warning per package: keep logs readable.
PIPQUIET := grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: book test check-book verify-runs bench campaign env clean clean-runs help
help:
	@sed -n 1,8p Makefile

$(VENV)/.installed: requirements-lock.txt pyproject.toml
	@echo "[make] creating $(VENV) from requirements-lock.txt"
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements-lock.txt 2>&1 | $(PIPQUIET)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -e . 2>&1 | $(PIPQUIET)
	$(PY) -c "import torch, torchvision, papermill, jupyter_book, bnopt; print('[make] torch', torch.__version__, 'torchvision', torchvision.__version__)"
	touch $@

# MathJax for offline typesetting, from the npm registry (copied into the book's static files by bnopt.book.build)
MATHJAX := $(VENV)/npm/node_modules/mathjax/es5/tex-chtml.js
$(MATHJAX): $(VENV)/.installed
	npm install --silent --no-audit --no-fund --prefix $(VENV)/npm mathjax@3.2.2
	test -f $@

env: $(VENV)/.installed $(MATHJAX)

# PROFILE: default narrow, read from the committed bundles under results/narrow/ (verified first: verify-runs);
# a chapter whose narrow runs are not all committed is built at quick, trained here. TRAIN: train the runs the
# cache lacks (default: yes at quick and tiny; at narrow and paper, no: their chapters fall back to quick)
TRAIN ?=
book: $(VENV)/.installed $(MATHJAX)
	$(BNOPT) book --profile $(or $(PROFILE),narrow) $(if $(strip $(TRAIN)),--train $(TRAIN),)

test: $(VENV)/.installed
	$(PY) -m pytest

# The built book as a reader meets it (after `make book`): pages, figures, MathJax, navigation, in
# headless Chromium. Debian's chromium package is installed when missing (Playwright cannot download
# its own browsers here).
check-book: $(VENV)/.installed
	@command -v chromium >/dev/null || { echo "[make] installing Debian's chromium"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	BNOPT_BOOK_HTML=$(abspath _build/html) $(PY) -m pytest -q tests/test_book_html.py

# The committed runs of PROFILE (default narrow): the first 300 steps of a sample retrained and compared with their
# records, bit for bit under the numerics they recorded (bnopt.runs.verify); CI runs it before the book
verify-runs: $(VENV)/.installed
	$(BNOPT) verify-runs --profile $(or $(PROFILE),narrow)

QUICK ?=
bench: $(VENV)/.installed
	$(BNOPT) bench --profile $(or $(PROFILE),quick) $(if $(filter 1 yes true,$(QUICK)),--quick,)

# The training campaign (bnopt.book.campaign): the profile's missing runs in priority order within BUDGET, then a new
# results bundle under results/<profile>/ (run it from a separate worktree at a fixed commit)
BUDGET ?= 150m
WORKERS ?= 1
campaign: $(VENV)/.installed
	$(BNOPT) campaign --profile $(or $(PROFILE),narrow) --budget $(BUDGET) --workers $(WORKERS) $(if $(RESULTS),--results $(RESULTS),)

clean:
	rm -rf _build _stage

clean-runs:
	rm -rf data/runs
