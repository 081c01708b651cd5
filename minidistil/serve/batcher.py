"""Dynamic batching: one model worker thread runs the rows of every waiting request together.

Requests run their pipeline in threads of their own (tokenisation, windows, post-processing);
the pipeline's model is replaced by a `BatchingModel`, so that its forward pass becomes a job
for the `Batcher`: the rows of the job (each cut back to its own tokens) wait in one queue, and
the worker thread, which alone calls the model, packs waiting rows of every request into
forward passes (`packing.next_batch`), then hands each job its rows' outputs, padded back to
the width the pipeline asked for. A pipeline therefore computes exactly what it computes
in-process: only the grouping of rows into forward passes changes, and a row's output does
not depend on the other rows of its pass (padding and batch invariance, tested in the core).

A `Ticket` is one HTTP request's share: where its time went (queue, inference), how many tokens
it sent, and whether its client went away. Rows of a cancelled ticket are dropped before they
cost a forward pass.
"""

from __future__ import annotations

import contextvars
import logging
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from itertools import islice
from time import perf_counter

import numpy as np

from .errors import RequestCancelled, ServerClosing
from .packing import next_batch

log = logging.getLogger("minidistil.serve")

# Planning looks at this many of the oldest waiting rows: the plan costs ~8 µs per row
# (one NumPy step each), so 256 rows cost ~2 ms, small against a forward pass of that many.
PLAN_WINDOW = 256

# The request a model call belongs to, set by the thread that runs the request's pipeline.
current_ticket = contextvars.ContextVar("minidistil_serve_ticket")


@dataclass
class Ticket:
    """What one request spent in the batcher, and whether its client is still there."""

    cancelled: threading.Event = field(default_factory=threading.Event)
    queue_time: float = 0.0  # seconds its jobs waited before their first forward pass
    inference_time: float = 0.0  # seconds from a job's first forward pass to its last
    model_wait: float = 0.0  # seconds its thread was blocked on the batcher (queue + inference)
    tokens: int = 0  # real (unpadded) tokens sent to the model
    work_time: float = 0.0  # seconds the request's thread ran (its pipeline, model wait included)

    def cancel(self):
        self.cancelled.set()

    @property
    def processing_time(self):
        """Seconds of the request's own work: tokenisation and post-processing (TEI's tokenization time)."""
        return max(self.work_time - self.model_wait, 0.0)


class _Job:
    """One model call of a pipeline: its rows and, once every row has run, their outputs."""

    def __init__(self, rows, ticket):
        self.rows = rows  # [(ids (L,), mask (L,))]: each row cut back to its own tokens
        self.ticket = ticket
        self.outputs = [None] * len(rows)
        self.remaining = len(rows)
        self.result = Future()
        self.enqueued = perf_counter()
        self.started = None

    def length(self, i):
        return len(self.rows[i][0])


def row_length(mask_row):
    """Tokens up to the last one the mask keeps (rows are right-padded by the pipelines)."""
    kept = np.flatnonzero(mask_row)
    return int(kept[-1]) + 1 if kept.size else len(mask_row)


class Batcher:
    """The model worker: forward passes over rows packed from every waiting request.

    model: the loaded minidistil model (called only from the worker thread).
    token_outputs: output fields with a sequence axis (cut per row, padded back per job).
    cost_model, max_tokens, max_rows: how passes are planned (see packing.py).
    """

    def __init__(self, model, *, token_outputs, pad_id, cost_model, max_tokens, max_rows, metrics):
        self._model = model
        self._token_outputs = frozenset(token_outputs)
        self._pad_id = pad_id
        self.cost_model = cost_model
        self._max_tokens = max_tokens
        self._max_rows = max_rows
        self._metrics = metrics
        self._pending = deque()  # (job, row index), oldest first
        self._lock = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._work, name="minidistil-model", daemon=True)

    # ------------------------------------------------------------------ lifecycle
    def start(self):
        self._thread.start()

    def is_alive(self):
        return self._thread.is_alive()

    def close(self):
        """Finish every queued row, then stop the worker."""
        with self._lock:
            self._closing = True
            self._lock.notify()
        self._thread.join()

    # ------------------------------------------------------------------ request side
    def run(self, input_ids, attention_mask):
        """The model's outputs for these (B, W) rows, computed with other requests' rows; blocks.

        Returns {field: array} like the model: sequence fields (B, W, ...) with zeros past
        each row's tokens, the others (B, ...).
        """
        ticket = current_ticket.get()
        if ticket.cancelled.is_set():
            raise RequestCancelled()
        ids = np.asarray(input_ids)
        mask = np.ones_like(ids) if attention_mask is None else np.asarray(attention_mask)
        lengths = [row_length(m) for m in mask]
        job = _Job([(ids[b, :n], mask[b, :n]) for b, n in enumerate(lengths)], ticket)
        with self._lock:
            if self._closing or not self._thread.is_alive():
                raise ServerClosing("the model worker has stopped")
            self._pending.extend((job, i) for i in range(len(lengths)))
            self._metrics.queue_size.set(len(self._pending))
            self._lock.notify()
        waiting = perf_counter()
        outputs = job.result.result()  # raises what failed the job (RequestCancelled, a model error)
        done = perf_counter()
        ticket.model_wait += done - waiting
        ticket.queue_time += job.started - job.enqueued
        ticket.inference_time += done - job.started
        ticket.tokens += sum(lengths)
        return self._assemble(outputs, lengths, ids.shape[1])

    def _assemble(self, outputs, lengths, width):
        assembled = {}
        for key in outputs[0]:
            if key in self._token_outputs:  # (L, ...) per row -> (B, W, ...), zeros past each row
                first = outputs[0][key]
                array = np.zeros((len(outputs), width) + first.shape[1:], dtype=first.dtype)
                for b, out in enumerate(outputs):
                    array[b, : lengths[b]] = out[key]
            else:
                array = np.stack([out[key] for out in outputs])
            assembled[key] = array
        return assembled

    # ------------------------------------------------------------------ worker side
    def _work(self):
        batch = []
        try:
            while (batch := self._take()) is not None:
                self._forward(batch)
        except BaseException:  # a bug here must not leave requests waiting forever
            log.exception("the model worker stopped")
            with self._lock:
                self._closing = True
                for job, _ in list(self._pending) + (batch or []):
                    if not job.result.done():
                        job.result.set_exception(ServerClosing("the model worker stopped"))
            raise

    def _take(self):
        """The (job, row) pairs of the next forward pass; None once closing with nothing queued."""
        with self._lock:
            while True:
                self._drop_cancelled()
                if self._pending:
                    break
                if self._closing:
                    return None
                self._lock.wait()
            window = list(islice(self._pending, PLAN_WINDOW))
            chosen = next_batch([job.length(i) for job, i in window], self.cost_model, self._max_tokens,
                                self._max_rows)
            taken = set(chosen)
            rest = [item for k, item in enumerate(window) if k not in taken]
            for _ in range(len(window)):
                self._pending.popleft()
            self._pending.extendleft(reversed(rest))
            self._metrics.queue_size.set(len(self._pending))
            return [window[k] for k in chosen]

    def _drop_cancelled(self):
        """Fail the jobs whose client went away (or that already failed) and forget their rows."""
        if not any(job.ticket.cancelled.is_set() or job.result.done() for job, _ in self._pending):
            return
        kept = deque()
        for job, i in self._pending:
            if job.result.done():
                continue
            if job.ticket.cancelled.is_set():
                job.result.set_exception(RequestCancelled())
                self._metrics.dropped_rows.inc(job.remaining)
                continue
            kept.append((job, i))
        self._pending = kept

    def _forward(self, batch):
        lengths = [job.length(i) for job, i in batch]
        width = max(lengths)
        ids = np.full((len(batch), width), self._pad_id, dtype=np.int64)  # (N, S)
        mask = np.zeros((len(batch), width), dtype=np.int64)  # (N, S)
        for r, (job, i) in enumerate(batch):
            row_ids, row_mask = job.rows[i]
            ids[r, : lengths[r]] = row_ids
            mask[r, : lengths[r]] = row_mask
        started = perf_counter()
        for job, _ in batch:
            if job.started is None:
                job.started = started
        try:
            output = self._model(input_ids=ids, attention_mask=mask, return_numpy=True)
        except Exception as exc:  # noqa: BLE001 - the worker must outlive a failed pass
            log.exception("forward pass over %d rows x %d tokens failed", len(batch), width)
            for job, _ in batch:
                if not job.result.done():
                    job.result.set_exception(exc)
            return
        arrays = {k: v for k, v in output.items() if isinstance(v, np.ndarray)}
        self._metrics.observe_batch(rows=len(batch), tokens=len(batch) * width, seconds=perf_counter() - started)
        for r, (job, i) in enumerate(batch):
            if job.result.done():  # cancelled or failed meanwhile
                continue
            job.outputs[i] = {
                key: (value[r, : lengths[r]] if key in self._token_outputs else value[r]).copy()
                for key, value in arrays.items()
            }
            job.remaining -= 1
            if job.remaining == 0:
                job.result.set_result(job.outputs)


class BatchingModel:
    """Stands in for a pipeline's model: each call is run by the batcher with other requests' rows."""

    def __init__(self, model, batcher):
        self.model = model
        self.config = model.config
        self._batcher = batcher

    def __call__(self, input_ids=None, attention_mask=None, return_numpy=True):
        return self._batcher.run(input_ids, attention_mask)
