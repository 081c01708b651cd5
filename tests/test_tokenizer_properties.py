"""Property-based tests of the tokenizer on arbitrary Unicode (controls, combining marks, astral characters)."""

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minidistil import DistilBertTokenizerFast, TokenizerError
from minidistil.tokenization import BertNormalizer

VOCAB = Path(__file__).resolve().parent / "data" / "bert-base-uncased-vocab.txt"
UNCASED = DistilBertTokenizerFast(vocab_file=str(VOCAB))
CASED = DistilBertTokenizerFast(vocab_file=str(VOCAB), do_lower_case=False)

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Characters that exercise every branch: controls and format characters, whitespace of all kinds,
# combining marks (with and without combining class, reordered or not), punctuation, CJK, Hangul,
# letters that change length when lowercased, astral characters, and special-token strings.
_INTERESTING = st.sampled_from(
    list("\x00\x01\t\n\r\x0b\x0c\x1f\x7f\x85\xa0\xad\u200b\u200d\u2028\u2029\u3000\ufeff\ufffd")
    + list("\u0301\u0316\u0334\u0345\u0344\u0f73\u0f71\u07fd\u0898\u1734\u20dd\U0001d165\U0001d16d")
    + list(".,!?'\"-()[]{}@#\u061d\u09fd\u2e43\u00bf\u3001")
    + list("中文字\u3400\U00020000\U0002b820\U0002b920\uf900\uac00\ud55c")
    + list("İΣǅﬁﬃ\u1e9eÅé\u00c5\u212b")
    + list("\U0001f600\U0001f468\U000e0001\U000f0000\ue000\u0378")
    + ["[MASK]", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[mask]", "##", "x" * 101]
)
TEXT = st.lists(
    st.one_of(
        st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=8),
        st.text(alphabet="abcdefghij ", min_size=1, max_size=12),
        _INTERESTING,
    ),
    max_size=12,
).map("".join)
TOKENIZER = st.sampled_from([UNCASED, CASED])


def _content(enc, tok):
    """(id, offsets) of the tokens that are not [CLS]/[SEP]/[PAD] added around the text."""
    return [(i, o) for i, o, m in zip(enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]) if not m]


@SETTINGS
@given(tok=TOKENIZER, text=TEXT)
def test_any_text_encodes_with_offsets_in_bounds_and_non_decreasing(tok, text):
    enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    assert len(enc["input_ids"]) == len(enc["attention_mask"]) == len(enc["offset_mapping"])
    assert all(0 <= i < len(tok) for i in enc["input_ids"])
    offsets = [o for _, o in _content(enc, tok)]
    for s, e in offsets:
        assert 0 <= s < e <= len(text)
    starts = [s for s, _ in offsets]
    ends = [e for _, e in offsets]
    assert starts == sorted(starts) and ends == sorted(ends)
    words = [w for w, m in zip(enc.word_ids(), enc["special_tokens_mask"]) if not m]
    assert words == sorted(words)


@SETTINGS
@given(tok=TOKENIZER, text=TEXT)
def test_each_token_comes_from_the_text_it_points_at(tok, text):
    enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    norm = BertNormalizer(lowercase=tok.do_lower_case, strip_accents=tok.strip_accents)
    specials = set(tok.all_special_tokens)
    for token_id, (s, e) in _content(enc, tok):
        token = tok.convert_ids_to_tokens(token_id)
        piece = text[s:e]
        if token in specials:
            # [UNK] stands for a whole unknown word; other special tokens were written in the text.
            assert token == "[UNK]" or piece == token
            continue
        assert token.removeprefix("##") in norm.normalize_str(piece), (token, piece)


@SETTINGS
@given(
    tok=TOKENIZER,
    first=TEXT,
    second=TEXT,
    pair=st.booleans(),
    max_length=st.integers(5, 24),
    strategy=st.sampled_from(["longest_first", "only_first", "only_second"]),
)
def test_truncation_never_exceeds_max_length(tok, first, second, pair, max_length, strategy):
    # With room for at least one token of each sequence: when a sequence's share is zero tokens the
    # reference moves it whole into an overflow window (see test_tokenizer), and so do we.
    if not pair and strategy == "only_second":
        strategy = "only_first"
    args = (first, second) if pair and second else (first,)
    try:
        enc = tok(*args, truncation=strategy, max_length=max_length, return_overflowing_tokens=True)
    except TokenizerError:
        # The reference cannot truncate here either: the other sequence alone is too long.
        assert strategy != "longest_first"
        return
    assert all(len(ids) <= max_length for ids in enc["input_ids"])
    assert set(enc["overflow_to_sample_mapping"]) == {0}


@SETTINGS
@given(tok=TOKENIZER, text=TEXT, max_length=st.integers(4, 16), stride=st.integers(0, 13), left=st.booleans())
def test_overflow_windows_respect_stride_and_cover_the_text(tok, text, max_length, stride, left):
    full = tok(text, add_special_tokens=False)["input_ids"]
    room = max_length - 2
    tok.truncation_side = "left" if left else "right"
    try:
        # A stride above the room is refused up front (as the reference); equal to it, only when a
        # window is needed (where the reference's Rust library panics).
        if stride > room or (stride == room and len(full) > room):
            with pytest.raises(TokenizerError, match="stride"):
                tok(text, truncation=True, max_length=max_length, stride=stride, return_overflowing_tokens=True)
            return
        enc = tok(text, truncation=True, max_length=max_length, stride=stride,
                  return_overflowing_tokens=True, return_special_tokens_mask=True)
    finally:
        tok.truncation_side = "right"
    windows = [[i for i, m in zip(ids, mask) if not m]
               for ids, mask in zip(enc["input_ids"], enc["special_tokens_mask"])]
    if left:
        windows = windows[::-1]  # left truncation returns the end of the text first
    assert all(len(w) <= room for w in windows)
    rebuilt = list(windows[0])
    for prev, cur in zip(windows, windows[1:]):
        # Consecutive windows overlap by exactly `stride` tokens and together give back the text.
        assert prev[len(prev) - stride:] == cur[:stride]
        rebuilt += cur[stride:]
    assert rebuilt == full


@SETTINGS
@given(
    tok=TOKENIZER,
    texts=st.lists(TEXT, min_size=1, max_size=5),
    side=st.sampled_from(["right", "left"]),
    multiple=st.sampled_from([None, 1, 4, 8]),
)
def test_padding_and_attention_mask_agree(tok, texts, side, multiple):
    enc = tok(texts, padding=True, pad_to_multiple_of=multiple, padding_side=side, return_special_tokens_mask=True)
    lengths = {len(ids) for ids in enc["input_ids"]}
    assert len(lengths) == 1
    (length,) = lengths
    if multiple:
        assert length % multiple == 0
    unpadded = tok(texts)["input_ids"]
    for ids, mask, special, plain in zip(enc["input_ids"], enc["attention_mask"], enc["special_tokens_mask"], unpadded):
        n_pad = length - len(plain)
        expected = [0] * n_pad + [1] * len(plain) if side == "left" else [1] * len(plain) + [0] * n_pad
        assert mask == expected
        assert [i for i, m in zip(ids, mask) if m] == plain
        assert all(i == tok.pad_token_id and s == 1 for i, m, s in zip(ids, mask, special) if not m)


@SETTINGS
@given(tok=TOKENIZER, texts=st.lists(TEXT, min_size=0, max_size=6), pairs=st.booleans())
def test_a_batch_encodes_as_its_items(tok, texts, pairs):
    items = [(t, t[::-1]) for t in texts] if pairs else texts
    options = dict(return_offsets_mapping=True, return_special_tokens_mask=True, truncation=True, max_length=12,
                   stride=2, return_overflowing_tokens=True)
    try:
        batch = tok(items, **options)
    except TokenizerError:
        # A batch fails when one of its items does; then some item fails on its own too.
        with pytest.raises(TokenizerError):
            for it in items:
                tok([it], **options)
        return
    rows = 0
    for k, it in enumerate(items):
        single = tok([it], **options)
        n = len(single["input_ids"])
        for key in ("input_ids", "attention_mask", "offset_mapping", "special_tokens_mask"):
            assert batch[key][rows:rows + n] == single[key]
        assert [batch.word_ids(rows + j) for j in range(n)] == [single.word_ids(j) for j in range(n)]
        assert [batch.sequence_ids(rows + j) for j in range(n)] == [single.sequence_ids(j) for j in range(n)]
        assert batch["overflow_to_sample_mapping"][rows:rows + n] == [k] * n
        rows += n
    assert rows == len(batch["input_ids"])
