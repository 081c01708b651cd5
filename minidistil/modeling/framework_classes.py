"""TFDistilBert* and FlaxDistilBert*: the NumPy classes under the names TensorFlow and JAX users know.

    model = TFDistilBertModel.from_pretrained("path")      # tf_model.h5 first; no TensorFlow needed
    encoded = tokenizer(text, return_tensors="np")
    out = model(encoded)                                   # the TF call style: the encoding as one dict
    out.last_hidden_state                                  # also out["last_hidden_state"], out[0]

    model = FlaxDistilBertForMaskedLM.from_pretrained("path")   # flax_model.msgpack first; no JAX needed
    out = model(**encoded, train=False)
    out.logits

Each is the plain class of modeling/classes.py (same forward pass, same output fields, adapters,
embeddings) with two differences:
  - from_pretrained looks for its framework's weights file first (then the others, in the usual
    order); from_pt=True reads only the PyTorch files, as the reference's flag does;
  - calls take the framework's arguments: TF `model(inputs_dict)` and `training=False`; Flax
    `train=False`, `dropout_rng` (ignored: there is no dropout at inference) and `params=None`,
    in Flax's positional order (input_ids, attention_mask, head_mask, params, ...).
Not reproduced, and refused rather than answered differently: training (`training=True` /
`train=True`), other weights per call (`params=`), and losses (TF returns unreduced per-example
losses and Flax none; use the DistilBertFor* class for the reference's PyTorch loss).
save_pretrained writes model.safetensors with the plain class name in config.json, as
transformers' TF and Flax classes also write "DistilBertFor...".
"""

from collections.abc import Mapping

from ..checkpoints.loading import FLAX_WEIGHTS_NAME, TF_WEIGHTS_NAME, WEIGHT_FILES
from ..checkpoints.schema import CLASS_OF_HEAD
from .classes import (
    DistilBertForMaskedLM,
    DistilBertForMultipleChoice,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    DistilBertModel,
)

TARGETS = ("labels", "start_positions", "end_positions")


def _first(name):
    """WEIGHT_FILES with `name` moved to the front."""
    return (name,) + tuple(n for n in WEIGHT_FILES if n != name)


def _refuse(flag, value, why):
    if value:
        raise ValueError(f"{flag}: {why}")


def _refuse_targets(cls, kwargs):
    given = [k for k in TARGETS if kwargs.get(k) is not None]
    if given:
        raise TypeError(
            f"{cls.__name__} computes no loss (got {', '.join(given)}): TensorFlow's per-example loss shapes "
            f"and Flax's absent loss are not reproduced; use {CLASS_OF_HEAD[cls.head]} for the reference's loss"
        )


class TFCallStyle:
    """TensorFlow's loading order and call style on a plain class (mixed in before it)."""

    weight_files = _first(TF_WEIGHTS_NAME)

    def __call__(self, input_ids=None, *args, training=False, **kwargs):
        """model(inputs) with inputs a dict (a BatchEncoding) or input_ids; keywords as the plain class's forward."""
        _refuse(f"training={training!r}", training, "minidistil runs inference only (there is no dropout)")
        if isinstance(input_ids, Mapping):
            given = dict(input_ids)
            both = sorted(set(given) & set(kwargs))
            if both:
                raise TypeError(f"{type(self).__name__}: {', '.join(both)} given both in the inputs dict and as keywords")
            kwargs = {**given, **kwargs}
            input_ids = kwargs.pop("input_ids", None)
        _refuse_targets(type(self), kwargs)
        return self.forward(input_ids, *args, **kwargs)


class FlaxCallStyle:
    """Flax's loading order and call signature on a plain class (mixed in before it)."""

    weight_files = _first(FLAX_WEIGHTS_NAME)

    def __call__(self, input_ids=None, attention_mask=None, head_mask=None, params=None, dropout_rng=None,
                 train=False, output_attentions=None, output_hidden_states=None, return_dict=None, **kwargs):
        """Flax's arguments, in Flax's order; other keywords (token_type_ids, adapter_names, ...) as forward's."""
        _refuse(f"train={train!r}", train, "minidistil runs inference only (there is no dropout)")
        _refuse("params=", params is not None, "a model runs its own weights; load others with from_pretrained")
        _refuse_targets(type(self), kwargs)
        return self.forward(input_ids, attention_mask, head_mask, output_attentions=bool(output_attentions),
                            output_hidden_states=bool(output_hidden_states), return_dict=return_dict, **kwargs)


class TFDistilBertModel(TFCallStyle, DistilBertModel):
    """DistilBertModel under TensorFlow's name."""


class TFDistilBertForMaskedLM(TFCallStyle, DistilBertForMaskedLM):
    """DistilBertForMaskedLM under TensorFlow's name."""


class TFDistilBertForSequenceClassification(TFCallStyle, DistilBertForSequenceClassification):
    """DistilBertForSequenceClassification under TensorFlow's name."""


class TFDistilBertForMultipleChoice(TFCallStyle, DistilBertForMultipleChoice):
    """DistilBertForMultipleChoice under TensorFlow's name."""


class TFDistilBertForTokenClassification(TFCallStyle, DistilBertForTokenClassification):
    """DistilBertForTokenClassification under TensorFlow's name."""


class TFDistilBertForQuestionAnswering(TFCallStyle, DistilBertForQuestionAnswering):
    """DistilBertForQuestionAnswering under TensorFlow's name."""


class FlaxDistilBertModel(FlaxCallStyle, DistilBertModel):
    """DistilBertModel under Flax's name."""


class FlaxDistilBertForMaskedLM(FlaxCallStyle, DistilBertForMaskedLM):
    """DistilBertForMaskedLM under Flax's name."""


class FlaxDistilBertForSequenceClassification(FlaxCallStyle, DistilBertForSequenceClassification):
    """DistilBertForSequenceClassification under Flax's name."""


class FlaxDistilBertForMultipleChoice(FlaxCallStyle, DistilBertForMultipleChoice):
    """DistilBertForMultipleChoice under Flax's name."""


class FlaxDistilBertForTokenClassification(FlaxCallStyle, DistilBertForTokenClassification):
    """DistilBertForTokenClassification under Flax's name."""


class FlaxDistilBertForQuestionAnswering(FlaxCallStyle, DistilBertForQuestionAnswering):
    """DistilBertForQuestionAnswering under Flax's name."""


FRAMEWORK_CLASSES = {
    cls.__name__: cls
    for cls in (
        TFDistilBertModel, TFDistilBertForMaskedLM, TFDistilBertForSequenceClassification,
        TFDistilBertForMultipleChoice, TFDistilBertForTokenClassification, TFDistilBertForQuestionAnswering,
        FlaxDistilBertModel, FlaxDistilBertForMaskedLM, FlaxDistilBertForSequenceClassification,
        FlaxDistilBertForMultipleChoice, FlaxDistilBertForTokenClassification, FlaxDistilBertForQuestionAnswering,
    )
}
