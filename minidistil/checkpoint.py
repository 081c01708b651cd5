"""Checkpoints: find, read, normalise, check and write DistilBERT weights.

    config, state = load_checkpoint("path/to/dir")      # any supported layout
    params = check_tensors(state, expected_shapes(config, "masked_lm"), source="path/to/dir")
    save_checkpoint("out/", config, params, prefix_encoder=True)
    convert("minilm/", "minilm-distil/")                 # BERT or DistilBERT in, DistilBERT out

Supported layouts of a checkpoint directory (looked for in this order):
    model.safetensors                      (read by hand, memory-mapped: see safetensors_io.py)
    model.safetensors.index.json + shards  (sharded: {"weight_map": {tensor: file}})
    pytorch_model.bin                      (torch zip, read without torch or pickle code: see torch_bin.py)
    pytorch_model.bin.index.json + shards

Names after loading ("normalised") are those of the reference's DistilBertModel
state dict, with task-head tensors bare, whatever class saved the file:
    embeddings.word_embeddings.weight, embeddings.position_embeddings.weight, embeddings.LayerNorm.*,
    transformer.layer.{i}.attention.{q,k,v,out}_lin.*, transformer.layer.{i}.sa_layer_norm.*,
    transformer.layer.{i}.ffn.lin{1,2}.*, transformer.layer.{i}.output_layer_norm.*
    + head tensors: vocab_transform.*, vocab_layer_norm.*, vocab_projector.*, pre_classifier.*,
      classifier.*, qa_outputs.*
The task classes save the encoder under a "distilbert." prefix; it is stripped.
The non-persistent buffer "embeddings.position_ids" that old files carry is dropped.

BERT-layout checkpoints (config model_type "bert") are converted on load to the
equivalent DistilBERT: see `bert_config_to_distilbert` and `convert_bert_state`.

Every fault raises `CheckpointError` (or `ConfigError` for config.json) naming
the file, tensor or field.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np

from .config import ACTIVATIONS, CONFIG_NAME, LAYER_NORM_EPS, DistilBertConfig
from .errors import CheckpointError, ConfigError
from .safetensors_io import read_safetensors, write_safetensors
from .torch_bin import read_torch_bin

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
TORCH_WEIGHTS_NAME = "pytorch_model.bin"
TORCH_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, TORCH_WEIGHTS_NAME, TORCH_WEIGHTS_INDEX_NAME)

ENCODER_PREFIX = "distilbert."
ENCODER_ROOTS = ("embeddings.", "transformer.")
# Buffers some files carry that are not parameters (recomputed by the model).
DROPPED_BUFFERS = ("embeddings.position_ids",)

# Files copied by `convert` when present: tokenizer and sentence-transformers metadata.
TOKENIZER_FILES = ("vocab.txt", "tokenizer_config.json", "special_tokens_map.json", "tokenizer.json", "added_tokens.json")
SENTENCE_TRANSFORMERS_FILES = ("modules.json", "sentence_bert_config.json", "config_sentence_transformers.json", "README.md")
_MODULE_DIR = re.compile(r"^\d+_[A-Za-z]\w*$")  # 1_Pooling, 2_Normalize, 2_Dense ...

# Task heads: short name -> {tensor name: shape as a function of the config}.
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


# ---------------------------------------------------------------------------------------- shapes
def encoder_shapes(config: DistilBertConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor of DistilBertModel and its shape (Linear weights are [out, in])."""
    d, h = config.dim, config.hidden_dim
    shapes = {
        "embeddings.word_embeddings.weight": (config.vocab_size, d),
        # Present in the reference's state dict even with sinusoidal_pos_embds (filled with the sinusoids).
        "embeddings.position_embeddings.weight": (config.max_position_embeddings, d),
        "embeddings.LayerNorm.weight": (d,),
        "embeddings.LayerNorm.bias": (d,),
    }
    for i in range(config.n_layers):
        p = f"transformer.layer.{i}."
        for lin in ("q_lin", "k_lin", "v_lin", "out_lin"):
            shapes[f"{p}attention.{lin}.weight"] = (d, d)
            shapes[f"{p}attention.{lin}.bias"] = (d,)
        shapes[f"{p}sa_layer_norm.weight"] = (d,)
        shapes[f"{p}sa_layer_norm.bias"] = (d,)
        shapes[f"{p}ffn.lin1.weight"] = (h, d)
        shapes[f"{p}ffn.lin1.bias"] = (h,)
        shapes[f"{p}ffn.lin2.weight"] = (d, h)
        shapes[f"{p}ffn.lin2.bias"] = (d,)
        shapes[f"{p}output_layer_norm.weight"] = (d,)
        shapes[f"{p}output_layer_norm.bias"] = (d,)
    return shapes


def head_shapes(config: DistilBertConfig, head: str | None) -> dict[str, tuple[int, ...]]:
    """The tensors of one task head (bare names, as after loading). head: a name of HEADS or a class name."""
    head = _head_name(head)
    d, n = config.dim, config.num_labels
    if head is None:
        return {}
    if head == "masked_lm":
        return {
            "vocab_transform.weight": (d, d),
            "vocab_transform.bias": (d,),
            "vocab_layer_norm.weight": (d,),
            "vocab_layer_norm.bias": (d,),
            "vocab_projector.weight": (config.vocab_size, d),
            "vocab_projector.bias": (config.vocab_size,),
        }
    if head in ("sequence_classification", "multiple_choice"):
        out = 1 if head == "multiple_choice" else n
        return {
            "pre_classifier.weight": (d, d),
            "pre_classifier.bias": (d,),
            "classifier.weight": (out, d),
            "classifier.bias": (out,),
        }
    if head == "token_classification":
        return {"classifier.weight": (n, d), "classifier.bias": (n,)}
    return {"qa_outputs.weight": (n, d), "qa_outputs.bias": (n,)}  # question_answering: n must be 2


def expected_shapes(config: DistilBertConfig, head: str | None = None) -> dict[str, tuple[int, ...]]:
    """Encoder tensors plus those of `head` (None: the bare DistilBertModel)."""
    return {**encoder_shapes(config), **head_shapes(config, head)}


def head_tensor_names() -> frozenset[str]:
    """Every head tensor name of every task: what a bare model may ignore in a task checkpoint."""
    config = DistilBertConfig(vocab_size=2, max_position_embeddings=1, n_layers=1, n_heads=1, dim=1, hidden_dim=1)
    return frozenset(name for head in HEADS for name in head_shapes(config, head))


def _head_name(head):
    if head in HEAD_OF_CLASS:
        return HEAD_OF_CLASS[head]
    if head is None or head in HEADS:
        return head
    raise ValueError(f"unknown head {head!r}: expected one of {', '.join(HEADS)} or a DistilBert class name")


def check_tensors(
    state: Mapping[str, np.ndarray],
    expected: Mapping[str, tuple[int, ...]],
    source,
    *,
    ignore: Iterable[str] = (),
    allow_missing: Iterable[str] = (),
) -> dict[str, np.ndarray]:
    """Check `state` against `expected` {name: shape}; return the expected tensors (in expected's order).

    Missing, unexpected and mis-shaped tensors are all listed, with names and
    shapes, in one CheckpointError. Names in `ignore` may be present without
    being expected (e.g. an MLM head when loading the bare encoder); names in
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
            lines += [f"    {n} {_fmt_shape(expected[n])}" for n in missing]
        if wrong:
            lines.append(f"  {len(wrong)} tensor(s) with the wrong shape (expected vs got):")
            lines += [f"    {n}: expected {_fmt_shape(expected[n])}, got {_fmt_shape(np.shape(state[n]))}" for n in wrong]
        if unexpected:
            lines.append(f"  {len(unexpected)} unexpected tensor(s):")
            lines += [f"    {n} {_fmt_shape(np.shape(state[n]))}" for n in unexpected]
        raise CheckpointError("\n".join(lines))
    return {n: state[n] for n in expected if n in state}


def _fmt_shape(shape) -> str:
    return str(tuple(int(d) for d in shape))


# ---------------------------------------------------------------------------------------- reading
def find_weights(directory: str | os.PathLike) -> Path:
    """The weights file of a checkpoint directory, in the order of WEIGHT_FILES."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory")
    for name in WEIGHT_FILES:
        if (directory / name).is_file():
            return directory / name
    raise CheckpointError(f"{directory}: no weights file found (looked for {', '.join(WEIGHT_FILES)})")


def load_state_dict(path: str | os.PathLike, *, float_dtype=np.float32) -> dict[str, np.ndarray]:
    """Every tensor of a weights file (or a checkpoint directory), with the names as stored.

    `path`: a directory, a .safetensors or .bin file, or a sharded index .json.
    Float tensors become `float_dtype` (float32 ones are memory-mapped, not copied).
    """
    path = Path(path)
    if path.is_dir():
        path = find_weights(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.name.endswith(".index.json"):
        return _load_sharded(path, float_dtype)
    if path.suffix == ".safetensors":
        return read_safetensors(path, float_dtype=float_dtype)
    if path.suffix in (".bin", ".pt", ".pth"):
        return read_torch_bin(path, float_dtype=float_dtype)
    raise CheckpointError(f"{path.name}: unknown weights format (expected .safetensors, .bin or an .index.json)")


def _load_sharded(index_path: Path, float_dtype) -> dict[str, np.ndarray]:
    name = index_path.name
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"{name}: cannot read the shard index: {exc}") from exc
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in weight_map.items()):
        raise CheckpointError(f"{name}: needs a \"weight_map\" object of tensor name -> shard file")
    by_shard: dict[str, list[str]] = {}
    for tensor, shard in weight_map.items():
        by_shard.setdefault(shard, []).append(tensor)
    state = {}
    root = index_path.parent.resolve()
    for shard, tensors in by_shard.items():
        shard_path = (index_path.parent / shard).resolve()
        if shard_path.parent != root:  # a plain file name beside the index, no path tricks
            raise CheckpointError(f"{name}: shard {shard!r} is not a file in the checkpoint directory")
        if not shard_path.is_file():
            raise CheckpointError(f"{name}: shard {shard!r} (holding {tensors[0]!r}...) does not exist")
        if shard.endswith(".safetensors"):
            loaded = read_safetensors(shard_path, float_dtype=float_dtype)
        elif shard.endswith(".bin"):
            loaded = read_torch_bin(shard_path, float_dtype=float_dtype)
        else:
            raise CheckpointError(f"{name}: shard {shard!r} is neither .safetensors nor .bin")
        absent = [t for t in tensors if t not in loaded]
        if absent:
            raise CheckpointError(f"{name}: shard {shard!r} lacks tensor(s) the index puts there: {', '.join(absent)}")
        for tensor in tensors:
            state[tensor] = loaded[tensor]
    return state


def read_config_dict(directory: str | os.PathLike) -> dict:
    path = Path(directory) / CONFIG_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise CheckpointError(f"{directory}: no {CONFIG_NAME} in the checkpoint directory") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a JSON object")
    return data


def load_checkpoint(
    path: str | os.PathLike, *, float_dtype=np.float32, **config_overrides
) -> tuple[DistilBertConfig, dict[str, np.ndarray]]:
    """(config, state) of a checkpoint directory, in DistilBERT's normalised names.

    `path`: the directory (config.json + weights), or a weights file whose
    directory holds config.json. A BERT checkpoint is converted (see
    `convert_bert_state`). When the file has an MLM head without
    vocab_projector.weight (the reference leaves the tied copy out), it is tied
    to the word embeddings (same array, no copy). The state is not yet checked
    against a head: call `check_tensors(state, expected_shapes(config, head), path)`.
    `config_overrides` change config fields after reading (e.g. num_labels=3,
    which regenerates the labels; see DistilBertConfig.replace).
    """
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    weights = find_weights(path) if path.is_dir() else path
    data = read_config_dict(directory)
    raw = load_state_dict(weights, float_dtype=float_dtype)
    source = weights if weights.parent == directory else directory
    model_type = data.get("model_type", "distilbert")
    if model_type == "bert":
        config = bert_config_to_distilbert(data, source=directory / CONFIG_NAME)
        state = convert_bert_state(raw, config, source=source, architectures=data.get("architectures"))
    elif model_type == "distilbert":
        try:
            config = DistilBertConfig.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{directory / CONFIG_NAME}: {exc}") from exc
        state = normalise_keys(raw, source=source)
    else:
        raise CheckpointError(f"{directory / CONFIG_NAME}: model_type {model_type!r} is not supported (expected distilbert or bert)")
    if config_overrides:
        try:
            config = config.replace(**config_overrides)
        except ConfigError as exc:
            raise ConfigError(f"{directory / CONFIG_NAME} with overrides {config_overrides}: {exc}") from exc
    tie_vocab_projector(state, config)
    return config, state


def normalise_keys(state: Mapping[str, np.ndarray], source="checkpoint") -> dict[str, np.ndarray]:
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


def tie_vocab_projector(state: dict[str, np.ndarray], config: DistilBertConfig, *, force: bool = False) -> dict[str, np.ndarray]:
    """Give the MLM head its tied projection: vocab_projector.weight = the word embeddings (same array).

    Done when config.tie_word_embeddings is true and the state holds an MLM
    head (vocab_projector.bias or .weight), or `force` (a caller assembling a
    fresh MLM head). A stored vocab_projector.weight is replaced too: the
    reference (transformers 4.57) ties after loading, so a differing copy in
    the file is ignored. Modifies and returns `state`.
    """
    has_mlm_head = "vocab_projector.bias" in state or "vocab_projector.weight" in state
    if config.tie_word_embeddings and "embeddings.word_embeddings.weight" in state and (force or has_mlm_head):
        state["vocab_projector.weight"] = state["embeddings.word_embeddings.weight"]
    return state


# ---------------------------------------------------------------------------------------- BERT
_BERT_CONFIG_MAP = {
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
        if key in _BERT_CONFIG_MAP:
            out[_BERT_CONFIG_MAP[key]] = value
        elif key in _BERT_SAME_KEYS or key not in _BERT_CONSUMED:
            out[key] = value
    try:
        return DistilBertConfig.from_dict(out)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from exc


_BERT_LAYER = re.compile(r"^encoder\.layer\.(\d+)\.(.+)$")
_BERT_LAYER_RENAMES = {
    "attention.self.query": "attention.q_lin",
    "attention.self.key": "attention.k_lin",
    "attention.self.value": "attention.v_lin",
    "attention.output.dense": "attention.out_lin",
    "attention.output.LayerNorm": "sa_layer_norm",
    "intermediate.dense": "ffn.lin1",
    "output.dense": "ffn.lin2",
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
            for old, repl in _BERT_LAYER_RENAMES.items():
                if rest.startswith(old + "."):
                    new = f"transformer.layer.{index}.{repl}{rest[len(old):]}"
                    break
        else:
            for old, repl in _BERT_TOP_RENAMES.items():
                if key.startswith(old + "."):
                    new = repl + key[len(old):]
                    break
        if new is None:
            leftovers.append(f"{name} {_fmt_shape(np.shape(value))}")
            continue
        renamed[new] = value
    if leftovers:
        raise CheckpointError(
            f"{source}: {len(leftovers)} BERT tensor(s) have no DistilBERT equivalent:\n    " + "\n    ".join(leftovers)
        )
    pos_name = "embeddings.position_embeddings.weight"
    if token_type is not None:
        if token_type.ndim != 2 or token_type.shape[0] < 1 or pos_name not in renamed or token_type.shape[1] != renamed[pos_name].shape[-1]:
            raise CheckpointError(
                f"{source}: embeddings.token_type_embeddings.weight {_fmt_shape(token_type.shape)} does not fit "
                f"the position embeddings {_fmt_shape(np.shape(renamed.get(pos_name, ())))}"
            )
        renamed[pos_name] = (renamed[pos_name] + token_type[0]).astype(np.float32)
    return renamed


# ---------------------------------------------------------------------------------------- writing
def save_checkpoint(
    directory: str | os.PathLike,
    config: DistilBertConfig,
    state: Mapping[str, np.ndarray],
    prefix_encoder: bool = False,
) -> Path:
    """Write config.json + model.safetensors that the reference's from_pretrained loads.

    `state` uses normalised names (names already carrying "distilbert." are
    written as they are). prefix_encoder=True writes the encoder under
    "distilbert." as the reference's task classes do (use it for any model with
    a head); False writes bare names as DistilBertModel does. A tied
    vocab_projector.weight (identical to the word embeddings, with
    config.tie_word_embeddings) is left out, as the reference does.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    out = {}
    embeddings = state.get("embeddings.word_embeddings.weight", state.get(ENCODER_PREFIX + "embeddings.word_embeddings.weight"))
    for name, value in state.items():
        if (
            name == "vocab_projector.weight"
            and config.tie_word_embeddings
            and embeddings is not None
            and (value is embeddings or np.array_equal(value, embeddings))
        ):
            continue
        key = ENCODER_PREFIX + name if prefix_encoder and name.startswith(ENCODER_ROOTS) else name
        out[key] = np.asarray(value)
    config.save_pretrained(directory)
    write_safetensors(directory / SAFE_WEIGHTS_NAME, out, metadata={"format": "pt"})
    return directory


def convert(src: str | os.PathLike, dst: str | os.PathLike) -> tuple[DistilBertConfig, Path]:
    """Load any supported checkpoint (BERT or DistilBERT, any layout) and write it as DistilBERT safetensors.

    The tensors are checked against the encoder plus the head they hold (MLM,
    token classification, question answering, sequence classification or
    multiple choice, recognised by name and config.architectures). Tokenizer
    files and sentence-transformers files (modules.json, 1_Pooling/, ...) are
    copied when present, so the result is a drop-in replacement.
    """
    src, dst = Path(src), Path(dst)
    if src.resolve() == dst.resolve():
        raise CheckpointError(f"{dst}: convert needs a destination other than its source")
    config, state = load_checkpoint(src)
    head = _detect_head(config, state)
    params = check_tensors(state, expected_shapes(config, head), source=src)
    if config.architectures is None:
        cls = CLASS_OF_HEAD[head]
        config = config.replace(architectures=[cls])
    save_checkpoint(dst, config, params, prefix_encoder=head is not None)
    for name in TOKENIZER_FILES + SENTENCE_TRANSFORMERS_FILES:
        if (src / name).is_file():
            shutil.copy2(src / name, dst / name)
    for child in sorted(src.iterdir()) if src.is_dir() else ():
        if child.is_dir() and _MODULE_DIR.match(child.name):
            shutil.copytree(child, dst / child.name, dirs_exist_ok=True)
    return config, dst


def _detect_head(config: DistilBertConfig, state: Mapping[str, np.ndarray]) -> str | None:
    for arch in config.architectures or ():
        if arch in HEAD_OF_CLASS:
            return HEAD_OF_CLASS[arch]
    if "vocab_projector.bias" in state:
        return "masked_lm"
    if "qa_outputs.weight" in state:
        return "question_answering"
    if "pre_classifier.weight" in state:
        w = state.get("classifier.weight")
        return "multiple_choice" if w is not None and w.shape[0] == 1 and config.num_labels != 1 else "sequence_classification"
    if "classifier.weight" in state:
        return "token_classification"
    return None


def main(argv=None) -> int:
    """`python -m minidistil.checkpoint convert SRC DST` (the CLI's `minidistil convert` does the same)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m minidistil.checkpoint")
    sub = parser.add_subparsers(dest="command", required=True)
    conv = sub.add_parser("convert", help="write a BERT or DistilBERT checkpoint as DistilBERT safetensors")
    conv.add_argument("src")
    conv.add_argument("dst")
    args = parser.parse_args(argv)
    config, dst = convert(args.src, args.dst)
    print(f"wrote {dst} ({config.n_layers} layers, dim {config.dim}, {config.n_heads} heads)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
