"""Progress on stderr, for downloads and for the CLI's batches.

On a terminal: a one-line bar redrawn at most every 0.1 s. Elsewhere (a log file, a pipe, a CI job):
a plain line at most every LOG_INTERVAL_S seconds, and one when the work ends, so that a log shows
progress without being flooded by it. HF_HUB_DISABLE_PROGRESS_BARS=1 turns both off.
"""

import sys
import time

from .hub.settings import progress_disabled

REDRAW_S = 0.1  # terminal redraws
LOG_INTERVAL_S = 10.0  # lines in a log: a 10-minute job writes ~60


class Progress:
    """Progress of `total` units (None: unknown) on `stream` (stderr), as the module docstring says."""

    def __init__(self, total=None, desc="", unit="B", enabled=None, stream=None):
        self.stream = stream or sys.stderr
        self.enabled = not progress_disabled() if enabled is None else enabled
        self.terminal = self.stream.isatty()
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self._start = time.monotonic()
        self._last = self._start

    def _fmt(self, n):
        if self.unit != "B":
            return str(n)
        for unit in ("B", "kB", "MB", "GB"):
            if n < 1000 or unit == "GB":
                return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
            n /= 1000.0
        return str(n)

    def _line(self):
        if not self.total:
            return f"{self.desc} {self._fmt(self.n)}"
        frac = min(self.n / self.total, 1.0)
        if self.terminal:
            bar = "#" * int(frac * 30)
            return f"{self.desc} [{bar:<30}] {frac * 100:5.1f}% {self._fmt(self.n)}/{self._fmt(self.total)}"
        elapsed = time.monotonic() - self._start
        unit = "" if self.unit == "B" else f" {self.unit}"  # byte counts carry their unit already
        return f"{self.desc} {self._fmt(self.n)}/{self._fmt(self.total)}{unit} ({frac * 100:.1f}%) in {elapsed:.1f} s"

    def update(self, k=1, force=False):
        self.n += k
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < (REDRAW_S if self.terminal else LOG_INTERVAL_S):
            return
        self._last = now
        self.stream.write("\r" + self._line() if self.terminal else self._line() + "\n")
        self.stream.flush()

    def close(self):
        """Finish the bar (a terminal), or write the last count (a log, when anything was done)."""
        if not self.enabled or (not self.terminal and self.n == 0):
            return
        self.update(0, force=True)
        if self.terminal:
            self.stream.write("\n")
            self.stream.flush()
