#!/usr/bin/env python
"""Compare minidistil's tokenizer with the reference fast tokenizer over the whole tokenizer corpus.

Reference: transformers' DistilBertTokenizerFast (the Rust `tokenizers` library), built from the same
vocab.txt, uncased (do_lower_case=True) and cased (do_lower_case=False on the same vocab). For every
line of ../shared/data/tokenizer_corpus.jsonl (and every pair "line i, line i+1") and every mode below,
both tokenizers encode the texts with the batch API and each sample is compared on input_ids,
attention_mask, token_type_ids, special_tokens_mask, offset_mapping, word_ids, sequence_ids and its
overflow windows (overflow_to_sample_mapping). Where the reference raises (a truncation that cannot
be done, or a Rust panic on a stride that leaves no room), ours must raise too.

Usage (dev environment with transformers installed; runs on one core):
    python tools/checks/compare_tokenizer.py                       # everything (about an hour here)
    python tools/checks/compare_tokenizer.py --modes single pair --casing uncased --limit 5000
    python tools/checks/compare_tokenizer.py --start 0 --stop 35000 --json out.json   # a chunk
    python tools/checks/compare_tokenizer.py --merge out1.json out2.json              # add up chunks
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # one thread for the reference too
os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ["RUST_BACKTRACE"] = "0"  # the reference panics on some strides; keep it short

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "data" / "tokenizer_corpus.jsonl"
VOCAB = ROOT / "tests" / "data" / "bert-base-uncased-vocab.txt"

CHUNK = 500
FIELDS = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "offset_mapping")
COMMON = dict(
    return_offsets_mapping=True,
    return_special_tokens_mask=True,
    return_token_type_ids=True,
    return_attention_mask=True,
)

# name -> (pair?, call options, tokenizer attributes, sub-batch size or None for the whole chunk)
MODES = {
    "single": (False, {}, {}, None),
    "pair": (True, {}, {}, None),
    "single-trunc": (False, dict(truncation=True, max_length=32, return_overflowing_tokens=True), {}, None),
    "single-trunc-stride-pad": (
        False, dict(truncation=True, max_length=32, stride=8, return_overflowing_tokens=True, padding=True), {}, None),
    "single-trunc-stride-left": (
        False, dict(truncation=True, max_length=32, stride=8, return_overflowing_tokens=True), {"truncation_side": "left"}, None),
    "pair-longest_first": (True, dict(truncation="longest_first", max_length=64, return_overflowing_tokens=True), {}, None),
    "pair-longest_first-stride-pad": (
        True, dict(truncation="longest_first", max_length=64, stride=8, return_overflowing_tokens=True, padding=True), {}, None),
    "pair-only_first": (True, dict(truncation="only_first", max_length=64, return_overflowing_tokens=True), {}, None),
    "pair-only_first-stride": (True, dict(truncation="only_first", max_length=64, stride=8, return_overflowing_tokens=True), {}, None),
    "pair-only_second": (True, dict(truncation="only_second", max_length=64, return_overflowing_tokens=True), {}, None),
    "pair-only_second-stride": (
        True, dict(truncation="only_second", max_length=64, stride=8, return_overflowing_tokens=True), {}, None),
    "pair-pad-left-multiple": (True, dict(padding=True, pad_to_multiple_of=8, padding_side="left"), {}, 8),
    "decode": (False, {}, {}, None),
    # Sub-batches of 4 with options drawn at random (seeded by position): special tokens on/off, every
    # truncation and padding strategy and side, pad_to_multiple_of, pre-split words, split_special_tokens,
    # pairs or not, and the tokenizer variants strip_accents=False and tokenize_chinese_chars=False.
    "random-options": (None, {}, {}, 4),
}


def load_corpus(limit=None):
    rows = [json.loads(line) for line in CORPUS.open(encoding="utf-8")]
    return rows[:limit] if limit else rows


def make_tokenizers(cased):
    from transformers import DistilBertTokenizerFast

    from minidistil import DistilBertTokenizerFast as Ours

    ref = DistilBertTokenizerFast(vocab_file=str(VOCAB), do_lower_case=not cased)
    ours = Ours(vocab_file=str(VOCAB), do_lower_case=not cased)
    return ref, ours


def _plain(v):
    return v.tolist() if hasattr(v, "tolist") else v


def samples_of(batch, n_items):
    """Per input item: a list of rows (main encoding, then overflow windows), each a dict of fields."""
    data = {k: _plain(v) for k, v in batch.items()}
    mapping = data.get("overflow_to_sample_mapping", list(range(len(data["input_ids"]))))
    out = [[] for _ in range(n_items)]
    for r, s in enumerate(mapping):
        row = {f: [tuple(x) if isinstance(x, (list, tuple)) else x for x in data[f][r]] for f in FIELDS if f in data}
        row["word_ids"] = batch.word_ids(r)
        row["sequence_ids"] = batch.sequence_ids(r)
        out[s].append(row)
    return out


def _error(e):
    return f"error: {type(e).__name__}"


def _call(tok, items, opts):
    """tok(texts) or, for pairs, tok(first texts, second texts) (the form transformers accepts for
    pre-split words too)."""
    if items and isinstance(items[0], tuple):
        return tok([a for a, _ in items], [b for _, b in items], **COMMON, **opts)
    return tok(items, **COMMON, **opts)


def encode(tok, items, opts, attrs):
    """Encode a list of items (str, list of words, or a pair of them), per item where the batch as a
    whole raises."""
    saved = {k: getattr(tok, k) for k in attrs}
    for k, v in attrs.items():
        setattr(tok, k, v)
    try:
        try:
            return samples_of(_call(tok, items, opts), len(items))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException:  # noqa: BLE001 - the reference's Rust panics are BaseExceptions
            out = []
            for it in items:
                try:
                    out.extend(samples_of(_call(tok, [it], opts), 1))
                except (KeyboardInterrupt, SystemExit):
                    raise
                except BaseException as e:  # noqa: BLE001
                    out.append(_error(e))
            return out
    finally:
        for k, v in saved.items():
            setattr(tok, k, v)


def random_options(seed):
    """(pair?, call options, tokenizer attributes, variant) for one sub-batch of the random-options mode."""
    import random

    rng = random.Random(seed)
    pair = rng.random() < 0.5
    opts = {
        "add_special_tokens": rng.random() < 0.8,
        "truncation": rng.choice([None, False, True, "longest_first", "only_first", "only_second", "do_not_truncate"]),
        "max_length": rng.choice([None, rng.randint(5, 16), rng.randint(16, 64)]),
        "padding": rng.choice([False, True, "longest", "max_length", "do_not_pad"]),
        "pad_to_multiple_of": rng.choice([None, None, 2, 8]),
        "padding_side": rng.choice([None, "left", "right"]),
        "return_overflowing_tokens": rng.random() < 0.5,
        "return_length": rng.random() < 0.5,
        "is_split_into_words": rng.random() < 0.2,
        "split_special_tokens": rng.random() < 0.1,
    }
    if opts["truncation"] not in (None, False, "do_not_truncate") and rng.random() < 0.5:
        opts["stride"] = rng.randint(1, 4)
    if not pair and opts["truncation"] == "only_second":
        opts["truncation"] = "only_first"
    attrs = {"truncation_side": rng.choice(["left", "right"])}
    variant = rng.choice([None, None, "strip_accents=False", "tokenize_chinese_chars=False"])
    return pair, opts, attrs, variant


_VARIANTS = {}


def variant_tokenizers(cased, variant):
    from transformers import DistilBertTokenizerFast

    from minidistil import DistilBertTokenizerFast as Ours

    key = (cased, variant)
    if key not in _VARIANTS:
        k, v = variant.split("=")
        kw = {"do_lower_case": not cased, k: v == "True"}
        _VARIANTS[key] = (DistilBertTokenizerFast(vocab_file=str(VOCAB), **kw), Ours(vocab_file=str(VOCAB), **kw))
    return _VARIANTS[key]


def first_difference(ref, ours):
    if isinstance(ref, str) or isinstance(ours, str):
        return f"reference {ref if isinstance(ref, str) else 'ok'} / ours {ours if isinstance(ours, str) else 'ok'}"
    if len(ref) != len(ours):
        return f"{len(ref)} windows vs {len(ours)}"
    for w, (a, b) in enumerate(zip(ref, ours)):
        for f in a:
            if a[f] != b.get(f):
                pos = next((i for i, (x, y) in enumerate(zip(a[f], b[f] or [])) if x != y), min(len(a[f]), len(b[f] or [])))
                return f"window {w} field {f} at token {pos}: reference {a[f][pos:pos + 3]} ours {(b[f] or [])[pos:pos + 3]}"
    return None


def run_mode(name, rows, cased, ref, ours, start, stop, show):
    pair, opts, attrs, sub = MODES[name]
    texts = [r["text"] for r in rows]
    n = len(texts)
    stats = {"samples": 0, "identical": 0, "different": 0, "both_raise": 0, "rows": 0, "examples": []}
    for c0 in range(start, stop, CHUNK):
        c1 = min(c0 + CHUNK, stop)
        items = [(texts[i], texts[(i + 1) % n]) if pair else texts[i] for i in range(c0, c1)]
        if name == "decode":
            ids = ref(items)["input_ids"]
            want = [ref.decode(x) for x in ids] + [ref.decode(x, skip_special_tokens=True) for x in ids]
            got = [ours.decode(x) for x in ids] + [ours.decode(x, skip_special_tokens=True) for x in ids]
            pairs = list(zip(want, got, items + items))
            for a, b, text in pairs:
                stats["samples"] += 1
                stats["rows"] += 1
                if a == b:
                    stats["identical"] += 1
                else:
                    stats["different"] += 1
                    if len(stats["examples"]) < show:
                        stats["examples"].append({"text": text[:200], "diff": f"decode {a[:80]!r} vs {b[:80]!r}"})
            continue
        if name == "random-options":
            groups = []
            for g0 in range(c0, c1, sub):
                g_pair, g_opts, g_attrs, variant = random_options(g0)
                g = [(texts[i], texts[(i + 1) % n]) if g_pair else texts[i] for i in range(g0, min(g0 + sub, c1))]
                if g_opts["is_split_into_words"]:
                    g = [(a.split(), b.split()) for a, b in g] if g_pair else [x.split() for x in g]
                toks = variant_tokenizers(cased, variant) if variant else (ref, ours)
                groups.append((g0, g, g_opts, g_attrs, toks))
        else:
            groups = [(c0 + i, items[i:i + sub], opts, attrs, (ref, ours)) for i in range(0, len(items), sub)] if sub else [
                (c0, items, opts, attrs, (ref, ours))]
        for g0, g, opts, attrs, (ref_tok, our_tok) in groups:
            want = encode(ref_tok, g, opts, attrs)
            got = encode(our_tok, g, opts, attrs)
            for k, (a, b) in enumerate(zip(want, got)):
                stats["samples"] += 1
                if isinstance(a, str) and isinstance(b, str):
                    stats["both_raise"] += 1
                    continue
                stats["rows"] += len(a) if not isinstance(a, str) else 0
                if a == b:
                    stats["identical"] += 1
                    continue
                stats["different"] += 1
                if len(stats["examples"]) < show:
                    stats["examples"].append({"index": g0 + k, "text": str(g[k])[:300],
                                              "options": opts, "diff": first_difference(a, b)})
    return stats


def report(results):
    print(f"{'casing':8} {'mode':32} {'samples':>8} {'identical':>9} {'different':>9} {'both raise':>10} {'rows':>9}")
    for key, s in results.items():
        casing, mode = key.split("/", 1)
        print(f"{casing:8} {mode:32} {s['samples']:8} {s['identical']:9} {s['different']:9} {s['both_raise']:10} {s['rows']:9}")
        for ex in s["examples"]:
            print(f"    e.g. {json.dumps(ex, ensure_ascii=True)[:400]}")
    total = sum(s["samples"] for s in results.values())
    same = sum(s["identical"] + s["both_raise"] for s in results.values())
    print(f"total: {same} of {total} samples identical ({100.0 * same / max(total, 1):.4f}%)")
    return total - same


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--modes", nargs="*", default=list(MODES), choices=list(MODES))
    ap.add_argument("--casing", choices=["uncased", "cased", "both"], default="both")
    ap.add_argument("--start", type=int, default=0)
    ap.add_argument("--stop", type=int, default=None)
    ap.add_argument("--limit", type=int, default=None, help="use only the first N corpus lines")
    ap.add_argument("--show", type=int, default=5, help="examples kept per mode")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--merge", nargs="*", help="add up the results of earlier --json runs and report")
    args = ap.parse_args(argv)

    if args.merge:
        results = {}
        for p in args.merge:
            for key, s in json.loads(Path(p).read_text())["results"].items():
                t = results.setdefault(key, {"samples": 0, "identical": 0, "different": 0, "both_raise": 0, "rows": 0, "examples": []})
                for f in ("samples", "identical", "different", "both_raise", "rows"):
                    t[f] += s[f]
                t["examples"] += s["examples"][: max(0, args.show - len(t["examples"]))]
        return 1 if report(results) else 0

    import tokenizers
    import transformers

    rows = load_corpus(args.limit)
    stop = len(rows) if args.stop is None else min(args.stop, len(rows))
    casings = ["uncased", "cased"] if args.casing == "both" else [args.casing]
    results = {}
    for casing in casings:
        ref, ours = make_tokenizers(casing == "cased")
        for mode in args.modes:
            t0 = time.time()
            results[f"{casing}/{mode}"] = s = run_mode(mode, rows, casing == "cased", ref, ours, args.start, stop, args.show)
            print(f"[{time.time() - t0:7.1f}s] {casing}/{mode}: {s['identical']} identical, {s['different']} different, "
                  f"{s['both_raise']} both raise, of {s['samples']}", flush=True)
    bad = report(results)
    if args.json:
        meta = {"lines": [args.start, stop], "transformers": transformers.__version__,
                "tokenizers": tokenizers.__version__, "command": " ".join(sys.argv)}
        Path(args.json).write_text(json.dumps({"meta": meta, "results": results}, indent=1))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
