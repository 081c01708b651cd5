"""The embedding job: embed every pending shard and write its part, in this process or on a Ray cluster.

On Ray the shards themselves are the dataset: one row per shard, handed one at a time
(`batch_size=1`) to a pool of ShardEmbedder actors through `map_batches`. Each actor loads the
model once, reads its shard from the input file, embeds it and writes the part; only a one-row
summary per shard travels back to the driver. So the input and output paths must be visible to
every node (one machine, or a shared filesystem). A killed actor is restarted by Ray and the task
that was running is retried: that shard's part is written again, whole, under the same name.
"""

import contextlib
import logging
from dataclasses import asdict, dataclass, fields

import numpy as np

from minidistil.errors import MinidistilError

from ..extras import import_extra
from . import shards as output
from .embedder import SentenceEmbedder
from .readers import Shard, read_shard

SHARD_FIELDS = [field.name for field in fields(Shard)]


@dataclass(frozen=True)
class EmbedJob:
    input: str  # the input file (absolute path)
    format: str  # "text", "jsonl" or "parquet"
    text_column: str
    output: str  # the output directory (absolute path)
    model: str  # the model directory
    batch_size: int = 32
    backend: str | None = None
    threads: int | None = None  # None: the CPUs Ray reserved for the actor, or every core here
    quantize: str | None = None  # None (float32) or "int8"


class ShardEmbedder:
    """map_batches callable over shards: a batch holds Shard fields, one entry per shard.

    Returns one row per shard written: its index and its rows (the driver's progress).
    """

    def __init__(self, job):
        self.job = job
        self.embedder = SentenceEmbedder(job.model, batch_size=job.batch_size, backend=job.backend,
                                         threads=job.threads, quantize=job.quantize)

    def embed_shard(self, shard):
        ids, texts = read_shard(self.job.input, self.job.format, self.job.text_column, shard)
        vectors = self.embedder({"id": np.asarray(ids, dtype=np.int64), "text": np.asarray(texts, dtype=object)})
        output.write_part(self.job.output, shard, output.part_table(ids, texts, vectors["embedding"]))

    def __call__(self, batch):
        shards = [Shard(**{name: int(batch[name][row]) for name in SHARD_FIELDS}) for row in range(len(batch["index"]))]
        for shard in shards:
            self.embed_shard(shard)
        return {"index": np.array([s.index for s in shards]), "rows": np.array([s.rows for s in shards])}


def run_here(job, pending, progress):
    """Embed the pending shards one after the other in this process."""
    worker = ShardEmbedder(job)
    for shard in pending:
        worker.embed_shard(shard)
        progress.shard_done(shard.rows)


@contextlib.contextmanager
def _data_context(ray):
    """Ray Data settings for this job, restored afterwards (the context is process-wide)."""
    context, logger = ray.data.DataContext.get_current(), logging.getLogger("ray.data")
    saved = context.enable_progress_bars, context.raise_original_map_exception, logger.level
    context.enable_progress_bars = False  # the job prints its own progress, one line per shard
    context.raise_original_map_exception = True  # a worker's InputFileError arrives as itself, not wrapped
    logger.setLevel(logging.WARNING)  # Ray Data's INFO lines about each execution would bury that progress
    try:
        yield
    finally:
        context.enable_progress_bars, context.raise_original_map_exception, level = saved
        logger.setLevel(level)


def run_on_ray(job, pending, progress, workers, cpus_per_worker):
    """Embed the pending shards on the connected Ray cluster: `workers` actors of `cpus_per_worker` CPUs."""
    ray = import_extra("ray", "ray", "--ray")
    import_extra("ray.data", "ray", "--ray")
    with _data_context(ray):
        shards = ray.data.from_items([asdict(shard) for shard in pending], override_num_blocks=len(pending))
        done = shards.map_batches(
            ShardEmbedder, fn_constructor_args=(job,), batch_size=1, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=min(workers, len(pending))), num_cpus=cpus_per_worker,
        )
        try:
            for row in done.iter_rows():
                progress.shard_done(int(row["rows"]))
        except ray.exceptions.RayTaskError as exc:
            if isinstance(exc.cause, MinidistilError):  # a bad input row, a part that does not fit: say that
                raise exc.cause from None
            raise
