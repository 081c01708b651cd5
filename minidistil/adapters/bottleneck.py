"""Bottleneck adapters, with the semantics of the reference library's `Adapter` / `ParallelAdapter`.

A bottleneck adapter sits at one of the two residual + LayerNorm steps of a
DistilBERT layer ("mh_adapter": after self-attention, "output_adapter": after
the FFN). The model's hook hands it

    hidden     the sub-layer output (attention or FFN output), (B, S, D)
    residual   the sub-layer input, (B, S, D)
    norm       the layer's own LayerNorm: norm(x, residual=None) = LN(x + residual)

and it returns what replaces `norm(hidden, residual)`. With one adapter A
(a Stack of several runs `pre_forward` + `forward` for each in turn, then the
last one's `post_forward`):

    pre_forward:   residual_before_ln True      -> r = hidden
                   original_ln_before           -> hidden = norm(hidden + residual)
                                                   ("post_add": r = hidden + residual, before the norm)
                   residual_before_ln False     -> r = hidden (after the norm, if any)
    forward:       x = LN_before(hidden)?                     (eps 1e-5, ln_before)
                   up = W_up act(W_down x + b_down) + b_up
                   up = up * scaling                          (float, learned scalar or per channel)
                   up = up * mean_seq(sigmoid(gate(x)))       (use_gating; the mean runs over every
                                                               position, padding included)
                   out = LN_after(up + r)  or  LN_after(up) + r   (adapter_residual_before_ln; ln_after)
    post_forward:  original_ln_after            -> out = norm(out + residual)

A parallel adapter (is_parallel, the par_bn preset) reads the sub-layer input
instead: x = residual, no residual inside; post_forward adds the sub-layer
output, then norm(... + residual) when original_ln_after.
"""

import numpy as np

from .activations import apply_activation
from .configs import bottleneck_size
from .errors import AdapterError, check_placement, checked_tensors

ADAPTER_LN_EPS = 1e-5  # nn.LayerNorm's default: the adapter's own LayerNorms do not use the model's 1e-12
LOCATIONS = ("mh_adapter", "output_adapter")
# file key component -> location
MODULE_LOCATIONS = {"attention_adapters": "mh_adapter", "output_adapters": "output_adapter"}
# model residual step -> location
RESIDUAL_LOCATIONS = {"sa_layer_norm": "mh_adapter", "output_layer_norm": "output_adapter"}


def expected_locations(method, n_layers):
    """(layer, location) pairs where the reference adds this bottleneck adapter."""
    out = []
    for layer in range(n_layers):
        if layer in method["leave_out"]:
            continue
        for location in LOCATIONS:
            if method.get(location):
                out.append((layer, location))
    return out


def expected_params(method, layer, dim):
    """Local parameter names -> shapes of one bottleneck module, as the reference registers them."""
    size = bottleneck_size(method, layer, dim)
    shapes = {}
    i = 0
    if method["ln_before"]:
        shapes[f"adapter_down.{i}.weight"] = (dim,)
        shapes[f"adapter_down.{i}.bias"] = (dim,)
        i += 1
    shapes[f"adapter_down.{i}.weight"] = (size, dim)
    shapes[f"adapter_down.{i}.bias"] = (size,)
    shapes["adapter_up.weight"] = (dim, size)
    shapes["adapter_up.bias"] = (dim,)
    if method["scaling"] == "learned":
        shapes["scaling"] = (1,)
    elif method["scaling"] == "channel":
        shapes["scaling"] = (dim,)
    if method["ln_after"]:
        shapes["adapter_norm_after.weight"] = (dim,)
        shapes["adapter_norm_after.bias"] = (dim,)
    if method["use_gating"]:
        shapes["gate.weight"] = (1, dim)
        shapes["gate.bias"] = (1,)
    return shapes


# other names the reference writes for the same tensors (a module registered twice)
PARAM_ALIASES = {"adapter_norm_before.weight": "adapter_down.0.weight", "adapter_norm_before.bias": "adapter_down.0.bias"}


class Bottleneck:
    """One bottleneck adapter module at one (layer, location)."""

    def __init__(self, name, method, layer, location, tensors, source, dim):
        self.name = name
        self.layer = layer
        self.location = location
        self.ln_before = bool(method["ln_before"])
        self.ln_after = bool(method["ln_after"])
        self.use_gating = bool(method["use_gating"])
        self.is_parallel = bool(method["is_parallel"])
        self.residual_before_ln = method["residual_before_ln"]
        self.adapter_residual_before_ln = bool(method["adapter_residual_before_ln"])
        self.original_ln_before = bool(method["original_ln_before"])
        self.original_ln_after = bool(method["original_ln_after"])
        self.non_linearity = method["non_linearity"]
        self.scaling_mode = method["scaling"]
        shapes = expected_params(method, layer, dim)
        where = f"{source}: adapter {name!r}, layer {layer} {location}"
        for alias, target in PARAM_ALIASES.items():
            if alias in tensors and target not in tensors and self.ln_before:
                tensors[target] = tensors[alias]
            tensors.pop(alias, None)
        self.host = checked_tensors(tensors, shapes, where)
        self.params = None

    def prepare(self, ops):
        """Move the weights to the backend once (ops.prepare keeps the names)."""
        self.params = ops.prepare(dict(self.host))
        if isinstance(self.scaling_mode, str):
            self.scaling = self.params["scaling"]
        else:
            self.scaling = np.float32(self.scaling_mode)

    # ------------------------------------------------------------------ the reference's three steps

    def pre_forward(self, hidden, residual, norm):
        """(adapter input, adapter residual) from the sub-layer output and input."""
        if self.is_parallel:
            return residual, residual
        adapter_residual = hidden if self.residual_before_ln is True else None
        if self.original_ln_before:
            hidden = hidden + residual
            if self.residual_before_ln == "post_add":
                adapter_residual = hidden
            hidden = norm(hidden)
        if self.residual_before_ln is False:
            adapter_residual = hidden
        return hidden, adapter_residual

    def forward(self, ops, x, adapter_residual):
        """The bottleneck itself: down, non-linearity, up, scaling, gate, residual and LayerNorm."""
        p = self.params
        h = x
        i = 0
        if self.ln_before:
            h = ops.layernorm(h, p["adapter_down.0.weight"], p["adapter_down.0.bias"], ADAPTER_LN_EPS)
            i = 1
        down = ops.linear(h, p[f"adapter_down.{i}.weight"], p[f"adapter_down.{i}.bias"])  # (B, S, bottleneck)
        down = apply_activation(ops, down, self.non_linearity)
        up = ops.linear(down, p["adapter_up.weight"], p["adapter_up.bias"])  # (B, S, D)
        out = up * self.scaling
        if self.use_gating:
            gate = ops.linear(x, p["gate.weight"], p["gate.bias"])  # (B, S, 1)
            gate = 1.0 / (1.0 + np.exp(-gate))
            gate = gate.mean(axis=1, keepdims=True).astype(np.float32)  # (B, 1, 1): mean over positions
            out = out * gate
        if self.is_parallel:
            if self.ln_after:
                out = ops.layernorm(out, p["adapter_norm_after.weight"], p["adapter_norm_after.bias"], ADAPTER_LN_EPS)
            return out
        if self.adapter_residual_before_ln:
            out = out + adapter_residual
        if self.ln_after:
            out = ops.layernorm(out, p["adapter_norm_after.weight"], p["adapter_norm_after.bias"], ADAPTER_LN_EPS)
        if not self.adapter_residual_before_ln:
            out = out + adapter_residual
        return out

    def post_forward(self, hidden, sublayer_output, residual, norm):
        """After the last adapter: the model's residual + LayerNorm, if the config keeps it."""
        if self.is_parallel:
            hidden = hidden + sublayer_output
        if self.original_ln_after:
            hidden = norm(hidden, residual)
        return hidden


def run_stack(ops, modules, hidden, residual, norm):
    """A Stack of bottleneck modules at one location (modules: in stack order, all present here).

    As the reference's compose_stack: each adapter's pre_forward sees the previous adapter's
    output and the original sub-layer input; only the last adapter's post_forward runs.
    """
    sublayer_output = hidden
    for module in modules:
        hidden, adapter_residual = module.pre_forward(hidden, residual, norm)
        hidden = module.forward(ops, hidden, adapter_residual)
    return modules[-1].post_forward(hidden, sublayer_output, residual, norm)


def build_modules(name, method, tensors_by_module, source, dim, n_layers):
    """Bottleneck modules of one adapter: {(layer, location): Bottleneck}."""
    expected = expected_locations(method, n_layers)
    check_placement(expected, tensors_by_module, f"{source}: adapter {name!r} has weights")
    return {
        key: Bottleneck(name, method, key[0], key[1], dict(tensors_by_module[key]), source, dim)
        for key in expected
    }
