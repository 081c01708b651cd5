"""Write the goldens of the ONNX tests: each class exported by torch.onnx.export, run by ONNX Runtime.

Dev environment only (torch, transformers 4.57, onnx, onnxruntime):

    python tools/goldens/make_onnx_goldens.py [--out tests/golden/formats/onnx]
    (here: /work/main/.venv-ref/bin/python tools/goldens/make_onnx_goldens.py; about 20 s)

What it writes (every model tiny: vocab 64, dim 16, 2 layers):
  <case>/config.json + model.onnx   one export per class (TorchScript exporter, dynamo=False, as optimum
                                    uses it; constant folding on): some at the root, one under onnx/, one
                                    with its weights in an external data file, one at opset 14
                                    (LayerNorm decomposed), an untied MLM head
  bad/quantized/                    onnxruntime.quantization.quantize_dynamic of the seq_cls export
  bad/bert/                         a BertModel export (another architecture)
  inputs.npz                        input_ids / attention_mask (3 x 7, two rows padded), multiple choice (2 x 3 x 7)
  expected.npz                      "<case>/<output>": ONNX Runtime's outputs for the same file and inputs
  manifest.json                     cases (class, file, outputs), command, versions, date, seed

The reference for every case is ONNX Runtime running the very file minidistil loads; the
PyTorch model's own outputs are checked against it here too (the largest difference is recorded).
Weights are seeded random values (the classes' own init has zero biases, which the exporter
would merge into one initializer; a few such merges are kept on purpose: see `zero_biases`).
"""

import shutil
import sys
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import torch
import transformers
from transformers import BertConfig, BertModel, DistilBertConfig

from format_golden_files import add_outputs, finish, output_folder, padded_inputs

SEED = 77
SMALL = dict(vocab_size=64, dim=16, n_layers=2, n_heads=2, hidden_dim=32, max_position_embeddings=24)
# case -> (class, config fields, options)
CASES = {
    "model": ("DistilBertModel", dict(SMALL, activation="gelu"), dict(zero_biases=True)),
    "model_opset14": ("DistilBertModel", dict(SMALL, activation="relu", sinusoidal_pos_embds=True), dict(opset=14)),
    "mlm": ("DistilBertForMaskedLM", dict(SMALL, activation="gelu_new"), {}),
    "mlm_untied": ("DistilBertForMaskedLM", dict(SMALL, activation="gelu", tie_word_embeddings=False), {}),
    "seq_cls": ("DistilBertForSequenceClassification", dict(SMALL, activation="gelu", num_labels=3), {}),
    "mc": ("DistilBertForMultipleChoice", dict(SMALL, activation="relu"), {}),
    "token_cls": ("DistilBertForTokenClassification", dict(SMALL, activation="gelu", num_labels=5), dict(external=True)),
    "qa": ("DistilBertForQuestionAnswering", dict(SMALL, activation="gelu_new", n_heads=4), dict(subdir=True)),
}
OUTPUTS = {
    "DistilBertModel": ("last_hidden_state",),
    "DistilBertForQuestionAnswering": ("start_logits", "end_logits"),
}


def randomise(model, seed, zero_biases=False):
    """Seeded weights; with zero_biases the attention biases of layer 1 stay 0 (the exporter merges equal tensors)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if zero_biases and ".layer.1.attention." in name and name.endswith("bias"):
                p.zero_()
            elif "norm" in name.lower() and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            else:
                p.copy_(0.2 * noise)


def export(model, fields, path, ids, mask, opset):
    axes = {0: "batch", 1: "sequence"} if ids.ndim == 2 else {0: "batch", 1: "choices", 2: "sequence"}
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model, (torch.tensor(ids), torch.tensor(mask)), str(path),  # the model itself: its parameter names kept
            input_names=["input_ids", "attention_mask"], output_names=list(fields),
            dynamic_axes={"input_ids": axes, "attention_mask": axes, **{f: {0: "batch"} for f in fields}},
            opset_version=opset, do_constant_folding=True, dynamo=False,
        )


def run_ort(path, ids, mask):
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input_ids": ids, "attention_mask": mask})


def make_case(out, case, seed, inputs):
    class_name, config_fields, options = CASES[case]
    model = getattr(transformers, class_name)(DistilBertConfig(**config_fields, attn_implementation="eager")).eval()
    randomise(model, seed, options.get("zero_biases", False))
    directory = out / case
    directory.mkdir(parents=True)
    model.config.architectures = [class_name]
    model.config.to_json_file(directory / "config.json")
    file = directory / ("onnx/model.onnx" if options.get("subdir") else "model.onnx")
    prefix = "mc_" if class_name == "DistilBertForMultipleChoice" else ""
    ids, mask = inputs[f"{prefix}input_ids"], inputs[f"{prefix}attention_mask"]
    fields = OUTPUTS.get(class_name, ("logits",))
    export(model, fields, file, ids, mask, options.get("opset", 17))
    if options.get("external"):
        graph = onnx.load(str(file))
        onnx.save_model(graph, str(file), save_as_external_data=True, all_tensors_to_one_file=True,
                        location="model.onnx_data", size_threshold=0)
    results = dict(zip(fields, run_ort(file, ids, mask)))
    with torch.no_grad():
        torch_out = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))
    torch_diff = max(float(np.abs(torch_out[f].numpy() - results[f]).max()) for f in fields)
    return results, dict(
        reference_class=class_name, file=str(file.relative_to(out)), directory=case, opset=options.get("opset", 17),
        external_data=bool(options.get("external")), inputs="mc" if prefix else "ids", ort_vs_torch=torch_diff,
    )


def make_bad(out, inputs):
    """Files the loader must refuse: a quantized export and another architecture's export."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantized = out / "bad" / "quantized"
    quantized.mkdir(parents=True)
    shutil.copy(out / "seq_cls" / "config.json", quantized / "config.json")
    quantize_dynamic(str(out / "seq_cls" / "model.onnx"), str(quantized / "model.onnx"), weight_type=QuantType.QInt8)
    bert = out / "bad" / "bert"
    config = BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                        max_position_embeddings=24, attn_implementation="eager")
    model = BertModel(config).eval()
    randomise(model, SEED)
    bert.mkdir(parents=True)
    model.config.to_json_file(bert / "config.json")
    export(model, ("last_hidden_state",), bert / "model.onnx", inputs["input_ids"], inputs["attention_mask"], 17)
    return {"quantized": "bad/quantized/model.onnx", "bert": "bad/bert/model.onnx"}


def main():
    out = output_folder(__doc__, "onnx")
    torch.manual_seed(SEED)
    inputs = padded_inputs(np.random.default_rng(SEED), SMALL["vocab_size"], [7, 4, 2], [[7, 7, 7], [5, 7, 7]], np.int64)
    expected, cases = {}, {}
    for number, case in enumerate(CASES):
        results, info = make_case(out, case, SEED + number, inputs)
        cases[case] = dict(info, outputs=add_outputs(expected, case, results))
    finish(out, inputs, expected, dict(
        description="ONNX exports of each DistilBERT class (torch.onnx.export) and ONNX Runtime's outputs on "
        "inputs.npz for the same files; bad/: files the loader must refuse.",
        command="python tools/goldens/make_onnx_goldens.py",
        versions=dict(torch=torch.__version__, transformers=transformers.__version__, onnx=onnx.__version__,
                      onnxruntime=ort.__version__),
        seed=SEED,
        configs={case: CASES[case][1] for case in CASES},
        cases=cases,
        bad=make_bad(out, inputs),
    ))
    print(f"ONNX Runtime vs torch, worst: {max(c['ort_vs_torch'] for c in cases.values()):.2e}", file=sys.stderr)


if __name__ == "__main__":
    main()
