"""DistilBERT's forward pass: small pure functions of (weights, ops, arrays).

Read top to bottom: embeddings -> attention -> ffn -> block -> encoder.
Shapes (the legend `kernels/reference.py` uses too): B batch, S sequence length, D model dim
(config.dim), H heads, Dh head dim (D / H), F hidden dim of the FFN (config.hidden_dim), V vocab.

`params` maps checkpoint names (checkpoints/schema.py) to arrays prepared by `ops.prepare`; each
layer reads its own weights through a `schema.Layer` view (`layer["q_lin"]` -> (weight, bias)).
Every array operation that costs anything goes through `ops` (minidistil.kernels); this module
never imports numba or cupy. There is no dropout: this is inference, the reference in eval mode.
Inputs are validated before they get here (inputs.py).

Optional `hooks` (adapters, LoRA) see the six linears and the two residual + LayerNorm steps of
every layer:
    hooks.project(layer, name, x, y) -> y'
        after each linear, name in schema.LINEAR_NAMES ("q_lin", "k_lin", "v_lin", "out_lin",
        "lin1", "lin2"); x is the linear's input, y its output (for lin1 before the activation,
        which is then applied to y'); layer is the layer's index.
    hooks.residual(layer, name, hidden, residual, norm) -> out
        replaces `norm(hidden, residual)` = LayerNorm(hidden + residual), name in
        schema.RESIDUAL_NAMES ("sa_layer_norm", "output_layer_norm"); `norm(x, residual=None)`
        is that layer's own LayerNorm, for the hook to call where it needs it.
A hooks object may define either method or both; missing ones are the identity.
"""

import math

from ..checkpoints.schema import EMBEDDINGS_NORM, POSITION_EMBEDDINGS, WORD_EMBEDDINGS, layers
from .config import LAYER_NORM_EPS


def embeddings(params, ops, input_ids=None, inputs_embeds=None):
    """Word (or given) embeddings + positions 0..S-1, then LayerNorm. No token types in DistilBERT."""
    if inputs_embeds is None:
        inputs_embeds = ops.embed(params[WORD_EMBEDDINGS], input_ids)  # (V, D)[B, S] -> (B, S, D)
    seq_len = inputs_embeds.shape[1]
    positions = params[POSITION_EMBEDDINGS][:seq_len]  # (S, D): positions ignore padding
    x = inputs_embeds + positions[None]  # (B, S, D)
    gamma, beta = params[f"{EMBEDDINGS_NORM}.weight"], params[f"{EMBEDDINGS_NORM}.bias"]
    return ops.layernorm(x, gamma, beta, LAYER_NORM_EPS)  # (B, S, D)


def project(layer, name, ops, x, hooks=None, activation=None):
    """One linear of the layer, x @ W.T + b, with the hook after it when there is one."""
    weight, bias = layer[name]  # (out, in), (out,)
    hook = getattr(hooks, "project", None)
    if hook is None:
        return ops.linear(x, weight, bias, activation=activation)  # (..., out)
    y = hook(layer.index, name, x, ops.linear(x, weight, bias))  # (..., out)
    return y if activation is None else ops.activation(y, activation)


def add_norm(layer, name, ops, hidden, residual, hooks=None):
    """LayerNorm(hidden + residual) with the layer's norm `name`, or what the hook puts in its place."""
    gamma, beta = layer[name]  # (D,), (D,)

    def norm(x, residual=None):
        return ops.layernorm(x, gamma, beta, LAYER_NORM_EPS, residual=residual)

    hook = getattr(hooks, "residual", None)
    if hook is None:
        return norm(hidden, residual)  # (B, S, D)
    return hook(layer.index, name, hidden, residual, norm)  # (B, S, D)


def attention(layer, ops, x, key_mask, n_heads, head_mask=None, hooks=None, keep_probs=True):
    """Multi-head self-attention. Returns (output (B, S, D), probabilities (B, H, S, S) or None).

    key_mask: (B, S), True = attend, False = padding. head_mask: (H,) multiplies the
    probabilities; the returned probabilities are taken after that multiply.
    keep_probs=False lets the backend fuse the whole step and never store the probabilities (at
    batch 32 x 128 they are 25 MB a layer); a head_mask then scales each head's context, which
    equals scaling its probabilities.
    """
    batch, seq_len, dim = x.shape
    head_dim = dim // n_heads

    def split_heads(t):
        return t.reshape(batch, seq_len, n_heads, head_dim).transpose(0, 2, 1, 3)  # (B, S, D) -> (B, H, S, Dh)

    q = split_heads(project(layer, "q_lin", ops, x, hooks))  # (B, H, S, Dh)
    k = split_heads(project(layer, "k_lin", ops, x, hooks))  # (B, H, S, Dh)
    v = split_heads(project(layer, "v_lin", ops, x, hooks))  # (B, H, S, Dh)
    scale = 1.0 / math.sqrt(head_dim)
    if keep_probs:
        probs = ops.attention_probs(q, k, key_mask, scale)  # softmax(q kᵀ · scale + mask): (B, H, S, S)
        if head_mask is not None:
            probs = probs * head_mask[None, :, None, None]  # (B, H, S, S) * (1, H, 1, 1)
        context = ops.attention_context(probs, v)  # probs @ v: (B, H, S, Dh)
    else:
        probs = None
        context = ops.attention(q, k, v, key_mask, scale)  # (B, H, S, Dh)
        if head_mask is not None:
            context = context * head_mask[None, :, None, None]  # (B, H, S, Dh) * (1, H, 1, 1)
    del q, k, v  # their buffers can be reused by the next linears
    context = context.transpose(0, 2, 1, 3).reshape(batch, seq_len, dim)  # (B, H, S, Dh) -> (B, S, D)
    return project(layer, "out_lin", ops, context, hooks), probs  # (B, S, D)


def ffn(layer, ops, x, activation, hooks=None):
    """Position-wise feed-forward: lin2(act(lin1(x)))."""
    h = project(layer, "lin1", ops, x, hooks, activation=activation)  # (B, S, F)
    return project(layer, "lin2", ops, h, hooks)  # (B, S, D)


def block(layer, ops, config, x, key_mask, head_mask=None, hooks=None, keep_probs=True):
    """One post-LN transformer layer. Returns (output (B, S, D), attention probabilities (B, H, S, S) or None)."""
    attn, probs = attention(layer, ops, x, key_mask, config.n_heads, head_mask, hooks, keep_probs)  # (B, S, D)
    h = add_norm(layer, "sa_layer_norm", ops, attn, x, hooks)  # LN(attn + x): (B, S, D)
    f = ffn(layer, ops, h, config.activation, hooks)  # (B, S, D)
    out = add_norm(layer, "output_layer_norm", ops, f, h, hooks)  # LN(f + h): (B, S, D)
    return out, probs


def encoder(params, ops, config, input_ids, key_mask, head_mask=None, inputs_embeds=None,
            output_hidden_states=False, output_attentions=False, hooks=None):
    """The whole encoder on backend arrays: input_ids (B, S) or inputs_embeds (B, S, D), key_mask (B, S) bool,
    head_mask (L, H) or None.

    Returns (last_hidden_state (B, S, D), hidden_states, attentions): hidden_states a list of L+1
    arrays (embeddings first) or None, attentions a list of L arrays (B, H, S, S) or None.
    """
    x = embeddings(params, ops, input_ids, inputs_embeds)  # (B, S, D)
    hidden_states = [x] if output_hidden_states else None
    attentions = [] if output_attentions else None
    for layer in layers(params, config.n_layers):
        layer_mask = None if head_mask is None else head_mask[layer.index]  # (H,)
        x, probs = block(layer, ops, config, x, key_mask, layer_mask, hooks, output_attentions)  # (B, S, D)
        if output_hidden_states:
            hidden_states.append(x)
        if output_attentions:
            attentions.append(probs)
    return x, hidden_states, attentions
