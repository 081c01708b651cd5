"""SentenceEmbedder: sentence embeddings as a callable class for `ray.data.Dataset.map_batches`.

    ds = ray.data.read_parquet("corpus/")
    ds = ds.map_batches(SentenceEmbedder, fn_constructor_args=("sentence-transformers/all-MiniLM-L6-v2",),
                        batch_size=256, compute=ray.data.ActorPoolStrategy(size=4), num_cpus=2)

Ray Data runs a callable class as a pool of actors: each loads the model once, in __init__, and is
then called on batch after batch.
"""

import numpy as np

from minidistil import pipeline

from . import columns
from .resources import actor_threads


class SentenceEmbedder:
    """Adds `output_column`: one float32 vector per row, as the sentence-embedding pipeline computes it.

    model: a directory or a model name (None: the installed all-MiniLM-L6-v2).
    batch_size: texts per forward pass inside one map_batches batch.
    threads: None follows the CPUs Ray reserved for the actor (num_cpus=...), or every core outside Ray.
    quantize: None (float32) or "int8" (from_pretrained's quantize=).
    A missing, non-string or blank text is a PipelineInputError naming its row (and its `id`, when the
    batch has that column); rows are never dropped or shifted.
    """

    def __init__(self, model=None, *, batch_size=32, backend=None, threads=None, revision=None, quantize=None,
                 text_column="text", output_column="embedding"):
        self.text_column = text_column
        self.output_column = output_column
        self.threads = actor_threads() if threads is None else threads
        self.embed = pipeline("sentence-embedding", model=model, revision=revision, backend=backend,
                              threads=self.threads, batch_size=batch_size, quantize=quantize)
        # One text at load time gives the width of an empty batch's column, and moves the first
        # forward pass's one-off costs (kernel loading, buffer allocation) out of the first batch.
        self.dimension = self.embed("dimension").shape[0]

    def __call__(self, batch):
        texts = columns.texts(batch, self.text_column)
        if texts:
            vectors = self.embed(texts)  # (n, dim) float32, row i from texts[i]
        else:
            vectors = np.empty((0, self.dimension), dtype=np.float32)
        return columns.with_column(batch, self.output_column, vectors)
