"""LoRA and (IA)^3, with the semantics of the reference library's `LoRALinear`.

The reference wraps DistilBERT's q_lin / k_lin / v_lin (selfattn_lora, the
matrices in attn_matrices), lin1 (intermediate_lora) and lin2 (output_lora).
For a linear y = x Wᵀ + b and the LoRA modules active there (a Stack runs them
in order, each one fed the previous one's delta, the first one fed x):

    LoRA  ("add"):    delta = (delta_or_x) Aᵀ Bᵀ · alpha / r
                      (with use_gating: · mean_seq(sigmoid(gate(x))) instead of alpha / r)
    (IA)^3 ("scale"): delta = (delta_or_ones) · B                     (B: one scale per output unit)
                      · alpha (or the gate, with use_gating)

and the output is y + delta ("add") or y · delta ("scale"), by the last module's mode.

Merged: W' = W + (B A) · alpha / r ("add"), or W' = W · (B · alpha) ("scale", rows
scaled; the bias is left alone, as in the reference). A merged linear ignores
every LoRA module at that linear, as the reference's does.
"""

import numpy as np

from ..checkpoints.schema import LAYER_MODULES
from .errors import AdapterError, check_placement, checked_tensors

# file key component ("attention.q_lin") -> the layer's module name ("q_lin"), for the linears LoRA can wrap
LINEAR_KEYS = {LAYER_MODULES[name]: name for name in ("q_lin", "k_lin", "v_lin", "lin1", "lin2")}


def expected_linears(method, n_layers):
    """(layer, linear) pairs where the reference adds this LoRA module."""
    names = []
    if method.get("selfattn_lora"):
        names += [f"{m}_lin" for m in ("q", "k", "v") if m in (method.get("attn_matrices") or [])]
    if method.get("intermediate_lora"):
        names.append("lin1")
    if method.get("output_lora"):
        names.append("lin2")
    return [(layer, name) for layer in range(n_layers) if layer not in method["leave_out"] for name in names]


def linear_shape(config, name):
    """(out, in) of a DistilBERT linear."""
    if name == "lin1":
        return config.hidden_dim, config.dim
    if name == "lin2":
        return config.dim, config.hidden_dim
    return config.dim, config.dim


class LoRAModule:
    """One LoRA / (IA)^3 module on one linear of one layer."""

    def __init__(self, name, method, layer, linear, tensors, source, config):
        self.name = name
        self.layer = layer
        self.linear = linear
        self.mode = method["composition_mode"]  # "add" or "scale"
        self.r = method["r"]
        self.alpha = method["alpha"]
        self.use_gating = bool(method["use_gating"])
        # LoRA scales by alpha / r, (IA)^3 by alpha
        self.scaling = self.alpha / self.r if self.mode == "add" else self.alpha
        out_dim, in_dim = linear_shape(config, linear)
        shapes = {"lora_B": (out_dim, self.r)}
        if self.mode == "add":
            shapes["lora_A"] = (self.r, in_dim)
        if self.use_gating:
            shapes["gate.weight"] = (1, in_dim)
            shapes["gate.bias"] = (1,)
        where = f"{source}: adapter {name!r}, layer {layer} {linear}"
        self.host = checked_tensors(tensors, shapes, where)
        self.params = None

    def prepare(self, ops):
        self.params = ops.prepare(dict(self.host))
        if self.mode == "scale":
            self.scale_vector = self.params["lora_B"].reshape(-1)  # (out,)

    def _gate(self, ops, x):
        gate = ops.linear(x, self.params["gate.weight"], self.params["gate.bias"])  # (B, S, 1)
        gate = 1.0 / (1.0 + np.exp(-gate))
        return gate.mean(axis=1, keepdims=True).astype(np.float32)  # (B, 1, 1)

    def forward(self, ops, delta, x):
        """This module's contribution, given the previous module's (None for the first) and the linear's input."""
        p = self.params
        if self.mode == "add":
            h = x if delta is None else delta
            h = ops.linear(ops.linear(h, p["lora_A"]), p["lora_B"])  # (.., in) -> (.., r) -> (.., out)
        else:
            h = self.scale_vector if delta is None else delta * self.scale_vector  # (out,) broadcasts
        if self.use_gating:
            return h * self._gate(ops, x)
        return h * np.float32(self.scaling)

    def combine(self, y, delta):
        """The linear's output with the composed delta, by this (last) module's mode."""
        return y + delta if self.mode == "add" else y * delta

    def merged_weight(self, weight):
        """The linear's weight with this module folded in (host NumPy, float32)."""
        if self.use_gating:
            raise AdapterError(f"cannot merge LoRA adapter {self.name!r}: it uses gating (use_gating=true)")
        B = self.host["lora_B"]
        if self.mode == "add":
            delta = (B.astype(np.float32) @ self.host["lora_A"]) * np.float32(self.scaling)
            return (weight + delta).astype(np.float32)
        return (weight * (B * np.float32(self.scaling))).astype(np.float32)


def build_modules(name, method, tensors_by_linear, source, config):
    """LoRA modules of one adapter: {(layer, linear): LoRAModule}."""
    expected = expected_linears(method, config.n_layers)
    check_placement(expected, tensors_by_linear, f"{source}: adapter {name!r} has LoRA weights")
    return {
        key: LoRAModule(name, method, key[0], key[1], dict(tensors_by_linear[key]), source, config) for key in expected
    }


def run_stack(ops, modules, x, y):
    """A Stack of LoRA modules on one linear (modules in stack order, all present here)."""
    delta = None
    for module in modules:
        delta = module.forward(ops, delta, x)
    return modules[-1].combine(y, delta)
