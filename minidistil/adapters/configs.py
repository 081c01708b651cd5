"""Adapter configurations as the reference library (`adapters` 1.3) saves them.

`adapter_config.json` looks like

    {"config": {...method fields...}, "hidden_size": 768, "model_type": "distilbert",
     "model_class": "DistilBertAdapterModel", "name": "sst2", "version": "adapters.1.3.0", ...}

where "config" is a dict (or, in hand-written files, a preset name such as
"seq_bn"). Its "architecture" field picks the method: absent/None for a
bottleneck adapter, "lora" for LoRA and (IA)^3, "union" for a combination of
methods, anything else (prefix_tuning, prompt_tuning, reft, mtl_lora) is not
supported here. Missing fields take the reference's defaults, so files written
by older library versions load too.

parse_adapter_file(data, model_dim, n_layers) -> list of method configs (plain dicts
with "method": "bottleneck" | "lora"), each validated.
"""

import copy

import numpy as np

from .activations import normalise_activation
from .errors import AdapterError

MODEL_TYPE = "distilbert"
ACCEPTED_MODEL_CLASSES = ("DistilBertAdapterModel", "DistilBertModelWithHeads", "DistilBertModel")

# BnConfig defaults (the base class of every bottleneck preset)
BN_DEFAULTS = dict(
    mh_adapter=False,
    output_adapter=True,
    reduction_factor=16,
    non_linearity="relu",
    original_ln_before=False,
    original_ln_after=True,
    ln_before=False,
    ln_after=False,
    init_weights="bert",
    is_parallel=False,
    scaling=1.0,
    use_gating=False,
    residual_before_ln=True,
    adapter_residual_before_ln=False,
    inv_adapter=None,
    inv_adapter_reduction_factor=None,
    cross_adapter=False,
    leave_out=[],
    dropout=0.0,
    phm_layer=False,
    stochastic_depth=0.0,
)
SEQ_BN = dict(BN_DEFAULTS, original_ln_before=True, mh_adapter=False, output_adapter=True, non_linearity="relu", reduction_factor=16)
DOUBLE_SEQ_BN = dict(BN_DEFAULTS, original_ln_before=False, mh_adapter=True, output_adapter=True, non_linearity="swish", reduction_factor=16)
PAR_BN = dict(BN_DEFAULTS, reduction_factor=2, init_weights="mam_adapter", is_parallel=True, scaling=4.0)

LORA_DEFAULTS = dict(
    architecture="lora",
    selfattn_lora=True,
    intermediate_lora=False,
    output_lora=False,
    leave_out=[],
    r=8,
    alpha=8,
    dropout=0.0,
    attn_matrices=["q", "v"],
    composition_mode="add",
    init_weights="lora",
    use_gating=False,
    use_dora=False,
    vera_d=None,
    vera_b=None,
    dtype=None,
)
IA3 = dict(LORA_DEFAULTS, intermediate_lora=True, r=1, alpha=1, attn_matrices=["k", "v"], composition_mode="scale", init_weights="ia3")

PRESETS = {
    "seq_bn": SEQ_BN,
    "pfeiffer": SEQ_BN,
    "double_seq_bn": DOUBLE_SEQ_BN,
    "houlsby": DOUBLE_SEQ_BN,
    "par_bn": PAR_BN,
    "parallel": PAR_BN,
    "scaled_par_bn": dict(PAR_BN, scaling="learned"),
    "scaled_parallel": dict(PAR_BN, scaling="learned"),
    "lora": LORA_DEFAULTS,
    "ia3": IA3,
}
# preset names of methods this package does not implement -> what to call them in the error
UNSUPPORTED_PRESETS = {
    "prefix_tuning": "prefix tuning",
    "prefix_tuning_flat": "prefix tuning",
    "prompt_tuning": "prompt tuning",
    "compacter": "Compacter (phm_layer)",
    "compacter++": "Compacter++ (phm_layer)",
    "seq_bn_inv": "invertible adapters (inv_adapter)",
    "double_seq_bn_inv": "invertible adapters (inv_adapter)",
    "pfeiffer+inv": "invertible adapters (inv_adapter)",
    "houlsby+inv": "invertible adapters (inv_adapter)",
    "mam": "MAM (prefix tuning + parallel adapter)",
    "unipelt": "UniPELT (includes prefix tuning)",
    "loreft": "ReFT",
    "noreft": "ReFT",
    "direft": "ReFT",
    "vera": "VeRA",
    "dora": "DoRA",
    "dvora": "DVoRA",
    "mtl_lora": "MTL-LoRA",
}
UNSUPPORTED_ARCHITECTURES = {
    "prefix_tuning": "prefix tuning",
    "prompt_tuning": "prompt tuning",
    "reft": "ReFT",
    "mtl_lora": "MTL-LoRA",
}
# adapter-transformers configs written before versions were recorded used these names
ACTIVATION_RENAME = {"gelu": "gelu_new", "gelu_orig": "gelu"}
ATTN_MATRICES = ("q", "k", "v")


def _parse_version(text):
    parts = []
    for piece in str(text).split("."):
        digits = "".join(ch for ch in piece if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def parse_adapter_file(data, source, model_dim, n_layers):
    """Validate an adapter_config.json dict; return (saved name, [method config, ...])."""
    if not isinstance(data, dict):
        raise AdapterError(f"{source}: adapter_config.json must hold a JSON object")
    model_type = data.get("model_type")
    if model_type is not None and model_type != MODEL_TYPE:
        raise AdapterError(
            f"{source}: adapter was saved for model type {model_type!r}, this model is {MODEL_TYPE!r}"
        )
    hidden = data.get("hidden_size")
    if hidden is not None and hidden != model_dim:
        raise AdapterError(
            f"{source}: adapter was saved for hidden size {hidden}, this model has hidden size {model_dim}"
        )
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise AdapterError(f"{source}: adapter_config.json has no adapter name ('name')")
    if "config" not in data:
        raise AdapterError(f"{source}: adapter_config.json has no 'config'")
    has_version = "version" in data
    methods = _parse_config(data["config"], source, has_version)
    version = str(data.get("version", ""))
    if version.startswith("adapters.") and _parse_version(version[len("adapters."):]) < (1, 1, 0):
        # the reference rewrites LoRA configs of adapters < 1.1.0, whose scaling was faulty
        for method in methods:
            if method["method"] == "lora" and method["r"] != method["alpha"]:
                method["alpha"] = method["r"]
    for method in methods:
        _validate(method, source, model_dim, n_layers)
    return name, methods


def _parse_config(config, source, has_version):
    if isinstance(config, str):
        key = config.lower()
        if key in UNSUPPORTED_PRESETS:
            raise AdapterError(f"{source}: unsupported adapter method {UNSUPPORTED_PRESETS[key]} (config {config!r})")
        if key not in PRESETS:
            raise AdapterError(f"{source}: unknown adapter config name {config!r}")
        config = copy.deepcopy(PRESETS[key])
    if not isinstance(config, dict):
        raise AdapterError(f"{source}: 'config' must be an object or a preset name, got {type(config).__name__}")
    architecture = config.get("architecture")
    if architecture == "union":
        configs = config.get("configs")
        if not isinstance(configs, list) or not configs:
            raise AdapterError(f"{source}: a 'union' config needs a non-empty 'configs' list")
        methods = []
        for sub in configs:
            methods.extend(_parse_config(sub, source, has_version))
        return methods
    if architecture in UNSUPPORTED_ARCHITECTURES:
        raise AdapterError(
            f"{source}: unsupported adapter method {UNSUPPORTED_ARCHITECTURES[architecture]} "
            f"(architecture {architecture!r}); supported: bottleneck adapters (seq_bn, double_seq_bn, par_bn), LoRA, (IA)^3"
        )
    if architecture == "lora":
        method = dict(copy.deepcopy(LORA_DEFAULTS), **config)
        method["method"] = "lora"
        return [method]
    if architecture is not None:
        raise AdapterError(f"{source}: unknown adapter architecture {architecture!r}")
    method = dict(copy.deepcopy(BN_DEFAULTS), **config)
    # v1 configs nest the invertible adapter in a dict
    if method.get("invertible_adapter"):
        method["inv_adapter"] = method["invertible_adapter"].get("block_type", "nice")
    if not has_version and method.get("non_linearity") in ACTIVATION_RENAME:
        method["non_linearity"] = ACTIVATION_RENAME[method["non_linearity"]]
    method["method"] = "bottleneck"
    return [method]


def _validate(method, source, model_dim, n_layers):
    leave_out = method.get("leave_out") or []
    if not isinstance(leave_out, list) or not all(isinstance(i, int) for i in leave_out):
        raise AdapterError(f"{source}: leave_out must be a list of layer indices, got {leave_out!r}")
    method["leave_out"] = leave_out
    if method["method"] == "lora":
        _validate_lora(method, source)
    else:
        _validate_bottleneck(method, source, model_dim, n_layers)


def _validate_lora(method, source):
    if method.get("use_dora"):
        raise AdapterError(f"{source}: unsupported adapter method DoRA (use_dora=true)")
    if method.get("vera_d") is not None or method.get("vera_b") is not None:
        raise AdapterError(f"{source}: unsupported adapter method VeRA (vera_d / vera_b set)")
    mode = method.get("composition_mode")
    if mode not in ("add", "scale"):
        raise AdapterError(f"{source}: unsupported LoRA composition_mode {mode!r}; supported: 'add', 'scale' ((IA)^3)")
    if mode == "scale" and method["r"] != 1:
        raise AdapterError(f"{source}: composition_mode 'scale' ((IA)^3) needs r == 1, got r={method['r']}")
    for key in ("r", "alpha"):
        value = method.get(key)
        if not _is_number(value) or value <= 0:
            raise AdapterError(f"{source}: LoRA {key} must be a positive number, got {value!r}")
    matrices = method.get("attn_matrices") or []
    bad = [m for m in matrices if m not in ATTN_MATRICES]
    if bad:
        raise AdapterError(f"{source}: unknown LoRA attn_matrices {bad}; DistilBERT has q, k, v")


def _validate_bottleneck(method, source, model_dim, n_layers):
    if method.get("phm_layer"):
        raise AdapterError(f"{source}: unsupported adapter method Compacter (phm_layer=true)")
    if method.get("inv_adapter"):
        raise AdapterError(f"{source}: unsupported adapter method invertible adapters (inv_adapter={method['inv_adapter']!r})")
    method["non_linearity"] = normalise_activation(method.get("non_linearity"), f"{source}: non_linearity")
    if method["non_linearity"] is None:
        raise AdapterError(f"{source}: a bottleneck adapter needs a non_linearity")
    scaling = method.get("scaling")
    if not (_is_number(scaling) or scaling in ("learned", "channel")):
        raise AdapterError(f"{source}: unknown scaling {scaling!r}; expected a finite number, 'learned' or 'channel'")
    residual = method.get("residual_before_ln")
    if residual not in (True, False, "post_add"):
        raise AdapterError(f"{source}: residual_before_ln must be true, false or 'post_add', got {residual!r}")
    if residual == "post_add" and not method.get("original_ln_before") and not method.get("is_parallel"):
        raise AdapterError(f"{source}: residual_before_ln 'post_add' needs original_ln_before=true")
    factor = method.get("reduction_factor")
    factors = factor if isinstance(factor, dict) else {"default": factor}
    for key, value in factors.items():
        if not _is_number(value) or value <= 0:
            raise AdapterError(f"{source}: reduction_factor {key!r} must be a positive number, got {value!r}")
    if isinstance(factor, dict) and "default" not in factor:
        missing = [i for i in range(n_layers) if str(i) not in factor and i not in method["leave_out"]]
        if missing:
            raise AdapterError(f"{source}: reduction_factor mapping has no entry for layer {missing[0]} and no 'default'")


_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _is_number(value):
    """An int or float that is finite in float32, the model's precision (JSON allows NaN, Infinity
    and 1e39, each of which would make every output NaN or infinite)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return abs(value) <= _FLOAT32_MAX  # False for NaN; compares a 4000-digit int without converting it


def bottleneck_size(method, layer, model_dim):
    """Bottleneck width of a layer: int(hidden // reduction_factor), at least 1 (as the reference)."""
    factor = method["reduction_factor"]
    if isinstance(factor, dict):
        factor = factor.get(str(layer), factor.get("default"))
    return max(1, int(model_dim // factor))
