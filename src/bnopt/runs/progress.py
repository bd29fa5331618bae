"""Progress lines for long runs: shown where a person watches, silent in the built book.

BNOPT_PROGRESS chooses where they go:
  'auto' (default) : stderr (terminal or live notebook)
  'file:PATH'      : appended to PATH. `make book` sets this for the chapter kernels and relays the
                     file to its own terminal, so a person watching the build sees progress while
                     the executed notebooks stay clean. (ipykernel captures the kernel's file
                     descriptor 2 too, so writing to sys.__stderr__ would still land in the book.)
  'off'            : nothing
"""
from __future__ import annotations

import os
import sys
import time

_FILES: dict = {}


def _stream():
    mode = os.environ.get("BNOPT_PROGRESS", "auto").strip()
    if mode.lower() == "off":
        return None
    if mode.startswith("file:"):
        path = mode[len("file:"):]
        if path not in _FILES:
            _FILES[path] = open(path, "a", buffering=1)
        return _FILES[path]
    return sys.stderr


class Progress:
    """Prints a line at most every `interval` seconds, and one at the end."""

    def __init__(self, label: str, total: int, interval: float = 10.0):
        self.label, self.total, self.interval = label, total, interval
        self.stream = _stream()
        self.t0 = self.last = time.perf_counter()
        self.start = 0                # steps already done when the clock started (a resumed run)

    def resumed(self, start: int) -> None:
        """The run resumed at step `start`: the rate and the time left count only the steps made from here."""
        self.start, self.t0 = start, time.perf_counter()
        self._emit(f"resumed at step {start}/{self.total}")

    def _emit(self, text: str) -> None:
        if self.stream is not None:
            print(f"[bnopt] {self.label}: {text}", file=self.stream, flush=True)

    def update(self, done: int, metrics=None) -> None:
        """metrics: a callable returning {name: value}, called only when a line is printed (so a
        caller on a GPU does not synchronise the device every step just to report progress)."""
        now = time.perf_counter()
        if now - self.last < self.interval:
            return
        self.last = now
        metrics = metrics() if metrics is not None else {}
        rate = (done - self.start) / max(now - self.t0, 1e-9)
        eta = (self.total - done) / max(rate, 1e-9)
        extra = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        self._emit(f"{done}/{self.total} steps, {rate:.1f} steps/s, eta {eta:.0f}s {extra}")

    def done(self, text: str) -> None:
        self._emit(f"{text} ({time.perf_counter() - self.t0:.1f}s)")


def close_files() -> None:
    """Close the 'file:' progress streams this process opened."""
    for f in _FILES.values():
        f.close()
    _FILES.clear()


def message(text: str) -> None:
    stream = _stream()
    if stream is not None:
        print(f"[bnopt] {text}", file=stream, flush=True)
