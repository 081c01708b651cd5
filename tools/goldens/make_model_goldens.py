"""Write the model golden files (tests/golden/model/) with the reference implementation.

Dev environment only (needs torch and transformers; never run by the test suite):

    /work/main/.venv-ref/bin/python tools/goldens/make_model_goldens.py [--out tests/golden/model]

Weights come from minidistil.modeling.initialization.random_params (imported from this
repository, so the tests regenerate the very same weights from the seed):
the goldens hold only inputs and reference outputs, no weights. Each case is
loaded into the matching transformers DistilBert* class (eager attention,
float32, eval mode) with load_state_dict(strict=True), run under no_grad, and
written as <case>.npz:

    in.<name>                 the call's array inputs (input_ids, attention_mask, head_mask,
                              inputs_embeds, labels, start_positions, end_positions)
    out.<field>               reference outputs: last_hidden_state, logits, start_logits,
                              end_logits, loss (0-d), hidden_states.<i>, attentions.<i>
    extra.<name>              anything else (the reference's sinusoidal table)

metadata.json lists the cases (class, config, init arguments, flags, slices)
and records the command, versions and date.

head_mask: transformers 5 removed the head_mask argument (4.x takes it natively
and is used as is). Its 4.x semantics
(probabilities multiplied by head_mask[layer] after the softmax, attentions
returned after the multiply, context computed from the masked probabilities)
are reinstated here by an attention function registered with the reference's
AttentionInterface; the rest of the reference is untouched. The committed
goldens come from transformers 4.57.6 (native head_mask); a run under
transformers 5.23.0 with this patch agreed with them within 2.2e-6 on every case.
"""

import argparse
import datetime
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch
import transformers
from torch import nn
from transformers import AttentionInterface

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import minidistil  # noqa: E402
from minidistil.checkpoints.schema import HEAD_OF_CLASS  # noqa: E402
from minidistil.modeling.initialization import random_params  # noqa: E402


OFFICIAL = {}  # every field at its default: dim 768, 6 layers, 12 heads, hidden 3072, vocab 30522, gelu
SMALL = dict(vocab_size=120, max_position_embeddings=40, n_layers=3, n_heads=3, dim=96, hidden_dim=200)
SMALL_SIN = dict(SMALL, sinusoidal_pos_embds=True, activation="gelu")
SMALL_RELU = dict(SMALL, n_layers=2, activation="relu")
SMALL_GELU_NEW = dict(SMALL, activation="gelu_new")
SMALL_SILU = dict(SMALL, n_layers=2, activation="silu")
SMALL_SWISH = dict(SMALL, n_layers=2, activation="swish", sinusoidal_pos_embds=True)

OFFICIAL_INIT = dict(seed=0, std=0.05, perturb=True)


# ------------------------------------------------------------------ head_mask for the reference


HEAD_MASK = {"mask": None}  # (n_layers, n_heads) tensor while a head-masked case runs


def eager_with_head_mask(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers' eager attention, plus transformers 4.x's head_mask multiply after the softmax."""
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    attn_weights = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        attn_weights = attn_weights + attention_mask
    attn_weights = nn.functional.softmax(attn_weights, dim=-1)
    attn_weights = nn.functional.dropout(attn_weights, p=dropout, training=module.training)
    if HEAD_MASK["mask"] is not None:
        attn_weights = attn_weights * HEAD_MASK["mask"][module.golden_layer_index][None, :, None, None]
    attn_output = torch.matmul(attn_weights, value)
    attn_output = attn_output.transpose(1, 2).contiguous()
    return attn_output, attn_weights


TRANSFORMERS_MAJOR = int(transformers.__version__.split(".")[0])
NATIVE_HEAD_MASK = TRANSFORMERS_MAJOR < 5  # 4.x DistilBERT takes head_mask itself
if not NATIVE_HEAD_MASK:
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register("eager_head_mask", eager_with_head_mask)
    AttentionMaskInterface.register("eager_head_mask", eager_mask)  # the additive float mask eager attention uses


# ------------------------------------------------------------------ cases


def ids(rng, vocab, *shape):
    return rng.integers(1, vocab, size=shape).astype(np.int64)


def padded_mask(lengths, seq_len):
    return (np.arange(seq_len)[None, :] < np.asarray(lengths)[:, None]).astype(np.int64)


def build_cases():
    rng = np.random.default_rng(20240601)
    V = 30522
    cases = []

    def case(name, cls, config, inputs, init=None, flags=None, slices=None, note="", omit=()):
        cases.append(
            dict(
                name=name,
                cls=cls,
                config=config,
                init=init or dict(seed=len(cases) + 1, std=0.1, perturb=True),
                inputs=inputs,
                flags=flags or {},
                slices=slices or {},
                omit_params=list(omit),
                note=note,
            )
        )

    # ---- official size (weights regenerated from the seed at test time)
    off_ids = ids(rng, V, 2, 7)
    off_ids[:, 0] = 101
    off_mask = padded_mask([7, 4], 7)
    off_ids[1, 4:] = 0
    case("official_model", "DistilBertModel", OFFICIAL, dict(input_ids=off_ids, attention_mask=off_mask),
         init=OFFICIAL_INIT, note="official size, one padded row")
    mlm_labels = np.full((2, 7), -100, dtype=np.int64)
    mlm_labels[0, 2] = 2535
    mlm_labels[0, 5] = 17
    mlm_labels[1, 1] = 30521
    case("official_mlm", "DistilBertForMaskedLM", OFFICIAL,
         dict(input_ids=off_ids, attention_mask=off_mask, labels=mlm_labels), init=OFFICIAL_INIT,
         slices={"logits": {"axis": 1, "index": [1, 5]}},
         note="official size; logits stored at positions 1 and 5 only (the loss covers the full logits)")
    case("official_seq_cls", "DistilBertForSequenceClassification", OFFICIAL,
         dict(input_ids=off_ids, attention_mask=off_mask, labels=np.array([1, 0])), init=OFFICIAL_INIT)
    tok_labels = rng.integers(0, 5, size=(2, 7))
    tok_labels[1, 4:] = -100
    case("official_token_cls", "DistilBertForTokenClassification", dict(num_labels=5),
         dict(input_ids=off_ids, attention_mask=off_mask, labels=tok_labels), init=OFFICIAL_INIT)
    case("official_qa", "DistilBertForQuestionAnswering", OFFICIAL,
         dict(input_ids=off_ids, attention_mask=off_mask, start_positions=np.array([2, 40]),
              end_positions=np.array([5, 3])), init=OFFICIAL_INIT)
    mc_ids = ids(rng, V, 1, 2, 6)
    case("official_mc", "DistilBertForMultipleChoice", OFFICIAL,
         dict(input_ids=mc_ids, attention_mask=np.array([[[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]]]),
              labels=np.array([1])), init=OFFICIAL_INIT)

    # ---- small odd configs
    B, S = 4, 9
    small_ids = ids(rng, 120, B, S)
    small_mask = padded_mask([9, 5, 1, 0], S)  # a row of one token and a fully masked row
    all_out = dict(output_hidden_states=True, output_attentions=True)
    case("small_sinusoidal_gelu_model", "DistilBertModel", SMALL_SIN,
         dict(input_ids=small_ids, attention_mask=small_mask), flags=all_out,
         note="sinusoidal positions, padded batch with a fully masked row, hidden states and attentions")
    case("small_sinusoidal_table_from_config", "DistilBertModel", dict(SMALL_SIN, max_position_embeddings=24),
         dict(input_ids=small_ids[:2, :6]), omit=["embeddings.position_embeddings.weight"],
         note="position table absent from the weights: both sides build it from the config")
    case("small_relu_head_mask_heads", "DistilBertModel", SMALL_RELU,
         dict(input_ids=small_ids, attention_mask=small_mask, head_mask=np.array([1.0, 0.0, 0.5], np.float32)),
         flags=all_out, note="head_mask of shape (n_heads,)")
    head_mask_2d = np.array([[1.0, 0.0, 1.0], [0.25, 1.0, 0.0], [0.0, 0.0, 1.0]], np.float32)
    mlm_small_labels = np.full((B, S), -100, dtype=np.int64)
    mlm_small_labels[0, [1, 4]] = [7, 99]
    mlm_small_labels[1, 2] = 3
    case("small_gelu_new_mlm_head_mask_layers", "DistilBertForMaskedLM", SMALL_GELU_NEW,
         dict(input_ids=small_ids, attention_mask=small_mask, head_mask=head_mask_2d, labels=mlm_small_labels),
         flags=all_out, note="gelu_new, head_mask of shape (n_layers, n_heads), MLM loss with -100")
    case("small_gelu_mlm_all_ignored", "DistilBertForMaskedLM", SMALL_SIN,
         dict(input_ids=small_ids[:2], labels=np.full((2, S), -100, dtype=np.int64)),
         note="every label -100: the reference's loss is NaN")
    embeds = rng.standard_normal((3, 6, 96)).astype(np.float32)
    case("small_silu_inputs_embeds", "DistilBertModel", SMALL_SILU,
         dict(inputs_embeds=embeds, attention_mask=padded_mask([6, 3, 2], 6)), flags=all_out,
         note="silu, inputs_embeds instead of input_ids")

    cls_ids = ids(rng, 120, 3, 8)
    cls_mask = padded_mask([8, 6, 2], 8)
    case("small_seq_cls_regression", "DistilBertForSequenceClassification", dict(SMALL_RELU, num_labels=1),
         dict(input_ids=cls_ids, attention_mask=cls_mask, labels=np.array([0.5, -1.25, 2.0], np.float32)),
         note="num_labels 1: MSE")
    case("small_seq_cls_single_label", "DistilBertForSequenceClassification", dict(SMALL_GELU_NEW, num_labels=3),
         dict(input_ids=cls_ids, attention_mask=cls_mask, labels=np.array([2, -100, 0])),
         flags=dict(output_attentions=True), note="integer labels: cross-entropy, -100 ignored")
    case("small_seq_cls_multi_label", "DistilBertForSequenceClassification", dict(SMALL_SILU, num_labels=4),
         dict(input_ids=cls_ids, attention_mask=cls_mask,
              labels=np.array([[1, 0, 1, 0], [0, 0, 0, 1], [1, 1, 1, 1]], np.float32)),
         note="float labels: BCE with logits")
    case("small_seq_cls_regression_explicit", "DistilBertForSequenceClassification",
         dict(SMALL_SWISH, num_labels=2, problem_type="regression"),
         dict(input_ids=cls_ids, attention_mask=cls_mask,
              labels=np.array([[0.1, 0.9], [1.5, -0.5], [0.0, 0.0]], np.float32)),
         note="problem_type regression with 2 outputs: MSE")
    case("small_seq_cls_inputs_embeds_head_mask", "DistilBertForSequenceClassification",
         dict(SMALL_SIN, num_labels=2),
         dict(inputs_embeds=embeds, head_mask=np.array([0.0, 1.0, 1.0], np.float32), labels=np.array([0, 1, 1])),
         flags=dict(output_hidden_states=True))

    mc_small = ids(rng, 120, 2, 3, 7)
    mc_mask = np.ones((2, 3, 7), dtype=np.int64)
    mc_mask[0, 1, 5:] = 0
    mc_mask[1, 2, 3:] = 0
    case("small_mc", "DistilBertForMultipleChoice", SMALL_SIN,
         dict(input_ids=mc_small, attention_mask=mc_mask, labels=np.array([1, 2])), flags=all_out)
    case("small_mc_inputs_embeds", "DistilBertForMultipleChoice", SMALL_GELU_NEW,
         dict(inputs_embeds=rng.standard_normal((2, 2, 5, 96)).astype(np.float32), labels=np.array([0, 1])))

    tok_small_labels = rng.integers(0, 4, size=(B, S))
    tok_small_labels[small_mask == 0] = -100
    case("small_token_cls", "DistilBertForTokenClassification", dict(SMALL_SWISH, num_labels=4),
         dict(input_ids=small_ids, attention_mask=small_mask, labels=tok_small_labels),
         flags=dict(output_attentions=True))

    qa_ids = ids(rng, 120, 4, 9)
    qa_mask = padded_mask([9, 7, 9, 4], 9)
    case("small_qa_out_of_range", "DistilBertForQuestionAnswering", SMALL_SIN,
         dict(input_ids=qa_ids, attention_mask=qa_mask,
              start_positions=np.array([1, 50, -3, 9]), end_positions=np.array([[4], [9], [100], [2]])),
         note="positions clamped to [0, 9]; 9 is ignored; -3 counts as 0; (batch, 1) end positions")
    case("small_qa_relu", "DistilBertForQuestionAnswering", SMALL_RELU,
         dict(input_ids=qa_ids, attention_mask=qa_mask, start_positions=np.array([0, 3, 8, 2]),
              end_positions=np.array([1, 6, 8, 3])), flags=dict(output_hidden_states=True))
    return cases


# ------------------------------------------------------------------ running the reference


def torch_model(case):
    cls_name = case["cls"]
    config = transformers.DistilBertConfig(**case["config"])
    cls = getattr(transformers, cls_name)
    impl = "eager_head_mask" if "head_mask" in case["inputs"] and not NATIVE_HEAD_MASK else "eager"
    dtype = {"dtype" if TRANSFORMERS_MAJOR >= 5 else "torch_dtype": torch.float32}
    model = cls._from_config(config, attn_implementation=impl, **dtype).eval()
    for i, layer in enumerate(model.base_model.transformer.layer):
        layer.attention.golden_layer_index = i

    ours = minidistil.DistilBertConfig.from_dict(case["config"])
    init = case["init"]
    params = random_params(ours, init["seed"], HEAD_OF_CLASS[cls_name], std=init["std"], perturb=init["perturb"])
    for name in case["omit_params"]:
        del params[name]
    prefix = "" if HEAD_OF_CLASS[cls_name] is None else "distilbert."
    head_names = set(random_params(ours, 0, HEAD_OF_CLASS[cls_name], encoder=False))
    state = {(n if n in head_names else prefix + n): torch.from_numpy(v.copy()) for n, v in params.items()}
    if cls_name == "DistilBertForMaskedLM":
        state["vocab_projector.weight"] = state["distilbert.embeddings.word_embeddings.weight"]
    missing, unexpected = model.load_state_dict(state, strict=False)
    allowed_missing = {prefix + n for n in case["omit_params"]}
    if set(missing) - allowed_missing or unexpected:
        raise SystemExit(f"{case['name']}: state dict mismatch: missing {missing}, unexpected {unexpected}")
    if cls_name == "DistilBertForMaskedLM":
        assert model.vocab_projector.weight.data_ptr() == model.distilbert.embeddings.word_embeddings.weight.data_ptr() \
            or torch.equal(model.vocab_projector.weight, model.distilbert.embeddings.word_embeddings.weight)
    return model


def run_case(case):
    model = torch_model(case)
    inputs = case["inputs"]
    kwargs = {}
    for name, value in inputs.items():
        if name == "head_mask" and not NATIVE_HEAD_MASK:
            continue
        kwargs[name] = torch.from_numpy(np.asarray(value))
    kwargs.update(case["flags"])
    HEAD_MASK["mask"] = None
    if "head_mask" in inputs and not NATIVE_HEAD_MASK:
        hm = torch.from_numpy(np.asarray(inputs["head_mask"], np.float32))
        n_layers = model.config.n_layers
        HEAD_MASK["mask"] = hm.expand(n_layers, -1) if hm.dim() == 1 else hm
    with torch.no_grad():
        out = model(**kwargs)
    HEAD_MASK["mask"] = None

    arrays = {f"in.{k}": np.asarray(v) for k, v in inputs.items()}
    for field in ("last_hidden_state", "logits", "start_logits", "end_logits", "loss"):
        value = getattr(out, field, None)
        if value is None:
            continue
        value = value.numpy()
        spec = case["slices"].get(field)
        if spec is not None:
            value = np.take(value, spec["index"], axis=spec["axis"])
        arrays[f"out.{field}"] = value.astype(np.float32)
    for field in ("hidden_states", "attentions"):
        value = getattr(out, field, None)
        if value is not None:
            for i, t in enumerate(value):
                arrays[f"out.{field}.{i}"] = t.numpy().astype(np.float32)
    if case["omit_params"]:
        table = model.base_model.embeddings.position_embeddings.weight.detach().numpy()
        arrays["extra.position_embeddings"] = table.astype(np.float32)
    return arrays


OUT_DEFAULT = ROOT / "tests" / "golden" / "model"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=OUT_DEFAULT)
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob("*.npz"):
        old.unlink()
    listing = []
    for case in build_cases():
        arrays = run_case(case)
        np.savez_compressed(args.out / f"{case['name']}.npz", **arrays)
        entry = {k: case[k] for k in ("name", "cls", "config", "init", "flags", "slices", "omit_params", "note")}
        entry["inputs"] = sorted(case["inputs"])
        entry["outputs"] = sorted(k[4:] for k in arrays if k.startswith("out."))
        listing.append(entry)
        print(f"{case['name']:45s} {case['cls']:38s} {len(arrays):3d} arrays")
    metadata = dict(
        command="python " + " ".join([str(Path(sys.argv[0]).relative_to(ROOT)) if Path(sys.argv[0]).is_absolute() else sys.argv[0]] + sys.argv[1:]),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        versions=dict(
            python=platform.python_version(),
            torch=torch.__version__,
            transformers=transformers.__version__,
            numpy=np.__version__,
            minidistil=minidistil.__version__,
        ),
        reference="transformers DistilBert* classes, attn_implementation eager, float32, eval mode, no_grad; "
                  + ("head_mask native (4.x)" if NATIVE_HEAD_MASK else
                     "head-masked cases: eager plus the transformers 4.x head_mask multiply (see the tool's docstring)"),
        weights="minidistil.modeling.initialization.random_params(config, seed, head, std=std, perturb=perturb); "
                "task classes load the encoder under 'distilbert.', the MLM projector tied to the word embeddings",
        tolerance=1e-4,
        cases=listing,
    )
    (args.out / "metadata.json").write_text(json.dumps(metadata, indent=1) + "\n")
    total = sum(p.stat().st_size for p in args.out.iterdir())
    print(f"wrote {len(listing)} cases to {args.out} ({total / 1e6:.2f} MB)")


if __name__ == "__main__":
    main()
