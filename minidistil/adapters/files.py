"""The reference library's saved files: reading an adapter or head directory.

    <dir>/adapter_config.json    + pytorch_adapter.bin   or adapter.safetensors
    <dir>/head_config.json       + pytorch_model_head.bin or model_head.safetensors

Weight names are those of the reference's DistilBertAdapterModel state dict, e.g.

    distilbert.transformer.layer.0.output_adapters.adapters.<name>.adapter_up.weight
    distilbert.transformer.layer.0.attention.q_lin.loras.<name>.lora_A
    heads.<name>.1.weight

(the "distilbert." prefix is absent when the adapter was saved from a bare
encoder). The .bin files are read with the checkpoint module's safe reader:
no pickle code runs.
"""

import re
from pathlib import Path

from ..checkpoints.loading import find_weights, load_state_dict
from ..jsonfiles import read_json_object
from ..errors import CheckpointError
from .bottleneck import MODULE_LOCATIONS
from .errors import AdapterError
from .lora import LINEAR_KEYS

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = ("adapter.safetensors", "pytorch_adapter.bin")
HEAD_CONFIG = "head_config.json"
HEAD_WEIGHTS = ("model_head.safetensors", "pytorch_model_head.bin")
BASE_PREFIX = "distilbert."
# adapter-transformers v1/v2 module names, renamed by the reference on load
LEGACY_NAMES = {
    "attention_text_task_adapters": "adapters",
    "attention_text_lang_adapters": "adapters",
    "layer_text_task_adapters": "adapters",
    "layer_text_lang_adapters": "adapters",
    "invertible_lang_adapters": "invertible_adapters",
}
# module kinds of other adapter methods, for a clear error
OTHER_METHODS = {
    "prefix_tunings": "prefix tuning",
    "prefix_gates": "prefix tuning",
    "prompt_tunings": "prompt tuning",
    "refts": "ReFT",
    "shared_parameters": "VeRA / shared LoRA parameters",
    "adapter_fusion_layer": "AdapterFusion",
}


def read_json(path, what):
    path = Path(path)
    return read_json_object(path, AdapterError, missing=f"{path.parent}: no {path.name} ({what} not found there)")


def read_weights(directory, names, what):
    """(path, {name: array}) of the first of `names` in `directory`; AdapterError when none is there or it is bad."""
    try:
        path = find_weights(directory, names, what)
    except CheckpointError as exc:
        raise AdapterError(str(exc)) from None
    try:
        return path, load_state_dict(path)
    except CheckpointError as exc:
        raise AdapterError(f"{path}: {exc}") from exc


def check_directory(path, what):
    path = Path(path)
    if not path.is_dir():
        raise AdapterError(f"{path}: not a directory ({what} directories hold {ADAPTER_CONFIG if what == 'adapter' else HEAD_CONFIG} and weights)")
    return path


def split_adapter_tensors(state, saved_name, source, has_invertible=False):
    """Group an adapter file's tensors for `saved_name` by where they go.

    Returns (bottleneck: {(layer, location): {param: array}}, lora: {(layer, linear): {param: array}}).
    Tensors of other adapter names are ignored (as the reference's filter does); tensors of this
    adapter that belong to an unsupported method raise AdapterError naming it.
    """
    bottleneck, lora = {}, {}
    name = re.escape(saved_name)
    bn_re = re.compile(rf"^transformer\.layer\.(\d+)\.(attention_adapters|output_adapters)\.adapters\.{name}\.(.+)$")
    lora_re = re.compile(rf"^transformer\.layer\.(\d+)\.(attention\.[qkv]_lin|ffn\.lin[12])\.loras\.{name}\.(.+)$")
    for key, value in state.items():
        bare = key[len(BASE_PREFIX):] if key.startswith(BASE_PREFIX) else key
        for old, new in LEGACY_NAMES.items():
            bare = bare.replace(old, new)
        mine = any(f"{sep}{saved_name}." in bare for sep in ("adapters.", "loras.", "prefix_tunings.", "prefix_gates.", "prompt_tunings.", "refts.", "shared_parameters."))
        if not mine:
            continue
        match = bn_re.match(bare)
        if match:
            layer, module, param = int(match.group(1)), match.group(2), match.group(3)
            bottleneck.setdefault((layer, MODULE_LOCATIONS[module]), {})[param] = value
            continue
        match = lora_re.match(bare)
        if match:
            layer, linear, param = int(match.group(1)), LINEAR_KEYS[match.group(2)], match.group(3)
            lora.setdefault((layer, linear), {})[param] = value
            continue
        if "invertible_adapters." in bare:
            if has_invertible:
                raise AdapterError(f"{source}: unsupported adapter method invertible adapters (tensor {key})")
            continue  # the reference drops a task adapter's unused invertible weights
        for kind, method in OTHER_METHODS.items():
            if f".{kind}." in f".{bare}":
                raise AdapterError(f"{source}: unsupported adapter method {method} (tensor {key})")
        raise AdapterError(f"{source}: tensor {key} is not a DistilBERT adapter weight this package knows")
    return bottleneck, lora
