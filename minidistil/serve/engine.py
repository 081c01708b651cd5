"""The served model: its pipeline, the batcher that runs its forward passes, the request threads.

The pipeline is the one `minidistil.pipeline(task, model)` gives in-process; only its model is
replaced by a `BatchingModel`. A request runs its pipeline call in a thread of `executor` (so
tokenisation never blocks the event loop) with its `Ticket` as the current one; the single model
worker thread of the batcher computes the forward passes.
"""

from __future__ import annotations

import copy
import logging
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from time import perf_counter

import numpy as np

from .. import __version__, pipeline
from ..kernels import resolve_threads
from ..pipelines import DEFAULT_MODELS, load_model_dir, normalize_task
from .batcher import Batcher, BatchingModel, Ticket, current_ticket
from .errors import RequestCancelled, ServeSettingsError
from .packing import CostModel
from .tasks import detect_task

log = logging.getLogger("minidistil.serve")

# The pass (rows, tokens) timed at warm-up, with a one-token pass, for the cost model (packing.py).
LARGE_PASS = (8, 32)


def warmup_call(pipe, task):
    """One small call of the pipeline: it compiles the kernels on the paths requests take."""
    if task == "question-answering":
        return pipe(question="Where does Anna live?", context="Anna lives in Berlin.")
    if task == "fill-mask":
        return pipe(f"Paris is the {pipe.tokenizer.mask_token} of France.")
    return pipe("A first request warms the model up.")


def time_pass(model, rows, tokens, fill_id, repeats=2):
    """Seconds of the fastest of `repeats` forward passes over (rows, tokens), after one untimed pass."""
    ids = np.full((rows, tokens), fill_id, dtype=np.int64)
    mask = np.ones_like(ids)
    model(input_ids=ids, attention_mask=mask, return_numpy=True)
    best = float("inf")
    for _ in range(repeats):
        start = perf_counter()
        model(input_ids=ids, attention_mask=mask, return_numpy=True)
        best = min(best, perf_counter() - start)
    return best


def measure_cost_model(model, fill_id, max_length):
    """The overhead is a one-token pass, timed; the per-token cost comes from a larger pass."""
    rows, tokens = LARGE_PASS[0], min(LARGE_PASS[1], max_length)
    overhead = time_pass(model, 1, 1, fill_id)
    return CostModel(overhead, max(time_pass(model, rows, tokens, fill_id) - overhead, 0.0) / (rows * tokens))


def with_truncation_side(pipe, side):
    """The pipeline with a tokenizer that truncates on `side` (same model, same batcher)."""
    if pipe.tokenizer.truncation_side == side:
        return pipe
    twin = copy.copy(pipe)
    twin.tokenizer = copy.copy(pipe.tokenizer)
    twin.tokenizer.truncation_side = side
    return twin


def worker_threads(threads):
    """The model worker's threads: as given (--threads, $MINIDISTIL_THREADS), else every core but one.

    The core left over runs the event loop, tokenisation and, often, the clients. On the 2-core
    development machine (tools/bench/bench_serve.py, 32 clients, README) the server reached 1.06x the
    in-process pipeline's throughput with the model on one core, 0.61x with it on both: there every
    parallel kernel waits for the thread that HTTP work preempted.
    """
    return resolve_threads(threads) or max((os.cpu_count() or 1) - 1, 1)


def _run_as(ticket, fn, args):
    """Run fn(*args) in a request thread, with `ticket` as the current one."""
    if ticket.cancelled.is_set():
        raise RequestCancelled()
    token = current_ticket.set(ticket)
    start = perf_counter()
    try:
        return fn(*args)
    finally:
        ticket.work_time = perf_counter() - start
        current_ticket.reset(token)


class Engine:
    """Load the model for `settings`, measure it, and run requests' pipeline calls."""

    def __init__(self, settings, metrics):
        self.settings = settings
        self.metrics = metrics
        directory = Path(load_model_dir(settings.task or "sentence-embedding", settings.model, settings.revision))
        self.task = normalize_task(settings.task) if settings.task else detect_task(directory)
        self.model_id = settings.model or DEFAULT_MODELS[self.task]
        # Feature-extraction rows keep their batch's padding (as in the reference), so a request's
        # texts run one per pass there, as the in-process default; other tasks cut rows to their
        # own tokens, and one model call per request keeps its rows together.
        batch_size = 1 if self.task == "feature-extraction" else settings.max_client_batch_size
        pipe = pipeline(self.task, model=str(directory), backend=settings.backend,
                        threads=worker_threads(settings.threads), batch_size=batch_size, quantize=settings.quantize)
        self.model = pipe.model
        self.tokenizer = pipe.tokenizer
        self.max_input_length = self._max_input_length(pipe)
        if settings.max_batch_tokens < self.max_input_length:
            raise ServeSettingsError(
                f"--max-batch-tokens {settings.max_batch_tokens} is less than the longest input this model "
                f"takes ({self.max_input_length} tokens)"
            )
        pad_id = self.tokenizer.pad_token_id or 0
        self.batcher = Batcher(
            self.model,
            token_outputs=type(pipe).token_outputs,
            pad_id=pad_id,
            cost_model=measure_cost_model(self.model, pad_id, self.max_input_length),
            max_tokens=settings.max_batch_tokens,
            max_rows=settings.max_batch_requests,
            metrics=metrics,
        )
        pipe.model = BatchingModel(self.model, self.batcher)
        self.pipelines = {side: with_truncation_side(pipe, side) for side in ("right", "left")}
        self.executor = ThreadPoolExecutor(settings.max_concurrent_requests, thread_name_prefix="minidistil-request")
        self.ready = False

    def _max_input_length(self, pipe):
        if self.task == "sentence-embedding":
            return pipe.max_seq_length
        return min(self.tokenizer.model_max_length, self.model.config.max_position_embeddings)

    @property
    def pipeline(self):
        return self.pipelines["right"]

    @property
    def backend(self):
        return getattr(self.model.ops, "name", self.settings.backend or "auto")

    @property
    def threads(self):
        return getattr(self.model.ops, "threads", None) or os.cpu_count()

    def start(self):
        """Start the model worker and run one warm-up request through it; then /health says ok."""
        self.batcher.start()
        self.submit(warmup_call, self.pipeline, self.task, ticket=Ticket()).result()
        self.ready = True
        log.info("warmed up; forward pass ~ %.2f ms + %.4f ms per padded token", self.batcher.cost_model.overhead * 1e3,
                 self.batcher.cost_model.per_token * 1e3)

    def healthy(self):
        return self.ready and self.batcher.is_alive()

    def submit(self, fn, *args, ticket):
        """fn(*args) in a request thread with `ticket` current; a concurrent.futures.Future."""
        return self.executor.submit(_run_as, ticket, fn, args)

    def close(self):
        """Finish what is queued, then stop the model worker and the request threads."""
        self.ready = False
        self.batcher.close()
        self.executor.shutdown(wait=True)

    def info(self):
        """GET /info: TEI's fields, plus the task and backend."""
        s = self.settings
        config = self.model.config
        if self.task == "sentence-embedding":
            model_type = {"embedding": {"pooling": "+".join(self.pipeline.sentence_config.pooling)}}
        elif self.task == "text-classification":
            model_type = {"classifier": {"id2label": {str(k): v for k, v in config.id2label.items()},
                                         "label2id": dict(config.label2id)}}
        else:
            model_type = {self.task: {}}
        return {
            "model_id": self.model_id,
            "model_sha": s.revision,
            "model_dtype": s.quantize or "float32",
            "model_type": model_type,
            "task": self.task,
            "backend": self.backend,
            "threads": self.threads,
            "max_concurrent_requests": s.max_concurrent_requests,
            "max_input_length": self.max_input_length,
            "max_batch_tokens": s.max_batch_tokens,
            "max_batch_requests": s.max_batch_requests,
            "max_client_batch_size": s.max_client_batch_size,
            "auto_truncate": s.auto_truncate,
            "tokenization_workers": s.max_concurrent_requests,
            "version": __version__,
            "sha": None,
            "docker_label": None,
        }
