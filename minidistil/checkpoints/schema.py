"""The one owner of DistilBERT's parameter names and shapes.

Parameters keep the names of the reference's DistilBertModel state dict (the bare layout):

    embeddings.word_embeddings.weight           (V, D)
    embeddings.position_embeddings.weight       (P, D)   P = max_position_embeddings
    embeddings.LayerNorm.{weight,bias}          (D,)
    transformer.layer.{i}.attention.{q,k,v,out}_lin.weight (D, D), .bias (D,)     Linear weights are [out, in]
    transformer.layer.{i}.sa_layer_norm.{weight,bias}      (D,)
    transformer.layer.{i}.ffn.lin1.weight (F, D), .bias (F,);  ffn.lin2.weight (D, F), .bias (D,)
    transformer.layer.{i}.output_layer_norm.{weight,bias}  (D,)

and the task heads' tensors bare (`classifier.weight`, `qa_outputs.bias`, ...). The task classes save the
encoder under "distilbert."; readers strip it, writers put it back (`saved_name`).

The tie rule, in one place: with config.tie_word_embeddings (the default) the MLM head's projection
*is* the word embedding matrix. Its tensor name `vocab_projector.weight` then never appears among a
model's parameters: `head_shapes` leaves it out, the loader drops a stored copy after checking its shape
(transformers 4.57 ignores that copy too), and the writer has nothing to skip. `projector_name(config)`
says which tensor the head multiplies by.

    >>> sorted(head_shapes(DistilBertConfig(dim=8, n_heads=2, hidden_dim=16, num_labels=3), "token_classification"))
    ['classifier.bias', 'classifier.weight']
    >>> layer_key(2, "lin1", "bias")
    'transformer.layer.2.ffn.lin1.bias'
"""

from __future__ import annotations

from typing import Iterable, Mapping, NamedTuple

import numpy as np

from ..errors import CheckpointError
from ..modeling.config import DistilBertConfig

WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
POSITION_EMBEDDINGS = "embeddings.position_embeddings.weight"
EMBEDDINGS_NORM = "embeddings.LayerNorm"
TIED_PROJECTOR = "vocab_projector.weight"

ENCODER_PREFIX = "distilbert."  # how the task classes store the encoder
ENCODER_ROOTS = ("embeddings.", "transformer.")
DROPPED_BUFFERS = ("embeddings.position_ids",)  # a buffer some files carry; the model recomputes it

# Modules of one transformer layer: the short name the forward pass and hooks use -> the path in the layer.
LAYER_MODULES = {
    "q_lin": "attention.q_lin",
    "k_lin": "attention.k_lin",
    "v_lin": "attention.v_lin",
    "out_lin": "attention.out_lin",
    "sa_layer_norm": "sa_layer_norm",
    "lin1": "ffn.lin1",
    "lin2": "ffn.lin2",
    "output_layer_norm": "output_layer_norm",
}
LINEAR_NAMES = ("q_lin", "k_lin", "v_lin", "out_lin", "lin1", "lin2")
RESIDUAL_NAMES = ("sa_layer_norm", "output_layer_norm")

HEADS = ("masked_lm", "sequence_classification", "multiple_choice", "token_classification", "question_answering")
HEAD_OF_CLASS = {
    "DistilBertModel": None,
    "DistilBertForMaskedLM": "masked_lm",
    "DistilBertForSequenceClassification": "sequence_classification",
    "DistilBertForMultipleChoice": "multiple_choice",
    "DistilBertForTokenClassification": "token_classification",
    "DistilBertForQuestionAnswering": "question_answering",
}
CLASS_OF_HEAD = {head: cls for cls, head in HEAD_OF_CLASS.items()}


def layer_key(layer: int, module: str, param: str) -> str:
    """The checkpoint name of one tensor of a transformer layer (module: a key of LAYER_MODULES)."""
    return f"transformer.layer.{layer}.{LAYER_MODULES[module]}.{param}"


class Layer(NamedTuple):
    """One transformer layer's weights: `layer["q_lin"]` is (weight, bias); `layer.index` its position."""

    index: int
    modules: Mapping[str, tuple]

    def __getitem__(self, module):
        return self.modules[module]


def layers(params: Mapping, n_layers: int) -> list[Layer]:
    """Per-layer views of a flat {name: array} (no copies): what the forward pass walks."""
    return [
        Layer(i, {m: (params[layer_key(i, m, "weight")], params[layer_key(i, m, "bias")]) for m in LAYER_MODULES})
        for i in range(n_layers)
    ]


def encoder_shapes(config: DistilBertConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of DistilBertModel and its shape."""
    d, f = config.dim, config.hidden_dim
    shapes = {
        WORD_EMBEDDINGS: (config.vocab_size, d),
        # Present in the reference's state dict even with sinusoidal_pos_embds (filled with the sinusoids).
        POSITION_EMBEDDINGS: (config.max_position_embeddings, d),
        f"{EMBEDDINGS_NORM}.weight": (d,),
        f"{EMBEDDINGS_NORM}.bias": (d,),
    }
    linear_out_in = {"q_lin": (d, d), "k_lin": (d, d), "v_lin": (d, d), "out_lin": (d, d), "lin1": (f, d), "lin2": (d, f)}
    for i in range(config.n_layers):
        for module in LAYER_MODULES:
            out_in = linear_out_in.get(module, (d,))  # LayerNorms: weight and bias (D,)
            shapes[layer_key(i, module, "weight")] = out_in
            shapes[layer_key(i, module, "bias")] = out_in[:1]
    return shapes


def head_shapes(config: DistilBertConfig, head: str | None) -> dict[str, tuple[int, ...]]:
    """The parameters of one task head (None: no head). head: a name of HEADS or a class name.

    A tied MLM projection is not a parameter of its own (see the module docstring).
    """
    head = head_name(head)
    d, n = config.dim, config.num_labels
    if head is None:
        return {}
    if head == "masked_lm":
        shapes = {
            "vocab_transform.weight": (d, d),
            "vocab_transform.bias": (d,),
            "vocab_layer_norm.weight": (d,),
            "vocab_layer_norm.bias": (d,),
            TIED_PROJECTOR: (config.vocab_size, d),
            "vocab_projector.bias": (config.vocab_size,),
        }
        if config.tie_word_embeddings:
            del shapes[TIED_PROJECTOR]
        return shapes
    if head in ("sequence_classification", "multiple_choice"):
        out = 1 if head == "multiple_choice" else n
        return {"pre_classifier.weight": (d, d), "pre_classifier.bias": (d,), "classifier.weight": (out, d), "classifier.bias": (out,)}
    if head == "token_classification":
        return {"classifier.weight": (n, d), "classifier.bias": (n,)}
    return {"qa_outputs.weight": (n, d), "qa_outputs.bias": (n,)}  # question_answering: n must be 2


def expected_shapes(config: DistilBertConfig, head: str | None = None) -> dict[str, tuple[int, ...]]:
    """Encoder tensors plus those of `head` (None: the bare DistilBertModel)."""
    return {**encoder_shapes(config), **head_shapes(config, head)}


def projector_name(config: DistilBertConfig) -> str:
    """The tensor the MLM head projects onto the vocabulary with: the word embeddings when tied."""
    return WORD_EMBEDDINGS if config.tie_word_embeddings else TIED_PROJECTOR


HEAD_LINEARS = {  # the weights [Out, In] each head multiplies by (the MLM projector: see projector_name)
    "masked_lm": ("vocab_transform.weight",),
    "sequence_classification": ("pre_classifier.weight", "classifier.weight"),
    "multiple_choice": ("pre_classifier.weight", "classifier.weight"),
    "token_classification": ("classifier.weight",),
    "question_answering": ("qa_outputs.weight",),
}


def linear_weights(config: DistilBertConfig, head: str | None) -> list[str]:
    """The weights [Out, In] that a model with `head` uses only as linears: every layer's six, then the head's.

    With a tied MLM head this includes the word embeddings, the projector's weight (they are
    then read by the embedding lookup too).
    """
    names = [layer_key(i, module, "weight") for i in range(config.n_layers) for module in LINEAR_NAMES]
    head = head_name(head)
    if head is not None:
        names += HEAD_LINEARS[head]
    if head == "masked_lm":
        names.append(projector_name(config))
    return names


def head_tensor_names() -> frozenset[str]:
    """Every tensor name of every head (a tied projector included): what a model of another head may drop."""
    config = DistilBertConfig(vocab_size=2, max_position_embeddings=1, n_layers=1, n_heads=1, dim=1, hidden_dim=1,
                              tie_word_embeddings=False)
    return frozenset(name for head in HEADS for name in head_shapes(config, head))


def head_name(head):
    """A name of HEADS (or None) from a head or class name."""
    if head in HEAD_OF_CLASS:
        return HEAD_OF_CLASS[head]
    if head is None or head in HEADS:
        return head
    raise ValueError(f"unknown head {head!r}: expected one of {', '.join(HEADS)} or a DistilBert class name")


def saved_name(name: str, prefix_encoder: bool) -> str:
    """The name a tensor is written under: the task classes keep the encoder under "distilbert."."""
    return ENCODER_PREFIX + name if prefix_encoder and name.startswith(ENCODER_ROOTS) else name


def bare_names(state: Mapping[str, np.ndarray], source="checkpoint") -> dict[str, np.ndarray]:
    """Strip the "distilbert." prefix of task-class files and drop non-parameter buffers."""
    out = {}
    for name, value in state.items():
        key = name[len(ENCODER_PREFIX):] if name.startswith(ENCODER_PREFIX) else name
        if key in DROPPED_BUFFERS:
            continue
        if key in out:
            raise CheckpointError(f"{source}: tensor {key!r} appears both with and without the {ENCODER_PREFIX!r} prefix")
        out[key] = value
    return out


def drop_tied_copy(state: dict, config: DistilBertConfig, source) -> dict:
    """Remove a stored copy of a tied projector after checking its shape (the reference ignores it)."""
    if config.tie_word_embeddings and TIED_PROJECTOR in state:
        check_tensors({TIED_PROJECTOR: state.pop(TIED_PROJECTOR)}, {TIED_PROJECTOR: (config.vocab_size, config.dim)}, source)
    return state


def check_tensors(
    state: Mapping[str, np.ndarray],
    expected: Mapping[str, tuple[int, ...]],
    source,
    *,
    ignore: Iterable[str] = (),
    allow_missing: Iterable[str] = (),
) -> dict[str, np.ndarray]:
    """Check `state` against `expected` {name: shape}; return the expected tensors (in expected's order).

    Missing, unexpected and mis-shaped tensors are all listed, with names and shapes, in one
    CheckpointError. Names in `ignore` may be present without being expected; names in
    `allow_missing` may be absent (the caller then supplies them).
    """
    ignore, allow_missing = set(ignore), set(allow_missing)
    missing = [n for n in expected if n not in state and n not in allow_missing]
    unexpected = sorted(n for n in state if n not in expected and n not in ignore)
    wrong = [n for n in expected if n in state and tuple(np.shape(state[n])) != tuple(expected[n])]
    if missing or unexpected or wrong:
        lines = [f"{source}: checkpoint does not match the model"]
        if missing:
            lines.append(f"  missing {len(missing)} tensor(s):")
            lines += [f"    {n} {fmt_shape(expected[n])}" for n in missing]
        if wrong:
            lines.append(f"  {len(wrong)} tensor(s) with the wrong shape (expected vs got):")
            lines += [f"    {n}: expected {fmt_shape(expected[n])}, got {fmt_shape(np.shape(state[n]))}" for n in wrong]
        if unexpected:
            lines.append(f"  {len(unexpected)} unexpected tensor(s):")
            lines += [f"    {n} {fmt_shape(np.shape(state[n]))}" for n in unexpected]
        raise CheckpointError("\n".join(lines))
    return {n: state[n] for n in expected if n in state}


def fmt_shape(shape) -> str:
    return str(tuple(int(d) for d in shape))
