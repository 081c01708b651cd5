"""Our tokenizer against a golden sample of reference fast-tokenizer encodings.

The sample (tests/golden/tokenizer/, written by tools/goldens/make_tokenizer_golden.py from transformers'
DistilBertTokenizerFast) covers UDHR lines in every language variant, naughty strings, emoji,
normalisation sequences and edge cases, uncased and cased, single texts and pairs, every truncation
strategy with and without stride, and padding. Every field must be identical.
"""

import gzip
import json
from pathlib import Path

import pytest

from minidistil import DistilBertTokenizerFast, TokenizerError

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden" / "tokenizer"
VOCAB = HERE / "data" / "bert-base-uncased-vocab.txt"
FIELDS = ("input_ids", "attention_mask", "token_type_ids", "special_tokens_mask", "offset_mapping")


def _lines(name):
    with gzip.open(GOLDEN / name, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f]


META = json.loads((GOLDEN / "meta.json").read_text(encoding="utf-8"))
CASES = _lines("encodings.jsonl.gz")


@pytest.fixture(scope="module")
def tokenizers():
    made = {}

    def get(casing, variant):
        key = (casing, variant)
        if key not in made:
            kw = {"do_lower_case": casing == "uncased"}
            if variant:
                name, value = variant.split("=")
                kw[name] = value == "True"
            made[key] = DistilBertTokenizerFast(vocab_file=str(VOCAB), **kw)
        return made[key]

    return get


def _encode(tok, case):
    item = case["input"]
    options = case["options"]
    saved = {k: getattr(tok, k) for k in case["attributes"]}
    for k, v in case["attributes"].items():
        setattr(tok, k, v)
    try:
        out = tok([item[0]], [item[1]], **options) if case["pair"] else tok([item], **options)
    finally:
        for k, v in saved.items():
            setattr(tok, k, v)
    rows = []
    for r in range(len(out["input_ids"])):
        row = {f: [list(x) if isinstance(x, tuple) else x for x in out[f][r]] for f in FIELDS}
        row["word_ids"] = out.word_ids(r)
        row["sequence_ids"] = out.sequence_ids(r)
        rows.append(row)
    return rows


def test_golden_sample_is_large_and_varied():
    assert META["encodings"] >= 3000
    assert {c["mode"] for c in CASES} == set(META["modes"])
    assert {(c["casing"], c["variant"]) for c in CASES} >= {("uncased", None), ("cased", None)}
    assert sum("error" in c for c in CASES) > 0  # reference errors are part of the sample


@pytest.mark.parametrize("mode", sorted(META["modes"]))
def test_golden_encodings(tokenizers, mode):
    cases = [c for c in CASES if c["mode"] == mode]
    bad = []
    for case in cases:
        tok = tokenizers(case["casing"], case["variant"])
        if "error" in case:
            with pytest.raises(TokenizerError):
                _encode(tok, case)
            continue
        got = _encode(tok, case)
        if got != case["expected"]:
            bad.append(case)
    assert not bad, f"{len(bad)} of {len(cases)} differ, e.g. {json.dumps(bad[0], ensure_ascii=True)[:600]}"


def test_golden_decode(tokenizers):
    tok = tokenizers("uncased", None)
    cases = _lines("decode.jsonl.gz")
    assert len(cases) >= 400
    bad = [
        c for c in cases
        if tok.decode(c["ids"], skip_special_tokens=c["skip_special_tokens"],
                      clean_up_tokenization_spaces=c["clean_up_tokenization_spaces"]) != c["expected"]
    ]
    assert not bad, f"{len(bad)} differ, e.g. {bad[0]}"
