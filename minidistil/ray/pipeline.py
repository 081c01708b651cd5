"""Pipeline: any minidistil pipeline task as a callable class for `ray.data.Dataset.map_batches`.

    ds.map_batches(Pipeline, fn_constructor_args=("text-classification", "path/to/sst2-model"),
                   fn_constructor_kwargs={"top_k": None}, compute=ray.data.ActorPoolStrategy(size=2))

Each row's result is what `minidistil.pipeline(task, ...)` returns for that row alone, turned into
plain Python values (dicts, lists, str, int, float) so that Arrow stores it as a struct or list column.
"""

import numpy as np

from minidistil import pipeline
from minidistil.pipelines import TASK_ALIASES

from . import columns
from .resources import actor_threads

# question-answering reads two columns; every other task reads one text column.
DEFAULT_INPUT_COLUMNS = {"question-answering": ("question", "context")}
# These tasks return a bare result, not a list of one, when given a list of one input.
UNWRAP_SINGLE_INPUT = {"fill-mask", "question-answering"}


def plain(value):
    """`value` with NumPy arrays and scalars replaced by Python lists and numbers (Arrow-typed, not pickled)."""
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, (np.ndarray, np.generic)):
        return value.tolist()
    return value


class Pipeline:
    """Adds `output_column` (default "output"): the task's result for each row.

    task: any pipeline task or alias ("text-classification", "ner", "fill-mask", "question-answering", ...).
    input_column: the text column ("text"); for question-answering a pair of columns, by default
    ("question", "context"). Other keywords go to minidistil.pipeline (top_k, aggregation_strategy, ...).
    threads: None follows the CPUs Ray reserved for the actor. Bad rows are errors naming the row.
    """

    def __init__(self, task, model=None, *, input_column=None, output_column="output", batch_size=None,
                 backend=None, threads=None, revision=None, **pipeline_kwargs):
        self.task = TASK_ALIASES.get(task, task)  # minidistil.pipeline checks the name
        self.input_column = DEFAULT_INPUT_COLUMNS.get(self.task, "text") if input_column is None else input_column
        self.output_column = output_column
        self.threads = actor_threads() if threads is None else threads
        self.run = pipeline(self.task, model=model, revision=revision, backend=backend, threads=self.threads,
                            batch_size=batch_size, **pipeline_kwargs)

    def inputs(self, batch):
        """One pipeline input per row: a text, or a {column: text} dict when input_column is a tuple."""
        if isinstance(self.input_column, str):
            return columns.texts(batch, self.input_column)
        fields = {name: columns.texts(batch, name) for name in self.input_column}
        return [dict(zip(fields, row)) for row in zip(*fields.values())]

    def __call__(self, batch):
        items = self.inputs(batch)
        results = []
        if items:
            results = self.run(items)
            if len(items) == 1 and self.task in UNWRAP_SINGLE_INPUT:
                results = [results]
        if len(results) != len(items):  # a pipeline contract broken: never let rows shift
            raise RuntimeError(f"{self.task} gave {len(results)} results for {len(items)} rows")
        return columns.with_column(batch, self.output_column, [plain(result) for result in results])
