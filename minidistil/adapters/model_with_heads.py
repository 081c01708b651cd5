"""DistilBertModelWithHeads: one encoder, many adapters, many named heads.

    model = DistilBertModelWithHeads.from_pretrained("distilbert-base-uncased/")
    name = model.load_adapter("adapters/sst2")          # adapter_config.json + weights (+ head beside)
    model.set_active_adapters(name)                     # also makes the head of that name active
    out = model(input_ids=ids, attention_mask=mask)     # out.logits from head "sst2"
    out = model(input_ids=ids, adapter_names=Stack("lang", "task"), head="task")   # per call

Semantics follow the reference library (`adapters` 1.3, DistilBertAdapterModel):
adapters plug into every layer through the encoder's hooks (adapter_set.py, shared with the
plain classes), and heads run on the encoder's output.
"""

import copy

import numpy as np

from ..checkpoints import schema
from ..checkpoints.loading import load_checkpoint
from ..modeling import losses
from ..modeling.classes import DistilBertModel
from ..modeling.inputs import check_inputs, check_token_types, flatten_choices
from ..modeling.outputs import BaseModelOutput
from ..modeling.runner import EncoderRunner
from .adapter_set import AdapterSet
from .composition import Parallel, heads_from_setup
from .configs import ACCEPTED_MODEL_CLASSES, MODEL_TYPE
from .errors import AdapterError
from .files import HEAD_CONFIG, HEAD_WEIGHTS, check_directory, read_json, read_weights
from .flex_heads import LM_HEADS, FlexHead, MultiHeadOutput

# static task classes of a base checkpoint -> the flex head the reference makes of them ("default")
STATIC_HEADS = {
    "DistilBertForSequenceClassification": (
        dict(head_type="classification", layers=2, activation_function="relu"),
        {"pre_classifier": 1, "classifier": 4},
    ),
    "DistilBertForMultipleChoice": (
        dict(head_type="multiple_choice", layers=2, activation_function="relu"),
        {"pre_classifier": 1, "classifier": 4},
    ),
    "DistilBertForTokenClassification": (
        dict(head_type="tagging", layers=1, activation_function=None),
        {"classifier": 1},
    ),
    "DistilBertForQuestionAnswering": (
        dict(head_type="question_answering", layers=1, activation_function=None),
        {"qa_outputs": 1},
    ),
    "DistilBertForMaskedLM": (
        dict(head_type="masked_lm", layers=2, activation_function="gelu", layer_norm=True, bias=True),
        {"vocab_transform": 0, "vocab_layer_norm": 2, "vocab_projector": 3},
    ),
}


class DistilBertModelWithHeads:
    """DistilBERT with named adapters and named prediction heads, chosen per call or made active."""

    def __init__(self, config, params, *, backend=None, threads=None):
        """An encoder from `config` and bare encoder `params` ({name: array}); no adapters, no heads yet."""
        params = DistilBertModel._checked_params(config, schema.bare_names(params, source="params"))
        self.runner = EncoderRunner(config, params, backend=backend, threads=threads)
        self.config = config
        self.ops = self.runner.ops
        self.adapter_set = AdapterSet(self.runner)
        self.heads = {}  # name -> FlexHead
        self._active_heads = []

    # ---------------------------------------------------------------- loading
    @classmethod
    def from_pretrained(cls, path, backend=None, threads=None, allow_nonfinite=False):
        """A plain DistilBERT checkpoint directory (any layout the checkpoint loader reads).

        A NaN or infinite weight is a CheckpointError naming the tensor, unless allow_nonfinite=True.

        A task checkpoint's head (DistilBertForSequenceClassification, ...) becomes a flex head
        named "default" and is made active, as the reference's DistilBertAdapterModel does.
        """
        config, state = load_checkpoint(path, allow_nonfinite=allow_nonfinite)
        encoder = schema.encoder_shapes(config)
        params = {n: v for n, v in state.items() if n in encoder}
        rest = {n: v for n, v in state.items() if n not in encoder}
        model = cls(config, params, backend=backend, threads=threads)
        architecture = (config.architectures or [None])[0]
        if architecture in STATIC_HEADS and rest:
            model._add_static_head(architecture, rest, str(path))
        return model

    def _add_static_head(self, architecture, tensors, source):
        head_config, renames = STATIC_HEADS[architecture]
        head_config = dict(head_config)
        local = {}
        for name, value in tensors.items():
            module, _, param = name.partition(".")
            if module in renames:
                local[f"{renames[module]}.{param}"] = value
        if not local:
            return
        label2id = self.config.label2id or {f"LABEL_{i}": i for i in range(2)}
        if head_config["head_type"] == "multiple_choice":
            head_config["num_choices"] = len(label2id)
        elif head_config["head_type"] not in LM_HEADS:
            head_config["num_labels"] = self.config.num_labels or len(label2id)
        if head_config["head_type"] not in LM_HEADS:
            head_config["label2id"] = dict(label2id)
        self._add_head(FlexHead("default", head_config, local, source, self.config), set_active=True)

    def load_adapter(self, path, load_as=None, with_head=True, set_active=False):
        """Load an adapter the reference saved (save_adapter) from a directory; returns its name.

        Reads adapter_config.json and adapter.safetensors or pytorch_adapter.bin; with_head also
        loads a head saved beside it (head_config.json), under the same name as load_as when given.
        set_active: make it the active adapter setup (and its head, if any, the active head).
        """
        name = self.adapter_set.load(path, load_as)
        directory = check_directory(path, "adapter")
        if with_head and (directory / HEAD_CONFIG).is_file():
            self.load_head(directory, load_as=load_as, set_active=set_active)
        if set_active:
            self.set_active_adapters(name)
        return name

    def load_head(self, path, load_as=None, set_active=True):
        """Load a prediction head the reference saved (save_head); returns its name. Made active by default."""
        directory = check_directory(path, "head")
        source = str(directory)
        data = read_json(directory / HEAD_CONFIG, "head config")
        model_type = data.get("model_type")
        if model_type is not None and model_type != MODEL_TYPE:
            raise AdapterError(f"{source}: head was saved for model type {model_type!r}, this model is {MODEL_TYPE!r}")
        hidden = data.get("hidden_size")
        if hidden is not None and hidden != self.config.dim:
            raise AdapterError(
                f"{source}: head was saved for hidden size {hidden}, this model has hidden size {self.config.dim}"
            )
        model_class = data.get("model_class")
        if model_class is not None and model_class not in ACCEPTED_MODEL_CLASSES and not (
            model_class.startswith("DistilBert") and model_class.endswith("ModelWithHeads")
        ):
            raise AdapterError(
                f"{source}: head of model class {model_class!r} cannot be loaded as a flex head "
                f"(expected one of {', '.join(ACCEPTED_MODEL_CLASSES)})"
            )
        saved_name = data.get("name")
        if not isinstance(saved_name, str) or not saved_name:
            raise AdapterError(f"{source}: head_config.json has no head name ('name')")
        weights, state = read_weights(directory, HEAD_WEIGHTS, "head weights")
        prefix = f"heads.{saved_name}."
        local = {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}
        if not local:
            raise AdapterError(f"{source}: {weights.name} holds no weights for head {saved_name!r}")
        name = load_as or saved_name
        head = FlexHead(name, copy.deepcopy(data.get("config")), local, source, self.config, prefix=prefix)
        self._add_head(head, set_active)
        return name

    def _add_head(self, head, set_active):
        head.prepare(self.ops)
        self.heads[head.name] = head
        if head.tied_projection is not None and self.config.tie_word_embeddings:
            # The reference ties the projection to the word embeddings, so loading the head's
            # weight overwrites the embeddings the encoder reads too.
            self._set_word_embeddings(head.tied_projection)
        if set_active:
            self.active_head = head.name

    def _set_word_embeddings(self, weight):
        weight = np.ascontiguousarray(weight, dtype=np.float32)
        current = self.params[schema.WORD_EMBEDDINGS]
        if current.shape == weight.shape and np.array_equal(current, weight):
            return
        self.runner.replace_params({**self.params, schema.WORD_EMBEDDINGS: weight})  # a merged LoRA follows

    @property
    def adapters(self):
        """{name: LoadedAdapter} of the adapters loaded."""
        return self.adapter_set.adapters

    def delete_adapter(self, name):
        self.adapter_set.delete(name)

    def delete_head(self, name):
        self._check_head(name)
        del self.heads[name]
        self._active_heads = [h for h in self._active_heads if h != name]

    # ---------------------------------------------------------------- what is active
    def _check_head(self, name):
        if not isinstance(name, str) or name not in self.heads:
            loaded = ", ".join(sorted(self.heads)) or "none"
            raise AdapterError(f"unknown head {name!r}; loaded heads: {loaded}")

    def set_active_adapters(self, setup):
        """Adapters used by default: a name, Stack(...), Parallel(...), or None for none.

        As in the reference, the head named after the (last) adapter becomes the active head
        when it exists (one head per child for Parallel).
        """
        heads = heads_from_setup(self.adapter_set.set_active(setup))
        if isinstance(heads, str):
            heads = [heads]
        if heads and all(h in self.heads for h in heads):
            self._active_heads = list(heads)

    @property
    def active_adapters(self):
        return self.adapter_set.active

    @property
    def active_head(self):
        """The active head's name (a list for several heads), or None."""
        if not self._active_heads:
            return None
        return self._active_heads[0] if len(self._active_heads) == 1 else list(self._active_heads)

    @active_head.setter
    def active_head(self, value):
        if value is None:
            self._active_heads = []
            return
        names = [value] if isinstance(value, str) else list(value)
        for name in names:
            self._check_head(name)
        self._active_heads = names

    def get_labels_dict(self, head=None):
        """id2label of a head (the active one by default), or None when the head has no labels."""
        head = head or self.active_head
        if head is None:
            raise AdapterError("no head given and no active head")
        self._check_head(head)
        labels = self.heads[head].id2label
        return None if labels is None else dict(labels)

    def get_labels(self, head=None):
        labels = self.get_labels_dict(head)
        return None if labels is None else list(labels.values())

    # ---------------------------------------------------------------- merged LoRA
    def merge_adapter(self, name):
        """Fold a LoRA / (IA)^3 adapter into the encoder's weights (see AdapterSet.merge)."""
        self.adapter_set.merge(name)

    def reset_adapter(self):
        """Undo merge_adapter."""
        self.adapter_set.reset()

    # ---------------------------------------------------------------- forward
    def _used_heads(self, setup, adapter_names, head):
        if head is not None:
            names = [head] if isinstance(head, str) else list(head)
            for name in names:
                self._check_head(name)
            return names
        if adapter_names is not None and setup is not None and self.heads:
            named = heads_from_setup(setup)
            named = [named] if isinstance(named, str) else named
            if all(h in self.heads for h in named):
                return named
        return list(self._active_heads)

    def __call__(self, *args, **kwargs):
        return self.forward(*args, **kwargs)

    def forward(
        self,
        input_ids=None,
        attention_mask=None,
        head_mask=None,
        inputs_embeds=None,
        output_attentions=False,
        output_hidden_states=False,
        adapter_names=None,
        head=None,
        labels=None,
        start_positions=None,
        end_positions=None,
        token_type_ids=None,
    ):
        """Run the encoder with the adapter setup and head(s); outputs as NumPy in a ModelOutput.

        adapter_names: a name, Stack or Parallel for this call (default: the active setup).
        head: a head name (or list of names) for this call (default: the head named after the
        last adapter of adapter_names when it exists, else the active head). With no head the
        output is the encoder's (last_hidden_state ...). input_ids of shape (batch, choices, seq)
        are flattened to (batch * choices, seq), as the reference does for multiple choice.
        labels / start_positions / end_positions add the head's loss, as the reference computes it.
        token_type_ids: accepted and ignored (DistilBERT has no segment embeddings).
        """
        check_token_types(token_type_ids, input_ids, inputs_embeds)
        setup = self.adapter_set.setup_for_call(adapter_names)
        heads = self._used_heads(setup, adapter_names, head)
        inputs = check_inputs(self.config, *_flatten_choices(input_ids, attention_mask, inputs_embeds, head_mask))
        mask = inputs[1]
        word_embeddings = self.adapter_set.prepared()[schema.WORD_EMBEDDINGS]
        targets = dict(labels=labels, start_positions=start_positions, end_positions=end_positions)
        runs = [
            (last, self.runner.results(hidden, True), self.runner.results(attn, True))
            for last, hidden, attn in self.adapter_set.run(inputs, setup, output_hidden_states, output_attentions)
        ]

        if isinstance(setup, Parallel):
            if not heads:
                last = np.concatenate([self.runner.host(r[0]) for r in runs], axis=0)
                return BaseModelOutput(last_hidden_state=last)
            if len(heads) == 1:
                heads = heads * len(runs)
            if len(heads) != len(runs):
                raise AdapterError(
                    f"{setup!r} has {len(runs)} parallel channels but {len(heads)} heads were given: {heads}"
                )
            outs = [self._head(h, run, word_embeddings, mask, targets) for h, run in zip(heads, runs)]
            return _multi(outs)
        run = runs[0]
        if not heads:
            return BaseModelOutput(last_hidden_state=self.runner.host(run[0]), hidden_states=run[1], attentions=run[2])
        if len(heads) == 1:
            return self._head(heads[0], run, word_embeddings, mask, targets)
        return _multi([self._head(h, run, word_embeddings, mask, targets) for h in heads])

    def _head(self, name, run, word_embeddings, mask, targets):
        head = self.heads[name]
        last, hidden, attn = run
        out = head.forward(self.ops, last, word_embeddings, hidden_states=hidden, attentions=attn)
        loss = _loss(head, out, mask, **targets)
        if loss is not None:
            out.loss = loss
            out.move_to_end("loss", last=False)
        return out

    @property
    def params(self):
        """Host float32 encoder weights, bare names."""
        return self.runner.params

    def __repr__(self):
        c = self.config
        return (
            f"DistilBertModelWithHeads(dim={c.dim}, n_layers={c.n_layers}, adapters={sorted(self.adapters)}, "
            f"heads={sorted(self.heads)}, active_adapters={self.active_adapters!r}, active_head={self.active_head!r})"
        )


def _multi(outputs):
    losses_ = [o.loss for o in outputs]
    total = None if any(l is None for l in losses_) else np.asarray(sum(float(l) for l in losses_), dtype=np.float32)
    return MultiHeadOutput(head_outputs=outputs, loss=total)


def _flatten_choices(input_ids, attention_mask, inputs_embeds, head_mask):
    """As the reference's flex model: inputs with a choices axis (B, C, S) run as (B·C, S) rows."""
    ids = None if input_ids is None else np.asarray(input_ids)
    embeds = None if inputs_embeds is None else np.asarray(inputs_embeds)
    if (ids is not None and ids.ndim == 3) or (ids is None and embeds is not None and embeds.ndim == 4):
        ids, attention_mask, embeds, _ = flatten_choices(ids, attention_mask, embeds)
    return ids, attention_mask, head_mask, embeds


def _loss(head, out, mask, labels=None, start_positions=None, end_positions=None):
    """The reference flex heads' losses (None without targets)."""
    t = head.head_type
    if t == "question_answering":
        if start_positions is None or end_positions is None:
            return None
        return losses.span_loss(out.start_logits, out.end_logits, start_positions, end_positions)
    if labels is None:
        return None
    logits = out.logits
    if t == "classification":
        kind = "regression" if head.num_outputs == 1 else "single_label_classification"
        return losses.sequence_loss(logits, labels, kind)
    if t == "multilabel_classification":
        return losses.sequence_loss(logits, labels, "multi_label_classification")
    if t == "multiple_choice":
        return losses.choice_loss(logits, labels)
    if t == "tagging":
        return losses.token_loss(logits, labels, attention_mask=mask)
    if t == "masked_lm":
        return losses.token_loss(logits, labels)
    # causal_lm: shift so that position i predicts token i + 1
    labels = np.asarray(labels)
    return losses.token_loss(logits[..., :-1, :], labels[..., 1:])
