"""The tokenizer's interface: construction and files, the call options, decoding and bad input.

Expected ids, offsets and strings come from the reference fast tokenizer: the calls in
tests/golden/tokenizer/calls.json, written by tools/goldens/make_tokenizer_golden.py (INTERFACE_CALLS), are
replayed here; the bulk comparison lives in test_tokenizer_golden.py.
"""

import json
import re
from pathlib import Path

import numpy as np
import pytest

import minidistil
from minidistil import DistilBertTokenizer, DistilBertTokenizerFast, TokenizerError

HERE = Path(__file__).resolve().parent
VOCAB = HERE / "data" / "bert-base-uncased-vocab.txt"
CALLS = json.loads((HERE / "golden" / "tokenizer" / "calls.json").read_text(encoding="utf-8"))["calls"]


def replay(tokenizer, call):
    """What `call` (a calls.json entry) gives on `tokenizer`, in the plain JSON form the golden holds.

    An encoding becomes its fields plus word_ids and sequence_ids of each row.
    """
    if "get" in call:
        return {name: getattr(tokenizer, name) for name in call["get"]}
    for name, value in call.get("attributes", {}).items():
        setattr(tokenizer, name, value)
    result = getattr(tokenizer, call.get("method", "__call__"))(*call.get("args", []), **call.get("kwargs", {}))
    if not hasattr(result, "word_ids"):
        return json.loads(json.dumps(result))
    fields = json.loads(json.dumps(dict(result.items())))  # offset tuples become lists, as in the golden
    rows = len(fields["input_ids"]) if fields["input_ids"] and isinstance(fields["input_ids"][0], list) else 1
    return {"fields": fields, "word_ids": [result.word_ids(r) for r in range(rows)],
            "sequence_ids": [result.sequence_ids(r) for r in range(rows)]}


@pytest.fixture(scope="module")
def tok():
    return DistilBertTokenizerFast(vocab_file=str(VOCAB))


def test_both_names_are_one_engine_importable_from_the_package():
    assert issubclass(minidistil.DistilBertTokenizerFast, minidistil.DistilBertTokenizer)
    assert minidistil.DistilBertTokenizer is DistilBertTokenizer


@pytest.mark.parametrize("call", CALLS, ids=[call["name"] for call in CALLS])
def test_interface_call_matches_the_reference(call):
    tokenizer = DistilBertTokenizerFast(vocab_file=str(VOCAB), **call.get("init", {}))
    assert replay(tokenizer, call) == call["expected"]


def test_numpy_tensors_hold_the_list_encoding(tok):
    for texts, kwargs in ((["one two three", "x"], {"padding": True}),
                          ("one", {"padding": "max_length", "max_length": 6, "return_offsets_mapping": True})):
        lists = tok(texts, **kwargs)
        arrays = tok(texts, return_tensors="np", **kwargs)
        assert arrays["input_ids"].dtype == np.int64
        for key, value in lists.items():
            rows = value if isinstance(texts, list) else [value]
            assert arrays[key].tolist() == [[list(x) if isinstance(x, tuple) else x for x in row] for row in rows], key


def test_batch_decode_takes_a_numpy_array(tok):
    rows = [[101, 7592, 1010], [101, 2088, 999]]
    assert tok.batch_decode(np.array(rows)) == tok.batch_decode(rows)


def test_save_and_load_round_trip(tmp_path, tok):
    cased = DistilBertTokenizer(vocab_file=str(VOCAB), do_lower_case=False, model_max_length=512)
    cased.save_pretrained(tmp_path / "cased")
    files = sorted(p.name for p in (tmp_path / "cased").iterdir())
    assert files == ["special_tokens_map.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"]
    again = DistilBertTokenizer.from_pretrained(tmp_path / "cased")
    assert again.do_lower_case is False and again.model_max_length == 512
    text = "Héllo Wörld [MASK] 中文"
    assert again(text, return_offsets_mapping=True) == cased(text, return_offsets_mapping=True)
    # A directory with only tokenizer.json (and the config) loads too.
    (tmp_path / "cased" / "vocab.txt").unlink()
    from_json = DistilBertTokenizer.from_pretrained(tmp_path / "cased")
    assert from_json(text)["input_ids"] == cased(text)["input_ids"]
    assert from_json.vocab_size == 30522
    # As the reference: without a config, the class defaults win over tokenizer.json's normaliser
    # (so this is uncased), and a tokenizer built from tokenizer.json does not clean up decoded text.
    (tmp_path / "cased" / "tokenizer_config.json").unlink()
    bare = DistilBertTokenizer.from_pretrained(tmp_path / "cased")
    assert bare.tokenize("Hello") == ["hello"]
    assert bare.clean_up_tokenization_spaces is False
    assert bare.decode(bare.encode("don't", add_special_tokens=False)) == "don ' t"
    assert tok.decode(tok.encode("don't", add_special_tokens=False)) == "don't"


def test_tokenizer_config_options_are_read(tmp_path):
    d = tmp_path / "tok"
    d.mkdir()
    (d / "vocab.txt").write_bytes(VOCAB.read_bytes())
    (d / "tokenizer_config.json").write_text(json.dumps({
        "do_lower_case": False, "tokenize_chinese_chars": False, "model_max_length": 8,
        "mask_token": {"content": "[MASK]", "lstrip": False}, "padding_side": "left",
    }))
    t = DistilBertTokenizer.from_pretrained(d)
    assert (t.do_lower_case, t.tokenize_chinese_chars, t.model_max_length, t.padding_side) == (False, False, 8, "left")
    assert t("a " * 20, truncation=True)["input_ids"][-1] == t.sep_token_id
    assert len(t("a " * 20, truncation=True)["input_ids"]) == 8


# -- bad input -----------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [None, 3, b"bytes", ["ok", None], ["ok", 5], [("a", 1)], [("a", "b", "c")]])
def test_non_string_input_is_a_type_error(tok, bad):
    with pytest.raises(TypeError):
        tok(bad)


def test_mismatched_batch_pair_lengths(tok):
    with pytest.raises(ValueError, match="pair up"):
        tok(["a", "b"], ["c"])
    with pytest.raises(TypeError):
        tok(["a", "b"], "c")


def test_max_length_too_small_for_the_special_tokens(tok):
    with pytest.raises(ValueError, match="special tokens"):
        tok("one two", truncation=True, max_length=1)
    with pytest.raises(ValueError, match="special tokens"):
        tok("one two", "three", truncation=True, max_length=2)


def test_stride_that_leaves_no_room_is_explained(tok):
    # The reference's Rust library panics here; we say what to change.
    with pytest.raises(TokenizerError, match="stride"):
        tok("one two three", truncation=True, max_length=4, stride=2, return_overflowing_tokens=True)
    # Like the reference, a stride above max_length minus the two special tokens is refused up front,
    # even when nothing needs truncating.
    with pytest.raises(TokenizerError, match="stride"):
        tok("a", truncation=True, max_length=5, stride=4)
    # stride=3, which fits, is the golden call "largest-stride-that-fits".


def test_truncating_only_a_sequence_that_is_too_short(tok):
    with pytest.raises(TokenizerError, match="only_first"):
        tok("a", "b c d e f g", truncation="only_first", max_length=5)
    with pytest.raises(TokenizerError, match="pair"):
        tok("a b c d", truncation="only_second", max_length=4)


@pytest.mark.parametrize("kwargs, error, message", [
    ({"truncation": "shortest"}, TokenizerError, "unknown truncation strategy 'shortest'"),
    ({"padding": "everything"}, TokenizerError, "unknown padding strategy 'everything'"),
    ({"padding_side": "middle"}, TokenizerError, "padding_side must be 'right' or 'left', got 'middle'"),
    ({"max_length": -1}, TokenizerError, "max_length must be >= 0, got -1"),
    ({"stride": "2"}, TypeError, "stride must be an int, got str"),
    ({"return_tensors": "pt"}, TokenizerError, "return_tensors='pt' is not supported"),
])
def test_unknown_options_are_value_or_type_errors(tok, kwargs, error, message):
    with pytest.raises(error, match=re.escape(message)):
        tok("hello", **kwargs)


@pytest.mark.parametrize("framework", ["tf", "jax"])
def test_tf_and_jax_tensors_are_numpy(tok, framework):
    """The model cards' TF/Flax examples ask for "tf"/"jax" tensors; the TF*/Flax* names here take NumPy."""
    expected = tok(["hello world", "hi"], padding=True, return_tensors="np")
    got = tok(["hello world", "hi"], padding=True, return_tensors=framework)
    assert set(got) == set(expected)
    for key in expected:
        assert isinstance(got[key], np.ndarray) and got[key].dtype == np.int64
        np.testing.assert_array_equal(got[key], expected[key])


def test_pad_to_multiple_must_divide_the_truncation_length(tok):
    with pytest.raises(ValueError, match="multiple"):
        tok("hello", truncation=True, max_length=7, padding="max_length", pad_to_multiple_of=4)


def test_ragged_rows_cannot_become_one_array(tok):
    with pytest.raises(ValueError, match="padding=True"):
        tok(["one two", "x"], return_tensors="np")


def test_missing_or_unreadable_vocab_names_the_file(tmp_path):
    missing = tmp_path / "nope" / "vocab.txt"
    with pytest.raises(TokenizerError, match="nope"):
        DistilBertTokenizer(vocab_file=str(missing))
    bad = tmp_path / "vocab.txt"
    bad.write_bytes(b"[PAD]\n[UNK]\nfine\n\xff\xfebroken\n")
    with pytest.raises(TokenizerError, match=r"vocab\.txt, line 4"):
        DistilBertTokenizer(vocab_file=str(bad))
    no_unk = tmp_path / "small.txt"
    no_unk.write_text("[PAD]\nhello\n")
    with pytest.raises(TokenizerError, match="unknown token"):
        DistilBertTokenizer(vocab_file=str(no_unk))
    (tmp_path / "empty").mkdir()
    with pytest.raises(TokenizerError, match="no vocab.txt"):
        DistilBertTokenizer.from_pretrained(tmp_path / "empty")


def test_lone_surrogates_are_dropped_like_other_unprintable_characters(tok):
    # The reference cannot even receive them (Rust strings are UTF-8); we drop them as clean_text drops
    # other "other" characters, so any Python str can be encoded.
    enc = tok("a\ud800b \udfffc", return_offsets_mapping=True)
    assert tok.convert_ids_to_tokens(enc["input_ids"]) == tok.convert_ids_to_tokens(tok("ab c")["input_ids"])
    assert enc["offset_mapping"][1:-1] == [(0, 3), (5, 6)]
