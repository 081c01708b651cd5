"""The encoder on one backend: what the six classes and DistilBertModelWithHeads all run.

    runner = EncoderRunner(config, params, backend="numba", threads=2)
    last, hidden, attn = runner.run(check_inputs(config, input_ids=ids), hooks=None)
    runner.result(last, return_numpy=None)        # NumPy on the CPU backends, device arrays on cupy

It owns the backend's copy of the weights (`ops.prepare`, made once at load), passes hooks
(adapters) to the forward pass, and converts outputs for the caller.
"""

import numpy as np

from ..kernels import get_ops
from . import transformer


class EncoderRunner:
    """config + host params (float32, bare names) + the backend's prepared copy of them."""

    def __init__(self, config, params, *, backend=None, threads=None):
        self.config = config
        self.ops = get_ops(backend, threads)
        self.params = params
        self.prepared = self.ops.prepare(params)

    def replace_params(self, params):
        """New host weights (e.g. new word embeddings): prepared again for the backend."""
        self.params = params
        self.prepared = self.ops.prepare(params)

    def run(self, inputs, output_hidden_states=False, output_attentions=False, hooks=None, prepared=None):
        """The encoder on checked host inputs (inputs.check_inputs); `prepared`: other weights (a merged LoRA).

        Returns (last_hidden_state (B, S, D), hidden_states, attentions) as backend arrays.
        """
        input_ids, attention_mask, head_mask, inputs_embeds = inputs
        ops = self.ops
        return transformer.encoder(
            self.prepared if prepared is None else prepared,
            ops,
            self.config,
            None if input_ids is None else ops.asarray(input_ids),  # (B, S)
            ops.asarray(attention_mask),  # (B, S) bool
            None if head_mask is None else ops.asarray(np.ascontiguousarray(head_mask)),  # (L, H)
            None if inputs_embeds is None else ops.asarray(inputs_embeds),  # (B, S, D)
            bool(output_hidden_states),
            bool(output_attentions),
            hooks,
        )

    def host(self, x):
        """x as a NumPy float32 array, wherever it lives (losses are computed on the host)."""
        return np.asarray(self.ops.to_numpy(x), dtype=np.float32)

    def result(self, x, return_numpy=None):
        """An output array: NumPy float32, or left on the device when the backend keeps outputs there.

        return_numpy=None follows the backend, so that GPU results are not copied back unless asked for.
        """
        if x is None:
            return None
        if return_numpy is None:
            return_numpy = not getattr(self.ops, "keeps_outputs_on_device", False)  # only CupyOps sets it
        return self.host(x) if return_numpy else x

    def results(self, xs, return_numpy=None):
        """A list of arrays (hidden states, attentions) as a tuple of results, or None."""
        return None if xs is None else tuple(self.result(x, return_numpy) for x in xs)
