"""minidistil on Ray Data: callables for `Dataset.map_batches` and a sharded, exactly-once embedding job.

    import ray
    from minidistil.ray import SentenceEmbedder, Pipeline

    ds = ray.data.read_parquet("corpus/")                       # a column "text"
    ds = ds.map_batches(SentenceEmbedder, fn_constructor_args=(model_dir,), batch_size=256,
                        compute=ray.data.ActorPoolStrategy(size=4), num_cpus=2)   # 2 threads per actor

`minidistil embed --input FILE --output DIR [--ray [ADDRESS|local]]` (minidistil.ray.command) writes a
Parquet dataset in shards, each completed atomically, so that a rerun resumes and every row is there once.

Files: embedder.py and pipeline.py (the callables), columns.py (batch formats, row checks),
resources.py (threads from Ray's CPUs), readers.py (input files in shards), shards.py (the output
directory: manifest, atomic parts, verification), job.py (the shard worker, run here or on Ray),
progress.py, command.py (the CLI), extra.py and errors.py. Importing this package does not import Ray.
"""

from .embedder import SentenceEmbedder
from .pipeline import Pipeline

__all__ = ["Pipeline", "SentenceEmbedder"]
