"""The six DistilBERT classes of the reference: the encoder (runner.py) plus a thin head and its loss.

    model = DistilBertForSequenceClassification.from_pretrained("path/to/checkpoint")
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.logits, out.loss

Every class runs the same `forward`: check the inputs (inputs.py), run the encoder, apply the
head (`_head`), add the loss when targets are given (`_loss`, losses.py). Parameters keep the
checkpoint's names (checkpoints/schema.py).
"""

import warnings
from pathlib import Path

import numpy as np

from ..checkpoints import schema
from ..checkpoints.loading import load_checkpoint
from ..checkpoints.saving import save_checkpoint
from ..errors import CheckpointError, ConfigError
from . import losses
from .config import LAYER_NORM_EPS, DistilBertConfig
from .initialization import random_params, sinusoidal_position_embeddings
from .inputs import check_inputs, flatten_choices
from .outputs import (
    BaseModelOutput,
    MaskedLMOutput,
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)
from .runner import EncoderRunner


def _shape(array):
    return tuple(int(n) for n in np.shape(array))


def _describe(names_shapes):
    return "; ".join(f"{name} {list(shape)}" for name, shape in names_shapes)


class DistilBertPreTrainedModel:
    """Shared machinery: parameters, backend, loading, saving, the forward pass. Subclasses add the head."""

    head = None  # the schema.HEADS name of this class's head, None for the bare encoder
    output_class = BaseModelOutput
    targets = ()  # the forward's keyword arguments that ask for a loss

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
        if params is None:
            params = random_params(config, seed, self.head)
        params = self._checked_params(config, schema.bare_names(params, source="params"))
        self.runner = EncoderRunner(config, params, backend=backend, threads=threads)

    config = property(lambda self: self.runner.config)
    params = property(lambda self: self.runner.params, doc="host float32 weights, bare names")
    ops = property(lambda self: self.runner.ops)

    # ------------------------------------------------------------- parameters
    @classmethod
    def _check_config(cls, config):
        pass

    @classmethod
    def _checked_params(cls, config, params, source="params"):
        """params as float32 NumPy arrays; every expected tensor present with its shape, nothing unknown."""
        params = schema.drop_tied_copy(dict(params), config, source)
        if schema.POSITION_EMBEDDINGS not in params and config.sinusoidal_pos_embds:
            # A sinusoidal table is a function of the config; the reference recreates it when absent.
            params[schema.POSITION_EMBEDDINGS] = sinusoidal_position_embeddings(config.max_position_embeddings, config.dim)
        params = schema.check_tensors(params, schema.expected_shapes(config, cls.head), source)
        out = {}
        for name, value in params.items():
            array = np.asarray(value)
            if not np.issubdtype(array.dtype, np.floating):
                raise CheckpointError(f"{source}: tensor {name} has dtype {array.dtype}, expected floating point")
            out[name] = array if array.dtype == np.float32 else array.astype(np.float32)
        return out

    def state_dict(self):
        """{name: float32 array} with the names this class saves under (transformers' layout)."""
        return {schema.saved_name(n, self.head is not None): v for n, v in self.params.items()}

    def num_parameters(self):
        return int(sum(v.size for v in self.params.values()))

    # ------------------------------------------------------------- loading and saving
    @classmethod
    def from_pretrained(cls, path, backend=None, threads=None, fresh_head=False, seed=0, allow_nonfinite=False,
                        **config_overrides):
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
        A NaN or infinite weight is a CheckpointError naming the tensor, unless allow_nonfinite=True
        (for studying a broken checkpoint: its outputs will be NaN).
        config_overrides change config fields (e.g. num_labels=3); other keywords are a TypeError.
        """
        known = set(DistilBertConfig.field_names()) | set(DistilBertConfig.attribute_map)
        unknown = sorted(set(config_overrides) - known - {"extra"})
        if unknown:
            raise TypeError(
                f"{cls.__name__}.from_pretrained() got unexpected keyword argument(s) {', '.join(unknown)} "
                "(keywords other than backend, threads, fresh_head, seed and allow_nonfinite must be config fields)"
            )
        if not Path(path).exists():
            from ..sources import resolve_model_dir

            path = resolve_model_dir(path)
        config, tensors = load_checkpoint(path, allow_nonfinite=allow_nonfinite)
        if config_overrides:
            config = config.replace(**config_overrides)
        params = cls._params_from_checkpoint(config, tensors, fresh_head, seed, str(path))
        return cls(config, params, backend=backend, threads=threads)

    @classmethod
    def _params_from_checkpoint(cls, config, tensors, fresh_head, seed, source):
        expected_head = schema.head_shapes(config, cls.head)
        own = set(expected_head)
        foreign = sorted(n for n in tensors if n in schema.head_tensor_names() and n not in own)
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
        save_checkpoint(directory, config, self.params, prefix_encoder=self.head is not None)
        return directory

    # ------------------------------------------------------------- forward
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None,
                output_attentions=False, output_hidden_states=False, return_dict=None, *, hooks=None,
                return_numpy=None, **targets):
        """Run the model. Targets (labels, or start_positions and end_positions for QA) add the loss.

        head_mask (H,) or (L, H) scales each head's attention; hooks: adapters (transformer.py);
        return_numpy: see EncoderRunner.result; return_dict=False gives a tuple of the set fields
        in the reference's order (loss first when there is one), as transformers does.
        """
        unknown = sorted(set(targets) - set(self.targets))
        if unknown:
            accepted = ", ".join(self.targets) or "no targets"
            raise TypeError(f"{type(self).__name__}.forward() got unexpected keyword argument(s) "
                            f"{', '.join(unknown)} (it takes {accepted})")
        input_ids, attention_mask, inputs_embeds, choices = self._flatten(input_ids, attention_mask, inputs_embeds)
        inputs = check_inputs(self.config, input_ids, attention_mask, head_mask, inputs_embeds)
        last, hidden, attn = self.runner.run(inputs, output_hidden_states, output_attentions, hooks)
        fields = {name: self.runner.result(x, return_numpy) for name, x in self._head(last, choices).items()}
        given = {name: value for name, value in targets.items() if value is not None}
        if given:
            fields["loss"] = self._loss(**{n: self.runner.host(x) for n, x in fields.items()}, **given)
        out = self.output_class(
            **fields,
            hidden_states=self.runner.results(hidden, return_numpy),
            attentions=self.runner.results(attn, return_numpy),
        )
        return out.to_tuple() if return_dict is False else out

    def _flatten(self, input_ids, attention_mask, inputs_embeds):
        """Inputs as (batch, seq) rows, and what `_head` needs to undo it (multiple choice)."""
        return input_ids, attention_mask, inputs_embeds, None

    def _head(self, last, choices):
        """{output field: backend array} from the last hidden state (B, S, D)."""
        return {"last_hidden_state": last}

    def __repr__(self):
        c = self.config
        return (
            f"{type(self).__name__}(dim={c.dim}, n_layers={c.n_layers}, n_heads={c.n_heads}, "
            f"vocab_size={c.vocab_size}, backend={self.ops.name!r})"
        )


class DistilBertModel(DistilBertPreTrainedModel):
    """The bare encoder: last_hidden_state (batch, seq, dim)."""


class DistilBertForMaskedLM(DistilBertPreTrainedModel):
    """vocab_transform -> activation -> vocab_layer_norm -> vocab_projector (tied to the word embeddings)."""

    head = "masked_lm"
    output_class = MaskedLMOutput
    targets = ("labels",)

    def _head(self, last, choices):
        p, ops = self.runner.prepared, self.ops
        x = ops.linear(last, p["vocab_transform.weight"], p["vocab_transform.bias"], activation=self.config.activation)  # (B, S, D)
        x = ops.layernorm(x, p["vocab_layer_norm.weight"], p["vocab_layer_norm.bias"], LAYER_NORM_EPS)  # (B, S, D)
        projector = p[schema.projector_name(self.config)]  # (V, D): the word embeddings themselves when tied
        return {"logits": ops.linear(x, projector, p["vocab_projector.bias"])}  # (B, S, V)

    def _loss(self, logits, labels):
        return losses.token_loss(logits, labels)


class DistilBertForSequenceClassification(DistilBertPreTrainedModel):
    """First token -> pre_classifier -> ReLU -> classifier: logits (batch, num_labels)."""

    head = "sequence_classification"
    output_class = SequenceClassifierOutput
    targets = ("labels",)

    def _head(self, last, choices):
        return {"logits": _pooled_classifier(self.runner.prepared, self.ops, last)}  # (B, num_labels)

    def problem_type(self, labels):
        """The reference's choice when config.problem_type is None (decided per call, config untouched)."""
        return losses.problem_type(self.config.problem_type, self.config.num_labels, labels)

    def _loss(self, logits, labels):
        return losses.sequence_loss(logits, labels, self.problem_type(labels))


class DistilBertForMultipleChoice(DistilBertPreTrainedModel):
    """Inputs (batch, choices, seq): each choice scored like sequence classification with one unit."""

    head = "multiple_choice"
    output_class = MultipleChoiceModelOutput
    targets = ("labels",)

    def _flatten(self, input_ids, attention_mask, inputs_embeds):
        return flatten_choices(input_ids, attention_mask, inputs_embeds)

    def _head(self, last, choices):
        logits = _pooled_classifier(self.runner.prepared, self.ops, last)  # (B·C, 1)
        return {"logits": logits.reshape(choices)}  # (B, C)

    def _loss(self, logits, labels):
        return losses.choice_loss(logits, labels)


class DistilBertForTokenClassification(DistilBertPreTrainedModel):
    """classifier on every position: logits (batch, seq, num_labels)."""

    head = "token_classification"
    output_class = TokenClassifierOutput
    targets = ("labels",)

    def _head(self, last, choices):
        p = self.runner.prepared
        return {"logits": self.ops.linear(last, p["classifier.weight"], p["classifier.bias"])}  # (B, S, N)

    def _loss(self, logits, labels):
        return losses.token_loss(logits, labels)


class DistilBertForQuestionAnswering(DistilBertPreTrainedModel):
    """qa_outputs (2 units) on every position, split into start_logits and end_logits (batch, seq)."""

    head = "question_answering"
    output_class = QuestionAnsweringModelOutput
    targets = ("start_positions", "end_positions")

    @classmethod
    def _check_config(cls, config):
        if config.num_labels != 2:
            raise ConfigError(f"num_labels must be 2 for question answering (start and end), got {config.num_labels}")

    def _head(self, last, choices):
        p = self.runner.prepared
        logits = self.ops.linear(last, p["qa_outputs.weight"], p["qa_outputs.bias"])  # (B, S, 2)
        return {"start_logits": logits[..., 0].copy(), "end_logits": logits[..., 1].copy()}  # (B, S) each, contiguous

    def _loss(self, start_logits, end_logits, start_positions=None, end_positions=None):
        if start_positions is None or end_positions is None:
            raise ValueError("pass both start_positions and end_positions for a loss, or neither")
        return losses.span_loss(start_logits, end_logits, start_positions, end_positions)


def _pooled_classifier(p, ops, last):
    """First token -> pre_classifier -> ReLU -> classifier (dropout is off at inference)."""
    pooled = last[:, 0]  # (B, D)
    pooled = ops.linear(pooled, p["pre_classifier.weight"], p["pre_classifier.bias"], activation="relu")  # (B, D)
    return ops.linear(pooled, p["classifier.weight"], p["classifier.bias"])  # (B, N)


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
