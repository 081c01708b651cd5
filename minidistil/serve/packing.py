"""Which queued rows go into the next forward pass: a plan by padded cost.

A forward pass over `count` rows padded to the longest, `longest` tokens, costs
about `overhead + per_token * count * longest` seconds: the overhead is what a
pass costs whatever its size (reading every weight once, Python and kernel
launches), the rest grows with the padded tokens. Sorting the queue by length
and cutting it into runs of similar length wastes little on padding, but each
cut pays the overhead again; `plan_batches` finds the cuts that minimise the
total estimated time (dynamic programming over the sorted lengths), within the
token budget (`count * longest <= max_tokens`) and the row limit of a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CostModel:
    """Estimated seconds of one forward pass: overhead + per_token * rows * longest."""

    overhead: float
    per_token: float

    def cost(self, rows, longest):  # rows may be an array of candidate counts
        return self.overhead + self.per_token * rows * longest


def plan_batches(lengths, cost_model, max_tokens, max_rows=None):
    """Cut rows of these `lengths` into forward passes; returns lists of row indices.

    Each pass is a run of rows of similar length (sorted ascending), with
    rows * longest <= max_tokens (a row longer than max_tokens alone gets its own pass)
    and at most max_rows rows (None: no limit).
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    n = len(lengths)
    if n == 0:
        return []
    order = np.argsort(lengths, kind="stable")
    sorted_lengths = lengths[order]
    row_limit = n if max_rows is None else max(int(max_rows), 1)
    best = np.zeros(n + 1)  # best[j]: least estimated time for the j shortest rows
    start_of = np.zeros(n + 1, dtype=np.int64)  # where the last pass of that best plan starts
    for end in range(1, n + 1):  # the pass ends at sorted row end - 1, its longest
        longest = int(sorted_lengths[end - 1])
        most = max(min(row_limit, max_tokens // longest, end), 1)
        starts = np.arange(end - most, end)
        costs = best[starts] + cost_model.cost(end - starts, longest)
        k = int(np.argmin(costs))
        best[end], start_of[end] = costs[k], starts[k]
    passes, end = [], n
    while end > 0:
        start = int(start_of[end])
        passes.append(order[start:end].tolist())
        end = start
    return passes[::-1]


def next_batch(lengths, cost_model, max_tokens, max_rows=None):
    """The rows (indices into `lengths`, oldest first) of the pass to run now.

    Rows are given oldest first; the plan's pass that holds the oldest row runs first,
    so that no row waits behind a stream of newer ones.
    """
    passes = plan_batches(lengths, cost_model, max_tokens, max_rows)
    return sorted(next(rows for rows in passes if 0 in rows))
