#!/usr/bin/env python
"""Tokenizer speed: tokens per second on the English text of SQuAD v1.1 dev, one thread.

Tokenizes every context and question of ../shared/data/squad/dev-v1.1.json in batches with
minidistil's tokenizer, the reference fast tokenizer (transformers' DistilBertTokenizerFast, Rust) and,
when this transformers still has it, the reference slow tokenizer (DistilBertTokenizer, Python), all
with the same call (`tok(batch)`: input_ids and attention_mask). Tokens are counted from the reference
fast tokenizer's output, special tokens included. Each tokenizer is timed on `--repeat` full passes;
the first pass of ours includes filling its word cache, so both the first and the best pass are shown,
as tokens per second of CPU time (robust on a busy machine) and of wall time.

Usage (dev environment):  python tools/bench/bench_tokenizer.py [--repeat 3] [--batch 64] [--offsets]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAYON_NUM_THREADS", "1")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SQUAD = ROOT.parent / "shared" / "data" / "squad" / "dev-v1.1.json"
VOCAB = ROOT / "tests" / "data" / "bert-base-uncased-vocab.txt"


def squad_texts():
    data = json.loads(SQUAD.read_text(encoding="utf-8"))["data"]
    texts = []
    for article in data:
        for para in article["paragraphs"]:
            texts.append(para["context"])
            texts.extend(qa["question"] for qa in para["qas"])
    return texts


def time_passes(tok, texts, batch, repeat, call_kwargs):
    """(CPU seconds, wall seconds) of each full pass. CPU time of this one-threaded process is the
    figure that holds up on a busy shared machine; wall time is shown beside it."""
    times = []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        for i in range(0, len(texts), batch):
            tok(texts[i:i + batch], **call_kwargs)
        times.append((time.process_time() - c0, time.perf_counter() - w0))
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--offsets", action="store_true", help="also return offsets (not possible for the slow one)")
    ap.add_argument("--skip-slow", action="store_true")
    args = ap.parse_args(argv)

    import transformers
    from transformers import DistilBertTokenizerFast

    from minidistil import DistilBertTokenizer as Ours

    texts = squad_texts()
    fast = DistilBertTokenizerFast(vocab_file=str(VOCAB))
    n_tokens = sum(len(x) for x in fast(texts)["input_ids"])
    call = {"return_offsets_mapping": True} if args.offsets else {}
    print(f"SQuAD v1.1 dev: {len(texts)} texts (contexts and questions), {n_tokens} tokens; batch {args.batch}; "
          f"transformers {transformers.__version__}; Python {platform.python_version()}; {platform.processor() or platform.machine()}")

    t0 = time.perf_counter()
    ours = Ours(vocab_file=str(VOCAB))
    print(f"minidistil tokenizer construction: {time.perf_counter() - t0:.3f} s")
    rows = [("minidistil", ours, call), ("reference fast (Rust)", fast, call)]
    if not args.skip_slow and not args.offsets:
        try:
            from transformers import DistilBertTokenizer

            slow = DistilBertTokenizer(vocab_file=str(VOCAB))
            if not getattr(slow, "is_fast", False):
                rows.append(("reference slow (Python)", slow, call))
        except ImportError:
            pass
    results = {}
    print(f"{'':26} {'first pass':>22} {'best of ' + str(args.repeat):>22}   (tokens/s of CPU time; of wall time)")
    for name, tok, kw in rows:
        times = time_passes(tok, texts, args.batch, args.repeat, kw)
        results[name] = times
        cpu0, wall0 = times[0]
        cpu, wall = min(t[0] for t in times), min(t[1] for t in times)
        print(f"{name:26} {n_tokens / cpu0:>10,.0f}; {n_tokens / wall0:>9,.0f} {n_tokens / cpu:>12,.0f}; {n_tokens / wall:>9,.0f}")
    if "reference slow (Python)" in results:
        best = {k: n_tokens / min(t[0] for t in v) for k, v in results.items()}
        print(f"minidistil / slow: {best['minidistil'] / best['reference slow (Python)']:.2f}x   "
              f"minidistil / fast: {best['minidistil'] / best['reference fast (Rust)']:.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
