"""Hypothesis strategies for DistilBERT inputs, configs, checkpoints and tokenizer calls.

    texts()                  realistic and adversarial Unicode text
    configs()                small valid DistilBertConfigs (every activation, sinusoidal or learned positions)
    checkpoints(config)      seeded random weights written as a checkpoint directory (yields its Path)
    token_batches(config)    TokenBatch(input_ids, attention_mask): right/left padding, length 1, fully padded rows
    encodings(tokenizer)     EncodingCase(text, text_pair, kwargs): texts, pairs, truncation and padding together

Every strategy shrinks towards a plain case (short ASCII text, one layer, a
single unpadded row of id 0...), so a failure is reported on a small input.
This is the only module of minidistil that imports hypothesis (the optional
extra `minidistil[testing]`).
"""

from __future__ import annotations

import atexit
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from hypothesis import strategies as st
from hypothesis.strategies import SearchStrategy

from minidistil.checkpoints.schema import CLASS_OF_HEAD, HEADS
from minidistil.modeling.config import ACTIVATIONS

__all__ = [
    "texts",
    "configs",
    "checkpoints",
    "token_batches",
    "encodings",
    "TokenBatch",
    "EncodingCase",
    "ACTIVATIONS",
    "HEADS",
]


# ----------------------------------------------------------------------------------- text pieces

ENGLISH = (
    "the", "a", "model", "is", "of", "and", "to", "in", "hello", "world", "test", "data", "running", "unbelievable",
    "tokenization", "DistilBERT", "Paris", "New", "York", "I'm", "don't", "U.S.", "e.g.", "fine-tuned", "naive",
)
SCRIPT_WORDS = (
    # Latin with accents and ligatures, case mappings that change length
    "Café", "naïve", "façade", "Straße", "Ærøskøbing", "ŁÓDŹ", "İstanbul", "ﬁnancial", "ǅemal", "ẞ", "Ǆ",
    # Greek, Cyrillic, Armenian, Georgian
    "Καλημέρα", "ΣΊΣΥΦΟΣ", "ὀδυσσεύς", "Привет", "мир", "Ёлка", "Հայերեն", "ქართული",
    # right-to-left: Arabic (with tatweel and digits), Hebrew with niqqud
    "مرحبا", "العربية", "ـــ", "٣٤٥", "שָׁלוֹם", "עברית",
    # Indic and South-East Asian
    "नमस्ते", "हिन्दी", "বাংলা", "தமிழ்", "ไทย", "สวัสดี", "ພາສາລາວ", "မြန်မာ", "ខ្មែរ",
    # CJK: ideographs (incl. extension B and the U+2B820 / U+2B920 block edges), kana, Hangul (also as jamo)
    "你好世界", "日本語", "漢字", "𠀋", "\U0002b820", "\U0002b91f", "\U0002b920", "ひらがな", "カタカナ", "ｶﾀｶﾅ",
    "안녕하세요", "\u1100\u1161\u11a8", "〆", "々",
    # others: Mongolian, Ethiopic, Cherokee, mathematical alphanumerics, fullwidth
    "ᠮᠣᠩᠭᠣᠯ", "ትግርኛ", "ᏣᎳᎩ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𝐁𝐨𝐥𝐝", "ｆｕｌｌｗｉｄｔｈ",
)
EMOJI = (
    "👍", "👍🏽", "😀😃", "❤️", "✔", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🧑🏿‍🚀", "👩‍💻", "🇫🇷", "🇯🇵🇺🇸", "1️⃣", "#️⃣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿",
)
CONTROL_AND_FORMAT = (
    "\x00", "\x01", "\x07", "\x1b", "\x7f", "\x85", "\t", "\n", "\r", "\r\n", "\x0b", "\x0c", "\u00a0", "\u00ad",
    "\u034f", "\u061c", "\u115f", "\u180e", "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u2028", "\u2029",
    "\u202a", "\u202e", "\u2060", "\u2066", "\u2069", "\u3000", "\ufeff", "\ufffd", "\ufff9", "\U000e0001",
    "\U000e0041", "\ue000", "\U000f0000", "\ufdd0", "\uffff", "\u0378",
)
# Code points where the reference's (older) Unicode tables and Python's unicodedata disagree.
UNICODE_TABLE_EDGES = (
    "\u07fd", "\u0898", "\u089f", "\u061d", "\u09fd", "\u0a76", "\u0c77", "\u0c84", "\u1b7d", "\u2e43", "\u2e4f",
    "\u2e55", "\u2e5d", "\u0890", "\u0891", "\u08e2", "\U000110cd", "\U00013430", "\U00013438", "\u1734",
    "\U000111c9",
)
COMBINING_MARKS = (
    [chr(c) for c in range(0x0300, 0x0370)]
    + [chr(c) for c in range(0x0483, 0x048A)]
    + ["\u05b0", "\u05bc", "\u0651", "\u093c", "\u094d", "\u0e31", "\u0e47", "\u3099", "\u309a"]
    + [chr(c) for c in range(0x20D0, 0x20F1)]
    + [chr(c) for c in range(0xFE20, 0xFE30)]
)
SPECIAL_TOKEN_STRINGS = (
    "[MASK]", "[CLS]", "[SEP]", "[PAD]", "[UNK]", "[mask]", "[ MASK ]", "[MASK][MASK]", "x[MASK]y", "[MASK]ed",
    "##ing", "##", "[unused0]", "[MASK", "MASK]", "<s>", "</s>", "<mask>",
)
PUNCTUATION = (
    ".", ",", "!", "?", "...", "'", '"', "(", ")", "-", "—", "–", "«", "»", "„", "“", "”", "‘", "’", "¿", "¡",
    "。", "、", "「", "」", "।", "؟", "·", "•", "@", "#", "$", "%", "^", "&", "*", "_", "+", "=", "{", "}", "|",
    "\\", "~", "`", "<", ">", "/", "§", "¶", "€", "£", "¥", "©", "™", "°",
)
NUMBERS = ("0", "42", "3.14", "1,000,000", "-7", "1e-5", "²", "½", "①", "٣", "१२३", "〇", "Ⅻ")
OTHER = ("https://example.com/a?b=c&d=e", "user@example.org", "C++", "#hashtag", "@mention", "O'Neill", "rock'n'roll")
SEPARATORS = (" ", "", "  ", "\n", "\t", " \u00a0")


def _combined():
    """A base letter with a stack of 1-8 combining marks (zalgo text)."""
    bases = st.sampled_from(("a", "e", "o", "n", "Z", "ا", "क", "ㄱ", "x"))
    marks = st.lists(st.sampled_from(COMBINING_MARKS), min_size=1, max_size=8).map("".join)
    return st.builds(lambda b, m: b + m, bases, marks)


def _long_words():
    """Words around and beyond WordPiece's 100-character limit."""
    return st.one_of(
        st.integers(95, 130).map(lambda n: "a" * n),
        st.integers(1, 4).map(lambda k: "pneumonoultramicroscopicsilicovolcanoconiosis" * k),
        st.integers(20, 60).map(lambda k: "é" * k + "x"),
        st.integers(30, 60).map(lambda k: "ab" * k),
    )


def _fragments(adversarial=True, words=()):
    plain = [st.sampled_from(ENGLISH)]
    if words:
        plain.append(st.sampled_from(tuple(words)))
    if not adversarial:
        return st.one_of(*plain, st.sampled_from(PUNCTUATION), st.sampled_from(NUMBERS))
    return st.one_of(
        *plain,  # first: hypothesis shrinks towards the first branch
        st.sampled_from(PUNCTUATION),
        st.sampled_from(NUMBERS),
        st.sampled_from(SCRIPT_WORDS),
        st.sampled_from(EMOJI),
        st.sampled_from(SPECIAL_TOKEN_STRINGS),
        st.sampled_from(CONTROL_AND_FORMAT),
        st.sampled_from(UNICODE_TABLE_EDGES),
        st.sampled_from(OTHER),
        _combined(),
        _long_words(),
        st.text(min_size=1, max_size=6),  # any Unicode (the default alphabet has no lone surrogates)
    )


def texts(*, min_fragments=0, max_fragments=12, adversarial=True, words=()):
    """Text made of fragments joined by spaces, nothing, newlines or tabs.

    Fragments: English words, words in many scripts (Latin with accents, Greek,
    Cyrillic, Arabic, Hebrew, Indic, Thai, CJK incl. extension blocks, Hangul...),
    punctuation (ASCII and Unicode), numbers in several scripts, emoji with
    modifiers, ZWJ sequences and flags, control and format characters (NUL, ZWSP,
    BOM, bidi controls, U+FFFD...), code points where Unicode versions disagree,
    letters with stacks of combining marks, words near and beyond 100 characters,
    special-token strings inside text ("[MASK]", "x[MASK]y", "##ing"), and
    arbitrary Unicode. adversarial=False keeps to words, punctuation and numbers.
    words: extra words to draw from (e.g. a tokenizer's vocabulary).
    """
    pieces = st.tuples(_fragments(adversarial, words), st.sampled_from(SEPARATORS))
    return st.lists(pieces, min_size=min_fragments, max_size=max_fragments).map(
        lambda parts: "".join(f + s for f, s in parts)
    )


# ----------------------------------------------------------------------------------- configs


def configs(*, max_vocab=64, max_layers=2, max_heads=4, max_head_dim=8, max_hidden=32, min_positions=4,
            max_positions=32, activations=ACTIVATIONS, sinusoidal=(False, True), **fixed):
    """Small valid DistilBertConfigs.

    dim = n_heads × head_dim; every activation in `activations`; sinusoidal or
    learned position embeddings; num_labels 1-4 (1 is regression); initializer_range
    0.02-0.5 (larger values make layers less linear, which exposes more bugs).
    Keyword arguments named like config fields are fixed (configs(n_layers=1)).
    """
    from minidistil.modeling.config import DistilBertConfig

    @st.composite
    def build(draw):
        n_heads = draw(st.integers(1, max_heads))
        values = dict(
            vocab_size=draw(st.integers(8, max(8, max_vocab))),
            n_layers=draw(st.integers(1, max_layers)),
            n_heads=n_heads,
            dim=n_heads * draw(st.integers(1, max_head_dim)),
            hidden_dim=draw(st.integers(1, max_hidden)),
            max_position_embeddings=draw(st.integers(min_positions, max(min_positions, max_positions))),
            activation=draw(st.sampled_from(tuple(activations))),
            sinusoidal_pos_embds=draw(st.sampled_from(tuple(sinusoidal))),
            num_labels=draw(st.integers(1, 4)),
            initializer_range=draw(st.sampled_from((0.02, 0.1, 0.5))),
            tie_word_embeddings=draw(st.booleans()),
        )
        values.update(fixed)
        return DistilBertConfig(**values)

    return build()


# ----------------------------------------------------------------------------------- checkpoints

_CHECKPOINT_ROOT = None


def _checkpoint_root():
    global _CHECKPOINT_ROOT
    if _CHECKPOINT_ROOT is None or not os.path.isdir(_CHECKPOINT_ROOT):
        _CHECKPOINT_ROOT = tempfile.mkdtemp(prefix="minidistil-checkpoints-")
        atexit.register(shutil.rmtree, _CHECKPOINT_ROOT, True)
    return _CHECKPOINT_ROOT


def _describe(config):
    return (
        f"L{config.n_layers}-H{config.n_heads}-D{config.dim}-F{config.hidden_dim}-V{config.vocab_size}"
        f"-P{config.max_position_embeddings}-{config.activation}-{'sin' if config.sinusoidal_pos_embds else 'learned'}"
    )


def write_checkpoint(config, seed=0, head=None, perturb=True, directory=None):
    """Write seeded random weights for `config` (and `head`) as a checkpoint directory; return its Path.

    The directory name says the head, the config's shape and the seed; the same
    arguments give the same directory (written once per process).
    """
    from minidistil.checkpoints.saving import save_checkpoint
    from minidistil.modeling.initialization import random_params

    if head not in CLASS_OF_HEAD:
        raise ValueError(f"unknown head {head!r}: expected None or one of {', '.join(HEADS)}")
    changes = {"architectures": [CLASS_OF_HEAD[head]]}
    if head == "question_answering" and config.num_labels != 2:
        changes["num_labels"] = 2  # start and end logits: the reference refuses any other count
    config = config.replace(**changes)
    digest = hashlib.sha1(config.to_json_string().encode()).hexdigest()[:8]
    name = f"{head or 'encoder'}-{_describe(config)}-seed{seed}-{'perturbed' if perturb else 'init'}-{digest}"
    root = Path(directory) if directory is not None else Path(_checkpoint_root())
    path = root / name
    if not path.is_dir():
        root.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".writing-", dir=root))
        params = random_params(config, seed, head, perturb=perturb)
        save_checkpoint(staging, config, params, prefix_encoder=head is not None)
        try:
            os.replace(staging, path)
        except OSError:  # written meanwhile by another process
            shutil.rmtree(staging, ignore_errors=True)
    return path


def _strategy(value, default=None):
    if isinstance(value, SearchStrategy):
        return value
    if value is None and default is not None:
        return default
    return st.just(value)


def checkpoints(config=None, *, head=None, seeds=None, perturb=True):
    """Checkpoint directories (config.json + model.safetensors) with seeded random weights.

    config: a DistilBertConfig or a strategy of them (default configs()).
    head: None (bare encoder), one of HEADS, "any" (drawn), or a strategy.
    perturb=True also randomises biases and LayerNorms so that every tensor matters.
    Yields a pathlib.Path whose name says the head, config shape and seed; the
    directories live in one temporary folder removed at exit.
    """
    heads = st.sampled_from((None,) + HEADS) if head == "any" else _strategy(head)
    return st.builds(
        write_checkpoint,
        _strategy(config, configs()),
        seed=seeds if seeds is not None else st.integers(0, 2**32 - 1),
        head=heads,
        perturb=st.just(perturb),
    )


# ----------------------------------------------------------------------------------- token batches


class TokenBatch(NamedTuple):
    """input_ids (batch, seq_len) and attention_mask (batch, seq_len); unpacks as `ids, mask = batch`."""

    input_ids: np.ndarray
    attention_mask: np.ndarray


def token_batches(config, *, max_batch=4, min_len=1, max_len=16, padding_sides=("right", "left"),
                  dtype=np.int64, pad_token_id=None):
    """TokenBatch(input_ids, attention_mask) valid for `config` (a config, a strategy of them, or a model).

    seq_len is min_len..min(max_len, max_position_embeddings); each row has 0..seq_len
    real tokens (0: a fully padded row), padded on the side drawn from padding_sides;
    real ids are any id of the vocabulary, padded ones pad_token_id (default the
    config's, else 0). Shrinks to one unpadded row of length min_len.
    """
    if not isinstance(config, SearchStrategy):
        config = st.just(getattr(config, "config", config))

    @st.composite
    def build(draw, config):
        limit = min(max_len, config.max_position_embeddings)
        if limit < min_len:
            raise ValueError(f"max_position_embeddings {config.max_position_embeddings} < min_len {min_len}")
        pad = pad_token_id if pad_token_id is not None else (config.pad_token_id or 0)
        batch = draw(st.integers(1, max_batch))
        seq_len = draw(st.integers(min_len, limit))
        side = draw(st.sampled_from(tuple(padding_sides)))
        pads = draw(st.lists(st.integers(0, seq_len), min_size=batch, max_size=batch))  # padding per row
        ids = draw(st.lists(st.integers(0, config.vocab_size - 1), min_size=batch * seq_len,
                            max_size=batch * seq_len))
        input_ids = np.array(ids, dtype=dtype).reshape(batch, seq_len)
        mask = np.ones((batch, seq_len), dtype=dtype)
        for row, n_pad in enumerate(pads):
            if n_pad:
                cols = slice(seq_len - n_pad, None) if side == "right" else slice(0, n_pad)
                mask[row, cols] = 0
                input_ids[row, cols] = pad
        return TokenBatch(input_ids, mask)

    return config.flatmap(lambda c: build(c))


# ----------------------------------------------------------------------------------- encodings


class EncodingCase(NamedTuple):
    """One tokenizer call: `case(tokenizer)` runs tokenizer(text[, text_pair], **kwargs)."""

    text: Any
    text_pair: Any
    kwargs: dict

    def tokenizer_args(self):
        return (self.text,) if self.text_pair is None else (self.text, self.text_pair)

    def __call__(self, tokenizer):
        return tokenizer(*self.tokenizer_args(), **self.kwargs)


def _vocab_words(tokenizer, limit=3000):
    if tokenizer is None:
        return ()
    vocab = tokenizer.get_vocab() if hasattr(tokenizer, "get_vocab") else getattr(tokenizer, "vocab", {})
    words = sorted(
        (t for t in vocab if t.isalpha() and not t.startswith(("##", "[")) and len(t) > 1),
        key=lambda t: vocab[t],
    )
    return tuple(words[:limit])


def encodings(tokenizer=None, *, max_length=64, batch=True, pairs=True, overflow=True, offsets=True,
              adversarial=True, valid_only=True):
    """EncodingCase(text, text_pair, kwargs): a text, a pair, or a batch of either, with options drawn together.

    Texts come from texts() mixed with words of the tokenizer's vocabulary (so that
    encodings are not all [UNK]). Options: add_special_tokens, truncation
    (False/True/longest_first/only_first/only_second, the last two only with pairs),
    max_length (None or 1..max_length), padding (False/True/longest/max_length,
    max_length only when a max_length is drawn), padding_side, and optionally
    return_offsets_mapping and return_overflowing_tokens with a stride.
    valid_only=True keeps to options the reference accepts: max_length leaves room for
    the special tokens (2, or 3 for a pair) and stride < max_length - special tokens
    (the reference counts them even with add_special_tokens=False); valid_only=False
    also draws those edge cases (where the reference raises or truncates oddly).
    """
    words = _vocab_words(tokenizer)
    text = texts(max_fragments=8, adversarial=adversarial, words=words)

    @st.composite
    def build(draw):
        kinds = ["single"] + (["pair"] if pairs else []) + (["batch"] if batch else [])
        kinds += ["batch_pairs"] if batch and pairs else []
        kind = draw(st.sampled_from(kinds))
        if kind == "single":
            first, second = draw(text), None
        elif kind == "pair":
            first, second = draw(text), draw(text)
        else:
            n = draw(st.integers(1, 3))
            first = draw(st.lists(text, min_size=n, max_size=n))
            second = draw(st.lists(text, min_size=n, max_size=n)) if kind == "batch_pairs" else None
        kwargs = {}
        if not draw(st.booleans()):
            kwargs["add_special_tokens"] = False
        n_special = 2 if second is None else 3
        length = draw(st.none() | st.integers(min(n_special, max_length) if valid_only else 1, max_length))
        strategies = [False, True, "longest_first"] + (["only_first", "only_second"] if second is not None else [])
        truncation = draw(st.sampled_from(strategies)) if length is not None else draw(st.sampled_from([False, True]))
        if truncation is not False:
            kwargs["truncation"] = truncation
        if length is not None:
            kwargs["max_length"] = length
        paddings = [False, True, "longest"] + (["max_length"] if length is not None else [])
        padding = draw(st.sampled_from(paddings))
        if padding is not False:
            kwargs["padding"] = padding
            side = draw(st.sampled_from(["right", "left"]))
            if side == "left":
                kwargs["padding_side"] = "left"
        if offsets and draw(st.booleans()):
            kwargs["return_offsets_mapping"] = True
        max_stride = length - n_special - 1 if valid_only and length is not None else (length or 1) - 1
        if overflow and truncation is not False and length is not None and max_stride >= 0 and draw(st.booleans()):
            kwargs["return_overflowing_tokens"] = True
            kwargs["stride"] = draw(st.integers(0, max_stride))
        return EncodingCase(first, second, kwargs)

    return build()
