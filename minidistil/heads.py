"""The six DistilBERT classes of the reference: the encoder (model.py) plus a thin head and its loss.

    model = DistilBertForSequenceClassification.from_pretrained("path/to/checkpoint")
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.logits, out.loss

Parameters keep the checkpoint's names in the bare layout: encoder tensors as
`embeddings.*` / `transformer.layer.N.*` (a task checkpoint's `distilbert.`
prefix is dropped on load and written back on save), head tensors as the
reference names them (`classifier.weight`, `qa_outputs.bias`, ...).
"""

import math
import warnings
from pathlib import Path

import numpy as np

from . import checkpoint, losses
from . import model as M
from .config import DistilBertConfig
from .errors import CheckpointError, ConfigError
from .initialization import encoder_shapes, head_shapes, random_params, sinusoidal_position_embeddings
from .outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

PREFIX = "distilbert."
TIED_PROJECTOR = "vocab_projector.weight"

# Every tensor name a DistilBERT head of the reference can hold (bare layout).
KNOWN_HEAD_TENSORS = checkpoint.head_tensor_names()


def _get_ops(backend, threads):
    from .kernels import get_ops

    return get_ops(backend, threads)


def _shape(array):
    return tuple(int(n) for n in np.shape(array))


def _describe(names_shapes):
    return "; ".join(f"{name} {list(shape)}" for name, shape in names_shapes)


class DistilBertPreTrainedModel:
    """Shared machinery: parameters, backend, loading, saving. Subclasses add the head."""

    head = None  # the initialization.HEADS name of this class's head, None for the bare encoder
    output_class = BaseModelOutput

    def __init__(self, config=None, params=None, *, backend=None, threads=None, seed=0):
        """A model from `config` and `params` ({name: array}, bare or `distilbert.` names).

        params=None gives seeded random weights (the reference's initialisation: a model
        built from a config, not loaded). backend: "numpy", "numba", "cupy", "auto";
        None reads $MINIDISTIL_BACKEND, else auto.
        """
        if config is None:
            config = DistilBertConfig()
        if not isinstance(config, DistilBertConfig):
            raise TypeError(f"config must be a DistilBertConfig, got {type(config).__name__}")
        self._check_config(config)
        self.config = config
        if params is None:
            params = random_params(config, seed, self.head)
        self.params = self._checked_params(config, checkpoint.normalise_keys(params, source="params"))
        self.ops = _get_ops(backend, threads)
        self._prepared = self.ops.prepare(self.params)

    # ------------------------------------------------------------- parameters
    @classmethod
    def _check_config(cls, config):
        pass

    @classmethod
    def _expected_shapes(cls, config):
        return {**encoder_shapes(config), **head_shapes(config, cls.head)}

    @classmethod
    def _checked_params(cls, config, params, source="params"):
        """params as float32 NumPy arrays; every expected tensor present with its shape, nothing unknown."""
        params = dict(params)
        pos = M.POSITION_EMBEDDINGS
        if pos not in params and config.sinusoidal_pos_embds:
            # A sinusoidal table is a function of the config; the reference recreates it when absent.
            params[pos] = sinusoidal_position_embeddings(config.max_position_embeddings, config.dim)
        params = checkpoint.check_tensors(params, cls._expected_shapes(config), source)
        out = {}
        for name, value in params.items():
            array = np.asarray(value)
            if not np.issubdtype(array.dtype, np.floating):
                raise CheckpointError(f"{source}: tensor {name} has dtype {array.dtype}, expected floating point")
            out[name] = array if array.dtype == np.float32 else array.astype(np.float32)
        return out

    def state_dict(self):
        """{name: float32 array} with the names this class saves under (transformers' layout)."""
        prefix = "" if self.head is None else PREFIX
        encoder = encoder_shapes(self.config)
        return {(prefix + n if n in encoder else n): v for n, v in self.params.items()}

    def num_parameters(self):
        return int(sum(v.size for v in self.params.values()))

    # ------------------------------------------------------------- loading and saving
    @classmethod
    def from_pretrained(cls, path, backend=None, threads=None, fresh_head=False, seed=0, **config_overrides):
        """Load a checkpoint: config.json + model.safetensors (single or sharded) or pytorch_model.bin.

        path: a checkpoint directory (or its weights file); anything else is looked up as a model
        name like the reference does (an installed model package, the HF cache, then a download:
        see sources.resolve_model_dir).
        Both key layouts load (bare `embeddings.*` and the task classes' `distilbert.*`);
        BERT-layout checkpoints are converted by the checkpoint loader.
        A head this class needs but the checkpoint lacks is a CheckpointError, unless
        fresh_head=True: then it starts from seeded random weights (`seed`), the reference's
        init; fresh_head=True also replaces a head whose shapes do not fit the config (e.g.
        num_labels changed), with a warning. Tensors of other DistilBERT heads are dropped with a
        warning, as the reference does; tensors nobody knows are an error.
        config_overrides change config fields (e.g. num_labels=3); other keywords are a TypeError.
        """
        known = set(DistilBertConfig.field_names()) | set(DistilBertConfig.attribute_map)
        unknown = sorted(set(config_overrides) - known - {"extra"})
        if unknown:
            raise TypeError(
                f"{cls.__name__}.from_pretrained() got unexpected keyword argument(s) {', '.join(unknown)} "
                "(keywords other than backend, threads, fresh_head and seed must be config fields)"
            )
        if not Path(path).exists():
            from .sources import resolve_model_dir

            path = resolve_model_dir(path)
        config, tensors = checkpoint.load_checkpoint(path)
        if config_overrides:
            config = config.replace(**config_overrides)
        params = cls._params_from_checkpoint(config, tensors, fresh_head, seed, str(path))
        return cls(config, params, backend=backend, threads=threads)

    @classmethod
    def _params_from_checkpoint(cls, config, tensors, fresh_head, seed, source):
        expected_head = head_shapes(config, cls.head)
        own = set(checkpoint.head_shapes(config, cls.head))
        foreign = sorted(n for n in tensors if n in KNOWN_HEAD_TENSORS and n not in own)
        if foreign:
            warnings.warn(
                f"{source}: dropping tensors of another DistilBERT head, unused by {cls.__name__}: {', '.join(foreign)}",
                stacklevel=3,
            )
            tensors = {n: v for n, v in tensors.items() if n not in foreign}
        if expected_head:
            present = [n for n in expected_head if n in tensors]
            fits = all(_shape(tensors[n]) == tuple(expected_head[n]) for n in present)
            if not present or (fresh_head and not fits):
                if not fresh_head:
                    raise CheckpointError(
                        f"{source} has no {cls.head.replace('_', ' ')} head for {cls.__name__} "
                        f"(missing {', '.join(expected_head)}); pass fresh_head=True to start one from "
                        "random weights"
                    )
                if present:
                    warnings.warn(
                        f"{source}: replacing the checkpoint's head, whose shapes do not fit the config, "
                        f"with a fresh one: {_describe((n, _shape(tensors[n])) for n in present)}",
                        stacklevel=3,
                    )
                tensors = {n: v for n, v in tensors.items() if n not in own}
                tensors.update(random_params(config, seed, cls.head, encoder=False))
        return cls._checked_params(config, tensors, source)

    def save_pretrained(self, directory):
        """Write config.json and model.safetensors that the reference loads into the same class."""
        directory = Path(directory)
        config = self.config.replace(architectures=[type(self).__name__])
        checkpoint.save_checkpoint(directory, config, self.params, prefix_encoder=self.head is not None)
        return directory

    # ------------------------------------------------------------- forward
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def _encode(self, input_ids, attention_mask, head_mask, inputs_embeds, output_hidden_states, output_attentions,
                hooks=None):
        ids, mask, head_mask, embeds = M.check_inputs(self.config, input_ids, attention_mask, head_mask, inputs_embeds)
        return M.encoder(
            self._prepared, self.ops, self.config, ids, mask, head_mask, embeds,
            bool(output_hidden_states), bool(output_attentions), hooks,
        )

    def _result(self, return_numpy, x):
        """An output array: NumPy float32, or left on the device when the backend has one.

        return_numpy=None follows the backend: NumPy for the CPU backends, device (CuPy)
        arrays for "cupy", so that GPU results are not copied back unless asked for.
        """
        if x is None:
            return None
        if return_numpy is None:
            return_numpy = not getattr(self.ops, "keeps_outputs_on_device", False)
        return self._host(x) if return_numpy else x

    def _host(self, x):
        """x as a NumPy float32 array, wherever it lives (losses are computed on the host)."""
        return np.asarray(self.ops.to_numpy(x), dtype=np.float32)

    def _output(self, return_numpy, hidden_states, attentions, **fields):
        def as_tuple(xs):
            return None if xs is None else tuple(self._result(return_numpy, x) for x in xs)

        return self.output_class(**fields, hidden_states=as_tuple(hidden_states), attentions=as_tuple(attentions))

    def __repr__(self):
        c = self.config
        return (
            f"{type(self).__name__}(dim={c.dim}, n_layers={c.n_layers}, n_heads={c.n_heads}, "
            f"vocab_size={c.vocab_size}, backend={getattr(self.ops, 'name', '?')!r})"
        )


class DistilBertModel(DistilBertPreTrainedModel):
    """The bare encoder: last_hidden_state (batch, seq, dim)."""

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None,
                output_attentions=False, output_hidden_states=False, hooks=None, return_numpy=None):
        last, hidden, attn = self._encode(
            input_ids, attention_mask, head_mask, inputs_embeds, output_hidden_states, output_attentions, hooks
        )
        return self._output(return_numpy, hidden, attn, last_hidden_state=self._result(return_numpy, last))


class DistilBertForMaskedLM(DistilBertPreTrainedModel):
    """vocab_transform -> activation -> vocab_layer_norm -> vocab_projector (tied to the word embeddings)."""

    head = "masked_lm"
    output_class = MaskedLMOutput

    @classmethod
    def _checked_params(cls, config, params, source="params"):
        params = dict(params)
        if config.tie_word_embeddings and TIED_PROJECTOR in params:
            # Tied: the projector is the word embedding matrix. A stored copy is checked for shape
            # and not used, as the reference (transformers 4.57) does even when the copy differs.
            checkpoint.check_tensors(
                {TIED_PROJECTOR: params.pop(TIED_PROJECTOR)}, {TIED_PROJECTOR: (config.vocab_size, config.dim)}, source
            )
        return super()._checked_params(config, params, source)

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None, labels=None,
                output_attentions=False, output_hidden_states=False, hooks=None, return_numpy=None):
        last, hidden, attn = self._encode(
            input_ids, attention_mask, head_mask, inputs_embeds, output_hidden_states, output_attentions, hooks
        )
        p, ops = self._prepared, self.ops
        x = ops.linear(last, p["vocab_transform.weight"], p["vocab_transform.bias"],
                       activation=self.config.activation)  # (B, S, D)
        x = ops.layernorm(x, p["vocab_layer_norm.weight"], p["vocab_layer_norm.bias"], M.LAYER_NORM_EPS)  # (B, S, D)
        # tied: the projector is the word embedding matrix itself (one array, one device copy)
        projector = p[M.WORD_EMBEDDINGS] if self.config.tie_word_embeddings else p[TIED_PROJECTOR]  # (V, D)
        logits = self._result(return_numpy, ops.linear(x, projector, p["vocab_projector.bias"]))  # (B, S, V)
        loss = None
        if labels is not None:
            labels = _int_labels(labels, logits.shape[:2], "labels")
            loss = losses.cross_entropy(self._host(logits).reshape(-1, logits.shape[-1]), labels.reshape(-1))
        return self._output(return_numpy, hidden, attn, loss=loss, logits=logits)


class DistilBertForSequenceClassification(DistilBertPreTrainedModel):
    """First token -> pre_classifier -> ReLU -> classifier: logits (batch, num_labels)."""

    head = "sequence_classification"
    output_class = SequenceClassifierOutput

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None, labels=None,
                output_attentions=False, output_hidden_states=False, hooks=None, return_numpy=None):
        last, hidden, attn = self._encode(
            input_ids, attention_mask, head_mask, inputs_embeds, output_hidden_states, output_attentions, hooks
        )
        logits = self._result(return_numpy, _pooled_classifier(self._prepared, self.ops, last))  # (B, num_labels)
        loss = None if labels is None else self.loss(self._host(logits), labels)
        return self._output(return_numpy, hidden, attn, loss=loss, logits=logits)

    def problem_type(self, labels):
        """The reference's choice when config.problem_type is None (decided per call, config untouched)."""
        if self.config.problem_type is not None:
            return self.config.problem_type
        labels = _label_array(labels)
        if self.config.num_labels == 1:
            return "regression"
        if labels.dtype != np.bool_ and np.issubdtype(labels.dtype, np.integer):
            return "single_label_classification"
        return "multi_label_classification"

    def loss(self, logits, labels):
        """MSE (regression), cross-entropy (single label, -100 ignored) or BCE-with-logits (multi label)."""
        n = self.config.num_labels
        labels = _label_array(labels)
        kind = self.problem_type(labels)
        if kind == "regression":
            if not (labels.dtype == np.bool_ or np.issubdtype(labels.dtype, np.number)):
                raise ValueError(f"regression labels must be numbers, got dtype {labels.dtype}")
            if n == 1:
                return losses.mse(np.squeeze(logits), np.squeeze(labels).astype(np.float32))
            return losses.mse(logits, labels.astype(np.float32))
        if kind == "single_label_classification":
            labels = _int_labels(labels, (logits.shape[0],), "labels")
            return losses.cross_entropy(logits.reshape(-1, n), labels.reshape(-1))
        if not (labels.dtype == np.bool_ or np.issubdtype(labels.dtype, np.number)):
            raise ValueError(f"multi-label targets must be numbers, got dtype {labels.dtype}")
        if labels.shape != logits.shape:
            raise ValueError(f"multi-label targets must have shape {logits.shape}, got {labels.shape}")
        return losses.bce_with_logits(logits, labels.astype(np.float32))


class DistilBertForMultipleChoice(DistilBertPreTrainedModel):
    """Inputs (batch, choices, seq): each choice scored like sequence classification with one unit."""

    head = "multiple_choice"
    output_class = MultipleChoiceModelOutput

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None, labels=None,
                output_attentions=False, output_hidden_states=False, hooks=None, return_numpy=None):
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("pass exactly one of input_ids or inputs_embeds")
        if input_ids is not None:
            input_ids = np.asarray(input_ids)
            if input_ids.ndim != 3:
                raise ValueError(
                    f"input_ids must have shape (batch, num_choices, seq_len), got shape {input_ids.shape}"
                )
            batch, choices, seq_len = input_ids.shape
            input_ids = input_ids.reshape(batch * choices, seq_len)  # (B·C, S)
        else:
            inputs_embeds = np.asarray(inputs_embeds)
            if inputs_embeds.ndim != 4:
                raise ValueError(
                    "inputs_embeds must have shape (batch, num_choices, seq_len, dim), "
                    f"got shape {inputs_embeds.shape}"
                )
            batch, choices, seq_len = inputs_embeds.shape[:3]
            inputs_embeds = inputs_embeds.reshape(batch * choices, seq_len, inputs_embeds.shape[-1])  # (B·C, S, D)
        if attention_mask is not None:
            attention_mask = M.as_rectangular_array(attention_mask, "attention_mask")
            if attention_mask.shape != (batch, choices, seq_len):
                raise ValueError(
                    f"attention_mask has shape {attention_mask.shape}, but the input has shape {(batch, choices, seq_len)}"
                )
            attention_mask = attention_mask.reshape(batch * choices, seq_len)  # (B·C, S)
        last, hidden, attn = self._encode(
            input_ids, attention_mask, head_mask, inputs_embeds, output_hidden_states, output_attentions, hooks
        )
        logits = self._result(return_numpy, _pooled_classifier(self._prepared, self.ops, last))  # (B·C, 1)
        logits = logits.reshape(batch, choices)  # (B, C)
        loss = None
        if labels is not None:
            labels = _int_labels(labels, (batch,), "labels")
            loss = losses.cross_entropy(self._host(logits), labels)
        return self._output(return_numpy, hidden, attn, loss=loss, logits=logits)


class DistilBertForTokenClassification(DistilBertPreTrainedModel):
    """classifier on every position: logits (batch, seq, num_labels)."""

    head = "token_classification"
    output_class = TokenClassifierOutput

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None, labels=None,
                output_attentions=False, output_hidden_states=False, hooks=None, return_numpy=None):
        last, hidden, attn = self._encode(
            input_ids, attention_mask, head_mask, inputs_embeds, output_hidden_states, output_attentions, hooks
        )
        p = self._prepared
        logits = self._result(return_numpy, self.ops.linear(last, p["classifier.weight"], p["classifier.bias"]))  # (B, S, N)
        loss = None
        if labels is not None:
            labels = _int_labels(labels, logits.shape[:2], "labels")
            loss = losses.cross_entropy(self._host(logits).reshape(-1, logits.shape[-1]), labels.reshape(-1))
        return self._output(return_numpy, hidden, attn, loss=loss, logits=logits)


class DistilBertForQuestionAnswering(DistilBertPreTrainedModel):
    """qa_outputs (2 units) on every position, split into start_logits and end_logits (batch, seq)."""

    head = "question_answering"
    output_class = QuestionAnsweringModelOutput

    @classmethod
    def _check_config(cls, config):
        if config.num_labels != 2:
            raise ConfigError(f"num_labels must be 2 for question answering (start and end), got {config.num_labels}")

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None, start_positions=None,
                end_positions=None, output_attentions=False, output_hidden_states=False, hooks=None, return_numpy=None):
        last, hidden, attn = self._encode(
            input_ids, attention_mask, head_mask, inputs_embeds, output_hidden_states, output_attentions, hooks
        )
        p = self._prepared
        logits = self._result(return_numpy, self.ops.linear(last, p["qa_outputs.weight"], p["qa_outputs.bias"]))  # (B, S, 2)
        start_logits = logits[..., 0].copy()  # (B, S), contiguous
        end_logits = logits[..., 1].copy()  # (B, S), contiguous
        loss = None
        if (start_positions is None) != (end_positions is None):
            raise ValueError("pass both start_positions and end_positions for a loss, or neither")
        if start_positions is not None:
            loss = losses.span_loss(self._host(start_logits), self._host(end_logits), start_positions, end_positions)
        return self._output(return_numpy, hidden, attn, loss=loss, start_logits=start_logits, end_logits=end_logits)


# ---------------------------------------------------------------- helpers


def _pooled_classifier(p, ops, last):
    """First token -> pre_classifier -> ReLU -> classifier (dropout is off at inference)."""
    pooled = last[:, 0]  # (B, D)
    pooled = ops.linear(pooled, p["pre_classifier.weight"], p["pre_classifier.bias"], activation="relu")  # (B, D)
    return ops.linear(pooled, p["classifier.weight"], p["classifier.bias"])  # (B, N)


def _label_array(labels, name="labels"):
    """labels as an array of numbers, or a ValueError for ragged rows or label names."""
    labels = M.as_rectangular_array(labels, name)
    if labels.dtype.kind in "USO":  # str, bytes or objects: most often label names instead of ids
        raise ValueError(
            f"{name} must be numbers (class ids, or float targets), got dtype {labels.dtype}; "
            f"map label names to ids with config.label2id"
        )
    return labels


def _int_labels(labels, shape, name):
    """Integer class labels of the given shape (-100 = ignore), or a ValueError."""
    labels = _label_array(labels, name)
    if labels.dtype == np.bool_ or not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must be integer class ids (-100 to ignore), got dtype {labels.dtype}")
    if labels.size != math.prod(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {labels.shape}")
    return labels.reshape(shape)


MODEL_CLASSES = {
    cls.__name__: cls
    for cls in (
        DistilBertModel,
        DistilBertForMaskedLM,
        DistilBertForSequenceClassification,
        DistilBertForMultipleChoice,
        DistilBertForTokenClassification,
        DistilBertForQuestionAnswering,
    )
}
