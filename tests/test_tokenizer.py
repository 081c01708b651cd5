"""The tokenizer's interface: construction and files, the call options, decoding and bad input.

Expected ids and offsets here are the reference fast tokenizer's (transformers 4.57.6 / tokenizers
0.22.2, checked by hand); the bulk comparison lives in test_tokenizer_golden.py.
"""

import json
from pathlib import Path

import numpy as np
import pytest

import minidistil
from minidistil import DistilBertTokenizer, DistilBertTokenizerFast, TokenizerError

VOCAB = Path(__file__).resolve().parent / "data" / "bert-base-uncased-vocab.txt"


@pytest.fixture(scope="module")
def tok():
    return DistilBertTokenizerFast(vocab_file=str(VOCAB))


def test_both_names_are_one_engine_importable_from_the_package():
    assert issubclass(minidistil.DistilBertTokenizerFast, minidistil.DistilBertTokenizer)
    assert minidistil.DistilBertTokenizer is DistilBertTokenizer


def test_vocabulary_and_special_tokens(tok):
    assert tok.vocab_size == len(tok) == 30522
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (0, 100, 101, 102, 103)
    assert tok.all_special_tokens == ["[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"]
    assert tok.convert_tokens_to_ids(["hello", "##s", "not-a-token"]) == [7592, 2015, 100]
    assert tok.convert_ids_to_tokens([101, 7592, 102], skip_special_tokens=True) == ["hello"]
    assert tok.model_input_names == ["input_ids", "attention_mask"]


def test_special_token_strings_in_the_text_are_those_tokens(tok):
    enc = tok("a [MASK] b[SEP]c [UNK] [mask]", return_offsets_mapping=True, return_special_tokens_mask=True)
    assert enc["input_ids"] == [101, 1037, 103, 1038, 102, 1039, 100, 1031, 7308, 1033, 102]
    assert enc["offset_mapping"][1:-1] == [(0, 1), (2, 8), (9, 10), (10, 15), (15, 16), (17, 22), (23, 24), (24, 28), (28, 29)]
    # Written in the text, they are ordinary words for the masks, as in the reference.
    assert enc["special_tokens_mask"] == [1] + [0] * 9 + [1]
    assert enc.word_ids() == [None, 0, 1, 2, 3, 4, 5, 6, 7, 8, None]


def test_split_special_tokens_makes_them_ordinary_text(tok):
    assert tok("a [MASK]", split_special_tokens=True)["input_ids"] == [101, 1037, 1031, 7308, 1033, 102]


def test_offsets_point_into_the_original_string_when_normalisation_changes_lengths(tok):
    text = "ΟΔΟΣ İstanbul Ⅻ ǅ ﬁ"
    enc = tok(text, return_offsets_mapping=True)
    assert enc["input_ids"] == [101, 1169, 29722, 29730, 29733, 9960, 100, 100, 1984, 102]
    assert enc["offset_mapping"] == [(0, 0), (0, 1), (1, 2), (2, 3), (3, 4), (5, 13), (14, 15), (16, 17), (18, 19), (0, 0)]
    # Cased, "İ" is not lowercased; uncased without stripping accents it becomes "i" + U+0307.
    cased = DistilBertTokenizer(vocab_file=str(VOCAB), do_lower_case=False)
    assert cased.tokenize("İstanbul") == ["[UNK]"]
    keep = DistilBertTokenizer(vocab_file=str(VOCAB), strip_accents=False)
    enc = keep("xİy", return_offsets_mapping=True)
    assert keep.convert_ids_to_tokens(enc["input_ids"][1:-1]) == ["[UNK]"]
    assert enc["offset_mapping"][1:-1] == [(0, 3)]


def test_cjk_characters_are_words_and_unknown_words_are_one_unk(tok):
    assert tok.tokenize("中文字") == ["中", "文", "[UNK]"]  # 字 is not in this vocabulary
    assert tok.tokenize("x" * 101) == ["[UNK]"]
    assert tok.tokenize("x" * 100) != ["[UNK]"]


def test_pair_word_ids_sequence_ids_and_token_type_ids(tok):
    enc = tok("hello world", "foo bar baz", return_token_type_ids=True)
    assert enc["input_ids"] == [101, 7592, 2088, 102, 29379, 3347, 8670, 2480, 102]
    assert enc["token_type_ids"] == [0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert enc.word_ids() == [None, 0, 1, None, 0, 1, 2, 2, None]
    assert enc.sequence_ids() == [None, 0, 0, None, 1, 1, 1, 1, None]
    assert "token_type_ids" not in tok("hello")


def test_overflow_windows_of_a_pair_follow_the_fast_reference(tok):
    enc = tok("one two three four five six", "a b c d e f g", truncation=True, max_length=9, stride=1,
              return_overflowing_tokens=True)
    words = [tok.convert_ids_to_tokens(ids) for ids in enc["input_ids"]]
    assert words[:3] == [
        ["[CLS]", "one", "two", "three", "[SEP]", "a", "b", "c", "[SEP]"],
        ["[CLS]", "three", "four", "five", "[SEP]", "a", "b", "c", "[SEP]"],
        ["[CLS]", "three", "four", "five", "[SEP]", "c", "d", "e", "[SEP]"],
    ]
    assert len(words) == 9 and enc["overflow_to_sample_mapping"] == [0] * 9
    assert words[-1] == ["[CLS]", "one", "two", "three", "[SEP]", "e", "f", "g", "[SEP]"]


def test_left_truncation_and_a_max_length_that_only_fits_the_special_tokens(tok):
    tok.truncation_side = "left"
    try:
        enc = tok("one two three four five", truncation=True, max_length=5, stride=1, return_overflowing_tokens=True)
    finally:
        tok.truncation_side = "right"
    assert enc["input_ids"] == [[101, 2093, 2176, 2274, 102], [101, 2028, 2048, 2093, 102]]
    enc = tok("one two three", truncation=True, max_length=2, return_overflowing_tokens=True)
    assert enc["input_ids"] == [[101, 102], [101, 2028, 2048, 2093, 102]]


def test_padding_options_and_numpy_tensors(tok):
    enc = tok(["one two three", "x"], padding=True, return_tensors="np")
    assert enc["input_ids"].dtype == np.int64 and enc["input_ids"].shape == (2, 5)
    assert enc["attention_mask"].tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]]
    enc = tok(["one two three", "x"], padding=True, pad_to_multiple_of=4, padding_side="left")
    assert enc["input_ids"] == [[0, 0, 0, 101, 2028, 2048, 2093, 102], [0, 0, 0, 0, 0, 101, 1060, 102]]
    assert enc.word_ids(1) == [None] * 6 + [0, None]
    enc = tok("one", padding="max_length", max_length=6, return_offsets_mapping=True, return_tensors="np")
    assert enc["input_ids"].shape == (1, 6) and enc["offset_mapping"].shape == (1, 6, 2)
    assert tok("x", return_tensors="np")["input_ids"].tolist() == [[101, 1060, 102]]


def test_max_length_alone_truncates_and_an_empty_pair_is_no_pair(tok):
    assert tok("one two three", max_length=4)["input_ids"] == [101, 2028, 2048, 102]
    assert tok("a", "")["input_ids"] == [101, 1037, 102]
    assert tok([("a", "")])["input_ids"] == [[101, 1037, 102, 102]]


def test_pretokenized_input(tok):
    enc = tok(["Hello", "world!"], is_split_into_words=True, return_offsets_mapping=True)
    assert enc["input_ids"] == [101, 7592, 2088, 999, 102]
    assert enc.word_ids() == [None, 0, 1, 1, None]
    assert enc["offset_mapping"] == [(0, 0), (0, 5), (0, 5), (5, 6), (0, 0)]


def test_encode_tokenize_and_decode(tok):
    ids = tok.encode("Hello, world! don't [MASK] i'm")
    assert ids == [101, 7592, 1010, 2088, 999, 2123, 1005, 1056, 103, 1045, 1005, 1049, 102]
    assert tok.decode(ids) == "[CLS] hello, world! don't [MASK] i'm [SEP]"
    assert tok.decode(ids, skip_special_tokens=True) == "hello, world! don't i'm"
    assert tok.decode(ids, clean_up_tokenization_spaces=False) == "[CLS] hello, world! don ' t [MASK] i ' m [SEP]"
    assert tok.batch_decode(np.array([ids[:3], ids[:3]]), skip_special_tokens=True) == ["hello,"] * 2
    assert tok.tokenize("unaffable") == ["una", "##ffa", "##ble"]  # greedy longest match first
    assert tok.convert_tokens_to_string(["una", "##ff", "##able", "!"]) == "unaffable!"
    assert tok.decode([7592, 999999]) == "hello"  # ids outside the vocabulary are skipped


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
    assert t("a " * 20, truncation=True)["input_ids"][-1] == 102
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
    assert tok("a", truncation=True, max_length=5, stride=3)["input_ids"] == [101, 1037, 102]


def test_truncating_only_a_sequence_that_is_too_short(tok):
    with pytest.raises(TokenizerError, match="only_first"):
        tok("a", "b c d e f g", truncation="only_first", max_length=5)
    with pytest.raises(TokenizerError, match="pair"):
        tok("a b c d", truncation="only_second", max_length=4)


@pytest.mark.parametrize("kwargs", [{"truncation": "shortest"}, {"padding": "everything"}, {"padding_side": "middle"},
                                    {"max_length": -1}, {"stride": "2"}, {"return_tensors": "pt"}])
def test_unknown_options_are_value_or_type_errors(tok, kwargs):
    with pytest.raises((ValueError, TypeError)):
        tok("hello", **kwargs)


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
