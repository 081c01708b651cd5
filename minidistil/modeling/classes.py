"""The six DistilBERT classes of the reference: the encoder (runner.py) plus a thin head and its loss.

    model = DistilBertForSequenceClassification.from_pretrained("path/to/checkpoint")
    out = model(input_ids=ids, attention_mask=mask, labels=labels)
    out.logits, out.loss

Every class runs the same `forward`: check the inputs (inputs.py), run the encoder (with the
adapters of `adapter_names` or the active ones: adapters/adapter_set.py), apply the head
(`_head`), add the loss when targets are given (`_loss`, losses.py). Parameters keep the
checkpoint's names (checkpoints/schema.py).

`token_type_ids` is accepted and ignored: DistilBERT has no segment embeddings, and accepting
them lets a BERT tokenizer's output go straight in (`model(**enc)`); transformers raises a
TypeError there. They must still have the input's shape.
"""

import warnings
from pathlib import Path

import numpy as np

from ..checkpoints import schema
from ..checkpoints.loading import FLAX_WEIGHTS_NAME, TF_WEIGHTS_NAME, TORCH_WEIGHT_FILES, WEIGHT_FILES, load_checkpoint
from ..checkpoints.saving import save_checkpoint
from ..errors import CheckpointError, ConfigError, MissingHeadError
from . import losses
from .config import LAYER_NORM_EPS, DistilBertConfig
from .initialization import UNTRAINED_HEAD_KEY, random_params, sinusoidal_position_embeddings
from .inputs import check_inputs, check_token_types, flatten_choices
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
    weight_files = WEIGHT_FILES  # the weights files from_pretrained looks for, in order

    def __init__(self, config=None, params=None, *, backend=None, threads=None, seed=0, quantize=None):
        """A model from `config` and `params` ({name: array}, bare or `distilbert.` names).

        params=None gives seeded random weights (the reference's initialisation: a model
        built from a config, not loaded). backend: "numpy", "numba", "cupy", "auto";
        None reads $MINIDISTIL_BACKEND, else auto. quantize="int8": the linears (and the word
        embeddings) in int8, activations quantized per row at run time (kernels/reference.py,
        linear_int8); the host params stay float32.
        """
        if config is None:
            config = DistilBertConfig()
        if not isinstance(config, DistilBertConfig):
            raise TypeError(f"config must be a DistilBertConfig, got {type(config).__name__}")
        self._check_config(config)
        if params is None:
            params = random_params(config, seed, self.head)
        params = self._checked_params(config, schema.bare_names(params, source="params"))
        self.runner = EncoderRunner(config, params, head=self.head, backend=backend, threads=threads, quantize=quantize)
        self._adapter_set = None  # made by the first adapter call (adapter_set)

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

    # ------------------------------------------------------------- embeddings
    def get_input_embeddings(self):
        """The word embedding matrix (vocab_size, dim): a read-only NumPy view (change it with set_input_embeddings)."""
        return _read_only(self.params[schema.WORD_EMBEDDINGS])

    def set_input_embeddings(self, value):
        """Replace the word embeddings with an array of shape (vocab_size, dim) (copied as float32).

        What is tied afterwards: with config.tie_word_embeddings (the default) the masked-LM head
        projects with the word embedding matrix itself (checkpoints/schema.py's tie rule), so the
        new matrix is the output embeddings too, as transformers has it after tie_weights(); with
        tie_word_embeddings=False the head keeps its own vocab_projector.weight. A merged LoRA is
        merged again into the new weights. The vocabulary size cannot change here.
        """
        value = np.array(value, dtype=np.float32)
        expected = (self.config.vocab_size, self.config.dim)
        if value.shape != expected:
            raise ValueError(f"set_input_embeddings takes shape (vocab_size, dim) = {expected}, got {value.shape}")
        if not np.isfinite(value).all():
            raise ValueError("set_input_embeddings: the new embeddings hold NaN or inf")
        self.runner.replace_params({**self.params, schema.WORD_EMBEDDINGS: value})

    def get_output_embeddings(self):
        """The matrix the head projects onto the vocabulary with (masked LM only; None for the other classes)."""
        return None

    # ------------------------------------------------------------- adapters (the adapters library's API)
    @property
    def adapter_set(self):
        """The adapters loaded into this model (adapters/adapter_set.py, shared with DistilBertModelWithHeads)."""
        if self._adapter_set is None:
            from ..adapters.adapter_set import AdapterSet  # adapters/ imports this module: import on first use

            self._adapter_set = AdapterSet(self.runner)
        return self._adapter_set

    def load_adapter(self, path, load_as=None, set_active=False):
        """Load an adapter saved by the adapters library (save_adapter); returns its name. Not made active.

        Bottleneck adapters, LoRA and (IA)^3 are supported (adapters/__init__.py); a head saved
        beside the adapter is not loaded (this class has its own head; DistilBertModelWithHeads
        loads flex heads).
        """
        name = self.adapter_set.load(path, load_as)
        if set_active:
            self.set_active_adapters(name)
        return name

    def set_active_adapters(self, adapter_setup):
        """Adapters used by default: a name, a list of names, Stack(...), Parallel(...), or None for none."""
        self.adapter_set.set_active(adapter_setup)

    @property
    def active_adapters(self):
        return None if self._adapter_set is None else self._adapter_set.active

    def delete_adapter(self, name):
        self.adapter_set.delete(name)

    def merge_adapter(self, name):
        """Fold a LoRA / (IA)^3 adapter into the encoder's weights (same outputs, faster); reset_adapter() undoes it."""
        self.adapter_set.merge(name)

    def reset_adapter(self):
        self.adapter_set.reset()

    # ------------------------------------------------------------- loading and saving
    @classmethod
    def from_pretrained(cls, path, backend=None, threads=None, fresh_head=False, seed=0, allow_nonfinite=False,
                        quantize=None, *, from_pt=False, from_tf=False, from_flax=False, **config_overrides):
        """Load a checkpoint: config.json + model.safetensors (single or sharded), pytorch_model.bin,
        tf_model.h5, flax_model.msgpack or model.onnx (the first found, in that order: `weight_files`).

        from_tf=True / from_flax=True / from_pt=True read only that framework's file
        (tf_model.h5, flax_model.msgpack, the PyTorch files), as the reference's flags do.

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
        quantize="int8" quantizes the weights once, here (see __init__).
        config_overrides change config fields (e.g. num_labels=3); other keywords are a TypeError.
        """
        known = set(DistilBertConfig.field_names()) | set(DistilBertConfig.attribute_map)
        unknown = sorted(set(config_overrides) - known - {"extra"})
        if unknown:
            raise TypeError(
                f"{cls.__name__}.from_pretrained() got unexpected keyword argument(s) {', '.join(unknown)} "
                "(keywords other than backend, threads, fresh_head, seed, allow_nonfinite, quantize, from_pt, "
                "from_tf and from_flax must be config fields)"
            )
        chosen = [files for flag, files in ((from_pt, TORCH_WEIGHT_FILES), (from_tf, (TF_WEIGHTS_NAME,)),
                                            (from_flax, (FLAX_WEIGHTS_NAME,))) if flag]
        if len(chosen) > 1:
            raise ValueError("pass at most one of from_pt, from_tf and from_flax")
        if not Path(path).exists():
            from ..sources import resolve_model_dir

            path = resolve_model_dir(path)
        config, tensors = load_checkpoint(path, weight_files=chosen[0] if chosen else cls.weight_files,
                                         allow_nonfinite=allow_nonfinite)
        if config_overrides:
            config = config.replace(**config_overrides)
        params = cls._params_from_checkpoint(config, tensors, fresh_head, seed, str(path))
        if cls.head is not None and config.extra.get(UNTRAINED_HEAD_KEY) == cls.head:
            warnings.warn(f"{path} has an untrained {cls.head.replace('_', ' ')} head (random weights written by "
                          "`minidistil init`): its predictions mean nothing", stacklevel=2)
        return cls(config, params, backend=backend, threads=threads, quantize=quantize)

    @classmethod
    def _params_from_checkpoint(cls, config, tensors, fresh_head, seed, source):
        expected_head = schema.head_shapes(config, cls.head)
        own = set(expected_head)
        foreign = sorted(n for n in tensors if n in schema.head_tensor_names() and n not in own)
        tensors = {n: v for n, v in tensors.items() if n not in foreign}
        if expected_head:
            present = [n for n in expected_head if n in tensors]
            fits = all(_shape(tensors[n]) == tuple(expected_head[n]) for n in present)
            if not present or (fresh_head and not fits):
                if not fresh_head:
                    raise MissingHeadError(
                        f"{source} has no {cls.head.replace('_', ' ')} head for {cls.__name__} "
                        f"(missing {', '.join(expected_head)}); pass fresh_head=True to start one from "
                        "random (untrained) weights",
                        source=source, class_name=cls.__name__, head=cls.head,
                    )
                if present:
                    warnings.warn(
                        f"{source}: replacing the checkpoint's head, whose shapes do not fit the config, "
                        f"with a fresh one: {_describe((n, _shape(tensors[n])) for n in present)}",
                        stacklevel=3,
                    )
                else:  # as the reference warns: these weights are new, the model needs training
                    warnings.warn(f"{source}: the {cls.head.replace('_', ' ')} head of {cls.__name__} starts "
                                  "from random weights (fresh_head=True): untrained, its predictions mean nothing",
                                  stacklevel=3)
                tensors = {n: v for n, v in tensors.items() if n not in own}
                tensors.update(random_params(config, seed, cls.head, encoder=False))
        if foreign:  # said after the head check, so that a load that fails says only why it failed
            warnings.warn(
                f"{source}: dropping tensors of another DistilBERT head, unused by {cls.__name__}: {', '.join(foreign)}",
                stacklevel=3,
            )
        return cls._checked_params(config, tensors, source)

    def save_pretrained(self, directory):
        """Write config.json and model.safetensors that the reference loads into the same class."""
        directory = Path(directory)
        # TF* / Flax* save the plain class name, as transformers' TF and Flax classes do
        config = self.config.replace(architectures=[schema.CLASS_OF_HEAD[self.head]])
        save_checkpoint(directory, config, self.params, prefix_encoder=self.head is not None)
        return directory

    # ------------------------------------------------------------- forward
    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(self, input_ids=None, attention_mask=None, head_mask=None, inputs_embeds=None,
                output_attentions=False, output_hidden_states=False, return_dict=None, *, token_type_ids=None,
                adapter_names=None, hooks=None, return_numpy=None, **targets):
        """Run the model. Targets (labels, or start_positions and end_positions for QA) add the loss.

        head_mask (H,) or (L, H) scales each head's attention; token_type_ids: ignored (module
        docstring); adapter_names: a name, Stack or Parallel for this call (default: the active
        adapters; a Parallel's outputs hold each channel's batch in turn, C·B rows, as the
        reference's); hooks: your own encoder hooks (transformer.py), instead of adapters;
        return_numpy: see EncoderRunner.result; return_dict=False gives a tuple of the set fields
        in the reference's order (loss first when there is one), as transformers does.
        """
        unknown = sorted(set(targets) - set(self.targets))
        if unknown:
            accepted = ", ".join(self.targets) or "no targets"
            raise TypeError(f"{type(self).__name__}.forward() got unexpected keyword argument(s) "
                            f"{', '.join(unknown)} (it takes {accepted})")
        check_token_types(token_type_ids, input_ids, inputs_embeds)
        input_ids, attention_mask, inputs_embeds, choices = self._flatten(input_ids, attention_mask, inputs_embeds)
        inputs = check_inputs(self.config, input_ids, attention_mask, head_mask, inputs_embeds)
        last, hidden, attn = self._encode(inputs, output_hidden_states, output_attentions, hooks, adapter_names)
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

    def _encode(self, inputs, output_hidden_states, output_attentions, hooks, adapter_names):
        """The encoder's (last, hidden, attn), with the adapters of this call: a Parallel's channels stacked."""
        if self._adapter_set is None and adapter_names is None:
            return self.runner.run(inputs, output_hidden_states, output_attentions, hooks)
        setup = self.adapter_set.setup_for_call(adapter_names)
        if setup is not None and hooks is not None:
            raise ValueError("pass hooks or use adapters (adapter_names / set_active_adapters), not both")
        if setup is None:
            return self.runner.run(inputs, output_hidden_states, output_attentions, hooks, self.adapter_set.prepared())
        runs = self.adapter_set.run(inputs, setup, output_hidden_states, output_attentions)
        if len(runs) == 1:
            return runs[0]
        last, hidden, attn = zip(*runs)  # per channel
        return self._stack(last), _per_layer(self._stack, hidden), _per_layer(self._stack, attn)

    def _stack(self, arrays):
        """Channels' arrays one after the other on the batch axis (through the host: Parallel is rare)."""
        return self.ops.asarray(np.concatenate([self.runner.host(x) for x in arrays]))

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
            f"vocab_size={c.vocab_size}, backend={self.ops.name!r}"
            + (f", quantize={self.runner.quantize!r})" if self.runner.quantize else ")")
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

    def get_output_embeddings(self):
        """The vocabulary projection (vocab_size, dim), read-only: the word embeddings themselves when tied."""
        return _read_only(self.params[schema.projector_name(self.config)])

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
        return {"logits": logits.reshape(-1, choices[1])}  # (B, C); (channels·B, C) under a Parallel

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


def _per_layer(stack, channels):
    """[stack(layer i of every channel) for each layer], or None when the states were not asked for."""
    return None if channels[0] is None else [stack(layer) for layer in zip(*channels)]


def _read_only(array):
    view = array.view()
    view.flags.writeable = False
    return view


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
