"""BERT-layout checkpoints as the equivalent DistilBERT (config and tensor names).

    config = bert_config_to_distilbert(json.load(open("minilm/config.json")))
    state = convert_bert_state(read_safetensors("minilm/model.safetensors"), config)

A BERT encoder with absolute positions, LayerNorm epsilon 1e-12 and single-segment input is the
same function as a DistilBERT encoder with the token-type-0 embedding folded into the positions
(see `convert_bert_state`). The pooler and the next-sentence head have no DistilBERT counterpart.
"""

from __future__ import annotations

import re
from typing import Mapping

import numpy as np

from ..errors import CheckpointError, ConfigError
from ..modeling.config import ACTIVATIONS, LAYER_NORM_EPS, DistilBertConfig
from .schema import DROPPED_BUFFERS, POSITION_EMBEDDINGS, fmt_shape, layer_key

BERT_CONFIG_MAP = {
    "hidden_size": "dim",
    "num_hidden_layers": "n_layers",
    "num_attention_heads": "n_heads",
    "intermediate_size": "hidden_dim",
    "hidden_act": "activation",
    "hidden_dropout_prob": "dropout",
    "attention_probs_dropout_prob": "attention_dropout",
}
_BERT_SAME_KEYS = (
    "vocab_size", "max_position_embeddings", "pad_token_id", "bos_token_id", "eos_token_id", "initializer_range",
    "tie_word_embeddings", "id2label", "label2id", "num_labels", "_num_labels", "problem_type",
)
# BERT settings that are consumed by the conversion (checked or irrelevant to DistilBERT), not carried over.
_BERT_CONSUMED = (
    "model_type", "architectures", "layer_norm_eps", "type_vocab_size", "position_embedding_type", "is_decoder",
    "add_cross_attention", "use_cache", "classifier_dropout", "gradient_checkpointing", "chunk_size_feed_forward",
)
_BERT_ARCHITECTURES = {
    "BertModel": "DistilBertModel",
    "BertForMaskedLM": "DistilBertForMaskedLM",
    "BertForPreTraining": "DistilBertForMaskedLM",  # its next-sentence head is dropped
    "BertForTokenClassification": "DistilBertForTokenClassification",
    "BertForQuestionAnswering": "DistilBertForQuestionAnswering",
}
_BERT_POOLER_HEADS = ("BertForSequenceClassification", "BertForMultipleChoice", "BertForNextSentencePrediction")


def bert_config_to_distilbert(data: Mapping, source="config.json") -> DistilBertConfig:
    """The DistilBertConfig equivalent to a BERT config.json dict.

    hidden_size -> dim, num_hidden_layers -> n_layers, num_attention_heads ->
    n_heads, intermediate_size -> hidden_dim, hidden_act -> activation, the
    dropouts, and vocab_size / max_position_embeddings / pad_token_id / labels
    as they are. BERT's layer_norm_eps must be 1e-12: DistilBERT's LayerNorm
    epsilon is fixed at 1e-12, so any other value cannot be represented.
    type_vocab_size does not matter (token type 0 is folded into the
    positions, see convert_bert_state). Only absolute positions and
    encoder-only BERTs convert.
    """
    data = dict(data)
    eps = data.get("layer_norm_eps", 1e-12)
    if eps != LAYER_NORM_EPS:
        raise ConfigError(
            f"{source}: layer_norm_eps {eps!r} cannot be converted: DistilBERT's LayerNorm epsilon is fixed at 1e-12 "
            "(a different epsilon would change every LayerNorm output)"
        )
    position_type = data.get("position_embedding_type", "absolute")
    if position_type != "absolute":
        raise ConfigError(f"{source}: position_embedding_type {position_type!r} cannot be converted: DistilBERT has absolute positions only")
    for flag in ("is_decoder", "add_cross_attention"):
        if data.get(flag):
            raise ConfigError(f"{source}: {flag} is true: only encoder-only BERT checkpoints convert to DistilBERT")
    act = data.get("hidden_act", "gelu")
    if act not in ACTIVATIONS:
        raise ConfigError(f"{source}: hidden_act {act!r} has no DistilBERT equivalent (expected one of {', '.join(ACTIVATIONS)})")
    architectures = data.get("architectures") or []
    blocked = [a for a in architectures if a in _BERT_POOLER_HEADS]
    if blocked:
        raise CheckpointError(
            f"{source}: {blocked[0]} cannot be converted exactly: its head reads BERT's pooler (dense + tanh on [CLS]) "
            "while DistilBERT's sequence-classification head is pre_classifier + ReLU; only the encoder, the MLM, "
            "token-classification and question-answering heads carry over"
        )
    out = {"architectures": [_BERT_ARCHITECTURES[a] for a in architectures if a in _BERT_ARCHITECTURES] or None}
    for key, value in data.items():
        if key in BERT_CONFIG_MAP:
            out[BERT_CONFIG_MAP[key]] = value
        elif key in _BERT_SAME_KEYS or key not in _BERT_CONSUMED:
            out[key] = value
    try:
        return DistilBertConfig.from_dict(out)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


_BERT_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
# BERT's module inside a layer -> DistilBERT's (a key of schema.LAYER_MODULES)
_BERT_LAYER_RENAMES = {
    "attention.self.query": "q_lin",
    "attention.self.key": "k_lin",
    "attention.self.value": "v_lin",
    "attention.output.dense": "out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "lin1",
    "output.dense": "lin2",
    "output.LayerNorm": "output_layer_norm",
}
_BERT_TOP_RENAMES = {
    "embeddings.word_embeddings": "embeddings.word_embeddings",
    "embeddings.position_embeddings": "embeddings.position_embeddings",
    "embeddings.LayerNorm": "embeddings.LayerNorm",
    "cls.predictions.transform.dense": "vocab_transform",
    "cls.predictions.transform.LayerNorm": "vocab_layer_norm",
    "cls.predictions.decoder": "vocab_projector",
    "classifier": "classifier",
    "qa_outputs": "qa_outputs",
}
# Tensors with no DistilBERT counterpart, dropped on purpose.
_BERT_DROPPED_PREFIXES = (
    "pooler.",  # BertModel's pooler_output (dense + tanh on [CLS]); DistilBERT-style encoders have none
    "cls.seq_relationship.",  # BertForPreTraining's next-sentence head
)


def convert_bert_state(
    state: Mapping[str, np.ndarray], config: DistilBertConfig, source="checkpoint", architectures=None
) -> dict[str, np.ndarray]:
    """Rename a BERT state dict to DistilBERT's names.

    The token-type embedding of segment 0 is folded into the position
    embeddings: BERT computes word + token_type[0] + position for single-segment
    input (token_type_ids all 0, BERT's default), so DistilBERT's word +
    (position + token_type[0]) is the same function. This is exact in real
    arithmetic for single-segment input (the float32 additions are grouped
    differently, so results may differ in the last bit); inputs using segment 1
    have no DistilBERT equivalent. The pooler and a next-sentence head are
    dropped (unused by a DistilBERT-style encoder). An optional "bert." prefix
    is stripped; old "LayerNorm.gamma/beta" names are read as weight/bias.
    Leftover tensors that map to nothing raise CheckpointError.
    """
    renamed: dict[str, np.ndarray] = {}
    token_type = None
    leftovers = []
    for name, value in state.items():
        key = name[len("bert."):] if name.startswith("bert.") else name
        key = re.sub(r"LayerNorm\.gamma$", "LayerNorm.weight", key)
        key = re.sub(r"LayerNorm\.beta$", "LayerNorm.bias", key)
        if key in DROPPED_BUFFERS or key == "embeddings.token_type_ids" or key.startswith(_BERT_DROPPED_PREFIXES):
            continue
        if key == "embeddings.token_type_embeddings.weight":
            token_type = value
            continue
        if key in ("cls.predictions.bias", "cls.predictions.decoder.bias"):
            if "vocab_projector.bias" in renamed and not np.array_equal(renamed["vocab_projector.bias"], value):
                raise CheckpointError(f"{source}: cls.predictions.bias and cls.predictions.decoder.bias differ")
            renamed["vocab_projector.bias"] = value
            continue
        new = None
        m = _BERT_LAYER.match(key)
        if m:
            index, rest = m.groups()
            for old, module in _BERT_LAYER_RENAMES.items():
                if rest.startswith(old + "."):
                    new = layer_key(int(index), module, rest[len(old) + 1:])
                    break
        else:
            for old, repl in _BERT_TOP_RENAMES.items():
                if key.startswith(old + "."):
                    new = repl + key[len(old):]
                    break
        if new is None:
            leftovers.append(f"{name} {fmt_shape(np.shape(value))}")
            continue
        renamed[new] = value
    if leftovers:
        raise CheckpointError(
            f"{source}: {len(leftovers)} BERT tensor(s) have no DistilBERT equivalent:\n    " + "\n    ".join(leftovers)
        )
    pos_name = POSITION_EMBEDDINGS
    if token_type is not None:
        if token_type.ndim != 2 or token_type.shape[0] < 1 or pos_name not in renamed or token_type.shape[1] != renamed[pos_name].shape[-1]:
            raise CheckpointError(
                f"{source}: embeddings.token_type_embeddings.weight {fmt_shape(token_type.shape)} does not fit "
                f"the position embeddings {fmt_shape(np.shape(renamed.get(pos_name, ())))}"
            )
        renamed[pos_name] = (renamed[pos_name] + token_type[0]).astype(np.float32)
    return renamed
