#!/usr/bin/env python
"""Write the tokenizer goldens: reference fast-tokenizer encodings of a varied sample of texts, and interface calls.

The sample draws from ../shared/data/tokenizer_corpus.jsonl (UDHR lines in every language variant,
naughty strings, emoji, Unicode normalisation sequences) plus a few hand-picked edge cases, and runs
each through one of the comparison modes of tools/checks/compare_tokenizer.py (single texts and pairs,
uncased and cased, every truncation strategy with and without stride, padding), encoded by the
reference (transformers' DistilBertTokenizerFast). Texts are cut to MAX_CHARS (200) characters to
keep the files small. INTERFACE_CALLS, the calls that tests/test_tokenizer.py replays (special tokens,
offsets, overflow windows, padding, decoding, ...), are made on the same reference.

Writes tests/golden/tokenizer/encodings.jsonl.gz (one case per line), decode.jsonl.gz, calls.json
and meta.json.

Usage (reference environment):  .venv-ref/bin/python tools/goldens/make_tokenizer_golden.py [--per-language 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import io
import json
import os
import random
import sys
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "checks"))
import compare_tokenizer as ct  # noqa: E402  (same modes, same field extraction)

ROOT = ct.ROOT
OUT = ROOT / "tests" / "golden" / "tokenizer"
MAX_CHARS = 200

EDGE_CASES = [
    "",
    " ",
    "\x00\u200b\ufeff",
    "Hello [MASK] world [mask] [CLS][SEP] [UNK]x[PAD]",
    "İstanbul İİ ΟΔΟΣ Σ ǅ ﬁ ﬃ Ⅻ",
    "naïve café résumé Ångström",
    "a\u0301\U0001d165b \u00e1\U0001d165\u0301c \u0f73\u0f71",
    "中文字符 𠀀𪜀 \U0002b820\U0002b920 ｶﾀｶﾅ",
    "tab\there\nnew\rline\u2028sep\u2029para\x0bvt\x0cff\x85nel",
    "x" * 101 + " " + "y" * 100,
    "don't stop: it's 3.14, isn't it?! (yes)",
    "\U0001f468\u200d\U0001f469\u200d\U0001f467 \U0001f1eb\U0001f1f7 \u2764\ufe0f",
    "\u0890\u0891\u08e2 \U000110cd \U00013430 \u07fd\u0898 \u061d\u09fd\u2e43",
    "\ue000\U000f0000\U00100000 \u0378\U0001fffe",
]


# What tests/test_tokenizer.py asks of the tokenizer's interface, answered by the reference. Each call
# names the tokenizer's keywords ("init"), attributes set just before the call ("attributes"), and either
# a method with its arguments ("method", "args", "kwargs") or attributes to read ("get").
INTERFACE_CALLS = [
    {"name": "vocabulary-and-special-tokens",
     "get": ["vocab_size", "pad_token_id", "unk_token_id", "cls_token_id", "sep_token_id", "mask_token_id",
             "all_special_tokens", "model_input_names"]},
    {"name": "length", "method": "__len__"},
    {"name": "tokens-to-ids", "method": "convert_tokens_to_ids", "args": [["hello", "##s", "not-a-token"]]},
    {"name": "ids-to-tokens-skipping-specials", "method": "convert_ids_to_tokens", "args": [[101, 7592, 102]],
     "kwargs": {"skip_special_tokens": True}},
    # Written in the text, special-token strings are those tokens, yet special_tokens_mask marks only
    # the ones the tokenizer added; "[mask]" in lower case is ordinary text.
    {"name": "special-token-strings-in-the-text", "args": ["a [MASK] b[SEP]c [UNK] [mask]"],
     "kwargs": {"return_offsets_mapping": True, "return_special_tokens_mask": True}},
    {"name": "split-special-tokens-makes-them-ordinary-text", "args": ["a [MASK]"],
     "kwargs": {"split_special_tokens": True}},
    # Lowercasing and NFD change lengths ("İ" -> "i" + U+0307, "ﬁ" -> "fi"): offsets still point into the input.
    {"name": "offsets-when-normalisation-changes-lengths", "args": ["ΟΔΟΣ İstanbul Ⅻ ǅ ﬁ"],
     "kwargs": {"return_offsets_mapping": True}},
    {"name": "cased-keeps-the-dotted-capital-i", "init": {"do_lower_case": False}, "method": "tokenize",
     "args": ["İstanbul"]},
    {"name": "uncased-keeping-accents-offsets", "init": {"strip_accents": False}, "args": ["xİy"],
     "kwargs": {"return_offsets_mapping": True}},
    {"name": "cjk-characters-are-words", "method": "tokenize", "args": ["中文字"]},
    {"name": "a-word-over-100-characters-is-one-unk", "method": "tokenize", "args": ["x" * 101]},
    {"name": "a-word-of-100-characters-is-split", "method": "tokenize", "args": ["x" * 100]},
    {"name": "pair-with-token-type-ids", "args": ["hello world", "foo bar baz"], "kwargs": {"return_token_type_ids": True}},
    {"name": "single-text-default-fields", "args": ["hello"]},
    {"name": "overflow-windows-of-a-pair", "args": ["one two three four five six", "a b c d e f g"],
     "kwargs": {"truncation": True, "max_length": 9, "stride": 1, "return_overflowing_tokens": True}},
    {"name": "left-truncation-with-stride", "attributes": {"truncation_side": "left"}, "args": ["one two three four five"],
     "kwargs": {"truncation": True, "max_length": 5, "stride": 1, "return_overflowing_tokens": True}},
    {"name": "max-length-that-only-fits-the-special-tokens", "args": ["one two three"],
     "kwargs": {"truncation": True, "max_length": 2, "return_overflowing_tokens": True}},
    {"name": "padding-longest", "args": [["one two three", "x"]], "kwargs": {"padding": True}},
    {"name": "padding-left-to-a-multiple", "args": [["one two three", "x"]],
     "kwargs": {"padding": True, "pad_to_multiple_of": 4, "padding_side": "left"}},
    {"name": "padding-to-max-length-with-offsets", "args": ["one"],
     "kwargs": {"padding": "max_length", "max_length": 6, "return_offsets_mapping": True}},
    # The largest stride that max_length leaves room for (max_length minus the two special tokens).
    {"name": "largest-stride-that-fits", "args": ["a"], "kwargs": {"truncation": True, "max_length": 5, "stride": 3}},
    {"name": "max-length-alone-truncates", "args": ["one two three"], "kwargs": {"max_length": 4}},
    {"name": "an-empty-second-text-is-no-pair", "args": ["a", ""]},
    {"name": "an-empty-second-text-in-a-batch-of-pairs", "args": [[["a", ""]]]},
    {"name": "pretokenized-input", "args": [["Hello", "world!"]],
     "kwargs": {"is_split_into_words": True, "return_offsets_mapping": True}},
    {"name": "encode", "method": "encode", "args": ["Hello, world! don't [MASK] i'm"]},
    {"name": "decode", "method": "decode", "args": [[101, 7592, 1010, 2088, 999, 2123, 1005, 1056, 103, 1045, 1005, 1049, 102]]},
    {"name": "decode-skipping-specials", "method": "decode",
     "args": [[101, 7592, 1010, 2088, 999, 2123, 1005, 1056, 103, 1045, 1005, 1049, 102]],
     "kwargs": {"skip_special_tokens": True}},
    {"name": "decode-without-cleanup", "method": "decode",
     "args": [[101, 7592, 1010, 2088, 999, 2123, 1005, 1056, 103, 1045, 1005, 1049, 102]],
     "kwargs": {"clean_up_tokenization_spaces": False}},
    {"name": "batch-decode", "method": "batch_decode", "args": [[[101, 7592, 1010], [101, 7592, 1010]]],
     "kwargs": {"skip_special_tokens": True}},
    {"name": "decode-skips-ids-outside-the-vocabulary", "method": "decode", "args": [[7592, 999999]]},
    {"name": "wordpiece-takes-the-longest-match-first", "method": "tokenize", "args": ["unaffable"]},
    {"name": "tokens-to-string", "method": "convert_tokens_to_string", "args": [["una", "##ff", "##able", "!"]]},
]


def interface_result(tokenizer, call):
    """What `call` (an INTERFACE_CALLS entry) gives on `tokenizer`, as plain JSON values.

    An encoding becomes its fields plus word_ids and sequence_ids of each row.
    """
    if "get" in call:
        return {name: getattr(tokenizer, name) for name in call["get"]}
    saved = {name: getattr(tokenizer, name) for name in call.get("attributes", {})}
    for name, value in call.get("attributes", {}).items():
        setattr(tokenizer, name, value)
    try:
        result = getattr(tokenizer, call.get("method", "__call__"))(*call.get("args", []), **call.get("kwargs", {}))
    finally:
        for name, value in saved.items():
            setattr(tokenizer, name, value)
    if not hasattr(result, "word_ids"):
        return json.loads(json.dumps(result))
    fields = {key: json.loads(json.dumps(ct._plain(value))) for key, value in result.items()}
    rows = len(fields["input_ids"]) if fields["input_ids"] and isinstance(fields["input_ids"][0], list) else 1
    return {"fields": fields, "word_ids": [result.word_ids(r) for r in range(rows)],
            "sequence_ids": [result.sequence_ids(r) for r in range(rows)]}


def _gz_text(path):
    """A text file written through gzip with a fixed timestamp, so reruns give identical bytes."""
    return io.TextIOWrapper(gzip.GzipFile(path, "wb", compresslevel=9, mtime=0), encoding="utf-8")


def sample_texts(rows, per_language, rng):
    by_key = defaultdict(list)
    for r in rows:
        key = (r["src"], r["lang"]) if r["src"] == "udhr" else (r["src"], None)
        by_key[key].append(r["text"])
    picked = []
    for (src, _), texts in sorted(by_key.items(), key=lambda kv: (kv[0][0], str(kv[0][1]))):
        k = per_language if src == "udhr" else {"blns": 240, "NormalizationTest": 500, "emoji-test": 160}[src]
        picked += rng.sample(texts, min(k, len(texts)))
    picked = [t[:MAX_CHARS] for t in picked]
    return EDGE_CASES + picked


def case_setup(mode, i):
    """(pair?, options, tokenizer attributes, tokenizer variant) of case i in a mode."""
    if mode == "random-options":
        return ct.random_options(i)
    pair, opts, attrs, _ = ct.MODES[mode]
    return pair, opts, attrs, None


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--per-language", type=int, default=2, help="UDHR lines per language variant")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import tokenizers
    import transformers

    rng = random.Random(args.seed)
    texts = sample_texts(ct.load_corpus(), args.per_language, rng)
    modes = [m for m in ct.MODES if m != "decode"]
    OUT.mkdir(parents=True, exist_ok=True)
    plain = {c: ct.make_tokenizers(c == "cased")[0] for c in ("uncased", "cased")}
    n = 0

    def write_case(f, casing, mode, i, first, second):
        nonlocal n
        pair, opts, attrs, variant = case_setup(mode, i)
        item = (first, second) if pair else first
        if opts.get("is_split_into_words"):
            item = (first.split(), second.split()) if pair else first.split()
        ref = ct.variant_tokenizers(casing == "cased", variant)[0] if variant else plain[casing]
        got = ct.encode(ref, [item], opts, attrs)[0]
        case = {"casing": casing, "variant": variant, "mode": mode, "pair": bool(pair), "options": {**ct.COMMON, **opts},
                "attributes": attrs, "input": list(item) if pair else item}
        if isinstance(got, str):
            case["error"] = got
        else:
            case["expected"] = [{k: [list(x) if isinstance(x, tuple) else x for x in v] for k, v in row.items()}
                                for row in got]
            n += len(got)
        f.write(json.dumps(case, ensure_ascii=False, separators=(",", ":")) + "\n")

    with _gz_text(OUT / "encodings.jsonl.gz") as f:
        for i, text in enumerate(texts):
            casing = "cased" if i % 3 == 2 else "uncased"
            mode = modes[i % len(modes)] if i >= len(EDGE_CASES) else modes[i % 2]
            write_case(f, casing, mode, i, text, texts[(i + 1) % len(texts)])
        # Every edge case in every mode as well, uncased and cased.
        for i, text in enumerate(EDGE_CASES):
            for casing in ("uncased", "cased"):
                for mode in modes:
                    write_case(f, casing, mode, i, text, EDGE_CASES[3])
    with _gz_text(OUT / "decode.jsonl.gz") as f:
        ref = plain["uncased"]
        ids_rows = ref(texts[:400])["input_ids"]
        ids_rows += [[101, 7592, 1010, 2088, 999, 2123, 1005, 1056, 103, 1045, 1005, 1049, 102], [2, 29000, 1012, 999999, 0, 100]]
        for ids in ids_rows:
            for skip in (False, True):
                for cleanup in (None, False):
                    want = ref.decode(ids, skip_special_tokens=skip, clean_up_tokenization_spaces=cleanup)
                    f.write(json.dumps({"ids": ids, "skip_special_tokens": skip, "clean_up_tokenization_spaces": cleanup,
                                        "expected": want}, ensure_ascii=False, separators=(",", ":")) + "\n")
    calls = []
    for call in INTERFACE_CALLS:
        reference = transformers.DistilBertTokenizerFast(vocab_file=str(ct.VOCAB), **call.get("init", {}))
        calls.append({**call, "expected": interface_result(reference, call)})
    (OUT / "calls.json").write_text(json.dumps({"calls": calls}, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    meta = {
        "command": " ".join(["python tools/goldens/make_tokenizer_golden.py", *(argv if argv is not None else sys.argv[1:])]),
        "reference": "transformers DistilBertTokenizerFast(vocab_file=tests/data/bert-base-uncased-vocab.txt, do_lower_case=...)",
        "transformers": transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "python": sys.version.split()[0],
        "date": datetime.datetime.now(datetime.timezone.utc).date().isoformat(),
        "texts": len(texts),
        "encodings": n,
        "modes": modes,
    }
    (OUT / "meta.json").write_text(json.dumps(meta, indent=1) + "\n", encoding="utf-8")
    sizes = {p.name: p.stat().st_size for p in OUT.iterdir()}
    print(f"wrote {n} encodings of {len(texts)} texts to {OUT.relative_to(ROOT)}: {sizes}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
