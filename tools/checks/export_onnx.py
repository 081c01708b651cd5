"""Export a minidistil checkpoint directory to ONNX through transformers and torch (dev environment only).

    python tools/checks/export_onnx.py CHECKPOINT_DIR OUT.onnx [--output last_hidden_state] [--opset 17]

The checkpoint (config.json + model.safetensors, as minidistil's save_pretrained
or minidistil.testing.write_checkpoint writes it) is loaded into the transformers
class its config names, in eval mode with eager attention, and traced with
torch.onnx.export. The graph takes input_ids and attention_mask (int64, shape
(batch, sequence), both dynamic) and returns one output: `--output` names the
field of the model's output (default: last_hidden_state, else logits).

This is the export half of the README's property-testing example
(docs/onnx_example.py), which checks the exported graph against minidistil.
Needs torch, transformers and onnx; onnxruntime to run --check.
"""

import argparse
import sys
import warnings
from pathlib import Path


def export(checkpoint, out, output=None, opset=17):
    import torch
    import transformers

    config = transformers.AutoConfig.from_pretrained(checkpoint)
    arch = (config.architectures or ["DistilBertModel"])[0]
    cls = getattr(transformers, arch, transformers.DistilBertModel)
    model = cls.from_pretrained(checkpoint, attn_implementation="eager").eval()
    field = output or ("last_hidden_state" if arch == "DistilBertModel" else "logits")
    if arch == "DistilBertForQuestionAnswering" and output is None:
        field = "start_logits"

    class Wrapper(torch.nn.Module):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids, attention_mask):
            return getattr(self.inner(input_ids=input_ids, attention_mask=attention_mask), field)

    length = min(8, config.max_position_embeddings)
    input_ids = torch.ones((2, length), dtype=torch.long)
    attention_mask = torch.ones((2, length), dtype=torch.long)
    attention_mask[1, length // 2:] = 0
    axes = {0: "batch", 1: "sequence"}
    out_axes = axes if field in ("last_hidden_state", "start_logits", "end_logits") or arch.endswith(
        "TokenClassification") or arch.endswith("MaskedLM") else {0: "batch"}
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Wrapper(model), (input_ids, attention_mask), str(out),
            input_names=["input_ids", "attention_mask"], output_names=[field],
            dynamic_axes={"input_ids": axes, "attention_mask": axes, field: out_axes},
            opset_version=opset, dynamo=False,
        )
    return Path(out)


def check(checkpoint, out):
    """Run the export once with onnxruntime and compare with transformers; return the largest difference."""
    import numpy as np
    import onnxruntime as ort
    import torch
    import transformers

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    config = transformers.AutoConfig.from_pretrained(checkpoint)
    ids = np.random.default_rng(0).integers(0, config.vocab_size, size=(3, min(5, config.max_position_embeddings)))
    mask = np.ones_like(ids)
    mask[2, 2:] = 0
    got = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
    arch = (config.architectures or ["DistilBertModel"])[0]
    model = getattr(transformers, arch).from_pretrained(checkpoint, attn_implementation="eager").eval()
    with torch.no_grad():
        ref = model(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask))[0].numpy()
    return float(np.abs(got - ref).max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", help="checkpoint directory (config.json + weights)")
    parser.add_argument("out", help="ONNX file to write")
    parser.add_argument("--output", default=None, help="output field (default last_hidden_state, else logits)")
    parser.add_argument("--opset", type=int, default=17)
    parser.add_argument("--check", action="store_true", help="run the export with onnxruntime against transformers")
    args = parser.parse_args(argv)
    path = export(args.checkpoint, args.out, args.output, args.opset)
    print(f"wrote {path}")
    if args.check:
        print(f"largest difference from transformers: {check(args.checkpoint, path):.3g}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
