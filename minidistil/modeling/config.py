"""DistilBertConfig: the model's hyper-parameters, read from and written to config.json.

Field names, defaults and JSON key names are those of the reference's
`DistilBertConfig` (transformers), so a config.json from the Hugging Face hub
loads unchanged and one written here loads in transformers:

    config = DistilBertConfig.from_pretrained("path/to/checkpoint")   # reads config.json
    config.save_pretrained("out/")                                    # writes out/config.json

Reference aliases are accepted on input and readable as properties
(`hidden_size` -> dim, `num_attention_heads` -> n_heads, `num_hidden_layers` ->
n_layers); `num_labels` follows `id2label` as in the reference: it is
`len(id2label)`, and setting it to another value regenerates the labels as
LABEL_0..LABEL_{n-1}. Keys this class does not know (torch-only settings such as
`return_dict`, `dtype`, `transformers_version`, task-specific extras) are kept
in `extra` and written back unchanged.

DistilBERT's LayerNorm epsilon is not a config field in the reference: it is
fixed at 1e-12 in the model code (`LAYER_NORM_EPS` here).

Invalid values raise `ConfigError` (a `ValueError`) naming the field.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..errors import ConfigError, shown
from ..jsonfiles import read_json_object
from ..kernels import ACTIVATIONS as KERNEL_ACTIVATIONS

CONFIG_NAME = "config.json"
MODEL_TYPE = "distilbert"
LAYER_NORM_EPS = 1e-12  # fixed in the reference's DistilBERT (every LayerNorm), not configurable
ACTIVATIONS = tuple(KERNEL_ACTIVATIONS)  # what config.activation may name: the activations the kernels implement
PROBLEM_TYPES = ("regression", "single_label_classification", "multi_label_classification")

# Reference `attribute_map`: alias key -> field.
ATTRIBUTE_MAP = {
    "hidden_size": "dim",
    "num_attention_heads": "n_heads",
    "num_hidden_layers": "n_layers",
}

_POSITIVE_INT_FIELDS = ("vocab_size", "max_position_embeddings", "n_layers", "n_heads", "dim", "hidden_dim")
# The most each size may be: far above any released BERT-family model (at most 48 layers, dim 8192,
# a vocabulary of 1M, 8k positions), and low enough that what a config alone makes stays cheap: the
# label tables, the 16 tensor names per layer, a sinusoidal position table or a fresh head (those of
# a checkpoint are bounded by its tensors too: see checkpoints.loading.check_config_fits). A
# config.json claiming n_layers 10^9 or num_labels 10^8 is refused here, naming the field, before
# anything of that size is built.
SIZE_LIMITS = {
    "vocab_size": 2**22,
    "max_position_embeddings": 2**16,
    "n_layers": 2**9,
    "n_heads": 2**12,
    "dim": 2**16,
    "hidden_dim": 2**18,
    "num_labels": 2**16,
}
_PROBABILITY_FIELDS = ("dropout", "attention_dropout", "qa_dropout", "seq_classif_dropout")


def _default_labels(n: int) -> dict[int, str]:
    return {i: f"LABEL_{i}" for i in range(n)}


@dataclass
class DistilBertConfig:
    """Hyper-parameters of a DistilBERT model (defaults: distilbert-base-uncased)."""

    vocab_size: int = 30522
    max_position_embeddings: int = 512
    sinusoidal_pos_embds: bool = False
    n_layers: int = 6
    n_heads: int = 12
    dim: int = 768
    hidden_dim: int = 4 * 768
    dropout: float = 0.1
    attention_dropout: float = 0.1
    activation: str = "gelu"
    initializer_range: float = 0.02
    qa_dropout: float = 0.1
    seq_classif_dropout: float = 0.2
    pad_token_id: int | None = 0
    bos_token_id: int | None = None
    eos_token_id: int | list[int] | None = None
    tie_word_embeddings: bool = True
    # Fine-tuning task settings (PretrainedConfig in the reference).
    num_labels: int | None = None  # None: len(id2label), or 2 when id2label is absent too
    id2label: dict[int, str] | None = None
    label2id: dict[str, int] | None = None
    problem_type: str | None = None
    architectures: list[str] | None = None
    # Every other key of config.json, kept verbatim and written back.
    extra: dict[str, Any] = field(default_factory=dict)

    model_type: ClassVar[str] = MODEL_TYPE
    attribute_map: ClassVar[dict[str, str]] = ATTRIBUTE_MAP

    # ------------------------------------------------------------------ validation
    def __post_init__(self):
        object.__setattr__(self, "_ready", False)
        check_sizes({name: getattr(self, name) for name in SIZE_LIMITS}, self.id2label, self.label2id)
        self._normalise_labels()
        self.validate()
        object.__setattr__(self, "_ready", True)

    def __setattr__(self, name, value):
        # Like the reference's num_labels setter: a new label count regenerates the labels.
        if name == "num_labels" and getattr(self, "_ready", False):
            if value is None or not _is_int(value) or value < 1:
                raise ConfigError(f"num_labels must be a positive integer, got {shown(value)}")
            check_sizes({"num_labels": value})
            if value != len(self.id2label):
                object.__setattr__(self, "id2label", _default_labels(value))
                object.__setattr__(self, "label2id", {v: k for k, v in self.id2label.items()})
        object.__setattr__(self, name, value)

    def _normalise_labels(self):
        id2label, label2id, num_labels = self.id2label, self.label2id, self.num_labels
        if num_labels is not None and (not _is_int(num_labels) or num_labels < 1):
            raise ConfigError(f"num_labels must be a positive integer, got {shown(num_labels)}")
        if id2label is not None:
            if not isinstance(id2label, dict):
                raise ConfigError(f"id2label must be a mapping of label id to name, got {type(id2label).__name__}")
            converted = {}
            for key, name in id2label.items():
                try:
                    index = int(key)  # JSON keys are strings: "0" -> 0, as in the reference
                except (TypeError, ValueError):
                    raise ConfigError(f"id2label key {shown(key)} is not an integer label id") from None
                converted[index] = name
            if sorted(converted) != list(range(len(converted))):
                raise ConfigError(f"id2label keys must be 0..{len(converted) - 1}, got {shown(sorted(converted))}")
            id2label = dict(sorted(converted.items()))
        elif label2id is not None:
            if not isinstance(label2id, dict):
                raise ConfigError(f"label2id must be a mapping of label name to id, got {type(label2id).__name__}")
            try:
                id2label = {int(i): name for name, i in label2id.items()}
            except (TypeError, ValueError):
                raise ConfigError(f"label2id values must be integer label ids, got {shown(label2id)}") from None
            if sorted(id2label) != list(range(len(label2id))):
                raise ConfigError(f"label2id ids must be 0..{len(label2id) - 1}, got {shown(sorted(label2id.values(), key=str))}")
            id2label = dict(sorted(id2label.items()))
        else:
            id2label = _default_labels(2 if num_labels is None else num_labels)
        if num_labels is not None and num_labels != len(id2label):
            raise ConfigError(
                f"num_labels {num_labels} does not match id2label, which has {len(id2label)} labels: {shown(id2label)}"
            )
        if label2id is None:
            label2id = {name: i for i, name in id2label.items()}
        else:
            if not isinstance(label2id, dict):
                raise ConfigError(f"label2id must be a mapping of label name to id, got {type(label2id).__name__}")
            try:
                label2id = {str(name): int(i) for name, i in label2id.items()}
            except (TypeError, ValueError):
                raise ConfigError(f"label2id values must be integer label ids, got {shown(label2id)}") from None
        object.__setattr__(self, "id2label", id2label)
        object.__setattr__(self, "label2id", label2id)
        object.__setattr__(self, "num_labels", len(id2label))

    def validate(self):
        """Check every field; raise ConfigError naming the first bad one."""
        for name in _POSITIVE_INT_FIELDS:
            value = getattr(self, name)
            if not _is_int(value):
                raise ConfigError(f"{name} must be an integer, got {shown(value)}")
            if value <= 0:
                raise ConfigError(f"{name} must be positive, got {value}")
        if self.dim % self.n_heads != 0:
            raise ConfigError(
                f"dim {self.dim} is not divisible by n_heads {self.n_heads} "
                f"(each attention head gets dim / n_heads features)"
            )
        for name in _PROBABILITY_FIELDS:
            value = getattr(self, name)
            if not _is_real(value) or not 0.0 <= value <= 1.0:
                raise ConfigError(f"{name} must be a probability in [0, 1], got {shown(value)}")
        if not _is_real(self.initializer_range) or not self.initializer_range >= 0:
            raise ConfigError(f"initializer_range must be a non-negative number, got {shown(self.initializer_range)}")
        if not isinstance(self.sinusoidal_pos_embds, bool):
            raise ConfigError(f"sinusoidal_pos_embds must be true or false, got {shown(self.sinusoidal_pos_embds)}")
        if not isinstance(self.tie_word_embeddings, bool):
            raise ConfigError(f"tie_word_embeddings must be true or false, got {shown(self.tie_word_embeddings)}")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"activation {shown(self.activation)} is not supported: expected one of {', '.join(ACTIVATIONS)}")
        for name in ("pad_token_id", "bos_token_id"):
            value = getattr(self, name)
            if value is not None and (not _is_int(value) or not 0 <= value < self.vocab_size):
                raise ConfigError(f"{name} must be a token id in [0, vocab_size={self.vocab_size}), got {shown(value)}")
        eos = self.eos_token_id
        eos_list = eos if isinstance(eos, list) else [] if eos is None else [eos]
        if any(not _is_int(v) or not 0 <= v < self.vocab_size for v in eos_list):
            raise ConfigError(f"eos_token_id must be token ids in [0, vocab_size={self.vocab_size}), got {shown(eos)}")
        if self.problem_type is not None and self.problem_type not in PROBLEM_TYPES:
            raise ConfigError(
                f"problem_type {shown(self.problem_type)} is not supported: expected one of {', '.join(PROBLEM_TYPES)} or null"
            )
        if self.problem_type == "single_label_classification" and self.num_labels == 1:
            raise ConfigError(
                "problem_type 'single_label_classification' needs num_labels > 1 "
                "(use num_labels 2 for binary classification, or problem_type 'regression')"
            )
        if self.architectures is not None and (
            not isinstance(self.architectures, list) or not all(isinstance(a, str) for a in self.architectures)
        ):
            raise ConfigError(f"architectures must be a list of class names, got {shown(self.architectures)}")
        if not isinstance(self.extra, dict):
            raise ConfigError(f"extra must be a dict, got {type(self.extra).__name__}")

    # ------------------------------------------------------------------ aliases
    @property
    def hidden_size(self) -> int:
        return self.dim

    @property
    def num_attention_heads(self) -> int:
        return self.n_heads

    @property
    def num_hidden_layers(self) -> int:
        return self.n_layers

    @property
    def head_dim(self) -> int:
        """Features per attention head: dim // n_heads."""
        return self.dim // self.n_heads

    @property
    def layer_norm_eps(self) -> float:
        """Always 1e-12: the reference hard-codes it for DistilBERT."""
        return LAYER_NORM_EPS

    # ------------------------------------------------------------------ dict / JSON
    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls) if f.name != "extra")

    @classmethod
    def from_dict(cls, data: dict[str, Any], **overrides) -> "DistilBertConfig":
        """Build from a config.json dict (reference key names, aliases accepted)."""
        if not isinstance(data, dict):
            raise ConfigError(f"a config must be a JSON object, got {type(data).__name__}")
        data = {**copy.deepcopy(data), **overrides}
        model_type = data.pop("model_type", MODEL_TYPE)
        if model_type != MODEL_TYPE:
            hint = " (a BERT checkpoint: load it with minidistil.checkpoints.load_checkpoint or convert it)" if model_type == "bert" else ""
            raise ConfigError(f"model_type {shown(model_type)} is not {MODEL_TYPE!r}{hint}")
        for alias, name in ATTRIBUTE_MAP.items():
            if alias in data:
                value = data.pop(alias)
                if name in data and data[name] != value:
                    raise ConfigError(f"{alias} {shown(value)} (alias of {name}) disagrees with {name} {shown(data[name])}")
                data[name] = value
        # Older transformers wrote the label count as "_num_labels".
        if "num_labels" not in data and "_num_labels" in data:
            data["num_labels"] = data.pop("_num_labels")
        names = set(cls.field_names())
        kwargs = {k: data.pop(k) for k in list(data) if k in names}
        extra = dict(data.pop("extra", {}) or {}) if isinstance(data.get("extra"), dict) else {}
        extra.update(data)
        return cls(**kwargs, extra=extra)

    def to_dict(self) -> dict[str, Any]:
        """The config.json dict: reference key names, id2label keys as strings (JSON)."""
        out: dict[str, Any] = {}
        for name in self.field_names():
            value = getattr(self, name)
            if name == "num_labels":
                continue  # the reference stores the count only as len(id2label)
            if name == "id2label":
                value = {str(k): v for k, v in value.items()}
            if name in ("problem_type", "architectures") and value is None:
                continue
            out[name] = copy.deepcopy(value)
        out["model_type"] = MODEL_TYPE
        for key, value in self.extra.items():
            if key not in out:
                out[key] = copy.deepcopy(value)
        return dict(sorted(out.items()))

    def to_json_string(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json_file(cls, path: str | os.PathLike) -> "DistilBertConfig":
        path = Path(path)
        data = read_json_object(path, ConfigError, missing=f"{path}: cannot read config: no such file")
        try:
            return cls.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{path}: {exc}") from exc

    def to_json_file(self, path: str | os.PathLike) -> None:
        Path(path).write_text(self.to_json_string(), encoding="utf-8")

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, **overrides) -> "DistilBertConfig":
        """Read config.json from a checkpoint directory (or the file itself)."""
        path = Path(path)
        file = path / CONFIG_NAME if path.is_dir() else path
        config = cls.from_json_file(file)
        return config.replace(**overrides) if overrides else config

    def replace(self, **changes) -> "DistilBertConfig":
        """A validated copy with some fields changed (aliases accepted).

        A new `num_labels` without a new `id2label` regenerates the labels
        (LABEL_0..), as setting `config.num_labels` does in the reference.
        """
        data = self.to_dict()
        if "num_labels" in changes and "id2label" not in changes and changes["num_labels"] != self.num_labels:
            data.pop("id2label", None)
            if "label2id" not in changes:
                data.pop("label2id", None)
        data.update(changes)
        return type(self).from_dict(data)

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        file = directory / CONFIG_NAME
        self.to_json_file(file)
        return file


def check_sizes(sizes, id2label=None, label2id=None, limits=SIZE_LIMITS, why=None):
    """Refuse any size above its limit, naming the field, before anything of that size is built.

    sizes: {field: value}, checked against limits[field] (values that are not integers are left to
    `validate`); the lengths of id2label and label2id are checked against limits["num_labels"].
    why: what the limits are, for the message.
    """
    claims = [(f"{name} {value}", value, limits.get(name)) for name, value in sizes.items() if _is_int(value)]
    for name, labels in (("id2label", id2label), ("label2id", label2id)):
        if isinstance(labels, dict):
            claims.append((f"{name} with {len(labels)} labels", len(labels), limits.get("num_labels")))
    for claim, value, limit in claims:
        if limit is not None and value > limit:
            raise ConfigError(
                f"{claim} is more than {limit}, "
                + (why or "the most minidistil accepts (far above any real model: a corrupt or hostile config?)")
            )


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
