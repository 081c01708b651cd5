"""Named prediction heads as the reference library saves them (head_config.json + pytorch_model_head.bin).

A head is a small stack of modules numbered as the reference's nn.Sequential
numbers them, which is how its weights are named (`heads.<name>.<index>.weight`):

  classification, multilabel_classification, tagging, question_answering, multiple_choice
      for each of `layers` layers: Dropout; then Linear(D, D) + activation for all but the
      last, and Linear(D, num_labels) (1 for multiple choice) for the last.
      classification reads the first token, tagging and QA every position; QA splits its two
      outputs into start and end logits; multiple choice reshapes to (batch, num_choices).
  masked_lm (and causal_lm)
      layers - 1 times: Linear + activation + LayerNorm (eps 1e-12, when layer_norm);
      then the vocabulary projection, whose weight is tied to the word embeddings.

Dropout is the identity at inference, so only the Linear / activation / LayerNorm
steps are kept here.
"""

import numpy as np

from ..modeling.config import LAYER_NORM_EPS
from ..modeling.outputs import (
    MaskedLMOutput,
    ModelOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from .activations import apply_activation, normalise_activation
from .errors import AdapterError, checked_tensors

HEAD_TYPES = (
    "classification",
    "multilabel_classification",
    "tagging",
    "question_answering",
    "multiple_choice",
    "masked_lm",
    "causal_lm",
)
UNSUPPORTED_HEAD_TYPES = ("dependency_parsing", "image_classification", "seq2seq_lm")
LM_HEADS = ("masked_lm", "causal_lm")

# the reference's constructor defaults, for fields a (possibly older) config leaves out
DEFAULTS = {
    "classification": dict(num_labels=2, layers=2, activation_function="tanh", use_pooler=False, bias=True),
    "multilabel_classification": dict(num_labels=2, layers=2, activation_function="tanh", use_pooler=False, bias=True),
    "tagging": dict(num_labels=2, layers=1, activation_function="tanh"),
    "question_answering": dict(num_labels=2, layers=1, activation_function="tanh"),
    "multiple_choice": dict(num_choices=2, layers=2, activation_function="tanh", use_pooler=False),
    "masked_lm": dict(layers=2, activation_function="gelu", layer_norm=True, bias=True),
    "causal_lm": dict(layers=1, activation_function=None, layer_norm=False, bias=False),
}


class CausalLMOutput(ModelOutput):
    _fields = ("loss", "logits", "hidden_states", "attentions")


class MultiHeadOutput(ModelOutput):
    """Several heads' outputs at once (a Parallel setup, or a list of heads).

    `out[i]` and iteration give the heads' outputs; `out.logits` stacks their logits
    along the batch axis, as the reference's MultiHeadOutput does.
    """

    _fields = ("head_outputs", "loss")

    @property
    def logits(self):
        return np.concatenate([o["logits"] for o in self["head_outputs"]], axis=0)

    def __getitem__(self, key):
        if isinstance(key, int):
            return super().__getitem__("head_outputs")[key]
        return super().__getitem__(key)

    def __iter__(self):
        return iter(super().__getitem__("head_outputs"))

    def __len__(self):
        return len(super().__getitem__("head_outputs"))

    def to_tuple(self):
        return tuple(self.values())

    def __repr__(self):
        outputs = super().__getitem__("head_outputs")
        return f"MultiHeadOutput({len(outputs)} heads: {', '.join(repr(o) for o in outputs)})"


def _int(value, what, where):
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise AdapterError(f"{where}: {what} must be a positive integer, got {value!r}")
    return value


class FlexHead:
    """One named head: its config, its steps, its weights."""

    def __init__(self, name, config, local, source, model_config, prefix=None):
        """local: {index.param: array}, the head's tensors without their `heads.<name>.` prefix."""
        where = f"{source}: head {name!r}"
        prefix = prefix or f"heads.{name}."
        local = dict(local)
        if not isinstance(config, dict):
            raise AdapterError(f"{where}: head 'config' must be an object")
        config = dict(config)
        head_type = config.pop("head_type", None)
        if head_type in UNSUPPORTED_HEAD_TYPES:
            raise AdapterError(f"{where}: unsupported head type {head_type!r}; supported: {', '.join(HEAD_TYPES)}")
        if head_type not in HEAD_TYPES:
            raise AdapterError(f"{where}: unknown head type {head_type!r}; supported: {', '.join(HEAD_TYPES)}")
        if head_type == "classification" and config.get("multilabel"):
            head_type = "multilabel_classification"
        cfg = dict(DEFAULTS[head_type])
        cfg.update({k: v for k, v in config.items() if k in cfg or k in ("vocab_size", "embedding_size")})
        self.name = name
        self.head_type = head_type
        self.config = dict(config, head_type=head_type)
        self.activation = normalise_activation(cfg.get("activation_function"), f"{where}: activation_function")
        self.layers = _int(cfg["layers"], "layers", where)
        if cfg.get("use_pooler"):
            raise AdapterError(f"{where}: use_pooler=true is not supported: DistilBERT has no pooler")
        self.id2label = _labels(config, where)
        dim = model_config.dim
        if head_type in LM_HEADS:
            self.vocab_size = _int(cfg.get("vocab_size") or model_config.vocab_size, "vocab_size", where)
            emb = _int(cfg.get("embedding_size") or dim, "embedding_size", where)
            if emb != dim:
                raise AdapterError(f"{where}: embedding_size {emb} differs from the model's hidden size {dim}")
            if self.vocab_size != model_config.vocab_size and model_config.tie_word_embeddings:
                raise AdapterError(
                    f"{where}: vocab_size {self.vocab_size} differs from the model's {model_config.vocab_size}"
                )
            self.steps, shapes = _lm_steps(cfg, self.activation, dim, self.vocab_size)
        else:
            if head_type == "multiple_choice":
                self.num_outputs = 1
                self.num_choices = _int(cfg["num_choices"], "num_choices", where)
            else:
                self.num_outputs = _int(cfg["num_labels"], "num_labels", where)
            if head_type == "question_answering" and self.num_outputs != 2:
                raise AdapterError(f"{where}: a question-answering head needs num_labels 2, got {self.num_outputs}")
            self.steps, shapes = _steps(self.layers, self.activation, dim, self.num_outputs, cfg.get("bias", True))
        self.tied_projection = None
        if head_type in LM_HEADS:
            final = self.steps[-1][1]
            key = f"{final}.weight"
            if key in local:
                self.tied_projection = local[key]  # the reference copies it into the (tied) word embeddings
            if model_config.tie_word_embeddings:
                shapes.pop(key)
                local.pop(key, None)
            elif key not in local:
                raise AdapterError(f"{where}: missing tensor {prefix}{key} (word embeddings are not tied)")
        if self.tied_projection is not None and tuple(self.tied_projection.shape) != (self.vocab_size, dim):
            raise AdapterError(f"{where}: projection weight has shape {tuple(self.tied_projection.shape)}, expected {(self.vocab_size, dim)}")
        self.host = checked_tensors(local, shapes, where, prefix)
        self.params = None

    def prepare(self, ops):
        self.params = ops.prepare(dict(self.host))

    @property
    def label2id(self):
        return None if self.id2label is None else {label: i for i, label in self.id2label.items()}

    def _run(self, ops, x, word_embeddings):
        p = self.params
        for step in self.steps:
            kind, index = step[0], step[1]
            if kind == "linear":
                weight = p.get(f"{index}.weight")
                if weight is None:  # tied vocabulary projection
                    weight = word_embeddings
                x = ops.linear(x, weight, p.get(f"{index}.bias"))
            elif kind == "act":
                x = apply_activation(ops, x, self.activation)
            elif kind == "ln":
                x = ops.layernorm(x, p[f"{index}.weight"], p[f"{index}.bias"], LAYER_NORM_EPS)
        return x

    def forward(self, ops, sequence_output, word_embeddings, hidden_states=None, attentions=None):
        """Head outputs (NumPy) from the encoder's last hidden state (backend array, (B, S, D))."""
        t = self.head_type
        if t in ("classification", "multilabel_classification", "multiple_choice"):
            logits = ops.to_numpy(self._run(ops, sequence_output[:, 0], word_embeddings))  # (B, labels)
            if t == "multiple_choice":
                return MultipleChoiceModelOutput(
                    logits=logits.reshape(-1, self.num_choices), hidden_states=hidden_states, attentions=attentions
                )
            return SequenceClassifierOutput(logits=logits, hidden_states=hidden_states, attentions=attentions)
        logits = ops.to_numpy(self._run(ops, sequence_output, word_embeddings))  # (B, S, out)
        if t == "tagging":
            return TokenClassifierOutput(logits=logits, hidden_states=hidden_states, attentions=attentions)
        if t == "question_answering":
            return QuestionAnsweringModelOutput(
                start_logits=np.ascontiguousarray(logits[..., 0]),
                end_logits=np.ascontiguousarray(logits[..., 1]),
                hidden_states=hidden_states,
                attentions=attentions,
            )
        if t == "masked_lm":
            return MaskedLMOutput(logits=logits, hidden_states=hidden_states, attentions=attentions)
        return CausalLMOutput(logits=logits, hidden_states=hidden_states, attentions=attentions)

    def __repr__(self):
        return f"FlexHead({self.name!r}, {self.head_type}, layers={self.layers})"


def _labels(config, where):
    id2label = config.get("id2label")
    if id2label is None and config.get("label2id") is not None:
        label2id = config["label2id"]
        if not isinstance(label2id, dict):
            raise AdapterError(f"{where}: label2id must be an object")
        id2label = {v: k for k, v in label2id.items()}
    if id2label is None:
        return None
    try:
        return {int(i): str(label) for i, label in sorted(id2label.items(), key=lambda kv: int(kv[0]))}
    except (TypeError, ValueError):
        raise AdapterError(f"{where}: label ids must be integers, got {list(id2label)}") from None


def _steps(layers, activation, dim, n_out, bias):
    """Steps and weight shapes of a PredictionHead, numbered as the reference's nn.Sequential."""
    steps, shapes, index = [], {}, 0
    for layer in range(layers):
        index += 1  # Dropout
        last = layer == layers - 1
        out = n_out if last else dim
        steps.append(("linear", index))
        shapes[f"{index}.weight"] = (out, dim)
        if not last or bias:
            shapes[f"{index}.bias"] = (out,)
        index += 1
        if not last and activation:
            steps.append(("act", index))
            index += 1
    return steps, shapes


def _lm_steps(cfg, activation, dim, vocab):
    """Steps and weight shapes of the reference's (BertStyleMasked|Causal)LMHead."""
    steps, shapes, index = [], {}, 0
    for _ in range(cfg["layers"] - 1):
        steps.append(("linear", index))
        shapes[f"{index}.weight"] = (dim, dim)
        shapes[f"{index}.bias"] = (dim,)
        index += 1
        if activation:
            steps.append(("act", index))
            index += 1
        if cfg.get("layer_norm"):
            steps.append(("ln", index))
            shapes[f"{index}.weight"] = (dim,)
            shapes[f"{index}.bias"] = (dim,)
            index += 1
    steps.append(("linear", index))
    shapes[f"{index}.weight"] = (vocab, dim)
    if cfg.get("bias"):
        shapes[f"{index}.bias"] = (vocab,)
    return steps, shapes
