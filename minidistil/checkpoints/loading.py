"""Reading checkpoints: find the weights of a directory, read them, give them DistilBERT's bare names.

    config, state = load_checkpoint("path/to/dir")      # any supported layout, BERT converted
    params = check_tensors(state, expected_shapes(config, "masked_lm"), source="path/to/dir")

Layouts of a checkpoint directory, looked for in this order:
    model.safetensors                      (read by hand, memory-mapped: see safetensors_io.py)
    model.safetensors.index.json + shards  (sharded: {"weight_map": {tensor: file}})
    pytorch_model.bin                      (torch zip, read without torch or pickle code: see torch_bin.py)
    pytorch_model.bin.index.json + shards
    tf_model.h5                            (Keras HDF5 of transformers' TF classes: tf_h5.py, extra "tf")
    flax_model.msgpack                     (flax.serialization msgpack: flax_msgpack.py, extra "flax")
    model.onnx or onnx/model.onnx          (an ONNX export, weights recovered from the graph: onnx_graph.py,
                                            extra "onnx")

Names after loading are the bare layout of schema.py whatever class saved the file; a BERT
checkpoint (config model_type "bert") is converted (bert.py). Every fault raises CheckpointError
(or ConfigError for config.json) naming the file, tensor or field.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import CheckpointError, ConfigError, shown
from ..jsonfiles import read_json_object
from ..modeling.config import ATTRIBUTE_MAP, CONFIG_NAME, DistilBertConfig, check_sizes
from .bert import BERT_CONFIG_MAP, bert_config_to_distilbert, convert_bert_state
from .flax_msgpack import FLAX_WEIGHTS_NAME, read_flax_msgpack
from .onnx_graph import ONNX_WEIGHTS_NAMES, read_onnx
from .safetensors_io import read_safetensors
from .schema import bare_names, drop_tied_copy
from .tensor_checks import check_finite
from .tf_h5 import TF_WEIGHTS_NAME, read_tf_h5
from .torch_bin import read_torch_bin

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
TORCH_WEIGHTS_NAME = "pytorch_model.bin"
TORCH_WEIGHTS_INDEX_NAME = "pytorch_model.bin.index.json"
TORCH_WEIGHT_FILES = (SAFE_WEIGHTS_NAME, SAFE_WEIGHTS_INDEX_NAME, TORCH_WEIGHTS_NAME, TORCH_WEIGHTS_INDEX_NAME)
# PyTorch's files first (what transformers' PyTorch classes read), then the other frameworks'.
WEIGHT_FILES = TORCH_WEIGHT_FILES + (TF_WEIGHTS_NAME, FLAX_WEIGHTS_NAME) + ONNX_WEIGHTS_NAMES
# the reference's suffix -> reader of that format
READERS = {
    ".safetensors": read_safetensors,
    ".bin": read_torch_bin, ".pt": read_torch_bin, ".pth": read_torch_bin,
    ".h5": read_tf_h5,
    ".msgpack": read_flax_msgpack,
    ".onnx": read_onnx,
}


def find_weights(directory: str | os.PathLike, names=WEIGHT_FILES, what="weights file") -> Path:
    """The first of `names` that is a file in `directory` (default: a model's WEIGHT_FILES, in order)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CheckpointError(f"{directory}: not a checkpoint directory")
    for name in names:
        if (directory / name).is_file():
            return directory / name
    raise CheckpointError(f"{directory}: no {what} found (looked for {', '.join(names)})")


def load_state_dict(path: str | os.PathLike, *, float_dtype=np.float32, allow_nonfinite=False) -> dict[str, np.ndarray]:
    """Every tensor of a weights file (or a checkpoint directory), with the names as stored.

    `path`: a directory, a .safetensors, .bin, .h5, .msgpack or .onnx file, or a sharded index .json
    (TF / Flax / ONNX tensors come back already renamed into schema.py's names).
    Float tensors become `float_dtype` (float32 ones are memory-mapped, not copied).
    A NaN or infinite weight is a CheckpointError naming the tensor, unless allow_nonfinite.
    """
    path = Path(path)
    if path.is_dir():
        path = find_weights(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.name.endswith(".index.json"):
        return _load_sharded(path, float_dtype, allow_nonfinite)
    return _read_weights_file(path, float_dtype, allow_nonfinite)


def _read_weights_file(path: Path, float_dtype, allow_nonfinite) -> dict[str, np.ndarray]:
    """One weights file of a format READERS knows, checked for non-finite weights unless allow_nonfinite."""
    reader = READERS.get(path.suffix)
    if reader is None:
        raise CheckpointError(f"{path.name}: unknown weights format (expected {', '.join(READERS)} or an .index.json)")
    state = reader(path, float_dtype=float_dtype)
    if not allow_nonfinite:
        check_finite(state, path.name)
    return state


def _load_sharded(index_path: Path, float_dtype, allow_nonfinite) -> dict[str, np.ndarray]:
    name = index_path.name
    index = read_json_object(index_path, CheckpointError)
    weight_map = index.get("weight_map")
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
            raise CheckpointError(f"{name}: shard {shown(shard)} is not a file in the checkpoint directory")
        if not shard_path.is_file():
            raise CheckpointError(f"{name}: shard {shown(shard)} (holding {shown(tensors[0])}...) does not exist")
        if not shard.endswith((".safetensors", ".bin")):
            raise CheckpointError(f"{name}: shard {shown(shard)} is neither .safetensors nor .bin")
        loaded = _read_weights_file(shard_path, float_dtype, allow_nonfinite)
        absent = [t for t in tensors if t not in loaded]
        if absent:
            raise CheckpointError(f"{name}: shard {shown(shard)} lacks tensor(s) the index puts there: {shown(', '.join(absent), 400)}")
        for tensor in tensors:
            state[tensor] = loaded[tensor]
    return state


def _model_directory(weights: Path) -> Path:
    """The directory holding config.json for a weights file (onnx/model.onnx: the one above onnx/)."""
    if weights.parent.name == "onnx" and not (weights.parent / CONFIG_NAME).is_file():
        return weights.parent.parent
    return weights.parent


def read_config_dict(directory: str | os.PathLike) -> dict:
    """config.json of a checkpoint directory as a dict (a missing file is a CheckpointError: no checkpoint)."""
    path = Path(directory) / CONFIG_NAME
    if not path.is_file():
        raise CheckpointError(f"{directory}: no {CONFIG_NAME} in the checkpoint directory")
    return read_json_object(path, ConfigError)


def check_config_fits(data: dict, state: dict, source) -> None:
    """Refuse config.json sizes that no tensor of the checkpoint can have, before any is used.

    Exact shapes are check_tensors' job, once the config is built; this comes first so that a config
    claiming n_layers 10^6 or num_labels 10^5 beside a small file is refused at once, naming the field,
    instead of building name tables, labels or a fresh head of that size. Every size of a DistilBERT
    or BERT config (under any of its key names) is a dimension of some tensor, so none may exceed the
    largest dimension there is; and every layer has tensors of its own, so there are no more layers
    than tensors. (Loose on purpose: it must hold for every layout a loader reads.)
    """
    largest = max((int(d) for array in state.values() for d in np.shape(array)), default=0)
    why = f"the largest dimension of any tensor in {source} ({largest}): this config cannot describe these weights"
    check_sizes({key: data.get(key) for key in _DIMENSION_KEYS}, data.get("id2label"), data.get("label2id"),
                limits=dict.fromkeys(_DIMENSION_KEYS, largest), why=why)
    check_sizes({key: data.get(key) for key in _LAYER_KEYS}, limits=dict.fromkeys(_LAYER_KEYS, len(state)),
                why=f"the number of tensors in {source}: each layer has tensors of its own")


# Every key a size goes by in a DistilBERT or BERT config.json (fields, reference aliases, BERT names).
_LAYER_KEYS = ("n_layers", *(k for k, v in {**ATTRIBUTE_MAP, **BERT_CONFIG_MAP}.items() if v == "n_layers"))
_DIMENSION_KEYS = ("vocab_size", "max_position_embeddings", "dim", "hidden_dim", "n_heads", "num_labels", "_num_labels",
                   *(k for k, v in {**ATTRIBUTE_MAP, **BERT_CONFIG_MAP}.items() if v in ("dim", "hidden_dim", "n_heads")))


def load_checkpoint(
    path: str | os.PathLike, *, float_dtype=np.float32, weight_files=WEIGHT_FILES, allow_nonfinite=False,
    **config_overrides
) -> tuple[DistilBertConfig, dict[str, np.ndarray]]:
    """(config, state) of a checkpoint directory, in DistilBERT's bare names.

    `path`: the directory (config.json + weights: the first of `weight_files` there), or a
    weights file whose directory holds config.json. A BERT checkpoint is converted (see
    `convert_bert_state`). A stored copy of a tied MLM projector is dropped
    (schema's tie rule). The state is not yet checked
    against a head: call `check_tensors(state, expected_shapes(config, head), path)`.
    `config_overrides` change config fields after reading (e.g. num_labels=3,
    which regenerates the labels; see DistilBertConfig.replace).
    Config sizes no tensor has are refused first (check_config_fits), and NaN or infinite
    weights unless allow_nonfinite.
    """
    path = Path(path)
    weights = find_weights(path, weight_files) if path.is_dir() else path
    directory = path if path.is_dir() else _model_directory(path)
    data = read_config_dict(directory)
    raw = load_state_dict(weights, float_dtype=float_dtype, allow_nonfinite=allow_nonfinite)
    source = weights if weights.parent == directory else directory
    try:
        check_config_fits(data, raw, source)
    except ConfigError as exc:
        raise ConfigError(f"{directory / CONFIG_NAME}: {exc}") from None
    model_type = data.get("model_type", "distilbert")
    if model_type == "bert":
        config = bert_config_to_distilbert(data, source=directory / CONFIG_NAME)
        state = convert_bert_state(raw, config, source=source, architectures=data.get("architectures"))
    elif model_type == "distilbert":
        try:
            config = DistilBertConfig.from_dict(data)
        except ConfigError as exc:
            raise ConfigError(f"{directory / CONFIG_NAME}: {exc}") from exc
        state = bare_names(raw, source=source)
    else:
        raise CheckpointError(f"{directory / CONFIG_NAME}: model_type {shown(model_type)} is not supported (expected distilbert or bert)")
    if config_overrides:
        try:
            config = config.replace(**config_overrides)
        except ConfigError as exc:
            raise ConfigError(f"{directory / CONFIG_NAME} with overrides {config_overrides}: {exc}") from exc
    return config, drop_tied_copy(state, config, source)
