"""What the checkpoint-format golden writers share (make_tf_flax_goldens.py, make_onnx_goldens.py,
make_class_adapter_goldens.py): the output folder, padded inputs, and the files every golden folder holds.

    out = output_folder(__doc__, "onnx")                 # --out, default tests/golden/formats/onnx, emptied
    inputs = padded_inputs(seed, vocab, [7, 4, 2], [[5, 7, 7], [7, 7, 7]], np.int64)
    outputs = add_outputs(expected, "seq_cls", {"logits": array})   # {"logits": "seq_cls/logits"}
    finish(out, inputs, expected, manifest)              # inputs.npz, expected.npz, manifest.json

NumPy only, so that it runs in both reference environments (.venv-ref and .venv-tf).
"""

import argparse
import datetime
import json
import platform
import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SEQUENCE = 7


def output_folder(doc, name) -> Path:
    """The --out folder (default tests/golden/formats/<name>), emptied."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--out", default=str(ROOT / "tests" / "golden" / "formats" / name))
    out = Path(parser.parse_args().out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    return out


def padded_inputs(rng, vocab_size, lengths, mc_lengths, dtype) -> dict:
    """input_ids / attention_mask with one row per length (padded after it, pad id 0), and the same for
    multiple choice (a list of choices' lengths per example)."""
    def batch(lengths):
        lengths = np.asarray(lengths)
        ids = rng.integers(1, vocab_size, size=lengths.shape + (SEQUENCE,)).astype(dtype)
        mask = (np.arange(SEQUENCE) < lengths[..., None]).astype(dtype)
        ids[mask == 0] = 0
        return ids, mask

    ids, mask = batch(lengths)
    mc_ids, mc_mask = batch(mc_lengths)
    return dict(input_ids=ids, attention_mask=mask, mc_input_ids=mc_ids, mc_attention_mask=mc_mask)


def add_outputs(expected, case, arrays) -> dict:
    """Put a case's arrays into `expected` under "<case>/<field>"; returns {field: key} for the manifest."""
    keys = {}
    for field, value in arrays.items():
        keys[field] = f"{case}/{field}"
        expected[keys[field]] = np.asarray(value, dtype=np.float32)
    return keys


def finish(out, inputs, expected, manifest):
    """Write inputs.npz, expected.npz and manifest.json (with the date and Python version added)."""
    np.savez(out / "inputs.npz", **inputs)
    np.savez(out / "expected.npz", **expected)
    manifest = dict(manifest, date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"))
    manifest["versions"] = dict(manifest["versions"], numpy=np.__version__, python=platform.python_version())
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    total = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    print(f"wrote {len(manifest['cases'])} cases, {len(expected)} arrays, {total / 1024:.0f} KiB under {out}",
          file=sys.stderr)
