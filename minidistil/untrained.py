"""A checkpoint with a random (untrained) task head on a real encoder, for trying a task offline.

    write_untrained_checkpoint("ner-demo", "token-classification", source, labels=["O", "B-PER", "I-PER"])

The encoder comes from `source` (any model minidistil loads); the head is seeded random weights,
the reference's initialisation, so its predictions mean nothing. config.json says so under
UNTRAINED_HEAD_KEY, and every later from_pretrained of that head warns. This is what
`minidistil init` runs; it exists so that every CLI task can be tried where no fine-tuned
checkpoint can be downloaded.
"""

from __future__ import annotations

from pathlib import Path

from .pipelines import TASKS, PipelineInputError, normalize_task


def write_untrained_checkpoint(directory, task, source, labels=None, seed=0):
    """Write config.json, model.safetensors and the tokenizer files into `directory`; return its config.

    task: a pipeline task with a head (fill-mask, text-classification, token-classification,
    question-answering or an alias); source: a directory or model name (sources.resolve_model_dir);
    labels: the label names of a classification head (default: the source config's).
    `directory` must not exist yet or be empty, so that no checkpoint is overwritten.
    """
    from .modeling import classes
    from .modeling.initialization import UNTRAINED_HEAD_KEY, random_params
    from .sources import resolve_model_dir
    from .tokenization import DistilBertTokenizerFast

    task = normalize_task(task)
    model_class = getattr(classes, TASKS[task].model_class)
    if model_class.head is None:
        raise PipelineInputError(f"{task} runs the bare encoder: it needs no head, use the source model itself")
    directory = Path(directory)
    if directory.exists() and (not directory.is_dir() or any(directory.iterdir())):
        raise PipelineInputError(f"{directory} already exists and is not an empty directory: choose a new one")
    labelled = model_class.head in ("sequence_classification", "token_classification")
    if labels is not None:
        if not labelled:
            raise PipelineInputError(f"{task} has no labels to set (labels are for text- and token-classification)")
        labels = list(labels)
        if not labels or not all(isinstance(x, str) and x.strip() for x in labels) or len(set(labels)) < len(labels):
            raise PipelineInputError(f"labels must be distinct non-empty names, got {labels!r}")

    source_dir = resolve_model_dir(source)
    encoder = classes.DistilBertModel.from_pretrained(source_dir, backend="numpy")
    changes = {"architectures": [model_class.__name__], UNTRAINED_HEAD_KEY: model_class.head}
    if labels is not None:
        changes["id2label"] = dict(enumerate(labels))
        changes["label2id"] = {label: i for i, label in enumerate(labels)}
    config = encoder.config.replace(**changes)
    params = {**encoder.params, **random_params(config, seed, model_class.head, encoder=False)}
    model_class(config, params, backend="numpy").save_pretrained(directory)
    DistilBertTokenizerFast.from_pretrained(source_dir).save_pretrained(directory)
    return config
