"""Write the goldens of adapters on the six plain classes with the adapters library (`adapters.init(model)`).

Dev environment only (torch, transformers 4.57.6, adapters 1.3.0):

    python tools/goldens/make_class_adapter_goldens.py [--out tests/golden/formats/class_adapters]
    (here: /work/main/.venv-ref/bin/python tools/goldens/make_class_adapter_goldens.py; about 15 s)

What it writes (all tiny: vocab 64, dim 16, 2 layers):
  base/<class>/     a checkpoint of each of the six transformers classes (save_pretrained), seeded weights
  adapters/<name>/  adapters saved with the library's save_adapter from a DistilBertModel made adapter-ready
                    by adapters.init: two bottlenecks (seq_bn), Houlsby (double_seq_bn),
                    a parallel bottleneck (par_bn), LoRA on every linear it wraps, (IA)^3
  inputs.npz        input_ids / attention_mask (2 x 7, one row padded), multiple choice (2 x 3 x 7)
  expected.npz      "<class>/<case>/<field>": outputs of a fresh `adapters.init(<class>.from_pretrained(base))`
                    that loaded every adapter with load_adapter, for each case below
  manifest.json     cases, command, versions, date, seed

Cases, for every class: all adapters loaded and none active (loading does not activate), each
adapter active (set_active_adapters), one given per call (AdapterSetup, minidistil's adapter_names=),
LoRA merged (merge_adapter), Stack(bn, lora) and Parallel(bn, bn2). Adapter weights are
seeded random values (the library zero-initialises the up-projections and LoRA B, which would
make every adapter the identity).
"""

import numpy as np
import torch

import adapters
import transformers
from adapters import AdapterSetup, DoubleSeqBnConfig, IA3Config, LoRAConfig, ParBnConfig, SeqBnConfig
from adapters.composition import Parallel, Stack
from transformers import DistilBertConfig

from format_golden_files import add_outputs, finish, output_folder, padded_inputs

SEED = 4321
CONFIG = dict(vocab_size=64, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=24,
              activation="gelu")
NUM_LABELS = {"DistilBertForSequenceClassification": 3, "DistilBertForTokenClassification": 5}  # QA: 2
CLASSES = ("DistilBertModel", "DistilBertForMaskedLM", "DistilBertForSequenceClassification",
           "DistilBertForMultipleChoice", "DistilBertForTokenClassification", "DistilBertForQuestionAnswering")
ADAPTERS = {
    "bn": SeqBnConfig(reduction_factor=2),
    "bn2": SeqBnConfig(reduction_factor=4, non_linearity="gelu"),  # for Parallel: the library needs its children alike
    "houlsby": DoubleSeqBnConfig(reduction_factor=4),
    "par": ParBnConfig(reduction_factor=2),
    "lora": LoRAConfig(r=2, alpha=4, attn_matrices=["q", "k", "v"], intermediate_lora=True, output_lora=True),
    "ia3": IA3Config(),
}
# case -> (active setup, per-call setup, adapter to merge); setups as {"Stack": [...]} / {"Parallel": [...]} / name
CASES = {
    "inactive": (None, None, None),
    **{name: (name, None, None) for name in ("bn", "par", "lora", "ia3")},
    "houlsby_per_call": (None, "houlsby", None),
    "lora_merged": ("lora", None, "lora"),
    "stack": ({"Stack": ["bn", "lora"]}, None, None),
    "parallel": ({"Parallel": ["bn", "bn2"]}, None, None),
}
FIELDS = ("last_hidden_state", "logits", "start_logits", "end_logits")


def setup_from_spec(spec):
    if spec is None or isinstance(spec, str):
        return spec
    (kind, children), = spec.items()
    return {"Stack": Stack, "Parallel": Parallel}[kind](*children)


def seeded(model, gen, only=None):
    """Seeded weights: LayerNorm weights near 1, the rest N(0, 0.2^2); `only`: a name filter."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if only is not None and not only(name):
                continue
            noise = torch.randn(p.shape, generator=gen)
            near_one = ("norm" in name.lower() and name.endswith("weight")) or (".loras." in name and p.dim() == 1)
            p.copy_(1.0 + 0.1 * noise if near_one else 0.2 * noise)


def make_bases(out):
    gen = torch.Generator().manual_seed(SEED)
    for name in CLASSES:
        model = getattr(transformers, name)(DistilBertConfig(**CONFIG, num_labels=NUM_LABELS.get(name, 2)))
        seeded(model, gen)
        model.save_pretrained(out / "base" / name, safe_serialization=True)


def make_adapters(out):
    model = transformers.DistilBertModel(DistilBertConfig(**CONFIG))  # no head: save_adapter would save a static one
    adapters.init(model)
    for name, config in ADAPTERS.items():
        model.add_adapter(name, config=config)
    seeded(model, torch.Generator().manual_seed(SEED + 1), only=lambda n: ".adapters." in n or ".loras." in n)
    (out / "adapters").mkdir()
    for name in ADAPTERS:
        model.save_adapter(str(out / "adapters" / name), name)


def run(out, class_name, case, inputs):
    active, per_call, merge = CASES[case]
    model = getattr(transformers, class_name).from_pretrained(out / "base" / class_name, attn_implementation="eager")
    adapters.init(model)
    model.eval()
    for name in ADAPTERS:
        assert model.load_adapter(str(out / "adapters" / name)) == name
    if active is not None:
        model.set_active_adapters(setup_from_spec(active))
    if merge:
        model.merge_adapter(merge)
    prefix = "mc_" if class_name == "DistilBertForMultipleChoice" else ""
    kwargs = dict(input_ids=torch.tensor(inputs[f"{prefix}input_ids"]),
                  attention_mask=torch.tensor(inputs[f"{prefix}attention_mask"]))
    with torch.no_grad():
        if per_call is not None:
            with AdapterSetup(setup_from_spec(per_call)):
                result = model(**kwargs)
        else:
            result = model(**kwargs)
    return {f: result[f].numpy().astype(np.float32) for f in FIELDS if result.get(f) is not None}


def main():
    out = output_folder(__doc__, "class_adapters")
    torch.manual_seed(SEED)
    make_bases(out)
    make_adapters(out)
    inputs = padded_inputs(np.random.default_rng(SEED), CONFIG["vocab_size"], [7, 4], [[7, 7, 5], [7, 7, 7]], np.int64)
    expected, cases = {}, {}
    for class_name in CLASSES:
        for case, (active, per_call, merge) in CASES.items():
            key = f"{class_name}/{case}"
            cases[key] = dict(class_name=class_name, base=f"base/{class_name}", active=active, per_call=per_call,
                              merge=merge, inputs="mc" if class_name.endswith("MultipleChoice") else "ids",
                              outputs=add_outputs(expected, key, run(out, class_name, case, inputs)))
    finish(out, inputs, expected, dict(
        description="Adapters saved by the adapters library and their effect on each plain DistilBERT class "
        "(adapters.init), on inputs.npz.",
        command="python tools/goldens/make_class_adapter_goldens.py",
        versions=dict(adapters=adapters.__version__, transformers=transformers.__version__, torch=torch.__version__),
        seed=SEED,
        config=CONFIG,
        adapters={name: type(config).__name__ for name, config in ADAPTERS.items()},
        cases=cases,
    ))


if __name__ == "__main__":
    main()
