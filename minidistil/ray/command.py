"""`minidistil embed --input FILE --output DIR [--ray [ADDRESS|local]] [--workers N]`: a Parquet dataset.

Writes DIR/part-*.parquet with columns id (the row's number in the input), text and embedding, one
part per shard of --shard-rows rows (see shards.py for the directory and its exactly-once rule).
Rerunning the same command after a crash or Ctrl-C writes only the missing parts. Without --ray
one process does the work; with it, a pool of actors on a Ray cluster: `--ray` alone joins the
cluster that `ray start` runs on this machine (or $RAY_ADDRESS), `--ray HOST:PORT` (or ray://...)
another, `--ray local` starts one for this job.
"""

import contextlib
import math
import os
import sys
from pathlib import Path

from minidistil.pipelines import load_model_dir

from ..extras import import_extra
from . import shards as output
from .errors import ClusterTooSmallError, InputFileError
from .job import EmbedJob, run_here, run_on_ray
from .progress import ShardProgress
from .readers import input_format, plan_shards

DEFAULT_TEXT_COLUMN = "text"
DEFAULT_SHARD_ROWS = 1000


def _worker_shape(ray, workers, threads):
    """(actors, CPUs each) for the connected cluster: by default one actor per node, with all its CPUs."""
    node_cpus = [node["Resources"].get("CPU", 0) for node in ray.nodes() if node["Alive"]]
    node_cpus = [cpus for cpus in node_cpus if cpus >= 1]
    if not node_cpus:
        raise ClusterTooSmallError("the Ray cluster has no node with a CPU")
    workers = workers or len(node_cpus)
    cpus = threads or max(1, math.floor(min(max(node_cpus), sum(node_cpus) / workers)))
    fits = sum(math.floor(available / cpus) for available in node_cpus)  # actors of `cpus` CPUs that fit
    if workers > fits:
        raise ClusterTooSmallError(f"{workers} workers of {cpus} CPUs do not fit the Ray cluster (nodes with "
                                   f"{', '.join(f'{c:g}' for c in node_cpus)} CPUs): lower --workers or --threads")
    return workers, cpus


@contextlib.contextmanager
def connected(address, workers, threads):
    """Connect to Ray (or use the connection this process already has) and yield (actors, CPUs each)."""
    ray = import_extra("ray", "ray", "--ray")
    owned = not ray.is_initialized()
    if owned:
        import logging

        if address == "local":
            ray.init(address="local", num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
        else:
            ray.init(address=address, logging_level=logging.WARNING)
    try:
        yield _worker_shape(ray, workers, threads)
    finally:
        if owned:
            ray.shutdown()


def _job(args):
    """The EmbedJob and the identity its output directory must match (input file state, model, options)."""
    path = Path(args.input).resolve()
    if not path.is_file():
        raise InputFileError(f"--input {args.input}: no such file")
    fmt = input_format(path)
    if fmt == "text" and args.text_column is not None:
        raise InputFileError(f"--text-column is for JSON lines and Parquet input; {args.input} is read as "
                             "text, one per line (name it .jsonl or .parquet)")
    job = EmbedJob(input=str(path), format=fmt, text_column=args.text_column or DEFAULT_TEXT_COLUMN,
                   output=str(Path(args.output).resolve()),
                   model=str(load_model_dir("sentence-embedding", args.model, args.revision)),
                   batch_size=args.batch_size, backend=args.backend, quantize=args.quantize,
                   threads=None if args.ray is not None else args.threads)  # on Ray: the actor's CPUs
    stat = path.stat()
    identity = {"input": job.input, "input_bytes": stat.st_size, "input_mtime_ns": stat.st_mtime_ns,
                "format": job.format, "text_column": job.text_column, "model": job.model,
                "quantize": job.quantize, "shard_rows": args.shard_rows or DEFAULT_SHARD_ROWS}
    return job, identity


def _plan(job, shard_rows):
    shards = plan_shards(job.input, job.format, job.text_column, shard_rows)
    if not shards:
        raise InputFileError(f"{job.input}: no rows to embed")
    return shards


def embed_dataset(args, stream=None):
    """Run `minidistil embed --output DIR` for parsed arguments; progress and summary go to stderr."""
    stream = stream or sys.stderr
    import_extra("pyarrow", "ray", "--output (Parquet)")
    if args.ray is not None:
        import_extra("ray", "ray", "--ray")
    job, identity = _job(args)
    shards = output.open_output(job.output, identity, lambda: _plan(job, identity["shard_rows"]))
    output.remove_temporaries(job.output)  # left by a run that was killed mid-write
    todo = output.pending(job.output, shards)
    if len(todo) < len(shards):
        print(f"embed: {len(shards) - len(todo)} of {len(shards)} shards already in {job.output}, skipped",
              file=stream)

    def progress():  # its clock starts with the work: after Ray has started, before the model loads
        total = sum(s.rows for s in shards)
        return ShardProgress(len(shards), total, len(shards) - len(todo), total - sum(s.rows for s in todo),
                             stream=stream)

    rate = 0.0
    if todo and args.ray is None:
        shown = progress()
        run_here(job, todo, shown)
        rate = shown.close()
    elif todo:
        with connected(args.ray, args.workers, args.threads) as (workers, cpus):
            print(f"embed: {len(todo)} shards on Ray, {workers} workers x {cpus} CPUs", file=stream)
            shown = progress()
            run_on_ray(job, todo, shown, workers, cpus)
            rate = shown.close()
    output.remove_temporaries(job.output)  # a killed actor's unfinished part, redone by its retry
    summary = output.finish(job.output, shards)
    print(f"embed: {summary['rows']} rows in {summary['shards']} shards in {job.output} "
          f"({rate:.1f} rows/s this run)", file=stream)
    return summary
