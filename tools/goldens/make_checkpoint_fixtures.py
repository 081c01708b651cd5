"""Write the tiny checkpoint fixtures under tests/golden/checkpoint/ with real torch + transformers.

Dev environment only (needs torch, transformers, safetensors):

    .venv-ref/bin/python tools/goldens/make_checkpoint_fixtures.py

The default test suite reads these files with minidistil's own readers (no
torch), so they pin down what torch.save / save_pretrained actually write.
Everything is seeded; the files are a few KB each. METADATA.json records the
command, the date (UTC) and the library versions.
"""

import datetime
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import safetensors
import safetensors.torch
import torch
import transformers
from transformers import BertConfig, BertForMaskedLM, BertModel, DistilBertConfig, DistilBertForMaskedLM

OUT = Path(__file__).resolve().parents[2] / "tests" / "golden" / "checkpoint"

TINY = dict(vocab_size=32, max_position_embeddings=16, n_layers=2, n_heads=2, dim=8, hidden_dim=12)


def randomise(model, seed):
    """Overwrite every parameter with seeded values (so LayerNorm weights etc. are not all ones)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for _, p in sorted(model.named_parameters()):
            p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
    return model


def write_config(directory, config):
    directory.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(directory)


def main():
    if OUT.exists():
        shutil.rmtree(OUT)
    OUT.mkdir(parents=True)
    torch.manual_seed(0)
    files = {}

    # 1. A tiny DistilBertForMaskedLM, as save_pretrained writes it (safetensors, "distilbert." prefix,
    #    tied vocab_projector.weight left out) and as torch.save(state_dict) writes it (.bin, weight kept,
    #    sharing the word embeddings' storage).
    config = DistilBertConfig(**TINY, architectures=["DistilBertForMaskedLM"])
    model = randomise(DistilBertForMaskedLM(config).eval(), seed=1)
    model.save_pretrained(OUT / "tiny_mlm_safetensors")
    write_config(OUT / "tiny_mlm_bin", config)
    torch.save(model.state_dict(), OUT / "tiny_mlm_bin" / "pytorch_model.bin")
    files["tiny_mlm_safetensors"] = "DistilBertForMaskedLM.save_pretrained (safetensors)"
    files["tiny_mlm_bin"] = "torch.save(DistilBertForMaskedLM.state_dict()) + config.json"

    # 2. The same model sharded: safetensors through save_pretrained(max_shard_size), .bin by hand
    #    (two torch.save shards + pytorch_model.bin.index.json, the layout transformers used to write).
    model.save_pretrained(OUT / "tiny_mlm_sharded", max_shard_size="2KB")
    bin_dir = OUT / "tiny_mlm_sharded_bin"
    write_config(bin_dir, config)
    state = model.state_dict()
    names = sorted(state)
    halves = {"pytorch_model-00001-of-00002.bin": names[: len(names) // 2],
              "pytorch_model-00002-of-00002.bin": names[len(names) // 2 :]}
    weight_map = {}
    for shard, keys in halves.items():
        torch.save({k: state[k].clone() for k in keys}, bin_dir / shard)
        weight_map.update({k: shard for k in keys})
    (bin_dir / "pytorch_model.bin.index.json").write_text(
        json.dumps({"metadata": {"total_size": 0}, "weight_map": weight_map}, indent=2) + "\n")
    files["tiny_mlm_sharded"] = "save_pretrained(max_shard_size='2KB'): model.safetensors.index.json + shards"
    files["tiny_mlm_sharded_bin"] = "two torch.save shards + pytorch_model.bin.index.json"

    # 3. Dtypes and layouts a torch state dict can hold, with the expected float32/int values in an .npz.
    gen = torch.Generator().manual_seed(2)
    base = torch.randn(6, 5, generator=gen)
    tensors = {
        "f32": torch.randn(3, 4, generator=gen),
        "f16": torch.randn(3, 4, generator=gen).half(),
        "bf16": torch.randn(3, 4, generator=gen).bfloat16(),
        "f64": torch.randn(2, 3, generator=gen).double(),
        "i64": torch.arange(6).reshape(2, 3),
        "transposed": base.t(),            # non-contiguous: strides (1, 5)
        "offset_slice": base[2:4],         # shares base's storage at an offset
        "base": base,
        "scalar": torch.tensor(1.5),
        "empty": torch.zeros(0, 4),
    }
    torch.save(tensors, OUT / "dtypes.bin")
    expected = {k: (v.float() if v.is_floating_point() else v).contiguous().numpy() for k, v in tensors.items()}
    np.savez(OUT / "dtypes_expected.npz", **expected)
    safetensors.torch.save_file({k: v.contiguous() for k, v in tensors.items() if k != "offset_slice"},
                                OUT / "dtypes.safetensors", metadata={"format": "pt"})
    files["dtypes.bin"] = "torch.save of f32/f16/bf16/f64/i64, a transposed view, an offset slice, a scalar, an empty tensor"
    files["dtypes.safetensors"] = "safetensors.torch.save_file of the same tensors (contiguous; no offset_slice)"
    files["dtypes_expected.npz"] = "the same tensors as NumPy (floats as float32)"

    # 4. A legacy (pre-1.6, non-zip) torch file: minidistil must refuse it clearly.
    torch.save({"w": torch.zeros(2)}, OUT / "legacy.bin", _use_new_zipfile_serialization=False)
    files["legacy.bin"] = "torch.save(..., _use_new_zipfile_serialization=False)"

    # 5. Tiny BERT checkpoints for the BERT -> DistilBERT conversion: a BertModel (with pooler) and a
    #    BertForMaskedLM (bert. prefix, cls.predictions head), as save_pretrained writes them.
    bert_config = BertConfig(vocab_size=32, hidden_size=8, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=12, max_position_embeddings=16, type_vocab_size=2,
                             hidden_act="gelu", layer_norm_eps=1e-12)
    bert = randomise(BertModel(bert_config).eval(), seed=3)
    bert.save_pretrained(OUT / "tiny_bert")
    bert_mlm = randomise(BertForMaskedLM(bert_config).eval(), seed=4)
    bert_mlm.save_pretrained(OUT / "tiny_bert_mlm")
    # Reference outputs for single-segment input, to check the conversion is exact.
    ids = torch.tensor([[2, 7, 9, 4, 30, 1], [3, 5, 8, 0, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]])
    with torch.no_grad():
        hidden = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        logits = bert_mlm(input_ids=ids, attention_mask=mask).logits
    np.savez(OUT / "tiny_bert_outputs.npz", input_ids=ids.numpy(), attention_mask=mask.numpy(),
             bert_last_hidden_state=hidden.numpy(), bert_mlm_logits=logits.numpy())
    files["tiny_bert"] = "BertModel.save_pretrained (with pooler)"
    files["tiny_bert_mlm"] = "BertForMaskedLM.save_pretrained (bert. prefix, cls.predictions head)"
    files["tiny_bert_outputs.npz"] = "reference BertModel last_hidden_state and BertForMaskedLM logits on input_ids/attention_mask"

    meta = {
        "command": ".venv-ref/bin/python tools/goldens/make_checkpoint_fixtures.py",
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "python": sys.version.split()[0],
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "safetensors": safetensors.__version__,
            "numpy": np.__version__,
        },
        "files": files,
    }
    (OUT / "METADATA.json").write_text(json.dumps(meta, indent=2) + "\n")
    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes)")


if __name__ == "__main__":
    main()
