"""Adapters and flexible heads in the reference adapter library's format (`adapters` 1.3).

    from minidistil import DistilBertModelWithHeads, Stack, Parallel

Supported: bottleneck adapters (seq_bn / Pfeiffer, double_seq_bn / Houlsby, par_bn and
any BnConfig of their fields), LoRA and (IA)^3 (merged or not), Stack and Parallel
composition, and the classification, multilabel classification, tagging, question
answering, masked LM, causal LM and multiple-choice heads. Other methods (prefix
tuning, prompt tuning, Compacter, invertible adapters, ReFT, VeRA, DoRA, AdapterFusion)
are refused with an AdapterError naming them.

Modules:
    configs.py           adapter_config.json: presets, defaults, validation
    bottleneck.py        bottleneck adapters (pre_forward / forward / post_forward, Stack)
    lora.py              LoRA and (IA)^3 on the attention and FFN linears, merging
    composition.py       Stack, Parallel
    flex_heads.py        named heads (head_config.json) and their outputs
    files.py             reading the saved directories (no pickle code runs)
    adapter_set.py       the adapters of one encoder: loading, active setup, merging, the hooks
                         (shared by DistilBertModelWithHeads and the six plain classes)
    model_with_heads.py  DistilBertModelWithHeads
"""

from .composition import Parallel, Stack
from .errors import AdapterError
from .flex_heads import MultiHeadOutput
from .model_with_heads import DistilBertModelWithHeads

__all__ = ["AdapterError", "DistilBertModelWithHeads", "MultiHeadOutput", "Parallel", "Stack"]
