"""Progress of a sharded job on stderr: shards and rows written, rows per second of this run."""

import sys
import time

LOG_INTERVAL_S = 2.0  # without a terminal: at most one line per interval (and the last), not one per shard


class ShardProgress:
    def __init__(self, total_shards, total_rows, done_shards=0, done_rows=0, label="embed", stream=None):
        self.stream = stream or sys.stderr
        self.live = self.stream.isatty()  # on a terminal one line is rewritten in place
        self.label, self.total_shards, self.total_rows = label, total_shards, total_rows
        self.done_shards, self.done_rows, self.rows_this_run = done_shards, done_rows, 0
        self.started = self.last_shown = time.monotonic()

    def rate(self):
        return self.rows_this_run / max(time.monotonic() - self.started, 1e-9)

    def line(self):
        return (f"{self.label}: {self.done_shards}/{self.total_shards} shards, "
                f"{self.done_rows}/{self.total_rows} rows, {self.rate():.1f} rows/s")

    def shard_done(self, rows):
        self.done_shards += 1
        self.done_rows += rows
        self.rows_this_run += rows
        now = time.monotonic()
        if self.live:
            self.stream.write("\r" + self.line())
        elif now - self.last_shown >= LOG_INTERVAL_S or self.done_shards == self.total_shards:
            self.stream.write(self.line() + "\n")
        else:
            return
        self.last_shown = now
        self.stream.flush()

    def close(self):
        """End the line on a terminal; return the rows per second of this run."""
        if self.live:
            self.stream.write("\n")
            self.stream.flush()
        return self.rate()
