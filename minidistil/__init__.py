"""minidistil: DistilBERT from scratch, exact against the reference.

Public names are imported lazily so that `import minidistil` stays fast and
the tokenizer can be used without loading the model code (and vice versa).
"""

from importlib import import_module

from .errors import (
    AdapterError,
    CheckpointError,
    ConfigError,
    MinidistilError,
    MissingExtraError,
    ModelSourceError,
    TokenizerError,
)

__version__ = "0.1.0"

_LAZY_NAMES = {
    "DistilBertConfig": "modeling.config",
    "DistilBertTokenizer": "tokenization",
    "DistilBertTokenizerFast": "tokenization",
    "BatchEncoding": "tokenization",
    "DistilBertModel": "modeling.classes",
    "DistilBertForMaskedLM": "modeling.classes",
    "DistilBertForSequenceClassification": "modeling.classes",
    "DistilBertForMultipleChoice": "modeling.classes",
    "DistilBertForTokenClassification": "modeling.classes",
    "DistilBertForQuestionAnswering": "modeling.classes",
    "ModelOutput": "modeling.outputs",
    **{
        f"{framework}DistilBert{suffix}": "modeling.framework_classes"
        for framework in ("TF", "Flax")
        for suffix in ("Model", "ForMaskedLM", "ForSequenceClassification", "ForMultipleChoice",
                       "ForTokenClassification", "ForQuestionAnswering")
    },
    "DistilBertModelWithHeads": "adapters",
    "Stack": "adapters",
    "Parallel": "adapters",
    "pipeline": "pipelines",
}

__all__ = sorted(
    list(_LAZY_NAMES)
    + ["AdapterError", "CheckpointError", "ConfigError", "MinidistilError", "MissingExtraError", "ModelSourceError",
       "TokenizerError"]
)


def __getattr__(name):
    module_name = _LAZY_NAMES.get(name)
    if module_name is None:
        raise AttributeError(f"module 'minidistil' has no attribute {name!r}")
    value = getattr(import_module(f".{module_name}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
