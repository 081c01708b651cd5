"""A one-line progress bar on stderr, for downloads and for the CLI's batches."""

import sys
import time

from .hub.settings import progress_disabled


class Progress:
    """A one-line progress bar on stderr (silent when stderr is not a terminal unless forced)."""

    def __init__(self, total=None, desc="", unit="B", enabled=None, stream=None):
        self.stream = stream or sys.stderr
        if enabled is None:
            enabled = self.stream.isatty() and not progress_disabled()
        self.enabled = enabled
        self.total, self.desc, self.unit = total, desc, unit
        self.n = 0
        self._last = 0.0

    def _fmt(self, n):
        if self.unit != "B":
            return str(n)
        for unit in ("B", "kB", "MB", "GB"):
            if n < 1000 or unit == "GB":
                return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
            n /= 1000.0
        return str(n)

    def update(self, k=1, force=False):
        self.n += k
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        if self.total:
            frac = min(self.n / self.total, 1.0)
            bar = "#" * int(frac * 30)
            line = f"{self.desc} [{bar:<30}] {frac * 100:5.1f}% {self._fmt(self.n)}/{self._fmt(self.total)}"
        else:
            line = f"{self.desc} {self._fmt(self.n)}"
        self.stream.write("\r" + line)
        self.stream.flush()

    def close(self):
        if self.enabled:
            self.update(0, force=True)
            self.stream.write("\n")
            self.stream.flush()
