"""Write the golden files of the adapter tests with the reference adapter library.

Dev environment only (needs torch, transformers 4.57 and adapters 1.3):

    pip install torch==2.13.0 transformers==4.57.6 adapters==1.3.0 "huggingface_hub<1.0"
    python tools/goldens/make_adapter_goldens.py [--out tests/golden/adapters]
    (here: .venv-ref/bin/python tools/goldens/make_adapter_goldens.py; about 10 s on CPU)

adapters 1.3 imports `HfFolder` from huggingface_hub, which only the 0.x
releases have, and pins transformers ~= 4.57.6: both must hold in the
environment that runs this script.

What it writes (all tiny):
  base/                  a random small DistilBERT (vocab 100, dim 64, 2 layers, 4 heads),
                         saved with save_pretrained (config.json + model.safetensors)
  static_cls/            a smaller DistilBertForSequenceClassification checkpoint (dim 32, 1 layer)
  adapters/<name>/       one adapter each, saved with the library's own save_adapter
                         (adapter_config.json + pytorch_adapter.bin or adapter.safetensors,
                         and the head of the same name beside it when there is one)
  heads/<name>/          one prediction head each, saved with save_head
  bad/<name>/            adapters the loader must refuse (prefix tuning, another hidden size)
  inputs.npz             input_ids / attention_mask (2 x 7, one padded row) and the
                         multiple-choice inputs (2 x 3 x 7)
  expected.npz           reference outputs, one entry per case and field
  manifest.json          the cases (what to load, which setup and head, which outputs),
                         plus metadata: command, versions, date, seed

Every adapter and head parameter is overwritten with seeded random values
before saving: the library zero-initialises bottleneck up-projections and
LoRA B, which would make an adapter the identity and the test vacuous.
Reference outputs are computed by a *fresh* model that loads the saved files
back with the library's load_adapter / load_head, so the goldens also pin the
library's loading semantics.
"""

import argparse
import datetime
import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

import adapters
import transformers
from adapters import (
    AdapterSetup,
    BnConfig,
    DistilBertAdapterModel,
    DoubleSeqBnConfig,
    IA3Config,
    LoRAConfig,
    ParBnConfig,
    PrefixTuningConfig,
    SeqBnConfig,
)
from adapters.composition import Parallel, Stack
from transformers import DistilBertConfig, DistilBertForSequenceClassification, DistilBertModel

SEED = 1234
ROOT = Path(__file__).resolve().parents[2]

BASE_CONFIG = dict(
    vocab_size=100,
    dim=64,
    n_layers=2,
    n_heads=4,
    hidden_dim=128,
    max_position_embeddings=32,
    activation="gelu",
)

# name -> (adapter config, head to save beside it: None or (kind, kwargs), use_safetensors)
ADAPTERS = {
    # Pfeiffer / seq_bn preset and variants of the fields it uses
    "pfeiffer": (SeqBnConfig(reduction_factor=4), ("classification", dict(num_labels=3, layers=2, id2label={0: "neg", 1: "neu", 2: "pos"})), False),
    "pfeiffer_ln": (SeqBnConfig(reduction_factor=4, ln_before=True, ln_after=True, non_linearity="gelu", scaling=0.5), None, False),
    "pfeiffer_adapres": (SeqBnConfig(reduction_factor=8, ln_after=True, adapter_residual_before_ln=True, non_linearity="tanh", scaling="learned"), None, False),
    "pfeiffer_nores": (SeqBnConfig(reduction_factor=4, residual_before_ln=False, non_linearity="gelu_new"), None, False),
    "pfeiffer_postadd": (SeqBnConfig(reduction_factor=4, residual_before_ln="post_add", scaling="channel", use_gating=True, non_linearity="leakyrelu"), None, False),
    "pfeiffer_st": (SeqBnConfig(reduction_factor=2, non_linearity="silu"), None, True),
    # Houlsby / double_seq_bn preset and variants
    "houlsby": (DoubleSeqBnConfig(reduction_factor=4), ("tagging", dict(num_labels=5, layers=1)), False),
    "houlsby_gated": (DoubleSeqBnConfig(reduction_factor=8, scaling="channel", use_gating=True, ln_before=True, ln_after=True, non_linearity="sigmoid"), None, False),
    # a hand-made bottleneck: attention sub-layer only, per-layer reduction factors, a left-out layer,
    # the original LN before the adapter and not after it
    "bn_custom": (BnConfig(mh_adapter=True, output_adapter=False, reduction_factor={"0": 2, "default": 8}, non_linearity="relu", original_ln_before=True, original_ln_after=False, leave_out=[1]), None, False),
    "par_bn": (ParBnConfig(reduction_factor=4), None, False),
    # MAD-X style pair for Stack
    "lang": (SeqBnConfig(reduction_factor=4, non_linearity="relu"), None, False),
    "task": (SeqBnConfig(reduction_factor=8, non_linearity="gelu"), ("classification", dict(num_labels=3, layers=2, multilabel=True, activation_function="relu")), False),
    # LoRA
    "lora": (LoRAConfig(r=4, alpha=8), ("question_answering", dict()), False),
    "lora_all": (LoRAConfig(r=2, alpha=3, attn_matrices=["q", "k", "v"], intermediate_lora=True, output_lora=True), None, False),
    "lora_gated": (LoRAConfig(r=2, alpha=2, attn_matrices=["k", "v"], intermediate_lora=True, use_gating=True, leave_out=[0]), None, False),
    "ia3": (IA3Config(), None, False),
}

# heads saved alone: name -> (kind, kwargs)
HEADS = {
    "cls_1layer": ("classification", dict(num_labels=2, layers=1)),
    "cls_relu3": ("classification", dict(num_labels=4, layers=3, activation_function="relu")),
    "cls_noact": ("classification", dict(num_labels=2, layers=2, activation_function=None)),
    "regression": ("classification", dict(num_labels=1, layers=2)),
    "multilabel": ("classification", dict(num_labels=3, layers=2, multilabel=True)),
    "tagging2": ("tagging", dict(num_labels=4, layers=2, activation_function="gelu", id2label={0: "O", 1: "B-X", 2: "I-X", 3: "B-Y"})),
    "qa": ("question_answering", dict()),
    "mlm": ("masked_lm", dict()),
    "mc": ("multiple_choice", dict(num_choices=3, layers=2)),
}


def add_head(model, name, kind, kwargs):
    if kind == "classification":
        model.add_classification_head(name, **kwargs)
    elif kind == "tagging":
        model.add_tagging_head(name, **kwargs)
    elif kind == "question_answering":
        model.add_qa_head(name, **kwargs)
    elif kind == "masked_lm":
        model.add_masked_lm_head(name, **kwargs)
    elif kind == "multiple_choice":
        model.add_multiple_choice_head(name, **kwargs)
    else:
        raise ValueError(kind)


def randomise(model, names, gen):
    """Overwrite every parameter of the named adapters and heads with small random values.

    LayerNorm weights, scalings and LoRA gates stay near their sensible centre (1 or 0) so the
    outputs stay well-conditioned; everything else is N(0, 0.15^2). The masked-LM projection
    is tied to the word embeddings and left alone (it *is* the embedding matrix).
    """
    embeddings = model.get_input_embeddings().weight
    with torch.no_grad():
        for pname, p in model.named_parameters():
            hit = any(f".adapters.{n}." in pname or f".loras.{n}." in pname or pname.startswith(f"heads.{n}.") for n in names)
            if not hit or p is embeddings:
                continue
            noise = torch.randn(p.shape, generator=gen)
            if p.dim() == 1 and ("norm" in pname or pname.endswith(".scaling") or ".loras." in pname):
                p.copy_(1.0 + 0.2 * noise)
            elif pname.startswith("heads.") and p.dim() == 1 and p.shape[0] == model.config.dim and ".2." in pname:
                p.copy_(1.0 + 0.2 * noise)  # masked-LM head LayerNorm weight/bias (index 2)
            else:
                p.copy_(0.15 * noise)


def make_base(out):
    torch.manual_seed(SEED)
    cfg = DistilBertConfig(**BASE_CONFIG)
    base = DistilBertModel(cfg)
    gen = torch.Generator().manual_seed(SEED + 1)
    with torch.no_grad():
        for name, p in base.named_parameters():
            if "LayerNorm" in name or "layer_norm" in name:
                p.copy_((1.0 if name.endswith("weight") else 0.0) + 0.1 * torch.randn(p.shape, generator=gen))
            else:
                p.add_(0.05 * torch.randn(p.shape, generator=gen))
    base.save_pretrained(out / "base", safe_serialization=True)
    return cfg


def make_static(out):
    """A small DistilBertForSequenceClassification checkpoint: the reference turns its head into flex head "default"."""
    torch.manual_seed(SEED + 3)
    cfg = DistilBertConfig(**dict(BASE_CONFIG, dim=32, hidden_dim=64, n_layers=1), id2label={0: "no", 1: "maybe", 2: "yes"}, label2id={"no": 0, "maybe": 1, "yes": 2})
    model = DistilBertForSequenceClassification(cfg)
    gen = torch.Generator().manual_seed(SEED + 4)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "LayerNorm" not in name and "layer_norm" not in name:
                p.add_(0.1 * torch.randn(p.shape, generator=gen))
    model.save_pretrained(out / "static_cls", safe_serialization=True)


def fresh_model(out, base="base"):
    model = DistilBertAdapterModel.from_pretrained(out / base, attn_implementation="eager")
    model.eval()
    return model


def save_all(out):
    model = fresh_model(out)
    for name, (config, head, _) in ADAPTERS.items():
        model.add_adapter(name, config=config)
        if head is not None:
            add_head(model, name, *head)
    for name, (kind, kwargs) in HEADS.items():
        add_head(model, name, kind, kwargs)
    gen = torch.Generator().manual_seed(SEED + 2)
    randomise(model, list(ADAPTERS) + list(HEADS), gen)
    for sub in ("adapters", "heads", "bad"):
        (out / sub).mkdir()
    for name, (_, _, safe) in ADAPTERS.items():
        model.save_adapter(str(out / "adapters" / name), name, use_safetensors=safe)
    for name in HEADS:
        model.save_head(str(out / "heads" / name), name)

    # adapters the loader must refuse, saved by the library too
    bad = fresh_model(out)
    bad.add_adapter("prefix", config=PrefixTuningConfig(prefix_length=2, bottleneck_size=8))
    bad.save_adapter(str(out / "bad" / "prefix"), "prefix", with_head=False)
    small = DistilBertAdapterModel(DistilBertConfig(**dict(BASE_CONFIG, dim=32, hidden_dim=64)))
    small.add_adapter("small", config=SeqBnConfig(reduction_factor=4))
    small.save_adapter(str(out / "bad" / "small"), "small", with_head=False)


def setup_from_spec(spec):
    if spec is None or isinstance(spec, str):
        return spec
    (kind, children), = spec.items()
    block = {"Stack": Stack, "Parallel": Parallel}[kind]
    return block(*[setup_from_spec(c) for c in children])


# name -> dict(adapters=[...], heads=[...], active=spec, head=per-call head, merge=lora name,
#              per_call=setup passed per call instead of set_active_adapters, inputs=ids|mc)
# targets: the head's loss is checked too (names of arrays in inputs.npz)
TARGETS = {
    "cls_relu3": dict(labels="cls4_labels"),
    "regression": dict(labels="regression_labels"),
    "multilabel": dict(labels="multilabel_labels"),
    "tagging2": dict(labels="tagging_labels"),
    "qa": dict(start_positions="start_positions", end_positions="end_positions"),
    "mc": dict(labels="mc_labels"),
    "mlm": dict(labels="mlm_labels"),
}

CASES = {
    # heads alone on the plain encoder, with a loss where targets are given
    **{f"head_{h}": dict(heads=[h], head=h, inputs="mc" if h == "mc" else "ids", targets=TARGETS.get(h, {})) for h in HEADS},
    # each adapter alone: compare the encoder output (and the head beside it, if any)
    **{f"adapter_{a}": dict(adapters=[a], active=a) for a in ADAPTERS},
    # per-call override: adapter and head given in the call, none active
    "per_call_houlsby_qa": dict(adapters=["houlsby"], heads=["qa"], per_call="houlsby", head="qa"),
    "per_call_lora_mlm": dict(adapters=["lora"], heads=["mlm"], per_call="lora", head="mlm"),
    "adapter_pfeiffer_mc": dict(adapters=["pfeiffer"], heads=["mc"], active="pfeiffer", head="mc", inputs="mc"),
    "adapter_pfeiffer_loss": dict(adapters=["pfeiffer"], active="pfeiffer", targets=dict(labels="cls3_labels")),
    # composition
    "stack_lang_task": dict(adapters=["lang", "task"], active={"Stack": ["lang", "task"]}),
    "stack_houlsby_pfeiffer_ln": dict(adapters=["houlsby", "pfeiffer_ln"], active={"Stack": ["houlsby", "pfeiffer_ln"]}, head="houlsby"),
    "stack_lora_lora_all": dict(adapters=["lora", "lora_all"], active={"Stack": ["lora", "lora_all"]}),
    "stack_lora_pfeiffer": dict(adapters=["lora", "pfeiffer"], active={"Stack": ["lora", "pfeiffer"]}),
    "parallel_pfeiffer_task": dict(adapters=["pfeiffer", "task"], active={"Parallel": ["pfeiffer", "task"]}),
    # a task checkpoint as the base: its static head becomes flex head "default"
    "static_cls_default_head": dict(base="static_cls", targets=dict(labels="cls3_labels")),
    # merged LoRA
    "merged_lora": dict(adapters=["lora"], active="lora", merge="lora"),
    "merged_lora_all": dict(adapters=["lora_all"], active="lora_all", merge="lora_all", heads=["cls_relu3"], head="cls_relu3"),
}


def outputs_to_arrays(out):
    """Flatten a flex-head output (one head, several heads, or none) into named arrays."""
    arrays = {}
    if isinstance(out, adapters.heads.base.MultiHeadOutput) or type(out).__name__ == "MultiHeadOutput":
        for i, sub in enumerate(out.head_outputs):
            for key, value in outputs_to_arrays(sub).items():
                arrays[f"head{i}.{key}"] = value
        return arrays
    for key in ("loss", "logits", "start_logits", "end_logits", "last_hidden_state"):
        value = out.get(key) if hasattr(out, "get") else None
        if value is not None:
            arrays[key] = value.detach().numpy().astype(np.float32)
    hidden = out.get("hidden_states") if hasattr(out, "get") else None
    if hidden is not None:
        arrays["last_hidden_state"] = hidden[-1].detach().numpy().astype(np.float32)
    return arrays


def run_case(out, case, inputs):
    model = fresh_model(out, case.get("base", "base"))
    for name in case.get("adapters", []):
        model.load_adapter(str(out / "adapters" / name), use_safetensors=ADAPTERS[name][2])
    for name in case.get("heads", []):
        model.load_head(str(out / "heads" / name))
    if "active" in case:
        model.set_active_adapters(setup_from_spec(case["active"]))
    if case.get("merge"):
        model.merge_adapter(case["merge"])
    if case.get("inputs", "ids") == "mc":
        ids, mask = torch.tensor(inputs["mc_input_ids"]), torch.tensor(inputs["mc_attention_mask"])
    else:
        ids, mask = torch.tensor(inputs["input_ids"]), torch.tensor(inputs["attention_mask"])
    kwargs = dict(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    for key, array in case.get("targets", {}).items():
        kwargs[key] = torch.tensor(inputs[array])
    if case.get("head"):
        kwargs["head"] = case["head"]
    with torch.no_grad():
        if case.get("per_call"):
            with AdapterSetup(setup_from_spec(case["per_call"])):
                result = model(**kwargs)
        else:
            result = model(**kwargs)
    return outputs_to_arrays(result), (model.active_head if not case.get("head") else case["head"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "tests" / "golden" / "adapters"))
    args = parser.parse_args()
    out = Path(args.out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    torch.set_grad_enabled(False)

    make_base(out)
    make_static(out)
    save_all(out)

    rng = np.random.default_rng(SEED)
    input_ids = rng.integers(1, BASE_CONFIG["vocab_size"], size=(2, 7)).astype(np.int64)
    attention_mask = np.ones((2, 7), dtype=np.int64)
    attention_mask[1, 5:] = 0
    input_ids[1, 5:] = 0
    mc_input_ids = rng.integers(1, BASE_CONFIG["vocab_size"], size=(2, 3, 7)).astype(np.int64)
    mc_attention_mask = np.ones((2, 3, 7), dtype=np.int64)
    mc_attention_mask[:, 1, 6:] = 0
    mc_input_ids[:, 1, 6:] = 0
    inputs = dict(input_ids=input_ids, attention_mask=attention_mask, mc_input_ids=mc_input_ids, mc_attention_mask=mc_attention_mask)
    tagging = rng.integers(0, 4, size=(2, 7)).astype(np.int64)
    tagging[0, 0] = -100
    mlm = np.full((2, 7), -100, dtype=np.int64)
    mlm[0, 2], mlm[1, 1], mlm[1, 4] = 7, 42, 99
    inputs.update(
        cls3_labels=np.array([0, 2], dtype=np.int64),
        cls4_labels=np.array([1, 3], dtype=np.int64),
        regression_labels=np.array([0.5, -1.0], dtype=np.float32),
        multilabel_labels=np.array([[1, 0, 1], [0, 1, 1]], dtype=np.float32),
        tagging_labels=tagging,
        start_positions=np.array([1, 3], dtype=np.int64),
        end_positions=np.array([2, 9], dtype=np.int64),  # 9 is past the input: clamped and ignored
        mc_labels=np.array([2, 0], dtype=np.int64),
        mlm_labels=mlm,
    )
    np.savez(out / "inputs.npz", **inputs)

    expected = {}
    cases = {}
    for name, case in CASES.items():
        arrays, head_used = run_case(out, case, inputs)
        keys = {}
        for key, value in arrays.items():
            expected[f"{name}/{key}"] = value
            keys[key] = f"{name}/{key}"
        cases[name] = dict(case, inputs=case.get("inputs", "ids"), reference_head=head_used, outputs=keys)
    np.savez(out / "expected.npz", **expected)

    manifest = dict(
        description="Goldens of the adapter tests: adapters and heads saved by the reference adapter library, "
        "and its outputs on the inputs in inputs.npz.",
        command="python tools/goldens/make_adapter_goldens.py",
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        versions=dict(
            adapters=adapters.__version__,
            transformers=transformers.__version__,
            torch=torch.__version__,
            numpy=np.__version__,
            python=platform.python_version(),
        ),
        seed=SEED,
        base_config=BASE_CONFIG,
        adapters={name: dict(safetensors=safe, head=head[0] if head else None) for name, (_, head, safe) in ADAPTERS.items()},
        heads={name: kind for name, (kind, _) in HEADS.items()},
        cases=cases,
    )
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {len(cases)} cases, {len(expected)} arrays, {total / 1024:.0f} KiB under {out}", file=sys.stderr)


if __name__ == "__main__":
    main()
